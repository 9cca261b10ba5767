//! Writing the quantized graph: standard QDQ ONNX, or the same computation
//! as plain float ops ("fake quantization") that any whittle build runs.
//!
//! Both forms come from the same decisions, so what whittle measures in
//! fake-quant mode is what the QDQ file computes: weights are replaced by
//! their dequantized values, and each activation Q -> DQ pair becomes
//! `Mul(Clip(Round(Div(x, s)), qmin - zp, qmax - zp), s)`, which equals
//! `DequantizeLinear(QuantizeLinear(x))` exactly (ONNX Round and
//! QuantizeLinear both round half to even).

use std::collections::HashMap;

use whittle_ir::{Attr, DType, Graph, Node, Patch, Tensor, TensorData};

use crate::analyze::{Analysis, Layer};
use crate::weights::{
    block_scale_shape, dequantize_blocked, dequantize_per_channel, quantize_bias, quantize_blocked,
    quantize_per_channel, split_axis, ActType, QParams,
};
use crate::CompressError;

/// Which graph to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// QuantizeLinear / DequantizeLinear nodes and integer initializers.
    Qdq,
    /// The same arithmetic in float ops.
    FakeQuant,
}

/// Weight precision of one layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bits {
    /// Left in float.
    Float,
    /// int8 per output channel.
    Int8,
    /// int4 in blocks along the reduction axis.
    Int4,
}

impl Bits {
    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Bits::Float => "float",
            Bits::Int8 => "int8",
            Bits::Int4 => "int4",
        }
    }
}

/// Everything decided before writing.
#[derive(Clone, Debug)]
pub(crate) struct Decisions {
    /// Parameters of each calibrated (root) activation tensor.
    pub act: HashMap<String, QParams>,
    /// Activation element type.
    pub act_type: ActType,
    /// Weight precision per layer (same order as `Analysis::layers`).
    pub bits: Vec<Bits>,
    /// int4 block size.
    pub block: usize,
    /// Replacement float biases per layer index (bias correction).
    pub biases: HashMap<usize, Vec<f32>>,
    /// Quantize activations (false: weights only, for sensitivity runs).
    pub quantize_acts: bool,
}

/// The written graph and, for each quantized activation, the name of its
/// dequantized value in it.
pub(crate) struct Emitted {
    pub graph: Graph,
    pub dq_name: HashMap<String, String>,
}

fn scalar(dtype: DType, v: i32) -> Tensor {
    let data = match dtype {
        DType::I8 => TensorData::I8(vec![v as i8]),
        DType::U8 => TensorData::U8(vec![v as u8]),
        _ => TensorData::I32(vec![v]),
    };
    Tensor::new(vec![], data).expect("scalar")
}

fn act_dtype(t: ActType) -> DType {
    match t {
        ActType::I8 => DType::I8,
        ActType::U8 => DType::U8,
    }
}

/// Builds the quantized graph from a prepared float graph.
pub(crate) fn emit(
    g: &Graph,
    a: &Analysis,
    d: &Decisions,
    mode: Mode,
) -> Result<Emitted, CompressError> {
    // One patch for the whole graph: layers first, then activations, each
    // seeing the names the earlier ones took.
    let mut patch = Patch::for_graph(g);
    let mut int4 = false;
    for (li, layer) in a.layers.iter().enumerate() {
        let bits = d.bits.get(li).copied().unwrap_or(Bits::Int8);
        let x_scale = d
            .quantize_acts
            .then(|| d.act.get(a.root(&layer.input)).map(|p| p.scale))
            .flatten();
        let bias = d.biases.get(&li).cloned();
        int4 |= bits == Bits::Int4;
        emit_layer(g, &mut patch, layer, bits, d.block, x_scale, bias, mode)?;
    }
    let mut dq_name = HashMap::new();
    if d.quantize_acts {
        for t in &a.tensors {
            let p = d.act.get(a.root(t)).copied().ok_or_else(|| {
                CompressError::runtime("quantize", format!("no calibration range for '{t}'"))
            })?;
            if let Some(name) = emit_activation(g, &mut patch, t, p, d.act_type, mode) {
                dq_name.insert(t.clone(), name);
            }
        }
    }
    patch.prune_initializers();
    let mut out = g.clone();
    out.apply(patch);
    out.topo_sort()?;
    out.value_info.clear();
    let target = if int4 && mode == Mode::Qdq { 21 } else { 13 };
    if mode == Mode::Qdq {
        crate::opset::raise(&mut out, target)?;
    }
    Ok(Emitted {
        graph: out,
        dq_name,
    })
}

/// Replaces the layer's weight (and bias) by quantized constants.
#[allow(clippy::too_many_arguments)]
fn emit_layer(
    g: &Graph,
    patch: &mut Patch,
    layer: &Layer,
    bits: Bits,
    block: usize,
    x_scale: Option<f32>,
    bias: Option<Vec<f32>>,
    mode: Mode,
) -> Result<(), CompressError> {
    let mut node = g.nodes[layer.node].clone();
    let node_name = node.name.clone();
    // The bias the node reads, once corrected.
    let mut corrected = None;
    if let (Some(b), Some(values)) = (&layer.bias, &bias) {
        let shape = g.initializers[b].shape().to_vec();
        let t = Tensor::from_f32(shape, values.clone())?;
        node.inputs[2] = patch.add_initializer(&format!("{b}_corrected"), t.clone());
        corrected = Some(t);
    }
    if bits == Bits::Float {
        patch.replace_node(layer.node, node);
        return Ok(());
    }
    let w = g.initializers[&layer.weight].clone();
    let (mut shape, mut values) = (w.shape().to_vec(), w.as_f32()?.to_vec());
    let (mut k_axis, mut out_axis) = (layer.k_axis, layer.out_axis);
    let base = layer.weight.clone();
    if bits == Bits::Int4 && node.op_type == "Gemm" && k_axis == 1 {
        // int4 block kernels read Gemm B as [K, N]: store it transposed.
        let (n, k) = (shape[0], shape[1]);
        values = (0..k * n).map(|i| values[(i % n) * k + i / n]).collect();
        shape = vec![k, n];
        (k_axis, out_axis) = (0, 1);
        node.attrs.insert("transB".into(), Attr::Int(0));
    }
    let w_in;
    match bits {
        Bits::Int8 => {
            let (q, scales) = quantize_per_channel(&values, &shape, out_axis, 127);
            if mode == Mode::FakeQuant {
                let deq = dequantize_per_channel(&q, &scales, &shape, out_axis);
                w_in = patch.add_initializer(
                    &format!("{base}_dequantized"),
                    Tensor::from_f32(shape, deq)?,
                );
            } else {
                let c = scales.len();
                let qn = patch.add_initializer(
                    &format!("{base}_quantized"),
                    Tensor::new(shape, TensorData::I8(q))?,
                );
                let sn = patch.add_initializer(
                    &format!("{base}_scale"),
                    Tensor::from_f32(vec![c], scales.clone())?,
                );
                let zn = patch.add_initializer(
                    &format!("{base}_zero_point"),
                    Tensor::new(vec![c], TensorData::I8(vec![0; c]))?,
                );
                w_in = patch.fresh_name(&format!("{base}_dequantized"));
                patch.add_node(
                    Node::new(
                        format!("{node_name}_weight_DequantizeLinear"),
                        "DequantizeLinear",
                        &[&qn, &sn, &zn],
                        &[&w_in],
                    )
                    .with_attr("axis", Attr::Int(out_axis as i64)),
                );
            }
            // Bias: int32 with scale x_scale * w_scale[c].
            if let (Some(b), Some(xs)) = (node.input(2).map(str::to_string), x_scale) {
                let bt = corrected
                    .clone()
                    .unwrap_or_else(|| g.initializers[&b].clone());
                let bv = bt.as_f32()?;
                if bv.len() == scales.len() {
                    let (qb, bs) = quantize_bias(bv, xs, &scales);
                    let b_in = if mode == Mode::FakeQuant {
                        let deq: Vec<f32> = qb
                            .iter()
                            .zip(&bs)
                            .map(|(&q, &s)| (f64::from(q) * f64::from(s)) as f32)
                            .collect();
                        patch.add_initializer(
                            &format!("{b}_dequantized"),
                            Tensor::from_f32(bt.shape().to_vec(), deq)?,
                        )
                    } else {
                        let c = bs.len();
                        let qn = patch.add_initializer(
                            &format!("{b}_quantized"),
                            Tensor::new(vec![c], TensorData::I32(qb))?,
                        );
                        let sn = patch
                            .add_initializer(&format!("{b}_scale"), Tensor::from_f32(vec![c], bs)?);
                        let zn = patch.add_initializer(
                            &format!("{b}_zero_point"),
                            Tensor::new(vec![c], TensorData::I32(vec![0; c]))?,
                        );
                        let out = patch.fresh_name(&format!("{b}_dequantized"));
                        patch.add_node(
                            Node::new(
                                format!("{node_name}_bias_DequantizeLinear"),
                                "DequantizeLinear",
                                &[&qn, &sn, &zn],
                                &[&out],
                            )
                            .with_attr("axis", Attr::Int(0)),
                        );
                        out
                    };
                    node.inputs[2] = b_in;
                }
            }
        }
        Bits::Int4 => {
            let (q, scales) = quantize_blocked(&values, &shape, k_axis, block);
            let sshape = block_scale_shape(&shape, k_axis, block);
            if mode == Mode::FakeQuant {
                let deq = dequantize_blocked(&q, &scales, &shape, k_axis, block);
                w_in = patch.add_initializer(
                    &format!("{base}_dequantized"),
                    Tensor::from_f32(shape, deq)?,
                );
            } else {
                let qn = patch.add_initializer(
                    &format!("{base}_quantized"),
                    crate::int4::i4_tensor(shape, q)?,
                );
                let sn = patch
                    .add_initializer(&format!("{base}_scale"), Tensor::from_f32(sshape, scales)?);
                w_in = patch.fresh_name(&format!("{base}_dequantized"));
                patch.add_node(
                    Node::new(
                        format!("{node_name}_weight_DequantizeLinear"),
                        "DequantizeLinear",
                        &[&qn, &sn],
                        &[&w_in],
                    )
                    .with_attr("axis", Attr::Int(k_axis as i64))
                    .with_attr("block_size", Attr::Int(block as i64)),
                );
            }
        }
        Bits::Float => unreachable!(),
    }
    let _ = split_axis;
    node.inputs[1] = w_in;
    patch.replace_node(layer.node, node);
    Ok(())
}

/// Inserts the Q -> DQ pair (or its float equivalent) on activation `t`
/// and points every reader at the dequantized value. Returns that value's
/// name, or `None` when `t` cannot be quantized in place.
fn emit_activation(
    g: &Graph,
    patch: &mut Patch,
    t: &str,
    p: QParams,
    at: ActType,
    mode: Mode,
) -> Option<String> {
    let is_input = g.inputs.iter().any(|v| v.name == t);
    let is_output = g.is_output(t);
    if is_input && is_output {
        return None;
    }
    let (src, dq) = if is_output {
        // Keep the graph output's name on the dequantized value.
        let pre = patch.fresh_name(&format!("{t}_prequant"));
        patch.rename_output(t, &pre);
        // Readers of the graph output keep reading `t` (the dequantized one).
        (pre, t.to_string())
    } else {
        let dq = patch.fresh_name(&format!("{t}_dequantized"));
        patch.redirect(t, &dq);
        (t.to_string(), dq)
    };
    let scale = patch.add_initializer(&format!("{t}_scale"), Tensor::scalar_f32(p.scale));
    match mode {
        Mode::Qdq => {
            let zp = patch.add_initializer(
                &format!("{t}_zero_point"),
                scalar(act_dtype(at), p.zero_point),
            );
            let q = patch.fresh_name(&format!("{t}_quantized"));
            patch.add_node(Node::new(
                format!("{t}_QuantizeLinear"),
                "QuantizeLinear",
                &[&src, &scale, &zp],
                &[&q],
            ));
            patch.add_node(Node::new(
                format!("{t}_DequantizeLinear"),
                "DequantizeLinear",
                &[&q, &scale, &zp],
                &[&dq],
            ));
        }
        Mode::FakeQuant => {
            let (qmin, qmax) = at.bounds();
            let lo = patch.add_initializer(
                &format!("{t}_qlo"),
                Tensor::scalar_f32((qmin - p.zero_point) as f32),
            );
            let hi = patch.add_initializer(
                &format!("{t}_qhi"),
                Tensor::scalar_f32((qmax - p.zero_point) as f32),
            );
            let names: Vec<String> = ["div", "round", "clip"]
                .iter()
                .map(|s| patch.fresh_name(&format!("{t}_fq_{s}")))
                .collect();
            patch.add_node(Node::new(
                format!("{t}_fq_Div"),
                "Div",
                &[&src, &scale],
                &[&names[0]],
            ));
            patch.add_node(Node::new(
                format!("{t}_fq_Round"),
                "Round",
                &[&names[0]],
                &[&names[1]],
            ));
            patch.add_node(Node::new(
                format!("{t}_fq_Clip"),
                "Clip",
                &[&names[1], &lo, &hi],
                &[&names[2]],
            ));
            patch.add_node(Node::new(
                format!("{t}_fq_Mul"),
                "Mul",
                &[&names[2], &scale],
                &[&dq],
            ));
        }
    }
    Some(dq)
}
