//! ArgMax and ArgMin along one axis, with keepdims and select_last_index.

use whittle_ir::DType;

use crate::ops::common::shape_util::{norm_axis, numel};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

struct ArgKernel {
    min: bool,
    last: bool,
    dtype: DType,
    outer: usize,
    n: usize,
    inner: usize,
}

/// Ordering used by the search: NaN counts as larger than everything for
/// ArgMax and smaller for ArgMin, as numpy's argmax/argmin pick the first NaN.
trait Key: bytemuck::Pod + PartialOrd {
    fn nan(self) -> bool {
        false
    }
}
impl Key for f32 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}
impl Key for f64 {
    fn nan(self) -> bool {
        self.is_nan()
    }
}
impl Key for i8 {}
impl Key for u8 {}
impl Key for i16 {}
impl Key for u16 {}
impl Key for i32 {}
impl Key for u32 {}
impl Key for i64 {}
impl Key for u64 {}

impl ArgKernel {
    /// True when candidate `v` should replace the current best `b`.
    #[inline(always)]
    fn better<T: Key>(&self, v: T, b: T) -> bool {
        if b.nan() {
            return self.last && v.nan();
        }
        if v.nan() {
            return true;
        }
        match (self.min, self.last) {
            (false, false) => v > b,
            (false, true) => v >= b,
            (true, false) => v < b,
            (true, true) => v <= b,
        }
    }

    fn run_typed<T: Key>(&self, x: &[u8], out: &mut [i64]) {
        let x: &[T] = bytemuck::cast_slice(x);
        let block = self.n * self.inner;
        for o in 0..self.outer {
            let xb = &x[o * block..(o + 1) * block];
            let ob = &mut out[o * self.inner..(o + 1) * self.inner];
            ob.fill(0);
            // Rows in memory order; the best value is re-read from the
            // input so no scratch is needed.
            for k in 1..self.n {
                let row = &xb[k * self.inner..(k + 1) * self.inner];
                for (j, (&v, best)) in row.iter().zip(ob.iter_mut()).enumerate() {
                    if self.better(v, xb[*best as usize * self.inner + j]) {
                        *best = k as i64;
                    }
                }
            }
        }
    }
}

impl Kernel for ArgKernel {
    fn name(&self) -> String {
        format!(
            "{}.{}",
            if self.min { "argmin" } else { "argmax" },
            self.dtype
        )
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, out) = (inputs[0].bytes(), outputs[0].i64());
        match self.dtype {
            DType::F32 => self.run_typed::<f32>(x, out),
            DType::F64 => self.run_typed::<f64>(x, out),
            DType::I8 => self.run_typed::<i8>(x, out),
            DType::U8 => self.run_typed::<u8>(x, out),
            DType::I16 => self.run_typed::<i16>(x, out),
            DType::U16 => self.run_typed::<u16>(x, out),
            DType::I32 => self.run_typed::<i32>(x, out),
            DType::U32 => self.run_typed::<u32>(x, out),
            DType::I64 => self.run_typed::<i64>(x, out),
            _ => self.run_typed::<u64>(x, out),
        }
        Ok(())
    }
}

/// ArgMax (`min` false) or ArgMin (`min` true).
pub(crate) fn build(ctx: &BuildCtx<'_>, min: bool) -> Result<Built, OpError> {
    use DType::*;
    let dtype = ctx.expect_dtype(0, &[F32, F64, I8, U8, I16, U16, I32, U32, I64, U64])?;
    let fact = ctx.fact(0)?.clone();
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 0)?, fact.rank())?;
    let keepdims = ctx.node.attr_int("keepdims", 1)? != 0;
    let last = ctx.opset >= 12 && ctx.node.attr_int("select_last_index", 0)? != 0;
    let n = fact.shape[axis];
    let mut shape = fact.shape.clone();
    if keepdims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    let outer = numel(ctx, &fact.shape[..axis])?;
    let inner = numel(ctx, &fact.shape[axis + 1..])?;
    if n == 0 && outer * inner > 0 {
        return Err(ctx.err(format!("cannot take the arg of an empty axis {axis}")));
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::I64, shape)],
        kernel: Box::new(ArgKernel {
            min,
            last,
            dtype,
            outer,
            n,
            inner,
        }),
    })
}

#[cfg(test)]
#[path = "argmax_tests.rs"]
mod tests;
