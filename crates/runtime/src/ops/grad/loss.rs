//! Losses with their gradient in one node, so the backward pass starts
//! without a separate seed:
//! * `SoftmaxCrossEntropy(logits [N, C], labels [N] int64/int32) ->
//!   (loss [], dlogits [N, C])`: `-mean(log softmax(logits)[label])`;
//! * `MseLoss(pred, target) -> (loss [], dpred)`: `mean((pred - target)^2)`.
//!
//! Attribute `reduction` is `mean` (default) or `sum`. The loss sums in f64
//! so it does not drift with large batches; output 1 may be omitted.

use whittle_ir::DType;

use super::{fit_outputs, wants, DOMAIN};
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "SoftmaxCrossEntropy", build_sce);
    r.add_in_domain(DOMAIN, "MseLoss", build_mse);
}

/// True for `mean`, false for `sum`.
fn mean_reduction(ctx: &BuildCtx<'_>) -> Result<bool, OpError> {
    match ctx.node.attr_string("reduction", "mean")?.as_str() {
        "mean" => Ok(true),
        "sum" => Ok(false),
        other => Err(ctx.err(format!(
            "reduction '{other}' is not supported (mean or sum)"
        ))),
    }
}

fn outputs(ctx: &BuildCtx<'_>, grad_shape: Vec<usize>) -> (Vec<Fact>, bool) {
    let full = vec![
        Fact::new(DType::F32, vec![]),
        Fact::new(DType::F32, grad_shape),
    ];
    (fit_outputs(ctx, full), wants(ctx, 1))
}

fn build_sce(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let labels_i64 = ctx.expect_dtype(1, &[DType::I64, DType::I32])? == DType::I64;
    let x = ctx.fact(0)?.shape.clone();
    let l = &ctx.fact(1)?.shape;
    if x.len() != 2 || l.as_slice() != [x[0]] {
        return Err(ctx.err(format!(
            "logits {x:?} must be [N, C] and labels {l:?} must be [N]"
        )));
    }
    if x[1] == 0 {
        return Err(ctx.err("logits have no classes"));
    }
    let mean = mean_reduction(ctx)?;
    let (outs, grad) = outputs(ctx, x.clone());
    Ok(Built::Kernel {
        outputs: outs,
        kernel: Box::new(Sce {
            n: x[0],
            c: x[1],
            mean,
            grad,
            labels_i64,
        }),
    })
}

struct Sce {
    n: usize,
    c: usize,
    mean: bool,
    grad: bool,
    labels_i64: bool,
}

impl Kernel for Sce {
    fn name(&self) -> String {
        "softmax_cross_entropy".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].f32();
        let label = |i: usize| -> i64 {
            if self.labels_i64 {
                inputs[1].i64()[i]
            } else {
                i64::from(inputs[1].i32()[i])
            }
        };
        let (n, c) = (self.n, self.c);
        let scale = if self.mean && n > 0 {
            1.0 / n as f64
        } else {
            1.0
        };
        let (loss_out, rest) = outputs.split_at_mut(1);
        let mut grad = rest.first_mut().filter(|_| self.grad).map(|v| v.f32());
        let mut total = 0.0f64;
        for i in 0..n {
            let row = &x[i * c..][..c];
            let y = label(i);
            if y < 0 || y as usize >= c {
                return Err(RunError::IndexOutOfRange { index: y, size: c });
            }
            let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let sum: f64 = row.iter().map(|&v| f64::from(v - m).exp()).sum();
            let lse = f64::from(m) + sum.ln();
            total += lse - f64::from(row[y as usize]);
            if let Some(g) = grad.as_deref_mut() {
                let gr = &mut g[i * c..][..c];
                for (k, (d, &v)) in gr.iter_mut().zip(row).enumerate() {
                    let p = (f64::from(v) - lse).exp();
                    let t = if k == y as usize { 1.0 } else { 0.0 };
                    *d = ((p - t) * scale) as f32;
                }
            }
        }
        loss_out[0].f32()[0] = (total * scale) as f32;
        Ok(())
    }
}

fn build_mse(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let p = ctx.fact(0)?.shape.clone();
    let t = &ctx.fact(1)?.shape;
    if &p != t {
        return Err(ctx.err(format!(
            "prediction {p:?} and target {t:?} must have the same shape"
        )));
    }
    let mean = mean_reduction(ctx)?;
    let numel = p.iter().product();
    let (outs, grad) = outputs(ctx, p);
    Ok(Built::Kernel {
        outputs: outs,
        kernel: Box::new(Mse { numel, mean, grad }),
    })
}

struct Mse {
    numel: usize,
    mean: bool,
    grad: bool,
}

impl Kernel for Mse {
    fn name(&self) -> String {
        "mse_loss".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (p, t) = (inputs[0].f32(), inputs[1].f32());
        let scale = if self.mean && self.numel > 0 {
            1.0 / self.numel as f64
        } else {
            1.0
        };
        let total: f64 = p
            .iter()
            .zip(t)
            .map(|(&a, &b)| f64::from(a - b) * f64::from(a - b))
            .sum();
        outputs[0].f32()[0] = (total * scale) as f32;
        if self.grad {
            let s = (2.0 * scale) as f32;
            for ((d, &a), &b) in outputs[1].f32().iter_mut().zip(p).zip(t) {
                *d = s * (a - b);
            }
        }
        Ok(())
    }
}
