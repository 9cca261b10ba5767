//! The autodiff pass: forward graph + [`TrainSpec`] → training graph.
//!
//! Reverse mode over the topological order. Only values that depend on a
//! trainable tensor get gradients (so no gradient of the input image, nor
//! of frozen layers before the first trained one, is ever computed), and
//! only nodes on a path to the loss are differentiated. Values read by
//! several nodes get their contributions summed with Add nodes. A final
//! dead-code sweep from the outputs keeps only the forward nodes the loss
//! and the backward nodes need, so activations no backward node reads are
//! freed by the memory planner as soon as the forward pass is done with
//! them.

mod emit;
mod penalty;
mod quant_rules;
mod rules;
mod update;

use std::collections::{HashMap, HashSet};

use whittle_ir::ops::Grad;
use whittle_ir::{Attr, DType, FreshNames, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::ops::grad::DOMAIN;
use whittle_runtime::{compile, infer_facts, CompileOptions, Known, Plan, Registry};

use crate::{BatchNormMode, Loss, TrainError, TrainSpec};
use emit::Emit;
use rules::{backward, channel_counts, Ctx};
pub use update::{fuse_updates, FuseOptions, FusedGraph, StateRole, StateTensor};

/// Name of the loss output of every training graph.
const LOSS: &str = "loss";

/// Running statistics of one train-mode BatchNorm node: the training graph
/// outputs the batch statistics, and the trainer folds them into the
/// running ones with `momentum` (ONNX convention: `running = momentum *
/// running + (1 - momentum) * batch`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormStats {
    /// The BatchNormalization node.
    pub node: String,
    /// Initializer holding the running mean.
    pub running_mean: String,
    /// Initializer holding the running variance.
    pub running_var: String,
    /// Output with the batch mean.
    pub batch_mean: String,
    /// Output with the batch's `1 / sqrt(var + epsilon)`.
    pub batch_invstd: String,
    /// The node's epsilon.
    pub epsilon: f32,
    /// The node's momentum.
    pub momentum: f32,
}

/// A training graph and how to feed and read it.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    /// Inputs: the forward inputs, the labels or target, and one input per
    /// trainable tensor. Outputs: `loss`, then [`TrainGraph::grads`], then
    /// the batch statistics of [`TrainGraph::batchnorm`], then the kept
    /// forward values.
    pub graph: Graph,
    /// Name of the scalar loss output.
    pub loss: String,
    /// `(trainable tensor, gradient output)` in spec order.
    pub grads: Vec<(String, String)>,
    /// Initial values of the trainable tensors, in spec order.
    pub initial: Vec<(String, Tensor)>,
    /// Train-mode BatchNorm nodes and their statistics outputs.
    pub batchnorm: Vec<BatchNormStats>,
    /// Name of the labels (or target) input.
    pub labels: String,
    /// Sparse update: trainable tensors that train only their first k
    /// output channels (axis 0), with k; their gradient has k channels.
    pub channels: HashMap<String, usize>,
}

impl TrainGraph {
    /// Compiles the training graph (weights stay inputs).
    pub fn compile(&self, threads: usize) -> Result<Plan, TrainError> {
        let opts = CompileOptions {
            threads,
            ..CompileOptions::default()
        };
        Ok(compile(&self.graph, &opts)?)
    }
}

/// Builds the training graph of `forward` for `spec`.
pub fn build_training_graph(forward: &Graph, spec: &TrainSpec) -> Result<TrainGraph, TrainError> {
    let registry = Registry::standard();
    let mut g = forward.clone();
    g.topo_sort()?;
    let trainable = check_trainable(&g, spec)?;
    let channels = channel_counts(&g, spec, &trainable)?;
    let penalties =
        crate::regularize::resolve_terms(&g, &spec.trainable, &spec.regularizers, &channels)?;
    // The training graph is compiled for these shapes: declare them.
    for vi in &mut g.inputs {
        if let Some(shape) = spec.input_shapes.get(&vi.name) {
            *vi = ValueInfo::known(vi.name.clone(), vi.dtype, shape);
        }
    }

    // Trainable initializers become inputs.
    let mut initial = Vec::new();
    for w in &spec.trainable {
        let t = g.initializers.shift_remove(w).expect("checked above");
        g.inputs
            .push(ValueInfo::known(w.clone(), t.dtype(), t.shape()));
        initial.push((w.clone(), t));
    }
    let batchnorm = if spec.batchnorm == BatchNormMode::Train {
        to_train_batchnorm(&mut g)?
    } else {
        Vec::new()
    };
    g.opsets.insert(DOMAIN.to_string(), 1);

    let (loss_value, label_name) = match &spec.loss {
        Loss::SoftmaxCrossEntropy { logits, labels } => (logits.clone(), labels.clone()),
        Loss::Mse { output, target } => (output.clone(), target.clone()),
    };
    if g.inputs.iter().any(|i| i.name == label_name) || g.initializers.contains_key(&label_name) {
        return Err(TrainError::Spec(format!(
            "'{label_name}' is already a value of the graph; pick another labels/target name"
        )));
    }
    // The inputs declare their shapes now (the trainable weights became
    // inputs above, so only constants remain initializers).
    if let Some(vi) = g.inputs.iter().find(|vi| vi.static_shape().is_none()) {
        return Err(TrainError::Spec(format!(
            "graph input '{}' has no static shape; give one in input_shapes",
            vi.name
        )));
    }
    let mut known = infer_facts(&g, &registry, &HashMap::new())?;
    let out_fact = known
        .get(&loss_value)
        .ok_or_else(|| {
            TrainError::Spec(format!(
                "the loss reads '{loss_value}', which the graph does not have"
            ))
        })?
        .fact
        .clone();
    let label_info = match &spec.loss {
        Loss::SoftmaxCrossEntropy { .. } => {
            if out_fact.shape.len() != 2 {
                return Err(TrainError::Spec(format!(
                    "logits '{loss_value}' have shape {:?}; softmax cross-entropy needs [N, C]",
                    out_fact.shape
                )));
            }
            ValueInfo::known(label_name.clone(), DType::I64, &out_fact.shape[..1])
        }
        Loss::Mse { .. } => ValueInfo::known(label_name.clone(), DType::F32, &out_fact.shape),
    };
    known.insert(
        label_name.clone(),
        Known {
            fact: whittle_runtime::Fact::new(
                label_info.dtype,
                label_info.static_shape().unwrap_or_default(),
            ),
            value: None,
        },
    );
    g.inputs.push(label_info);

    // Which values depend on a trainable tensor, which reach the loss.
    let mut needs: HashSet<String> = trainable.clone();
    for n in &g.nodes {
        if n.inputs.iter().any(|i| needs.contains(i)) {
            needs.extend(n.outputs.iter().filter(|o| !o.is_empty()).cloned());
        }
    }
    if !needs.contains(&loss_value) {
        return Err(TrainError::Spec(format!(
            "no trainable tensor affects '{loss_value}'"
        )));
    }
    let producers = g.producers();
    let mut reaches: HashSet<String> = HashSet::new();
    let mut stack = vec![loss_value.clone()];
    while let Some(v) = stack.pop() {
        if reaches.insert(v.clone()) {
            if let Some(&p) = producers.get(v.as_str()) {
                stack.extend(g.nodes[p].inputs.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
    }
    let on_path = |n: &Node| {
        n.outputs.iter().any(|o| reaches.contains(o)) && n.inputs.iter().any(|i| needs.contains(i))
    };
    let mut unsupported: Vec<(String, Vec<String>)> = Vec::new();
    for n in g.nodes.iter().filter(|n| on_path(n)) {
        if n.info().grad == Grad::None {
            match unsupported.iter_mut().find(|(op, _)| *op == n.op_type) {
                Some((_, names)) => names.push(n.name.clone()),
                None => unsupported.push((n.op_type.clone(), vec![n.name.clone()])),
            }
        }
    }
    if !unsupported.is_empty() {
        return Err(TrainError::Unsupported(unsupported));
    }

    // The loss node seeds the backward pass.
    let mut names = FreshNames::of(&g);
    names.reserve(LOSS);
    for w in &spec.trainable {
        names.reserve(format!("{w}.grad"));
    }
    let mut e = Emit::new(&known, names);
    let seed = e.grad_out(&loss_value);
    let loss_op = match spec.loss {
        Loss::SoftmaxCrossEntropy { .. } => "SoftmaxCrossEntropy",
        Loss::Mse { .. } => "MseLoss",
    };
    e.node(
        "loss",
        loss_op,
        true,
        &[&loss_value, &label_name],
        &[LOSS, &seed],
        vec![],
    );

    let opset = g.opset();
    for n in g.nodes.iter().rev().filter(|n| on_path(n)) {
        let gy: Vec<Option<String>> = n
            .outputs
            .iter()
            .map(|o| if o.is_empty() { None } else { e.total(o) })
            .collect();
        if gy.iter().all(Option::is_none) {
            continue;
        }
        let need = n
            .inputs
            .iter()
            .map(|i| !i.is_empty() && needs.contains(i))
            .collect();
        backward(
            &mut e,
            &Ctx {
                node: n,
                opset,
                gy,
                need,
                channels: &channels,
            },
        )?;
    }
    for t in penalties.iter().filter(|t| !t.proximal) {
        penalty::emit_penalty_grad(&mut e, t, opset)?;
    }
    let grad_shape = |w: &str| {
        let mut s = known[w].fact.shape.clone();
        if let Some(&k) = channels.get(w) {
            s[0] = k;
        }
        s
    };
    let mut grads = Vec::new();
    let mut zero_grads = Vec::new();
    for w in &spec.trainable {
        let target = format!("{w}.grad");
        if !e.finish_weight(w, &target) {
            // The weight does not reach the loss: its gradient is zero.
            let shape = grad_shape(w);
            zero_grads.push((target.clone(), Tensor::zeros(DType::F32, shape)?));
        }
        grads.push((w.clone(), target));
    }

    // Assemble: forward + loss + backward, then keep what the outputs need.
    let (bnodes, binits) = (std::mem::take(&mut e.nodes), std::mem::take(&mut e.inits));
    g.nodes.extend(bnodes);
    g.initializers.extend(binits);
    g.initializers.extend(zero_grads);
    let mut outputs = vec![ValueInfo::known(LOSS, DType::F32, &[])];
    for (w, gname) in &grads {
        outputs.push(ValueInfo::known(gname.clone(), DType::F32, &grad_shape(w)));
    }
    for s in &batchnorm {
        for v in [&s.batch_mean, &s.batch_invstd] {
            let f = &known[v].fact;
            outputs.push(ValueInfo::known(v.clone(), f.dtype, &f.shape));
        }
    }
    for v in &spec.keep_outputs {
        let f = &known
            .get(v)
            .ok_or_else(|| {
                TrainError::Spec(format!(
                    "keep_outputs names '{v}', which the graph does not have"
                ))
            })?
            .fact;
        outputs.push(ValueInfo::known(v.clone(), f.dtype, &f.shape));
    }
    g.outputs = outputs;
    g.value_info.clear();
    prune(&mut g);
    g.topo_sort()?;
    crate::qas::rematerialize_dequantize(&mut g);
    Ok(TrainGraph {
        graph: g,
        loss: LOSS.to_string(),
        grads,
        initial,
        batchnorm,
        labels: label_name,
        channels,
    })
}

/// Checks the trainable names: f32 initializers, each once.
fn check_trainable(g: &Graph, spec: &TrainSpec) -> Result<HashSet<String>, TrainError> {
    if spec.trainable.is_empty() {
        return Err(TrainError::Spec("no trainable tensors given".into()));
    }
    let mut set = HashSet::new();
    let mut missing = Vec::new();
    for w in &spec.trainable {
        match g.initializers.get(w) {
            None => missing.push(w.as_str()),
            // Integer tensors train through their DequantizeLinear (QAS).
            Some(t) if t.dtype() != DType::F32 && !quant_rules::dequantized_only(g, w) => {
                return Err(TrainError::Spec(format!(
                    "trainable tensor '{w}' is {}, not f32 (integer tensors train only when read by DequantizeLinear alone)",
                    t.dtype()
                )))
            }
            Some(_) => {}
        }
        if !set.insert(w.clone()) {
            return Err(TrainError::Spec(format!(
                "trainable tensor '{w}' is listed twice"
            )));
        }
    }
    if !missing.is_empty() {
        return Err(TrainError::Spec(format!(
            "trainable tensors not found among the initializers: {}",
            missing.join(", ")
        )));
    }
    Ok(set)
}

/// Replaces every BatchNormalization by a train-mode BatchNormTrain whose
/// extra outputs are the batch statistics.
fn to_train_batchnorm(g: &mut Graph) -> Result<Vec<BatchNormStats>, TrainError> {
    let mut stats = Vec::new();
    let consumers: HashSet<String> = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().cloned())
        .chain(g.outputs.iter().map(|o| o.name.clone()))
        .collect();
    let mut names = FreshNames::of(g);
    let mut fresh = |base: String| names.fresh(&base);
    for n in g
        .nodes
        .iter_mut()
        .filter(|n| n.op_type == "BatchNormalization")
    {
        if n.outputs.iter().skip(1).any(|o| consumers.contains(o)) {
            return Err(TrainError::Node {
                node: n.name.clone(),
                op: n.op_type.clone(),
                msg: "outputs other than Y are read; only Y is supported in training".into(),
            });
        }
        let (Some(mean), Some(var)) = (n.input(3), n.input(4)) else {
            return Err(TrainError::Node {
                node: n.name.clone(),
                op: n.op_type.clone(),
                msg: "needs 5 inputs (X, scale, B, mean, var)".into(),
            });
        };
        let s = BatchNormStats {
            node: n.name.clone(),
            running_mean: mean.to_string(),
            running_var: var.to_string(),
            batch_mean: fresh(format!("{}.batch_mean", n.name)),
            batch_invstd: fresh(format!("{}.batch_invstd", n.name)),
            epsilon: n.attr_float("epsilon", 1e-5)?,
            momentum: n.attr_float("momentum", 0.9)?,
        };
        let mut t = Node::new(
            n.name.clone(),
            "BatchNormTrain",
            &[&n.inputs[0], &n.inputs[1], &n.inputs[2]],
            &[&n.outputs[0], &s.batch_mean, &s.batch_invstd],
        );
        t.domain = DOMAIN.to_string();
        t.attrs.insert("epsilon".into(), Attr::Float(s.epsilon));
        *n = t;
        stats.push(s);
    }
    Ok(stats)
}

/// Drops nodes no output needs, then unused initializers.
fn prune(g: &mut Graph) {
    let producers = g.producers();
    let mut keep = vec![false; g.nodes.len()];
    let mut stack: Vec<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let mut seen = HashSet::new();
    while let Some(v) = stack.pop() {
        if !seen.insert(v.clone()) {
            continue;
        }
        if let Some(&p) = producers.get(v.as_str()) {
            if !keep[p] {
                keep[p] = true;
                stack.extend(g.nodes[p].inputs.iter().filter(|s| !s.is_empty()).cloned());
            }
        }
    }
    let mut i = 0;
    g.nodes.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    g.prune_unused_initializers();
}
