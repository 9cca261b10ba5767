//! com.microsoft QLinearAdd / QLinearMul (fixed point, broadcasting) and the
//! table ops: com.microsoft QLinearSigmoid / QLinearLeakyRelu and
//! whittle::QLinearLookup, whose 256-entry table is built at compile time
//! by evaluating the float op on every dequantized input value: activations
//! with their scalar formula ([`Activation::apply`]), other ops through
//! [`eval_node`](crate::eval_node).
//!
//! Scales and zero points must be compile-time constants (per tensor).

use whittle_ir::{Activation, Attr, DType, Node, Tensor};
use whittle_kernels::qelem::{self, Operand, QAdd, QMul, Q8};
use whittle_kernels::requant::QClamp;

use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::broadcast::{broadcast_shapes, fmt_shapes, Plan, Src};
use crate::ops::common::elem::{input, output};
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add_in_domain("com.microsoft", "QLinearAdd", build_add);
    r.add_in_domain("com.microsoft", "QLinearMul", build_mul);
    r.add_in_domain("com.microsoft", "QLinearSigmoid", build_sigmoid);
    r.add_in_domain("com.microsoft", "QLinearLeakyRelu", build_leaky_relu);
    r.add_in_domain("whittle", "QLinearLookup", build_lookup);
}

/// Elements below which table lookups stay on one thread.
const PAR_MIN: usize = 1 << 15;

/// A constant per-tensor scale (input `i`): finite and positive.
pub(crate) fn scale_of(ctx: &BuildCtx<'_>, i: usize) -> Result<f32, OpError> {
    let t = ctx.const_value(i)?;
    if t.dtype() != DType::F32 || t.numel() != 1 {
        return Err(ctx.err(format!(
            "input {i} (scale) must be one f32 value, found {} {:?}",
            t.dtype(),
            t.shape()
        )));
    }
    let s = t.to_f32_vec()[0];
    if !(s.is_finite() && s > 0.0) {
        return Err(ctx.err(format!(
            "input {i} (scale) must be finite and positive, got {s}"
        )));
    }
    Ok(s)
}

/// A constant per-tensor zero point (input `i`, optional: 0 when omitted)
/// of dtype `dtype`.
pub(crate) fn zp_of(ctx: &BuildCtx<'_>, i: usize, dtype: DType) -> Result<i32, OpError> {
    let Some(t) = ctx.opt_const_value(i)? else {
        return Ok(0);
    };
    if t.dtype() != dtype || t.numel() != 1 {
        return Err(ctx.err(format!(
            "input {i} (zero point) must be one {dtype} value, found {} {:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.to_i64_vec()?[0] as i32)
}

/// The value range of a quantized 8-bit dtype.
pub(crate) fn range_of(dtype: DType) -> (i32, i32) {
    if dtype == DType::I8 {
        (-128, 127)
    } else {
        (0, 255)
    }
}

/// The output clamp, with a fused Relu/Clip folded in.
fn clamp_of(ctx: &BuildCtx<'_>, dtype: DType, y_scale: f32, y_zp: i32) -> Result<QClamp, OpError> {
    let (lo, hi) = range_of(dtype);
    let act = ctx.node.activation;
    QClamp::new(act, y_scale, y_zp, lo, hi).ok_or_else(|| {
        ctx.err(format!(
            "cannot apply fused activation {act:?} to a quantized output (Relu and Clip only)"
        ))
    })
}

#[derive(Clone, Copy, Debug)]
enum Binary {
    Add(QAdd),
    Mul(QMul),
}

fn build_binary(ctx: &BuildCtx<'_>, is_add: bool) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    ctx.expect_dtype(3, &[dtype])?;
    let (a_s, b_s, y_s) = (scale_of(ctx, 1)?, scale_of(ctx, 4)?, scale_of(ctx, 6)?);
    let (a_zp, b_zp, y_zp) = (
        zp_of(ctx, 2, dtype)?,
        zp_of(ctx, 5, dtype)?,
        zp_of(ctx, 7, dtype)?,
    );
    let clamp = clamp_of(ctx, dtype, y_s, y_zp)?;
    let (a, b) = (&ctx.fact(0)?.shape, &ctx.fact(3)?.shape);
    let out = broadcast_shapes(&[a, b])
        .ok_or_else(|| ctx.err(format!("shapes {} do not broadcast", fmt_shapes(&[a, b]))))?;
    let plan = Plan::new([a, b], &out).map_err(|e| ctx.err(e))?;
    let bad = || ctx.err("scale ratios are out of the fixed-point range");
    let op = if is_add {
        Binary::Add(QAdd::new(a_s, a_zp, b_s, b_zp, y_s, clamp).ok_or_else(bad)?)
    } else {
        Binary::Mul(QMul::new(a_s, a_zp, b_s, b_zp, y_s, clamp).ok_or_else(bad)?)
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out)],
        kernel: Box::new(BinaryKernel { op, plan, dtype }),
    })
}

fn build_add(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build_binary(ctx, true)
}

fn build_mul(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build_binary(ctx, false)
}

struct BinaryKernel {
    op: Binary,
    plan: Plan<2>,
    dtype: DType,
}

fn operand<T: Copy>(s: Src<'_, T>) -> Operand<'_, T> {
    match s {
        Src::Slice(s) => Operand::Slice(s),
        Src::Scalar(v) => Operand::Scalar(v),
    }
}

impl BinaryKernel {
    fn run_typed<T: Q8 + bytemuck::Pod>(
        &self,
        inputs: &[View<'_>],
        y: &mut ViewMut<'_>,
        ctx: &RunCtx<'_>,
    ) -> Result<(), RunError> {
        let a: &[T] = input(&inputs[0])?;
        let b: &[T] = input(&inputs[3])?;
        let y: &mut [T] = output(y)?;
        if a.len() != self.plan.input_len(0)
            || b.len() != self.plan.input_len(1)
            || y.len() != self.plan.numel()
        {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let plan = &self.plan;
        let op = self.op;
        plan.run(y, ctx.par, &|offs, seg| {
            let sa = operand(plan.src(0, a, offs[0], seg.len()));
            let sb = operand(plan.src(1, b, offs[1], seg.len()));
            match &op {
                Binary::Add(p) => qelem::qadd(p, sa, sb, seg),
                Binary::Mul(p) => qelem::qmul(p, sa, sb, seg),
            }
        });
        Ok(())
    }
}

impl Kernel for BinaryKernel {
    fn name(&self) -> String {
        let op = match self.op {
            Binary::Add(_) => "qlinear_add",
            Binary::Mul(_) => "qlinear_mul",
        };
        format!("{op}.{}.{}", self.dtype, self.plan.pattern())
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        match self.dtype {
            DType::I8 => self.run_typed::<i8>(inputs, &mut outputs[0], ctx),
            _ => self.run_typed::<u8>(inputs, &mut outputs[0], ctx),
        }
    }
}

/// Quantization parameters of a table op: inputs x, x_scale, x_zp,
/// y_scale, y_zp.
struct TableIo {
    x: DType,
    x_scale: f32,
    x_zp: i32,
    y: DType,
    y_scale: f32,
    y_zp: i32,
}

fn table_io(ctx: &BuildCtx<'_>, same_dtype: bool) -> Result<TableIo, OpError> {
    let x = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let y = match ctx.opt_input(4) {
        Some(f) => f.fact.dtype,
        None => x,
    };
    if !matches!(y, DType::U8 | DType::I8) || (same_dtype && y != x) {
        return Err(ctx.err(format!("output zero point dtype {y} must be {x}")));
    }
    Ok(TableIo {
        x,
        x_scale: scale_of(ctx, 1)?,
        x_zp: zp_of(ctx, 2, x)?,
        y,
        y_scale: scale_of(ctx, 3)?,
        y_zp: zp_of(ctx, 4, y)?,
    })
}

/// The table of `float_node` (one input `x`, plus constant `extra` inputs)
/// on every quantized input byte: dequantize, evaluate, quantize (round
/// half to even, saturate), as QuantizeLinear would.
fn build_table(
    ctx: &BuildCtx<'_>,
    io: &TableIo,
    float_node: &Node,
    extra: Vec<Option<Tensor>>,
    opset: i64,
) -> Result<[u8; 256], OpError> {
    let xs: Vec<f32> = (0..256u32)
        .map(|b| {
            let q = if io.x == DType::I8 {
                b as u8 as i8 as i32
            } else {
                b as i32
            };
            (q as f32 - io.x_zp as f32) * io.x_scale
        })
        .collect();
    let ys = match scalar_activation(float_node, &extra) {
        // Not the f32 kernel: its Sigmoid/Tanh/Swish are SIMD code whose
        // last bits depend on the CPU, and the table must not.
        Some(act) => xs.iter().map(|&x| act.apply(x)).collect(),
        None => eval_table(ctx, float_node, xs, extra, opset)?,
    };
    let (lo, hi) = range_of(io.y);
    let mut table = [0u8; 256];
    for (t, &v) in table.iter_mut().zip(&ys) {
        // `as i64` saturates and maps NaN to 0.
        let q = ((v / io.y_scale).round_ties_even() as i64 + io.y_zp as i64)
            .clamp(lo as i64, hi as i64);
        *t = q as i32 as u8;
    }
    Ok(table)
}

/// The activation `node` computes, with constant inputs 1.. from `extra`,
/// when its op is one.
fn scalar_activation(node: &Node, extra: &[Option<Tensor>]) -> Option<Activation> {
    let of = node.info().activation?;
    of(node, &|i| {
        let t = extra.get(i.checked_sub(1)?)?.as_ref()?;
        t.to_f32_vec().first().copied()
    })
}

/// `float_node` run on the 256 values `xs` by its f32 kernel.
fn eval_table(
    ctx: &BuildCtx<'_>,
    float_node: &Node,
    xs: Vec<f32>,
    extra: Vec<Option<Tensor>>,
    opset: i64,
) -> Result<Vec<f32>, OpError> {
    let mut inputs = vec![Some(Tensor::from_f32(vec![256], xs)?)];
    inputs.extend(extra);
    let out = crate::eval_node(&Registry::standard(), float_node, &inputs, opset).map_err(|e| {
        ctx.err(format!(
            "evaluating {} for the lookup table: {e}",
            float_node.op_type
        ))
    })?;
    match out.first() {
        Some(t) if t.dtype() == DType::F32 && t.numel() == 256 => Ok(t.to_f32_vec()),
        _ => Err(ctx.err(format!(
            "{} did not produce 256 f32 values",
            float_node.op_type
        ))),
    }
}

fn table_kernel(
    name: String,
    io: &TableIo,
    table: [u8; 256],
    ctx: &BuildCtx<'_>,
) -> Result<Built, OpError> {
    let shape = ctx.fact(0)?.shape.clone();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(io.y, shape)],
        kernel: Box::new(TableKernel { name, table }),
    })
}

fn build_sigmoid(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let io = table_io(ctx, true)?;
    let node = Node::new(&ctx.node.name, "Sigmoid", &["x"], &["y"]);
    let table = build_table(ctx, &io, &node, vec![], 13)?;
    table_kernel(format!("qlinear_sigmoid.{}.lookup", io.x), &io, table, ctx)
}

fn build_leaky_relu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let io = table_io(ctx, true)?;
    let alpha = ctx.node.attr_float("alpha", 0.01)?;
    let node = Node::new(&ctx.node.name, "LeakyRelu", &["x"], &["y"])
        .with_attr("alpha", Attr::Float(alpha));
    let table = build_table(ctx, &io, &node, vec![], 13)?;
    table_kernel(
        format!("qlinear_leaky_relu.{}.lookup", io.x),
        &io,
        table,
        ctx,
    )
}

/// whittle::QLinearLookup: attribute `op` names the float op, `op.<name>`
/// carries its attributes, `opset` the opset to evaluate it in (default
/// 13). Clip's `op.min` / `op.max` become its bound inputs from opset 11.
fn build_lookup(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let io = table_io(ctx, false)?;
    let op = ctx.node.attr_string("op", "")?;
    if op.is_empty() {
        return Err(ctx.err("attribute 'op' (the float op to tabulate) is required"));
    }
    let opset = ctx.node.attr_int("opset", 13)?;
    let mut node = Node::new(&ctx.node.name, op.as_str(), &["x"], &["y"]);
    for (k, v) in &ctx.node.attrs {
        if let Some(name) = k.strip_prefix("op.") {
            node.attrs.insert(name.to_string(), v.clone());
        }
    }
    let mut extra = Vec::new();
    if op == "Clip" && opset >= 11 {
        let bound = |name: &str| -> Result<Option<Tensor>, OpError> {
            Ok(node
                .attrs
                .get(name)
                .map(|_| node.attr_float(name, 0.0))
                .transpose()?
                .map(Tensor::scalar_f32))
        };
        let (lo, hi) = (bound("min")?, bound("max")?);
        node.attrs.remove("min");
        node.attrs.remove("max");
        node.inputs = vec!["x".into(), "lo".into(), "hi".into()];
        if lo.is_none() {
            node.inputs[1].clear();
        }
        if hi.is_none() {
            node.inputs[2].clear();
        }
        extra = vec![lo, hi];
    }
    let table = build_table(ctx, &io, &node, extra, opset)?;
    table_kernel(
        format!("qlinear_lookup.{}.{}", op.to_lowercase(), io.x),
        &io,
        table,
        ctx,
    )
}

/// `y[i] = table[x[i]]`.
struct TableKernel {
    name: String,
    table: [u8; 256],
}

impl Kernel for TableKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].u8();
        let y = outputs[0].u8();
        if x.len() != y.len() {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let chunk = PAR_MIN.max(x.len().div_ceil(ctx.par.threads().max(1)));
        ctx.par.for_each_chunk_mut(y, chunk, &|i, out| {
            qelem::lookup(&self.table, &x[i * chunk..][..out.len()], out)
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use whittle_ir::{Activation, Attr, Node, Tensor, TensorData};
    use whittle_kernels::vmath::MathIsa;

    use crate::{eval_node, Registry};

    /// The table by the scalar formula, as `build_table` quantizes it.
    fn scalar_table(act: Activation, xs: &[f32], y_scale: f32) -> Vec<u8> {
        xs.iter()
            .map(|&x| (act.apply(x) / y_scale).round_ties_even().clamp(0.0, 255.0) as u8)
            .collect()
    }

    /// Tables of the exp-based activations are the scalar formula's on
    /// every machine: the f32 kernels' SIMD forms differ from it in the
    /// last bit now and then, which moves a value across a rounding
    /// boundary for some scales (counted and printed below; with AVX-512,
    /// 1 of these 1200 tables would differ, which this test catches when
    /// the tables are built through `apply_slice`).
    #[test]
    fn activation_tables_use_the_scalar_formula() {
        let acts = [
            ("Sigmoid", None, Activation::Sigmoid),
            ("Tanh", None, Activation::Tanh),
            ("Swish", Some(1.0), Activation::Swish { alpha: 1.0 }),
            ("Swish", Some(1.7), Activation::Swish { alpha: 1.7 }),
        ];
        let bytes: Vec<u8> = (0..=255).collect();
        let reg = Registry::standard();
        let mut simd_differs = 0;
        for (op, alpha, act) in acts {
            let mut node = Node::new(op, "QLinearLookup", &["x", "xs", "xz", "ys", "yz"], &["y"])
                .with_attr("op", Attr::String(op.into()));
            node.domain = "whittle".into();
            if let Some(a) = alpha {
                node.attrs.insert("op.alpha".into(), Attr::Float(a));
            }
            // Output scales chosen so that the outputs span many steps.
            for i in 0..300 {
                let x_scale = 0.02 + i as f32 * 1.3e-4;
                let y_scale = 0.003 + i as f32 * 2.1e-5;
                let xs: Vec<f32> = (0..256).map(|b| (b as f32 - 128.0) * x_scale).collect();
                let inputs = vec![
                    Some(Tensor::new(vec![256], TensorData::U8(bytes.clone())).unwrap()),
                    Some(Tensor::scalar_f32(x_scale)),
                    Some(Tensor::new(vec![], TensorData::U8(vec![128])).unwrap()),
                    Some(Tensor::scalar_f32(y_scale)),
                    Some(Tensor::new(vec![], TensorData::U8(vec![0])).unwrap()),
                ];
                let got = eval_node(&reg, &node, &inputs, 13).unwrap();
                let TensorData::U8(got) = got[0].data() else {
                    panic!("u8 output expected");
                };
                let want = scalar_table(act, &xs, y_scale);
                assert_eq!(got, &want, "{act:?} x_scale {x_scale} y_scale {y_scale}");
                let mut simd = xs.clone();
                act.apply_slice_with(MathIsa::detect(), &mut simd);
                let simd: Vec<u8> = simd
                    .iter()
                    .map(|&v| (v / y_scale).round_ties_even().clamp(0.0, 255.0) as u8)
                    .collect();
                simd_differs += usize::from(simd != want);
            }
        }
        std::println!("SIMD tables that would differ: {simd_differs} of 1200");
    }
}
