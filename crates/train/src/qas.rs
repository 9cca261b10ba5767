//! int8 training with quantization-aware scaling (QAS, Lin et al.,
//! *On-Device Training Under 256KB Memory*, NeurIPS 2022).
//!
//! Start from a QDQ model (`whittle_compress::quantize`): every Conv/Gemm
//! weight is an int8 initializer `W̄` read by `DequantizeLinear` with
//! per-channel scale `s_W`, so `W = s_W · W̄`; its bias is an int32
//! initializer with scale `s_b = s_x · s_W`. Training those integer tensors
//! directly gives `dL/dW̄ = s_W · dL/dW`, and a plain SGD step
//! `W̄ -= lr · dL/dW̄` moves the real weight by `lr · s_W² · dL/dW`: with
//! scales around 1e-2 the update is 10^4 times too small relative to the
//! weight (the gradient/weight norm ratio is off by `s_W^-2`). QAS
//! multiplies each integer tensor's gradient by `s^-2`, `s` being its
//! DequantizeLinear scale (`s_W` for weights, `s_W · s_x` for biases), so
//! `ΔW̄ = -lr · dL/dW / s_W` and `ΔW = -lr · dL/dW`: the quantized graph
//! follows float SGD.
//!
//! [`QasSgd`] is that optimizer for [`Trainer`](crate::Trainer): the
//! trainable tensors are the integer initializers themselves (the training
//! graph's forward is the QDQ graph, frozen layers run as integer ops
//! after `fuse_qdq`), the update is rounded back to the integer grid and
//! clamped (int8 to `[-127, 127]`) inside the training graph, by the
//! `whittle.grad` `QasSgdUpdate` node emitted right after each gradient
//! (fused in-place update: the integer tensor is resident plan state, its
//! gradient dies at once). There is **no f32 shadow copy** of the
//! weights: what the device stores after a step is the integer tensor. An
//! update smaller than half a quantization step would then always round to
//! zero, so rounding is stochastic by default (unbiased: the expected step
//! is the exact one); [`Rounding::Nearest`] is available and measured in
//! docs/BENCHMARKS.md. Momentum, when used, is an f32 buffer per trainable
//! tensor (optimizer state, as in the paper's SGD-M).

use whittle_ir::{Attr, DType, Graph, Tensor};

use crate::optim::{Slot, UpdateRule};
use crate::{Optimizer, TrainError};

/// How an updated integer value is rounded to the integer grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Round half away from zero: deterministic, but steps under half a
    /// quantization step are lost.
    Nearest,
    /// `floor(v + u)`, `u` uniform in `[0, 1)` from a counter-based hash
    /// of (seed, tensor name, step, element index): unbiased, and a run
    /// resumed from a checkpoint draws the same numbers.
    Stochastic {
        /// Seed of the hash (the same seed gives the same run).
        seed: u64,
    },
}

/// An integer initializer of a QDQ graph that trains through its
/// DequantizeLinear.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantTensor {
    /// Initializer name.
    pub name: String,
    /// Element type (I8, U8 or I32).
    pub dtype: DType,
    /// Shape.
    pub shape: Vec<usize>,
    /// DequantizeLinear scale: one value (per tensor) or one per index of
    /// `axis`.
    pub scale: Vec<f32>,
    /// The axis the scales run along (ignored when per tensor).
    pub axis: usize,
    /// The layer (Conv/Gemm/MatMul node) the dequantized value feeds, if
    /// any, and which of its inputs it is.
    pub layer: Option<(String, usize)>,
}

impl QuantTensor {
    /// Elements per step of the scale axis (`prod(shape[axis+1..])`) and
    /// the number of scales: element `i` has scale
    /// `scale[(i / inner) % count]`.
    fn layout(&self) -> (usize, usize) {
        if self.scale.len() <= 1 {
            return (usize::MAX, 1);
        }
        let inner = self.shape.iter().skip(self.axis + 1).product::<usize>();
        (inner.max(1), self.scale.len())
    }

    /// Scale of element `i`.
    pub fn scale_of(&self, i: usize) -> f32 {
        let (inner, count) = self.layout();
        if count == 1 {
            self.scale[0]
        } else {
            self.scale[(i / inner) % count]
        }
    }

    /// Smallest and largest stored value: `[-127, 127]` for int8 (the
    /// symmetric weight range), `[0, 255]` for uint8, the full range for
    /// int32.
    pub fn range(&self) -> (f64, f64) {
        match self.dtype {
            DType::I8 => (-127.0, 127.0),
            DType::U8 => (0.0, 255.0),
            _ => (f64::from(i32::MIN), f64::from(i32::MAX)),
        }
    }
}

/// Every integer initializer of `qdq` read only by DequantizeLinear (as
/// its input 0) with constant scales, in initializer order: the tensors an
/// int8 model can train.
pub fn quantized_tensors(qdq: &Graph) -> Vec<QuantTensor> {
    let mut out = Vec::new();
    for (name, t) in &qdq.initializers {
        if !matches!(t.dtype(), DType::I8 | DType::U8 | DType::I32) {
            continue;
        }
        let readers: Vec<_> = qdq
            .nodes
            .iter()
            .filter(|n| n.inputs.iter().any(|i| i == name))
            .collect();
        let [dq] = readers.as_slice() else { continue };
        if dq.op_type != "DequantizeLinear" || dq.inputs.first() != Some(name) {
            continue;
        }
        let Some(scale) = dq.inputs.get(1).and_then(|s| qdq.initializers.get(s)) else {
            continue;
        };
        let scale = scale.to_f32_vec();
        let rank = t.rank() as i64;
        let axis = dq.attr_int("axis", 1).unwrap_or(1);
        let axis = if axis < 0 { axis + rank } else { axis }.max(0) as usize;
        let dq_out = dq.outputs.first().cloned().unwrap_or_default();
        let layer = qdq.nodes.iter().find_map(|n| {
            let i = n.inputs.iter().position(|i| *i == dq_out)?;
            matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul").then(|| (n.name.clone(), i))
        });
        out.push(QuantTensor {
            name: name.clone(),
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            scale,
            axis,
            layer,
        });
    }
    out
}

/// The integer weight and bias of the named Conv/Gemm layers of a QDQ
/// graph, in the order given (weight, then bias when the layer has one):
/// a scheme written with layer names becomes a trainable list.
pub fn layer_tensors(qdq: &Graph, layers: &[&str]) -> Result<Vec<String>, TrainError> {
    let all = quantized_tensors(qdq);
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for &layer in layers {
        let mut mine: Vec<&QuantTensor> = all
            .iter()
            .filter(|q| q.layer.as_ref().is_some_and(|(l, _)| l == layer))
            .collect();
        if mine.is_empty() {
            missing.push(layer);
        }
        mine.sort_by_key(|q| q.layer.as_ref().map_or(0, |(_, i)| *i));
        out.extend(mine.into_iter().map(|q| q.name.clone()));
    }
    if !missing.is_empty() {
        return Err(TrainError::Spec(format!(
            "no quantized Conv/Gemm layer named: {}",
            missing.join(", ")
        )));
    }
    Ok(out)
}

/// SGD (with momentum, PyTorch's rule) on the integer tensors of a QDQ
/// graph, with quantization-aware scaling, as the fused `whittle.grad`
/// `QasSgdUpdate` node after each gradient. f32 tensors in the trainable
/// list get plain SGD from the same node.
#[derive(Clone, Debug)]
pub struct QasSgd {
    /// Learning rate (in the units of float SGD when QAS is on).
    pub lr: f32,
    /// Momentum (0 for plain SGD: no buffer is kept).
    pub momentum: f32,
    /// Scale gradients by `s^-2` (off: plain SGD on the integer values,
    /// the baseline QAS fixes).
    pub qas: bool,
    /// Rounding of the updated values.
    pub rounding: Rounding,
    /// Trainable tensor names, in trainable order.
    names: Vec<String>,
    /// Per trainable tensor: its quantization, or `None` for an f32 tensor.
    params: Vec<Option<QuantTensor>>,
}

impl QasSgd {
    /// QAS-SGD for the tensors `trainable` of the QDQ graph `qdq` (the
    /// same list, in the same order, as the [`TrainSpec`](crate::TrainSpec)).
    /// Stochastic rounding with seed 0.
    pub fn new(
        qdq: &Graph,
        trainable: &[String],
        lr: f32,
        momentum: f32,
    ) -> Result<QasSgd, TrainError> {
        let all = quantized_tensors(qdq);
        let mut params = Vec::with_capacity(trainable.len());
        for w in trainable {
            match qdq.initializers.get(w) {
                Some(t) if t.dtype() == DType::F32 => params.push(None),
                Some(_) => params.push(Some(
                    all.iter().find(|q| q.name == *w).cloned().ok_or_else(|| {
                        TrainError::Spec(format!(
                            "'{w}' is an integer tensor not read by DequantizeLinear alone"
                        ))
                    })?,
                )),
                None => {
                    return Err(TrainError::Spec(format!(
                        "trainable tensor '{w}' is not an initializer"
                    )))
                }
            }
        }
        Ok(QasSgd {
            lr,
            momentum,
            qas: true,
            rounding: Rounding::Stochastic { seed: 0 },
            names: trainable.to_vec(),
            params,
        })
    }

    /// Turns quantization-aware scaling on or off.
    pub fn with_qas(mut self, on: bool) -> QasSgd {
        self.qas = on;
        self
    }

    /// Chooses the rounding.
    pub fn with_rounding(mut self, rounding: Rounding) -> QasSgd {
        self.rounding = rounding;
        self
    }

    /// The quantization of each trainable tensor (`None`: f32).
    pub fn params(&self) -> &[Option<QuantTensor>] {
        &self.params
    }
}

impl QuantTensor {
    /// The QAS factors `s^-2`, shaped to broadcast to the tensor along its
    /// scale axis (`[1, .., C, .., 1]`), or one value when per tensor. A
    /// zero (or denormal) scale gives 0: its integer gradient is 0 anyway,
    /// and `0 · inf` would be NaN.
    pub fn inv_s2(&self) -> Tensor {
        let inv = |s: f32| {
            let v = 1.0 / (f64::from(s) * f64::from(s));
            if v.is_finite() {
                (v as f32).min(f32::MAX)
            } else {
                0.0
            }
        };
        let vals: Vec<f32> = self.scale.iter().map(|&s| inv(s)).collect();
        let mut shape = vec![1; self.shape.len().max(1)];
        if vals.len() > 1 {
            let axis = self.axis.min(shape.len() - 1);
            shape[axis] = vals.len();
        } else {
            shape = vec![1];
        }
        Tensor::from_f32(shape, vals).expect("shape holds one value per scale")
    }
}

impl Optimizer for QasSgd {
    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update_rule(&self) -> UpdateRule {
        let (rounding, seed) = match self.rounding {
            Rounding::Nearest => ("nearest", 0),
            Rounding::Stochastic { seed } => ("stochastic", seed),
        };
        let mut slots = vec![Slot::Step];
        if self.momentum != 0.0 {
            slots.push(Slot::Tensor("momentum"));
        }
        UpdateRule {
            op: "QasSgdUpdate",
            attrs: vec![
                ("momentum".into(), Attr::Float(self.momentum)),
                ("qas".into(), Attr::Int(i64::from(self.qas))),
                ("rounding".into(), Attr::String(rounding.into())),
                // The hash takes the seed's 64 bits; the attribute holds
                // them as i64.
                ("seed".into(), Attr::Int(seed as i64)),
            ],
            slots,
        }
    }

    fn per_weight_inputs(&self, weight: &str) -> Vec<(&'static str, Tensor)> {
        if !self.qas {
            return Vec::new();
        }
        self.names
            .iter()
            .zip(&self.params)
            .find(|(n, _)| *n == weight)
            .and_then(|(_, q)| q.as_ref())
            .map(|q| vec![("inv_s2", q.inv_s2())])
            .unwrap_or_default()
    }
}

/// Makes the backward pass of a (topologically sorted) training graph
/// recompute the f32 outputs of forward `DequantizeLinear` nodes that it
/// reads from their 8-bit inputs, instead of keeping them alive from the
/// forward pass: an int8 model then keeps its activations (and trainable
/// weights) as int8 between forward and backward, 4x less memory, for
/// one cheap elementwise op each. Each copy is placed right before its
/// first backward reader. Returns the number of copies.
pub fn rematerialize_dequantize(g: &mut Graph) -> usize {
    use std::collections::{HashMap, HashSet};
    let Some(loss) = g.nodes.iter().position(|n| {
        n.domain == whittle_runtime::ops::grad::DOMAIN
            && matches!(n.op_type.as_str(), "SoftmaxCrossEntropy" | "MseLoss")
    }) else {
        return 0;
    };
    // Backward nodes: everything downstream of the loss gradient.
    let mut grad_values: HashSet<String> = g.nodes[loss].outputs.iter().skip(1).cloned().collect();
    let mut backward = vec![false; g.nodes.len()];
    for (i, n) in g.nodes.iter().enumerate().skip(loss + 1) {
        if n.inputs.iter().any(|v| grad_values.contains(v)) {
            backward[i] = true;
            grad_values.extend(n.outputs.iter().cloned());
        }
    }
    let byte_wide: HashSet<&str> = g
        .inputs
        .iter()
        .filter(|v| matches!(v.dtype, DType::I8 | DType::U8))
        .map(|v| v.name.as_str())
        // Constant weights are not listed: their DequantizeLinear folds
        // into an f32 constant at compile time anyway.
        .chain(
            g.nodes
                .iter()
                .filter(|n| n.op_type == "QuantizeLinear")
                .filter_map(|n| n.outputs.first().map(String::as_str)),
        )
        .collect();
    let mut copies: Vec<(usize, whittle_ir::Node)> = Vec::new();
    let mut renames: HashMap<usize, Vec<(String, String)>> = HashMap::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if backward[i]
            || n.op_type != "DequantizeLinear"
            || !n
                .inputs
                .first()
                .is_some_and(|x| byte_wide.contains(x.as_str()))
        {
            continue;
        }
        let out = &n.outputs[0];
        let readers: Vec<usize> = (i + 1..g.nodes.len())
            .filter(|&k| backward[k] && g.nodes[k].inputs.contains(out))
            .collect();
        let Some(&first) = readers.first() else {
            continue;
        };
        let mut copy = n.clone();
        copy.name = format!("{}.remat", n.name);
        copy.outputs = vec![format!("{out}.remat")];
        for &k in &readers {
            renames
                .entry(k)
                .or_default()
                .push((out.clone(), copy.outputs[0].clone()));
        }
        copies.push((first, copy));
    }
    for (k, pairs) in renames {
        for input in &mut g.nodes[k].inputs {
            if let Some((_, new)) = pairs.iter().find(|(old, _)| old == input) {
                *input = new.clone();
            }
        }
    }
    let count = copies.len();
    // Insert from the back so earlier positions stay valid.
    copies.sort_by_key(|(pos, _)| std::cmp::Reverse(*pos));
    for (pos, node) in copies {
        g.nodes.insert(pos, node);
    }
    count
}
