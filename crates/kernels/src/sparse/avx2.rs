//! AVX2+FMA sparse kernels: the AVX-512 scheme of [`super::avx512`] on
//! 8-lane vectors, with strips of up to [`STRIP_V`] vectors (two
//! accumulator sets of four fill half of the 16 registers) and tails
//! through `maskload`/`maskstore`.

use core::arch::x86_64::*;
use core::ops::Range;

use super::{ColIndex, RowsRef};
use crate::gemm::{avx2_act, VecAct};

/// Lanes per vector.
const L: usize = 8;
/// Vectors per strip.
pub(crate) const STRIP_V: usize = 4;

/// Lane mask selecting the first `rem` (1..=8) lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn lane_mask(rem: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(rem as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

/// Floats of N per strip (every strip of a depth block of 128 rows of X
/// is 16 KB).
pub(crate) fn strip_floats() -> usize {
    STRIP_V * L
}

/// Rows `rows` of `Y = act(W X + bias)`; see [`super::avx512::spmm`]
/// (packed strips are rounded up to 8 floats here).
///
/// # Safety
/// AVX2 and FMA must be available; otherwise as [`super::avx512::spmm`].
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma")]
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
        let tail = lane_mask(width - (v - 1) * L);
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
                tail,
                xs,
                n,
            };
            // SAFETY (each arm): the caller's contract, and `j0 + width <= n`.
            match v {
                1 => strip::<I, 1>(w, &s, bias, act, xp, yp),
                2 => strip::<I, 2>(w, &s, bias, act, xp, yp),
                3 => strip::<I, 3>(w, &s, bias, act, xp, yp),
                _ => strip::<I, 4>(w, &s, bias, act, xp, yp),
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
    tail: __m256i,
    xs: usize,
    n: usize,
}

#[inline]
#[target_feature(enable = "avx2,fma")]
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
    let load = |p: *const f32, v: usize| {
        if v + 1 < V {
            _mm256_loadu_ps(p.add(v * L))
        } else {
            _mm256_maskload_ps(p.add(v * L), tail)
        }
    };
    for m in s.rows.clone() {
        let yr = y.add((m - r0) * n);
        let mut a0 = [_mm256_setzero_ps(); V];
        if s.block == 0 {
            a0 = [_mm256_set1_ps(bias.map_or(0.0, |b| *b.get_unchecked(m))); V];
        } else {
            for (v, a) in a0.iter_mut().enumerate() {
                *a = load(yr, v);
            }
        }
        let mut a1 = [_mm256_setzero_ps(); V];
        let (mut p, e) = (
            *kptr.get_unchecked(m * stride + s.block) as usize,
            *kptr.get_unchecked(m * stride + s.block + 1) as usize,
        );
        while p + 2 <= e {
            let w0 = _mm256_set1_ps(*vals.get_unchecked(p));
            let w1 = _mm256_set1_ps(*vals.get_unchecked(p + 1));
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            let x1 = x.add(cols.get_unchecked(p + 1).get() * xs);
            for v in 0..V {
                a0[v] = _mm256_fmadd_ps(w0, load(x0, v), a0[v]);
                a1[v] = _mm256_fmadd_ps(w1, load(x1, v), a1[v]);
            }
            p += 2;
        }
        if p < e {
            let w0 = _mm256_set1_ps(*vals.get_unchecked(p));
            let x0 = x.add(cols.get_unchecked(p).get() * xs);
            for (v, a) in a0.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(w0, load(x0, v), *a);
            }
        }
        for (v, (&a, &b)) in a0.iter().zip(&a1).enumerate() {
            let mut r = _mm256_add_ps(a, b);
            if s.last {
                r = avx2_act(act, r);
            }
            if v + 1 < V {
                _mm256_storeu_ps(yr.add(v * L), r);
            } else {
                _mm256_maskstore_ps(yr.add(v * L), tail, r);
            }
        }
    }
}

/// Eight column indices at `p` as i32 lanes.
///
/// # Safety
/// AVX2; 8 indices readable at `p`.
#[inline(always)]
unsafe fn load8<I: ColIndex>(p: *const I) -> __m256i {
    if core::mem::size_of::<I>() == 2 {
        _mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i))
    } else {
        _mm256_loadu_si256(p as *const __m256i)
    }
}

/// Sum of the 8 lanes.
#[inline]
#[target_feature(enable = "avx2,fma")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<1>(s, s));
    _mm_cvtss_f32(s)
}

/// `y[m] = act(W[m] . x + bias[m])`; see [`super::avx512::spmv`].
///
/// # Safety
/// AVX2 and FMA; otherwise as [`super::avx512::spmv`].
#[target_feature(enable = "avx2,fma")]
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
        let mut a0 = _mm256_setzero_ps();
        let mut a1 = _mm256_setzero_ps();
        let mut p = s;
        while p + 2 * L <= e {
            let g0 = _mm256_i32gather_ps::<4>(xp, load8(cols.as_ptr().add(p)));
            let g1 = _mm256_i32gather_ps::<4>(xp, load8(cols.as_ptr().add(p + L)));
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(vals.as_ptr().add(p)), g0, a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(vals.as_ptr().add(p + L)), g1, a1);
            p += 2 * L;
        }
        let mut sum = hsum(_mm256_add_ps(a0, a1));
        // Fewer than 16 left: scalar, in order.
        while p < e {
            sum += *vals.get_unchecked(p) * *xp.add(cols.get_unchecked(p).get());
            p += 1;
        }
        let b = bias.map_or(0.0, |b| *b.get_unchecked(m));
        *y.get_unchecked_mut(m - r0) = act.apply(sum + b);
    }
}
