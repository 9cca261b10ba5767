//! Unary elementwise ops: math (Sqrt, Exp, Log, trigonometry, Erf, ...),
//! rounding, sign ops, activations (Relu, Clip, LeakyRelu, Elu, Selu,
//! Sigmoid, HardSigmoid, HardSwish, Tanh, Softplus, Softsign, Gelu, ...),
//! logic (Not, BitwiseNot) and tests (IsNaN, IsInf).
//!
//! f32 activations that [`Activation`] implements run through its
//! `apply_slice`, the same code the fused Conv/Gemm epilogues use. f16 and
//! bf16 compute in f32 and round once; f64 computes in f64. All of these
//! kernels can run in place, and report 0 MACs (see `elementwise.rs`).

use std::marker::PhantomData;

use bytemuck::Pod;
use half::{bf16, f16};
use whittle_ir::DType;
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::broadcast::Plan;
use crate::ops::common::elem::{
    check_len, input, output, with_type, Half, Num, Real, FLOATS, NUMERIC, SIGNED,
};
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add("Sqrt", |c| float_map!(c, "sqrt", |x: R| x.sqrt()));
    r.add("Exp", |c| float_map!(c, "exp", |x: R| x.exp()));
    r.add("Log", |c| float_map!(c, "log", |x: R| x.ln()));
    r.add("Reciprocal", |c| {
        float_map!(c, "reciprocal", |x: R| 1.0 / x)
    });
    r.add("Floor", |c| float_map!(c, "floor", |x: R| x.floor()));
    r.add("Ceil", |c| float_map!(c, "ceil", |x: R| x.ceil()));
    r.add("Round", |c| {
        float_map!(c, "round", |x: R| x.round_ties_even())
    });
    r.add("Erf", |c| float_map!(c, "erf", |x: R| Real::erf(x)));
    r.add("Sin", |c| float_map!(c, "sin", |x: R| x.sin()));
    r.add("Cos", |c| float_map!(c, "cos", |x: R| x.cos()));
    r.add("Tan", |c| float_map!(c, "tan", |x: R| x.tan()));
    r.add("Asin", |c| float_map!(c, "asin", |x: R| x.asin()));
    r.add("Acos", |c| float_map!(c, "acos", |x: R| x.acos()));
    r.add("Atan", |c| float_map!(c, "atan", |x: R| x.atan()));
    r.add("Sinh", |c| float_map!(c, "sinh", |x: R| x.sinh()));
    r.add("Cosh", |c| float_map!(c, "cosh", |x: R| x.cosh()));
    r.add("Asinh", |c| float_map!(c, "asinh", |x: R| x.asinh()));
    r.add("Acosh", |c| float_map!(c, "acosh", |x: R| x.acosh()));
    r.add("Atanh", |c| float_map!(c, "atanh", |x: R| x.atanh()));
    r.add("Softsign", |c| {
        float_map!(c, "softsign", |x: R| x / (1.0 + x.abs()))
    });
    r.add("Softplus", |c| {
        float_map!(c, "softplus", |x: R| softplus(x))
    });
    r.add("Mish", |c| {
        float_map!(c, "mish", |x: R| x * softplus(x).tanh())
    });
    r.add("Elu", build_elu);
    r.add("Selu", build_selu);
    r.add("Celu", build_celu);
    r.add("ThresholdedRelu", build_thresholded_relu);
    r.add("Gelu", build_gelu);
    // Every activation of the op table runs on the kernels' own formula;
    // Relu also takes integers and Clip run-time bounds, so they have
    // builders of their own.
    for op in whittle_ir::ops::all_ops() {
        if op.activation.is_some() && op.domain.is_empty() {
            r.add(op.op_type, build_activation);
        }
    }
    r.add("Relu", build_relu);
    r.add("Clip", build_clip);
    r.add("Neg", build_neg);
    r.add("Abs", build_abs);
    r.add("Sign", build_sign);
    r.add("Not", build_not);
    r.add("BitwiseNot", build_bitwise_not);
    r.add("IsNaN", build_isnan);
    r.add("IsInf", build_isinf);
    r.add("Shrink", build_shrink);
}

// ---------------------------------------------------------------------------
// Kernels.

/// `out = f(x)` with the same type in and out; runs in place when offered.
pub(crate) struct Map<T, F> {
    name: String,
    plan: Plan<1>,
    f: F,
    _t: PhantomData<fn(T) -> T>,
}

impl<T, F> Map<T, F> {
    /// A kernel applying `f` to `numel` elements.
    pub(crate) fn new(name: impl Into<String>, numel: usize, f: F) -> Map<T, F> {
        Map {
            name: name.into(),
            plan: flat_plan(numel),
            f,
            _t: PhantomData,
        }
    }
}

/// A plan over one contiguous run, for its thread splitting.
fn flat_plan(numel: usize) -> Plan<1> {
    Plan::new([&[numel]], &[numel]).expect("a shape broadcasts to itself")
}

impl<T: Pod + Send + Sync, F: Fn(T) -> T + Send + Sync> Kernel for Map<T, F> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let f = &self.f;
        run_in_place(&self.plan, inputs, outputs, ctx, &|seg, x| match x {
            None => seg.iter_mut().for_each(|x| *x = f(*x)),
            Some(x) => seg.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x)),
        })
    }
}

/// `out = f(x)` where the output type differs (Cast, IsNaN): never in place.
pub(crate) struct Convert<I, O, F> {
    name: String,
    plan: Plan<1>,
    f: F,
    _t: PhantomData<fn(I) -> O>,
}

impl<I, O, F> Convert<I, O, F> {
    /// A kernel converting `numel` elements with `f`.
    pub(crate) fn new(name: impl Into<String>, numel: usize, f: F) -> Convert<I, O, F> {
        Convert {
            name: name.into(),
            plan: flat_plan(numel),
            f,
            _t: PhantomData,
        }
    }
}

impl<I, O, F> Kernel for Convert<I, O, F>
where
    I: Pod + Send + Sync,
    O: Pod + Send + Sync,
    F: Fn(I) -> O + Send + Sync,
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
        let x = input::<I>(&inputs[0])?;
        let out = output::<O>(&mut outputs[0])?;
        check_len(x, self.plan.numel())?;
        check_len(out, self.plan.numel())?;
        let f = &self.f;
        self.plan.run(out, ctx.par, &|offs, seg| {
            let x = &x[offs[0]..offs[0] + seg.len()];
            seg.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x));
        });
        Ok(())
    }
}

/// An f32 activation through [`Activation::apply_slice`], in place.
struct ActF32 {
    name: String,
    plan: Plan<1>,
    act: Activation,
}

impl Kernel for ActF32 {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let act = self.act;
        run_in_place(&self.plan, inputs, outputs, ctx, &|seg, x| {
            if let Some(x) = x {
                seg.copy_from_slice(x);
            }
            act.apply_slice(seg);
        })
    }
}

/// Clip whose bounds are inputs 1 and 2 (opset 11+, read at run time,
/// either may be omitted) or fixed attributes (before opset 11).
struct Clip<T> {
    name: String,
    plan: Plan<1>,
    /// Bounds from attributes, or the defaults for omitted inputs.
    bounds: (T, T),
    /// Whether the bounds come from inputs 1 and 2.
    from_inputs: bool,
    /// T is f32: clip through the shared [`Activation`].
    shared_f32: bool,
}

impl<T: Num + Copy> Clip<T> {
    /// The bounds for this run: a given input overrides the default.
    fn bounds(&self, inputs: &[View<'_>]) -> Result<(T, T), RunError> {
        let (mut lo, mut hi) = self.bounds;
        if self.from_inputs {
            for (i, bound) in [(1, &mut lo), (2, &mut hi)] {
                if let Some(v) = inputs.get(i).filter(|v| !v.bytes().is_empty()) {
                    let v = input::<T>(v)?;
                    check_len(v, 1)?;
                    *bound = v[0];
                }
            }
        }
        Ok((lo, hi))
    }
}

impl<T: Num + Copy> Kernel for Clip<T> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (lo, hi) = self.bounds(inputs)?;
        // f32 takes the shared activation; other types keep NaN like numpy.
        let act = match (
            bytemuck::try_cast::<T, f32>(lo),
            bytemuck::try_cast::<T, f32>(hi),
        ) {
            (Ok(min), Ok(max)) if self.shared_f32 => Some(Activation::Clip { min, max }),
            _ => None,
        };
        run_in_place(&self.plan, inputs, outputs, ctx, &|seg: &mut [T], x| {
            if let Some(x) = x {
                seg.copy_from_slice(x);
            }
            match (act, bytemuck::try_cast_slice_mut::<T, f32>(seg)) {
                (Some(act), Ok(seg)) => act.apply_slice(seg),
                (_, _) => {
                    for v in seg.iter_mut() {
                        let y = if *v < lo { lo } else { *v };
                        *v = if y > hi { hi } else { y };
                    }
                }
            }
        })
    }
}

/// Runs a kernel over input 0's elements that may run in place: `body`
/// gets each output segment with the matching input segment, or `None`
/// when the planner aliased input 0 to the output (which then holds it).
fn run_in_place<T, B>(
    plan: &Plan<1>,
    inputs: &[View<'_>],
    outputs: &mut [ViewMut<'_>],
    ctx: &RunCtx<'_>,
    body: &B,
) -> Result<(), RunError>
where
    T: Pod + Send + Sync,
    B: Fn(&mut [T], Option<&[T]>) + Sync,
{
    let out = output::<T>(&mut outputs[0])?;
    check_len(out, plan.numel())?;
    let x = if inputs[0].is_aliased() {
        None
    } else {
        let x = input::<T>(&inputs[0])?;
        check_len(x, plan.numel())?;
        Some(x)
    };
    plan.run(out, ctx.par, &|offs, seg| {
        body(seg, x.map(|x| &x[offs[0]..offs[0] + seg.len()]));
    });
    Ok(())
}

// ---------------------------------------------------------------------------
// Builders.

/// Checks a unary op's single input against `allowed` and returns its
/// dtype and element count.
fn unary_input(ctx: &BuildCtx<'_>, allowed: &[DType]) -> Result<(DType, Vec<usize>), OpError> {
    let dt = ctx.expect_dtype(0, allowed)?;
    Ok((dt, ctx.fact(0)?.shape.clone()))
}

/// A [`Map`] kernel producing the input's fact.
fn map<T: Pod + Send + Sync, F: Fn(T) -> T + Send + Sync + 'static>(
    op: &str,
    dt: DType,
    shape: Vec<usize>,
    f: F,
) -> Result<Built, OpError> {
    let numel = shape.iter().product();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dt, shape)],
        kernel: Box::new(Map::new(format!("{op}.{dt}"), numel, f)),
    })
}

/// A float op written once as `|x: R| body` with `R` = f32 or f64; f16 and
/// bf16 evaluate the f32 body and round.
macro_rules! float_map {
    ($ctx:expr, $op:expr, |$x:ident: $R:ident| $body:expr) => {{
        let (dt, shape) = unary_input($ctx, FLOATS)?;
        match dt {
            DType::F32 => {
                #[allow(dead_code)]
                type $R = f32;
                map(
                    $op,
                    dt,
                    shape,
                    #[allow(clippy::redundant_closure)]
                    move |$x: f32| -> f32 { $body },
                )
            }
            DType::F64 => {
                #[allow(dead_code)]
                type $R = f64;
                map(
                    $op,
                    dt,
                    shape,
                    #[allow(clippy::redundant_closure)]
                    move |$x: f64| -> f64 { $body },
                )
            }
            DType::F16 => {
                #[allow(dead_code)]
                type $R = f32;
                map($op, dt, shape, move |h: f16| -> f16 {
                    let $x: f32 = h.widen();
                    f16::narrow($body)
                })
            }
            _ => {
                #[allow(dead_code)]
                type $R = f32;
                map($op, dt, shape, move |h: bf16| -> bf16 {
                    let $x: f32 = h.widen();
                    bf16::narrow($body)
                })
            }
        }
    }};
}
use float_map;

/// ln(1 + e^x) without overflow for large x.
#[inline(always)]
fn softplus<R: Real + std::ops::Add<Output = R> + std::ops::Neg<Output = R>>(x: R) -> R {
    if x > R::ZERO {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// An op that [`Activation`] implements: f32 through `apply_slice`, halves
/// through `apply` in f32, f64 through the same formula in f64.
fn activation(ctx: &BuildCtx<'_>, op: &str, act: Activation) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, FLOATS)?;
    match dt {
        DType::F32 => {
            let numel = shape.iter().product();
            Ok(Built::Kernel {
                outputs: vec![Fact::new(dt, shape)],
                kernel: Box::new(ActF32 {
                    name: format!("{op}.f32"),
                    plan: flat_plan(numel),
                    act,
                }),
            })
        }
        DType::F64 => map(op, dt, shape, move |x: f64| act.eval(x)),
        DType::F16 => map(op, dt, shape, move |x: f16| {
            f16::narrow(act.apply(x.widen()))
        }),
        _ => map(op, dt, shape, move |x: bf16| {
            bf16::narrow(act.apply(x.widen()))
        }),
    }
}

/// An activation op of the op table, with its parameters read the way the
/// fusion pass reads them.
fn build_activation(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let of = ctx
        .node
        .info()
        .activation
        .ok_or_else(|| ctx.err("not an activation"))?;
    let scalar = |i: usize| ctx.opt_input(i)?.value?.as_scalar_f32();
    let act = of(ctx.node, &scalar).ok_or_else(|| {
        ctx.err(format!(
            "invalid activation parameters {:?}",
            ctx.node.attrs
        ))
    })?;
    activation(ctx, act.name(), act)
}

fn build_relu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    // Opset 14 added signed integers.
    let (dt, shape) = unary_input(ctx, SIGNED)?;
    with_type!(dt, [I8, I16, I32, I64], T => map("relu", dt, shape, |x: T| x.max(0)),
        _ => activation(ctx, "relu", Activation::Relu))
}

fn build_elu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let alpha = ctx.node.attr_float("alpha", 1.0)?;
    float_map!(ctx, "elu", |x: R| if x >= 0.0 {
        x
    } else {
        alpha as R * x.exp_m1()
    })
}

fn build_selu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let alpha = ctx.node.attr_float("alpha", 1.673_263_2)?;
    let gamma = ctx.node.attr_float("gamma", 1.050_701)?;
    float_map!(ctx, "selu", |x: R| {
        let y = if x > 0.0 { x } else { alpha as R * x.exp_m1() };
        gamma as R * y
    })
}

fn build_celu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let alpha = ctx.node.attr_float("alpha", 1.0)?;
    if alpha == 0.0 {
        return Err(ctx.err("attribute 'alpha' must not be 0"));
    }
    float_map!(ctx, "celu", |x: R| {
        let a = alpha as R;
        x.max(0.0) + (a * (x / a).exp_m1()).min(0.0)
    })
}

fn build_thresholded_relu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let alpha = ctx.node.attr_float("alpha", 1.0)?;
    float_map!(ctx, "thresholdedrelu", |x: R| if x > alpha as R {
        x
    } else {
        0.0
    })
}

fn build_gelu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    match ctx.node.attr_string("approximate", "none")?.as_str() {
        "none" => float_map!(ctx, "gelu", |x: R| {
            0.5 * x * (1.0 + Real::erf(x * std::f64::consts::FRAC_1_SQRT_2 as R))
        }),
        "tanh" => float_map!(ctx, "gelu_tanh", |x: R| {
            let k = (2.0 / std::f64::consts::PI).sqrt() as R;
            0.5 * x * (1.0 + (k * (x + 0.044715 * x * x * x)).tanh())
        }),
        other => Err(ctx.err(format!(
            "attribute 'approximate' must be 'none' or 'tanh', got '{other}'"
        ))),
    }
}

fn build_clip(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, NUMERIC)?;
    let from_inputs = ctx.opset >= 11;
    if from_inputs {
        for i in 1..ctx.num_inputs().min(3) {
            if let Some(bound) = ctx.opt_input(i) {
                if bound.fact.dtype != dt {
                    return Err(ctx.err(format!(
                        "bound input {i} has dtype {} but the input has {dt}",
                        bound.fact.dtype
                    )));
                }
                if bound.fact.numel() != 1 {
                    return Err(ctx.err(format!(
                        "bound input {i} must be a scalar, got shape {:?}",
                        bound.fact.shape
                    )));
                }
            }
        }
    } else if !FLOATS.contains(&dt) {
        return Err(ctx.err(format!("dtype {dt} needs opset 11 or later")));
    }
    // Before opset 11 the bounds are attributes defaulting to the float range.
    let lo = ctx.node.attr_float("min", f32::MIN)?;
    let hi = ctx.node.attr_float("max", f32::MAX)?;
    let numel = shape.iter().product();
    let outputs = vec![Fact::new(dt, shape)];
    with_type!(dt, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T => {
        let bounds: (T, T) = if from_inputs {
            // Omitted bounds: the type's whole range (infinities for floats).
            (T::from_f64(f64::NEG_INFINITY), T::from_f64(f64::INFINITY))
        } else {
            (T::from_f64(lo.into()), T::from_f64(hi.into()))
        };
        Ok(Built::Kernel {
            outputs,
            kernel: Box::new(Clip::<T> {
                name: format!("clip.{dt}"),
                plan: flat_plan(numel),
                bounds,
                from_inputs,
                shared_f32: dt == DType::F32,
            }),
        })
    }, _ => unreachable!("dtype checked"))
}

fn build_neg(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, SIGNED)?;
    with_type!(dt, [F32, F64, F16, BF16, I8, I16, I32, I64], T =>
        map("neg", dt, shape, <T as Num>::neg), _ => unreachable!("dtype checked"))
}

fn build_abs(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, NUMERIC)?;
    with_type!(dt, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T =>
        map("abs", dt, shape, <T as Num>::abs), _ => unreachable!("dtype checked"))
}

fn build_sign(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, NUMERIC)?;
    with_type!(dt, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T =>
        map("sign", dt, shape, <T as Num>::sign), _ => unreachable!("dtype checked"))
}

fn build_not(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, &[DType::Bool])?;
    map("not", dt, shape, |x: u8| u8::from(x == 0))
}

fn build_bitwise_not(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, crate::ops::common::elem::INTEGERS)?;
    with_type!(dt, [I8, U8, I16, U16, I32, U32, I64, U64], T =>
        map("bitwise_not", dt, shape, |x: T| !x), _ => unreachable!("dtype checked"))
}

fn build_shrink(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let lambd = f64::from(ctx.node.attr_float("lambd", 0.5)?);
    let bias = f64::from(ctx.node.attr_float("bias", 0.0)?);
    let (dt, shape) = unary_input(ctx, NUMERIC)?;
    // numpy evaluates the float attributes against integer data in f64 and
    // casts back; doing the same keeps one formula for every type.
    with_type!(dt, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T =>
        map("shrink", dt, shape, move |x: T| {
            let v = x.to_f64();
            T::from_f64(if v < -lambd { v + bias } else if v > lambd { v - bias } else { 0.0 })
        }), _ => unreachable!("dtype checked"))
}

/// A float test with a bool result.
fn float_test(
    ctx: &BuildCtx<'_>,
    op: &str,
    test: impl Fn(f64) -> bool + Copy + Send + Sync + 'static,
) -> Result<Built, OpError> {
    let (dt, shape) = unary_input(ctx, FLOATS)?;
    let numel = shape.iter().product();
    let outputs = vec![Fact::new(DType::Bool, shape)];
    let name = format!("{op}.{dt}");
    // Widening to f64 is exact, so one predicate serves every float type.
    with_type!(dt, [F32, F64, F16, BF16], T => Ok(Built::Kernel {
        outputs,
        kernel: Box::new(Convert::new(name, numel, move |x: T| u8::from(test(x.to_f64())))),
    }), _ => unreachable!("dtype checked"))
}

fn build_isnan(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    float_test(ctx, "isnan", f64::is_nan)
}

fn build_isinf(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let pos = ctx.node.attr_int("detect_positive", 1)? != 0;
    let neg = ctx.node.attr_int("detect_negative", 1)? != 0;
    float_test(ctx, "isinf", move |x| {
        (pos && x == f64::INFINITY) || (neg && x == f64::NEG_INFINITY)
    })
}
