use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
use whittle_ir::{checked_numel, Tensor, TensorData};

use crate::{atomic_write, DataError};

/// Largest array (in elements) read from a file: 2^31.
const MAX_ELEMENTS: usize = 1 << 31;

/// Reads a `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_npy_bytes(&bytes, path)
}

/// Parses `.npy` bytes; `path` names the source in errors.
pub fn read_npy_bytes(bytes: &[u8], path: &Path) -> Result<Tensor, DataError> {
    let bad = |msg: String| DataError::Format {
        path: PathBuf::from(path),
        msg,
    };
    let npy = npyz::NpyFile::new(bytes).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    if npy.order() == npyz::Order::Fortran {
        return Err(bad(
            "Fortran-ordered arrays are not supported; save with np.ascontiguousarray".into(),
        ));
    }
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d} is too large"))))
        .collect::<Result<_, _>>()?;
    let numel = checked_numel(&shape)
        .filter(|&n| n <= MAX_ELEMENTS)
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let descr = match npy.dtype() {
        npyz::DType::Plain(ts) => ts.to_string(),
        other => return Err(bad(format!("unsupported dtype {}", other.descr()))),
    };
    // Byte order is handled by npyz; match on kind and size only.
    let kind = descr.trim_start_matches(['<', '>', '|', '=']);
    let conv = |e: std::io::Error| bad(format!("bad data: {e}"));
    let data = match kind {
        "f4" => TensorData::F32(npy.into_vec::<f32>().map_err(conv)?),
        "f8" => TensorData::F64(npy.into_vec::<f64>().map_err(conv)?),
        "i8" => TensorData::I64(npy.into_vec::<i64>().map_err(conv)?),
        "i4" => TensorData::I32(npy.into_vec::<i32>().map_err(conv)?),
        "i2" => TensorData::I16(npy.into_vec::<i16>().map_err(conv)?),
        "i1" => TensorData::I8(npy.into_vec::<i8>().map_err(conv)?),
        "u1" => TensorData::U8(npy.into_vec::<u8>().map_err(conv)?),
        "u2" => TensorData::U16(npy.into_vec::<u16>().map_err(conv)?),
        "u4" => TensorData::U32(npy.into_vec::<u32>().map_err(conv)?),
        "u8" => TensorData::U64(npy.into_vec::<u64>().map_err(conv)?),
        "b1" => TensorData::Bool(
            npy.into_vec::<bool>()
                .map_err(conv)?
                .into_iter()
                .map(u8::from)
                .collect(),
        ),
        other => return Err(bad(format!("unsupported dtype '{other}'"))),
    };
    if data.len() != numel {
        return Err(bad(format!(
            "has {} elements but its shape {shape:?} needs {numel}",
            data.len()
        )));
    }
    Tensor::new(shape, data).map_err(|e| bad(e.to_string()))
}

fn encode<T: npyz::Serialize + npyz::AutoSerialize + Copy>(
    shape: &[u64],
    values: &[T],
) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut w = npyz::WriteOptions::<T>::new()
        .default_dtype()
        .shape(shape)
        .writer(&mut buf)
        .begin_nd()?;
    w.extend(values.iter().copied())?;
    w.finish()?;
    Ok(buf)
}

/// Encodes a tensor as `.npy` bytes.
pub fn npy_bytes(t: &Tensor) -> Result<Vec<u8>, DataError> {
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    let io = |source| DataError::Io {
        path: PathBuf::from("<npy>"),
        source,
    };
    match t.data() {
        TensorData::F32(v) => encode(&shape, v),
        TensorData::F64(v) => encode(&shape, v),
        TensorData::I64(v) => encode(&shape, v),
        TensorData::I32(v) => encode(&shape, v),
        TensorData::I16(v) => encode(&shape, v),
        // numpy has no 4-bit type: 4-bit values are written widened.
        TensorData::I8(v) | TensorData::I4(v) => encode(&shape, v),
        TensorData::U8(v) | TensorData::U4(v) => encode(&shape, v),
        TensorData::U16(v) => encode(&shape, v),
        TensorData::U32(v) => encode(&shape, v),
        TensorData::U64(v) => encode(&shape, v),
        TensorData::Bool(v) => {
            let b: Vec<bool> = v.iter().map(|&x| x != 0).collect();
            encode(&shape, &b)
        }
        TensorData::F16(_) | TensorData::BF16(_) => {
            return Err(DataError::Format {
                path: PathBuf::from("<npy>"),
                msg: format!("writing {} arrays is not supported", t.dtype()),
            })
        }
    }
    .map_err(io)
}

/// Writes a tensor to a `.npy` file atomically.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), DataError> {
    let bytes = npy_bytes(t).map_err(|e| match e {
        DataError::Format { msg, .. } => DataError::Format {
            path: path.to_path_buf(),
            msg,
        },
        DataError::Io { source, .. } => DataError::Io {
            path: path.to_path_buf(),
            source,
        },
        DataError::Mismatch { msg, .. } => DataError::Mismatch {
            path: path.to_path_buf(),
            msg,
        },
    })?;
    atomic_write(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dtypes() {
        let ts = [
            Tensor::from_f32(vec![2, 3], vec![1.0, -2.5, 3.0, 0.0, 1e-7, 9.0]).unwrap(),
            Tensor::from_i64(vec![3], vec![-1, 0, i64::MAX]).unwrap(),
            Tensor::new(vec![2], TensorData::Bool(vec![1, 0])).unwrap(),
            Tensor::new(vec![], TensorData::U8(vec![7])).unwrap(),
        ];
        for t in ts {
            let bytes = npy_bytes(&t).unwrap();
            let back = read_npy_bytes(&bytes, Path::new("mem")).unwrap();
            assert_eq!(back, t);
        }
    }

    #[test]
    fn rejects_garbage_and_truncation() {
        let t = Tensor::from_f32(vec![4], vec![1.0; 4]).unwrap();
        let bytes = npy_bytes(&t).unwrap();
        for cut in [0, 5, 20, bytes.len() - 1] {
            assert!(
                read_npy_bytes(&bytes[..cut], Path::new("x.npy")).is_err(),
                "cut {cut}"
            );
        }
        assert!(read_npy_bytes(b"hello world, not numpy", Path::new("x.npy")).is_err());
    }

    #[test]
    fn write_is_atomic_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.npy");
        let t = Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap();
        write_npy(&path, &t).unwrap();
        assert_eq!(read_npy(&path).unwrap(), t);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(write_npy(&dir.path().join("missing/dir/out.npy"), &t).is_err());
    }
}
