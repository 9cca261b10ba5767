//! Ops whose output holds the input's bytes unchanged under another shape:
//! Identity, Reshape, Flatten, Squeeze, Unsqueeze and inference-mode Dropout.
//! They offer in-place execution, so a planned graph runs them for free.

use whittle_ir::DType;

use crate::ops::common::shape_util::{
    const_ints, dim, norm_axes, norm_axis, numel, opt_const_ints, scalar_bytes,
};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// Output 0 = input 0's bytes; further outputs are filled with one constant
/// element (Dropout's all-true mask).
struct CopyKernel {
    name: &'static str,
    fill: Option<[u8; 8]>,
}

impl Kernel for CopyKernel {
    fn name(&self) -> String {
        self.name.to_string()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (first, rest) = outputs.split_first_mut().expect("output 0 exists");
        if !inputs[0].is_aliased() {
            first.bytes().copy_from_slice(inputs[0].bytes());
        }
        if let (Some(fill), Some(mask)) = (self.fill, rest.first_mut()) {
            let es = mask.dtype().size();
            for e in mask.bytes().chunks_exact_mut(es) {
                e.copy_from_slice(&fill[..es]);
            }
        }
        Ok(())
    }
}

fn view_of(ctx: &BuildCtx<'_>, name: &'static str, shape: Vec<usize>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?;
    if numel(ctx, &shape)? != fact.numel() {
        return Err(ctx.err(format!(
            "cannot view {} elements (shape {:?}) as shape {shape:?}",
            fact.numel(),
            fact.shape
        )));
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(fact.dtype, shape)],
        kernel: Box::new(CopyKernel { name, fill: None }),
    })
}

/// Identity.
pub(crate) fn identity(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let shape = ctx.fact(0)?.shape.clone();
    view_of(ctx, "identity", shape)
}

/// Reshape (opset 5+: shape input; 14+: allowzero).
pub(crate) fn reshape(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let in_shape = ctx.fact(0)?.shape.clone();
    let target = const_ints(ctx, 1)?;
    let allowzero = ctx.opset >= 14 && ctx.node.attr_int("allowzero", 0)? != 0;
    let mut shape = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer.is_some() => {
                return Err(ctx.err(format!("shape {target:?} has more than one -1")))
            }
            -1 => {
                infer = Some(i);
                shape.push(1);
            }
            0 if !allowzero => {
                let Some(&d) = in_shape.get(i) else {
                    return Err(ctx.err(format!(
                        "shape {target:?}: 0 at position {i} copies a dimension the input {in_shape:?} lacks"
                    )));
                };
                shape.push(d);
            }
            d => shape.push(dim(ctx, d, "shape")?),
        }
    }
    if allowzero && infer.is_some() && shape.contains(&0) {
        return Err(ctx.err(format!(
            "shape {target:?}: -1 cannot be combined with a 0 dimension under allowzero"
        )));
    }
    if let Some(i) = infer {
        let total = numel(ctx, &in_shape)?;
        let known = numel(ctx, &shape)?;
        if known == 0 || total % known != 0 {
            return Err(ctx.err(format!(
                "cannot infer -1 in shape {target:?} for input shape {in_shape:?}"
            )));
        }
        shape[i] = total / known;
    }
    view_of(ctx, "reshape", shape)
}

/// Flatten: 2-D view split at `axis` (negative allowed from opset 11).
pub(crate) fn flatten(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let in_shape = ctx.fact(0)?.shape.clone();
    let r = in_shape.len();
    let axis = ctx.node.attr_int("axis", 1)?;
    // Axis may equal the rank (everything goes to the outer dim).
    let axis = if axis == r as i64 {
        r
    } else {
        norm_axis(ctx, axis, r)?
    };
    let outer = numel(ctx, &in_shape[..axis])?;
    let inner = numel(ctx, &in_shape[axis..])?;
    view_of(ctx, "flatten", vec![outer, inner])
}

/// Squeeze (axes attribute before opset 13, optional input after).
pub(crate) fn squeeze(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let in_shape = ctx.fact(0)?.shape.clone();
    let axes = if ctx.opset >= 13 {
        opt_const_ints(ctx, 1)?
    } else {
        ctx.node.attr_ints("axes")?.map(<[i64]>::to_vec)
    };
    let shape = match axes {
        None => in_shape.iter().copied().filter(|&d| d != 1).collect(),
        Some(axes) => {
            let axes = norm_axes(ctx, &axes, in_shape.len())?;
            for &a in &axes {
                if in_shape[a] != 1 {
                    return Err(ctx.err(format!(
                        "cannot squeeze axis {a} of size {} (shape {in_shape:?})",
                        in_shape[a]
                    )));
                }
            }
            in_shape
                .iter()
                .enumerate()
                .filter(|(i, _)| !axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        }
    };
    view_of(ctx, "squeeze", shape)
}

/// Unsqueeze (axes attribute before opset 13, required input after).
pub(crate) fn unsqueeze(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let in_shape = ctx.fact(0)?.shape.clone();
    let axes = if ctx.opset >= 13 {
        const_ints(ctx, 1)?
    } else {
        ctx.node
            .attr_ints("axes")?
            .ok_or_else(|| ctx.err("attribute 'axes' is required"))?
            .to_vec()
    };
    let out_rank = in_shape.len() + axes.len();
    let axes = norm_axes(ctx, &axes, out_rank)?;
    let mut rest = in_shape.iter();
    let shape = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                1
            } else {
                *rest.next().expect("counts match")
            }
        })
        .collect();
    view_of(ctx, "unsqueeze", shape)
}

/// Dropout in inference mode: a copy, plus an all-true mask when asked.
pub(crate) fn dropout(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    if ctx.opset >= 12 {
        let training = match ctx.opt_const_value(2)? {
            Some(t) => t.to_f64_vec().first().copied().unwrap_or(0.0) != 0.0,
            None => false,
        };
        // The ratio only matters in training mode; in inference it may be
        // a run-time value.
        let ratio = match (training, ctx.opt_input(1)) {
            (false, _) | (true, None) => 0.5,
            (true, Some(_)) => ctx
                .const_value(1)?
                .to_f64_vec()
                .first()
                .copied()
                .unwrap_or(0.5),
        };
        if training && ratio != 0.0 {
            return Err(ctx.err(
                "training_mode=true with a non-zero ratio is random; whittle runs Dropout only for inference",
            ));
        }
    }
    let wants_mask = ctx.node.outputs.get(1).is_some_and(|s| !s.is_empty());
    let mut outputs = vec![fact.clone()];
    let mut fill = None;
    if wants_mask {
        // Opset 7-9 typed the mask like the data; 10+ made it bool.
        let mask_dtype = if ctx.opset >= 10 {
            DType::Bool
        } else {
            fact.dtype
        };
        outputs.push(Fact::new(mask_dtype, fact.shape.clone()));
        fill = Some(scalar_bytes(mask_dtype, 1.0));
    }
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(CopyKernel {
            name: "dropout.identity",
            fill,
        }),
    })
}
