//! GatherND with `batch_dims`: each index tuple in the last axis of
//! `indices` selects a slice of `data`. Works on raw bytes (any dtype);
//! every index is checked at run time against its axis.

use whittle_ir::DType;

use crate::ops::common::shape_util::{numel, MAX_RANK};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers GatherND.
pub fn register(r: &mut Registry) {
    r.add("GatherND", gather_nd);
}

/// Where the index tuples of GatherND and ScatterND point: shared by both.
#[derive(Clone, Debug)]
pub(crate) struct NdIndexing {
    /// Product of the batch dims.
    pub batches: usize,
    /// Index tuples per batch.
    pub tuples: usize,
    /// Length of one tuple.
    pub depth: usize,
    /// Sizes of the data axes a tuple indexes.
    pub dims: Vec<usize>,
    /// Strides of those axes, in slices.
    pub strides: Vec<usize>,
    /// Elements of the slice one tuple selects.
    pub slice: usize,
    /// Elements of data per batch.
    pub batch_len: usize,
}

impl NdIndexing {
    /// Validates shapes and plans the indexing of `data` by `indices`.
    pub(crate) fn new(
        ctx: &BuildCtx<'_>,
        data: &[usize],
        indices: &[usize],
        batch_dims: usize,
    ) -> Result<NdIndexing, OpError> {
        let (r, q) = (data.len(), indices.len());
        if q == 0 {
            return Err(ctx.err("indices must have rank 1 or more"));
        }
        if batch_dims >= q.min(r) {
            return Err(ctx.err(format!(
                "batch_dims {batch_dims} must be below the ranks of data ({r}) and indices ({q})"
            )));
        }
        if data[..batch_dims] != indices[..batch_dims] {
            return Err(ctx.err(format!(
                "the first {batch_dims} dims of data {data:?} and indices {indices:?} differ"
            )));
        }
        let depth = indices[q - 1];
        if depth < 1 || depth > r - batch_dims || depth > MAX_RANK {
            return Err(ctx.err(format!(
                "indices' last dim {depth} must be in 1..={} (data rank {r} minus batch_dims)",
                r - batch_dims
            )));
        }
        let dims = data[batch_dims..batch_dims + depth].to_vec();
        let mut strides = vec![1usize; depth];
        for d in (0..depth.saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * dims[d + 1];
        }
        Ok(NdIndexing {
            batches: numel(ctx, &data[..batch_dims])?,
            tuples: numel(ctx, &indices[batch_dims..q - 1])?,
            depth,
            dims,
            strides,
            slice: numel(ctx, &data[batch_dims + depth..])?,
            batch_len: numel(ctx, &data[batch_dims..])?,
        })
    }

    /// The data element offset (within its batch) of tuple `t` of batch
    /// `b`, each index checked.
    #[inline]
    pub(crate) fn offset(&self, idx: &View<'_>, b: usize, t: usize) -> Result<usize, RunError> {
        let start = (b * self.tuples + t) * self.depth;
        let mut off = 0usize;
        for d in 0..self.depth {
            let raw = match idx.dtype() {
                DType::I32 => idx.i32().get(start + d).map(|&v| i64::from(v)),
                _ => idx.i64().get(start + d).copied(),
            }
            .ok_or(RunError::Unsupported("indices shorter than compiled"))?;
            let size = self.dims[d];
            let v = if raw < 0 { raw + size as i64 } else { raw };
            if v < 0 || v >= size as i64 {
                return Err(RunError::IndexOutOfRange { index: raw, size });
            }
            off += v as usize * self.strides[d];
        }
        Ok(off * self.slice)
    }
}

struct GatherNd {
    plan: NdIndexing,
    elem: usize,
}

impl Kernel for GatherNd {
    fn name(&self) -> String {
        "gather_nd".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let p = &self.plan;
        let data = inputs[0].bytes();
        let out = outputs[0].bytes();
        let c = p.slice * self.elem;
        if data.len() != p.batches * p.batch_len * self.elem
            || out.len() != p.batches * p.tuples * c
        {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        for b in 0..p.batches {
            for t in 0..p.tuples {
                let src = (b * p.batch_len + p.offset(&inputs[1], b, t)?) * self.elem;
                let dst = (b * p.tuples + t) * c;
                out[dst..dst + c].copy_from_slice(&data[src..src + c]);
            }
        }
        Ok(())
    }
}

/// The `batch_dims` attribute (opset 12+), non-negative.
pub(crate) fn batch_dims(ctx: &BuildCtx<'_>) -> Result<usize, OpError> {
    let b = ctx.node.attr_int("batch_dims", 0)?;
    usize::try_from(b).map_err(|_| ctx.err(format!("batch_dims must be non-negative, found {b}")))
}

fn gather_nd(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let data = ctx.fact(0)?.clone();
    let idx = ctx.fact(1)?.clone();
    ctx.expect_dtype(1, &[DType::I64, DType::I32])?;
    let b = batch_dims(ctx)?;
    let plan = NdIndexing::new(ctx, &data.shape, &idx.shape, b)?;
    let mut shape = idx.shape[..idx.rank() - 1].to_vec();
    shape.extend(&data.shape[b + plan.depth..]);
    numel(ctx, &shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(data.dtype, shape)],
        kernel: Box::new(GatherNd {
            plan,
            elem: data.dtype.size(),
        }),
    })
}

#[cfg(test)]
#[path = "gather_nd_tests.rs"]
mod tests;
