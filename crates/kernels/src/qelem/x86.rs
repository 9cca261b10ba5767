//! x86-64 paths: quantized Add on AVX2 (eight lanes of exact gemmlowp
//! fixed point) and 256-entry byte lookups on AVX-512 VBMI.

use core::arch::x86_64::*;

use super::{QAdd, Q8};
use crate::requant::Requant;

/// gemmlowp `SaturatingRoundingDoublingHighMul` of eight lanes by a
/// multiplier in `[0, 2^31)`: `floor((a m + 2^30) / 2^31)`, which equals the
/// round-half-up definition for both signs. The saturating case (both
/// operands `i32::MIN`) cannot occur with a non-negative multiplier.
#[target_feature(enable = "avx2")]
fn srdhm8(a: __m256i, m: __m256i) -> __m256i {
    let nudge = _mm256_set1_epi64x(1 << 30);
    // Even lanes: signed 32x32 -> 64 products in place.
    let even = _mm256_add_epi64(_mm256_mul_epi32(a, m), nudge);
    // Odd lanes moved down to the even slots first.
    let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), m), nudge);
    // Bits 31..62 of each 64-bit sum are the (in-range) quotient: shift
    // them to the low half for even lanes, to the high half for odd ones.
    let even = _mm256_srli_epi64(even, 31);
    let odd = _mm256_slli_epi64(odd, 1);
    _mm256_blend_epi32(even, odd, 0b1010_1010)
}

/// gemmlowp `RoundingDivideByPOT` of eight lanes by `2^e` (`e` in 0..=31):
/// ties away from zero.
#[target_feature(enable = "avx2")]
fn rdbpot8(x: __m256i, e: i32) -> __m256i {
    let mask = ((1i64 << e) - 1) as i32;
    let rem = _mm256_and_si256(x, _mm256_set1_epi32(mask));
    let neg = _mm256_cmpgt_epi32(_mm256_setzero_si256(), x);
    // threshold = mask/2 + (x < 0); `neg` is -1 where x < 0.
    let thr = _mm256_sub_epi32(_mm256_set1_epi32(mask >> 1), neg);
    let shifted = _mm256_sra_epi32(x, _mm_cvtsi32_si128(e));
    _mm256_sub_epi32(shifted, _mm256_cmpgt_epi32(rem, thr))
}

/// [`Requant::apply`] for a requant with `shift <= 0`.
#[target_feature(enable = "avx2")]
fn requant8(x: __m256i, r: Requant) -> __m256i {
    rdbpot8(srdhm8(x, _mm256_set1_epi32(r.multiplier)), -r.shift)
}

/// Loads eight values widened to i32.
///
/// # Safety
/// `p` must be valid for reading 8 bytes.
#[target_feature(enable = "avx2")]
unsafe fn load8<T: Q8>(p: *const T) -> __m256i {
    // SAFETY: the caller guarantees 8 readable bytes; loadl is unaligned.
    let v = unsafe { _mm_loadl_epi64(p as *const __m128i) };
    if T::SIGNED {
        _mm256_cvtepi8_epi32(v)
    } else {
        _mm256_cvtepu8_epi32(v)
    }
}

/// Stores eight i32 lanes already clamped to `T`'s range as bytes.
///
/// # Safety
/// `p` must be valid for writing 8 bytes.
#[target_feature(enable = "avx2")]
unsafe fn store8<T: Q8>(p: *mut T, v: __m256i) {
    // Values are in T's range, so signed packing keeps them (u8 values up
    // to 255 fit i16; the final pack picks the matching saturation).
    let w = _mm256_packs_epi32(v, v);
    let b = if T::SIGNED {
        _mm256_packs_epi16(w, w)
    } else {
        _mm256_packus_epi16(w, w)
    };
    let lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b));
    let hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
    let out = p as *mut i32;
    // SAFETY: the caller guarantees 8 writable bytes; unaligned writes.
    unsafe {
        out.write_unaligned(lo);
        out.add(1).write_unaligned(hi);
    }
}

/// [`super::qadd`] on two equal-length slices, eight lanes at a time.
/// Requires every shift of `p` to be `<= 0`.
///
/// # Safety
/// AVX2 must be available; `a` and `b` must be at least as long as `y`.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn qadd_avx2<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) {
    debug_assert!(a.len() >= y.len() && b.len() >= y.len());
    let n = y.len();
    let (azp, bzp) = (_mm256_set1_epi32(p.a_zp), _mm256_set1_epi32(p.b_zp));
    let yzp = _mm256_set1_epi32(p.clamp.zero_point);
    let (lo, hi) = (
        _mm256_set1_epi32(p.clamp.min),
        _mm256_set1_epi32(p.clamp.max),
    );
    let mut i = 0;
    while i + 8 <= n {
        // SAFETY: i + 8 <= n <= len of a, b and y.
        let (va, vb) = unsafe { (load8(a.as_ptr().add(i)), load8(b.as_ptr().add(i))) };
        let sa = requant8(_mm256_slli_epi32(_mm256_sub_epi32(va, azp), 20), p.a);
        let sb = requant8(_mm256_slli_epi32(_mm256_sub_epi32(vb, bzp), 20), p.b);
        let s = requant8(_mm256_add_epi32(sa, sb), p.out);
        // QClamp::apply: saturating add cannot saturate here (|s| < 2^31 - 255).
        let s = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(s, yzp), lo), hi);
        // SAFETY: as above for y.
        unsafe { store8(y.as_mut_ptr().add(i), s) };
        i += 8;
    }
    for k in i..n {
        y[k] = T::put(p.one(a[k].get(), b[k].get()));
    }
}

/// [`super::lookup`] with AVX-512 VBMI: two 128-entry two-table permutes and
/// a blend on the index's top bit, 64 bytes at a time.
///
/// # Safety
/// AVX-512 F, BW and VBMI must be available; `x` must be at least as long
/// as `y`.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
pub(super) unsafe fn lookup_vbmi(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    debug_assert!(x.len() >= y.len());
    let t = table.as_ptr();
    // SAFETY: the table has 256 bytes: four unaligned 64-byte loads.
    let (t0, t1, t2, t3) = unsafe {
        (
            _mm512_loadu_si512(t as *const _),
            _mm512_loadu_si512(t.add(64) as *const _),
            _mm512_loadu_si512(t.add(128) as *const _),
            _mm512_loadu_si512(t.add(192) as *const _),
        )
    };
    let n = y.len();
    let mut i = 0;
    while i + 64 <= n {
        // SAFETY: i + 64 <= n <= x.len(); unaligned load.
        let idx = unsafe { _mm512_loadu_si512(x.as_ptr().add(i) as *const _) };
        // Bits 0..6 pick among 128 entries of each table pair.
        let low = _mm512_permutex2var_epi8(t0, idx, t1);
        let high = _mm512_permutex2var_epi8(t2, idx, t3);
        let r = _mm512_mask_blend_epi8(_mm512_movepi8_mask(idx), low, high);
        // SAFETY: i + 64 <= y.len(); unaligned store.
        unsafe { _mm512_storeu_si512(y.as_mut_ptr().add(i) as *mut _, r) };
        i += 64;
    }
    super::lookup_portable(table, &x[i..], &mut y[i..]);
}

/// [`srdhm8`] on sixteen lanes.
#[target_feature(enable = "avx512f")]
fn srdhm16(a: __m512i, m: __m512i) -> __m512i {
    let nudge = _mm512_set1_epi64(1 << 30);
    let even = _mm512_add_epi64(_mm512_mul_epi32(a, m), nudge);
    let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(a, 32), m), nudge);
    let even = _mm512_srli_epi64(even, 31);
    let odd = _mm512_slli_epi64(odd, 1);
    _mm512_mask_blend_epi32(0xAAAA, even, odd)
}

/// [`rdbpot8`] on sixteen lanes, with mask registers for the comparisons.
#[target_feature(enable = "avx512f")]
fn rdbpot16(x: __m512i, e: i32) -> __m512i {
    let mask = ((1i64 << e) - 1) as i32;
    let one = _mm512_set1_epi32(1);
    let rem = _mm512_and_si512(x, _mm512_set1_epi32(mask));
    let neg = _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512());
    // threshold = mask/2 + (x < 0)
    let half = _mm512_set1_epi32(mask >> 1);
    let thr = _mm512_mask_add_epi32(half, neg, half, one);
    let shifted = _mm512_sra_epi32(x, _mm_cvtsi32_si128(e));
    let up = _mm512_cmpgt_epi32_mask(rem, thr);
    _mm512_mask_add_epi32(shifted, up, shifted, one)
}

/// [`Requant::apply`] for a requant with `shift <= 0`, sixteen lanes.
#[target_feature(enable = "avx512f")]
fn requant16(x: __m512i, r: Requant) -> __m512i {
    rdbpot16(srdhm16(x, _mm512_set1_epi32(r.multiplier)), -r.shift)
}

/// Loads sixteen values widened to i32.
///
/// # Safety
/// `p` must be valid for reading 16 bytes.
#[target_feature(enable = "avx512f")]
unsafe fn load16<T: Q8>(p: *const T) -> __m512i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu is unaligned.
    let v = unsafe { _mm_loadu_si128(p as *const __m128i) };
    if T::SIGNED {
        _mm512_cvtepi8_epi32(v)
    } else {
        _mm512_cvtepu8_epi32(v)
    }
}

/// [`qadd_avx2`] sixteen lanes at a time: the same integer operations in
/// the same order, so the same bits.
///
/// # Safety
/// AVX-512 F must be available; `a` and `b` must be at least as long as `y`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn qadd_avx512<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) {
    debug_assert!(a.len() >= y.len() && b.len() >= y.len());
    let n = y.len();
    let (azp, bzp) = (_mm512_set1_epi32(p.a_zp), _mm512_set1_epi32(p.b_zp));
    let yzp = _mm512_set1_epi32(p.clamp.zero_point);
    let (lo, hi) = (
        _mm512_set1_epi32(p.clamp.min),
        _mm512_set1_epi32(p.clamp.max),
    );
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n <= len of a, b and y.
        let (va, vb) = unsafe { (load16(a.as_ptr().add(i)), load16(b.as_ptr().add(i))) };
        let sa = requant16(_mm512_slli_epi32(_mm512_sub_epi32(va, azp), 20), p.a);
        let sb = requant16(_mm512_slli_epi32(_mm512_sub_epi32(vb, bzp), 20), p.b);
        let s = requant16(_mm512_add_epi32(sa, sb), p.out);
        // QClamp::apply: saturating add cannot saturate here (|s| < 2^31 - 255).
        let s = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(s, yzp), lo), hi);
        // Lanes are within T's range, so truncating to bytes keeps them.
        let bytes = _mm512_cvtepi32_epi8(s);
        // SAFETY: 16 writable bytes at y[i..]; unaligned store.
        unsafe { _mm_storeu_si128(y.as_mut_ptr().add(i) as *mut __m128i, bytes) };
        i += 16;
    }
    // SAFETY: AVX-512 F implies AVX2 on every CPU; the tail is shorter.
    unsafe { qadd_avx2(p, &a[i..], &b[i..], &mut y[i..]) };
}
