//! Concat and Split: block copies. With `outer` = product of the dims before
//! the axis, each input (output) contributes one contiguous chunk per outer
//! index, so both are a loop of memcpys sized at build time.

use crate::ops::common::shape_util::{dim, norm_axis, numel, opt_const_ints};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// Copies `outer` rows made of one chunk per part.
struct BlockKernel {
    split: bool,
    outer: usize,
    /// Bytes per outer index of each part (input for Concat, output for Split).
    chunks: Vec<usize>,
    row: usize,
}

impl Kernel for BlockKernel {
    fn name(&self) -> String {
        if self.split { "split" } else { "concat" }.to_string()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let mut at = 0;
        for (p, &c) in self.chunks.iter().enumerate() {
            for o in 0..self.outer {
                let whole = o * self.row + at;
                if self.split {
                    let src = &inputs[0].bytes()[whole..whole + c];
                    outputs[p].bytes()[o * c..(o + 1) * c].copy_from_slice(src);
                } else {
                    let src = &inputs[p].bytes()[o * c..(o + 1) * c];
                    outputs[0].bytes()[whole..whole + c].copy_from_slice(src);
                }
            }
            at += c;
        }
        Ok(())
    }
}

/// Concat along `axis` (negative from opset 11).
pub(crate) fn concat(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let first = ctx.fact(0)?.clone();
    let axis = ctx
        .node
        .attr_int_opt("axis")?
        .ok_or_else(|| ctx.err("attribute 'axis' is required"))?;
    let axis = norm_axis(ctx, axis, first.rank())?;
    let es = first.dtype.size();
    let inner = numel(ctx, &first.shape[axis + 1..])?;
    let outer = numel(ctx, &first.shape[..axis])?;
    let mut chunks = Vec::with_capacity(ctx.num_inputs());
    let mut total = 0usize;
    for i in 0..ctx.num_inputs() {
        let f = ctx.fact(i)?;
        let same = f.rank() == first.rank()
            && (0..f.rank()).all(|k| k == axis || f.shape[k] == first.shape[k]);
        if f.dtype != first.dtype || !same {
            return Err(ctx.err(format!(
                "input {i} ({} {:?}) does not match input 0 ({} {:?}) outside axis {axis}",
                f.dtype, f.shape, first.dtype, first.shape
            )));
        }
        chunks.push(f.shape[axis] * inner * es);
        total += f.shape[axis];
    }
    let mut shape = first.shape.clone();
    shape[axis] = total;
    numel(ctx, &shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(first.dtype, shape)],
        kernel: Box::new(BlockKernel {
            split: false,
            outer,
            row: chunks.iter().sum(),
            chunks,
        }),
    })
}

/// Split along `axis`: sizes from the `split` attribute (opset < 13) or input
/// (13+), else `num_outputs` (18+) or the number of outputs, in equal parts
/// with a smaller last part.
pub(crate) fn split(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 0)?, fact.rank())?;
    let d = fact.shape[axis];
    let n_out = ctx.node.outputs.len();
    let given = if ctx.opset >= 13 {
        opt_const_ints(ctx, 1)?
    } else {
        ctx.node.attr_ints("split")?.map(<[i64]>::to_vec)
    };
    let num_outputs = if ctx.opset >= 18 {
        ctx.node.attr_int_opt("num_outputs")?
    } else {
        None
    };
    let sizes: Vec<usize> = match (given, num_outputs) {
        (Some(_), Some(_)) => return Err(ctx.err("'split' and 'num_outputs' cannot both be given")),
        (Some(s), None) => {
            let s = s
                .iter()
                .map(|&v| dim(ctx, v, "split"))
                .collect::<Result<Vec<_>, _>>()?;
            if s.iter().sum::<usize>() != d {
                return Err(ctx.err(format!("split {s:?} does not sum to axis size {d}")));
            }
            s
        }
        (None, n) => {
            let n = match n {
                Some(n) if n < 1 => return Err(ctx.err(format!("num_outputs {n} < 1"))),
                Some(n) => n as usize,
                None => n_out,
            };
            if n == 0 {
                return Err(ctx.err("Split needs at least one output"));
            }
            let part = d.div_ceil(n);
            if part * (n - 1) > d {
                return Err(ctx.err(format!("axis of size {d} cannot be split into {n} parts")));
            }
            let mut s = vec![part; n];
            s[n - 1] = d - part * (n - 1);
            s
        }
    };
    if sizes.len() != n_out {
        return Err(ctx.err(format!("{} split sizes for {n_out} outputs", sizes.len())));
    }
    let es = fact.dtype.size();
    let inner = numel(ctx, &fact.shape[axis + 1..])?;
    let outer = numel(ctx, &fact.shape[..axis])?;
    let outputs = sizes
        .iter()
        .map(|&s| {
            let mut shape = fact.shape.clone();
            shape[axis] = s;
            Fact::new(fact.dtype, shape)
        })
        .collect();
    let chunks = sizes.iter().map(|&s| s * inner * es).collect();
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(BlockKernel {
            split: true,
            outer,
            chunks,
            row: d * inner * es,
        }),
    })
}
