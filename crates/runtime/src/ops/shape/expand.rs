//! Expand and Tile: broadcasting copies (zero input strides).

use crate::ops::common::shape_util::{const_ints, dim, numel, strides};
use crate::ops::common::strided::strided_kernel;
use crate::{BuildCtx, Built, OpError};

/// Expand: bidirectional broadcast of the input against a constant shape.
pub(crate) fn expand(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let target = const_ints(ctx, 1)?;
    let rank = fact.rank().max(target.len());
    let in_strides = strides(&fact.shape);
    let mut out_shape = vec![0usize; rank];
    let mut s = vec![0isize; rank];
    for k in 0..rank {
        let in_k = (k + fact.rank()).checked_sub(rank);
        let t_k = (k + target.len()).checked_sub(rank);
        let a = in_k.map_or(1, |i| fact.shape[i]);
        let b = match t_k {
            Some(i) => dim(ctx, target[i], "shape")?,
            None => 1,
        };
        out_shape[k] = match (a, b) {
            _ if a == b => a,
            (1, b) => b,
            (a, 1) => a,
            _ => {
                return Err(ctx.err(format!(
                    "input shape {:?} cannot be broadcast to {target:?}",
                    fact.shape
                )))
            }
        };
        if let Some(i) = in_k {
            if fact.shape[i] != 1 {
                s[k] = in_strides[i] as isize;
            }
        }
    }
    numel(ctx, &out_shape)?;
    strided_kernel(ctx, "expand", fact.dtype, out_shape, &s, 0)
}

/// Tile: each axis repeated `repeats[k]` times.
pub(crate) fn tile(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let repeats = const_ints(ctx, 1)?;
    if repeats.len() != fact.rank() {
        return Err(ctx.err(format!(
            "repeats has {} entries for rank {}",
            repeats.len(),
            fact.rank()
        )));
    }
    let in_strides = strides(&fact.shape);
    // Output axis k is viewed as (repeat, position): strides (0, in_stride).
    let mut split_shape = Vec::with_capacity(2 * fact.rank());
    let mut s = Vec::with_capacity(2 * fact.rank());
    let mut out_shape = Vec::with_capacity(fact.rank());
    for (k, &r) in repeats.iter().enumerate() {
        let r = dim(ctx, r, "repeats")?;
        split_shape.extend([r, fact.shape[k]]);
        s.extend([0, in_strides[k] as isize]);
        out_shape.push(
            r.checked_mul(fact.shape[k])
                .ok_or_else(|| ctx.err("tiled shape overflows"))?,
        );
    }
    numel(ctx, &out_shape)?;
    let built = strided_kernel(ctx, "tile", fact.dtype, split_shape, &s, 0)?;
    Ok(match built {
        crate::Built::Kernel {
            mut outputs,
            kernel,
        } => {
            outputs[0].shape = out_shape;
            crate::Built::Kernel { outputs, kernel }
        }
        other => other,
    })
}
