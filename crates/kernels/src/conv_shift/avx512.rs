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

/// Computes `rows x (16 * vectors)` outputs.
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
    st: &Store<'_>,
) {
    assert!(a.len() >= ROWS * k && koff.len() >= k && (1..=ROWS).contains(&rows));
    if let Some(b) = st.bias {
        assert!(b.len() >= rows);
    }
    macro_rules! go {
        ($v:literal) => {
            match rows {
                1 => kernel::<1, $v>(k, a, koff, xb, lmask, st),
                2 => kernel::<2, $v>(k, a, koff, xb, lmask, st),
                3 => kernel::<3, $v>(k, a, koff, xb, lmask, st),
                4 => kernel::<4, $v>(k, a, koff, xb, lmask, st),
                5 => kernel::<5, $v>(k, a, koff, xb, lmask, st),
                6 => kernel::<6, $v>(k, a, koff, xb, lmask, st),
                7 => kernel::<7, $v>(k, a, koff, xb, lmask, st),
                _ => kernel::<8, $v>(k, a, koff, xb, lmask, st),
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
    st: &Store<'_>,
) {
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
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm512_maskz_loadu_ps(lmask[v], bp.wrapping_add(16 * v));
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
    for row in acc.iter_mut() {
        for x in row.iter_mut() {
            *x = avx512_act(st.act, *x);
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
