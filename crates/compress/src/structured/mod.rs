//! Structured (channel) pruning: the API contract only. Engineer
//! "channels" implements it; this placeholder lets `whittle prune` compile
//! and is replaced at merge.

use crate::CompressError;

/// How channel importance is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelImportance {
    /// L1 norm of the filter.
    L1,
    /// L2 norm of the filter.
    L2,
    /// |gamma| of the BatchNorm after the layer.
    BatchNormScale,
    /// First-order Taylor / OBD estimate from data.
    Taylor,
}

/// Options of [`prune_channels`].
#[derive(Clone, Debug)]
pub struct ChannelPruneOptions {
    /// Fraction of channels removed in each prunable group, 0 <= r < 1.
    pub ratio: f32,
    /// Per-layer ratios by node name.
    pub per_layer: std::collections::HashMap<String, f32>,
    /// Keep this fraction of MACs; overrides `ratio`.
    pub target_macs: Option<f64>,
    /// Importance criterion.
    pub importance: ChannelImportance,
    /// Node names never pruned.
    pub keep: Vec<String>,
}

/// One dependency group's channel counts.
#[derive(Clone, Debug)]
pub struct GroupReport {
    /// Layers of the group.
    pub layers: Vec<String>,
    /// Channels before.
    pub channels_before: usize,
    /// Channels after.
    pub channels_after: usize,
}

/// A channel-pruned model.
#[derive(Clone, Debug)]
pub struct ChannelPruned {
    /// The smaller model.
    pub graph: whittle_ir::Graph,
    /// Per dependency group.
    pub groups: Vec<GroupReport>,
}

/// Removes channels (placeholder: always an error until merged).
pub fn prune_channels(
    graph: &whittle_ir::Graph,
    opts: &ChannelPruneOptions,
    data: Option<&whittle_data::Dataset>,
) -> Result<ChannelPruned, CompressError> {
    let _ = (graph, opts, data);
    Err(CompressError::Unsupported(
        "structured pruning not merged yet".into(),
    ))
}
