use std::path::PathBuf;

use whittle_ir::IrError;

/// Everything that can go wrong reading or writing an ONNX file.
///
/// Messages are self-contained (they embed the underlying cause) so that
/// printing the error alone tells the user what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A file could not be read or written.
    #[error("{path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Bytes that are not a valid protobuf message of the expected type.
    #[error("malformed {what}: {error}")]
    Decode {
        /// What was being decoded (`ModelProto`, `TensorProto`, ...).
        what: &'static str,
        /// The decoder's complaint.
        error: prost::DecodeError,
    },
    /// A size read from the file exceeds an [`crate::ImportLimits`] bound.
    #[error("{what} is {size}, over the limit of {limit}")]
    TooLarge {
        /// What was measured (names the tensor or value).
        what: String,
        /// The size found.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The model has no graph.
    #[error("the model has no graph")]
    NoGraph,
    /// A bad or unsupported tensor (initializer, Constant value, attribute
    /// tensor or tensor file).
    #[error("tensor '{tensor}': {reason}")]
    Tensor {
        /// Tensor name (may be empty for unnamed attribute tensors).
        tensor: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor's external data could not be used.
    #[error("tensor '{tensor}': external data '{location}': {reason}")]
    ExternalData {
        /// Tensor name.
        tensor: String,
        /// The `location` key as written in the model.
        location: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad or unsupported declared type of a graph input, output or
    /// intermediate value.
    #[error("value '{value}': {reason}")]
    Value {
        /// Value name.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A bad node or attribute.
    #[error("node '{node}' ({op}): {reason}")]
    Node {
        /// Node name (after blank names were filled in).
        node: String,
        /// Op type.
        op: String,
        /// What is wrong.
        reason: String,
    },
    /// The graph is structurally invalid (cycle, dangling input, value
    /// produced twice).
    #[error("invalid graph: {0}")]
    Graph(#[from] IrError),
    /// Anything else wrong with the model as a whole.
    #[error("{0}")]
    Model(String),
    /// The graph cannot be written as ONNX.
    #[error("cannot export: {0}")]
    Export(String),
    /// An error inside a given model or tensor file.
    #[error("{path}: {inner}")]
    InFile {
        /// The file being read.
        path: PathBuf,
        /// The error.
        inner: Box<OnnxError>,
    },
}

impl OnnxError {
    pub(crate) fn tensor(tensor: &str, reason: impl Into<String>) -> OnnxError {
        OnnxError::Tensor {
            tensor: tensor.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn value(value: &str, reason: impl Into<String>) -> OnnxError {
        OnnxError::Value {
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, error: std::io::Error) -> OnnxError {
        OnnxError::Io {
            path: path.into(),
            error,
        }
    }

    /// Attaches the file the error happened in (once: errors that already
    /// name a file, such as external data errors wrapped by an inner call,
    /// are left alone).
    pub(crate) fn in_file(self, path: &std::path::Path) -> OnnxError {
        match self {
            e @ (OnnxError::InFile { .. } | OnnxError::Io { .. }) => e,
            e => OnnxError::InFile {
                path: path.to_path_buf(),
                inner: Box::new(e),
            },
        }
    }
}
