//! Gather and GatherElements. Indices are run-time data: each is checked
//! against its axis and a bad one is a `RunError`, never a panic.

use bytemuck::Pod;
use whittle_ir::DType;

use crate::ops::common::shape_util::{check_rank, norm_axis, numel, strides, MAX_RANK};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// Index `j` of an i32 or i64 index view, normalised against `size`.
#[inline]
fn index(idx: &View<'_>, j: usize, size: usize) -> Result<usize, RunError> {
    let raw = match idx.dtype() {
        DType::I32 => i64::from(idx.i32()[j]),
        _ => idx.i64()[j],
    };
    let v = if raw < 0 { raw + size as i64 } else { raw };
    if v < 0 || v >= size as i64 {
        return Err(RunError::IndexOutOfRange { index: raw, size });
    }
    Ok(v as usize)
}

struct GatherKernel {
    outer: usize,
    axis_len: usize,
    n_idx: usize,
    /// Bytes of one gathered slice.
    inner: usize,
}

impl Kernel for GatherKernel {
    fn name(&self) -> String {
        "gather".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let data = inputs[0].bytes();
        let out = outputs[0].bytes();
        let c = self.inner;
        for o in 0..self.outer {
            for j in 0..self.n_idx {
                let i = index(&inputs[1], j, self.axis_len)?;
                let src = (o * self.axis_len + i) * c;
                let dst = (o * self.n_idx + j) * c;
                out[dst..dst + c].copy_from_slice(&data[src..src + c]);
            }
        }
        Ok(())
    }
}

fn index_dtype(ctx: &BuildCtx<'_>) -> Result<(), OpError> {
    ctx.expect_dtype(1, &[DType::I32, DType::I64]).map(|_| ())
}

/// Gather along `axis` (negative allowed), any data dtype.
pub(crate) fn gather(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let data = ctx.fact(0)?.clone();
    let idx = ctx.fact(1)?.clone();
    index_dtype(ctx)?;
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 0)?, data.rank())?;
    let mut shape = data.shape[..axis].to_vec();
    shape.extend(&idx.shape);
    shape.extend(&data.shape[axis + 1..]);
    numel(ctx, &shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(data.dtype, shape)],
        kernel: Box::new(GatherKernel {
            outer: numel(ctx, &data.shape[..axis])?,
            axis_len: data.shape[axis],
            n_idx: idx.numel(),
            inner: numel(ctx, &data.shape[axis + 1..])? * data.dtype.size(),
        }),
    })
}

struct GatherElementsKernel {
    elem: usize,
    /// Index tensor shape (= output shape).
    shape: Vec<usize>,
    /// Data strides for every axis; the gather axis's stride is taken from
    /// `axis_stride` and its position contributes through the index.
    data_strides: Vec<usize>,
    axis: usize,
    axis_len: usize,
}

impl GatherElementsKernel {
    fn run_typed<T: Pod>(
        &self,
        data: &[u8],
        idx: &View<'_>,
        out: &mut [u8],
    ) -> Result<(), RunError> {
        let data: &[T] = bytemuck::cast_slice(data);
        let out: &mut [T] = bytemuck::cast_slice_mut(out);
        let r = self.shape.len();
        let mut pos = [0usize; MAX_RANK];
        let mut base = 0usize;
        for (j, o) in out.iter_mut().enumerate() {
            let i = index(idx, j, self.axis_len)?;
            *o = data[base + i * self.data_strides[self.axis]];
            // Odometer over the index shape; the gather axis adds no base.
            for d in (0..r).rev() {
                pos[d] += 1;
                if d != self.axis {
                    base += self.data_strides[d];
                }
                if pos[d] < self.shape[d] {
                    break;
                }
                if d != self.axis {
                    base -= self.data_strides[d] * self.shape[d];
                }
                pos[d] = 0;
            }
        }
        Ok(())
    }
}

impl Kernel for GatherElementsKernel {
    fn name(&self) -> String {
        "gather_elements".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (data, idx, out) = (inputs[0].bytes(), &inputs[1], outputs[0].bytes());
        match self.elem {
            1 => self.run_typed::<u8>(data, idx, out),
            2 => self.run_typed::<u16>(data, idx, out),
            4 => self.run_typed::<u32>(data, idx, out),
            _ => self.run_typed::<u64>(data, idx, out),
        }
    }
}

/// GatherElements: `out[p] = data[p with p[axis] = indices[p]]`.
pub(crate) fn gather_elements(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let data = ctx.fact(0)?.clone();
    let idx = ctx.fact(1)?.clone();
    index_dtype(ctx)?;
    check_rank(ctx, data.rank())?;
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 0)?, data.rank())?;
    let fits = idx.rank() == data.rank()
        && (0..data.rank()).all(|k| k == axis || idx.shape[k] <= data.shape[k]);
    if !fits {
        return Err(ctx.err(format!(
            "indices shape {:?} does not fit data shape {:?} outside axis {axis}",
            idx.shape, data.shape
        )));
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(data.dtype, idx.shape.clone())],
        kernel: Box::new(GatherElementsKernel {
            elem: data.dtype.size(),
            shape: idx.shape.clone(),
            data_strides: strides(&data.shape),
            axis,
            axis_len: data.shape[axis],
        }),
    })
}
