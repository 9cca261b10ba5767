//! AVX2, exact: nibbles are sign-extended by `vpshufb`, widened to i16 and
//! multiplied pairwise into i32 by `vpmaddwd` (never `vpmaddubsw`, whose i16
//! sums saturate). Each i32 lane holds half a depth group of one channel
//! until the end of the block, where `vphaddd` joins the halves.

use core::arch::x86_64::*;

use super::kernel::NIBBLE_LUT;
use super::{KG, MP, NC};

/// `acc[j][r] = sum_k x(k, j) * w(r, k)` over one block of `gpb` groups.
///
/// # Safety
/// The CPU must support AVX2; `w` holds `gpb * 64` and `x` `gpb * KG * MP`
/// bytes.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn block(gpb: usize, w: &[u8], x: &[u8], acc: &mut [[i32; NC]; MP]) {
    debug_assert!(w.len() >= gpb * 64 && x.len() >= gpb * KG * MP);
    // SAFETY: the table is 16 readable bytes.
    let lut =
        _mm256_broadcastsi128_si256(unsafe { _mm_loadu_si128(NIBBLE_LUT.as_ptr() as *const _) });
    let m4 = _mm256_set1_epi8(0x0F);
    for (j, out) in acc.iter_mut().enumerate() {
        // Channel octet o (channels 8o..8o+8) as two i16 vectors of 4
        // channels x 4 depth: 8 accumulators of (channel, half-group).
        let mut a = [_mm256_setzero_si256(); 8];
        // SAFETY: group g reads w[64 g..64 g + 64] and x[16 g + 4 j..+4],
        // inside the caller's lengths.
        unsafe {
            for g in 0..gpb {
                let x4 = (x.as_ptr().add(g * KG * MP + j * KG) as *const i32).read_unaligned();
                let xv = _mm256_cvtepu8_epi16(_mm_set1_epi32(x4));
                for half in 0..2 {
                    let v = _mm256_loadu_si256(w.as_ptr().add(64 * g + 32 * half) as *const _);
                    let lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, m4));
                    let hi =
                        _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16::<4>(v), m4));
                    // lo: channels 8 half..+8; hi: channels 16 + 8 half..+8.
                    for (nib, q) in [lo, hi].into_iter().enumerate() {
                        let o = 2 * nib + half;
                        let w0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
                        let w1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(q));
                        a[2 * o] = _mm256_add_epi32(a[2 * o], _mm256_madd_epi16(w0, xv));
                        a[2 * o + 1] = _mm256_add_epi32(a[2 * o + 1], _mm256_madd_epi16(w1, xv));
                    }
                }
            }
            for o in 0..4 {
                // Lanes are (channel, half) pairs; hadd gives
                // [c0 c1 c4 c5 | c2 c3 c6 c7].
                let s = _mm256_hadd_epi32(a[2 * o], a[2 * o + 1]);
                let s = _mm256_permute4x64_epi64::<0b11_01_10_00>(s);
                _mm256_storeu_si256(out.as_mut_ptr().add(8 * o) as *mut _, s);
            }
        }
    }
}
