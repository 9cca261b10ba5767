//! AVX-512 VNNI: one 64-byte load holds 32 channels x 4 depth values as
//! nibbles; two `vpshufb` table lookups sign-extend them into two zmm of
//! int8 weights (channels 0..16 and 16..32), and `vpdpbusd` multiplies them
//! by 4 broadcast activation bytes per position. The per-block float update
//! runs in registers with the same operations as the scalar one.

use core::arch::x86_64::*;

use super::kernel::NIBBLE_LUT;
use super::{KG, MP, NC};

/// The whole micro-kernel (see [`super::kernel::tile`]).
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and VNNI; `w` holds `nb * gpb * 64`
/// bytes, `sums` and `scales` `nb * NC` values, `x` `nb * gpb * KG * MP`
/// bytes.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn tile(
    nb: usize,
    gpb: usize,
    w: &[u8],
    sums: &[i32],
    scales: &[f32],
    x: &[u8],
    x_zp: i32,
    f: &mut [[f32; NC]; MP],
) {
    debug_assert!(w.len() >= nb * gpb * 64 && x.len() >= nb * gpb * KG * MP);
    debug_assert!(sums.len() >= nb * NC && scales.len() >= nb * NC);
    // SAFETY: the table is 16 readable bytes.
    let lut = _mm512_broadcast_i32x4(unsafe { _mm_loadu_si128(NIBBLE_LUT.as_ptr() as *const _) });
    let m4 = _mm512_set1_epi8(0x0F);
    let zp = _mm512_set1_epi32(x_zp);
    let mut fa = [[_mm512_setzero_ps(); 2]; MP];
    // SAFETY: block b, group g reads w[(b gpb + g) 64..+64] and
    // x[(b gpb + g) 16..+16], sums/scales[b NC..+NC]: inside the lengths
    // the caller guarantees; all loads are unaligned.
    unsafe {
        let (mut wp, mut xp) = (w.as_ptr(), x.as_ptr());
        for b in 0..nb {
            let mut a = [[_mm512_setzero_si512(); 2]; MP];
            for _ in 0..gpb {
                let v = _mm512_loadu_si512(wp as *const _);
                let lo = _mm512_shuffle_epi8(lut, _mm512_and_si512(v, m4));
                let hi = _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16::<4>(v), m4));
                for (j, aj) in a.iter_mut().enumerate() {
                    let xb = _mm512_set1_epi32((xp.add(j * KG) as *const i32).read_unaligned());
                    aj[0] = _mm512_dpbusd_epi32(aj[0], xb, lo);
                    aj[1] = _mm512_dpbusd_epi32(aj[1], xb, hi);
                }
                wp = wp.add(NC * KG / 2);
                xp = xp.add(KG * MP);
            }
            let s = sums.as_ptr().add(b * NC);
            let sc = scales.as_ptr().add(b * NC);
            for h in 0..2 {
                let corr = _mm512_mullo_epi32(zp, _mm512_loadu_si512(s.add(16 * h) as *const _));
                let scale = _mm512_loadu_ps(sc.add(16 * h));
                for (fj, aj) in fa.iter_mut().zip(&a) {
                    let i = _mm512_cvtepi32_ps(_mm512_sub_epi32(aj[h], corr));
                    fj[h] = _mm512_add_ps(fj[h], _mm512_mul_ps(i, scale));
                }
            }
        }
        for (fj, out) in fa.iter().zip(f.iter_mut()) {
            _mm512_storeu_ps(out.as_mut_ptr(), fj[0]);
            _mm512_storeu_ps(out.as_mut_ptr().add(16), fj[1]);
        }
    }
}
