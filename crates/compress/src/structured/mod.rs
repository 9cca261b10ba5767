//! Structured (channel) pruning: whole filters/output channels are removed
//! together with every tensor slice that depends on them, so the pruned
//! model is a smaller dense ONNX model that runs faster everywhere.
//!
//! The work is split in four steps, one file each:
//! * `trace.rs`: dependency analysis on the original ONNX graph. Every
//!   output channel of a Conv/Gemm/MatMul with constant weights is an
//!   *element*; elements that must be removed together (residual Add,
//!   depthwise conv, Concat offsets, Flatten -> Gemm, ...) are joined into
//!   *classes*. Anything the tracer does not understand pins the affected
//!   classes (never a wrong model), as do graph outputs and `keep` names.
//! * `importance.rs`: one score per class (L1, L2, BatchNorm |gamma|, or
//!   first-order Taylor from calibration gradients).
//! * `select.rs`: which classes go: a ratio per group, or a global MAC
//!   target met greedily.
//! * `rewrite.rs`: slices weights, biases, BatchNorm parameters, consumer
//!   input channels, `group`, Reshape/Split/Slice constants and value_info.

mod importance;
mod macs;
mod rewrite;
mod select;
mod trace;

use std::collections::HashMap;

use whittle_data::Dataset;
use whittle_ir::{Dim, Graph};

use crate::CompressError;

/// How the importance of a channel is scored (summed over the members of
/// its class: every filter that produces it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelImportance {
    /// Sum of |w| of the channel's filters.
    #[default]
    L1,
    /// Euclidean norm of the channel's filters (summed over filters).
    L2,
    /// |gamma| of the BatchNormalization nodes the channel passes through;
    /// classes that meet no BatchNorm fall back to L1.
    BatchNormScale,
    /// First-order Taylor |w · dL/dw| summed over the channel's filters,
    /// with gradients of the softmax cross-entropy of the model output
    /// (taken as logits) against the labels of calibration data.
    Taylor,
}

/// Options of [`prune_channels`].
#[derive(Clone, Debug, Default)]
pub struct ChannelPruneOptions {
    /// Fraction of channels removed in each prunable group, `0 <= r < 1`.
    pub ratio: f32,
    /// Per-layer ratio by node name (a Conv/Gemm/MatMul producing the
    /// channels); overrides `ratio` for the group holding that node.
    pub per_layer: HashMap<String, f32>,
    /// Keep this fraction of the model's MACs (0 < t <= 1); overrides
    /// `ratio` and `per_layer`.
    pub target_macs: Option<f64>,
    /// How channels are scored.
    pub importance: ChannelImportance,
    /// Node names whose output channels are never pruned.
    pub keep: Vec<String>,
}

/// One dependency group: channels that shrink together.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupReport {
    /// The nodes producing the group's channels (Conv/Gemm/MatMul).
    pub layers: Vec<String>,
    /// Channels (classes) before pruning.
    pub channels_before: usize,
    /// Channels after pruning.
    pub channels_after: usize,
    /// Why some or all channels could not be pruned, if so.
    pub pinned: Option<String>,
}

/// The result of [`prune_channels`].
#[derive(Clone, Debug)]
pub struct ChannelPruned {
    /// The pruned graph (valid standard ONNX; BatchNorm etc. kept).
    pub graph: Graph,
    /// Every group, in graph order.
    pub groups: Vec<GroupReport>,
    /// Multiply-accumulates of Conv/Gemm/MatMul before pruning.
    pub macs_before: u64,
    /// Multiply-accumulates after pruning.
    pub macs_after: u64,
    /// Notes for the user (e.g. a MAC target that could not be reached).
    pub notes: Vec<String>,
}

/// Removes channels from `graph` (see the module doc). `data` is needed
/// for [`ChannelImportance::Taylor`] only.
pub fn prune_channels(
    graph: &Graph,
    opts: &ChannelPruneOptions,
    data: Option<&Dataset>,
) -> Result<ChannelPruned, CompressError> {
    check_options(graph, opts)?;
    let mut g = graph.clone();
    g.topo_sort()?;
    // Symbolic dims (a dynamic batch) are traced at size 1.
    let overrides: HashMap<String, Vec<usize>> = g
        .inputs
        .iter()
        .filter(|v| v.static_shape().is_none())
        .filter_map(|v| {
            let dims = v.shape.as_ref()?;
            let s = dims.iter().map(|d| match d {
                Dim::Known(n) => *n,
                _ => 1,
            });
            Some((v.name.clone(), s.collect()))
        })
        .collect();
    let facts =
        whittle_runtime::infer_facts(&g, &whittle_runtime::Registry::standard(), &overrides)
            .map_err(|e| CompressError::runtime("shape inference before pruning", e))?;
    let mut tr = trace::trace(&g, &facts, &opts.keep)?;
    tr.finish();
    let scores = importance::scores(&g, &facts, &tr, opts.importance, data)?;
    let mac_model = macs::MacModel::new(&g, &facts, &tr);
    let mut notes = Vec::new();
    let kept = select::select(&g, &tr, &scores, &mac_model, opts, &mut notes)?;
    let macs_before = mac_model.total(&|_| true);
    let macs_after = mac_model.total(&|e| kept[tr.class(e)]);
    let groups = select::reports(&g, &tr, &kept);
    let graph = rewrite::rewrite(g, &facts, &overrides, &tr, &kept)?;
    Ok(ChannelPruned {
        graph,
        groups,
        macs_before,
        macs_after,
        notes,
    })
}

fn check_options(graph: &Graph, opts: &ChannelPruneOptions) -> Result<(), CompressError> {
    let ratio_ok = |r: f32| r.is_finite() && (0.0..1.0).contains(&r);
    if !ratio_ok(opts.ratio) {
        return Err(CompressError::Options(format!(
            "channel ratio {} is outside [0, 1)",
            opts.ratio
        )));
    }
    let exists = |name: &str| graph.nodes.iter().any(|n| n.name == name);
    for (name, &r) in &opts.per_layer {
        if !ratio_ok(r) {
            return Err(CompressError::Options(format!(
                "channel ratio {r} for layer '{name}' is outside [0, 1)"
            )));
        }
        if !exists(name) {
            return Err(CompressError::Options(format!(
                "layer '{name}' does not exist in the model"
            )));
        }
    }
    for name in &opts.keep {
        if !exists(name) {
            return Err(CompressError::Options(format!(
                "--keep layer '{name}' does not exist in the model"
            )));
        }
    }
    if let Some(t) = opts.target_macs {
        if !(t.is_finite() && t > 0.0 && t <= 1.0) {
            return Err(CompressError::Options(format!(
                "MAC target {t} is outside (0, 1]"
            )));
        }
    }
    Ok(())
}
