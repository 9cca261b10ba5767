//! AVX-512 (F+BW+VNNI) and AVX2 plane kernels for the int8 depthwise conv,
//! over the pair buffer of [`super::depthwise`]: `vpdpwssd` (AVX-512) or
//! `vpmaddwd` (AVX2) of a pair row with a broadcast tap pair does two exact
//! MACs per i32 lane. The vector
//! requantization reproduces [`Requant::apply`] and [`QClamp::apply`] bit
//! for bit:
//! * the saturating left shift clamps to `[MIN >> s, MAX >> s]` before
//!   shifting and sets the low bits of lanes that overflowed upwards (so
//!   they become `i32::MAX`);
//! * `SaturatingRoundingDoublingHighMul(a, m)` is `(a * m + 2^30) >> 31`
//!   for every product except `MIN * MIN`, which [`super::depthwise`]
//!   keeps off this path; only the low 32 bits of the 64-bit shift are
//!   kept, so a logical 64-bit shift does;
//! * `RoundingDivideByPOT` is spelt out with mask, remainder and threshold;
//! * the clamp `max(min(v + zp, ...))` is done as `clamp(v, lo - zp, hi -
//!   zp) + zp`, which cannot overflow and gives the same result.

use core::arch::x86_64::*;

use super::depthwise::{PlaneArgs, LANES};
use super::QInput;
use crate::requant::{QClamp, Requant};

/// Per-plane constants of the requantization.
#[derive(Clone, Copy)]
pub(super) struct RqConsts {
    m: i32,
    left: i32,
    right: i32,
    lo: i32,
    hi: i32,
    zp: i32,
}

impl RqConsts {
    pub(super) fn new(rq: Requant, c: QClamp) -> RqConsts {
        RqConsts {
            m: rq.multiplier,
            left: rq.shift.max(0),
            right: (-rq.shift).max(0),
            lo: c.min.saturating_sub(c.zero_point),
            hi: c.max.saturating_sub(c.zero_point),
            zp: c.zero_point,
        }
    }
}

/// Requantizes 16 accumulators.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rq512(k: &RqConsts, acc: __m512i) -> __m512i {
    let mut x = acc;
    if k.left > 0 {
        let hi = _mm512_set1_epi32(i32::MAX >> k.left);
        let lo = _mm512_set1_epi32(i32::MIN >> k.left);
        let over = _mm512_cmpgt_epi32_mask(x, hi);
        let cnt = _mm_cvtsi32_si128(k.left);
        let shifted = _mm512_sll_epi32(_mm512_max_epi32(_mm512_min_epi32(x, hi), lo), cnt);
        x = _mm512_mask_mov_epi32(shifted, over, _mm512_set1_epi32(i32::MAX));
    }
    let m = _mm512_set1_epi32(k.m);
    let nudge = _mm512_set1_epi64(1 << 30);
    let even = _mm512_add_epi64(_mm512_mul_epi32(x, m), nudge);
    let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x), m), nudge);
    let mut r = _mm512_mask_blend_epi32(
        0xAAAA,
        _mm512_srli_epi64::<31>(even),
        _mm512_slli_epi64::<1>(odd),
    );
    if k.right > 0 {
        let mask = ((1i64 << k.right) - 1) as i32;
        let rem = _mm512_and_si512(r, _mm512_set1_epi32(mask));
        let thr = _mm512_sub_epi32(_mm512_set1_epi32(mask >> 1), _mm512_srai_epi32::<31>(r));
        let up = _mm512_cmpgt_epi32_mask(rem, thr);
        r = _mm512_sra_epi32(r, _mm_cvtsi32_si128(k.right));
        r = _mm512_mask_add_epi32(r, up, r, _mm512_set1_epi32(1));
    }
    r = _mm512_min_epi32(
        _mm512_max_epi32(r, _mm512_set1_epi32(k.lo)),
        _mm512_set1_epi32(k.hi),
    );
    _mm512_add_epi32(r, _mm512_set1_epi32(k.zp))
}

/// One plane with AVX-512.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI. `buf` must hold the layout's
/// `len()` elements and `out` `oh * ow` bytes (asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn plane_avx512(a: &PlaneArgs<'_>, buf: &[i32], out: &mut [u8]) {
    // SAFETY (all arms): the caller's contract, forwarded.
    unsafe {
        match (a.l.kw, a.l.tr, a.l.sx) {
            (3, 2, 1) => rows512::<3, 2, 1>(a, buf, out),
            (3, 2, 2) => rows512::<3, 2, 2>(a, buf, out),
            (5, 3, 1) => rows512::<5, 3, 1>(a, buf, out),
            (5, 3, 2) => rows512::<5, 3, 2>(a, buf, out),
            _ => rows512::<0, 0, 0>(a, buf, out),
        }
    }
}

/// The AVX-512 loop; `KW`, `TR`, `SX` are the layout's when non-zero (so
/// the tap loops unroll), read from it when zero.
///
/// # Safety
/// As [`plane_avx512`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn rows512<const KW: usize, const TR: usize, const SX: usize>(
    a: &PlaneArgs<'_>,
    buf: &[i32],
    out: &mut [u8],
) {
    let l = a.l;
    let kw = if KW > 0 { KW } else { l.kw };
    let tr = if TR > 0 { TR } else { l.tr };
    let sx = if SX > 0 { SX } else { l.sx };
    assert!(kw == l.kw && tr == l.tr && sx == l.sx);
    assert!(buf.len() >= l.len() && out.len() >= l.oh * l.ow);
    let k = RqConsts::new(a.rq, a.clamp);
    let bias = _mm512_set1_epi32(a.bias);
    for oy in 0..l.oh {
        let (j0, taps) = a.row(oy);
        let mut ox = 0;
        while ox < l.ow {
            if l.ow - ox <= LANES / 2 {
                // A short tail (7-wide planes): half the work in 8 lanes.
                let mut acc = _mm256_set1_epi32(a.bias);
                for t in 0..tr {
                    let rp = &buf[(j0 + t) * l.rw..][..l.rw];
                    for kx in 0..kw {
                        let off = if sx == 1 {
                            ox + kx
                        } else {
                            (kx & 1) * l.half + ox + (kx >> 1)
                        };
                        // SAFETY: as below, `off + 16 <= rw`.
                        let v = unsafe { _mm256_loadu_si256(rp.as_ptr().add(off) as *const _) };
                        acc = _mm256_dpwssd_epi32(acc, v, _mm256_set1_epi32(taps[t * kw + kx]));
                    }
                }
                let y = rq256(&k, acc);
                let mask = ((1u32 << (l.ow - ox)) - 1) as u8;
                // SAFETY: the mask writes only bytes `ox..ow` of row `oy`.
                unsafe {
                    _mm256_mask_cvtepi32_storeu_epi8(
                        out.as_mut_ptr().add(oy * l.ow + ox) as *mut i8,
                        mask,
                        y,
                    )
                };
                break;
            }
            let mut acc0 = bias;
            let mut acc1 = _mm512_setzero_si512();
            for t in 0..tr {
                let rp = &buf[(j0 + t) * l.rw..][..l.rw];
                for kx in 0..kw {
                    let off = if sx == 1 {
                        ox + kx
                    } else {
                        (kx & 1) * l.half + ox + (kx >> 1)
                    };
                    // SAFETY: the layout makes `off + 16 <= rw` for every
                    // tap of every vector step (`ox < ow` rounded up to 16,
                    // plus the taps, fits `rw`), so the load stays in `rp`.
                    let v = unsafe { _mm512_loadu_si512(rp.as_ptr().add(off) as *const _) };
                    let w = _mm512_set1_epi32(taps[t * kw + kx]);
                    if (t * kw + kx) & 1 == 0 {
                        acc0 = _mm512_dpwssd_epi32(acc0, v, w);
                    } else {
                        acc1 = _mm512_dpwssd_epi32(acc1, v, w);
                    }
                }
            }
            let y = rq512(&k, _mm512_add_epi32(acc0, acc1));
            let n = (l.ow - ox).min(LANES);
            let mask = ((1u32 << n) - 1) as u16;
            // SAFETY: the mask writes only bytes `ox..ox + n` of row `oy`,
            // inside `out` (`ox + n <= ow`, asserted length).
            unsafe {
                _mm512_mask_cvtepi32_storeu_epi8(
                    out.as_mut_ptr().add(oy * l.ow + ox) as *mut i8,
                    mask,
                    y,
                )
            };
            ox += LANES;
        }
    }
}

/// Requantizes 8 accumulators.
#[target_feature(enable = "avx2")]
fn rq256(k: &RqConsts, acc: __m256i) -> __m256i {
    let mut x = acc;
    if k.left > 0 {
        let hi = _mm256_set1_epi32(i32::MAX >> k.left);
        let lo = _mm256_set1_epi32(i32::MIN >> k.left);
        let over = _mm256_cmpgt_epi32(x, hi);
        let cnt = _mm_cvtsi32_si128(k.left);
        let shifted = _mm256_sll_epi32(_mm256_max_epi32(_mm256_min_epi32(x, hi), lo), cnt);
        let low_bits = _mm256_set1_epi32(((1i64 << k.left) - 1) as i32);
        x = _mm256_or_si256(shifted, _mm256_and_si256(over, low_bits));
    }
    let m = _mm256_set1_epi32(k.m);
    let nudge = _mm256_set1_epi64x(1 << 30);
    let even = _mm256_add_epi64(_mm256_mul_epi32(x, m), nudge);
    let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(x), m), nudge);
    let mut r = _mm256_blend_epi32::<0b1010_1010>(
        _mm256_srli_epi64::<31>(even),
        _mm256_slli_epi64::<1>(odd),
    );
    if k.right > 0 {
        let mask = ((1i64 << k.right) - 1) as i32;
        let rem = _mm256_and_si256(r, _mm256_set1_epi32(mask));
        let thr = _mm256_sub_epi32(_mm256_set1_epi32(mask >> 1), _mm256_srai_epi32::<31>(r));
        let up = _mm256_cmpgt_epi32(rem, thr);
        r = _mm256_sra_epi32(r, _mm_cvtsi32_si128(k.right));
        r = _mm256_sub_epi32(r, up);
    }
    r = _mm256_min_epi32(
        _mm256_max_epi32(r, _mm256_set1_epi32(k.lo)),
        _mm256_set1_epi32(k.hi),
    );
    _mm256_add_epi32(r, _mm256_set1_epi32(k.zp))
}

/// The low bytes of 16 i32 lanes (each already in a byte's range), in
/// order.
#[target_feature(enable = "avx2")]
fn bytes16(a: __m256i, b: __m256i) -> __m128i {
    let ff = _mm256_set1_epi32(0xFF);
    let w = _mm256_packus_epi32(_mm256_and_si256(a, ff), _mm256_and_si256(b, ff));
    let w = _mm256_permute4x64_epi64::<0b11_01_10_00>(w);
    let bytes = _mm256_packus_epi16(w, w);
    _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b00_00_10_00>(bytes))
}

/// One plane with AVX2.
///
/// # Safety
/// The CPU must support AVX2. Lengths as [`plane_avx512`] (asserted).
#[target_feature(enable = "avx2")]
pub(super) unsafe fn plane_avx2(a: &PlaneArgs<'_>, buf: &[i32], out: &mut [u8]) {
    // SAFETY (all arms): the caller's contract, forwarded.
    unsafe {
        match (a.l.kw, a.l.tr, a.l.sx) {
            (3, 2, 1) => rows256::<3, 2, 1>(a, buf, out),
            (3, 2, 2) => rows256::<3, 2, 2>(a, buf, out),
            (5, 3, 1) => rows256::<5, 3, 1>(a, buf, out),
            (5, 3, 2) => rows256::<5, 3, 2>(a, buf, out),
            _ => rows256::<0, 0, 0>(a, buf, out),
        }
    }
}

/// The AVX2 loop, 16 outputs as two vectors; parameters as [`rows512`].
///
/// # Safety
/// As [`plane_avx2`].
#[target_feature(enable = "avx2")]
unsafe fn rows256<const KW: usize, const TR: usize, const SX: usize>(
    a: &PlaneArgs<'_>,
    buf: &[i32],
    out: &mut [u8],
) {
    let l = a.l;
    let kw = if KW > 0 { KW } else { l.kw };
    let tr = if TR > 0 { TR } else { l.tr };
    let sx = if SX > 0 { SX } else { l.sx };
    assert!(kw == l.kw && tr == l.tr && sx == l.sx);
    assert!(buf.len() >= l.len() && out.len() >= l.oh * l.ow);
    let k = RqConsts::new(a.rq, a.clamp);
    let bias = _mm256_set1_epi32(a.bias);
    for oy in 0..l.oh {
        let (j0, taps) = a.row(oy);
        let mut ox = 0;
        while ox < l.ow {
            let mut lo = bias;
            let mut hi = bias;
            for t in 0..tr {
                let rp = &buf[(j0 + t) * l.rw..][..l.rw];
                for kx in 0..kw {
                    let off = if sx == 1 {
                        ox + kx
                    } else {
                        (kx & 1) * l.half + ox + (kx >> 1)
                    };
                    let w = _mm256_set1_epi32(taps[t * kw + kx]);
                    // SAFETY: as in `rows512`, `off + 16 <= rw`.
                    let (v0, v1) = unsafe {
                        let p = rp.as_ptr().add(off) as *const __m256i;
                        (_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1)))
                    };
                    lo = _mm256_add_epi32(lo, _mm256_madd_epi16(v0, w));
                    hi = _mm256_add_epi32(hi, _mm256_madd_epi16(v1, w));
                }
            }
            let y = bytes16(rq256(&k, lo), rq256(&k, hi));
            let n = (l.ow - ox).min(LANES);
            let dst = &mut out[oy * l.ow + ox..][..n];
            if n == LANES {
                // SAFETY: `dst` holds 16 bytes.
                unsafe { _mm_storeu_si128(dst.as_mut_ptr() as *mut __m128i, y) };
            } else {
                let mut tmp = [0u8; LANES];
                // SAFETY: `tmp` holds 16 bytes.
                unsafe { _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, y) };
                dst.copy_from_slice(&tmp[..n]);
            }
            ox += LANES;
        }
    }
}

/// `dst[c] = pair(a[c - pl] - zp, b[c - pl] - zp)`, zero outside `pl..pl +
/// w` (a missing row gives zeros), 16 columns per step with masked loads.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and VL. `a` and `b` must hold `w`
/// bytes (asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn contiguous_avx512(
    inp: QInput,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    pl: usize,
    w: usize,
    dst: &mut [i32],
) {
    assert!(a.is_none_or(|r| r.len() >= w) && b.is_none_or(|r| r.len() >= w));
    let n = dst.len();
    let zp = _mm512_set1_epi32(inp.zero_point);
    let low = _mm512_set1_epi32(0xFFFF);
    let mut c = 0;
    while c < n {
        let lanes = (n - c).min(LANES);
        let lo = pl.saturating_sub(c).min(LANES);
        let hi = (pl + w).saturating_sub(c).min(lanes);
        let valid = if hi > lo {
            (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
        } else {
            0
        };
        let off = c as isize - pl as isize;
        let load = |r: Option<&[u8]>| match r {
            None => _mm512_setzero_si512(),
            Some(r) => {
                // SAFETY: only lanes in `valid` are read, and those are
                // columns `c + l` with `pl <= c + l < pl + w`, i.e. bytes
                // `0..w` of `r`; masked-off lanes touch no memory, so the
                // (wrapping) base may point outside `r`.
                let v = unsafe {
                    _mm_maskz_loadu_epi8(valid, r.as_ptr().wrapping_offset(off) as *const i8)
                };
                let v = if inp.signed {
                    _mm512_cvtepi8_epi32(v)
                } else {
                    _mm512_cvtepu8_epi32(v)
                };
                _mm512_maskz_sub_epi32(valid, v, zp)
            }
        };
        let (va, vb) = (load(a), load(b));
        let p = _mm512_or_si512(_mm512_and_si512(va, low), _mm512_slli_epi32::<16>(vb));
        // SAFETY: lanes `0..lanes` are elements `c..c + lanes <= n` of `dst`.
        unsafe {
            _mm512_mask_storeu_epi32(
                dst.as_mut_ptr().add(c) as *mut _,
                ((1u32 << lanes) - 1) as u16,
                p,
            )
        };
        c += LANES;
    }
}

/// `row[i] = tmp[2i]`, `row[half + i] = tmp[2i + 1]` for `i < half`.
///
/// # Safety
/// The CPU must support AVX-512 F. `tmp` must hold `half` rounded up to 16,
/// times 2, elements and `row` `2 * half` (asserted).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn split_avx512(tmp: &[i32], row: &mut [i32], half: usize) {
    assert!(tmp.len() >= 2 * half.div_ceil(LANES) * LANES && row.len() >= 2 * half);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let mut i = 0;
    while i < half {
        // SAFETY: `2i + 32 <= tmp.len()` (asserted, `i` a multiple of 16
        // below `half`); the masked stores write `i..i + n` and `half + i..
        // half + i + n` with `i + n <= half`, inside `row`.
        unsafe {
            let p0 = _mm512_loadu_si512(tmp.as_ptr().add(2 * i) as *const _);
            let p1 = _mm512_loadu_si512(tmp.as_ptr().add(2 * i + LANES) as *const _);
            let m = ((1u32 << (half - i).min(LANES)) - 1) as u16;
            let dst = row.as_mut_ptr();
            _mm512_mask_storeu_epi32(
                dst.add(i) as *mut _,
                m,
                _mm512_permutex2var_epi32(p0, even, p1),
            );
            _mm512_mask_storeu_epi32(
                dst.add(half + i) as *mut _,
                m,
                _mm512_permutex2var_epi32(p0, odd, p1),
            );
        }
        i += LANES;
    }
}
