//! `SumToShape(dY) -> dX` with attribute `shape`: sums dY over the dims
//! that numpy broadcasting expanded from `shape`, the gradient of every
//! broadcasting op (Add, Sub, Mul, Gemm's C) for its smaller operand.

use whittle_ir::DType;

use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

/// Highest rank handled (the odometer lives on the stack).
const MAX_RANK: usize = 8;

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "SumToShape", build);
}

fn build(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let x = ctx.fact(0)?.shape.clone();
    let target: Vec<usize> = ctx
        .node
        .attr_ints("shape")?
        .ok_or_else(|| ctx.err("attribute 'shape' is required"))?
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| ctx.err(format!("shape has dim {d} < 0"))))
        .collect::<Result<_, _>>()?;
    if x.len() > MAX_RANK || target.len() > x.len() {
        return Err(ctx.err(format!(
            "cannot sum {x:?} to {target:?} (rank at most {MAX_RANK}, target not longer)"
        )));
    }
    let lead = x.len() - target.len();
    let mut stride = [0usize; MAX_RANK];
    let mut acc = 1;
    for d in (0..x.len()).rev() {
        let t = if d >= lead { target[d - lead] } else { 1 };
        if t == x[d] {
            stride[d] = acc;
            acc *= t;
        } else if t != 1 {
            return Err(ctx.err(format!(
                "shape {target:?} does not broadcast to dY's shape {x:?}"
            )));
        }
    }
    let mut shape = [1usize; MAX_RANK];
    shape[..x.len()].copy_from_slice(&x);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, target)],
        kernel: Box::new(SumTo {
            rank: x.len(),
            shape,
            stride,
        }),
    })
}

struct SumTo {
    rank: usize,
    shape: [usize; MAX_RANK],
    /// Output stride per input dim; 0 along summed dims.
    stride: [usize; MAX_RANK],
}

impl Kernel for SumTo {
    fn name(&self) -> String {
        "sum_to_shape".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].f32();
        let y = outputs[0].f32();
        y.fill(0.0);
        if x.is_empty() {
            return Ok(());
        }
        let r = self.rank;
        if r == 0 {
            y[0] = x[0];
            return Ok(());
        }
        // Innermost dim as a run: either summed into one output or copied
        // element by element.
        let inner = self.shape[r - 1];
        let inner_stride = self.stride[r - 1];
        let mut idx = [0usize; MAX_RANK];
        let mut base = 0usize;
        for row in x.chunks_exact(inner) {
            if inner_stride == 0 {
                y[base] += row.iter().sum::<f32>();
            } else {
                for (o, &v) in y[base..base + inner].iter_mut().zip(row) {
                    *o += v;
                }
            }
            // Advance the odometer over the outer dims.
            let mut d = r - 1;
            while d > 0 {
                d -= 1;
                idx[d] += 1;
                base += self.stride[d];
                if idx[d] < self.shape[d] {
                    break;
                }
                base -= self.stride[d] * idx[d];
                idx[d] = 0;
            }
        }
        Ok(())
    }
}
