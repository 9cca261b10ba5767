//! AVX-512 micro-kernel of the implicit-GEMM conv: up to 8 rows x 48 grid
//! columns (24 zmm accumulators), B loaded straight from the phase planes.

use core::arch::x86_64::*;

use super::{TileSegs, ROWS};
use crate::gemm::{avx512_act, VecAct};

/// Where and how a tile is stored.
pub(crate) struct Store<'a> {
    /// Row 0 of the tile's output channels (output index 0).
    pub y: *mut f32,
    /// Floats between output channels.
    pub ldc: usize,
    pub segs: &'a TileSegs,
    /// One value per row of the tile.
    pub bias: Option<&'a [f32]>,
    pub act: VecAct,
}

/// Computes `rows x (16 * vectors)` outputs; with `prefetch`, also
/// prefetches the next tile's input (prefetches never fault).
///
/// # Safety
/// The CPU must support AVX-512F. `a` holds `ROWS * k` floats; for every
/// depth `p < k`, `xb + koff[p] + 16 * v + j` is readable for `v <
/// vectors` and every lane `j` set in `lmask[v]`;
/// `st.y + r * st.ldc + seg.dst + lane` is writable for `r < rows` and every
/// lane set in a segment's mask, with no other access during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile(
    rows: usize,
    vectors: usize,
    k: usize,
    a: &[f32],
    koff: &[u32],
    xb: *const f32,
    lmask: &[u16; 3],
    prefetch: bool,
    st: &Store<'_>,
) {
    assert!(a.len() >= ROWS * k && koff.len() >= k && (1..=ROWS).contains(&rows));
    if let Some(b) = st.bias {
        assert!(b.len() >= rows);
    }
    macro_rules! go {
        ($v:literal) => {
            match rows {
                1 => kernel::<1, $v>(k, a, koff, xb, lmask, prefetch, st),
                2 => kernel::<2, $v>(k, a, koff, xb, lmask, prefetch, st),
                3 => kernel::<3, $v>(k, a, koff, xb, lmask, prefetch, st),
                4 => kernel::<4, $v>(k, a, koff, xb, lmask, prefetch, st),
                5 => kernel::<5, $v>(k, a, koff, xb, lmask, prefetch, st),
                6 => kernel::<6, $v>(k, a, koff, xb, lmask, prefetch, st),
                7 => kernel::<7, $v>(k, a, koff, xb, lmask, prefetch, st),
                _ => kernel::<8, $v>(k, a, koff, xb, lmask, prefetch, st),
            }
        };
    }
    // SAFETY: forwarded contract; lengths checked above.
    unsafe {
        match vectors {
            1 => go!(1),
            2 => go!(2),
            _ => go!(3),
        }
    }
}

/// # Safety
/// As [`tile`], with `R = rows` and `V = vectors`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel<const R: usize, const V: usize>(
    k: usize,
    a: &[f32],
    koff: &[u32],
    xb: *const f32,
    lmask: &[u16; 3],
    prefetch: bool,
    st: &Store<'_>,
) {
    // Plain loads when every lane is loaded (all but a last partial tile):
    // the branch is loop-invariant, so the loop is unswitched.
    let full = lmask.iter().all(|&m| m == u16::MAX);
    // Accumulators start at the bias; everything below indexes them with
    // constants only, so they stay in registers (no spill, no memset).
    let mut acc: [[__m512; V]; R] = core::array::from_fn(|r| {
        [st.bias
            .map_or(_mm512_setzero_ps(), |b| _mm512_set1_ps(b[r])); V]
    });
    let ap = a.as_ptr();
    // SAFETY: reads a[p*ROWS + r] (r < R <= ROWS, p < k) inside `a`, and
    // the lanes of xb[koff[p] + 16v..] in lmask[v], which the caller
    // guarantees readable (other lanes are not accessed).
    unsafe {
        for (p, &off) in koff[..k].iter().enumerate() {
            let bp = xb.wrapping_add(off as usize);
            if prefetch {
                // The next tile's part of this input row: with many rows
                // (channels) in flight the hardware prefetcher falls behind.
                for line in 0..3 {
                    _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(48 + 16 * line) as *const i8);
                }
            }
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = if full {
                    _mm512_loadu_ps(bp.wrapping_add(16 * v))
                } else {
                    _mm512_maskz_loadu_ps(lmask[v], bp.wrapping_add(16 * v))
                };
            }
            let arow = ap.add(p * ROWS);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*arow.add(r));
                for (c, bv) in row.iter_mut().zip(&b) {
                    *c = _mm512_fmadd_ps(av, *bv, *c);
                }
            }
        }
    }
    // The activation's match is hoisted out of the element loops (Relu and
    // Clip inline), which keeps the accumulators in registers.
    match st.act {
        VecAct::None => {}
        VecAct::Clamp { lo, hi } => {
            let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
            for row in acc.iter_mut() {
                for x in row.iter_mut() {
                    *x = _mm512_min_ps(_mm512_max_ps(*x, lo), hi);
                }
            }
        }
        act => {
            for row in acc.iter_mut() {
                for x in row.iter_mut() {
                    *x = avx512_act(act, *x);
                }
            }
        }
    }
    if let Some(start) = st.segs.contiguous {
        for (r, row) in acc.iter().enumerate() {
            let yr = st.y.wrapping_add(r * st.ldc).wrapping_offset(start);
            for (v, x) in row.iter().enumerate() {
                // SAFETY: the tile lies inside one output row, so every lane
                // of every vector is an output the caller lets us write.
                unsafe { _mm512_storeu_ps(yr.wrapping_add(16 * v), *x) };
            }
        }
        return;
    }
    for (r, row) in acc.iter().enumerate() {
        let yr = st.y.wrapping_add(r * st.ldc);
        for (v, x) in row.iter().enumerate() {
            for seg in &st.segs.segs[v][..st.segs.count[v]] {
                // SAFETY: the caller guarantees every masked lane of the
                // segment is writable; masked-off lanes are not accessed, so
                // the address may point outside `y` for them.
                unsafe { _mm512_mask_storeu_ps(yr.wrapping_offset(seg.dst), seg.mask, *x) };
            }
        }
    }
}

/// Where and how a pixel-major tile is stored.
pub(crate) struct StorePx<'a> {
    /// Output of the tile's first channel and first pixel.
    pub y: *mut f32,
    /// Floats between output channels (the plane size).
    pub osp: usize,
    /// Output channels of the tile that exist (the rest of the last
    /// 16-channel vector is padding).
    pub couts: usize,
    /// Bias of the tile's channels (at least `couts` values).
    pub bias: Option<&'a [f32]>,
    pub act: VecAct,
}

/// Pixel-major tile: `rows` output pixels (one input pointer each) by
/// `16 * vectors` output channels, vectorised over channels. Weights `w`
/// are 16-channel panels, `wstride` floats apart, depth-major inside
/// (`w[v * wstride + p * 16 + j]`); the input of pixel `r` at depth `p` is
/// `bases[r][koff[p]]`. Results are scattered to `y[c * osp + r]`.
///
/// # Safety
/// The CPU must support AVX-512F. `w + v * wstride` holds `16 * k` floats
/// for `v < vectors`; `bases[r] + koff[p]` is readable for `r < rows`,
/// `p < k`; `st.y + c * st.osp + r` is writable for `c < st.couts`,
/// `r < rows`, with no other access during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile_px(
    rows: usize,
    vectors: usize,
    k: usize,
    w: *const f32,
    wstride: usize,
    koff: &[u32],
    bases: &[*const f32; ROWS],
    st: &StorePx<'_>,
) {
    assert!(koff.len() >= k && (1..=ROWS).contains(&rows) && (1..=3).contains(&vectors));
    assert!(st.couts <= 16 * vectors && st.couts > 16 * (vectors - 1));
    assert!(16 * st.osp < i32::MAX as usize);
    if let Some(b) = st.bias {
        assert!(b.len() >= st.couts);
    }
    macro_rules! go {
        ($v:literal) => {
            match rows {
                1 => kernel_px::<1, $v>(k, w, wstride, koff, bases, st),
                2 => kernel_px::<2, $v>(k, w, wstride, koff, bases, st),
                3 => kernel_px::<3, $v>(k, w, wstride, koff, bases, st),
                4 => kernel_px::<4, $v>(k, w, wstride, koff, bases, st),
                5 => kernel_px::<5, $v>(k, w, wstride, koff, bases, st),
                6 => kernel_px::<6, $v>(k, w, wstride, koff, bases, st),
                7 => kernel_px::<7, $v>(k, w, wstride, koff, bases, st),
                _ => kernel_px::<8, $v>(k, w, wstride, koff, bases, st),
            }
        };
    }
    // SAFETY: forwarded contract; bounds checked above.
    unsafe {
        match vectors {
            1 => go!(1),
            2 => go!(2),
            _ => go!(3),
        }
    }
}

/// Lanes of channel vector `v` that exist.
#[inline(always)]
fn cout_mask(couts: usize, v: usize) -> u16 {
    let left = couts.saturating_sub(16 * v).min(16);
    ((1u32 << left) - 1) as u16
}

/// # Safety
/// As [`tile_px`], with `R = rows` and `V = vectors`.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn kernel_px<const R: usize, const V: usize>(
    k: usize,
    w: *const f32,
    wstride: usize,
    koff: &[u32],
    bases: &[*const f32; ROWS],
    st: &StorePx<'_>,
) {
    let bias: [__m512; V] = core::array::from_fn(|v| match st.bias {
        // SAFETY: masked to the `couts` values the bias holds.
        Some(b) => unsafe {
            _mm512_maskz_loadu_ps(cout_mask(st.couts, v), b.as_ptr().wrapping_add(16 * v))
        },
        None => _mm512_setzero_ps(),
    });
    let mut acc: [[__m512; V]; R] = [bias; R];
    let base: [*const f32; R] = core::array::from_fn(|r| bases[r]);
    // SAFETY: reads w[v * wstride + p * 16..][..16] and bases[r][koff[p]],
    // which the caller guarantees readable.
    unsafe {
        for (p, &off) in koff[..k].iter().enumerate() {
            let wp = w.add(p * 16);
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm512_loadu_ps(wp.add(v * wstride));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*base[r].add(off as usize));
                for (c, bv) in row.iter_mut().zip(&b) {
                    *c = _mm512_fmadd_ps(av, *bv, *c);
                }
            }
        }
    }
    let osp = st.osp as i32;
    let vindex = _mm512_mullo_epi32(
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
        _mm512_set1_epi32(osp),
    );
    for (r, row) in acc.iter().enumerate() {
        for (v, x) in row.iter().enumerate() {
            let x = avx512_act(st.act, *x);
            let at = st.y.wrapping_add(16 * v * st.osp + r);
            // SAFETY: lane j writes y[(16v + j) * osp + r] for existing
            // channels only (`cout_mask`), which the caller lets us write.
            unsafe { _mm512_mask_i32scatter_ps::<4>(at, cout_mask(st.couts, v), vindex, x) };
        }
    }
}

/// `dst[j] = src[2 j]` for every `j < dst.len()`: the stride-2 column
/// split of the phase planes, 16 outputs per two loads and a permute.
///
/// # Panics
/// If `src` is shorter than `2 * dst.len() - 1`.
#[target_feature(enable = "avx512f")]
pub(crate) fn copy_stride2(src: &[f32], dst: &mut [f32]) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    let need = 2 * n - 1;
    assert!(src.len() >= need, "copy_stride2: source too short");
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let (sp, dp) = (src.as_ptr(), dst.as_mut_ptr());
    let lanes = |avail: usize| -> u16 { ((1u32 << avail.min(16)) - 1) as u16 };
    let mut j = 0;
    while j < n {
        let s = 2 * j;
        // SAFETY: lane i of the two loads reads src[s + i] / src[s + 16 + i]
        // only when that index is below `need <= src.len()`; the store
        // writes dst[j + i] only for j + i < n.
        unsafe {
            let a = _mm512_maskz_loadu_ps(lanes(need.saturating_sub(s)), sp.add(s));
            let b =
                _mm512_maskz_loadu_ps(lanes(need.saturating_sub(s + 16)), sp.wrapping_add(s + 16));
            let v = _mm512_permutex2var_ps(a, even, b);
            _mm512_mask_storeu_ps(dp.add(j), lanes(n - j), v);
        }
        j += 16;
    }
}
