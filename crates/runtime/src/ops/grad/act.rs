//! Activation backward ops: elementwise `dX = dY * f'(.)` and Softmax.
//!
//! `ActivationGrad(dY, V)` applies the derivative of its node's
//! [`Node::activation`](whittle_ir::Node::activation), written once with the
//! activation in the kernels crate ([`Activation::derivative`]). `V` is the
//! forward output for Relu, Clip, Sigmoid and Tanh (which the next layer
//! keeps anyway, so the backward pass needs no extra activation) and the
//! forward input for the others, whose derivative the output does not
//! determine ([`Activation::grad_input`]). Derivatives at the kinks follow
//! PyTorch (0 at Relu's 0, 0 at Clip's bounds, HardSwish's middle piece at
//! exactly +-3), so gradients match it bit for bit in the masks.

use whittle_ir::DType;
use whittle_kernels::Activation;

use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "ActivationGrad", build_elem);
    r.add_in_domain(DOMAIN, "SoftmaxGrad", build_softmax);
}

/// `dY * f'(v)`, with masked elements exactly 0 whatever dY holds.
#[inline]
fn grad(act: Activation, d: f32, v: f32) -> f32 {
    let f = act.derivative(v);
    if f == 0.0 {
        0.0
    } else if f == 1.0 {
        d
    } else {
        d * f
    }
}

fn same_shape_inputs(ctx: &BuildCtx<'_>) -> Result<Vec<usize>, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let (a, b) = (&ctx.fact(0)?.shape, &ctx.fact(1)?.shape);
    if a != b {
        return Err(ctx.err(format!(
            "dY has shape {a:?} but the forward value has {b:?}; they must match"
        )));
    }
    Ok(a.clone())
}

fn build_elem(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let shape = same_shape_inputs(ctx)?;
    let act = ctx.node.activation;
    if let Activation::Clip { min, max } = act {
        if min.is_nan() || max.is_nan() {
            return Err(ctx.err("min and max must not be NaN"));
        }
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, shape)],
        kernel: Box::new(ElemGrad { act }),
    })
}

struct ElemGrad {
    act: Activation,
}

/// Elements per task: large enough to amortise a task.
const CHUNK: usize = 1 << 14;

impl Kernel for ElemGrad {
    fn name(&self) -> String {
        format!("{}_grad", self.act.name())
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
        let v = inputs[1].f32();
        let act = self.act;
        let out = outputs[0].f32();
        if inputs[0].is_aliased() {
            // dY already sits in the output buffer.
            ctx.par.for_each_chunk_mut(out, CHUNK, &|i, o| {
                for (d, &x) in o.iter_mut().zip(&v[i * CHUNK..]) {
                    *d = grad(act, *d, x);
                }
            });
        } else {
            let dy = inputs[0].f32();
            ctx.par.for_each_chunk_mut(out, CHUNK, &|i, o| {
                let s = i * CHUNK;
                for ((r, &d), &x) in o.iter_mut().zip(&dy[s..]).zip(&v[s..]) {
                    *r = grad(act, d, x);
                }
            });
        }
        Ok(())
    }
}

fn build_softmax(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let shape = same_shape_inputs(ctx)?;
    let rank = shape.len() as i64;
    let axis = ctx.node.attr_int("axis", -1)?;
    if axis < -rank || axis >= rank.max(1) {
        return Err(ctx.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    let axis = if axis < 0 { axis + rank } else { axis } as usize;
    // `flatten = 1` is Softmax before opset 13: one softmax over every dim
    // from `axis` on.
    let flatten = ctx.node.attr_int("flatten", 0)? != 0;
    let outer: usize = shape[..axis].iter().product();
    let (len, inner) = if flatten {
        (shape[axis..].iter().product(), 1)
    } else {
        (
            shape.get(axis).copied().unwrap_or(1),
            shape[axis + 1..].iter().product(),
        )
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, shape)],
        kernel: Box::new(SoftmaxGrad { outer, len, inner }),
    })
}

/// `dX = Y * (dY - sum(dY * Y))` along the softmax axis, the tensor seen as
/// `[outer, len, inner]`.
struct SoftmaxGrad {
    outer: usize,
    len: usize,
    inner: usize,
}

impl Kernel for SoftmaxGrad {
    fn name(&self) -> String {
        "softmax_grad".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (dy, y) = (inputs[0].f32(), inputs[1].f32());
        let (len, inner) = (self.len, self.inner);
        let block = len * inner;
        let dx = outputs[0].f32();
        if block == 0 || self.outer == 0 {
            return Ok(());
        }
        ctx.par.for_each_chunk_mut(dx, block, &|o, dxb| {
            let (dyb, yb) = (&dy[o * block..][..block], &y[o * block..][..block]);
            for j in 0..inner {
                let dot: f32 = (0..len)
                    .map(|a| dyb[a * inner + j] * yb[a * inner + j])
                    .sum();
                for a in 0..len {
                    let k = a * inner + j;
                    dxb[k] = yb[k] * (dyb[k] - dot);
                }
            }
        });
        Ok(())
    }
}
