//! Which nodes of a prepared float graph get quantized, which activation
//! tensors get a Q -> DQ pair, and which nodes stay float (and why).
//!
//! The placement follows onnxruntime's QDQ quantizer, so the result is what
//! QDQ consumers expect: every activation input and output of an op with an
//! integer kernel is quantized once (all consumers share the pair); ops that
//! only move data (MaxPool, Reshape, ...) reuse their input's parameters; a
//! Relu/Clip right after a Conv/Gemm/MatMul is not quantized separately: the
//! Q after it carries the layer's output range, so the compiler can fuse
//! the activation into requantization.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use whittle_ir::ops::Int8Form;
use whittle_ir::{DType, Graph, Node};

use crate::prepare::check_finite;
use crate::CompressError;

/// A Conv/Gemm/MatMul with constant float weights.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    /// Node index in the prepared graph.
    pub node: usize,
    /// Weight initializer.
    pub weight: String,
    /// Bias initializer, if constant.
    pub bias: Option<String>,
    /// Activation input.
    pub input: String,
    /// The quantized tensor holding the layer's result (the fused
    /// activation's output when there is one).
    pub qoutput: String,
    /// Output-channel axis of the weight.
    pub out_axis: usize,
    /// Reduction (K / input-channel) axis of the weight.
    pub k_axis: usize,
    /// Channel axis of the input activation (for bias correction means).
    pub in_channel_axis: usize,
    /// Whether int4 block weights are allowed (Gemm/MatMul, 1x1 Conv with
    /// group 1).
    pub int4_ok: bool,
}

/// A node left in float, with the reason.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FloatNode {
    /// Node name.
    pub name: String,
    /// Op type.
    pub op: String,
    /// Why it stays float.
    pub reason: String,
}

/// The result of [`analyze`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Analysis {
    /// Activation tensors to quantize, in graph order.
    pub tensors: Vec<String>,
    /// Tensors whose parameters are copied from another (data movement
    /// ops), mapped to the root tensor that is calibrated.
    pub shares: HashMap<String, String>,
    /// Linear layers with constant weights.
    pub layers: Vec<Layer>,
    /// Quantized nodes: index -> the integer op it becomes.
    pub quantized: HashMap<usize, &'static str>,
    /// Relu/Clip nodes fused into the layer before them.
    pub fused: HashSet<usize>,
    /// Nodes that stay float.
    pub float_nodes: Vec<FloatNode>,
}

impl Analysis {
    fn add(&mut self, seen: &mut HashSet<String>, t: &str) {
        if seen.insert(t.to_string()) {
            self.tensors.push(t.to_string());
        }
    }

    /// The calibrated tensor whose parameters `t` uses.
    pub fn root<'a>(&'a self, t: &'a str) -> &'a str {
        self.shares.get(t).map_or(t, String::as_str)
    }
}

fn is_const(g: &Graph, name: &str) -> bool {
    g.initializers.contains_key(name)
}

fn f32_const<'a>(g: &'a Graph, name: Option<&str>) -> Option<&'a whittle_ir::Tensor> {
    g.initializers
        .get(name?)
        .filter(|t| t.dtype() == DType::F32)
}

/// Clip with constant bounds (or none), as the fuser and lookup need.
/// Why a Conv/Gemm/MatMul cannot be a quantized layer, or its layer.
fn linear_layer(g: &Graph, i: usize, n: &Node) -> Result<Layer, String> {
    let x = n.input(0).ok_or("no input")?;
    if is_const(g, x) {
        return Err("its data input is a constant".into());
    }
    let w = f32_const(g, n.input(1)).ok_or("its weight is not a constant float tensor")?;
    let bias = n.input(2).map(str::to_string);
    if let Some(b) = &bias {
        let t = f32_const(g, Some(b)).ok_or("its bias is not a constant float tensor")?;
        let channels = match n.op_type.as_str() {
            "Conv" => w.shape()[0],
            _ => 0,
        };
        if n.op_type == "Conv" && t.numel() != channels {
            return Err("its bias does not have one value per output channel".into());
        }
    }
    let out = n.outputs.first().cloned().unwrap_or_default();
    let mut layer = Layer {
        node: i,
        weight: n.inputs[1].clone(),
        bias,
        input: x.to_string(),
        qoutput: out,
        out_axis: 0,
        k_axis: 1,
        in_channel_axis: 1,
        int4_ok: false,
    };
    match n.op_type.as_str() {
        "Conv" => {
            if w.rank() < 3 {
                return Err(format!("weight of rank {} is not a conv kernel", w.rank()));
            }
            let group = n.attr_int("group", 1).map_err(|e| e.to_string())?;
            layer.int4_ok = group == 1 && w.shape()[2..].iter().all(|&d| d == 1);
        }
        "Gemm" => {
            if n.attr_int("transA", 0).map_err(|e| e.to_string())? != 0 {
                return Err("transA=1 is not supported by the int8 Gemm".into());
            }
            if n.attr_float("alpha", 1.0).map_err(|e| e.to_string())? != 1.0
                || n.attr_float("beta", 1.0).map_err(|e| e.to_string())? != 1.0
            {
                return Err("alpha/beta other than 1 on a shared constant".into());
            }
            if w.rank() != 2 {
                return Err("weight is not a matrix".into());
            }
            let trans_b = n.attr_int("transB", 0).map_err(|e| e.to_string())? != 0;
            let (k_axis, out_axis) = if trans_b { (1, 0) } else { (0, 1) };
            layer.k_axis = k_axis;
            layer.out_axis = out_axis;
            if let Some(b) = &layer.bias {
                let c = f32_const(g, Some(b)).map_or(0, |t| t.numel());
                if c != w.shape()[out_axis] {
                    return Err("its C input is not one value per output".into());
                }
            }
            layer.int4_ok = true;
        }
        "MatMul" => {
            if w.rank() != 2 {
                return Err("its constant operand is not a matrix".into());
            }
            layer.k_axis = 0;
            layer.out_axis = 1;
            layer.in_channel_axis = usize::MAX; // the last axis
            layer.int4_ok = true;
        }
        _ => unreachable!("linear_layer called on {}", n.op_type),
    }
    Ok(layer)
}

/// Plans the quantization of a prepared graph.
pub(crate) fn analyze(g: &Graph) -> Result<Analysis, CompressError> {
    let consumers = g.consumers();
    let mut a = Analysis::default();
    let mut seen = HashSet::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if a.fused.contains(&i) {
            continue;
        }
        let op = n.op_type.as_str();
        let float = |reason: String| FloatNode {
            name: n.name.clone(),
            op: n.op_type.clone(),
            reason,
        };
        if !n.domain.is_empty() {
            a.float_nodes.push(float(format!(
                "domain '{}' has no integer kernels",
                n.domain
            )));
            continue;
        }
        let acts: Vec<&str> = n
            .inputs
            .iter()
            .filter(|s| !s.is_empty() && !is_const(g, s))
            .map(String::as_str)
            .collect();
        let out = n.outputs.first().map(String::as_str).unwrap_or("");
        let qop: &'static str = match op {
            "Conv" | "Gemm" | "MatMul" => {
                // NaN/Inf weights are an error, not a fallback.
                check_weights_finite(g, n)?;
                let mut layer = match linear_layer(g, i, n) {
                    Ok(l) => l,
                    Err(reason) => {
                        a.float_nodes.push(float(reason));
                        continue;
                    }
                };
                a.add(&mut seen, &layer.input);
                // A single-reader Relu/Clip after the layer shares its Q.
                let readers = consumers.get(out).map_or(&[][..], Vec::as_slice);
                let fuse = match readers {
                    [r] if !g.is_output(out) => {
                        let act = &g.nodes[*r];
                        // Relu and Clip: the requantizing clamp applies them.
                        let clamp = act.as_activation(g).is_some_and(|a| a.as_clamp().is_some());
                        (clamp && act.input(0) == Some(out)).then_some(*r)
                    }
                    _ => None,
                };
                if let Some(r) = fuse {
                    a.fused.insert(r);
                    layer.qoutput = g.nodes[r].outputs[0].clone();
                }
                a.add(&mut seen, &layer.qoutput.clone());
                a.layers.push(layer);
                a.quantized.insert(
                    i,
                    match op {
                        "Conv" => "QLinearConv",
                        "Gemm" => "QGemm",
                        _ => "QLinearMatMul",
                    },
                );
                continue;
            }
            "Add" | "Mul" | "Concat" => {
                if acts.len() != n.inputs.iter().filter(|s| !s.is_empty()).count() {
                    a.float_nodes.push(float(
                        "a constant operand (only activations are quantized)".into(),
                    ));
                    continue;
                }
                match op {
                    "Add" => "QLinearAdd",
                    "Mul" => "QLinearMul",
                    _ => "QLinearConcat",
                }
            }
            "AveragePool" => "QLinearAveragePool",
            "GlobalAveragePool" => "QLinearGlobalAveragePool",
            _ if n.info().int8 == Int8Form::Lookup => {
                if n.info().activation.is_some() && n.as_activation(g).is_none() {
                    a.float_nodes
                        .push(float(format!("{op} parameters are not constants")));
                    continue;
                }
                "QLinearLookup"
            }
            _ if n.info().int8 == Int8Form::SameScale => {
                let Some(x) = n.input(0) else { continue };
                if !seen.contains(x) {
                    a.float_nodes
                        .push(float("its input is not quantized".into()));
                    continue;
                }
                let root = a.root(x).to_string();
                for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                    a.shares.insert(o.clone(), root.clone());
                    a.add(&mut seen, o);
                }
                a.quantized.insert(i, "int8 data movement");
                continue;
            }
            _ => {
                a.float_nodes
                    .push(float(format!("no integer kernel for {op}")));
                continue;
            }
        };
        if acts.is_empty() || out.is_empty() {
            a.float_nodes.push(float("no activation input".into()));
            continue;
        }
        for x in &acts {
            a.add(&mut seen, x);
        }
        a.add(&mut seen, out);
        a.quantized.insert(i, qop);
    }
    if a.layers.is_empty() {
        let ops: HashSet<&str> = g.nodes.iter().map(|n| n.op_type.as_str()).collect();
        let mut ops: Vec<&str> = ops.into_iter().collect();
        ops.sort_unstable();
        return Err(CompressError::NothingToQuantize(format!(
            "the model has no Conv, Gemm or MatMul with constant float weights (its ops: {})",
            ops.join(", ")
        )));
    }
    Ok(a)
}

/// A NaN/Inf in a layer's constant weight or bias is an error naming it.
fn check_weights_finite(g: &Graph, n: &Node) -> Result<(), CompressError> {
    for k in [1, 2] {
        if let Some(name) = n.input(k) {
            if let Some(t) = g.initializers.get(name) {
                check_finite(name, t, &format!(" (input {k} of node '{}')", n.name))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::{Tensor, ValueInfo};

    fn conv_relu_pool() -> Graph {
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 1, 4, 4])],
            outputs: vec![ValueInfo::known("z", DType::F32, &[1, 2, 2, 2])],
            nodes: vec![
                Node::new("c", "Conv", &["x", "w", "b"], &["y"]),
                Node::new("r", "Relu", &["y"], &["a"]),
                Node::new("p", "MaxPool", &["a"], &["z"]),
                Node::new("s", "Softmax", &["z"], &["sm"]),
            ],
            ..Graph::default()
        };
        g.initializers.insert(
            "w".into(),
            Tensor::from_f32(vec![2, 1, 1, 1], vec![1.0, -1.0]).unwrap(),
        );
        g.initializers.insert(
            "b".into(),
            Tensor::from_f32(vec![2], vec![0.0, 0.5]).unwrap(),
        );
        g
    }

    #[test]
    fn relu_shares_the_conv_q_and_pool_shares_params() {
        let g = conv_relu_pool();
        let a = analyze(&g).unwrap();
        assert_eq!(a.tensors, vec!["x", "a", "z"]);
        assert!(a.fused.contains(&1));
        assert_eq!(a.layers[0].qoutput, "a");
        assert_eq!(a.root("z"), "a");
        assert_eq!(a.float_nodes.len(), 1);
        assert_eq!(a.float_nodes[0].op, "Softmax");
    }

    #[test]
    fn nan_weight_is_an_error() {
        let mut g = conv_relu_pool();
        g.initializers.get_mut("w").unwrap().as_f32_mut().unwrap()[1] = f32::NAN;
        let e = analyze(&g).unwrap_err().to_string();
        assert!(e.contains("'w'") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn nothing_to_quantize() {
        let g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 4])],
            outputs: vec![ValueInfo::known("y", DType::F32, &[1, 4])],
            nodes: vec![Node::new("s", "Softmax", &["x"], &["y"])],
            ..Graph::default()
        };
        let e = analyze(&g).unwrap_err().to_string();
        assert!(
            e.contains("nothing to quantize") && e.contains("Softmax"),
            "{e}"
        );
    }
}
