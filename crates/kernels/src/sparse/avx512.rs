//! AVX-512 sparse kernels.
//!
//! `spmm`: one output row at a time over a strip of up to [`STRIP_V`]
//! vectors of N, in two accumulator sets (even and odd nonzeros) so that
//! even a one-vector strip keeps two FMA chains in flight; the last
//! vector of a strip is a masked load and store, so any N runs without
//! scalar tails. `spmv`: sixteen nonzeros of a row per step, their inputs
//! gathered by column index, two accumulators, one horizontal sum per row.

use core::arch::x86_64::*;
use core::ops::Range;

use super::{ColIndex, RowsRef};
use crate::gemm::{avx512_act, VecAct};

/// Lanes per vector.
const L: usize = 16;
/// Vectors per strip: 8 (128 floats) measured best on the MobileNetV2
/// shapes (4 was 5-15% slower at large N; 16 accumulators plus the
/// broadcasts still fit the 32 registers).
pub(crate) const STRIP_V: usize = 8;

/// Rows `rows` of `Y = act(W X + bias)` over every strip of N. `y` starts
/// at row `rows.start`.
///
/// # Safety
/// AVX-512F must be available; `w` must satisfy the [`super::Csr`]
/// invariants with every column index `< k`; `x` must hold `k * n` floats,
/// `y` `rows.len() * n`, and `bias` (if any) `rows.end` values.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn spmm<I: ColIndex>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    let mut j0 = 0;
    while j0 < n {
        let width = (n - j0).min(STRIP_V * L);
        let v = width.div_ceil(L);
        let rem = width - (v - 1) * L;
        let tail: __mmask16 = if rem == L { 0xFFFF } else { (1u16 << rem) - 1 };
        let (xp, yp) = (x.as_ptr(), y.as_mut_ptr().add(j0));
        let r = rows.clone();
        // SAFETY (for each arm): the caller's contract, and `j0 + width <=
        // n` so every full vector of the strip lies inside its row.
        match v {
            1 => strip::<I, 1>(w, r, bias, act, xp, n, j0, tail, yp),
            2 => strip::<I, 2>(w, r, bias, act, xp, n, j0, tail, yp),
            3 => strip::<I, 3>(w, r, bias, act, xp, n, j0, tail, yp),
            4 => strip::<I, 4>(w, r, bias, act, xp, n, j0, tail, yp),
            5 => strip::<I, 5>(w, r, bias, act, xp, n, j0, tail, yp),
            6 => strip::<I, 6>(w, r, bias, act, xp, n, j0, tail, yp),
            7 => strip::<I, 7>(w, r, bias, act, xp, n, j0, tail, yp),
            _ => strip::<I, 8>(w, r, bias, act, xp, n, j0, tail, yp),
        }
        j0 += width;
    }
}

/// One strip of `V` vectors (the last one masked by `tail`) starting at
/// column `j0`, for every row of `rows`; `y` points at column `j0` of row
/// `rows.start`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn strip<I: ColIndex, const V: usize>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: *const f32,
    n: usize,
    j0: usize,
    tail: __mmask16,
    y: *mut f32,
) {
    let (ptr, cols, vals) = (w.ptr, w.cols, w.vals);
    let r0 = rows.start;
    for m in rows {
        let b = bias.map_or(0.0, |b| *b.get_unchecked(m));
        let mut a0 = [_mm512_set1_ps(b); V];
        let mut a1 = [_mm512_setzero_ps(); V];
        let (s, e) = (
            *ptr.get_unchecked(m) as usize,
            *ptr.get_unchecked(m + 1) as usize,
        );
        let mut p = s;
        while p + 2 <= e {
            let w0 = _mm512_set1_ps(*vals.get_unchecked(p));
            let w1 = _mm512_set1_ps(*vals.get_unchecked(p + 1));
            let x0 = x.add(cols.get_unchecked(p).get() * n + j0);
            let x1 = x.add(cols.get_unchecked(p + 1).get() * n + j0);
            for v in 0..V {
                let (l0, l1) = if v + 1 < V {
                    (_mm512_loadu_ps(x0.add(v * L)), _mm512_loadu_ps(x1.add(v * L)))
                } else {
                    (
                        _mm512_maskz_loadu_ps(tail, x0.add(v * L)),
                        _mm512_maskz_loadu_ps(tail, x1.add(v * L)),
                    )
                };
                a0[v] = _mm512_fmadd_ps(w0, l0, a0[v]);
                a1[v] = _mm512_fmadd_ps(w1, l1, a1[v]);
            }
            p += 2;
        }
        if p < e {
            let w0 = _mm512_set1_ps(*vals.get_unchecked(p));
            let x0 = x.add(cols.get_unchecked(p).get() * n + j0);
            for v in 0..V {
                let l0 = if v + 1 < V {
                    _mm512_loadu_ps(x0.add(v * L))
                } else {
                    _mm512_maskz_loadu_ps(tail, x0.add(v * L))
                };
                a0[v] = _mm512_fmadd_ps(w0, l0, a0[v]);
            }
        }
        let yr = y.add((m - r0) * n);
        for v in 0..V {
            let r = avx512_act(act, _mm512_add_ps(a0[v], a1[v]));
            if v + 1 < V {
                _mm512_storeu_ps(yr.add(v * L), r);
            } else {
                _mm512_mask_storeu_ps(yr.add(v * L), tail, r);
            }
        }
    }
}

/// Sixteen column indices at `p` as i32 lanes (`ColIndex` is only `u16`
/// or `u32`, told apart by size at compile time).
///
/// # Safety
/// AVX-512F; 16 indices readable at `p`.
#[inline(always)]
unsafe fn load16<I: ColIndex>(p: *const I) -> __m512i {
    if core::mem::size_of::<I>() == 2 {
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(p as *const __m256i))
    } else {
        _mm512_loadu_si512(p as *const _)
    }
}

/// `y[m] = act(W[m] . x + bias[m])` for `m` in `rows`; `y` starts at row
/// `rows.start`.
///
/// # Safety
/// AVX-512F; `w` satisfies the [`super::Csr`] invariants with every
/// column index `< x.len()` (and `x.len() < 2^31`); `y` holds
/// `rows.len()` floats, `bias` (if any) `rows.end`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn spmv<I: ColIndex>(
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    y: &mut [f32],
) {
    let (ptr, cols, vals) = (w.ptr, w.cols, w.vals);
    let xp = x.as_ptr();
    let r0 = rows.start;
    for m in rows {
        let (s, e) = (
            *ptr.get_unchecked(m) as usize,
            *ptr.get_unchecked(m + 1) as usize,
        );
        let mut a0 = _mm512_setzero_ps();
        let mut a1 = _mm512_setzero_ps();
        let mut p = s;
        while p + 2 * L <= e {
            let g0 = _mm512_i32gather_ps::<4>(load16(cols.as_ptr().add(p)), xp);
            let g1 = _mm512_i32gather_ps::<4>(load16(cols.as_ptr().add(p + L)), xp);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.as_ptr().add(p)), g0, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.as_ptr().add(p + L)), g1, a1);
            p += 2 * L;
        }
        if p + L <= e {
            let g0 = _mm512_i32gather_ps::<4>(load16(cols.as_ptr().add(p)), xp);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.as_ptr().add(p)), g0, a0);
            p += L;
        }
        if p < e {
            // The last few nonzeros: indices copied to a zero-padded block,
            // their lanes gathered under a mask so padding reads nothing.
            let rem = e - p;
            let mut idx = [0i32; L];
            for (i, d) in idx.iter_mut().take(rem).enumerate() {
                *d = cols.get_unchecked(p + i).get() as i32;
            }
            let k: __mmask16 = (1u16 << rem) - 1;
            let vi = _mm512_loadu_si512(idx.as_ptr() as *const _);
            let g = _mm512_mask_i32gather_ps::<4>(_mm512_setzero_ps(), k, vi, xp);
            let wv = _mm512_maskz_loadu_ps(k, vals.as_ptr().add(p));
            a1 = _mm512_fmadd_ps(wv, g, a1);
        }
        let b = bias.map_or(0.0, |b| *b.get_unchecked(m));
        let sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + b;
        *y.get_unchecked_mut(m - r0) = act.apply(sum);
    }
}
