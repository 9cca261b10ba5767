//! Integer matrix products on the int8 GEMM: ONNX `MatMulInteger`,
//! `QLinearMatMul` and com.microsoft `QGemm`.
//!
//! In the kernel's terms the columns of B are the channels (weights, packed
//! once when B is constant), the rows of A are the positions and the output
//! is written row-major. Zero points, scales and a constant bias are read at
//! build time. Anything the fast path does not cover (non-constant B,
//! per-row A zero points, a bias that varies along rows) runs on a plain
//! integer loop with the same arithmetic.

use std::sync::OnceLock;

use whittle_ir::{DType, Tensor};
use whittle_kernels::qgemm::{
    qgemm, qgemm_scratch_len, QActivations, QElem, QIsa, QLayout, QOut, QPackedWeights,
};
use whittle_kernels::requant::{QClamp, Requant};
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::common::matmul_shape::{gemm_c_dims, gemm_dims, gemm_ranks, MatMulShape};
use crate::ops::nn::linear::par::{max_tasks, ParExec};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add("MatMulInteger", build_matmul_integer);
    r.add("QLinearMatMul", build_qlinear_matmul);
    r.add_in_domain("com.microsoft", "QGemm", build_qgemm);
}

/// The int8 instruction set, detected once.
pub(crate) fn qisa() -> QIsa {
    static ISA: OnceLock<QIsa> = OnceLock::new();
    *ISA.get_or_init(QIsa::detect)
}

/// The int32 bias added to every accumulator.
#[derive(Clone, Debug)]
enum Bias {
    None,
    /// One value per output column.
    PerCol(Vec<i32>),
    /// A constant `[m, n]` (broadcast at build time).
    Full(Vec<i32>),
    /// A run-time input `idx` of shape `[cm, cn]` broadcast to `[m, n]`.
    Input {
        idx: usize,
        cm: usize,
        cn: usize,
    },
}

/// What the accumulators become.
#[derive(Clone, Debug)]
enum Out {
    /// Raw int32 (MatMulInteger).
    I32,
    /// Requantized to u8/i8, one multiplier or one per column.
    Q {
        dtype: DType,
        requant: Vec<Requant>,
        clamp: QClamp,
    },
    /// `act(acc * scale[j])` in f32 (QGemm without y_scale).
    F32 { scale: Vec<f32>, act: Activation },
}

/// Everything a builder learned, before choosing the path.
struct Spec<'a> {
    op: &'static str,
    a_idx: usize,
    b_idx: usize,
    a_dt: DType,
    b_dt: DType,
    shape: MatMulShape,
    trans_a: bool,
    trans_b: bool,
    a_zp: Vec<i32>,
    b_zp: Vec<i32>,
    bias: Bias,
    out: Out,
    b_value: Option<&'a Tensor>,
    act: Activation,
}

/// Integer values of a constant zero-point input (`None` when omitted:
/// zero), required to have `dtype` and 1 or `count` elements.
fn zero_points(
    ctx: &BuildCtx<'_>,
    idx: usize,
    dtype: DType,
    count: usize,
    what: &str,
) -> Result<Vec<i32>, OpError> {
    let Some(t) = ctx.opt_const_value(idx)? else {
        return Ok(vec![0]);
    };
    if t.dtype() != dtype {
        return Err(ctx.err(format!(
            "{what} has dtype {}, expected {} (the dtype of its tensor)",
            t.dtype(),
            dtype
        )));
    }
    if t.numel() != 1 && t.numel() != count {
        return Err(ctx.err(format!(
            "{what} has shape {:?}: expected one value or {count}",
            t.shape()
        )));
    }
    Ok(t.to_i64_vec()?.into_iter().map(|v| v as i32).collect())
}

/// Positive finite f32 values of a constant scale input, 1 or `count`.
fn scales(ctx: &BuildCtx<'_>, idx: usize, count: usize, what: &str) -> Result<Vec<f32>, OpError> {
    let t = ctx.const_value(idx)?;
    if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) {
        return Err(ctx.err(format!("{what} has dtype {}, expected float", t.dtype())));
    }
    if t.numel() != 1 && t.numel() != count {
        return Err(ctx.err(format!(
            "{what} has shape {:?}: expected one value or {count}",
            t.shape()
        )));
    }
    let v = t.to_f32_vec();
    if let Some(bad) = v.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(ctx.err(format!("{what} must be positive and finite, got {bad}")));
    }
    Ok(v)
}

/// Requantized output: per-column multipliers `alpha * a_scale * b_scale[j]
/// / y_scale` and the clamp with the fused activation folded in.
#[allow(clippy::too_many_arguments)]
fn quantized_out(
    ctx: &BuildCtx<'_>,
    alpha: f32,
    a_scale: f32,
    b_scale: &[f32],
    y_scale: f32,
    y_zp: i32,
    dtype: DType,
    act: Activation,
) -> Result<Out, OpError> {
    let requant = b_scale
        .iter()
        .map(|&bs| {
            let real = alpha as f64 * a_scale as f64 * bs as f64 / y_scale as f64;
            Requant::from_real(real).ok_or_else(|| {
                ctx.err(format!(
                    "requantization multiplier {real} (alpha * a_scale * b_scale / y_scale) \
                     is not a positive value below 2^30"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let (lo, hi) = if dtype == DType::U8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    let clamp = QClamp::new(act, y_scale, y_zp, lo, hi).ok_or_else(|| {
        ctx.err(format!(
            "fused activation {} cannot be folded into the output clamp (only Relu and Clip)",
            act.name()
        ))
    })?;
    Ok(Out::Q {
        dtype,
        requant,
        clamp,
    })
}

fn build_matmul_integer(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let a_dt = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let b_dt = ctx.expect_dtype(1, &[DType::U8, DType::I8])?;
    let (a, b) = (ctx.fact(0)?.shape.clone(), ctx.fact(1)?.shape.clone());
    let shape = MatMulShape::resolve(ctx, &a, &b, "operands")?;
    let a_zp = zero_points(ctx, 2, a_dt, shape.m, "a_zero_point")?;
    let b_zp = zero_points(ctx, 3, b_dt, shape.n, "b_zero_point")?;
    make(
        ctx,
        Spec {
            op: "matmul_integer",
            a_idx: 0,
            b_idx: 1,
            a_dt,
            b_dt,
            shape,
            trans_a: false,
            trans_b: false,
            a_zp,
            b_zp,
            bias: Bias::None,
            out: Out::I32,
            b_value: ctx.input(1)?.value,
            act: Activation::None,
        },
    )
}

fn build_qlinear_matmul(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let a_dt = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let b_dt = ctx.expect_dtype(3, &[DType::U8, DType::I8])?;
    let y_dt = ctx.expect_dtype(7, &[DType::U8, DType::I8])?;
    let (a, b) = (ctx.fact(0)?.shape.clone(), ctx.fact(3)?.shape.clone());
    let shape = MatMulShape::resolve(ctx, &a, &b, "operands")?;
    let n = shape.n;
    let a_scale = scales(ctx, 1, 1, "a_scale")?[0];
    let a_zp = zero_points(ctx, 2, a_dt, 1, "a_zero_point (per-tensor only)")?;
    let b_scale = scales(ctx, 4, n, "b_scale")?;
    let b_zp = zero_points(ctx, 5, b_dt, n, "b_zero_point")?;
    let y_scale = scales(ctx, 6, 1, "y_scale")?[0];
    let y_zp = zero_points(ctx, 7, y_dt, 1, "y_zero_point")?[0];
    let act = ctx.node.activation;
    let out = quantized_out(ctx, 1.0, a_scale, &b_scale, y_scale, y_zp, y_dt, act)?;
    make(
        ctx,
        Spec {
            op: "qlinear_matmul",
            a_idx: 0,
            b_idx: 3,
            a_dt,
            b_dt,
            shape,
            trans_a: false,
            trans_b: false,
            a_zp,
            b_zp,
            bias: Bias::None,
            out,
            b_value: ctx.input(3)?.value,
            act,
        },
    )
}

fn build_qgemm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let a_dt = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let b_dt = ctx.expect_dtype(3, &[DType::U8, DType::I8])?;
    let (a, b) = (ctx.fact(0)?.shape.clone(), ctx.fact(3)?.shape.clone());
    gemm_ranks(ctx, &a, &b)?;
    let trans_a = ctx.node.attr_int("transA", 0)? != 0;
    let trans_b = ctx.node.attr_int("transB", 0)? != 0;
    let alpha = ctx.node.attr_float("alpha", 1.0)?;
    let (m, n, k) = gemm_dims(ctx, (&a, trans_a), (&b, trans_b), false)?;
    if !alpha.is_finite() {
        return Err(ctx.err(format!("alpha must be finite, got {alpha}")));
    }
    let a_scale = scales(ctx, 1, 1, "a_scale")?[0];
    let a_zp = zero_points(ctx, 2, a_dt, 1, "a_zero_point (per-tensor only)")?;
    let b_scale = scales(ctx, 4, n, "b_scale")?;
    let b_zp = zero_points(ctx, 5, b_dt, n, "b_zero_point")?;
    let bias = match ctx.opt_input(6) {
        None => Bias::None,
        Some(cf) => {
            ctx.expect_dtype(6, &[DType::I32])?;
            let (cm, cn) = gemm_c_dims(ctx, &cf.fact.shape, m, n)?;
            match cf.value {
                Some(t) => {
                    let v: Vec<i32> = t.to_i64_vec()?.into_iter().map(|x| x as i32).collect();
                    let at = |i: usize, j: usize| {
                        v[if cm == 1 { 0 } else { i } * cn + if cn == 1 { 0 } else { j }]
                    };
                    if cm == 1 {
                        Bias::PerCol((0..n).map(|j| at(0, j)).collect())
                    } else {
                        Bias::Full((0..m * n).map(|e| at(e / n, e % n)).collect())
                    }
                }
                None => Bias::Input { idx: 6, cm, cn },
            }
        }
    };
    let act = ctx.node.activation;
    let quantized = ctx.opt_input(7).is_some();
    let out = if quantized {
        let y_scale = scales(ctx, 7, 1, "y_scale")?[0];
        let y_dt = match ctx.opt_input(8) {
            Some(_) => ctx.expect_dtype(8, &[DType::U8, DType::I8])?,
            None => a_dt,
        };
        let y_zp = zero_points(ctx, 8, y_dt, 1, "y_zero_point")?[0];
        if alpha <= 0.0 {
            return Err(ctx.err(format!(
                "alpha must be positive for a quantized output, got {alpha}"
            )));
        }
        quantized_out(ctx, alpha, a_scale, &b_scale, y_scale, y_zp, y_dt, act)?
    } else {
        if !matches!(
            act,
            Activation::None | Activation::Relu | Activation::Clip { .. }
        ) {
            return Err(ctx.err(format!(
                "fused activation {} is not supported (only Relu and Clip)",
                act.name()
            )));
        }
        Out::F32 {
            scale: b_scale.iter().map(|&bs| alpha * a_scale * bs).collect(),
            act,
        }
    };
    make(
        ctx,
        Spec {
            op: "qgemm",
            a_idx: 0,
            b_idx: 3,
            a_dt,
            b_dt,
            shape: MatMulShape::single(m, n, k),
            trans_a,
            trans_b,
            a_zp,
            b_zp,
            bias,
            out,
            b_value: ctx.input(3)?.value,
            act,
        },
    )
}

/// Packs B (when constant and the fast path applies) and returns the kernel.
fn make(ctx: &BuildCtx<'_>, s: Spec<'_>) -> Result<Built, OpError> {
    let out_dt = match &s.out {
        Out::I32 => DType::I32,
        Out::Q { dtype, .. } => *dtype,
        Out::F32 { .. } => DType::F32,
    };
    let fast_ok = s.a_zp.len() == 1 && matches!(s.bias, Bias::None | Bias::PerCol(_));
    let packed = match s.b_value {
        Some(t) if fast_ok => {
            let bytes = t.as_bytes();
            let (k, n) = (s.shape.k, s.shape.n);
            let (cst, kst) = if s.trans_b { (k, 1) } else { (1, n) };
            let mut v = Vec::with_capacity(s.shape.b_batches);
            for i in 0..s.shape.b_batches {
                let part = bytes
                    .get(i * k * n..(i + 1) * k * n)
                    .ok_or_else(|| ctx.err("B data does not match its shape"))?;
                let p = match s.b_dt {
                    DType::U8 => QPackedWeights::new_strided(part, n, k, cst, kst, &s.b_zp),
                    _ => QPackedWeights::new_strided(as_i8(part), n, k, cst, kst, &s.b_zp),
                };
                v.push(p.map_err(|e| ctx.err(format!("B: {e}")))?);
            }
            Some(v)
        }
        _ => None,
    };
    let positions = if s.shape.flat {
        s.shape.offsets.len() * s.shape.m
    } else {
        s.shape.m
    };
    let mut scratch = 0;
    if packed.is_some() {
        scratch = qgemm_scratch_len(s.shape.n, s.shape.k, positions, max_tasks());
        if matches!(s.out, Out::F32 { .. }) {
            // int32 accumulators of one GEMM, 64-byte aligned after the
            // kernel's part.
            scratch = scratch.div_ceil(64) * 64 + positions * s.shape.n * 4;
        }
    }
    let path = if packed.is_some() {
        format!("qgemm.{}", qisa().name())
    } else {
        "reference".to_string()
    };
    let mut name = format!("{}.{path}", s.op);
    if s.act != Activation::None {
        name.push('+');
        name.push_str(s.act.name());
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(out_dt, s.shape.out.clone())],
        kernel: Box::new(QMatMulKernel {
            name,
            a_idx: s.a_idx,
            b_idx: s.b_idx,
            a_signed: s.a_dt == DType::I8,
            b_signed: s.b_dt == DType::I8,
            shape: s.shape,
            trans_a: s.trans_a,
            trans_b: s.trans_b,
            a_zp: s.a_zp,
            b_zp: s.b_zp,
            bias: s.bias,
            out: s.out,
            absorbed: if packed.is_some() {
                vec![s.b_idx]
            } else {
                vec![]
            },
            packed,
            scratch,
        }),
    })
}

/// Bytes viewed as i8.
fn as_i8(b: &[u8]) -> &[i8] {
    bytemuck::cast_slice(b)
}

struct QMatMulKernel {
    name: String,
    a_idx: usize,
    b_idx: usize,
    a_signed: bool,
    b_signed: bool,
    shape: MatMulShape,
    trans_a: bool,
    trans_b: bool,
    a_zp: Vec<i32>,
    b_zp: Vec<i32>,
    bias: Bias,
    out: Out,
    packed: Option<Vec<QPackedWeights>>,
    absorbed: Vec<usize>,
    scratch: usize,
}

impl Kernel for QMatMulKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.shape.macs()
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch
    }

    fn weight_bytes(&self) -> usize {
        self.packed
            .as_ref()
            .map_or(0, |v| v.iter().map(QPackedWeights::bytes).sum())
    }

    fn absorbed_inputs(&self) -> &[usize] {
        &self.absorbed
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let short = RunError::Unsupported("operand buffer smaller than its shape");
        let a = inputs[self.a_idx].bytes();
        if a.len() < self.a_len() {
            return Err(short);
        }
        match &self.packed {
            Some(p) => self.run_fast(p, a, &mut outputs[0], ctx),
            None => {
                let b = inputs[self.b_idx].bytes();
                if b.len() < self.b_len() {
                    return Err(short);
                }
                let c = match self.bias {
                    Bias::Input { idx, cm, cn } => {
                        let c = inputs[idx].i32();
                        if c.len() < cm * cn {
                            return Err(short);
                        }
                        Some(c)
                    }
                    _ => None,
                };
                self.run_reference(a, b, c, &mut outputs[0]);
                Ok(())
            }
        }
    }
}

impl QMatMulKernel {
    /// Elements of A needed by the offsets.
    fn a_len(&self) -> usize {
        let s = &self.shape;
        s.offsets.iter().map(|o| o.0).max().unwrap_or(0) + s.m * s.k
    }

    fn b_len(&self) -> usize {
        let s = &self.shape;
        s.offsets.iter().map(|o| o.1).max().unwrap_or(0) + s.k * s.n
    }

    /// Packed B: one qgemm per batch (or one for all rows when flat).
    fn run_fast(
        &self,
        packed: &[QPackedWeights],
        a: &[u8],
        y: &mut ViewMut<'_>,
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let sh = &self.shape;
        let (m, n, k) = (sh.m, sh.n, sh.k);
        let exec = ParExec::new(ctx.par);
        let runs: Vec<(usize, usize, usize)> = if sh.flat {
            vec![(0, 0, sh.nb() * m)]
        } else {
            (0..sh.nb())
                .map(|i| (sh.offsets[i].0, sh.offsets[i].1 / (k * n).max(1), m))
                .collect()
        };
        let bias = match &self.bias {
            Bias::PerCol(v) => Some(&v[..]),
            _ => None,
        };
        let kscratch = qgemm_scratch_len(n, k, runs[0].2, max_tasks());
        let (sk, sacc) = ctx.scratch.split_at_mut(kscratch.div_ceil(64) * 64);
        let sk = &mut sk[..kscratch];
        for (i, &(a_off, b_idx, rows)) in runs.iter().enumerate() {
            if rows == 0 || n == 0 {
                continue;
            }
            let w = &packed[b_idx];
            let a = &a[a_off..];
            let zp = self.a_zp[0];
            let (layout, ld) = if self.trans_a {
                (QLayout::DepthMajor, m)
            } else {
                (QLayout::PositionMajor, k)
            };
            let y_off = i * m * n;
            let out = match &self.out {
                Out::I32 => QOut::I32 {
                    data: &mut y.i32()[y_off..],
                },
                Out::Q {
                    dtype,
                    requant,
                    clamp,
                } => {
                    if *dtype == DType::U8 {
                        QOut::U8 {
                            data: &mut y.u8()[y_off..],
                            requant,
                            clamp: *clamp,
                        }
                    } else {
                        QOut::I8 {
                            data: &mut y.i8()[y_off..],
                            requant,
                            clamp: *clamp,
                        }
                    }
                }
                Out::F32 { .. } => QOut::I32 {
                    data: bytemuck::try_cast_slice_mut(&mut sacc[..rows * n * 4])
                        .map_err(|_| RunError::Unsupported("scratch is not 4-byte aligned"))?,
                },
            };
            if self.a_signed {
                let x = QActivations::new(as_i8(a), k, rows, ld, layout, zp as i8)
                    .map_err(|_| RunError::Unsupported("A smaller than its shape"))?;
                qgemm(qisa(), w, &x, bias, out, 1, n, sk, &exec);
            } else {
                let x = QActivations::new(a, k, rows, ld, layout, zp as u8)
                    .map_err(|_| RunError::Unsupported("A smaller than its shape"))?;
                qgemm(qisa(), w, &x, bias, out, 1, n, sk, &exec);
            }
            if let Out::F32 { scale, act } = &self.out {
                let acc: &[i32] = bytemuck::cast_slice(&sacc[..rows * n * 4]);
                let yf = &mut y.f32()[y_off..y_off + rows * n];
                for (e, (o, &v)) in yf.iter_mut().zip(acc).enumerate() {
                    let s = scale[if scale.len() == 1 { 0 } else { e % n }];
                    *o = act.apply(v as f32 * s);
                }
            }
        }
        Ok(())
    }

    /// Plain integer loops: any B, per-row A zero points, any bias.
    fn run_reference(&self, a: &[u8], b: &[u8], c: Option<&[i32]>, y: &mut ViewMut<'_>) {
        let (m, n, k) = (self.shape.m, self.shape.n, self.shape.k);
        let val = |bytes: &[u8], i: usize, signed: bool| -> i32 {
            if signed {
                bytes[i] as i8 as i32
            } else {
                bytes[i] as i32
            }
        };
        let pick = |v: &[i32], i: usize| v[if v.len() == 1 { 0 } else { i }];
        for (bi, &(ao, bo)) in self.shape.offsets.iter().enumerate() {
            for i in 0..m {
                let azp = pick(&self.a_zp, i);
                for j in 0..n {
                    let bzp = pick(&self.b_zp, j);
                    let mut acc = 0i32;
                    for kk in 0..k {
                        let ai = if self.trans_a { kk * m + i } else { i * k + kk };
                        let bj = if self.trans_b { j * k + kk } else { kk * n + j };
                        let av = val(a, ao + ai, self.a_signed) - azp;
                        let bv = val(b, bo + bj, self.b_signed) - bzp;
                        acc = acc.wrapping_add(av * bv);
                    }
                    acc = acc.wrapping_add(match (&self.bias, c) {
                        (Bias::PerCol(v), _) => v[j],
                        (Bias::Full(v), _) => v[i * n + j],
                        (Bias::Input { cm, cn, .. }, Some(c)) => {
                            c[if *cm == 1 { 0 } else { i } * cn + if *cn == 1 { 0 } else { j }]
                        }
                        _ => 0,
                    });
                    let e = (bi * m + i) * n + j;
                    match &self.out {
                        Out::I32 => y.i32()[e] = acc,
                        Out::Q {
                            dtype,
                            requant,
                            clamp,
                        } => {
                            let q = clamp.apply(pick_rq(requant, j).apply(acc));
                            if *dtype == DType::U8 {
                                y.u8()[e] = u8::saturate(q);
                            } else {
                                y.i8()[e] = i8::saturate(q);
                            }
                        }
                        Out::F32 { scale, act } => {
                            let s = scale[if scale.len() == 1 { 0 } else { j }];
                            y.f32()[e] = act.apply(acc as f32 * s);
                        }
                    }
                }
            }
        }
    }
}

fn pick_rq(v: &[Requant], j: usize) -> Requant {
    v[if v.len() == 1 { 0 } else { j }]
}

#[cfg(test)]
#[path = "qlinear_matmul_tests.rs"]
mod tests;
