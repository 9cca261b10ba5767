//! AVX2 + FMA micro-kernel: a 6x16 tile is 12 ymm accumulators, plus two
//! for the B row and one for the broadcast A value.

use core::arch::x86_64::*;

use super::micro::{TileEp, VecAct};
use super::{MR, NR};
use crate::vmath::avx2 as vmath;

/// `R x 16` tile; see [`super::micro::tile`].
///
/// # Safety
/// The CPU must support AVX2 and FMA; `a` holds `kc * MR` and `b` `kc * NR`
/// floats; `c` is valid for `R` rows of 16 floats at stride `ldc` with no
/// other access during the call; `ep.row_bias` has at least `R` values.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn kernel<const R: usize>(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &TileEp<'_>,
) {
    debug_assert!(a.len() >= kc * MR && b.len() >= kc * NR);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut ap = a.as_ptr();
    let mut bp = b.as_ptr();
    // SAFETY (whole block): each step reads MR floats of `a` and NR of `b`,
    // `kc` steps in all, within the lengths the caller guarantees; `c` rows
    // are in bounds per the contract.
    unsafe {
        for _ in 0..kc {
            let b0 = _mm256_loadu_ps(bp);
            let b1 = _mm256_loadu_ps(bp.add(8));
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm256_broadcast_ss(&*ap.add(i));
                row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                row[1] = _mm256_fmadd_ps(av, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        let alpha = _mm256_set1_ps(ep.alpha);
        let scale = ep.alpha != 1.0;
        let cb = ep.col_bias.map(|cb| {
            [
                _mm256_loadu_ps(cb.as_ptr()),
                _mm256_loadu_ps(cb.as_ptr().add(8)),
            ]
        });
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            let mut v = *row;
            for (h, x) in v.iter_mut().enumerate() {
                if scale {
                    *x = _mm256_mul_ps(*x, alpha);
                }
                if ep.load_c {
                    *x = _mm256_add_ps(*x, _mm256_loadu_ps(cp.add(8 * h)));
                }
                if let Some(rb) = ep.row_bias {
                    *x = _mm256_add_ps(*x, _mm256_set1_ps(*rb.get_unchecked(i)));
                }
                if let Some(cb) = &cb {
                    *x = _mm256_add_ps(*x, cb[h]);
                }
                *x = act(ep.act, *x);
                _mm256_storeu_ps(cp.add(8 * h), *x);
            }
        }
    }
}

/// The activation in registers; matches [`VecAct::apply`].
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn act(a: VecAct, x: __m256) -> __m256 {
    match a {
        VecAct::None => x,
        VecAct::Clamp { lo, hi } => {
            _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))
        }
        VecAct::Leaky { alpha } => {
            let neg = _mm256_mul_ps(x, _mm256_set1_ps(alpha));
            let ge = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_setzero_ps());
            _mm256_blendv_ps(neg, x, ge)
        }
        VecAct::HardSigmoid { alpha, beta } => {
            let y = _mm256_add_ps(
                _mm256_mul_ps(x, _mm256_set1_ps(alpha)),
                _mm256_set1_ps(beta),
            );
            _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1.0))
        }
        VecAct::HardSwish => {
            let y = _mm256_add_ps(
                _mm256_mul_ps(x, _mm256_set1_ps(1.0 / 6.0)),
                _mm256_set1_ps(0.5),
            );
            let y = _mm256_min_ps(_mm256_max_ps(y, _mm256_setzero_ps()), _mm256_set1_ps(1.0));
            _mm256_mul_ps(x, y)
        }
        VecAct::Sigmoid => vmath::sigmoid(x),
        VecAct::Tanh => vmath::tanh(x),
        VecAct::Swish { alpha } => vmath::swish(x, _mm256_set1_ps(alpha)),
    }
}
