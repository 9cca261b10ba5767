//! LRN (local response normalization across channels, AlexNet style):
//! `y = x / (bias + alpha / size · Σ x²)^beta` over a window of `size`
//! channels around each one (`⌊(size-1)/2⌋` before, `⌈(size-1)/2⌉` after).
//! Computed in f64 and rounded once per output.

use whittle_ir::DType;

use crate::ops::common::elem::{input, output, with_type, Num, FLOATS};
use crate::ops::common::shape_util::numel;
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers LRN.
pub fn register(r: &mut Registry) {
    r.add("LRN", lrn);
}

struct Lrn {
    dtype: DType,
    batch: usize,
    channels: usize,
    spatial: usize,
    size: usize,
    alpha: f64,
    beta: f64,
    bias: f64,
}

impl Lrn {
    fn run_typed<T: Num>(&self, x: &[T], y: &mut [T]) {
        let (c, s) = (self.channels, self.spatial);
        let before = (self.size - 1) / 2;
        let after = self.size / 2;
        let scale = self.alpha / self.size as f64;
        for n in 0..self.batch {
            let base = n * c * s;
            for ch in 0..c {
                let lo = ch.saturating_sub(before);
                let hi = (ch + after).min(c - 1);
                for i in 0..s {
                    let mut sq = 0.0f64;
                    for k in lo..=hi {
                        let v = x[base + k * s + i].to_f64();
                        sq += v * v;
                    }
                    let at = base + ch * s + i;
                    let d = (self.bias + scale * sq).powf(self.beta);
                    y[at] = T::from_f64(x[at].to_f64() / d);
                }
            }
        }
    }
}

impl Kernel for Lrn {
    fn name(&self) -> String {
        format!("lrn.{}", self.dtype)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let total = self.batch * self.channels * self.spatial;
        with_type!(self.dtype, [F32, F64, F16, BF16], T => {
            let x = input::<T>(&inputs[0])?;
            let y = output::<T>(&mut outputs[0])?;
            if x.len() != total || y.len() != total {
                return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
            }
            self.run_typed(x, y);
            Ok(())
        }, _ => Err(RunError::Unsupported("LRN dtype")))
    }
}

fn lrn(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, FLOATS)?;
    let fact = ctx.fact(0)?.clone();
    if fact.rank() < 3 {
        return Err(ctx.err(format!(
            "input must be (N, C, D1, ...), found shape {:?}",
            fact.shape
        )));
    }
    let size = ctx
        .node
        .attr_int_opt("size")?
        .ok_or_else(|| ctx.err("attribute 'size' is required"))?;
    if size < 1 {
        return Err(ctx.err(format!("size must be positive, found {size}")));
    }
    numel(ctx, &fact.shape)?;
    let kernel = Lrn {
        dtype,
        batch: fact.shape[0],
        channels: fact.shape[1],
        spatial: fact.shape[2..].iter().product(),
        size: usize::try_from(size).unwrap_or(usize::MAX),
        alpha: f64::from(ctx.node.attr_float("alpha", 1e-4)?),
        beta: f64::from(ctx.node.attr_float("beta", 0.75)?),
        bias: f64::from(ctx.node.attr_float("bias", 1.0)?),
    };
    Ok(Built::Kernel {
        outputs: vec![fact],
        kernel: Box::new(kernel),
    })
}

#[cfg(test)]
#[path = "lrn_tests.rs"]
mod tests;
