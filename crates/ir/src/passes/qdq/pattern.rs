//! Matching helpers: producer/consumer maps, constants, and the quantization
//! parameters of Q and DQ nodes.

use std::collections::HashMap;

use crate::{Attr, DType, Graph, Node, Tensor};

/// Who produces and who reads each value, computed once per sweep.
pub(super) struct Maps<'g> {
    pub producers: HashMap<&'g str, usize>,
    pub consumers: HashMap<&'g str, Vec<usize>>,
}

impl<'g> Maps<'g> {
    pub fn new(g: &'g Graph) -> Maps<'g> {
        Maps {
            producers: g.producers(),
            consumers: g.consumers(),
        }
    }

    /// The node producing `value`, if a node does.
    pub fn producer<'a>(&self, g: &'a Graph, value: &str) -> Option<(usize, &'a Node)> {
        let &i = self.producers.get(value)?;
        Some((i, &g.nodes[i]))
    }

    /// The only node reading `value`, when exactly one does and `value` is
    /// not a graph output.
    pub fn sole_consumer<'a>(&self, g: &'a Graph, value: &str) -> Option<(usize, &'a Node)> {
        match self.consumers.get(value).map(Vec::as_slice) {
            Some(&[i]) if !g.is_output(value) => Some((i, &g.nodes[i])),
            _ => None,
        }
    }
}

/// The constant value of `name`: an initializer or a `Constant` node's
/// tensor.
pub(super) fn konst<'a>(g: &'a Graph, maps: &Maps<'_>, name: &str) -> Option<&'a Tensor> {
    if let Some(t) = g.initializers.get(name) {
        return Some(t);
    }
    let (_, n) = maps.producer(g, name)?;
    if n.op_type != "Constant" || !n.domain.is_empty() {
        return None;
    }
    match n.attr("value") {
        Some(Attr::Tensor(t)) => Some(t),
        _ => None,
    }
}

/// Per-tensor quantization parameters of an activation: constant scalar
/// scale and zero point, with the value names to pass on.
#[derive(Clone, Debug)]
pub(super) struct QParam {
    /// The quantized value (DQ's input, or Q's output).
    pub value: String,
    pub scale_name: String,
    pub zp_name: String,
    pub scale: f32,
    pub zp: i32,
    /// u8 or i8.
    pub dtype: DType,
}

impl QParam {
    /// Same scale (bit for bit), zero point and type.
    pub fn same(&self, o: &QParam) -> bool {
        self.scale.to_bits() == o.scale.to_bits() && self.zp == o.zp && self.dtype == o.dtype
    }
}

/// Scalar scale and zero point from inputs 1 and 2 of a Q or DQ node.
pub(super) fn scalar_params(g: &Graph, maps: &Maps<'_>, n: &Node, value: &str) -> Option<QParam> {
    let scale_name = n.input(1)?;
    let zp_name = n.input(2)?;
    let scale = konst(g, maps, scale_name)?;
    let zp = konst(g, maps, zp_name)?;
    if scale.dtype() != DType::F32 || scale.numel() != 1 || zp.numel() != 1 {
        return None;
    }
    if !matches!(zp.dtype(), DType::U8 | DType::I8) {
        return None;
    }
    let s = scale.to_f32_vec()[0];
    if !(s.is_finite() && s > 0.0) {
        return None;
    }
    Some(QParam {
        value: value.to_string(),
        scale_name: scale_name.to_string(),
        zp_name: zp_name.to_string(),
        scale: s,
        zp: zp.to_i64_vec().ok()?[0] as i32,
        dtype: zp.dtype(),
    })
}

pub(super) fn is_op(n: &Node, op: &str) -> bool {
    n.op_type == op && n.domain.is_empty()
}

/// `value` is the output of a per-tensor u8/i8 DequantizeLinear: its node
/// index and parameters (`value` of the result = the quantized input).
pub(super) fn dq_act(g: &Graph, maps: &Maps<'_>, value: &str) -> Option<(usize, QParam)> {
    let (i, n) = maps.producer(g, value)?;
    if !is_op(n, "DequantizeLinear") || n.attr_int("block_size", 0).ok()? != 0 {
        return None;
    }
    let q = scalar_params(g, maps, n, n.input(0)?)?;
    // A constant input must agree with its zero point's type.
    if let Some(t) = konst(g, maps, &q.value) {
        if t.dtype() != q.dtype {
            return None;
        }
    }
    Some((i, q))
}

/// `value` is read only by a per-tensor u8/i8 QuantizeLinear: its node
/// index and parameters (`value` of the result = the Q's output).
pub(super) fn q_out(g: &Graph, maps: &Maps<'_>, value: &str) -> Option<(usize, QParam)> {
    let (i, n) = maps.sole_consumer(g, value)?;
    if !is_op(n, "QuantizeLinear") || n.input(0)? != value || n.outputs.len() != 1 {
        return None;
    }
    if n.attr_int("block_size", 0).ok()? != 0 {
        return None;
    }
    let q = scalar_params(g, maps, n, &n.outputs[0])?;
    match n.attr_int("output_dtype", 0).ok()? {
        0 => {}
        2 if q.dtype == DType::U8 => {}
        3 if q.dtype == DType::I8 => {}
        _ => return None,
    }
    Some((i, q))
}

/// A constant weight behind a DequantizeLinear.
#[derive(Clone, Debug)]
pub(super) struct WeightDq {
    pub name: String,
    pub w: Tensor,
    pub scale_name: String,
    pub scale: Tensor,
    pub zp_name: Option<String>,
    pub zp: Option<Tensor>,
    /// Normalized `axis` attribute (meaningful when per-axis or blocked).
    pub axis: usize,
    pub block_size: usize,
}

impl WeightDq {
    /// True when there is one scale for the whole tensor.
    pub fn per_tensor(&self) -> bool {
        self.scale.numel() == 1
    }

    /// The scale of output channel `c` along the quantized axis.
    pub fn scale_at(&self, c: usize) -> f32 {
        let s = self.scale.to_f32_vec();
        if s.len() == 1 {
            s[0]
        } else {
            s[c]
        }
    }

    /// Per-tensor, or per-axis along `axis` (1-D scale of that dim's size),
    /// with a matching zero point.
    pub fn is_per_axis_or_tensor(&self, axis: usize) -> bool {
        if self.block_size != 0 {
            return false;
        }
        let zp_ok = self
            .zp
            .as_ref()
            .is_none_or(|z| z.shape() == self.scale.shape());
        if !zp_ok {
            return false;
        }
        self.per_tensor() || (self.axis == axis && self.scale.shape() == [self.w.shape()[axis]])
    }
}

/// `value` is DequantizeLinear of a constant weight.
pub(super) fn dq_weight(g: &Graph, maps: &Maps<'_>, value: &str) -> Option<WeightDq> {
    let (_, n) = maps.producer(g, value)?;
    if !is_op(n, "DequantizeLinear") {
        return None;
    }
    let name = n.input(0)?;
    let w = konst(g, maps, name)?;
    let scale_name = n.input(1)?;
    let scale = konst(g, maps, scale_name)?;
    if scale.dtype() != DType::F32 || scale.to_f32_vec().iter().any(|s| !s.is_finite()) {
        return None;
    }
    let zp_name = n.input(2);
    let zp = match zp_name {
        Some(z) => Some(konst(g, maps, z)?.clone()),
        None => None,
    };
    if zp.as_ref().is_some_and(|z| z.dtype() != w.dtype()) {
        return None;
    }
    let rank = w.rank() as i64;
    let axis = n.attr_int("axis", 1).ok()?;
    let axis = if axis < 0 { axis + rank } else { axis };
    // The axis only matters when there is more than one scale.
    let axis = if scale.numel() == 1 {
        0
    } else if (0..rank).contains(&axis) {
        axis
    } else {
        return None;
    };
    let block_size = usize::try_from(n.attr_int("block_size", 0).ok()?).ok()?;
    Some(WeightDq {
        name: name.to_string(),
        w: w.clone(),
        scale_name: scale_name.to_string(),
        scale: scale.clone(),
        zp_name: zp_name.map(str::to_string),
        zp,
        axis: axis as usize,
        block_size,
    })
}

/// The float value of a constant bias: a float constant, or the
/// dequantized value of a DequantizeLinear of a constant (per tensor or
/// along axis 0 of a 1-D tensor).
pub(super) fn float_bias(g: &Graph, maps: &Maps<'_>, value: &str) -> Option<Vec<f32>> {
    if let Some(t) = konst(g, maps, value) {
        return (t.dtype() == DType::F32).then(|| t.to_f32_vec());
    }
    let w = dq_weight(g, maps, value)?;
    if w.w.rank() != 1 || !w.is_per_axis_or_tensor(0) {
        return None;
    }
    let q = w.w.to_f64_vec();
    let zp = w.zp.as_ref().map(|z| z.to_f64_vec());
    Some(
        q.iter()
            .enumerate()
            .map(|(c, &v)| {
                let z = zp
                    .as_ref()
                    .map_or(0.0, |z| if z.len() == 1 { z[0] } else { z[c] });
                // As DequantizeLinear computes it: in f32.
                (v as f32 - z as f32) * w.scale_at(c)
            })
            .collect(),
    )
}

/// Quantizes a float bias to int32 with scale `scale(c)` (zero point 0),
/// rounding half to even and saturating, as quantizers do.
pub(super) fn quantize_bias(bias: &[f32], scale: impl Fn(usize) -> f32) -> Option<Vec<i32>> {
    bias.iter()
        .enumerate()
        .map(|(c, &b)| {
            let s = scale(c);
            if !(s.is_finite() && s > 0.0 && b.is_finite()) {
                return None;
            }
            let q = (f64::from(b) / f64::from(s)).round_ties_even();
            Some(q.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32)
        })
        .collect()
}

/// A node of integer op `op` replacing float node `src` (same name), writing
/// `out`.
pub(super) fn qnode(src: &Node, op: &str, domain: &str, inputs: Vec<String>, out: &str) -> Node {
    Node {
        name: src.name.clone(),
        op_type: op.to_string(),
        domain: domain.to_string(),
        inputs,
        outputs: vec![out.to_string()],
        ..Node::default()
    }
}
