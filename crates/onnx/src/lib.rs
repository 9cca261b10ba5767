//! ONNX import and export (host only).
//!
//! # Import
//!
//! [`load_model`] / [`load_model_bytes`] turn an ONNX `ModelProto` into a
//! topologically sorted [`whittle_ir::Graph`]:
//!
//! * opsets from `opset_import` ("ai.onnx" is stored as ""); old or missing
//!   default-domain opsets are accepted and noted in [`Imported::warnings`];
//! * initializers in every storage form: `raw_data`, the typed fields,
//!   external data beside the model (paths confined to the model directory,
//!   ranges checked against the file), and `sparse_initializer` (densified);
//! * `Constant` nodes become initializers; graph inputs that have an
//!   initializer are treated as constants and dropped from `Graph::inputs`;
//! * declared types of inputs, outputs and `value_info` (non-tensor or
//!   unsupported element types of graph inputs and outputs are errors;
//!   unreadable `value_info` entries are skipped with a warning);
//! * nodes with blank names get `{op_type}_{index}`, repeated names a
//!   suffix; subgraph, sparse-tensor, tensor-list and type attributes become
//!   [`whittle_ir::Attr::Unsupported`]; model-local functions are not
//!   inlined (nodes calling them are unknown ops to the runtime).
//!
//! All sizes read from a file are checked against [`ImportLimits`] and the
//! bytes actually present before anything is allocated from them.
//!
//! # Export
//!
//! [`save_model`] writes atomically (temporary file + fsync + rename);
//! tensors are written as `raw_data`, and attributes named `whittle.*`
//! (internal to whittle's passes) are dropped.

mod attr;
mod dtype;
mod error;
mod export;
mod external;
mod import;
mod limits;
pub mod proto;
mod sparse;
mod tensor;
mod value_info;

pub use dtype::{dtype_from_onnx, dtype_to_onnx};
pub use error::OnnxError;
pub use export::{
    ir_version_for_opset, model_bytes, model_proto, save_model, INTERNAL_ATTR_PREFIX,
};
pub use import::{
    graph_from_model, load_model, load_model_bytes, load_model_bytes_with, load_model_with,
    Imported,
};
pub use limits::ImportLimits;
pub use tensor::{
    load_tensor, load_tensor_bytes, tensor_from_proto, tensor_from_proto_with, tensor_to_proto,
};
