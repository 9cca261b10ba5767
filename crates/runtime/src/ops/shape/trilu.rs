//! Trilu (upper or lower triangle of the last two axes) and EyeLike. Trilu
//! copies or zeroes raw bytes, so it serves every dtype; its diagonal
//! offset `k` is an input read at run time. EyeLike depends only on its
//! input's shape, so it is a compile-time constant.

use whittle_ir::{DType, Tensor, TensorData};

use crate::ops::common::const_size::check_const_size;
use crate::ops::common::shape_util::{numel, scalar_bytes};
use crate::ops::elementwise::cast::onnx_dtype;
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers Trilu and EyeLike.
pub fn register(r: &mut Registry) {
    r.add("Trilu", trilu);
    r.add("EyeLike", eye_like);
}

struct Trilu {
    upper: bool,
    matrices: usize,
    rows: usize,
    cols: usize,
    elem: usize,
}

impl Kernel for Trilu {
    fn name(&self) -> String {
        if self.upper { "triu" } else { "tril" }.into()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let k = match inputs.get(1).filter(|v| !v.bytes().is_empty()) {
            Some(v) => *v
                .i64()
                .first()
                .ok_or(RunError::Unsupported("Trilu k is empty"))?,
            None => 0,
        };
        let out = outputs[0].bytes();
        let row = self.cols * self.elem;
        if out.len() != self.matrices * self.rows * row {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        if !inputs[0].is_aliased() {
            let x = inputs[0].bytes();
            if x.len() != out.len() {
                return Err(RunError::Unsupported(
                    "buffer size differs from the compiled shape",
                ));
            }
            out.copy_from_slice(x);
        }
        if out.is_empty() {
            // A zero-sized matrix has nothing to zero (and no row length to chunk by).
            return Ok(());
        }
        let cols = self.cols as i64;
        for (r, line) in out.chunks_exact_mut(row).enumerate() {
            let i = (r % self.rows) as i64;
            // Kept columns: j - i >= k (upper) or j - i <= k (lower).
            let edge = i.saturating_add(k);
            let (zero_from, zero_to) = if self.upper {
                (0, edge.clamp(0, cols))
            } else {
                (edge.saturating_add(1).clamp(0, cols), cols)
            };
            line[zero_from as usize * self.elem..zero_to as usize * self.elem].fill(0);
        }
        Ok(())
    }
}

fn trilu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    if r < 2 {
        return Err(ctx.err(format!(
            "input must have rank 2 or more, found shape {:?}",
            fact.shape
        )));
    }
    if let Some(k) = ctx.opt_input(1) {
        ctx.expect_dtype(1, &[DType::I64])?;
        if k.fact.numel() != 1 {
            return Err(ctx.err(format!(
                "k must be a scalar, found shape {:?}",
                k.fact.shape
            )));
        }
    }
    let upper = match ctx.node.attr_int("upper", 1)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("upper must be 0 or 1, found {v}"))),
    };
    numel(ctx, &fact.shape)?;
    Ok(Built::Kernel {
        outputs: vec![fact.clone()],
        kernel: Box::new(Trilu {
            upper,
            matrices: fact.shape[..r - 2].iter().product(),
            rows: fact.shape[r - 2],
            cols: fact.shape[r - 1],
            elem: fact.dtype.size(),
        }),
    })
}

fn eye_like(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?;
    let [rows, cols]: [usize; 2] = fact
        .shape
        .as_slice()
        .try_into()
        .map_err(|_| ctx.err(format!("input must be 2-D, found shape {:?}", fact.shape)))?;
    let dtype = match ctx.node.attr_int_opt("dtype")? {
        Some(code) => {
            onnx_dtype(code).ok_or_else(|| ctx.err(format!("dtype {code} is not supported")))?
        }
        None => fact.dtype,
    };
    let k = ctx.node.attr_int("k", 0)?;
    check_const_size(ctx, &fact.shape, dtype)?;
    let elem = dtype.size();
    let one = scalar_bytes(dtype, 1.0);
    let mut bytes = vec![0u8; rows * cols * elem];
    for i in 0..rows {
        let j = i as i64 + k;
        if (0..cols as i64).contains(&j) {
            let at = (i * cols + j as usize) * elem;
            bytes[at..at + elem].copy_from_slice(&one[..elem]);
        }
    }
    let data = TensorData::from_le_bytes(dtype, &bytes)?;
    Ok(Built::Constant(vec![Tensor::new(vec![rows, cols], data)?]))
}

#[cfg(test)]
#[path = "trilu_tests.rs"]
mod tests;
