//! The register-blocked micro-kernel: an `R x NR` tile of C (R <= MR) from
//! one A panel and one B panel, with the epilogue applied before the store.

use super::{Isa, MR, NR};
use crate::vmath::{self, MathIsa};
use crate::Activation;

/// The part of an activation that SIMD code applies in registers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum VecAct {
    None,
    /// min(max(x, lo), hi): Relu and Clip.
    Clamp {
        lo: f32,
        hi: f32,
    },
    Leaky {
        alpha: f32,
    },
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    /// Through [`crate::vmath`]'s `exp`.
    Sigmoid,
    Tanh,
    Swish {
        alpha: f32,
    },
}

/// Splits an activation into what kernels running on `isa` do in registers
/// and whether a pass over the stored tile (`Activation::apply_slice`) must
/// follow.
pub(crate) fn split_act(isa: Isa, act: Activation) -> (VecAct, bool) {
    match act {
        Activation::None => (VecAct::None, false),
        Activation::Relu => (
            VecAct::Clamp {
                lo: 0.0,
                hi: f32::INFINITY,
            },
            false,
        ),
        Activation::Clip { min, max } => (VecAct::Clamp { lo: min, hi: max }, false),
        Activation::LeakyRelu { alpha } => (VecAct::Leaky { alpha }, false),
        Activation::HardSigmoid { alpha, beta } => (VecAct::HardSigmoid { alpha, beta }, false),
        Activation::HardSwish => (VecAct::HardSwish, false),
        // The x86 SIMD kernels apply these in registers; the portable
        // kernels would call the scalar formula per element, so they leave
        // them to the pass over the stored tile, which is vectorised
        // wherever the CPU allows (NEON on aarch64).
        Activation::Sigmoid if isa.is_avx2() => (VecAct::Sigmoid, false),
        Activation::Tanh if isa.is_avx2() => (VecAct::Tanh, false),
        Activation::Swish { alpha } if isa.is_avx2() => (VecAct::Swish { alpha }, false),
        // Any activation without a vector form (including ones added
        // later) takes the pass after the store.
        _ => (VecAct::None, true),
    }
}

impl VecAct {
    /// Scalar form: the activation's own formula. Bit-compatible with the
    /// SIMD form up to FMA contraction, except Sigmoid, Tanh and Swish,
    /// whose SIMD forms agree with it within a few ulp (see
    /// [`crate::vmath`]).
    #[inline(always)]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            VecAct::None => x,
            VecAct::Clamp { lo, hi } => Activation::Clip { min: lo, max: hi }.apply(x),
            VecAct::Leaky { alpha } => Activation::LeakyRelu { alpha }.apply(x),
            VecAct::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta }.apply(x),
            VecAct::HardSwish => Activation::HardSwish.apply(x),
            VecAct::Sigmoid => Activation::Sigmoid.apply(x),
            VecAct::Tanh => Activation::Tanh.apply(x),
            VecAct::Swish { alpha } => Activation::Swish { alpha }.apply(x),
        }
    }

    /// [`VecAct::apply`] on a slice, with the `exp`-based forms on the best
    /// [`MathIsa`].
    pub(crate) fn apply_slice(self, xs: &mut [f32]) {
        match self {
            VecAct::None => {}
            VecAct::Sigmoid => vmath::sigmoid(MathIsa::detect(), xs),
            VecAct::Tanh => vmath::tanh(MathIsa::detect(), xs),
            VecAct::Swish { alpha } => vmath::swish(MathIsa::detect(), alpha, xs),
            _ => xs.iter_mut().for_each(|x| *x = self.apply(*x)),
        }
    }
}

/// What happens to a tile between the products and the store:
/// `C = act(alpha * AB + (load_c ? C : 0) + row_bias + col_bias)`.
#[derive(Clone, Copy)]
pub(crate) struct TileEp<'a> {
    pub alpha: f32,
    pub load_c: bool,
    /// Bias of the tile's rows (at least R values).
    pub row_bias: Option<&'a [f32]>,
    /// Bias of the tile's columns (NR, or 2 NR for the wide tile).
    pub col_bias: Option<&'a [f32]>,
    pub act: VecAct,
}

/// Computes an `mr x NR` tile (`1 <= mr <= MR`) into `c` (row stride `ldc`).
///
/// # Safety
/// `c` must be valid for reads and writes of `mr` rows of `NR` floats at
/// stride `ldc`, and nothing else may access them during the call.
#[inline]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn tile(
    isa: Isa,
    mr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &TileEp<'_>,
) {
    assert!(a.len() >= kc * MR && b.len() >= kc * NR && (1..=MR).contains(&mr));
    if let Some(rb) = ep.row_bias {
        assert!(rb.len() >= mr);
    }
    if let Some(cb) = ep.col_bias {
        assert!(cb.len() >= NR);
    }
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: `Isa` only reports AVX2 when the CPU has AVX2 and FMA;
        // the operand lengths were checked above and the caller vouches for
        // `c`.
        unsafe {
            match mr {
                1 => super::avx2::kernel::<1>(kc, a, b, c, ldc, ep),
                2 => super::avx2::kernel::<2>(kc, a, b, c, ldc, ep),
                3 => super::avx2::kernel::<3>(kc, a, b, c, ldc, ep),
                4 => super::avx2::kernel::<4>(kc, a, b, c, ldc, ep),
                5 => super::avx2::kernel::<5>(kc, a, b, c, ldc, ep),
                _ => super::avx2::kernel::<6>(kc, a, b, c, ldc, ep),
            }
        }
        return;
    }
    let _ = isa;
    let acc = match mr {
        1 => portable::<1>(kc, a, b),
        2 => portable::<2>(kc, a, b),
        3 => portable::<3>(kc, a, b),
        4 => portable::<4>(kc, a, b),
        5 => portable::<5>(kc, a, b),
        _ => portable::<6>(kc, a, b),
    };
    for (i, row) in acc.iter().enumerate().take(mr) {
        // SAFETY: row `i < mr` of the tile is valid and unaliased per the
        // caller's contract.
        let out = unsafe { core::slice::from_raw_parts_mut(c.add(i * ldc), NR) };
        let rb = ep.row_bias.map_or(0.0, |rb| rb[i]);
        for (j, o) in out.iter_mut().enumerate() {
            let mut v = ep.alpha * row[j];
            if ep.load_c {
                v += *o;
            }
            v += rb;
            if let Some(cb) = ep.col_bias {
                v += cb[j];
            }
            *o = ep.act.apply(v);
        }
    }
}

/// Portable micro-kernel: plain loops over fixed-size arrays, which LLVM
/// unrolls and vectorises.
#[inline(always)]
fn portable<const R: usize>(kc: usize, a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)).take(kc) {
        let bp: &[f32; NR] = bp.try_into().expect("NR chunk");
        for i in 0..R {
            let av = ap[i];
            for j in 0..NR {
                acc[i][j] += av * bp[j];
            }
        }
    }
    acc
}

/// Computes an `mr x 2 NR` tile from two adjacent B panels (`b` holds
/// `2 * kc * NR` floats) with AVX-512; `mr` is at most MR, or exactly
/// 2 MR from two adjacent A panels.
///
/// # Safety
/// `isa` must support AVX-512; `c` must be valid for reads and writes of
/// `mr` rows of `2 * NR` floats at stride `ldc`, with no other access during
/// the call.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
#[inline]
pub(crate) unsafe fn tile_wide(
    isa: Isa,
    mr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &TileEp<'_>,
) {
    assert!(isa.is_avx512());
    assert!(a.len() >= kc * MR && b.len() >= 2 * kc * NR && (1..=2 * MR).contains(&mr));
    assert!(mr <= MR || mr == 2 * MR);
    if let Some(rb) = ep.row_bias {
        assert!(rb.len() >= mr);
    }
    if let Some(cb) = ep.col_bias {
        assert!(cb.len() >= 2 * NR);
    }
    // SAFETY: AVX-512 presence asserted; lengths checked above; the caller
    // vouches for `c`.
    unsafe {
        use super::avx512::kernel;
        if mr == 2 * MR {
            assert!(a.len() >= 2 * kc * MR);
            if let Some(rb) = ep.row_bias {
                assert!(rb.len() >= 2 * MR);
            }
            super::avx512::kernel12(kc, a, b, c, ldc, ep);
            return;
        }
        match mr {
            1 => kernel::<1>(kc, a, b, c, ldc, ep),
            2 => kernel::<2>(kc, a, b, c, ldc, ep),
            3 => kernel::<3>(kc, a, b, c, ldc, ep),
            4 => kernel::<4>(kc, a, b, c, ldc, ep),
            5 => kernel::<5>(kc, a, b, c, ldc, ep),
            _ => kernel::<6>(kc, a, b, c, ldc, ep),
        }
    }
}
