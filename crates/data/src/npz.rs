//! `.npz` archives (as written by `numpy.savez`/`savez_compressed`) holding
//! a sample array `x` and a label array `y`.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use whittle_ir::{Tensor, TensorData};

use crate::limits::{read_to_end_limited, MAX_DATA_BYTES};
use crate::{read_npy_bytes, DataError};

/// Reads array `name` (`name.npy` inside the archive).
fn read_member(
    zip: &mut zip::ZipArchive<BufReader<File>>,
    name: &str,
    path: &Path,
) -> Result<Tensor, DataError> {
    let member = format!("{name}.npy");
    let mut entry = zip.by_name(&member).map_err(|e| match e {
        zip::result::ZipError::FileNotFound => DataError::format(
            path,
            format!("has no array '{name}' (it needs 'x' and 'y')"),
        ),
        other => DataError::format(path, format!("cannot read '{member}': {other}")),
    })?;
    if entry.size() > MAX_DATA_BYTES {
        return Err(DataError::format(
            path,
            format!("array '{name}' is over the {MAX_DATA_BYTES}-byte limit"),
        ));
    }
    // The declared size is not trusted: the read is capped as well.
    let bytes = read_to_end_limited(&mut entry, MAX_DATA_BYTES, path, &format!("array '{name}'"))?;
    read_npy_bytes(&bytes, path).map_err(|e| match e {
        DataError::Format { path, msg } => DataError::Format {
            path,
            msg: format!("array '{name}': {msg}"),
        },
        other => other,
    })
}

/// Samples and labels read from a `.npz`.
pub(crate) struct NpzData {
    pub x: Tensor,
    pub labels: Vec<u32>,
}

/// Reads `x` (any numeric dtype, first dim = samples) and `y` (integer
/// labels, shape `[N]` or `[N, 1]`).
pub(crate) fn read_npz(path: &Path) -> Result<NpzData, DataError> {
    let file = File::open(path).map_err(DataError::io(path))?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| DataError::format(path, format!("not a .npz (zip) archive: {e}")))?;
    let x = read_member(&mut zip, "x", path)?;
    let y = read_member(&mut zip, "y", path)?;
    if x.rank() < 2 {
        return Err(DataError::format(
            path,
            format!(
                "x has shape {:?}: it needs a sample dim and at least one more",
                x.shape()
            ),
        ));
    }
    if matches!(x.data(), TensorData::Bool(_)) {
        return Err(DataError::format(path, "x holds booleans, not numbers"));
    }
    let n = x.shape()[0];
    let y_ok = match y.shape() {
        [m] | [m, 1] => *m == n,
        _ => false,
    };
    if !y_ok {
        return Err(DataError::format(
            path,
            format!(
                "y has shape {:?} but x has {n} samples (y must be [{n}] or [{n}, 1])",
                y.shape()
            ),
        ));
    }
    let raw = match y.data() {
        TensorData::F32(_)
        | TensorData::F64(_)
        | TensorData::F16(_)
        | TensorData::BF16(_)
        | TensorData::Bool(_) => {
            return Err(DataError::format(
                path,
                format!("y must hold integer class labels, not {}", y.dtype()),
            ))
        }
        _ => y
            .to_i64_vec()
            .map_err(|e| DataError::format(path, format!("y: {e}")))?,
    };
    let labels = labels_from_i64(&raw, path, "y")?;
    Ok(NpzData { x, labels })
}

/// Most classes a dataset may have (labels are below this).
const MAX_CLASSES: i64 = 1 << 20;

/// Checks labels are in 0..MAX_CLASSES and narrows them.
pub(crate) fn labels_from_i64(raw: &[i64], path: &Path, what: &str) -> Result<Vec<u32>, DataError> {
    raw.iter()
        .enumerate()
        .map(|(i, &v)| {
            if (0..MAX_CLASSES).contains(&v) {
                Ok(v as u32)
            } else {
                Err(DataError::format(
                    path,
                    format!("{what}[{i}] = {v} is not a class index (0..{MAX_CLASSES})"),
                ))
            }
        })
        .collect()
}
