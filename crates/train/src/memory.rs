//! Memory of a training step, read off the planned arena and the liveness
//! of its values (not estimated): what the forward pass keeps for the
//! backward pass, the resident weights and optimizer state, the weight
//! gradients alive at once, and kernel workspace.

use std::collections::HashSet;

use whittle_ir::Graph;
use whittle_runtime::{LiveKind, LiveValue, Plan};

use crate::autodiff::{fuse_updates, FuseOptions, FusedGraph, StateRole};
use crate::trainer::spec_for_batch;
use crate::{build_training_graph, Optimizer, TrainError, TrainSpec};

/// Planned memory of one training step, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainMemory {
    /// Forward values (including the data input) that backward nodes read,
    /// so they stay alive from the forward pass into the backward pass.
    pub kept_activations: usize,
    /// Trainable weights and BatchNorm running statistics (resident in the
    /// arena) plus frozen weights held as constants, pre-packed copies
    /// included.
    pub weights: usize,
    /// Optimizer slots (momentum, Adam moments, step counters).
    pub optimizer_state: usize,
    /// Largest total of weight gradients alive at the same time: one or two
    /// with fused updates, all of them when gradients are kept to the end.
    pub gradients: usize,
    /// Largest kernel workspace (one step runs at a time).
    pub workspace: usize,
    /// Everything at once: the planned arena (activations, gradients,
    /// workspace, resident weights and optimizer state) plus the constant
    /// weights.
    pub peak: usize,
}

/// Largest sum of `bytes` over entries alive at the same time.
fn peak_alive<'a>(values: impl Iterator<Item = &'a LiveValue>) -> usize {
    let mut events: Vec<(usize, i64)> = Vec::new();
    for v in values {
        events.push((v.start, v.bytes as i64));
        events.push((v.end + 1, -(v.bytes as i64)));
    }
    events.sort_unstable();
    let (mut live, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

/// The memory figures of a compiled fused training graph.
pub(crate) fn of_plan(forward: &Graph, fused: &FusedGraph, plan: &Plan) -> TrainMemory {
    let live = plan.liveness();
    let role = |name: &str| fused.state.iter().find(|s| s.name == name).map(|s| s.role);
    let mut m = TrainMemory::default();
    for v in live.iter().filter(|v| v.kind == LiveKind::State) {
        match role(&v.name) {
            Some(StateRole::Slot | StateRole::Step) => m.optimizer_state += v.bytes,
            _ => m.weights += v.bytes,
        }
    }
    let stats = plan.memory();
    m.weights += stats.weights + stats.packed_weights;
    let grads: HashSet<&str> = fused.train.grads.iter().map(|(_, g)| g.as_str()).collect();
    m.gradients = peak_alive(live.iter().filter(|v| grads.contains(v.name.as_str())));
    m.workspace = live
        .iter()
        .filter(|v| v.kind == LiveKind::Scratch)
        .map(|v| v.bytes)
        .max()
        .unwrap_or(0);
    // Forward values: the forward graph's inputs and node outputs; kept
    // when a node the autodiff pass added reads them.
    let fwd_nodes: HashSet<&str> = forward.nodes.iter().map(|n| n.name.as_str()).collect();
    let mut fwd_values: HashSet<&str> = forward.inputs.iter().map(|i| i.name.as_str()).collect();
    let g = &fused.train.graph;
    for n in g
        .nodes
        .iter()
        .filter(|n| fwd_nodes.contains(n.name.as_str()))
    {
        fwd_values.extend(n.outputs.iter().map(String::as_str));
    }
    let kept: HashSet<&str> = g
        .nodes
        .iter()
        .filter(|n| !fwd_nodes.contains(n.name.as_str()))
        .flat_map(|n| n.inputs.iter().map(String::as_str))
        .filter(|i| fwd_values.contains(i))
        .collect();
    m.kept_activations = live
        .iter()
        .filter(|v| matches!(v.kind, LiveKind::Value | LiveKind::Input))
        .filter(|v| kept.contains(v.name.as_str()))
        .map(|v| v.bytes)
        .sum();
    m.peak = stats.arena + stats.weights + stats.packed_weights;
    m
}

/// Memory of a training graph without running it (for `--plan-only`):
/// builds, fuses and plans the step for `batch_size` samples.
pub fn plan_training_memory(
    forward: &Graph,
    spec: &TrainSpec,
    optimizer: &dyn Optimizer,
    batch_size: usize,
) -> Result<TrainMemory, TrainError> {
    plan_training_memory_with(
        forward,
        spec,
        optimizer,
        batch_size,
        &FuseOptions::default(),
    )
}

/// [`plan_training_memory`] with fuse options (e.g. `keep_grads` to see the
/// memory of keeping every gradient to the end of the step).
pub fn plan_training_memory_with(
    forward: &Graph,
    spec: &TrainSpec,
    optimizer: &dyn Optimizer,
    batch_size: usize,
    fuse: &FuseOptions,
) -> Result<TrainMemory, TrainError> {
    let (spec, _) = spec_for_batch(forward, spec, batch_size)?;
    let train = build_training_graph(forward, &spec)?;
    let fused = fuse_updates(train, forward, optimizer, fuse)?;
    let plan = fused.compile(1)?;
    Ok(of_plan(forward, &fused, &plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(bytes: usize, start: usize, end: usize) -> LiveValue {
        LiveValue {
            name: String::new(),
            bytes,
            offset: 0,
            start,
            end,
            kind: LiveKind::Value,
        }
    }

    #[test]
    fn peak_counts_values_alive_together() {
        // 10 [0,1], 20 [1,2], 5 [3,3]: 30 at time 1.
        let v = [lv(10, 0, 1), lv(20, 1, 2), lv(5, 3, 3)];
        assert_eq!(peak_alive(v.iter()), 30);
        // Back to back (end 1, start 2) do not add up.
        let v = [lv(10, 0, 1), lv(20, 2, 2)];
        assert_eq!(peak_alive(v.iter()), 20);
    }
}
