//! NEON sparse kernel (aarch64 baseline): the wide kernel of
//! [`super::avx512`] on 4-lane vectors, strips of up to [`STRIP_V`]
//! vectors in two accumulator sets (16 of the 32 registers). NEON has no
//! masked loads, so X is always read from strips padded to whole vectors
//! (`spmm` packs it when N is not a multiple of 4), and a strip's partial
//! last vector is stored through a small buffer. The activation runs on
//! the stored strip.

use core::arch::aarch64::*;
use core::ops::Range;

use super::{ColIndex, RowsRef};
use crate::gemm::VecAct;

/// Lanes per vector.
const L: usize = 4;
/// Vectors per strip.
const STRIP_V: usize = 8;

/// Floats of N per strip.
pub(crate) fn strip_floats() -> usize {
    STRIP_V * L
}

/// Rows `rows` of `Y = act(W X + bias)`; see [`super::avx512::spmm`]
/// (packed strips are rounded up to 4 floats here).
///
/// # Safety
/// As [`super::avx512::spmm`], with NEON instead of AVX-512, and X
/// readable in whole vectors: `packed`, or `n` a multiple of 4.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "neon")]
pub(crate) unsafe fn spmm<I: ColIndex>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: *const f32,
    packed: bool,
    n: usize,
    y: &mut [f32],
) {
    let mut j0 = 0;
    while j0 < n {
        let width = (n - j0).min(strip_floats());
        let v = width.div_ceil(L);
        let (xp, xs) = if packed {
            (x.add(w.ncols * j0), v * L)
        } else {
            (x.add(j0), n)
        };
        let yp = y.as_mut_ptr().add(j0);
        for b in 0..w.kblocks {
            let s = Strip {
                rows: rows.clone(),
                block: b,
                last: b + 1 == w.kblocks,
                width,
                xs,
                n,
            };
            // SAFETY (each arm): the caller's contract, and `j0 + width <= n`.
            match v {
                1 => strip::<I, 1>(w, &s, bias, act, xp, yp),
                2 => strip::<I, 2>(w, &s, bias, act, xp, yp),
                3 => strip::<I, 3>(w, &s, bias, act, xp, yp),
                4 => strip::<I, 4>(w, &s, bias, act, xp, yp),
                5 => strip::<I, 5>(w, &s, bias, act, xp, yp),
                6 => strip::<I, 6>(w, &s, bias, act, xp, yp),
                7 => strip::<I, 7>(w, &s, bias, act, xp, yp),
                _ => strip::<I, 8>(w, &s, bias, act, xp, yp),
            }
        }
        j0 += width;
    }
}

/// One depth block of one strip; see `avx512::Strip`.
struct Strip {
    rows: Range<usize>,
    block: usize,
    last: bool,
    /// Floats of the strip (the last vector holds `width - 4 (V - 1)`).
    width: usize,
    xs: usize,
    n: usize,
}

#[inline]
#[target_feature(enable = "neon")]
unsafe fn strip<I: ColIndex, const V: usize>(
    w: &RowsRef<'_, I>,
    s: &Strip,
    bias: Option<&[f32]>,
    act: VecAct,
    x: *const f32,
    y: *mut f32,
) {
    let (kptr, cols, vals) = (w.kptr, w.cols, w.vals);
    let stride = w.kblocks + 1;
    let (xs, n, width) = (s.xs, s.n, s.width);
    let rem = width - (V - 1) * L;
    let r0 = s.rows.start;
    for m in s.rows.clone() {
        let yr = y.add((m - r0) * n);
        let mut a0 = [vdupq_n_f32(0.0); V];
        if s.block == 0 {
            a0 = [vdupq_n_f32(bias.map_or(0.0, |b| *b.get_unchecked(m))); V];
        } else {
            for (v, a) in a0.iter_mut().enumerate() {
                *a = if v + 1 < V || rem == L {
                    vld1q_f32(yr.add(v * L))
                } else {
                    let mut t = [0.0f32; L];
                    core::ptr::copy_nonoverlapping(yr.add(v * L), t.as_mut_ptr(), rem);
                    vld1q_f32(t.as_ptr())
                };
            }
        }
        let mut a1 = [vdupq_n_f32(0.0); V];
        let (mut p, e) = (
            *kptr.get_unchecked(m * stride + s.block) as usize,
            *kptr.get_unchecked(m * stride + s.block + 1) as usize,
        );
        while p + 2 <= e {
            let w0 = vdupq_n_f32(*vals.get_unchecked(p));
            let w1 = vdupq_n_f32(*vals.get_unchecked(p + 1));
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            let x1 = x.add(cols.get_unchecked(p + 1).get() * xs);
            for v in 0..V {
                a0[v] = vfmaq_f32(a0[v], w0, vld1q_f32(x0.add(v * L)));
                a1[v] = vfmaq_f32(a1[v], w1, vld1q_f32(x1.add(v * L)));
            }
            p += 2;
        }
        if p < e {
            let w0 = vdupq_n_f32(*vals.get_unchecked(p));
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            for (v, a) in a0.iter_mut().enumerate() {
                *a = vfmaq_f32(*a, w0, vld1q_f32(x0.add(v * L)));
            }
        }
        for (v, (&a, &b)) in a0.iter().zip(&a1).enumerate() {
            let r = vaddq_f32(a, b);
            if v + 1 < V || rem == L {
                vst1q_f32(yr.add(v * L), r);
            } else {
                let mut t = [0.0f32; L];
                vst1q_f32(t.as_mut_ptr(), r);
                core::ptr::copy_nonoverlapping(t.as_ptr(), yr.add(v * L), rem);
            }
        }
        if s.last && act != VecAct::None {
            for o in core::slice::from_raw_parts_mut(yr, width) {
                *o = act.apply(*o);
            }
        }
    }
}
