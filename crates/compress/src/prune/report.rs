//! What unstructured pruning did, per layer.

use serde::Serialize;

use super::layers::SkippedLayer;

/// One pruned layer.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LayerPrune {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Weight initializer.
    pub weight: String,
    /// Weight shape.
    pub shape: Vec<usize>,
    /// Weight elements.
    pub params: usize,
    /// Nonzero weights before pruning.
    pub nonzero_before: usize,
    /// Nonzero weights after.
    pub nonzero_after: usize,
    /// Fraction of zero weights after pruning.
    pub sparsity: f64,
    /// The layer's own target (`--layer`), if it had one.
    pub target: Option<f64>,
    /// Weight bytes stored dense.
    pub bytes_dense: usize,
    /// Weight bytes as written (sparse COO when that is smaller).
    pub bytes_stored: usize,
}

/// The report of [`super::prune_unstructured`].
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PruneReport {
    /// `magnitude`, `obd` or `wanda`.
    pub criterion: String,
    /// `layer`, `row` (Wanda per output) or `global`; `n:m` for N:M.
    pub scope: String,
    /// `unstructured` or e.g. `2:4`.
    pub pattern: String,
    /// The default target sparsity (for N:M, `1 - N/M`).
    pub target_sparsity: f64,
    /// Calibration samples used (0 for magnitude).
    pub calibration_samples: usize,
    /// Pruned layers in graph order.
    pub layers: Vec<LayerPrune>,
    /// Conv/Gemm/MatMul nodes left dense, and why.
    pub skipped: Vec<SkippedLayer>,
    /// Weight elements of the pruned layers.
    pub params: usize,
    /// Nonzero weights of the pruned layers after pruning.
    pub nonzero: usize,
}
