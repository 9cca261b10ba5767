//! AVX2, exact: bytes are widened to i16 and multiplied pairwise into i32
//! by `vpmaddwd` (never `vpmaddubsw`, whose i16 sums saturate). A sub-tile
//! is 4 channels x 8 positions; each i32 lane holds half of a depth group
//! until the end, where `vphaddd` joins the halves.

use core::arch::x86_64::*;

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
