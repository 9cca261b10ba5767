//! MeanVarianceNormalization: `(x - E[x]) / (sqrt(E[x²] - E[x]²) + 1e-9)`
//! with the expectations over `axes` (default N, H, W), exactly the ONNX
//! function body. Statistics accumulate in f64.

use whittle_ir::DType;

use crate::ops::common::elem::{input, output, with_type, Num, FLOATS};
use crate::ops::common::shape_util::{check_rank, norm_axes, numel, strides, MAX_RANK};
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers MeanVarianceNormalization.
pub fn register(r: &mut Registry) {
    r.add("MeanVarianceNormalization", mvn);
}

/// The epsilon of the ONNX function body.
const EPSILON: f64 = 1e-9;

/// Dims and strides of one group of axes, walked with an odometer.
#[derive(Clone, Debug, Default)]
struct Walk {
    dims: Vec<usize>,
    strides: Vec<usize>,
}

impl Walk {
    fn count(&self) -> usize {
        self.dims.iter().product()
    }

    /// Calls `f(offset)` for every position, in row-major order.
    #[inline]
    fn each(&self, base: usize, mut f: impl FnMut(usize)) {
        let r = self.dims.len();
        let mut pos = [0usize; MAX_RANK];
        let mut off = base;
        for _ in 0..self.count() {
            f(off);
            for d in (0..r).rev() {
                pos[d] += 1;
                off += self.strides[d];
                if pos[d] < self.dims[d] {
                    break;
                }
                off -= self.strides[d] * self.dims[d];
                pos[d] = 0;
            }
        }
    }
}

struct Mvn {
    dtype: DType,
    total: usize,
    kept: Walk,
    reduced: Walk,
}

impl Mvn {
    fn run_typed<T: Num>(&self, x: &[T], y: &mut [T]) {
        let n = self.reduced.count() as f64;
        self.kept.each(0, |base| {
            let (mut s, mut sq) = (0.0f64, 0.0f64);
            self.reduced.each(base, |o| {
                let v = x[o].to_f64();
                s += v;
                sq += v * v;
            });
            let mean = s / n;
            let std = (sq / n - mean * mean).sqrt();
            let d = std + EPSILON;
            self.reduced.each(base, |o| {
                y[o] = T::from_f64((x[o].to_f64() - mean) / d);
            });
        });
    }
}

impl Kernel for Mvn {
    fn name(&self) -> String {
        format!("mvn.{}", self.dtype)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        with_type!(self.dtype, [F32, F64, F16, BF16], T => {
            let x = input::<T>(&inputs[0])?;
            let y = output::<T>(&mut outputs[0])?;
            if x.len() != self.total || y.len() != self.total {
                return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
            }
            self.run_typed(x, y);
            Ok(())
        }, _ => Err(RunError::Unsupported("MeanVarianceNormalization dtype")))
    }
}

fn mvn(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, FLOATS)?;
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    check_rank(ctx, r)?;
    let axes = match ctx.node.attr_ints("axes")? {
        Some(a) => a.to_vec(),
        None => vec![0, 2, 3],
    };
    let axes = norm_axes(ctx, &axes, r)?;
    let total = numel(ctx, &fact.shape)?;
    let st = strides(&fact.shape);
    let (mut kept, mut reduced) = (Walk::default(), Walk::default());
    for (d, (&size, &stride)) in fact.shape.iter().zip(&st).enumerate() {
        let w = if axes.contains(&d) {
            &mut reduced
        } else {
            &mut kept
        };
        w.dims.push(size);
        w.strides.push(stride);
    }
    Ok(Built::Kernel {
        outputs: vec![fact],
        kernel: Box::new(Mvn {
            dtype,
            total,
            kept,
            reduced,
        }),
    })
}

#[cfg(test)]
#[path = "mvn_tests.rs"]
mod tests;
