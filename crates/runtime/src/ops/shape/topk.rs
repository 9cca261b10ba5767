//! TopK: the `k` largest (or smallest) elements along an axis and their
//! indices. `k` decides the output shape, so it must be a compile-time
//! constant (attribute before opset 10, input 1 after).
//!
//! Order matches onnxruntime and the ONNX reference: by value, ties broken
//! by the lower index, so results are deterministic even though the
//! selection uses unstable (allocation-free) sorts. NaN ranks above every
//! number, as in numpy's sort. `sorted=0` leaves the order unspecified, so
//! the sorted order is returned then too.

use std::cmp::Ordering;

use whittle_ir::DType;

use crate::ops::common::elem::{with_type, Num, NUMERIC};
use crate::ops::common::shape_util::{const_ints, norm_axis, numel};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers TopK.
pub fn register(r: &mut Registry) {
    r.add("TopK", topk);
}

struct TopK {
    dtype: DType,
    outer: usize,
    n: usize,
    inner: usize,
    k: usize,
    largest: bool,
}

/// Total order on values with NaN above everything (NaN == NaN).
#[inline(always)]
fn cmp_nan_last<T: PartialOrd>(a: &T, b: &T) -> Ordering {
    #[allow(clippy::eq_op)]
    match a.partial_cmp(b) {
        Some(o) => o,
        None => (a != a).cmp(&(b != b)),
    }
}

impl TopK {
    fn run_typed<T: Num>(
        &self,
        x: &[u8],
        values: &mut [u8],
        indices: &mut [u8],
        order: &mut [u32],
    ) -> Result<(), RunError> {
        let x: &[T] =
            bytemuck::try_cast_slice(x).map_err(|_| RunError::Unsupported("misaligned input"))?;
        let values: &mut [T] = bytemuck::try_cast_slice_mut(values)
            .map_err(|_| RunError::Unsupported("misaligned output"))?;
        let indices: &mut [i64] = bytemuck::try_cast_slice_mut(indices)
            .map_err(|_| RunError::Unsupported("misaligned output"))?;
        let (n, inner, k) = (self.n, self.inner, self.k);
        if x.len() != self.outer * n * inner || values.len() != self.outer * k * inner {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let order = &mut order[..n];
        for o in 0..self.outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                let at = |j: u32| x[base + j as usize * inner];
                // Best first; equal values keep index order.
                let by = |a: &u32, b: &u32| {
                    let c = cmp_nan_last(&at(*a), &at(*b));
                    let c = if self.largest { c.reverse() } else { c };
                    c.then(a.cmp(b))
                };
                for (j, slot) in order.iter_mut().enumerate() {
                    *slot = j as u32;
                }
                if k < n {
                    order.select_nth_unstable_by(k, by);
                }
                order[..k].sort_unstable_by(by);
                let out = o * k * inner + i;
                for (r, &j) in order[..k].iter().enumerate() {
                    values[out + r * inner] = at(j);
                    indices[out + r * inner] = i64::from(j);
                }
            }
        }
        Ok(())
    }
}

impl Kernel for TopK {
    fn name(&self) -> String {
        format!("topk.{}", if self.largest { "largest" } else { "smallest" })
    }

    fn scratch_bytes(&self) -> usize {
        self.n * 4
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        if self.k == 0 || self.outer * self.inner == 0 {
            return Ok(());
        }
        let order: &mut [u32] = bytemuck::try_cast_slice_mut(&mut ctx.scratch[..self.n * 4])
            .map_err(|_| RunError::Unsupported("misaligned scratch"))?;
        let [values, indices] = outputs else {
            return Err(RunError::Unsupported("TopK has two outputs"));
        };
        let (x, v, i) = (inputs[0].bytes(), values.bytes(), indices.bytes());
        with_type!(self.dtype, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64],
            T => self.run_typed::<T>(x, v, i, order),
            _ => Err(RunError::Unsupported("TopK dtype")))
    }
}

fn topk(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, NUMERIC)?;
    let shape = ctx.fact(0)?.shape.clone();
    if shape.is_empty() {
        return Err(ctx.err("input must have rank 1 or more"));
    }
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", -1)?, shape.len())?;
    let k = if ctx.opset < 10 {
        ctx.node
            .attr_int_opt("k")?
            .ok_or_else(|| ctx.err("attribute 'k' is required before opset 10"))?
    } else {
        ctx.expect_dtype(1, &[DType::I64])?;
        match const_ints(ctx, 1)?.as_slice() {
            [k] => *k,
            other => return Err(ctx.err(format!("K must hold one value, found {other:?}"))),
        }
    };
    let n = shape[axis];
    if k < 0 || k as u64 > n as u64 {
        return Err(ctx.err(format!(
            "k = {k} is outside 0..={n} (the size of axis {axis})"
        )));
    }
    if n > u32::MAX as usize {
        return Err(ctx.err(format!("axis {axis} of {n} elements is too long")));
    }
    let largest = match ctx.node.attr_int("largest", 1)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("largest must be 0 or 1, found {v}"))),
    };
    if !matches!(ctx.node.attr_int("sorted", 1)?, 0 | 1) {
        return Err(ctx.err("sorted must be 0 or 1"));
    }
    let mut out = shape.clone();
    out[axis] = k as usize;
    numel(ctx, &out)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out.clone()), Fact::new(DType::I64, out)],
        kernel: Box::new(TopK {
            dtype,
            outer: numel(ctx, &shape[..axis])?,
            n,
            inner: numel(ctx, &shape[axis + 1..])?,
            k: k as usize,
            largest,
        }),
    })
}

#[cfg(test)]
#[path = "topk_tests.rs"]
mod tests;
