//! Fused in-place updates: each weight's update node is emitted right after
//! its gradient, so the gradient dies at once instead of waiting for a host
//! optimizer at the end of the step (the Tiny Training Engine's operator
//! reordering). Weights, optimizer slots and BatchNorm running statistics
//! become persistent state of the compiled plan: each is a graph input
//! paired with the update's output, and the planner gives the two one arena
//! region that survives across runs.

use std::collections::{HashMap, HashSet};

use whittle_ir::{Attr, DType, FreshNames, Node, Tensor, ValueInfo};
use whittle_runtime::ops::grad::DOMAIN;
use whittle_runtime::{compile_with_state, infer_facts, CompileOptions, Plan, Registry, StatePair};

use super::TrainGraph;
use crate::optim::{Optimizer, Slot};
use crate::TrainError;

/// How [`fuse_updates`] builds the graph.
#[derive(Clone, Debug, Default)]
pub struct FuseOptions {
    /// Keep the weight gradients as graph outputs (for tests; they then
    /// live until the end of the step, as on the host path).
    pub keep_grads: bool,
    /// Weight name -> 0/1 f32 mask of its shape: masked entries stay
    /// exactly 0 (fine-tuning a pruned model).
    pub masks: HashMap<String, Tensor>,
}

/// A persistent tensor of a fused training graph.
#[derive(Clone, Debug, PartialEq)]
pub struct StateTensor {
    /// Input name (a weight, `<weight>.<slot>`, `<weight>.step` or a
    /// running statistic).
    pub name: String,
    /// The value that replaces it after each step.
    pub updated: String,
    /// Its value before the first step.
    pub initial: Tensor,
    /// What it is.
    pub role: StateRole,
}

/// The role of a [`StateTensor`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateRole {
    /// A trainable weight.
    Weight,
    /// An optimizer slot (momentum, Adam moments).
    Slot,
    /// A per-weight step counter.
    Step,
    /// A BatchNorm running mean or variance.
    RunningStat,
}

/// A training graph whose weights are updated inside the graph.
#[derive(Clone, Debug)]
pub struct FusedGraph {
    /// The training graph: its graph now also holds the update nodes and
    /// its outputs are `loss`, the gradients when kept, the kept forward
    /// values, then every state output.
    pub train: TrainGraph,
    /// Persistent state, weights first (in spec order).
    pub state: Vec<StateTensor>,
    /// Name of the scalar f32 learning-rate input.
    pub lr: String,
}

impl FusedGraph {
    /// The state pairs to compile with.
    pub fn state_pairs(&self) -> Vec<StatePair> {
        self.state
            .iter()
            .map(|s| StatePair::new(s.name.clone(), s.updated.clone()))
            .collect()
    }

    /// Compiles the graph with its state resident and sets the state to
    /// its initial values.
    pub fn compile(&self, threads: usize) -> Result<Plan, TrainError> {
        let opts = CompileOptions {
            threads,
            ..CompileOptions::default()
        };
        let mut plan = compile_with_state(
            &self.train.graph,
            &opts,
            &Registry::standard(),
            &self.state_pairs(),
        )?;
        for s in &self.state {
            plan.set_state(&s.name, &s.initial)?;
        }
        Ok(plan)
    }
}

/// Adds the update nodes of `optimizer` to `tg` (from
/// [`build_training_graph`](super::build_training_graph) of `forward`), one
/// right after each weight gradient, and a running-statistics update after
/// each train-mode BatchNorm. A gradient with fewer slices along axis 0
/// than its weight (channel-subset gradient) updates those first channels
/// only.
pub fn fuse_updates(
    mut tg: TrainGraph,
    forward: &whittle_ir::Graph,
    optimizer: &dyn Optimizer,
    opts: &FuseOptions,
) -> Result<FusedGraph, TrainError> {
    let rule = optimizer.update_rule();
    let g = &mut tg.graph;
    let known = infer_facts(g, &Registry::standard(), &HashMap::new())?;
    let mut names = FreshNames::of(g);
    let mut fresh = |base: String| names.fresh(&base);
    let mut state_names: HashSet<String> = HashSet::new();
    for w in opts.masks.keys() {
        if !tg.initial.iter().any(|(n, _)| n == w) {
            return Err(TrainError::Spec(format!(
                "a mask is given for '{w}', which is not trained"
            )));
        }
    }
    let lr = fresh("lr".to_string());
    g.inputs.push(ValueInfo::known(lr.clone(), DType::F32, &[]));
    let mut state = Vec::new();
    // (index of the node after which to insert, node)
    let mut inserts: Vec<(usize, Node)> = Vec::new();
    let producer: HashMap<String, usize> = g
        .producers()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    for ((w, t), (_, gname)) in tg.initial.iter().zip(&tg.grads) {
        let gshape = &known
            .get(gname)
            .ok_or_else(|| TrainError::Spec(format!("no shape for gradient '{gname}'")))?
            .fact
            .shape;
        let mut inputs = vec![w.clone(), gname.clone(), lr.clone(), String::new()];
        if let Some(m) = opts.masks.get(w) {
            if m.shape() != t.shape() || m.dtype() != DType::F32 {
                return Err(TrainError::Spec(format!(
                    "mask of '{w}' is {} {:?}; the weight is f32 {:?}",
                    m.dtype(),
                    m.shape(),
                    t.shape()
                )));
            }
            let name = fresh(format!("{w}.mask"));
            g.initializers.insert(name.clone(), m.clone());
            inputs[3] = name;
        }
        let updated = fresh(format!("{w}.updated"));
        let mut outputs = vec![updated.clone()];
        state.push(StateTensor {
            name: w.clone(),
            updated,
            initial: t.clone(),
            role: StateRole::Weight,
        });
        for slot in &rule.slots {
            let (name, initial, role) = match slot {
                Slot::Tensor(suffix) => (
                    format!("{w}.{suffix}"),
                    Tensor::zeros(DType::F32, t.shape().to_vec())?,
                    StateRole::Slot,
                ),
                Slot::Step => (
                    format!("{w}.step"),
                    Tensor::vec_i64(vec![0]),
                    StateRole::Step,
                ),
            };
            let out = fresh(format!("{name}.updated"));
            let clash = g.inputs.iter().any(|v| v.name == name)
                || g.initializers.contains_key(&name)
                || producer.contains_key(&name);
            if clash || !state_names.insert(name.clone()) {
                return Err(TrainError::Spec(format!(
                    "optimizer state '{name}' clashes with a value of the graph"
                )));
            }
            g.inputs.push(ValueInfo::known(
                name.clone(),
                initial.dtype(),
                initial.shape(),
            ));
            inputs.push(name.clone());
            outputs.push(out.clone());
            state.push(StateTensor {
                name,
                updated: out,
                initial,
                role,
            });
        }
        for (suffix, value) in optimizer.per_weight_inputs(w) {
            let name = fresh(format!("{w}.{suffix}"));
            g.initializers.insert(name.clone(), value);
            inputs.push(name);
        }
        let ins: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let outs: Vec<&str> = outputs.iter().map(String::as_str).collect();
        let mut n = Node::new(format!("{w}/update"), rule.op, &ins, &outs);
        n.domain = DOMAIN.to_string();
        for (k, v) in &rule.attrs {
            n.attrs.insert(k.clone(), v.clone());
        }
        if gshape.first() != t.shape().first() && gshape.len() == t.shape().len() {
            let k = gshape.first().copied().unwrap_or(0);
            n.attrs.insert("channels".into(), Attr::Int(k as i64));
        }
        let at = producer.get(gname.as_str()).copied().unwrap_or(0);
        inserts.push((at, n));
    }
    for s in &tg.batchnorm {
        let node = producer
            .get(s.batch_mean.as_str())
            .map(|&i| &g.nodes[i])
            .ok_or_else(|| TrainError::Spec(format!("no node computes '{}'", s.batch_mean)))?;
        let x = known
            .get(&node.inputs[0])
            .map(|k| k.fact.shape.clone())
            .unwrap_or_default();
        let count = x.iter().product::<usize>() / x.get(1).copied().unwrap_or(1).max(1);
        let mut outs = Vec::new();
        for stat in [&s.running_mean, &s.running_var] {
            let t = forward.initializers.get(stat).ok_or_else(|| {
                TrainError::Spec(format!("running statistic '{stat}' is not an initializer"))
            })?;
            g.inputs
                .push(ValueInfo::known(stat.clone(), t.dtype(), t.shape()));
            let out = fresh(format!("{stat}.updated"));
            outs.push(out.clone());
            state.push(StateTensor {
                name: stat.clone(),
                updated: out,
                initial: t.clone(),
                role: StateRole::RunningStat,
            });
        }
        let mut n = Node::new(
            format!("{}/running_stats", s.node),
            "BatchNormStatsUpdate",
            &[
                &s.running_mean,
                &s.running_var,
                &s.batch_mean,
                &s.batch_invstd,
            ],
            &[&outs[0], &outs[1]],
        );
        n.domain = DOMAIN.to_string();
        n.attrs.insert("momentum".into(), Attr::Float(s.momentum));
        n.attrs.insert("epsilon".into(), Attr::Float(s.epsilon));
        n.attrs.insert("count".into(), Attr::Int(count as i64));
        let at = producer.get(s.batch_mean.as_str()).copied().unwrap_or(0);
        inserts.push((at, n));
    }
    // Insert after the producers, last first so indices stay valid.
    inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, n) in inserts {
        g.nodes.insert(at + 1, n);
    }
    // Outputs: the loss, the gradients if kept, the kept forward values
    // (batch statistics are consumed in the graph now), then the state.
    let grads: HashSet<&str> = tg.grads.iter().map(|(_, g)| g.as_str()).collect();
    let stats: HashSet<&str> = tg
        .batchnorm
        .iter()
        .flat_map(|s| [s.batch_mean.as_str(), s.batch_invstd.as_str()])
        .collect();
    g.outputs.retain(|o| {
        !stats.contains(o.name.as_str()) && (opts.keep_grads || !grads.contains(o.name.as_str()))
    });
    for s in &state {
        g.outputs.push(ValueInfo::known(
            s.updated.clone(),
            s.initial.dtype(),
            s.initial.shape(),
        ));
    }
    g.topo_sort()?;
    Ok(FusedGraph {
        train: tg,
        state,
        lr,
    })
}
