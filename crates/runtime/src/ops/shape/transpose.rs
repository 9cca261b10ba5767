//! Transpose: a permuted-stride copy (blocked when the innermost output axis
//! is strided in the input, e.g. 2-D transposes and NCHW<->NHWC).

use crate::ops::common::shape_util::{check_rank, norm_axes, strides};
use crate::ops::common::strided::strided_kernel;
use crate::{BuildCtx, Built, OpError};

/// Transpose; `perm` defaults to reversing the axes.
pub(crate) fn transpose(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    check_rank(ctx, r)?;
    let perm = match ctx.node.attr_ints("perm")? {
        Some(p) => {
            if p.len() != r {
                return Err(ctx.err(format!("perm {p:?} has {} entries for rank {r}", p.len())));
            }
            norm_axes(ctx, p, r)?
        }
        None => (0..r).rev().collect(),
    };
    let in_strides = strides(&fact.shape);
    let out_shape: Vec<usize> = perm.iter().map(|&p| fact.shape[p]).collect();
    let s: Vec<isize> = perm.iter().map(|&p| in_strides[p] as isize).collect();
    strided_kernel(ctx, "transpose", fact.dtype, out_shape, &s, 0)
}
