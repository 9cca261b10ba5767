//! ReverseSequence: for each batch entry, reverses the first
//! `sequence_lens[b]` steps along the time axis and copies the rest. Raw
//! bytes, any dtype; each length is checked at run time.

use whittle_ir::DType;

use crate::ops::common::shape_util::numel;
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers ReverseSequence.
pub fn register(r: &mut Registry) {
    r.add("ReverseSequence", reverse_sequence);
}

struct ReverseSequence {
    time_major: bool,
    batch: usize,
    steps: usize,
    /// Bytes of one (batch, time) cell.
    cell: usize,
}

impl Kernel for ReverseSequence {
    fn name(&self) -> String {
        "reverse_sequence".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].bytes();
        let lens = inputs[1].i64();
        let out = outputs[0].bytes();
        let (c, t_len) = (self.cell, self.steps);
        if x.len() != self.batch * t_len * c || out.len() != x.len() || lens.len() != self.batch {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        for (b, &len) in lens.iter().enumerate() {
            if len < 0 || len as u64 > t_len as u64 {
                return Err(RunError::IndexOutOfRange {
                    index: len,
                    size: t_len + 1,
                });
            }
            let len = len as usize;
            for t in 0..t_len {
                let from = if t < len { len - 1 - t } else { t };
                let at = |step: usize| {
                    if self.time_major {
                        (step * self.batch + b) * c
                    } else {
                        (b * t_len + step) * c
                    }
                };
                let (dst, src) = (at(t), at(from));
                out[dst..dst + c].copy_from_slice(&x[src..src + c]);
            }
        }
        Ok(())
    }
}

fn reverse_sequence(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    if fact.rank() < 2 {
        return Err(ctx.err(format!(
            "input must have rank 2 or more, found shape {:?}",
            fact.shape
        )));
    }
    let batch_axis = ctx.node.attr_int("batch_axis", 1)?;
    let time_axis = ctx.node.attr_int("time_axis", 0)?;
    let time_major = match (batch_axis, time_axis) {
        (1, 0) => true,
        (0, 1) => false,
        _ => {
            return Err(ctx.err(format!(
                "batch_axis {batch_axis} and time_axis {time_axis} must be 0 and 1 in some order"
            )))
        }
    };
    ctx.expect_dtype(1, &[DType::I64])?;
    let lens = ctx.fact(1)?;
    let batch = fact.shape[batch_axis as usize];
    if lens.shape != [batch] {
        return Err(ctx.err(format!(
            "sequence_lens has shape {:?}, expected [{batch}]",
            lens.shape
        )));
    }
    let cell = numel(ctx, &fact.shape[2..])? * fact.dtype.size();
    numel(ctx, &fact.shape)?;
    Ok(Built::Kernel {
        outputs: vec![fact.clone()],
        kernel: Box::new(ReverseSequence {
            time_major,
            batch,
            steps: fact.shape[time_axis as usize],
            cell,
        }),
    })
}

#[cfg(test)]
#[path = "reverse_sequence_tests.rs"]
mod tests;
