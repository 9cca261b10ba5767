//! Sparse execution of pruned layers: at build time, the Conv (1x1, group
//! 1, stride 1, unpadded), Gemm and MatMul builders hand their constant
//! weight here; when its density is below the break-even for the layer's
//! shape, the layer runs the CSR kernels of `whittle_kernels::sparse`
//! instead of the dense GEMM. The kernel name says so and gives the
//! density (`sparse.csr.d10%.conv1x1.avx512+relu`: 10% of the weights are
//! nonzero), so `whittle inspect` and `bench --profile` show which layers
//! run sparse.

use whittle_ir::DType;
use whittle_kernels::conv::ConvGeom;
use whittle_kernels::sparse::{spmm, spmm_scratch_len, Csr, SparseLinear};
use whittle_kernels::Activation;

use crate::op::{Built, Kernel, RunCtx};
use crate::ops::nn::linear::par::{isa, kernel_name, scratch_f32, ParExec};
use crate::{Fact, RunError, View, ViewMut};

/// Fraction of nonzero entries. An all-zero (or empty) weight counts as
/// dense: it is a placeholder (shape-only models, tests), not a pruned
/// layer, and keeps the dense kernel so that such models report as before.
fn density(w: &[f32]) -> f64 {
    let nnz = w.iter().filter(|&&v| v != 0.0).count();
    if nnz == 0 {
        return 1.0;
    }
    nnz as f64 / w.len() as f64
}

/// Whether the sparse 1x1 conv beats the dense one at this density, for
/// `cin` input channels and `hw` pixels.
///
/// Break-even densities measured with `cargo run --release -p
/// whittle-kernels --example sparse_bench sweep 1x1` (Zen 5, AVX-512,
/// single thread, against the implicit-GEMM conv the runtime runs
/// otherwise), on the 19 MobileNetV2 1x1 shapes, sparsity 30..95%:
/// * shallow layers (K <= 64) break even at 50-70% density (32->16
///   @112x112: 0.93x at 60%, 1.50x at 50%; 64->384 @14x14: 1.06x at 70%);
/// * deeper layers on 14x14 and larger maps at 35-55% (144->24 @56x56:
///   0.83x at 40%, 1.07x at 30%; 576->96 @14x14: 0.95x at 50%, 1.11x at
///   40%);
/// * deep layers on 7x7 maps at 30-35% (960->320: 0.88x at 40%, 1.07x
///   at 30%; 576->160: 0.88x at 40%, 1.15x at 30%).
///
/// The rule takes the low end of each class, so a layer chosen sparse is
/// not slower than dense anywhere in the sweep.
pub(crate) fn conv1x1_pays(density: f64, cin: usize, hw: usize) -> bool {
    let limit = match (cin, hw) {
        (0..=64, _) => 0.45,
        (_, 100..) => 0.35,
        _ => 0.3,
    };
    density <= limit
}

/// Whether the sparse fully connected kernel beats the dense GEMM for
/// `rows` rows at this density.
///
/// Measured on the MobileNetV2 classifier (1280 -> 1000, Zen 5, AVX-512,
/// single thread; `sparse_bench` for batch 1, and the batch sweep behind
/// the kernels' `SPMM_MIN_BATCH`), sparse over dense:
/// * 1 row (sliced-ELL GEMV; the dense GEMV streams every weight): 1.3x
///   at 50% density, 1.9x at 30%;
/// * 2 rows: 0.66x at 50%, 1.04x at 30%; 4 rows: 0.61x at 30%, 1.21x at
///   10%; 8 rows: 1.14x at 10% (each extra row lets the dense GEMM reuse
///   its weight stream, while the GEMV runs once per row);
/// * 16 rows and more (transposed into the wide kernel): 16 rows 0.73x at
///   30%, 2.1x at 10%; 32 rows 1.13x at 30%.
pub(crate) fn linear_pays(density: f64, rows: usize) -> bool {
    density
        <= match rows {
            1 => 0.4,
            2..=3 => 0.25,
            4..=15 => 0.1,
            _ => 0.2,
        }
}

/// `d10%`: the density as a whole percentage for kernel names.
fn density_tag(csr: &Csr) -> String {
    format!("d{:.0}%", csr.density() * 100.0)
}

/// A sparse kernel for a 1x1 conv, when the weight is sparse enough to
/// pay. `w` is `[cout, cin]` (the conv weight with its unit kernel dims).
pub(crate) fn conv1x1(
    g: &ConvGeom,
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    out_shape: &[usize],
) -> Option<Built> {
    if g.groups != 1 || !g.is_pointwise() || w.len() != g.cout * g.cin {
        return None;
    }
    if !conv1x1_pays(density(w), g.cin, g.in_spatial()) {
        return None;
    }
    let csr = Csr::from_dense(w, g.cout, g.cin)?;
    let hw = g.in_spatial();
    let scratch = spmm_scratch_len(isa(), &csr, hw);
    let name = kernel_name(&format!("sparse.csr.{}.conv1x1", density_tag(&csr)), act);
    Some(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, out_shape.to_vec())],
        kernel: Box::new(SparseConv {
            name,
            bias: bias.map(<[f32]>::to_vec),
            act,
            batch: g.batch,
            hw,
            scratch,
            csr,
        }),
    })
}

/// A pruned 1x1 conv: one sparse product per image.
struct SparseConv {
    name: String,
    csr: Csr,
    bias: Option<Vec<f32>>,
    act: Activation,
    batch: usize,
    hw: usize,
    /// f32 scratch elements.
    scratch: usize,
}

impl Kernel for SparseConv {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        (self.batch * self.csr.nnz() * self.hw) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        self.csr.bytes() + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    fn absorbed_inputs(&self) -> &[usize] {
        &[1, 2]
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (cin, cout, hw) = (self.csr.cols(), self.csr.rows(), self.hw);
        let x = inputs[0].f32();
        let y = outputs[0].f32();
        if x.len() < self.batch * cin * hw || y.len() < self.batch * cout * hw {
            return Err(RunError::Unsupported(
                "operand buffer smaller than its shape",
            ));
        }
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        let exec = ParExec::new(ctx.par);
        for b in 0..self.batch {
            spmm(
                isa(),
                &self.csr,
                self.bias.as_deref(),
                self.act,
                &x[b * cin * hw..][..cin * hw],
                hw,
                &mut y[b * cout * hw..][..cout * hw],
                s,
                &exec,
            );
        }
        Ok(())
    }
}

/// How a Gemm/MatMul weight `B` is stored.
pub(crate) enum WeightLayout {
    /// `[K, N]` (Gemm without transB, MatMul).
    KN,
    /// `[N, K]` (Gemm with transB: a Linear layer's weight).
    NK,
}

/// A sparse kernel for `Y[rows, n] = act(alpha * X[rows, k] B + bias)`
/// with a constant `B`, when it is sparse enough to pay. `bias` is per
/// output column (`n` values), already scaled by Gemm's beta. `base` names
/// the op (`gemm`, `matmul`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn linear(
    base: &str,
    b: &[f32],
    layout: WeightLayout,
    (rows, n, k): (usize, usize, usize),
    alpha: f32,
    bias: Option<&[f32]>,
    act: Activation,
    out_shape: &[usize],
) -> Option<Built> {
    if b.len() != n * k || !linear_pays(density(b), rows) {
        return None;
    }
    let mut csr = match layout {
        WeightLayout::KN => Csr::from_dense_t(b, n, k)?,
        WeightLayout::NK => Csr::from_dense(b, n, k)?,
    };
    if alpha != 1.0 {
        csr.scale(alpha);
    }
    let tag = density_tag(&csr);
    let lin = SparseLinear::new(isa(), csr);
    let scratch = lin.scratch_len(isa(), rows);
    let form = if rows < whittle_kernels::sparse::SPMM_MIN_BATCH {
        if isa().is_avx512() {
            "gemv.sell"
        } else {
            "gemv"
        }
    } else {
        "spmm"
    };
    let name = kernel_name(&format!("sparse.csr.{tag}.{base}.{form}"), act);
    Some(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, out_shape.to_vec())],
        kernel: Box::new(SparseFc {
            name,
            lin,
            bias: bias.map(<[f32]>::to_vec),
            act,
            rows,
            scratch,
        }),
    })
}

/// A pruned Gemm/MatMul with a constant weight.
struct SparseFc {
    name: String,
    lin: SparseLinear,
    bias: Option<Vec<f32>>,
    act: Activation,
    rows: usize,
    /// f32 scratch elements.
    scratch: usize,
}

impl Kernel for SparseFc {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        (self.rows * self.lin.csr().nnz()) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        self.lin.bytes() + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    fn absorbed_inputs(&self) -> &[usize] {
        // B, and Gemm's C (folded into the bias); MatMul has no input 2.
        &[1, 2]
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let csr = self.lin.csr();
        let x = inputs[0].f32();
        let y = outputs[0].f32();
        if x.len() < self.rows * csr.cols() || y.len() < self.rows * csr.rows() {
            return Err(RunError::Unsupported(
                "operand buffer smaller than its shape",
            ));
        }
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        let exec = ParExec::new(ctx.par);
        self.lin.run(
            isa(),
            self.bias.as_deref(),
            self.act,
            x,
            self.rows,
            y,
            s,
            &exec,
        );
        Ok(())
    }
}

#[cfg(test)]
#[path = "sparse_linear_tests.rs"]
mod tests;
