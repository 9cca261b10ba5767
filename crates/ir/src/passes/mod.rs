//! Graph-to-graph passes. Each is a pure function of a [`Graph`](crate::Graph)
//! that returns what it changed, so passes compose and test alone.

mod cleanup;
mod fold_batchnorm;
mod fuse_activation;
mod qdq;

pub use cleanup::remove_identities;
pub use fold_batchnorm::fold_batchnorm;
pub use fuse_activation::fuse_activations;
pub use qdq::{fuse_qdq, fuse_qdq_with, MS_DOMAIN, WHITTLE_DOMAIN};

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
/// fold BatchNorm into Conv/Gemm, fuse activations into linear ops, rewrite
/// QDQ patterns into integer QOperator ops.
pub fn simplify_for_inference(graph: crate::Graph) -> (crate::Graph, Vec<PassReport>) {
    simplify_for_inference_with(graph, &|_, _| true)
}

/// [`simplify_for_inference`] where `fuse_qdq` only emits the ops for which
/// `supported(domain, op_type)` holds (the runtime passes its registry).
pub fn simplify_for_inference_with(
    graph: crate::Graph,
    supported: &dyn Fn(&str, &str) -> bool,
) -> (crate::Graph, Vec<PassReport>) {
    let (g, r1) = remove_identities(graph);
    let (g, r2) = fold_batchnorm(g);
    let (g, r3) = fuse_activations(g);
    let (g, r4) = fuse_qdq_with(g, supported);
    (g, vec![r1, r2, r3, r4])
}
