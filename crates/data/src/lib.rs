//! Reading and writing the data whittle consumes and produces.
//!
//! * NumPy `.npy` arrays: model inputs and outputs ([`read_npy`], [`write_npy`]).
//! * Labelled datasets for `eval`, calibration and training ([`open_dataset`]):
//!   IDX files (the MNIST format, plain or gzipped), `.npz` archives with
//!   arrays `x` and `y`, and folders of images per class (`DIR/<class>/*.png`).
//!   A [`Dataset`] turns samples into model-input batches (NCHW f32) with a
//!   [`Preprocess`] spec.
//! * [`Metrics`]: top-1/top-5 accuracy and a confusion matrix from scores.
//!
//! Every reader treats files as untrusted: sizes from headers are checked
//! against limits before anything is allocated, and bad files give a
//! [`DataError`] naming the file, never a panic. Writes are atomic: a
//! temporary file in the destination directory is renamed into place, so a
//! failure never leaves a partial file.
//!
//! ```no_run
//! use whittle_data::{open_dataset, Metrics, Preprocess};
//!
//! # fn main() -> Result<(), whittle_data::DataError> {
//! let mut ds = open_dataset("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")?;
//! ds.truncate(1000);
//! // Checks the samples fit a [batch, 1, 28, 28] input; pixels / 255.
//! let spec = ds.input_spec(&[1, 28, 28], &Preprocess::default())?;
//! let mut metrics = Metrics::new(10);
//! for batch in ds.batches(&spec, 64) {
//!     let batch = batch?; // batch.x: f32 [n, 1, 28, 28]
//!     for &label in &batch.labels {
//!         let scores = [0.0f32; 10]; // a model's output row goes here
//!         metrics.add(&scores, label as usize);
//!     }
//! }
//! println!("top-1 {:.2}%", 100.0 * metrics.top1());
//! # Ok(())
//! # }
//! ```

mod dataset;
mod folder;
mod idx;
mod limits;
mod metrics;
mod npy;
mod npz;

pub use dataset::{open_dataset, Batch, Dataset, DatasetFormat, InputSpec, Preprocess};
pub use idx::{find_idx_pair, read_idx, IdxArray};
pub use limits::{MAX_DATA_BYTES, MAX_IMAGE_SIDE};
pub use metrics::Metrics;
pub use npy::{npy_bytes, read_npy, read_npy_bytes, write_npy};

use std::path::PathBuf;

/// Errors reading or writing data files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid for its format.
    #[error("{path}: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// The data is valid but does not fit what it is used for (a model
    /// input's shape, a preprocessing spec).
    #[error("{path}: {msg}")]
    Mismatch {
        /// The dataset.
        path: PathBuf,
        /// What does not fit.
        msg: String,
    },
}

impl DataError {
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn format(path: &std::path::Path, msg: impl Into<String>) -> DataError {
        DataError::Format {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }

    pub(crate) fn mismatch(path: &std::path::Path, msg: impl Into<String>) -> DataError {
        DataError::Mismatch {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

/// Writes `bytes` to `path` atomically (temp file in the same directory,
/// flushed, then renamed over the destination).
pub fn atomic_write(path: &std::path::Path, bytes: &[u8]) -> Result<(), DataError> {
    use std::io::Write;
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}
