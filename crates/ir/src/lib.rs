//! whittle's graph IR.
//!
//! A [`Graph`] mirrors ONNX semantics so that import and export are faithful:
//! nodes name their inputs and outputs by string, attributes are typed
//! ([`Attr`]), and constant tensors ([`Tensor`]) live in `initializers`.
//! Everything that transforms a model (simplification, quantization, pruning,
//! autodiff) is a pass from `Graph` to `Graph`; see [`passes`]. A pass that
//! edits a graph records the edit in a [`Patch`] and applies it in one step.
//! What passes need to know about each op (int8 form, channel flow,
//! gradient, activation) is in one table, [`ops`].

mod attr;
mod dtype;
mod error;
mod graph;
pub mod ops;
pub mod passes;
mod patch;
mod tensor;

pub use attr::Attr;
pub use dtype::DType;
pub use error::IrError;
pub use graph::{Dim, FreshNames, Graph, Node, ValueInfo};
pub use ops::{op_info, Activation, OpInfo};
pub use patch::Patch;
pub use tensor::{checked_numel, Tensor, TensorData};

/// Result alias for IR operations.
pub type Result<T, E = IrError> = std::result::Result<T, E>;
