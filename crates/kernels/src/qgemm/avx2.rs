//! AVX2, exact: bytes are widened to i16 and multiplied pairwise into i32
//! by `vpmaddwd` (never `vpmaddubsw`, whose i16 sums saturate). A sub-tile
//! is 4 channels x 8 positions; each i32 lane holds half of a depth group
//! until the end, where `vphaddd` joins the halves.

use core::arch::x86_64::*;

use super::epilogue::RowConsts;
use super::{KG, MR, NR};

/// Raw dot products of one weight panel and one activation panel.
///
/// # Safety
/// The CPU must support AVX2; `w` holds at least `groups * MR * KG` and `x`
/// `groups * NR * KG` bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn tile(groups: usize, w: &[i8], x: &[u8], acc: &mut [[i32; NR]; MR]) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG);
    for half in 0..MR / 4 {
        for sub in 0..NR / 8 {
            // SAFETY: forwarded contract; `half` and `sub` stay inside the
            // panels' rows.
            unsafe { sub_tile(groups, w, x, half, sub, acc) };
        }
    }
}

/// Channels `4 half..4 half + 4`, positions `8 sub..8 sub + 8`.
///
/// # Safety
/// As [`tile`], with `half < MR / 4` and `sub < NR / 8`.
#[target_feature(enable = "avx2")]
unsafe fn sub_tile(
    groups: usize,
    w: &[i8],
    x: &[u8],
    half: usize,
    sub: usize,
    acc: &mut [[i32; NR]; MR],
) {
    let mut lo = [_mm256_setzero_si256(); 4];
    let mut hi = [_mm256_setzero_si256(); 4];
    // SAFETY: group g reads x[g*128 + 32 sub..+32] and
    // w[g*32 + 16 half..+16], inside the caller's lengths.
    unsafe {
        let mut wp = w.as_ptr().add(16 * half);
        let mut xp = x.as_ptr().add(32 * sub);
        for _ in 0..groups {
            // Positions 0..4 and 4..8 of the sub-tile, 4 depth values each.
            let xl = _mm256_cvtepu8_epi16(_mm_loadu_si128(xp as *const _));
            let xh = _mm256_cvtepu8_epi16(_mm_loadu_si128(xp.add(16) as *const _));
            for r in 0..4 {
                let w4 = (wp.add(r * KG) as *const i32).read_unaligned();
                let wv = _mm256_cvtepi8_epi16(_mm_set1_epi32(w4));
                lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(xl, wv));
                hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(xh, wv));
            }
            wp = wp.add(MR * KG);
            xp = xp.add(NR * KG);
        }
        for r in 0..4 {
            // Lanes hold (position, half-group) pairs; hadd gives
            // [p0 p1 p4 p5 | p2 p3 p6 p7].
            let s = _mm256_hadd_epi32(lo[r], hi[r]);
            let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
            let out = acc[4 * half + r].as_mut_ptr().add(8 * sub);
            _mm256_storeu_si256(out as *mut _, s);
        }
    }
}

/// Requantizes a whole accumulator tile to bytes (`u8` or `i8` bits), 8
/// lanes at a time: SaturatingRoundingDoublingHighMul on exact 64-bit
/// products, then RoundingDivideByPOT as shift plus round-up test (AVX2
/// has no 64-bit arithmetic shift for [`RowConsts`]'s single division).
///
/// # Safety
/// The CPU must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn requant_tile(
    acc: &[[i32; NR]; MR],
    o: &RowConsts,
    colsum: Option<&[i32; NR]>,
    out: &mut [[u8; NR]; MR],
) {
    let nudge = _mm256_set1_epi64x(1 << 30);
    let (lo, hi) = (_mm256_set1_epi32(o.lo), _mm256_set1_epi32(o.hi));
    let zp = _mm256_set1_epi32(o.zp);
    // Low byte of each 32-bit lane, gathered into the low 8 bytes.
    let pick = _mm256_setr_epi8(
        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1, -1,
        -1, -1, -1, -1, -1, -1, -1, -1,
    );
    let join = _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1);
    for r in 0..o.mr.min(MR) {
        let e = (o.shift[r] - 31) as i32;
        let m = _mm256_set1_epi32(o.mult[r]);
        let off = _mm256_set1_epi32(o.off[r]);
        let wz = _mm256_set1_epi32(o.wz[r]);
        let ev = _mm256_set1_epi32(e);
        let mask = _mm256_set1_epi32(((1i64 << e) - 1) as i32);
        let half = _mm256_srli_epi32::<1>(mask);
        for h in 0..NR / 8 {
            // SAFETY: 8-lane loads and an 8-byte store inside rows of NR.
            unsafe {
                let mut v = _mm256_loadu_si256(acc[r].as_ptr().add(8 * h) as *const _);
                v = _mm256_add_epi32(v, off);
                if let Some(c) = colsum {
                    let c = _mm256_loadu_si256(c.as_ptr().add(8 * h) as *const _);
                    v = _mm256_sub_epi32(v, _mm256_mullo_epi32(c, wz));
                }
                let te = _mm256_add_epi64(_mm256_mul_epi32(v, m), nudge);
                let to = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64::<32>(v), m), nudge);
                // Bits 31..62 of each product: the (non-saturating) high mul.
                let y = _mm256_blend_epi32::<0xAA>(
                    _mm256_srli_epi64::<31>(te),
                    _mm256_slli_epi64::<1>(to),
                );
                let rem = _mm256_and_si256(y, mask);
                let thr = _mm256_sub_epi32(half, _mm256_srai_epi32::<31>(y));
                let q = _mm256_srav_epi32(y, ev);
                let q = _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, thr));
                let q = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q, lo), hi), zp);
                let b = _mm256_permutevar8x32_epi32(_mm256_shuffle_epi8(q, pick), join);
                let d = out[r].as_mut_ptr().add(8 * h) as *mut __m128i;
                _mm_storel_epi64(d, _mm256_castsi256_si128(b));
            }
        }
    }
}
