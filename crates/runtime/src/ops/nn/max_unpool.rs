//! MaxUnpool: scatters each pooled value back to the flat position its
//! MaxPool index names, zeros elsewhere. Indices address the unpooled shape
//! inferred from the attributes; an explicit (constant) `output_shape`
//! pads that block with zeros at the end of each axis, as the ONNX
//! reference and conformance data do. Raw bytes, any dtype; every index is
//! checked at run time.

use whittle_ir::DType;

use crate::ops::common::shape_util::{check_rank, dim, numel, opt_const_ints, strides};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers MaxUnpool.
pub fn register(r: &mut Registry) {
    r.add("MaxUnpool", max_unpool);
}

struct MaxUnpool {
    elem: usize,
    /// The unpooled shape the indices address.
    inferred: Vec<usize>,
    inferred_len: usize,
    out_strides: Vec<usize>,
    out_len: usize,
    in_len: usize,
}

impl Kernel for MaxUnpool {
    fn name(&self) -> String {
        "max_unpool".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, idx) = (inputs[0].bytes(), inputs[1].i64());
        let out = outputs[0].bytes();
        let e = self.elem;
        if x.len() != self.in_len * e || idx.len() != self.in_len || out.len() != self.out_len * e {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        out.fill(0);
        for (j, &raw) in idx.iter().enumerate() {
            if raw < 0 || raw as u64 >= self.inferred_len as u64 {
                return Err(RunError::IndexOutOfRange {
                    index: raw,
                    size: self.inferred_len,
                });
            }
            // Coordinates in the inferred shape, re-laid out in the output.
            let (mut rest, mut at) = (raw as usize, 0usize);
            for d in (0..self.inferred.len()).rev() {
                at += (rest % self.inferred[d]) * self.out_strides[d];
                rest /= self.inferred[d];
            }
            out[at * e..(at + 1) * e].copy_from_slice(&x[j * e..(j + 1) * e]);
        }
        Ok(())
    }
}

fn ints(ctx: &BuildCtx<'_>, name: &str, n: usize, default: i64) -> Result<Vec<usize>, OpError> {
    let v = match ctx.node.attr_ints(name)? {
        Some(v) => v.to_vec(),
        None => vec![default; n],
    };
    if v.len() != n {
        return Err(ctx.err(format!("{name} has {} values, expected {n}", v.len())));
    }
    v.iter().map(|&x| dim(ctx, x, name)).collect()
}

fn max_unpool(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x = ctx.fact(0)?.clone();
    ctx.expect_dtype(1, &[DType::I64])?;
    let r = x.rank();
    check_rank(ctx, r)?;
    if r < 3 {
        return Err(ctx.err(format!(
            "X must be (N, C, D1, ...), found shape {:?}",
            x.shape
        )));
    }
    if ctx.fact(1)?.shape != x.shape {
        return Err(ctx.err(format!(
            "indices shape {:?} differs from X shape {:?}",
            ctx.fact(1)?.shape,
            x.shape
        )));
    }
    let s = r - 2;
    let kernel = match ctx.node.attr_ints("kernel_shape")? {
        Some(k) if k.len() == s => k
            .iter()
            .map(|&v| dim(ctx, v, "kernel_shape"))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(ctx.err(format!("kernel_shape must have {s} values"))),
    };
    let stride = ints(ctx, "strides", s, 1)?;
    let pads = ints(ctx, "pads", 2 * s, 0)?;
    let mut inferred = x.shape.clone();
    for d in 0..s {
        let full = (x.shape[d + 2].saturating_sub(1))
            .checked_mul(stride[d])
            .and_then(|v| v.checked_add(kernel[d]))
            .ok_or_else(|| ctx.err("unpooled size overflows"))?;
        inferred[d + 2] = full.checked_sub(pads[d] + pads[d + s]).ok_or_else(|| {
            ctx.err(format!(
                "pads {pads:?} exceed the unpooled size of axis {}",
                d + 2
            ))
        })?;
    }
    let out_shape = match opt_const_ints(ctx, 2)? {
        None => inferred.clone(),
        Some(v) => {
            let v: Vec<usize> = v
                .iter()
                .map(|&d| dim(ctx, d, "output_shape"))
                .collect::<Result<_, _>>()?;
            let fits = v.len() == r
                && v[..2] == inferred[..2]
                && v.iter().zip(&inferred).all(|(o, i)| o >= i);
            if !fits {
                return Err(ctx.err(format!(
                    "output_shape {v:?} must keep N and C and be at least the unpooled shape {inferred:?}"
                )));
            }
            v
        }
    };
    let out_len = numel(ctx, &out_shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(x.dtype, out_shape.clone())],
        kernel: Box::new(MaxUnpool {
            elem: x.dtype.size(),
            inferred_len: numel(ctx, &inferred)?,
            inferred,
            out_strides: strides(&out_shape),
            out_len,
            in_len: x.numel(),
        }),
    })
}

#[cfg(test)]
#[path = "max_unpool_tests.rs"]
mod tests;
