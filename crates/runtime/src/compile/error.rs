//! Why compile fails.

use whittle_ir::IrError;

use crate::OpError;

/// Why a graph could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Ops without an implementation, with the nodes using each.
    #[error("unsupported ops: {}", format_unsupported(.0))]
    Unsupported(Vec<(String, Vec<String>)>),
    /// A graph input whose shape cannot be resolved.
    #[error("graph input '{name}': {msg}")]
    Input {
        /// The graph input (or, for state pairs, the state value) at fault.
        name: String,
        /// What is wrong, usually with a hint such as the `--input-shape`
        /// to pass.
        msg: String,
    },
    /// A node rejected at build time.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The graph itself is invalid.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// A node failed while being folded into a constant.
    #[error("node '{node}' failed while folding constants: {msg}")]
    Fold {
        /// Name of the node being folded.
        node: String,
        /// The kernel's error, as text.
        msg: String,
    },
    /// The thread pool could not be created.
    #[error("cannot start {threads} threads: {msg}")]
    Threads {
        /// The thread count asked for in the compile options.
        threads: usize,
        /// The thread-pool builder's error, as text.
        msg: String,
    },
    /// The plan would exceed a memory limit.
    #[error("{0}")]
    Limit(String),
    /// A broken invariant inside whittle.
    #[error("internal error: {0}")]
    Internal(String),
}

fn format_unsupported(ops: &[(String, Vec<String>)]) -> String {
    ops.iter()
        .map(|(op, nodes)| {
            let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
            let more = if nodes.len() > 5 {
                format!(", +{} more", nodes.len() - 5)
            } else {
                String::new()
            };
            format!("{op} (nodes: {}{more})", shown.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}
