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
/// Bytes of Y rows kept in L1 while the depth blocks pass over them.
const GROUP_BYTES: usize = 12 * 1024;

/// Floats of N per strip. Measured against four vectors with depth
/// blocks of 256: the same on 7x7 and 14x14 maps, and fewer row
/// passes on wide ones.
pub(crate) fn strip_floats() -> usize {
    STRIP_V * L
}

/// Rows `rows` of `Y = act(W X + bias)` over every strip of N, depth
/// block by depth block. `y` starts at row `rows.start`. `x` is X itself
/// (`k x n`, row-major) or, when `packed`, X cut into strips of
/// [`strip_floats`] columns, strip `j0` stored as a `k x vpad` block at
/// `x[k * j0..]` with `vpad` its width rounded up to 16.
///
/// # Safety
/// AVX-512F must be available; `w` must satisfy the [`super::Csr`]
/// invariants with `k >= 1` columns; `x` must hold `k * n` floats (packed:
/// `k * n` rounded up to whole vectors per strip), `y` `rows.len() * n`,
/// and `bias` (if any) `rows.end` values.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f")]
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
    let sw = strip_floats();
    let mut j0 = 0;
    while j0 < n {
        let width = (n - j0).min(sw);
        let v = width.div_ceil(L);
        let rem = width - (v - 1) * L;
        let tail: __mmask16 = if rem == L { 0xFFFF } else { (1u16 << rem) - 1 };
        let (xp, xs) = if packed {
            (x.add(w.ncols * j0), v * L)
        } else {
            (x.add(j0), n)
        };
        // With several depth blocks, rows go in groups whose Y strip stays
        // in L1 next to the X block while every block passes over them.
        let group = if w.kblocks > 1 {
            (GROUP_BYTES / (4 * v * L)).max(1)
        } else {
            rows.len()
        };
        let mut g0 = rows.start;
        while g0 < rows.end {
            let g1 = (g0 + group).min(rows.end);
            let yp = y.as_mut_ptr().add((g0 - rows.start) * n + j0);
            for b in 0..w.kblocks {
                let s = Strip {
                    rows: g0..g1,
                    block: b,
                    last: b + 1 == w.kblocks,
                    tail,
                    xs,
                    n,
                };
                // SAFETY (each arm): the caller's contract; `j0 + width <=
                // n`, so every full vector lies inside its row of X (or of
                // the packed strip) and of Y.
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
            g0 = g1;
        }
        j0 += width;
    }
}

/// One depth block of one strip.
struct Strip {
    rows: Range<usize>,
    /// Depth block: the first starts from the bias, the others from the
    /// partial sums in Y.
    block: usize,
    /// The last depth block applies the activation.
    last: bool,
    /// Lanes of the strip's last vector.
    tail: __mmask16,
    /// Floats between rows of X.
    xs: usize,
    /// Floats between rows of Y.
    n: usize,
}

/// One depth block of a strip of `V` vectors (the last one masked) for
/// every row; `x` and `y` point at the strip's first column of X row 0 and
/// of Y row `rows.start`.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn strip<I: ColIndex, const V: usize>(
    w: &RowsRef<'_, I>,
    s: &Strip,
    bias: Option<&[f32]>,
    act: VecAct,
    x: *const f32,
    y: *mut f32,
) {
    let (kptr, cols, vals) = (w.kptr, w.cols, w.vals);
    let (xs, n) = (s.xs, s.n);
    let stride = w.kblocks + 1;
    let tail = s.tail;
    let r0 = s.rows.start;
    for m in s.rows.clone() {
        let yr = y.add((m - r0) * n);
        let mut a0 = [_mm512_setzero_ps(); V];
        if s.block == 0 {
            a0 = [_mm512_set1_ps(bias.map_or(0.0, |b| *b.get_unchecked(m))); V];
        } else {
            for (v, a) in a0.iter_mut().enumerate() {
                *a = _mm512_maskz_loadu_ps(if v + 1 < V { 0xFFFF } else { tail }, yr.add(v * L));
            }
        }
        let mut a1 = [_mm512_setzero_ps(); V];
        let (mut p, e) = (
            *kptr.get_unchecked(m * stride + s.block) as usize,
            *kptr.get_unchecked(m * stride + s.block + 1) as usize,
        );
        while p + 2 <= e {
            let w0 = _mm512_set1_ps(*vals.get_unchecked(p));
            let w1 = _mm512_set1_ps(*vals.get_unchecked(p + 1));
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            let x1 = x.add(cols.get_unchecked(p + 1).get() * xs);
            for v in 0..V {
                let (l0, l1) = if v + 1 < V {
                    (
                        _mm512_loadu_ps(x0.add(v * L)),
                        _mm512_loadu_ps(x1.add(v * L)),
                    )
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
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            for (v, a) in a0.iter_mut().enumerate() {
                let l0 = if v + 1 < V {
                    _mm512_loadu_ps(x0.add(v * L))
                } else {
                    _mm512_maskz_loadu_ps(tail, x0.add(v * L))
                };
                *a = _mm512_fmadd_ps(w0, l0, *a);
            }
        }
        for (v, (&a, &b)) in a0.iter().zip(&a1).enumerate() {
            let mut r = _mm512_add_ps(a, b);
            if s.last {
                r = avx512_act(act, r);
            }
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

/// `y[r] = act(W[r] . x + bias[r])` for the rows of row groups `groups`,
/// from the sliced-ELL form (see [`super::sell`]); `y` starts at row
/// `16 * groups.start`.
///
/// # Safety
/// AVX-512F; `w` built by `Sell::from_csr` (its slot pointers and in-block
/// indices are consistent); `x` holds `w.cols()` floats, `y` the rows of
/// `groups` (the last group may be partial), `bias` (if any) `w.rows()`.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn sell_gemv(
    w: &super::sell::Sell,
    groups: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    y: &mut [f32],
) {
    use super::sell::{CBLOCK, LANES};
    let (rows, cols, cb) = (w.rows(), w.cols(), w.cblocks());
    let (sp, idx, vals) = (w.slot_ptr.as_ptr(), w.idx.as_ptr(), w.vals.as_ptr());
    let yr0 = groups.start * LANES;
    for g in groups {
        let mut a0 = _mm512_setzero_ps();
        let mut a1 = _mm512_setzero_ps();
        for c in 0..cb {
            // The block's inputs; past K, zeros (no slot points there).
            let c0 = c * CBLOCK;
            let lo_n = (cols - c0).min(L);
            let hi_n = (cols - c0).saturating_sub(L).min(L);
            let mask = |n: usize| -> __mmask16 { ((1u32 << n) - 1) as u16 };
            let xlo = _mm512_maskz_loadu_ps(mask(lo_n), x.as_ptr().add(c0));
            let xhi = _mm512_maskz_loadu_ps(mask(hi_n), x.as_ptr().add(c0 + L));
            let (mut s, e) = (
                *sp.add(g * cb + c) as usize,
                *sp.add(g * cb + c + 1) as usize,
            );
            while s + 2 <= e {
                let i0 =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(idx.add(s * LANES) as *const __m128i));
                let i1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(
                    idx.add((s + 1) * LANES) as *const __m128i
                ));
                let g0 = _mm512_permutex2var_ps(xlo, i0, xhi);
                let g1 = _mm512_permutex2var_ps(xlo, i1, xhi);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.add(s * LANES)), g0, a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.add((s + 1) * LANES)), g1, a1);
                s += 2;
            }
            if s < e {
                let i0 =
                    _mm512_cvtepu8_epi32(_mm_loadu_si128(idx.add(s * LANES) as *const __m128i));
                let g0 = _mm512_permutex2var_ps(xlo, i0, xhi);
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(vals.add(s * LANES)), g0, a0);
            }
        }
        let r0 = g * LANES;
        let n = (rows - r0).min(LANES);
        let m: __mmask16 = ((1u32 << n) - 1) as u16;
        let b = match bias {
            Some(b) => _mm512_maskz_loadu_ps(m, b.as_ptr().add(r0)),
            None => _mm512_setzero_ps(),
        };
        let r = avx512_act(act, _mm512_add_ps(_mm512_add_ps(a0, a1), b));
        _mm512_mask_storeu_ps(y.as_mut_ptr().add(r0 - yr0), m, r);
    }
}
