//! Activation backward ops: elementwise `dX = dY * f'(.)` and Softmax.
//!
//! Relu, Clip and Sigmoid read their forward *output* (which the next layer
//! keeps anyway, so the backward pass needs no extra activation); HardSwish
//! reads its input, since its derivative cannot be recovered from the
//! output. Derivatives at the kinks follow PyTorch (0 at Relu's 0, 0 at
//! Clip's bounds, HardSwish's middle piece at exactly +-3), so gradients
//! match it bit for bit in the masks.

use whittle_ir::DType;

use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "ReluGrad", |c| build_elem(c, Act::Relu));
    r.add_in_domain(DOMAIN, "ClipGrad", build_clip);
    r.add_in_domain(DOMAIN, "HardSwishGrad", |c| build_elem(c, Act::HardSwish));
    r.add_in_domain(DOMAIN, "SigmoidGrad", |c| build_elem(c, Act::Sigmoid));
    r.add_in_domain(DOMAIN, "SoftmaxGrad", build_softmax);
}

/// Which derivative, with what it reads as input 1.
#[derive(Clone, Copy, Debug)]
enum Act {
    /// Input 1 is Y.
    Relu,
    /// Input 1 is Y; passes where `min < y < max`.
    Clip { min: f32, max: f32 },
    /// Input 1 is X.
    HardSwish,
    /// Input 1 is Y.
    Sigmoid,
}

impl Act {
    #[inline]
    fn grad(self, d: f32, v: f32) -> f32 {
        match self {
            Act::Relu => {
                if v > 0.0 {
                    d
                } else {
                    0.0
                }
            }
            Act::Clip { min, max } => {
                if v > min && v < max {
                    d
                } else {
                    0.0
                }
            }
            Act::HardSwish => {
                if v < -3.0 {
                    0.0
                } else if v <= 3.0 {
                    d * (v / 3.0 + 0.5)
                } else {
                    d
                }
            }
            Act::Sigmoid => d * v * (1.0 - v),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Act::Relu => "relu_grad",
            Act::Clip { .. } => "clip_grad",
            Act::HardSwish => "hardswish_grad",
            Act::Sigmoid => "sigmoid_grad",
        }
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

fn build_elem(ctx: &BuildCtx<'_>, act: Act) -> Result<Built, OpError> {
    let shape = same_shape_inputs(ctx)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, shape)],
        kernel: Box::new(ElemGrad { act }),
    })
}

fn build_clip(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let min = ctx.node.attr_float("min", f32::NEG_INFINITY)?;
    let max = ctx.node.attr_float("max", f32::INFINITY)?;
    if min.is_nan() || max.is_nan() {
        return Err(ctx.err("min and max must not be NaN"));
    }
    build_elem(ctx, Act::Clip { min, max })
}

struct ElemGrad {
    act: Act,
}

/// Elements per task: large enough to amortise a task.
const CHUNK: usize = 1 << 14;

impl Kernel for ElemGrad {
    fn name(&self) -> String {
        self.act.name().to_string()
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
                    *d = act.grad(*d, x);
                }
            });
        } else {
            let dy = inputs[0].f32();
            ctx.par.for_each_chunk_mut(out, CHUNK, &|i, o| {
                let s = i * CHUNK;
                for ((r, &d), &x) in o.iter_mut().zip(&dy[s..]).zip(&v[s..]) {
                    *r = act.grad(d, x);
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
