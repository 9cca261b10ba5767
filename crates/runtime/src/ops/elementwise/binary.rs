//! Broadcasting binary and variadic ops: arithmetic (Add, Sub, Mul, Div,
//! Pow, Mod, Min, Max, Sum, Mean, PRelu), comparisons (Equal, Less,
//! Greater, LessOrEqual, GreaterOrEqual), logic (And, Or, Xor), bitwise ops
//! (BitShift, BitwiseAnd/Or/Xor). Where is in `select.rs`.
//!
//! Kernels report 0 MACs: an elementwise op does at most one arithmetic op
//! per output element and no accumulation, so counting it would only blur
//! the figure that tells conv/matmul cost apart. Its cost is memory traffic.

use std::marker::PhantomData;

use whittle_ir::DType;

use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::broadcast::{
    broadcast_shapes, fmt_shapes, legacy_broadcast_shape, Plan, Src,
};
use crate::ops::common::elem::{
    check_len, input, output, with_type, Num, Real, FLOATS, NUMERIC, WIDE,
};
use crate::ops::elementwise::unary::Map;
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add("Add", build_add);
    r.add("Sub", build_sub);
    r.add("Mul", build_mul);
    r.add("Div", build_div);
    r.add("Pow", build_pow);
    r.add("Mod", build_mod);
    r.add("Min", build_min);
    r.add("Max", build_max);
    r.add("Sum", build_sum);
    r.add("Mean", build_mean);
    r.add("PRelu", build_prelu);
    r.add("Equal", build_equal);
    r.add("Less", build_less);
    r.add("Greater", build_greater);
    r.add("LessOrEqual", build_less_equal);
    r.add("GreaterOrEqual", build_greater_equal);
    r.add("And", build_and);
    r.add("Or", build_or);
    r.add("Xor", build_xor);
    r.add("BitShift", build_bitshift);
    r.add("BitwiseAnd", build_bitwise_and);
    r.add("BitwiseOr", build_bitwise_or);
    r.add("BitwiseXor", build_bitwise_xor);
}

// ---------------------------------------------------------------------------
// Row loops. Each is generic over the op so that it monomorphises into one
// tight loop per (op, dtype, operand kind), which LLVM vectorises.

/// out[i] = f(a[i], b[i]).
#[inline(always)]
fn map2<A: Copy, B: Copy, O: Copy>(f: &impl Fn(A, B) -> O, a: Src<A>, b: Src<B>, out: &mut [O]) {
    match (a, b) {
        (Src::Slice(a), Src::Slice(b)) => {
            for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
                *o = f(x, y);
            }
        }
        (Src::Slice(a), Src::Scalar(y)) => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, y);
            }
        }
        (Src::Scalar(x), Src::Slice(b)) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(x, y);
            }
        }
        (Src::Scalar(x), Src::Scalar(y)) => out.fill(f(x, y)),
    }
}

/// out[i] = f(out[i], b[i]): the first operand lives in the output.
#[inline(always)]
fn update_first<T: Copy>(f: &impl Fn(T, T) -> T, out: &mut [T], b: Src<T>) {
    match b {
        Src::Slice(b) => {
            for (o, &y) in out.iter_mut().zip(b) {
                *o = f(*o, y);
            }
        }
        Src::Scalar(y) => {
            for o in out.iter_mut() {
                *o = f(*o, y);
            }
        }
    }
}

/// out[i] = f(a[i], out[i]): the second operand lives in the output.
#[inline(always)]
fn update_second<T: Copy>(f: &impl Fn(T, T) -> T, a: Src<T>, out: &mut [T]) {
    match a {
        Src::Slice(a) => {
            for (o, &x) in out.iter_mut().zip(a) {
                *o = f(x, *o);
            }
        }
        Src::Scalar(x) => {
            for o in out.iter_mut() {
                *o = f(x, *o);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Kernels.

/// A same-type op folded over one or more inputs: `out = f(in0, in1)`, then
/// `out = f(out, in_k)` for each further input (Max/Min/Sum/Mean are
/// variadic), then an optional finishing pass (Mean divides). Input 0 (or 1
/// when there are exactly two) may share the output's buffer.
struct Fold<T, F> {
    name: String,
    /// `plans[0]` maps (in0, in1); `plans[k-1]` maps (out, in_k) for k >= 2.
    plans: Vec<Plan<2>>,
    numel: usize,
    inputs: usize,
    f: F,
    finish: Option<fn(&mut [T], usize)>,
    inplace: Option<usize>,
}

impl<T: Num, F: Fn(T, T) -> T + Send + Sync> Kernel for Fold<T, F> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn inplace_input(&self) -> Option<usize> {
        self.inplace
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let out = output::<T>(&mut outputs[0])?;
        check_len(out, self.numel)?;
        let f = &self.f;
        let par = ctx.par;
        if self.inputs == 1 {
            if !inputs[0].is_aliased() {
                let a = input::<T>(&inputs[0])?;
                check_len(a, self.numel)?;
                out.copy_from_slice(a);
            }
        } else {
            let p = &self.plans[0];
            if inputs[0].is_aliased() {
                let b = input::<T>(&inputs[1])?;
                check_len(b, p.input_len(1))?;
                p.run(out, par, &|offs, seg| {
                    update_first(f, seg, p.src(1, b, offs[1], seg.len()))
                });
            } else if inputs[1].is_aliased() {
                let a = input::<T>(&inputs[0])?;
                check_len(a, p.input_len(0))?;
                p.run(out, par, &|offs, seg| {
                    update_second(f, p.src(0, a, offs[0], seg.len()), seg)
                });
            } else {
                let a = input::<T>(&inputs[0])?;
                let b = input::<T>(&inputs[1])?;
                check_len(a, p.input_len(0))?;
                check_len(b, p.input_len(1))?;
                p.run(out, par, &|offs, seg| {
                    let n = seg.len();
                    map2(f, p.src(0, a, offs[0], n), p.src(1, b, offs[1], n), seg)
                });
            }
        }
        for (k, p) in self.plans.iter().enumerate().skip(1) {
            let b = input::<T>(&inputs[k + 1])?;
            check_len(b, p.input_len(1))?;
            p.run(out, par, &|offs, seg| {
                update_first(f, seg, p.src(1, b, offs[1], seg.len()))
            });
        }
        if let Some(finish) = self.finish {
            finish(out, self.inputs);
        }
        Ok(())
    }
}

/// A binary op whose operand and result types may differ (comparisons,
/// Pow with a different exponent type). Never in place.
struct Zip<A, B, O, F> {
    name: String,
    plan: Plan<2>,
    f: F,
    _types: PhantomData<fn(A, B) -> O>,
}

impl<A, B, O, F> Kernel for Zip<A, B, O, F>
where
    A: Num,
    B: Num,
    O: bytemuck::Pod + Send,
    F: Fn(A, B) -> O + Send + Sync,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let p = &self.plan;
        let a = input::<A>(&inputs[0])?;
        let b = input::<B>(&inputs[1])?;
        let out = output::<O>(&mut outputs[0])?;
        check_len(a, p.input_len(0))?;
        check_len(b, p.input_len(1))?;
        check_len(out, p.numel())?;
        let f = &self.f;
        p.run(out, ctx.par, &|offs, seg| {
            let n = seg.len();
            map2(f, p.src(0, a, offs[0], n), p.src(1, b, offs[1], n), seg)
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Build-time helpers.

/// Ops that had the `broadcast`/`axis` attributes before opset 7.
const LEGACY_BROADCAST: &[&str] = &[
    "Add", "Sub", "Mul", "Div", "Pow", "And", "Or", "Xor", "Equal", "Less", "Greater",
];

/// Shapes of a binary op's two inputs as they broadcast. Before opset 7,
/// the ops in [`LEGACY_BROADCAST`] need equal shapes unless `broadcast=1`,
/// which aligns B to A at `axis`.
fn binary_shapes(ctx: &BuildCtx<'_>) -> Result<[Vec<usize>; 2], OpError> {
    let a = ctx.fact(0)?.shape.clone();
    let b = ctx.fact(1)?.shape.clone();
    if ctx.opset >= 7 || !LEGACY_BROADCAST.contains(&ctx.node.op_type.as_str()) {
        return Ok([a, b]);
    }
    if ctx.node.attr_int("broadcast", 0)? != 0 {
        let axis = ctx.node.attr_int_opt("axis")?;
        let b = legacy_broadcast_shape(&a, &b, axis).map_err(|m| ctx.err(m))?;
        Ok([a, b])
    } else if a == b {
        Ok([a, b])
    } else {
        Err(ctx.err(format!(
            "inputs have shapes {} and broadcast=0 (opset {} needs equal shapes)",
            fmt_shapes(&[&a, &b]),
            ctx.opset
        )))
    }
}

/// The broadcast output shape of `shapes`, or an error naming them.
pub(super) fn out_shape(ctx: &BuildCtx<'_>, shapes: &[&[usize]]) -> Result<Vec<usize>, OpError> {
    broadcast_shapes(shapes)
        .ok_or_else(|| ctx.err(format!("cannot broadcast shapes {}", fmt_shapes(shapes))))
}

/// Checks that inputs `ids` all have input `first`'s dtype.
pub(super) fn same_dtype(
    ctx: &BuildCtx<'_>,
    first: usize,
    ids: &[usize],
) -> Result<DType, OpError> {
    let dt = ctx.fact(first)?.dtype;
    for &i in ids {
        let other = ctx.fact(i)?.dtype;
        if other != dt {
            return Err(ctx.err(format!(
                "input {i} has dtype {other} but input {first} has {dt}; they must match"
            )));
        }
    }
    Ok(dt)
}

/// Everything a [`Fold`] needs except its op.
struct FoldSpec {
    name: String,
    plans: Vec<Plan<2>>,
    out: Vec<usize>,
    inputs: usize,
    inplace: Option<usize>,
}

/// Validates a same-type op over `ctx`'s inputs (all required, one dtype
/// from `allowed`) and plans its broadcasting.
fn fold_spec(
    ctx: &BuildCtx<'_>,
    op: &str,
    allowed: &[DType],
) -> Result<(DType, FoldSpec), OpError> {
    let n = ctx.num_inputs();
    if n == 0 {
        return Err(ctx.err("needs at least one input"));
    }
    let dt = ctx.expect_dtype(0, allowed)?;
    same_dtype(ctx, 0, &(1..n).collect::<Vec<_>>())?;
    let shapes: Vec<Vec<usize>> = if n == 2 {
        binary_shapes(ctx)?.into()
    } else {
        (0..n)
            .map(|i| Ok(ctx.fact(i)?.shape.clone()))
            .collect::<Result<_, OpError>>()?
    };
    let refs: Vec<&[usize]> = shapes.iter().map(Vec::as_slice).collect();
    let out = out_shape(ctx, &refs)?;
    let mut plans = Vec::new();
    if n >= 2 {
        plans.push(Plan::new([refs[0], refs[1]], &out).map_err(|m| ctx.err(m))?);
        for s in &refs[2..] {
            plans.push(Plan::new([&out, s], &out).map_err(|m| ctx.err(m))?);
        }
    }
    let inplace = if refs[0] == out.as_slice() {
        Some(0)
    } else if n == 2 && refs[1] == out.as_slice() {
        Some(1)
    } else {
        None
    };
    let pattern = plans.first().map_or("same", Plan::pattern);
    Ok((
        dt,
        FoldSpec {
            name: format!("{op}.{dt}.{pattern}"),
            plans,
            out,
            inputs: n,
            inplace,
        },
    ))
}

impl FoldSpec {
    fn build<T: Num, F: Fn(T, T) -> T + Send + Sync + 'static>(
        self,
        dt: DType,
        f: F,
        finish: Option<fn(&mut [T], usize)>,
    ) -> Built {
        let numel = self.out.iter().product();
        Built::Kernel {
            outputs: vec![Fact::new(dt, self.out)],
            kernel: Box::new(Fold {
                name: self.name,
                plans: self.plans,
                numel,
                inputs: self.inputs,
                f,
                finish,
                inplace: self.inplace,
            }),
        }
    }
}

/// Builds a same-type op: `fold!(ctx, "add", [F32, ...], T => f)` where `f`
/// is a `Fn(T, T) -> T` written once for every listed dtype.
macro_rules! fold {
    ($ctx:expr, $op:expr, [$($v:ident),+], $T:ident => $f:expr) => {
        fold!($ctx, $op, [$($v),+], $T => $f, None)
    };
    ($ctx:expr, $op:expr, [$($v:ident),+], $T:ident => $f:expr, $finish:expr) => {{
        let (dt, spec) = fold_spec($ctx, $op, &[$(DType::$v),+])?;
        with_type!(dt, [$($v),+], $T => Ok(spec.build::<$T, _>(dt, $f, $finish)),
            _ => unreachable!("fold_spec checked the dtype"))
    }};
}

/// Builds a comparison: same-type inputs, bool output.
macro_rules! compare {
    ($ctx:expr, $op:expr, [$($v:ident),+], $T:ident => $f:expr) => {{
        let ctx: &BuildCtx<'_> = $ctx;
        if ctx.num_inputs() != 2 {
            return Err(ctx.err("needs exactly two inputs"));
        }
        let dt = ctx.expect_dtype(0, &[$(DType::$v),+])?;
        same_dtype(ctx, 0, &[1])?;
        let [a, b] = binary_shapes(ctx)?;
        let out = out_shape(ctx, &[&a, &b])?;
        let plan = Plan::new([&a, &b], &out).map_err(|m| ctx.err(m))?;
        let name = format!("{}.{dt}.{}", $op, plan.pattern());
        with_type!(dt, [$($v),+], $T => Ok(Built::Kernel {
            outputs: vec![Fact::new(DType::Bool, out)],
            kernel: Box::new(Zip::<$T, $T, u8, _> {
                name,
                plan,
                f: $f,
                _types: PhantomData,
            }),
        }), _ => unreachable!("dtype checked"))
    }};
}

/// Every numeric dtype, for the macros above.
macro_rules! numeric {
    ($m:ident!($ctx:expr, $op:expr, $T:ident => $f:expr $(, $rest:expr)?)) => {
        $m!($ctx, $op, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], $T => $f $(, $rest)?)
    };
}

// ---------------------------------------------------------------------------
// Builders.

fn two_inputs(ctx: &BuildCtx<'_>) -> Result<(), OpError> {
    if ctx.num_inputs() == 2 {
        Ok(())
    } else {
        Err(ctx.err(format!(
            "needs exactly two inputs, got {}",
            ctx.num_inputs()
        )))
    }
}

fn build_add(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    numeric!(fold!(ctx, "add", T => <T as Num>::add))
}

fn build_sub(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    numeric!(fold!(ctx, "sub", T => <T as Num>::sub))
}

fn build_mul(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    numeric!(fold!(ctx, "mul", T => <T as Num>::mul))
}

fn build_div(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    numeric!(fold!(ctx, "div", T => <T as Num>::div))
}

fn build_mod(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    // fmod=0 on floats is disallowed by the spec; the reference computes
    // numpy's mod (sign of the divisor) anyway, and so do we.
    if ctx.node.attr_int("fmod", 0)? != 0 {
        numeric!(fold!(ctx, "fmod", T => <T as Num>::fmod))
    } else {
        numeric!(fold!(ctx, "mod", T => <T as Num>::modulo))
    }
}

fn build_min(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(fold!(ctx, "min", T => <T as Num>::min_nan))
}

fn build_max(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(fold!(ctx, "max", T => <T as Num>::max_nan))
}

fn build_sum(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(fold!(ctx, "sum", T => <T as Num>::add))
}

/// Divides the accumulated sum by the number of inputs.
fn mean_finish<T: Num>(out: &mut [T], n: usize) {
    let d = T::from_f64(n as f64);
    out.iter_mut().for_each(|x| *x = x.div(d));
}

fn build_mean(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    fold!(ctx, "mean", [F32, F64, F16, BF16], T => <T as Num>::add, Some(mean_finish::<T>))
}

/// x if x >= 0 else slope * x.
#[inline(always)]
fn prelu<T: Num>(x: T, slope: T) -> T {
    if x < T::ZERO {
        x.mul(slope)
    } else {
        x
    }
}

fn build_prelu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    // The slope broadcasts to X (unidirectionally): the output is X's shape.
    let x = &ctx.fact(0)?.shape;
    let slope = &ctx.fact(1)?.shape;
    if out_shape(ctx, &[x, slope])? != *x {
        return Err(ctx.err(format!(
            "slope of shape {slope:?} does not broadcast to X's shape {x:?}"
        )));
    }
    fold!(ctx, "prelu", [F32, F64, F16, BF16, I32, I64, U32, U64], T => prelu::<T>)
}

fn build_and(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "and", [Bool], T => |a: T, b: T| a & b)
}

fn build_or(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "or", [Bool], T => |a: T, b: T| a | b)
}

fn build_xor(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "xor", [Bool], T => |a: T, b: T| a ^ b)
}

fn build_bitwise_and(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "bitwise_and", [I8, U8, I16, U16, I32, U32, I64, U64], T => |a: T, b: T| a & b)
}

fn build_bitwise_or(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "bitwise_or", [I8, U8, I16, U16, I32, U32, I64, U64], T => |a: T, b: T| a | b)
}

fn build_bitwise_xor(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    fold!(ctx, "bitwise_xor", [I8, U8, I16, U16, I32, U32, I64, U64], T => |a: T, b: T| a ^ b)
}

// The dtype macros cast every listed type, including to itself.
#[allow(clippy::unnecessary_cast)]
fn build_bitshift(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    // Shifting by the bit width or more (or by a negative amount) clears
    // every bit, as numpy does, instead of Rust's overflow panic.
    match ctx.node.attr_string("direction", "")?.as_str() {
        "LEFT" => fold!(ctx, "shl", [I8, U8, I16, U16, I32, U32, I64, U64], T => |a: T, b: T| {
            if (b as u64) < u64::from(T::BITS) { a << (b as u32) } else { 0 }
        }),
        "RIGHT" => fold!(ctx, "shr", [I8, U8, I16, U16, I32, U32, I64, U64], T => |a: T, b: T| {
            if (b as u64) < u64::from(T::BITS) { a >> (b as u32) } else { 0 }
        }),
        other => Err(ctx.err(format!(
            "attribute 'direction' must be LEFT or RIGHT, got '{other}'"
        ))),
    }
}

fn build_equal(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    compare!(ctx, "equal", [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64, Bool],
        T => |a: T, b: T| u8::from(a == b))
}

fn build_less(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(compare!(ctx, "less", T => |a: T, b: T| u8::from(a < b)))
}

fn build_greater(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(compare!(ctx, "greater", T => |a: T, b: T| u8::from(a > b)))
}

fn build_less_equal(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(compare!(ctx, "less_equal", T => |a: T, b: T| u8::from(a <= b)))
}

fn build_greater_equal(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    numeric!(compare!(ctx, "greater_equal", T => |a: T, b: T| u8::from(a >= b)))
}

/// a^b for integers by repeated squaring, wrapping like numpy. A negative
/// exponent gives trunc(1 / a^|b|): 0 unless |a| is 1 (0 for a = 0, where
/// the true value is infinite and any integer is as wrong as another).
fn int_pow(a: i64, b: i64) -> i64 {
    if b < 0 {
        return match a {
            1 => 1,
            -1 => {
                if b % 2 == 0 {
                    1
                } else {
                    -1
                }
            }
            _ => 0,
        };
    }
    let (mut base, mut e, mut acc) = (a, b as u64, 1i64);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    acc
}

#[allow(clippy::unnecessary_cast)]
fn build_pow(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    two_inputs(ctx)?;
    // Opset 12 let the exponent's type differ from the base's.
    let base = ctx.expect_dtype(0, &WIDE[..6])?;
    let exp_dt = if ctx.opset >= 12 {
        ctx.expect_dtype(1, NUMERIC)?
    } else {
        ctx.expect_dtype(0, FLOATS)?;
        same_dtype(ctx, 0, &[1])?
    };
    let [a, b] = binary_shapes(ctx)?;
    let out = out_shape(ctx, &[&a, &b])?;
    // x^2 (LayerNorm, variance) as a multiply: exact, and it vectorises.
    if base == DType::F32 && exp_dt == DType::F32 && out == a {
        if let Some(e) = ctx.input(1)?.value {
            if e.numel() == 1 && e.as_f32().map_err(OpError::from)?[0] == 2.0 {
                let numel = out.iter().product();
                return Ok(Built::Kernel {
                    outputs: vec![Fact::new(base, out)],
                    kernel: Box::new(Map::new("pow2.f32", numel, |x: f32| x * x)),
                });
            }
        }
    }
    if base == exp_dt {
        if let Some(built) = with_type!(base, [F32, F64], T => Some(
            fold!(ctx, "pow", [F32, F64], T => <T as Real>::powf)), _ => None)
        {
            return built;
        }
    }
    let plan = Plan::new([&a, &b], &out).map_err(|m| ctx.err(m))?;
    let name = format!("pow.{base}.{exp_dt}.{}", plan.pattern());
    let outputs = vec![Fact::new(base, out)];
    macro_rules! zip {
        ($A:ty, $B:ty, $f:expr) => {
            Ok(Built::Kernel {
                outputs,
                kernel: Box::new(Zip::<$A, $B, $A, _> {
                    name,
                    plan,
                    f: $f,
                    _types: PhantomData,
                }),
            })
        };
    }
    with_type!(base, [F32, F64, F16, BF16], A =>
        with_type!(exp_dt, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], B =>
            zip!(A, B, |x: A, y: B| A::from_f64(x.to_f64().powf(y.to_f64()))),
            _ => unreachable!("dtype checked")),
    _ => with_type!(base, [I32, I64], A =>
        with_type!(exp_dt, [I8, U8, I16, U16, I32, U32, I64], B =>
            zip!(A, B, |x: A, y: B| int_pow(x as i64, y as i64) as A),
            _ => with_type!(exp_dt, [U64], B =>
                zip!(A, B, |x: A, y: B| int_pow(x as i64, y.min(i64::MAX as u64) as i64) as A),
                // A float exponent: numpy computes in f64 and casts back.
                _ => with_type!(exp_dt, [F32, F64, F16, BF16], B =>
                    zip!(A, B, |x: A, y: B| A::from_f64((x as f64).powf(y.to_f64()))),
                    _ => unreachable!("dtype checked")))),
        _ => unreachable!("dtype checked")))
}
