//! DepthToSpace and SpaceToDepth. Both are a reshape to 6-D, a transpose and
//! a reshape back, so each lowers to one strided copy on raw bytes (any
//! dtype); the copy walks the output in the 6-D order that is its row-major
//! layout.

use crate::ops::common::shape_util::{dim, strides};
use crate::ops::common::strided::strided_kernel;
use crate::{BuildCtx, Built, OpError, Registry};

/// Registers DepthToSpace and SpaceToDepth.
pub fn register(r: &mut Registry) {
    r.add("DepthToSpace", depth_to_space);
    r.add("SpaceToDepth", space_to_depth);
}

/// The 4-D input shape and the positive `blocksize`.
fn nchw_and_block(ctx: &BuildCtx<'_>) -> Result<([usize; 4], usize), OpError> {
    let fact = ctx.fact(0)?;
    let s: [usize; 4] = fact.shape.as_slice().try_into().map_err(|_| {
        ctx.err(format!(
            "input must be 4-D (N, C, H, W), found shape {:?}",
            fact.shape
        ))
    })?;
    let b = ctx
        .node
        .attr_int_opt("blocksize")?
        .ok_or_else(|| ctx.err("attribute 'blocksize' is required"))?;
    let b = dim(ctx, b, "blocksize")?;
    if b == 0 {
        return Err(ctx.err("blocksize must be positive"));
    }
    Ok((s, b))
}

/// Replaces the fact of output 0 (the copy ran on a 6-D view of it).
fn reshaped(mut built: Built, shape: Vec<usize>) -> Built {
    if let Built::Kernel { outputs, .. } = &mut built {
        outputs[0].shape = shape;
    }
    built
}

fn depth_to_space(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let ([n, c, h, w], b) = nchw_and_block(ctx)?;
    let bb = b
        .checked_mul(b)
        .ok_or_else(|| ctx.err("blocksize is too large"))?;
    if c % bb != 0 {
        return Err(ctx.err(format!(
            "channels {c} are not divisible by blocksize² = {bb}"
        )));
    }
    let c2 = c / bb;
    let mode = ctx.node.attr_string("mode", "DCR")?;
    // The input viewed as 6-D, and for each output axis (N, C', H, b1, W,
    // b2) which input axis it reads.
    let (view, from): ([usize; 6], [usize; 6]) = match mode.as_str() {
        "DCR" => ([n, b, b, c2, h, w], [0, 3, 4, 1, 5, 2]),
        "CRD" => ([n, c2, b, b, h, w], [0, 1, 4, 2, 5, 3]),
        m => return Err(ctx.err(format!("mode '{m}' is not supported (expected DCR or CRD)"))),
    };
    let vs = strides(&view);
    let out6: Vec<usize> = from.iter().map(|&a| view[a]).collect();
    let s: Vec<isize> = from.iter().map(|&a| vs[a] as isize).collect();
    let dtype = ctx.fact(0)?.dtype;
    let built = strided_kernel(ctx, "depth_to_space", dtype, out6, &s, 0)?;
    Ok(reshaped(built, vec![n, c2, h * b, w * b]))
}

fn space_to_depth(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let ([n, c, h, w], b) = nchw_and_block(ctx)?;
    if h % b != 0 || w % b != 0 {
        return Err(ctx.err(format!(
            "height {h} and width {w} must be divisible by blocksize {b}"
        )));
    }
    let (h2, w2) = (h / b, w / b);
    // Input as (N, C, H', b1, W', b2); output axes (N, b1, b2, C, H', W').
    let view = [n, c, h2, b, w2, b];
    let from = [0, 3, 5, 1, 2, 4];
    let vs = strides(&view);
    let out6: Vec<usize> = from.iter().map(|&a| view[a]).collect();
    let s: Vec<isize> = from.iter().map(|&a| vs[a] as isize).collect();
    let dtype = ctx.fact(0)?.dtype;
    let built = strided_kernel(ctx, "space_to_depth", dtype, out6, &s, 0)?;
    Ok(reshaped(built, vec![n, c * b * b, h2, w2]))
}

#[cfg(test)]
#[path = "depth_to_space_tests.rs"]
mod tests;
