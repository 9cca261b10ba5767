//! Backward rules of QuantizeLinear and DequantizeLinear, so a QDQ graph
//! (whittle's or onnxruntime's post-training quantization) trains with its
//! integer weights as the trainable tensors.
//!
//! * `DequantizeLinear`: `y = (q - zp) * s`, so `dL/dq = s * dL/dy`
//!   (per channel along `axis` when the scale is a vector). An integer
//!   tensor's gradient is real-valued: it is f32.
//! * `QuantizeLinear`: the straight-through estimator. Rounding passes the
//!   gradient through as if it were `q = x / s + zp`, so `dL/dx = dL/dq / s`
//!   where `x / s + zp` rounds into `[qmin, qmax]`, and 0 where the clamp
//!   saturates (PyTorch's `fake_quantize_per_tensor_affine` mask). A
//!   `QuantizeLinear -> DequantizeLinear` pair thus passes `dL/dy` through
//!   unchanged inside the range.
//!
//! Scales and zero points must be constants and are never trained.

use whittle_ir::{Activation, DType, Node};

use super::emit::Emit;
use super::rules::Ctx;
use crate::TrainError;

fn err(node: &Node, msg: impl Into<String>) -> TrainError {
    TrainError::Node {
        node: node.name.clone(),
        op: node.op_type.clone(),
        msg: msg.into(),
    }
}

/// Emits the backward nodes of a QuantizeLinear or DequantizeLinear node.
pub(crate) fn backward(e: &mut Emit<'_>, c: &Ctx<'_>) -> Result<(), TrainError> {
    let n = c.node;
    if c.need.iter().skip(1).any(|&b| b) {
        return Err(err(n, "scales and zero points cannot be trained"));
    }
    if !c.need.first().copied().unwrap_or(false) {
        return Ok(());
    }
    if n.attr_int("block_size", 0)? != 0 {
        return Err(err(n, "blocked (int4) quantization cannot be trained"));
    }
    let g =
        c.gy.first()
            .and_then(|g| g.clone())
            .ok_or_else(|| err(n, "only output 0 can carry a gradient"))?;
    let x = n.inputs[0].as_str();
    let scale_name = n.inputs.get(1).map_or("", String::as_str);
    let scale = e
        .value(scale_name)
        .ok_or_else(|| err(n, format!("the scale '{scale_name}' must be a constant")))?
        .to_f32_vec();
    if scale.is_empty() || scale.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(err(n, "scales must be finite and positive"));
    }
    match n.op_type.as_str() {
        "DequantizeLinear" => dequantize(e, c, &g, x, &scale),
        _ => quantize(e, c, &g, x, scale[0]),
    }
}

fn dequantize(
    e: &mut Emit<'_>,
    c: &Ctx<'_>,
    g: &str,
    x: &str,
    scale: &[f32],
) -> Result<(), TrainError> {
    let n = c.node;
    let xs = e.shape(x)?.to_vec();
    let shape = if scale.len() == 1 {
        vec![]
    } else {
        let rank = xs.len() as i64;
        let axis = n.attr_int("axis", 1)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        if !(0..rank).contains(&axis) || xs[axis as usize] != scale.len() {
            return Err(err(
                n,
                format!("{} scales do not match axis {axis} of {xs:?}", scale.len()),
            ));
        }
        let mut s = vec![1; xs.len()];
        s[axis as usize] = scale.len();
        s
    };
    let k = e.const_f32(&format!("{}.grad_scale", n.name), shape, scale.to_vec());
    let out = e.grad_out(x);
    e.node(&n.name, "Mul", false, &[g, &k], &[&out], vec![]);
    Ok(())
}

fn quantize(e: &mut Emit<'_>, c: &Ctx<'_>, g: &str, x: &str, scale: f32) -> Result<(), TrainError> {
    let n = c.node;
    let count = e
        .value(n.inputs.get(1).map_or("", String::as_str))
        .map_or(0, |t| t.numel());
    if count != 1 {
        return Err(err(
            n,
            "only per-tensor QuantizeLinear can be differentiated",
        ));
    }
    let zp_name = n.inputs.get(2).map_or("", String::as_str);
    let (zp, dtype) = if zp_name.is_empty() {
        (0.0, DType::U8)
    } else {
        let t = e
            .value(zp_name)
            .ok_or_else(|| err(n, format!("the zero point '{zp_name}' must be a constant")))?;
        (t.to_f32_vec().first().copied().unwrap_or(0.0), t.dtype())
    };
    let (qmin, qmax) = match dtype {
        DType::I8 => (-128.0, 127.0),
        DType::U8 => (0.0, 255.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U16 => (0.0, 65535.0),
        other => {
            return Err(err(
                n,
                format!("cannot differentiate a {other} quantization"),
            ))
        }
    };
    // `round(x / s) + zp` stays unclamped for x in this open interval.
    let lo = (qmin - zp - 0.5) * scale;
    let hi = (qmax - zp + 0.5) * scale;
    let masked = e.fresh(&format!("{x}.grad_in_range"));
    let in_range = Activation::Clip { min: lo, max: hi };
    e.node_with_activation(&n.name, "ActivationGrad", &[g, x], &[&masked], in_range);
    let k = e.const_f32(
        &format!("{}.grad_inv_scale", n.name),
        vec![],
        vec![1.0 / scale],
    );
    let out = e.grad_out(x);
    e.node(&n.name, "Mul", false, &[&masked, &k], &[&out], vec![]);
    Ok(())
}

/// Whether integer initializer `w` is read only as input 0 of
/// DequantizeLinear nodes (and at least once): then it can train with
/// real-valued gradients.
pub(crate) fn dequantized_only(g: &whittle_ir::Graph, w: &str) -> bool {
    let t = g.initializers.get(w);
    if !matches!(
        t.map(|t| t.dtype()),
        Some(DType::I8 | DType::U8 | DType::I32)
    ) {
        return false;
    }
    let mut reads = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().enumerate().map(move |(i, v)| (n, i, v)))
        .filter(|(_, _, v)| v.as_str() == w)
        .peekable();
    reads.peek().is_some()
        && reads.all(|(n, i, _)| n.op_type == "DequantizeLinear" && n.domain.is_empty() && i == 0)
}
