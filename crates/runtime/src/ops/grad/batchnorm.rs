//! BatchNormalization in training mode:
//! * `BatchNormTrain(X, scale, B) -> (Y, mean, invstd)` normalises with the
//!   batch statistics of each channel (biased variance, as PyTorch and
//!   ONNX training mode) and returns them for the backward pass and for
//!   the running-statistics update;
//! * `BatchNormGrad(dY, X, scale, mean, invstd) -> (dX, dscale, dB)`. With
//!   `training = 1` (default) dX includes the terms through the batch
//!   statistics; with `training = 0` the statistics are constants (frozen
//!   BatchNorm) and `dX = dY * scale * invstd`. Any output may be omitted.
//!
//! Statistics and reductions accumulate in f64.

use whittle_ir::DType;

use super::{fit_outputs, wants, DOMAIN};
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "BatchNormTrain", build_train);
    r.add_in_domain(DOMAIN, "BatchNormGrad", build_grad);
}

/// (N, C, elements per channel and image) of input `i`, with `[C]`
/// parameters at `params`.
fn layout(ctx: &BuildCtx<'_>, i: usize, params: &[usize]) -> Result<[usize; 3], OpError> {
    ctx.expect_dtype(i, &[DType::F32])?;
    let x = &ctx.fact(i)?.shape;
    if x.len() < 2 {
        return Err(ctx.err(format!("X has shape {x:?}; expected N x C x ...")));
    }
    let c = x[1];
    for &p in params {
        ctx.expect_dtype(p, &[DType::F32])?;
        let s = &ctx.fact(p)?.shape;
        if s.as_slice() != [c] {
            return Err(ctx.err(format!("input {p} has shape {s:?}; expected [{c}]")));
        }
    }
    Ok([x[0], c, x[2..].iter().product()])
}

fn epsilon(ctx: &BuildCtx<'_>) -> Result<f32, OpError> {
    let eps = ctx.node.attr_float("epsilon", 1e-5)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(ctx.err(format!("epsilon must be finite and >= 0, got {eps}")));
    }
    Ok(eps)
}

fn build_train(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let [n, c, s] = layout(ctx, 0, &[1, 2])?;
    if n * s == 0 {
        return Err(ctx.err("batch statistics need at least one element per channel"));
    }
    let eps = epsilon(ctx)?;
    let x = ctx.fact(0)?.shape.clone();
    Ok(Built::Kernel {
        outputs: vec![
            Fact::new(DType::F32, x),
            Fact::new(DType::F32, vec![c]),
            Fact::new(DType::F32, vec![c]),
        ],
        kernel: Box::new(Train { n, c, s, eps }),
    })
}

struct Train {
    n: usize,
    c: usize,
    s: usize,
    eps: f32,
}

impl Kernel for Train {
    fn name(&self) -> String {
        "batchnorm_train".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, scale, bias) = (inputs[0].f32(), inputs[1].f32(), inputs[2].f32());
        let (n, c, s) = (self.n, self.c, self.s);
        let count = (n * s) as f64;
        let [y, mean_out, inv_out] = outputs else {
            return Err(RunError::Unsupported("batchnorm_train needs three outputs"));
        };
        let (y, mean_out, inv_out) = (y.f32(), mean_out.f32(), inv_out.f32());
        for ch in 0..c {
            let plane = |b: usize| &x[(b * c + ch) * s..][..s];
            let sum: f64 = (0..n)
                .map(|b| plane(b).iter().map(|&v| f64::from(v)).sum::<f64>())
                .sum();
            let mean = sum / count;
            let var: f64 = (0..n)
                .map(|b| {
                    plane(b)
                        .iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                })
                .sum::<f64>()
                / count;
            let inv = 1.0 / (var + f64::from(self.eps)).sqrt();
            mean_out[ch] = mean as f32;
            inv_out[ch] = inv as f32;
            let k = (f64::from(scale[ch]) * inv) as f32;
            let sh = (f64::from(bias[ch]) - mean * f64::from(scale[ch]) * inv) as f32;
            for b in 0..n {
                let yp = &mut y[(b * c + ch) * s..][..s];
                for (o, &v) in yp.iter_mut().zip(plane(b)) {
                    *o = v * k + sh;
                }
            }
        }
        Ok(())
    }
}

fn build_grad(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let [n, c, s] = layout(ctx, 1, &[2, 3, 4])?;
    ctx.expect_dtype(0, &[DType::F32])?;
    let x = ctx.fact(1)?.shape.clone();
    if ctx.fact(0)?.shape != x {
        return Err(ctx.err(format!(
            "dY has shape {:?} but X has {x:?}",
            ctx.fact(0)?.shape
        )));
    }
    let training = ctx.node.attr_int("training", 1)? != 0;
    let wants = [wants(ctx, 0), wants(ctx, 1), wants(ctx, 2)];
    let full = vec![
        Fact::new(DType::F32, if wants[0] { x } else { vec![0] }),
        Fact::new(DType::F32, vec![c]),
        Fact::new(DType::F32, vec![c]),
    ];
    let outputs = fit_outputs(ctx, full);
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(Grad {
            n,
            c,
            s,
            training,
            wants,
        }),
    })
}

struct Grad {
    n: usize,
    c: usize,
    s: usize,
    training: bool,
    wants: [bool; 3],
}

impl Kernel for Grad {
    fn name(&self) -> String {
        if self.training {
            "batchnorm_grad".into()
        } else {
            "batchnorm_grad.frozen".into()
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (dy, x, scale) = (inputs[0].f32(), inputs[1].f32(), inputs[2].f32());
        let (mean, inv) = (inputs[3].f32(), inputs[4].f32());
        let (n, c, s) = (self.n, self.c, self.s);
        let count = (n * s) as f64;
        for ch in 0..c {
            let (m, is) = (f64::from(mean[ch]), f64::from(inv[ch]));
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for b in 0..n {
                let off = (b * c + ch) * s;
                for (&d, &v) in dy[off..off + s].iter().zip(&x[off..off + s]) {
                    sum_dy += f64::from(d);
                    sum_dy_xhat += f64::from(d) * (f64::from(v) - m) * is;
                }
            }
            if self.wants[1] {
                outputs[1].f32()[ch] = sum_dy_xhat as f32;
            }
            if self.wants[2] {
                outputs[2].f32()[ch] = sum_dy as f32;
            }
            if !self.wants[0] {
                continue;
            }
            let k = f64::from(scale[ch]) * is;
            let dx = outputs[0].f32();
            for b in 0..n {
                let off = (b * c + ch) * s;
                let (dxp, dyp, xp) = (&mut dx[off..off + s], &dy[off..off + s], &x[off..off + s]);
                if self.training {
                    let (mdy, mdx) = (sum_dy / count, sum_dy_xhat / count);
                    for ((o, &d), &v) in dxp.iter_mut().zip(dyp).zip(xp) {
                        let xhat = (f64::from(v) - m) * is;
                        *o = (k * (f64::from(d) - mdy - xhat * mdx)) as f32;
                    }
                } else {
                    for (o, &d) in dxp.iter_mut().zip(dyp) {
                        *o = (k * f64::from(d)) as f32;
                    }
                }
            }
        }
        Ok(())
    }
}
