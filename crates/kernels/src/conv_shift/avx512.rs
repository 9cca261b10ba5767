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
/// depth `p < k`, `xb + koff[p] + j` is readable for `j < 16 * vectors`;
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
    st: &Store<'_>,
) {
    assert!(a.len() >= ROWS * k && koff.len() >= k && (1..=ROWS).contains(&rows));
    if let Some(b) = st.bias {
        assert!(b.len() >= rows);
    }
    macro_rules! go {
        ($v:literal) => {
            match rows {
                1 => kernel::<1, $v>(k, a, koff, xb, st),
                2 => kernel::<2, $v>(k, a, koff, xb, st),
                3 => kernel::<3, $v>(k, a, koff, xb, st),
                4 => kernel::<4, $v>(k, a, koff, xb, st),
                5 => kernel::<5, $v>(k, a, koff, xb, st),
                6 => kernel::<6, $v>(k, a, koff, xb, st),
                7 => kernel::<7, $v>(k, a, koff, xb, st),
                _ => kernel::<8, $v>(k, a, koff, xb, st),
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
    st: &Store<'_>,
) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let ap = a.as_ptr();
    // SAFETY: reads a[p*ROWS + r] (r < R <= ROWS, p < k) inside `a`, and
    // xb[koff[p] + 16v + lane] which the caller guarantees readable.
    unsafe {
        for (p, &off) in koff[..k].iter().enumerate() {
            let bp = xb.add(off as usize);
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm512_loadu_ps(bp.add(16 * v));
            }
            let arow = ap.add(p * ROWS);
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*arow.add(r));
                for (c, bv) in row.iter_mut().zip(&b) {
                    *c = _mm512_fmadd_ps(av, *bv, *c);
                }
            }
        }
        store(&acc, st);
    }
}

/// Bias, activation and the masked stores of a finished tile.
///
/// # Safety
/// AVX-512F; the store contract of [`tile`].
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn store<const R: usize, const V: usize>(acc: &[[__m512; V]; R], st: &Store<'_>) {
    for (r, row) in acc.iter().enumerate() {
        let bias = st.bias.map(|b| _mm512_set1_ps(b[r]));
        let yr = st.y.wrapping_add(r * st.ldc);
        for (v, &x) in row.iter().enumerate() {
            let x = match bias {
                Some(b) => _mm512_add_ps(x, b),
                None => x,
            };
            let x = avx512_act(st.act, x);
            for seg in &st.segs.segs[v][..st.segs.count[v]] {
                // SAFETY: the caller guarantees every masked lane of the
                // segment is writable; masked-off lanes are not accessed, so
                // the address may point outside `y` for them.
                unsafe { _mm512_mask_storeu_ps(yr.wrapping_offset(seg.dst), seg.mask, x) };
            }
        }
    }
}
