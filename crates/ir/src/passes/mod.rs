//! Graph-to-graph passes. Each is a pure function of a [`Graph`](crate::Graph)
//! that returns what it changed, so passes compose and test alone.

mod cleanup;

pub use cleanup::remove_identities;

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
