//! CumSum along an axis, with `exclusive` and `reverse`. The axis is an
//! input; it is read at run time (a scalar), so it need not be constant.
//! Integers wrap on overflow; f16/bf16 round after every addition, as a
//! running sum in that type does.

use whittle_ir::DType;

use crate::ops::common::elem::{input, output, with_type, Num, WIDE};
use crate::ops::common::shape_util::numel;
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers CumSum.
pub fn register(r: &mut Registry) {
    r.add("CumSum", cumsum);
}

struct CumSum {
    dtype: DType,
    shape: Vec<usize>,
    exclusive: bool,
    reverse: bool,
}

impl CumSum {
    /// The axis from input 1, normalised.
    fn axis(&self, v: &View<'_>) -> Result<usize, RunError> {
        let raw = match v.dtype() {
            DType::I32 => v.i32().first().map(|&a| i64::from(a)),
            _ => v.i64().first().copied(),
        }
        .ok_or(RunError::Unsupported("CumSum axis input is empty"))?;
        let r = self.shape.len();
        let a = if raw < 0 { raw + r as i64 } else { raw };
        if a < 0 || a >= r as i64 {
            return Err(RunError::IndexOutOfRange {
                index: raw,
                size: r,
            });
        }
        Ok(a as usize)
    }

    fn run_typed<T: Num>(&self, x: &[T], y: &mut [T], axis: usize) {
        let n = self.shape[axis];
        let inner: usize = self.shape[axis + 1..].iter().product();
        let outer: usize = self.shape[..axis].iter().product();
        for o in 0..outer {
            for i in 0..inner {
                let base = o * n * inner + i;
                let mut acc = T::ZERO;
                for step in 0..n {
                    let j = if self.reverse { n - 1 - step } else { step };
                    let at = base + j * inner;
                    if self.exclusive {
                        y[at] = acc;
                        acc = acc.add(x[at]);
                    } else {
                        acc = acc.add(x[at]);
                        y[at] = acc;
                    }
                }
            }
        }
    }
}

impl Kernel for CumSum {
    fn name(&self) -> String {
        "cumsum".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let axis = self.axis(&inputs[1])?;
        let total: usize = self.shape.iter().product();
        with_type!(self.dtype, [F32, F64, F16, BF16, I32, I64, U32, U64], T => {
            let x = input::<T>(&inputs[0])?;
            let y = output::<T>(&mut outputs[0])?;
            if x.len() != total || y.len() != total {
                return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
            }
            self.run_typed(x, y, axis);
            Ok(())
        }, _ => Err(RunError::Unsupported("CumSum dtype")))
    }
}

fn flag(ctx: &BuildCtx<'_>, name: &str) -> Result<bool, OpError> {
    match ctx.node.attr_int(name, 0)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.err(format!("{name} must be 0 or 1, found {v}"))),
    }
}

fn cumsum(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, WIDE)?; // opset 14 added the half types
    let shape = ctx.fact(0)?.shape.clone();
    if shape.is_empty() {
        return Err(ctx.err("input must have rank 1 or more"));
    }
    ctx.expect_dtype(1, &[DType::I32, DType::I64])?;
    let axis = ctx.fact(1)?;
    if axis.numel() != 1 || axis.rank() > 1 {
        return Err(ctx.err(format!(
            "axis must be a scalar, found shape {:?}",
            axis.shape
        )));
    }
    numel(ctx, &shape)?;
    let kernel = CumSum {
        dtype,
        shape: shape.clone(),
        exclusive: flag(ctx, "exclusive")?,
        reverse: flag(ctx, "reverse")?,
    };
    // A constant axis is checked now rather than at the first run.
    if let Some(t) = ctx.input(1)?.value {
        let a = t.to_i64_vec().map_err(|e| ctx.err(e.to_string()))?[0];
        crate::ops::common::shape_util::norm_axis(ctx, a, shape.len())?;
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, shape)],
        kernel: Box::new(kernel),
    })
}

#[cfg(test)]
#[path = "cumsum_tests.rs"]
mod tests;
