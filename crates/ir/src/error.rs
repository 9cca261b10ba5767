use crate::DType;

/// Errors raised while building or transforming a graph.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// A tensor's data length does not match the product of its shape.
    #[error("tensor data has {len} elements but shape {shape:?} needs {expected}")]
    DataLength {
        shape: Vec<usize>,
        len: usize,
        expected: usize,
    },
    /// A shape whose element count overflows or exceeds the configured limit.
    #[error("shape {shape:?} has too many elements (limit {limit})")]
    TooLarge { shape: Vec<usize>, limit: usize },
    /// A tensor had a different element type than required.
    #[error("expected a {expected} tensor, found {found}")]
    DType {
        expected: &'static str,
        found: DType,
    },
    /// An attribute is missing, of the wrong kind, or has a bad value.
    #[error("node '{node}' ({op}): attribute '{attr}': {reason}")]
    Attr {
        node: String,
        op: String,
        attr: String,
        reason: String,
    },
    /// A node reads a value that nothing produces.
    #[error("node '{node}' reads '{value}', which no node, input or initializer provides")]
    Dangling { node: String, value: String },
    /// A graph output that nothing produces.
    #[error("graph output '{0}' is not produced by any node, input or initializer")]
    DanglingOutput(String),
    /// Two producers for one value.
    #[error("value '{0}' is produced more than once")]
    DuplicateValue(String),
    /// The graph has a cycle through the listed nodes.
    #[error("graph has a cycle through nodes: {0}")]
    Cycle(String),
    /// Anything else that makes a graph invalid.
    #[error("{0}")]
    Invalid(String),
}
