//! What a plan tells the user: per node, the op, the kernel that runs it,
//! shapes, parameters, MACs and activation bytes; and the totals.

use serde::Serialize;

/// One scheduled node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// ONNX op type.
    pub op: String,
    /// Kernel chosen at compile time.
    pub kernel: String,
    /// Output shapes.
    pub output_shapes: Vec<Vec<usize>>,
    /// Output dtypes.
    pub output_dtypes: Vec<String>,
    /// Weight elements the node reads.
    pub params: usize,
    /// Multiply-accumulates per run.
    pub macs: u64,
    /// Bytes of the node's outputs.
    pub activation_bytes: usize,
    /// Whether output 0 reuses an input's buffer.
    pub in_place: bool,
}

/// Plan-level totals.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Scheduled nodes.
    pub nodes: usize,
    /// Nodes folded into constants at compile time.
    pub folded_nodes: usize,
    /// Weight elements.
    pub params: usize,
    /// Multiply-accumulates per run.
    pub macs: u64,
    /// Bytes of constant weights the steps read.
    pub weight_bytes: usize,
    /// Extra bytes of kernel-owned (pre-packed) weights.
    pub packed_weight_bytes: usize,
    /// Planned arena bytes.
    pub arena_bytes: usize,
    /// Liveness lower bound for the chosen schedule.
    pub arena_lower_bound: usize,
    /// Sum of all intermediates (no reuse).
    pub naive_activation_bytes: usize,
    /// Which schedule compile chose.
    pub schedule: String,
}

/// The full report of a plan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PlanReport {
    /// Graph passes run and what they changed.
    pub passes: Vec<PassSummary>,
    /// Scheduled nodes in execution order.
    pub nodes: Vec<NodeReport>,
    /// Totals.
    pub totals: Totals,
}

/// A pass and its effect.
#[derive(Clone, Debug, Serialize)]
pub struct PassSummary {
    /// Pass name.
    pub pass: String,
    /// Nodes it removed.
    pub removed: usize,
}
