//! Conv -> QLinearConv, MatMul -> QLinearMatMul, Gemm -> com.microsoft QGemm,
//! and int4 block-quantized weights -> whittle QBlockLinear.

use super::act::carried_act;
use super::pattern::{
    dq_act, dq_weight, float_bias, q_out, qnode, quantize_bias, Maps, QParam, WeightDq,
};
use super::{MS_DOMAIN, WHITTLE_DOMAIN};
use crate::{Activation, Attr, DType, Graph, Node, Patch, Tensor, TensorData};

/// The activation in, the Q out, and the fused activation of a linear op.
struct Frame {
    x: QParam,
    y: QParam,
    q_node: usize,
    act: Activation,
}

fn frame(g: &Graph, maps: &Maps<'_>, n: &Node) -> Option<Frame> {
    if n.outputs.len() != 1 {
        return None;
    }
    let act = carried_act(n)?;
    let (_, x) = dq_act(g, maps, n.input(0)?)?;
    let (q_node, y) = q_out(g, maps, &n.outputs[0])?;
    (x.dtype == y.dtype).then_some(Frame { x, y, q_node, act })
}

/// The weight's zero point input, creating a zero one if the DQ had none.
fn weight_zp(patch: &mut Patch, node: &Node, w: &WeightDq) -> Option<String> {
    Some(match &w.zp_name {
        Some(z) => z.clone(),
        None => {
            let zeros = Tensor::zeros(w.w.dtype(), w.scale.shape().to_vec()).ok()?;
            patch.add_initializer(&format!("{}_w_zero_point", node.name), zeros)
        }
    })
}

fn is_int8(dt: DType) -> bool {
    matches!(dt, DType::I8 | DType::U8)
}

/// `DQ(x), DQ(w)[, bias] -> Conv -> Q` -> QLinearConv (int32 bias with scale
/// `x_scale * w_scale[c]`), or QBlockLinear for int4 1x1 convolutions.
pub(super) fn conv(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = &g.nodes[i];
    if n.op_type != "Conv" || !n.domain.is_empty() {
        return None;
    }
    let f = frame(g, maps, n)?;
    let w = dq_weight(g, maps, n.input(1)?)?;
    if w.w.dtype() == DType::I4 {
        return block_conv1x1(g, maps, n, i, f, w);
    }
    if !is_int8(w.w.dtype()) || w.w.rank() < 3 || !w.is_per_axis_or_tensor(0) {
        return None;
    }
    let m = w.w.shape()[0];
    let bias = match n.input(2) {
        Some(b) => {
            let b = float_bias(g, maps, b)?;
            if b.len() != m {
                return None;
            }
            Some(quantize_bias(&b, |c| f.x.scale * w.scale_at(c))?)
        }
        None => None,
    };
    let mut patch = Patch::new();
    let w_zp = weight_zp(&mut patch, n, &w)?;
    let mut inputs = vec![
        f.x.value.clone(),
        f.x.scale_name.clone(),
        f.x.zp_name.clone(),
        w.name.clone(),
        w.scale_name.clone(),
        w_zp,
        f.y.scale_name.clone(),
        f.y.zp_name.clone(),
    ];
    if let Some(b) = bias {
        let t = Tensor::new(vec![m], TensorData::I32(b)).ok()?;
        inputs.push(patch.add_initializer(&format!("{}_bias_i32", n.name), t));
    }
    let mut node = qnode(n, "QLinearConv", "", inputs, &f.y.value);
    node.attrs = n.attrs.clone();
    node.activation = f.act;
    patch.replace_node(i, node);
    patch.remove_node(f.q_node);
    Some(patch)
}

/// int4 block weights: values as an I8 tensor, zero points all zero, block
/// size >= 16 along `axis` with the scale shape ONNX requires.
fn block_weight(w: &WeightDq, axis: usize) -> Option<Tensor> {
    if w.w.dtype() != DType::I4 || w.block_size < 16 || w.axis != axis {
        return None;
    }
    if w.zp
        .as_ref()
        .is_some_and(|z| z.to_f64_vec().iter().any(|&v| v != 0.0))
    {
        return None;
    }
    let mut want = w.w.shape().to_vec();
    want[axis] = want[axis].div_ceil(w.block_size);
    if w.scale.shape() != want.as_slice() {
        return None;
    }
    let TensorData::I4(v) = w.w.data() else {
        return None;
    };
    Tensor::new(w.w.shape().to_vec(), TensorData::I8(v.clone())).ok()
}

fn block_node(
    n: &Node,
    f: &Frame,
    w: &WeightDq,
    w8: Tensor,
    bias: Option<Vec<f32>>,
    layout: &str,
    i: usize,
) -> Option<Patch> {
    let mut patch = Patch::new();
    let w_name = patch.add_initializer(&format!("{}_w_i4", n.name), w8);
    let mut inputs = vec![
        f.x.value.clone(),
        f.x.scale_name.clone(),
        f.x.zp_name.clone(),
        w_name,
        w.scale_name.clone(),
        f.y.scale_name.clone(),
        f.y.zp_name.clone(),
    ];
    if let Some(b) = bias {
        let t = Tensor::from_f32(vec![b.len()], b).ok()?;
        inputs.push(patch.add_initializer(&format!("{}_bias", n.name), t));
    }
    let mut node = qnode(n, "QBlockLinear", WHITTLE_DOMAIN, inputs, &f.y.value);
    node.attrs
        .insert("block_size".into(), Attr::Int(w.block_size as i64));
    node.attrs
        .insert("layout".into(), Attr::String(layout.to_string()));
    node.activation = f.act;
    patch.replace_node(i, node);
    patch.remove_node(f.q_node);
    Some(patch)
}

fn block_conv1x1(
    g: &Graph,
    maps: &Maps<'_>,
    n: &Node,
    i: usize,
    f: Frame,
    w: WeightDq,
) -> Option<Patch> {
    let [m, _, 1, 1] = *w.w.shape() else {
        return None;
    };
    let all = |name: &str, v: i64| {
        n.attr_ints(name)
            .ok()
            .map(|a| a.is_none_or(|a| a.iter().all(|&x| x == v)))
    };
    let plain = n.attr_int("group", 1).ok()? == 1
        && all("strides", 1)?
        && all("pads", 0)?
        && matches!(
            n.attr_string("auto_pad", "NOTSET").ok()?.as_str(),
            "NOTSET" | "VALID"
        );
    if !plain {
        return None;
    }
    let w8 = block_weight(&w, 1)?;
    let bias = match n.input(2) {
        Some(b) => Some(float_bias(g, maps, b).filter(|b| b.len() == m)?),
        None => None,
    };
    block_node(n, &f, &w, w8, bias, "conv1x1", i)
}

/// `DQ(a), DQ(b) -> MatMul -> Q` -> QLinearMatMul (b constant, per tensor or
/// per column), or QBlockLinear for int4 block weights.
pub(super) fn matmul(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = &g.nodes[i];
    if n.op_type != "MatMul" || !n.domain.is_empty() {
        return None;
    }
    let f = frame(g, maps, n)?;
    let w = dq_weight(g, maps, n.input(1)?)?;
    if w.w.rank() != 2 {
        return None;
    }
    if w.w.dtype() == DType::I4 {
        let w8 = block_weight(&w, 0)?;
        return block_node(n, &f, &w, w8, None, "matmul", i);
    }
    if !is_int8(w.w.dtype()) || !w.is_per_axis_or_tensor(1) {
        return None;
    }
    let mut patch = Patch::new();
    let w_zp = weight_zp(&mut patch, n, &w)?;
    let inputs = vec![
        f.x.value.clone(),
        f.x.scale_name.clone(),
        f.x.zp_name.clone(),
        w.name.clone(),
        w.scale_name.clone(),
        w_zp,
        f.y.scale_name.clone(),
        f.y.zp_name.clone(),
    ];
    let mut node = qnode(n, "QLinearMatMul", "", inputs, &f.y.value);
    node.activation = f.act;
    patch.replace_node(i, node);
    patch.remove_node(f.q_node);
    Some(patch)
}

/// `DQ(a), DQ(B)[, C] -> Gemm -> Q` -> com.microsoft QGemm, C quantized to
/// int32 with scale `alpha / beta * a_scale * b_scale[n]`.
pub(super) fn gemm(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = &g.nodes[i];
    if n.op_type != "Gemm" || !n.domain.is_empty() {
        return None;
    }
    let f = frame(g, maps, n)?;
    let w = dq_weight(g, maps, n.input(1)?)?;
    let trans_b = n.attr_int("transB", 0).ok()? != 0;
    let col_axis = if trans_b { 0 } else { 1 };
    if w.w.rank() != 2 || !is_int8(w.w.dtype()) || !w.is_per_axis_or_tensor(col_axis) {
        return None;
    }
    let alpha = n.attr_float("alpha", 1.0).ok()?;
    let beta = n.attr_float("beta", 1.0).ok()?;
    if !(alpha.is_finite() && alpha > 0.0 && beta.is_finite()) {
        return None;
    }
    let cols = w.w.shape()[col_axis];
    let mut patch = Patch::new();
    let c = match n.input(2) {
        Some(c) => {
            let c = float_bias(g, maps, c)?;
            let c: Vec<f32> = match c.len() {
                len if len == cols => c.iter().map(|v| v * beta).collect(),
                1 => vec![c[0] * beta; cols],
                _ => return None,
            };
            let q = quantize_bias(&c, |k| alpha * f.x.scale * w.scale_at(k))?;
            let t = Tensor::new(vec![cols], TensorData::I32(q)).ok()?;
            patch.add_initializer(&format!("{}_bias_i32", n.name), t)
        }
        None => String::new(),
    };
    let w_zp = weight_zp(&mut patch, n, &w)?;
    let inputs = vec![
        f.x.value.clone(),
        f.x.scale_name.clone(),
        f.x.zp_name.clone(),
        w.name.clone(),
        w.scale_name.clone(),
        w_zp,
        c,
        f.y.scale_name.clone(),
        f.y.zp_name.clone(),
    ];
    let mut node = qnode(n, "QGemm", MS_DOMAIN, inputs, &f.y.value);
    for key in ["alpha", "transA", "transB"] {
        if let Some(a) = n.attr(key) {
            node.attrs.insert(key.into(), a.clone());
        }
    }
    node.activation = f.act;
    patch.replace_node(i, node);
    patch.remove_node(f.q_node);
    Some(patch)
}
