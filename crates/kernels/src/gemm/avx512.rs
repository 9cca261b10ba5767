//! AVX-512F micro-kernel: a 6x32 tile over two adjacent 16-column B
//! panels, in 12 zmm accumulators. It reads the same packed layout as the
//! AVX2 kernel, so pre-packed weights serve both.

use core::arch::x86_64::*;

use super::micro::{TileEp, VecAct};
use super::{MR, NR};
use crate::vmath::avx512 as vmath;

/// `R x 32` tile; `b` holds panel 0 (`kc * NR`) then panel 1.
///
/// # Safety
/// The CPU must support AVX-512F; `a` holds `kc * MR` and `b` `2 * kc * NR`
/// floats; `c` is valid for `R` rows of 32 floats at stride `ldc` with no
/// other access during the call; `ep.row_bias` has at least `R` values and
/// `ep.col_bias` at least 32.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn kernel<const R: usize>(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &TileEp<'_>,
) {
    debug_assert!(a.len() >= kc * MR && b.len() >= 2 * kc * NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let mut ap = a.as_ptr();
    let mut bp = b.as_ptr();
    // SAFETY (whole block): step p reads a[p*MR..p*MR+R], b[p*NR..+16]
    // and b[kc*NR + p*NR..+16], inside the lengths the caller guarantees;
    // `c` rows are in bounds per the contract.
    unsafe {
        let second = kc * NR;
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(second));
            for (i, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*ap.add(i));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        store(&acc, c, ldc, ep);
    }
}

/// `12 x 32` tile from two adjacent A panels (`a` holds `2 * kc * MR`
/// floats) and two adjacent B panels: 24 accumulators.
///
/// # Safety
/// As [`kernel`] with 12 rows, and `a` twice as long.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn kernel12(
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &TileEp<'_>,
) {
    debug_assert!(a.len() >= 2 * kc * MR && b.len() >= 2 * kc * NR);
    let mut acc = [[_mm512_setzero_ps(); 2]; 2 * MR];
    let mut ap = a.as_ptr();
    let mut bp = b.as_ptr();
    // SAFETY (whole block): step p reads a[p*MR..+MR], a[kc*MR + p*MR..+MR],
    // b[p*NR..+16] and b[kc*NR + p*NR..+16], inside the caller's lengths;
    // `c` rows are in bounds per the contract.
    unsafe {
        let (a2, b2) = (kc * MR, kc * NR);
        for _ in 0..kc {
            let b0 = _mm512_loadu_ps(bp);
            let b1 = _mm512_loadu_ps(bp.add(b2));
            // Rows 0..6 come from the first A panel, 6..12 from the second.
            for (i, row) in acc.iter_mut().enumerate() {
                let off = if i < MR { i } else { a2 + i - MR };
                let av = _mm512_set1_ps(*ap.add(off));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
            ap = ap.add(MR);
            bp = bp.add(NR);
        }
        store(&acc, c, ldc, ep);
    }
}

/// The epilogue of a `R x 32` tile.
///
/// # Safety
/// AVX-512F; `c` valid for `R` rows of 32 floats at stride `ldc`;
/// `ep.row_bias` has `R` values and `ep.col_bias` 32.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store<const R: usize>(acc: &[[__m512; 2]; R], c: *mut f32, ldc: usize, ep: &TileEp<'_>) {
    // SAFETY: per the contract above.
    unsafe {
        let alpha = _mm512_set1_ps(ep.alpha);
        let scale = ep.alpha != 1.0;
        let cb = ep.col_bias.map(|cb| {
            [
                _mm512_loadu_ps(cb.as_ptr()),
                _mm512_loadu_ps(cb.as_ptr().add(16)),
            ]
        });
        for (i, row) in acc.iter().enumerate() {
            let cp = c.add(i * ldc);
            for (h, &x) in row.iter().enumerate() {
                let mut x = x;
                if scale {
                    x = _mm512_mul_ps(x, alpha);
                }
                if ep.load_c {
                    x = _mm512_add_ps(x, _mm512_loadu_ps(cp.add(16 * h)));
                }
                if let Some(rb) = ep.row_bias {
                    x = _mm512_add_ps(x, _mm512_set1_ps(*rb.get_unchecked(i)));
                }
                if let Some(cb) = &cb {
                    x = _mm512_add_ps(x, cb[h]);
                }
                _mm512_storeu_ps(cp.add(16 * h), act(ep.act, x));
            }
        }
    }
}

/// The activation in registers; matches [`VecAct::apply`].
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn act(a: VecAct, x: __m512) -> __m512 {
    let zero = _mm512_setzero_ps();
    let one = _mm512_set1_ps(1.0);
    match a {
        VecAct::None => x,
        VecAct::Clamp { lo, hi } => {
            _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))
        }
        VecAct::Leaky { alpha } => {
            let neg = _mm512_mul_ps(x, _mm512_set1_ps(alpha));
            let ge = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, zero);
            _mm512_mask_blend_ps(ge, neg, x)
        }
        VecAct::HardSigmoid { alpha, beta } => {
            let y = _mm512_add_ps(
                _mm512_mul_ps(x, _mm512_set1_ps(alpha)),
                _mm512_set1_ps(beta),
            );
            _mm512_min_ps(_mm512_max_ps(y, zero), one)
        }
        VecAct::HardSwish => {
            let y = _mm512_add_ps(
                _mm512_mul_ps(x, _mm512_set1_ps(1.0 / 6.0)),
                _mm512_set1_ps(0.5),
            );
            _mm512_mul_ps(x, _mm512_min_ps(_mm512_max_ps(y, zero), one))
        }
        VecAct::Sigmoid => vmath::sigmoid(x),
        VecAct::Tanh => vmath::tanh(x),
        VecAct::Swish { alpha } => vmath::swish(x, _mm512_set1_ps(alpha)),
    }
}
