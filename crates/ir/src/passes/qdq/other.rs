//! Element-wise, pooling, concat, unary and data-movement rewrites, and the
//! cancelling of `DQ -> Q` pairs.

use super::act::act_of_node;
use super::pattern::{dq_act, is_op, konst, q_out, qnode, scalar_params, Maps, QParam};
use super::{MS_DOMAIN, WHITTLE_DOMAIN};
use crate::ops::Int8Form;
use crate::{Activation, Attr, Graph, Node, Patch, Tensor, TensorData};

/// A float node of one of `ops` with one output and no fused activation.
fn plain<'g>(g: &'g Graph, i: usize, ops: &[&str]) -> Option<&'g Node> {
    let n = &g.nodes[i];
    (ops.contains(&n.op_type.as_str()) && is_plain(n)).then_some(n)
}

/// A float node whose op runs on int8 as `form`, with one output and no
/// fused activation.
fn plain_of(g: &Graph, i: usize, form: Int8Form) -> Option<&Node> {
    let n = &g.nodes[i];
    (n.info().int8 == form && is_plain(n)).then_some(n)
}

fn is_plain(n: &Node) -> bool {
    n.domain.is_empty() && n.outputs.len() == 1 && n.activation == Activation::None
}

/// Node `i` becomes `node`, which writes the output of the Q node `qi`
/// (removed).
fn rewrite(i: usize, node: Node, qi: usize) -> Patch {
    let mut patch = Patch::new();
    patch.replace_node(i, node);
    patch.remove_node(qi);
    patch
}

fn io(p: &QParam) -> [String; 3] {
    [p.value.clone(), p.scale_name.clone(), p.zp_name.clone()]
}

/// `DQ(q) -> Q` with equal parameters is the identity on `q`: readers of the
/// Q's output read `q` instead (unless it is a graph output).
pub(super) fn cancel_dq_q(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = &g.nodes[i];
    if !is_op(n, "QuantizeLinear") || n.outputs.len() != 1 || g.is_output(&n.outputs[0]) {
        return None;
    }
    let (_, dqp) = dq_act(g, maps, n.input(0)?)?;
    let qp = scalar_params(g, maps, n, &n.outputs[0])?;
    if n.attr_int("output_dtype", 0).ok()? != 0 || !qp.same(&dqp) {
        return None;
    }
    let mut patch = Patch::new();
    patch.remove_node(i);
    patch.redirect(&qp.value, &dqp.value);
    Some(patch)
}

/// `DQ(a), DQ(b) -> Add|Mul -> Q` -> com.microsoft QLinearAdd / QLinearMul.
pub(super) fn binary(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = plain(g, i, &["Add", "Mul"])?;
    let (_, a) = dq_act(g, maps, n.input(0)?)?;
    let (_, b) = dq_act(g, maps, n.input(1)?)?;
    let (qi, y) = q_out(g, maps, &n.outputs[0])?;
    if a.dtype != y.dtype || b.dtype != y.dtype {
        return None;
    }
    let mut inputs: Vec<String> = io(&a).into();
    inputs.extend(io(&b));
    inputs.extend([y.scale_name.clone(), y.zp_name.clone()]);
    let op = format!("QLinear{}", n.op_type);
    Some(rewrite(i, qnode(n, &op, MS_DOMAIN, inputs, &y.value), qi))
}

/// `DQ(x_k) -> Concat -> Q`: a plain Concat on the quantized values when
/// every input shares the output's parameters, QLinearConcat otherwise.
pub(super) fn concat(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = plain(g, i, &["Concat"])?;
    let ins: Vec<QParam> = n
        .inputs
        .iter()
        .map(|v| dq_act(g, maps, v).map(|d| d.1))
        .collect::<Option<_>>()?;
    let (qi, y) = q_out(g, maps, &n.outputs[0])?;
    if ins.is_empty() || ins.iter().any(|p| p.dtype != y.dtype) {
        return None;
    }
    let node = if ins.iter().all(|p| p.same(&y)) {
        let mut node = n.clone();
        node.inputs = ins.iter().map(|p| p.value.clone()).collect();
        node.outputs = vec![y.value.clone()];
        node
    } else {
        let mut inputs = vec![y.scale_name.clone(), y.zp_name.clone()];
        for p in &ins {
            inputs.extend(io(p));
        }
        let mut node = qnode(n, "QLinearConcat", MS_DOMAIN, inputs, &y.value);
        node.attrs.insert("axis".into(), n.attr("axis")?.clone());
        node
    };
    Some(rewrite(i, node, qi))
}

/// `DQ -> AveragePool|GlobalAveragePool -> Q` -> com.microsoft
/// QLinearAveragePool / QLinearGlobalAveragePool (NCHW).
pub(super) fn pool(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = plain(g, i, &["AveragePool", "GlobalAveragePool"])?;
    let (_, x) = dq_act(g, maps, n.input(0)?)?;
    let (qi, y) = q_out(g, maps, &n.outputs[0])?;
    if x.dtype != y.dtype {
        return None;
    }
    // QLinearAveragePool has no dilations.
    if let Some(d) = n.attr_ints("dilations").ok()? {
        if d.iter().any(|&v| v != 1) {
            return None;
        }
    }
    let mut inputs: Vec<String> = io(&x).into();
    inputs.extend([y.scale_name.clone(), y.zp_name.clone()]);
    let op = format!("QLinear{}", n.op_type);
    let mut node = qnode(n, &op, MS_DOMAIN, inputs, &y.value);
    for (k, v) in &n.attrs {
        if k != "dilations" {
            node.attrs.insert(k.clone(), v.clone());
        }
    }
    node.attrs.insert("channels_last".into(), Attr::Int(0));
    Some(rewrite(i, node, qi))
}

/// Data-movement ops between a DQ and Q(s) with the same parameters run on
/// the quantized values directly; the DQ and Qs drop out.
pub(super) fn passthrough(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = &g.nodes[i];
    if !n.domain.is_empty()
        || n.info().int8 != Int8Form::SameScale
        || n.activation != Activation::None
    {
        return None;
    }
    let (_, x) = dq_act(g, maps, n.input(0)?)?;
    let mut node = n.clone();
    node.inputs[0].clone_from(&x.value);
    let mut remove = Vec::new();
    for (k, out) in n.outputs.iter().enumerate() {
        if out.is_empty() {
            continue;
        }
        // MaxPool's Indices output is float-independent but must be unused.
        if k > 0 && n.op_type == "MaxPool" {
            return None;
        }
        let (qi, y) = q_out(g, maps, out)?;
        if !y.same(&x) {
            return None;
        }
        node.outputs[k] = y.value;
        remove.push(qi);
    }
    if remove.is_empty() {
        return None;
    }
    let mut patch = Patch::new();
    match n.op_type.as_str() {
        "Resize" if n.attr_string("mode", "nearest").ok()? != "nearest" => return None,
        "Pad" => pad_value(g, maps, n, &x, &mut node, &mut patch)?,
        _ => {}
    }
    patch.replace_node(i, node);
    for r in remove {
        patch.remove_node(r);
    }
    Some(patch)
}

/// A constant-mode Pad on quantized values pads with the quantized
/// constant, which must be exactly representable.
fn pad_value(
    g: &Graph,
    maps: &Maps<'_>,
    n: &Node,
    x: &QParam,
    node: &mut Node,
    patch: &mut Patch,
) -> Option<()> {
    if g.opset() < 11 {
        return None;
    }
    if n.attr_string("mode", "constant").ok()? != "constant" {
        return Some(());
    }
    let c = match n.input(2) {
        Some(v) => {
            let t = konst(g, maps, v)?;
            if t.numel() != 1 {
                return None;
            }
            t.to_f32_vec()[0]
        }
        None => 0.0,
    };
    let q = (c / x.scale).round_ties_even() as i64 + i64::from(x.zp);
    if (q - i64::from(x.zp)) as f32 * x.scale != c {
        return None;
    }
    let data = match x.dtype {
        crate::DType::U8 => TensorData::U8(vec![u8::try_from(q).ok()?]),
        _ => TensorData::I8(vec![i8::try_from(q).ok()?]),
    };
    let t = Tensor::new(vec![], data).ok()?;
    let name = patch.add_initializer(&format!("{}_pad_value", n.name), t);
    if node.inputs.len() < 3 {
        node.inputs.resize(3, String::new());
    }
    node.inputs[2] = name;
    Some(())
}

/// `DQ -> unary op -> Q` -> QLinearSigmoid / QLinearLeakyRelu
/// (com.microsoft), or a whittle::QLinearLookup table for any other unary
/// float op.
pub(super) fn unary(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let n = plain_of(g, i, Int8Form::Lookup)?;
    let (_, x) = dq_act(g, maps, n.input(0)?)?;
    let (qi, y) = q_out(g, maps, &n.outputs[0])?;
    let mut inputs: Vec<String> = io(&x).into();
    inputs.extend([y.scale_name.clone(), y.zp_name.clone()]);
    let same = x.dtype == y.dtype;
    let node = match n.op_type.as_str() {
        "Sigmoid" if same => qnode(n, "QLinearSigmoid", MS_DOMAIN, inputs, &y.value),
        "LeakyRelu" if same => {
            let mut node = qnode(n, "QLinearLeakyRelu", MS_DOMAIN, inputs, &y.value);
            let alpha = n.attr_float("alpha", 0.01).ok()?;
            node.attrs.insert("alpha".into(), Attr::Float(alpha));
            node
        }
        op => {
            let mut node = qnode(n, "QLinearLookup", WHITTLE_DOMAIN, inputs, &y.value);
            node.attrs.insert("op".into(), Attr::String(op.to_string()));
            node.attrs.insert("opset".into(), Attr::Int(g.opset()));
            if let Activation::Clip { min, max } = act_of_node(g, maps, n).unwrap_or_default() {
                // Bounds may be inputs (opset >= 11); the table takes them
                // as attributes.
                node.attrs.insert("op.min".into(), Attr::Float(min));
                node.attrs.insert("op.max".into(), Attr::Float(max));
            } else if op == "Clip" {
                return None;
            } else {
                if n.inputs.len() != 1 {
                    return None;
                }
                for (k, v) in &n.attrs {
                    node.attrs.insert(format!("op.{k}"), v.clone());
                }
            }
            node
        }
    };
    Some(rewrite(i, node, qi))
}
