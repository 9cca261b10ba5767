use std::path::PathBuf;

/// Why a model could not be quantized.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    /// The model has no Conv, Gemm or MatMul with constant float weights.
    #[error("nothing to quantize: {0}")]
    NothingToQuantize(String),
    /// The calibration data does not fit the model input.
    #[error("calibration data {source_path}: model input '{input}' wants {want} but the samples are {got}")]
    CalibrationMismatch {
        /// The dataset file or folder.
        source_path: PathBuf,
        /// The graph input fed.
        input: String,
        /// What the model wants (dtype and shape).
        want: String,
        /// What the data holds.
        got: String,
    },
    /// A weight or an activation holds NaN or infinity.
    #[error("tensor '{tensor}' holds {what}{context}")]
    NonFinite {
        /// The tensor (initializer or activation) name.
        tensor: String,
        /// "NaN" or "infinity".
        what: &'static str,
        /// Where it was seen (node, sample).
        context: String,
    },
    /// The model cannot be quantized as it is (unsupported structure or
    /// options).
    #[error("{0}")]
    Unsupported(String),
    /// `--size-budget` cannot be met.
    #[error("size budget of {budget} bytes cannot be met: {detail}")]
    Budget {
        /// Requested budget in bytes.
        budget: usize,
        /// Smallest reachable size and why.
        detail: String,
    },
    /// Bad options.
    #[error("{0}")]
    Options(String),
    /// Compiling or running the model failed.
    #[error("{context}: {msg}")]
    Runtime {
        /// What was being done.
        context: String,
        /// The runtime's error.
        msg: String,
    },
    /// A dataset error.
    #[error(transparent)]
    Data(#[from] whittle_data::DataError),
    /// An IR error.
    #[error(transparent)]
    Ir(#[from] whittle_ir::IrError),
}

impl CompressError {
    pub(crate) fn runtime(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        CompressError::Runtime {
            context: context.into(),
            msg: err.to_string(),
        }
    }
}
