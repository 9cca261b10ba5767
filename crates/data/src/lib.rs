//! Reading and writing the data whittle consumes and produces: NumPy `.npy`
//! arrays (model inputs and outputs). Writes are atomic: a temporary file in
//! the destination directory is renamed into place, so a failure never leaves
//! a partial file.

mod npy;

pub use npy::{npy_bytes, read_npy, read_npy_bytes, write_npy};

use std::path::PathBuf;

/// Errors reading or writing data files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not valid for its format.
    #[error("{path}: {msg}")]
    Format { path: PathBuf, msg: String },
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
