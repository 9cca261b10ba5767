use whittle_ir::IrError;
use whittle_runtime::{CompileError, ExecError};

/// Why a training graph could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Ops on the path from a trainable tensor to the loss that have no
    /// backward rule: `(op, node names)`, all of them at once.
    #[error("no gradient for ops: {}", format_ops(.0))]
    Unsupported(Vec<(String, Vec<String>)>),
    /// The spec names something the graph does not have, or is
    /// inconsistent with it.
    #[error("training spec: {0}")]
    Spec(String),
    /// A node the autodiff pass cannot differentiate as configured.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        /// Name of the forward node.
        node: String,
        /// Its op type.
        op: String,
        /// Why it cannot be differentiated, e.g. an input or output
        /// configuration its backward rule does not support.
        msg: String,
    },
    /// The forward graph is invalid.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// Shape inference or compilation failed.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// Running the compiled training graph failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Reading training data failed.
    #[error(transparent)]
    Data(#[from] whittle_data::DataError),
}

fn format_ops(ops: &[(String, Vec<String>)]) -> String {
    ops.iter()
        .map(|(op, nodes)| format!("{op} (nodes: {})", nodes.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}
