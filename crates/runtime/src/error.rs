use whittle_ir::IrError;

/// An error found while building a node's kernel at compile time.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The node is invalid for its op (bad attribute value, shape mismatch...).
    #[error("node '{node}' ({op}): {msg}")]
    Invalid {
        /// Name of the node.
        node: String,
        /// Its op type (`Conv`, `Reshape`, ...).
        op: String,
        /// What is wrong with it.
        msg: String,
    },
    /// An IR-level error (attribute kinds, tensor construction).
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// An error found while executing a kernel: only data-dependent failures
/// (an index out of range) can happen at run time, since everything else is
/// checked at compile time. Cheap to construct: no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RunError {
    /// An index tensor held a value outside the axis it indexes.
    #[error("index {index} is out of range for an axis of size {size}")]
    IndexOutOfRange {
        /// The value as read from the tensor, before any wrapping of negative
        /// indices (so it may be negative). Sequence lengths (RNN,
        /// ReverseSequence) are reported here too.
        index: i64,
        /// Length of the indexed axis; for a sequence length, the axis
        /// length plus one, since 0..=len are all valid.
        size: usize,
    },
    /// A data-dependent condition the kernel cannot handle.
    #[error("{0}")]
    Unsupported(&'static str),
}
