//! Compress and NonZero, whose output shapes depend on input values. With
//! whittle's static shapes they build only when that input is a
//! compile-time constant: Compress then becomes a gather of the selected
//! slices (the data may still vary), NonZero a constant. Otherwise the
//! build fails saying which input must be constant and why.

use whittle_ir::{Tensor, TensorData};

use crate::ops::common::const_size::check_const_size;
use crate::ops::common::shape_util::{norm_axis, numel};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers Compress and NonZero.
pub fn register(r: &mut Registry) {
    r.add("Compress", compress);
    r.add("NonZero", non_zero);
}

/// The value of input `i`, or an error naming it as data-dependent.
fn shape_input<'a>(ctx: &BuildCtx<'a>, i: usize) -> Result<&'a Tensor, OpError> {
    ctx.input(i)?.value.ok_or_else(|| {
        ctx.err(format!(
            "input {i} ('{}') must be a compile-time constant: the output shape of {} \
             depends on its values, and whittle plans static shapes",
            ctx.node.inputs.get(i).map(String::as_str).unwrap_or(""),
            ctx.node.op_type
        ))
    })
}

struct Compress {
    outer: usize,
    axis_len: usize,
    /// Selected positions along the axis.
    keep: Vec<usize>,
    /// Bytes of one slice.
    inner: usize,
}

impl Kernel for Compress {
    fn name(&self) -> String {
        "compress".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].bytes();
        let out = outputs[0].bytes();
        let c = self.inner;
        if x.len() != self.outer * self.axis_len * c
            || out.len() != self.outer * self.keep.len() * c
        {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let mut dst = 0;
        for o in 0..self.outer {
            for &k in &self.keep {
                let src = (o * self.axis_len + k) * c;
                out[dst..dst + c].copy_from_slice(&x[src..src + c]);
                dst += c;
            }
        }
        Ok(())
    }
}

fn compress(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x = ctx.fact(0)?.clone();
    ctx.expect_dtype(1, &[whittle_ir::DType::Bool])?;
    let cond = shape_input(ctx, 1)?;
    if cond.rank() != 1 {
        return Err(ctx.err(format!(
            "condition must be 1-D, found shape {:?}",
            cond.shape()
        )));
    }
    // Without an axis the input is flattened.
    let (shape, axis) = match ctx.node.attr_int_opt("axis")? {
        Some(a) => (x.shape.clone(), norm_axis(ctx, a, x.rank())?),
        None => (vec![x.numel()], 0),
    };
    let axis_len = shape[axis];
    let keep: Vec<usize> = cond
        .as_bytes()
        .iter()
        .enumerate()
        .filter(|(_, &b)| b != 0)
        .map(|(i, _)| i)
        .collect();
    if let Some(&last) = keep.last() {
        if last >= axis_len {
            return Err(ctx.err(format!(
                "condition selects position {last}, beyond the axis size {axis_len}"
            )));
        }
    }
    let mut out = shape.clone();
    out[axis] = keep.len();
    numel(ctx, &out)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(x.dtype, out)],
        kernel: Box::new(Compress {
            outer: shape[..axis].iter().product(),
            axis_len,
            keep,
            inner: shape[axis + 1..].iter().product::<usize>() * x.dtype.size(),
        }),
    })
}

fn non_zero(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x = shape_input(ctx, 0)?;
    let shape = x.shape();
    let hits: Vec<usize> = x
        .to_f64_vec()
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0.0)
        .map(|(i, _)| i)
        .collect();
    let (r, n) = (shape.len(), hits.len());
    check_const_size(ctx, &[r, n], whittle_ir::DType::I64)?;
    // Row d holds every hit's coordinate along axis d.
    let mut coords = vec![0i64; r * n];
    for (j, &flat) in hits.iter().enumerate() {
        let mut rest = flat;
        for d in (0..r).rev() {
            coords[d * n + j] = (rest % shape[d]) as i64;
            rest /= shape[d];
        }
    }
    Ok(Built::Constant(vec![Tensor::new(
        vec![r, n],
        TensorData::I64(coords),
    )?]))
}
