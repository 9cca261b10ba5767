//! OneHot: a new axis of size `depth` holding `on_value` where the index
//! points and `off_value` elsewhere. `depth` sets the output shape, so it
//! must be a compile-time constant; indices and values are run-time data.
//! Indices outside `-depth..depth` give an all-off row (the ONNX rule), and
//! so do float indices that are not whole numbers: an index matches a
//! position only when equal to it, as in onnxruntime and the reference.

use whittle_ir::DType;

use crate::ops::common::elem::{input, with_type, Num, NUMERIC};
use crate::ops::common::shape_util::{norm_axis, numel};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers OneHot.
pub fn register(r: &mut Registry) {
    r.add("OneHot", one_hot);
}

struct OneHot {
    idx_dtype: DType,
    outer: usize,
    depth: usize,
    inner: usize,
    elem: usize,
}

impl OneHot {
    fn fill<I: Num>(&self, idx: &[I], off: &[u8], on: &[u8], out: &mut [u8]) {
        let e = self.elem;
        for cell in out.chunks_exact_mut(e) {
            cell.copy_from_slice(off);
        }
        let d = self.depth;
        for (j, &v) in idx.iter().enumerate() {
            let mut v = v.to_f64();
            if v < 0.0 {
                v += d as f64;
            }
            // Only a whole number in range matches; NaN matches nothing.
            if !(v >= 0.0 && v < d as f64 && v.fract() == 0.0) {
                continue;
            }
            let (o, i) = (j / self.inner, j % self.inner);
            let at = ((o * d + v as usize) * self.inner + i) * e;
            out[at..at + e].copy_from_slice(on);
        }
    }
}

impl Kernel for OneHot {
    fn name(&self) -> String {
        "onehot".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let e = self.elem;
        let values = inputs[2].bytes();
        if values.len() != 2 * e {
            return Err(RunError::Unsupported(
                "OneHot values must hold two elements",
            ));
        }
        let (off, on) = values.split_at(e);
        let out = outputs[0].bytes();
        let n = self.outer * self.inner;
        if out.len() != n * self.depth * e {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        with_type!(self.idx_dtype, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T => {
            let idx = input::<T>(&inputs[0])?;
            if idx.len() != n {
                return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
            }
            self.fill(idx, off, on, out);
            Ok(())
        }, _ => Err(RunError::Unsupported("OneHot index dtype")))
    }
}

fn one_hot(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let idx_dtype = ctx.expect_dtype(0, NUMERIC)?;
    ctx.expect_dtype(1, NUMERIC)?;
    let shape = ctx.fact(0)?.shape.clone();
    let depth_t = ctx.const_value(1)?;
    let depth = match depth_t.to_f64_vec().as_slice() {
        [d] => *d,
        _ => {
            return Err(ctx.err(format!(
                "depth must be a scalar, found shape {:?}",
                depth_t.shape()
            )))
        }
    };
    if !(depth >= 1.0 && depth < (1u64 << 40) as f64) {
        return Err(ctx.err(format!("depth must be a positive integer, found {depth}")));
    }
    let depth = depth as usize;
    let values = ctx.fact(2)?;
    if values.numel() != 2 {
        return Err(ctx.err(format!(
            "values must hold [off_value, on_value], found shape {:?}",
            values.shape
        )));
    }
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", -1)?, shape.len() + 1)?;
    let mut out = shape.clone();
    out.insert(axis, depth);
    numel(ctx, &out)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(values.dtype, out)],
        kernel: Box::new(OneHot {
            idx_dtype,
            outer: shape[..axis].iter().product(),
            depth,
            inner: shape[axis..].iter().product(),
            elem: values.dtype.size(),
        }),
    })
}

#[cfg(test)]
#[path = "onehot_tests.rs"]
mod tests;
