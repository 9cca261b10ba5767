//! Graph-to-graph passes. Each is a pure function of a [`Graph`](crate::Graph)
//! that returns what it changed, so passes compose and test alone.

mod cleanup;
mod fold_batchnorm;
mod fuse_activation;

pub use cleanup::remove_identities;
pub use fold_batchnorm::fold_batchnorm;
pub use fuse_activation::{fuse_activations, FUSED_ACTIVATION};

/// What a pass did, for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Pass name.
    pub pass: &'static str,
    /// Nodes removed.
    pub removed: usize,
    /// Nodes rewritten or added.
    pub rewritten: usize,
}

/// The inference simplification pipeline, in order: drop Identity/Dropout,
/// fold BatchNorm into Conv/Gemm, fuse activations into linear ops.
pub fn simplify_for_inference(graph: crate::Graph) -> (crate::Graph, Vec<PassReport>) {
    let (g, r1) = remove_identities(graph);
    let (g, r2) = fold_batchnorm(g);
    let (g, r3) = fuse_activations(g);
    (g, vec![r1, r2, r3])
}
