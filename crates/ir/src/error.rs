use crate::DType;

/// Errors raised while building or transforming a graph.
#[derive(Debug, thiserror::Error)]
pub enum IrError {
    /// A tensor's data length does not match the product of its shape.
    #[error("tensor data has {len} elements but shape {shape:?} needs {expected}")]
    DataLength {
        /// The requested dimensions.
        shape: Vec<usize>,
        /// Number of elements actually supplied.
        len: usize,
        /// Number of elements `shape` needs (the product of its dims).
        expected: usize,
    },
    /// A shape whose element count overflows or exceeds the configured limit.
    #[error("shape {shape:?} has too many elements (limit {limit})")]
    TooLarge {
        /// The offending dimensions.
        shape: Vec<usize>,
        /// The element-count limit that was exceeded; `usize::MAX` when the
        /// product of the dims simply overflowed.
        limit: usize,
    },
    /// A tensor had a different element type than required.
    #[error("expected a {expected} tensor, found {found}")]
    DType {
        /// What was required: a dtype name (`"f32"`) or a class of types
        /// (`"an integer type"`).
        expected: &'static str,
        /// The element type the tensor actually has.
        found: DType,
    },
    /// An attribute is missing, of the wrong kind, or has a bad value.
    #[error("node '{node}' ({op}): attribute '{attr}': {reason}")]
    Attr {
        /// Name of the node carrying the attribute.
        node: String,
        /// The node's op type (`Conv`, `Gemm`, ...).
        op: String,
        /// Name of the attribute.
        attr: String,
        /// What is wrong with it, e.g. "expected int, found floats" or an
        /// out-of-range value.
        reason: String,
    },
    /// A node reads a value that nothing produces.
    #[error("node '{node}' reads '{value}', which no node, input or initializer provides")]
    Dangling {
        /// Name of the reading node.
        node: String,
        /// Name of the value it reads.
        value: String,
    },
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
