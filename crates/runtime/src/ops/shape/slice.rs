//! Slice: starts/ends/axes/steps (attributes before opset 10, inputs after),
//! clamped as numpy does, negative steps included; a strided copy.

use crate::ops::common::shape_util::{check_rank, const_ints, norm_axes, opt_const_ints, strides};
use crate::ops::common::strided::strided_kernel;
use crate::{BuildCtx, Built, OpError};

/// Slice.
pub(crate) fn slice(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    check_rank(ctx, r)?;
    let (starts, ends, axes, steps) = if ctx.opset >= 10 {
        (
            const_ints(ctx, 1)?,
            const_ints(ctx, 2)?,
            opt_const_ints(ctx, 3)?,
            opt_const_ints(ctx, 4)?,
        )
    } else {
        let req = |n: &str| -> Result<Vec<i64>, OpError> {
            Ok(ctx
                .node
                .attr_ints(n)?
                .ok_or_else(|| ctx.err(format!("attribute '{n}' is required")))?
                .to_vec())
        };
        (
            req("starts")?,
            req("ends")?,
            ctx.node.attr_ints("axes")?.map(<[i64]>::to_vec),
            None,
        )
    };
    let n = starts.len();
    if ends.len() != n {
        return Err(ctx.err(format!(
            "starts has {n} entries but ends has {}",
            ends.len()
        )));
    }
    let axes = match axes {
        Some(a) if a.len() != n => {
            return Err(ctx.err(format!("axes has {} entries, starts {n}", a.len())))
        }
        Some(a) => norm_axes(ctx, &a, r)?,
        None if n > r => {
            return Err(ctx.err(format!("{n} starts for rank {r}")));
        }
        None => (0..n).collect(),
    };
    let steps = match steps {
        Some(s) if s.len() != n => {
            return Err(ctx.err(format!("steps has {} entries, starts {n}", s.len())))
        }
        Some(s) => s,
        None => vec![1; n],
    };
    let in_strides = strides(&fact.shape);
    let mut out_shape = fact.shape.clone();
    let mut s: Vec<isize> = in_strides.iter().map(|&x| x as isize).collect();
    let mut offset = 0usize;
    for i in 0..n {
        let a = axes[i];
        let d = fact.shape[a] as i64;
        let step = steps[i];
        if step == 0 {
            return Err(ctx.err(format!("step for axis {a} is 0")));
        }
        let norm = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
        let (start, end) = (norm(starts[i]), norm(ends[i]));
        let (start, len) = if step > 0 {
            let start = start.clamp(0, d);
            let end = end.clamp(0, d);
            (
                start,
                if end > start {
                    (end - start - 1) / step + 1
                } else {
                    0
                },
            )
        } else {
            let start = start.clamp(-1, d - 1);
            let end = end.clamp(-1, d - 1);
            // -step cannot overflow: a step of i64::MIN still yields one element.
            let len = if start > end {
                (start - end - 1) / step.saturating_neg() + 1
            } else {
                0
            };
            (start, len)
        };
        out_shape[a] = len as usize;
        if len > 0 {
            offset += start as usize * in_strides[a];
        }
        // With two or more elements |step| < d, so the product fits.
        s[a] = if len > 1 {
            in_strides[a] as isize * step as isize
        } else {
            0
        };
    }
    strided_kernel(ctx, "slice", fact.dtype, out_shape, &s, offset)
}
