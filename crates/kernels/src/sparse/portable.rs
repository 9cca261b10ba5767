//! Portable sparse kernels in plain Rust (the compiler vectorises the strip
//! loop): the reference the SIMD kernels are tested against, and the path
//! on CPUs without them.

use core::ops::Range;

use super::{ColIndex, RowsRef};
use crate::gemm::VecAct;

/// Floats of N per strip: the X strip of a 1000-deep layer (256 KB) stays
/// in L2.
// aarch64 always runs the NEON kernel.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
const STRIP: usize = 64;

/// Rows `rows` of `Y = act(W X + bias)`; `y` starts at row `rows.start`.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) fn spmm<I: ColIndex>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let r0 = rows.start;
    for j0 in (0..n).step_by(STRIP) {
        let wd = STRIP.min(n - j0);
        for m in rows.clone() {
            let yr = &mut y[(m - r0) * n + j0..][..wd];
            yr.fill(bias.map_or(0.0, |b| b[m]));
            let (s, e) = (w.ptr[m] as usize, w.ptr[m + 1] as usize);
            for (&v, &c) in w.vals[s..e].iter().zip(&w.cols[s..e]) {
                let xr = &x[c.get() * n + j0..][..wd];
                for (o, &xv) in yr.iter_mut().zip(xr) {
                    *o += v * xv;
                }
            }
            yr.iter_mut().for_each(|o| *o = act.apply(*o));
        }
    }
}

/// `y[m] = act(W[m] . x + bias[m])` for `m` in `rows`; `y` starts at row
/// `rows.start`.
pub(crate) fn spmv<I: ColIndex>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    y: &mut [f32],
) {
    let r0 = rows.start;
    for m in rows {
        let (s, e) = (w.ptr[m] as usize, w.ptr[m + 1] as usize);
        // Four partial sums break the add chain.
        let mut acc = [0.0f32; 4];
        let (vals, cols) = (&w.vals[s..e], &w.cols[s..e]);
        for (vq, cq) in vals.chunks(4).zip(cols.chunks(4)) {
            for ((a, &v), &c) in acc.iter_mut().zip(vq).zip(cq) {
                *a += v * x[c.get()];
            }
        }
        let sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        y[m - r0] = act.apply(sum + bias.map_or(0.0, |b| b[m]));
    }
}
