//! Gemm and MatMul (f32) on the kernels' packed GEMM. A constant B (the
//! weights of a Linear layer) is packed at build time, so a run packs only
//! the activation operand; non-constant operands are packed into scratch.
//! The fused activation and Gemm's bias run in the GEMM epilogue.

use whittle_ir::DType;
use whittle_kernels::gemm::{
    for_each_chunk_mut_with_scratch, gemm, gemm_scratch_len, Bias, Epilogue, MatRef, PackedB,
    Serial,
};
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::common::matmul_shape::{gemm_c_dims, gemm_dims, gemm_ranks, MatMulShape};
use crate::ops::nn::sparse_linear;
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

#[path = "linear_par.rs"]
pub(crate) mod par;

use par::{isa, kernel_name, max_tasks, scratch_f32, ParExec};

pub fn register(r: &mut Registry) {
    r.add("Gemm", build_gemm);
    r.add("MatMul", build_matmul);
}

/// How Gemm's C input enters the result.
enum CTerm {
    /// No C, or beta = 0.
    None,
    /// Constant C reduced to `beta * C` per column (`N` values).
    PerCol(Vec<f32>),
    /// Constant C reduced to `beta * C` per row (`M` values).
    PerRow(Vec<f32>),
    /// `beta * C` broadcast into Y at run time, then the product is added.
    /// C is `[cm, cn]` after left-padding its shape with 1s.
    Full { cm: usize, cn: usize },
}

fn build_gemm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let a = ctx.fact(0)?.shape.clone();
    let b = ctx.fact(1)?.shape.clone();
    gemm_ranks(ctx, &a, &b)?;
    let trans_a = ctx.node.attr_int("transA", 0)? != 0;
    let trans_b = ctx.node.attr_int("transB", 0)? != 0;
    let alpha = ctx.node.attr_float("alpha", 1.0)?;
    let beta = ctx.node.attr_float("beta", 1.0)?;
    let (m, n, k) = gemm_dims(ctx, (&a, trans_a), (&b, trans_b), true)?;
    let c_term = match ctx.opt_input(2) {
        None => CTerm::None,
        Some(_) if beta == 0.0 => CTerm::None,
        Some(cf) => {
            ctx.expect_dtype(2, &[DType::F32])?;
            let (cm, cn) = gemm_c_dims(ctx, &cf.fact.shape, m, n)?;
            match cf.value {
                Some(t) if cm == 1 => {
                    let v = t.as_f32()?;
                    CTerm::PerCol(
                        (0..n)
                            .map(|j| beta * v[if cn == 1 { 0 } else { j }])
                            .collect(),
                    )
                }
                Some(t) if cn == 1 => {
                    let v = t.as_f32()?;
                    CTerm::PerRow((0..m).map(|i| beta * v[i]).collect())
                }
                _ => CTerm::Full { cm, cn },
            }
        }
    };
    let act = ctx.node.activation;
    if let (Some(t), false) = (ctx.input(1)?.value, trans_a) {
        // A pruned constant B runs sparse when that beats the dense GEMM
        // (C must fold into a per-column bias).
        let bias = match &c_term {
            CTerm::None => Some(None),
            CTerm::PerCol(v) => Some(Some(v.as_slice())),
            _ => None,
        };
        let layout = if trans_b {
            sparse_linear::WeightLayout::NK
        } else {
            sparse_linear::WeightLayout::KN
        };
        if let Some(bias) = bias {
            let shape = (m, n, k);
            let out = [m, n];
            if let Some(built) =
                sparse_linear::linear("gemm", t.as_f32()?, layout, shape, alpha, bias, act, &out)
            {
                return Ok(built);
            }
        }
    }
    let packed_b = match ctx.input(1)?.value {
        Some(t) => {
            let bm = MatRef::row_major(t.as_f32()?, b[0], b[1])
                .ok_or_else(|| ctx.err("B data does not match its shape"))?;
            Some(PackedB::new(if trans_b { bm.t() } else { bm }))
        }
        None => None,
    };
    let scratch = gemm_scratch_len(m, n, k, false, packed_b.is_some(), max_tasks());
    let base = if packed_b.is_some() {
        "gemm"
    } else {
        "gemm.dynamic"
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, vec![m, n])],
        kernel: Box::new(GemmKernel {
            name: kernel_name(base, act),
            a_shape: [a[0], a[1]],
            b_shape: [b[0], b[1]],
            trans_a,
            trans_b,
            m,
            n,
            k,
            alpha,
            beta,
            c_term,
            packed_b,
            act,
            scratch,
        }),
    })
}

struct GemmKernel {
    name: String,
    a_shape: [usize; 2],
    b_shape: [usize; 2],
    trans_a: bool,
    trans_b: bool,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
    c_term: CTerm,
    packed_b: Option<PackedB>,
    act: Activation,
    scratch: usize,
}

/// A row-major view, transposed on request; the sizes were checked at
/// build time, so a mismatch means a corrupt buffer.
fn view<'a>(data: &'a [f32], shape: [usize; 2], trans: bool) -> Result<MatRef<'a>, RunError> {
    let m = MatRef::row_major(data, shape[0], shape[1]).ok_or(RunError::Unsupported(
        "operand buffer smaller than its shape",
    ))?;
    Ok(if trans { m.t() } else { m })
}

impl Kernel for GemmKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        (self.m * self.n * self.k) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        self.packed_b.as_ref().map_or(0, PackedB::bytes)
            + match &self.c_term {
                CTerm::PerCol(v) | CTerm::PerRow(v) => v.len() * 4,
                _ => 0,
            }
    }

    fn absorbed_inputs(&self) -> &[usize] {
        // C is read at run time only when broadcast in full; a constant B is
        // pre-packed.
        let c_read = matches!(self.c_term, CTerm::Full { .. });
        match (self.packed_b.is_some(), c_read) {
            (true, false) => &[1, 2],
            (true, true) => &[1],
            (false, false) => &[2],
            (false, true) => &[],
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (m, n) = (self.m, self.n);
        let y = outputs[0].f32();
        let mut ep = Epilogue {
            alpha: self.alpha,
            accumulate: false,
            bias: Bias::None,
            act: self.act,
        };
        match &self.c_term {
            CTerm::None => {}
            CTerm::PerCol(v) => ep.bias = Bias::PerCol(v),
            CTerm::PerRow(v) => ep.bias = Bias::PerRow(v),
            CTerm::Full { cm, cn } => {
                let c = inputs[2].f32();
                for (i, row) in y.chunks_exact_mut(n.max(1)).take(m).enumerate() {
                    let ci = if *cm == 1 { 0 } else { i };
                    for (j, v) in row.iter_mut().enumerate() {
                        *v = self.beta * c[ci * cn + if *cn == 1 { 0 } else { j }];
                    }
                }
                ep.accumulate = true;
            }
        }
        let a = view(inputs[0].f32(), self.a_shape, self.trans_a)?;
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        let exec = ParExec::new(ctx.par);
        match &self.packed_b {
            Some(pb) => gemm(isa(), &a, pb, y, n, &ep, s, &exec),
            None => {
                let b = view(inputs[1].f32(), self.b_shape, self.trans_b)?;
                gemm(isa(), &a, &b, y, n, &ep, s, &exec)
            }
        }
        Ok(())
    }
}

fn build_matmul(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let (a, b) = (&ctx.fact(0)?.shape, &ctx.fact(1)?.shape);
    let s = MatMulShape::resolve(ctx, a, b, "MatMul operands")?;
    let (m, n, k, nb) = (s.m, s.n, s.k, s.nb());
    let act = ctx.node.activation;
    if let (Some(t), 2) = (ctx.input(1)?.value, b.len()) {
        // A pruned constant 2-D B runs sparse when that beats the dense
        // GEMM; A's batches are then rows of one product.
        let (layout, shape) = (sparse_linear::WeightLayout::KN, (nb * m, n, k));
        if let Some(built) =
            sparse_linear::linear("matmul", t.as_f32()?, layout, shape, 1.0, None, act, &s.out)
        {
            return Ok(built);
        }
    }
    // One GEMM over all batches when B has a single matrix and A's batches
    // are exactly the output's: A rows then run contiguously.
    let (flat, b_batches) = (s.flat, s.b_batches);
    let packed: Option<Vec<PackedB>> = match ctx.input(1)?.value {
        Some(t) => {
            let v = t.as_f32()?;
            Some(
                (0..b_batches)
                    .map(|i| {
                        MatRef::row_major(&v[i * k * n..], k, n)
                            .map(PackedB::new)
                            .ok_or_else(|| ctx.err("B data does not match its shape"))
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        None => None,
    };
    let bp = packed.is_some();
    let scratch = if flat {
        gemm_scratch_len(nb * m, n, k, false, bp, max_tasks())
    } else {
        gemm_scratch_len(m, n, k, false, bp, max_tasks())
    };
    let base = match (flat && nb > 1, flat, bp) {
        (_, true, true) => "matmul",
        (_, true, false) => "matmul.dynamic",
        (_, false, true) => "matmul.batched",
        (_, false, false) => "matmul.batched.dynamic",
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, s.out.clone())],
        kernel: Box::new(MatMulKernel {
            name: kernel_name(base, act),
            shape: s,
            packed,
            act,
            scratch,
        }),
    })
}

struct MatMulKernel {
    name: String,
    shape: MatMulShape,
    /// B pre-packed, one per B batch.
    packed: Option<Vec<PackedB>>,
    act: Activation,
    scratch: usize,
}

impl Kernel for MatMulKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.shape.macs()
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        self.packed
            .as_ref()
            .map_or(0, |v| v.iter().map(PackedB::bytes).sum())
    }

    fn absorbed_inputs(&self) -> &[usize] {
        if self.packed.is_some() {
            &[1]
        } else {
            &[]
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let MatMulShape { m, n, k, flat, .. } = self.shape;
        let offsets = &self.shape.offsets;
        let nb = offsets.len();
        let a = inputs[0].f32();
        let bdata = inputs[1].f32();
        let y = outputs[0].f32();
        let ep = Epilogue::new(Bias::None, self.act);
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        let exec = ParExec::new(ctx.par);
        let short = RunError::Unsupported("operand buffer smaller than its shape");
        if flat {
            let am = MatRef::row_major(a, nb * m, k).ok_or(short)?;
            match &self.packed {
                Some(p) => gemm(isa(), &am, &p[0], y, n, &ep, s, &exec),
                None => {
                    let bm = MatRef::row_major(bdata, k, n).ok_or(short)?;
                    gemm(isa(), &am, &bm, y, n, &ep, s, &exec)
                }
            }
            return Ok(());
        }
        if m * n == 0 {
            return Ok(());
        }
        // Batches split across tasks, each GEMM on one task with its own
        // scratch slot; the per-batch result does not depend on the split.
        let slot = gemm_scratch_len(m, n, k, false, self.packed.is_some(), 1);
        let ok = std::sync::atomic::AtomicBool::new(true);
        for_each_chunk_mut_with_scratch(
            &exec,
            &mut y[..nb * m * n],
            m * n,
            s,
            slot,
            &|i, yc, buf| {
                let (ao, bo) = offsets[i];
                let Some(am) = a.get(ao..).and_then(|v| MatRef::row_major(v, m, k)) else {
                    ok.store(false, std::sync::atomic::Ordering::Relaxed);
                    return;
                };
                match &self.packed {
                    Some(p) => gemm(
                        isa(),
                        &am,
                        &p[bo / (k * n).max(1)],
                        yc,
                        n,
                        &ep,
                        buf,
                        &Serial,
                    ),
                    None => match bdata.get(bo..).and_then(|v| MatRef::row_major(v, k, n)) {
                        Some(bm) => gemm(isa(), &am, &bm, yc, n, &ep, buf, &Serial),
                        None => ok.store(false, std::sync::atomic::Ordering::Relaxed),
                    },
                }
            },
        );
        if ok.into_inner() {
            Ok(())
        } else {
            Err(short)
        }
    }
}

#[cfg(test)]
#[path = "linear_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "linear_cases_types.rs"]
pub(crate) mod linear_cases_types;
#[cfg(test)]
#[path = "linear_cases.rs"]
#[rustfmt::skip]
#[allow(clippy::approx_constant, clippy::excessive_precision)]
pub(crate) mod linear_cases;
