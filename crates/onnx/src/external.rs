//! Tensor data stored outside the model file (`data_location = EXTERNAL`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use crate::proto::TensorProto;
use crate::OnnxError;

/// A validated byte range of an external data file.
pub(crate) struct ExternalSource {
    file: File,
    path: PathBuf,
    location: String,
    tensor: String,
    offset: u64,
}

impl ExternalSource {
    /// Fills `dst` (exactly the validated length) from the file.
    pub(crate) fn read_into(mut self, dst: &mut [u8]) -> Result<(), OnnxError> {
        self.file
            .seek(SeekFrom::Start(self.offset))
            .and_then(|_| self.file.read_exact(dst))
            .map_err(|e| OnnxError::ExternalData {
                tensor: self.tensor.clone(),
                location: self.location.clone(),
                reason: format!("reading {}: {e}", self.path.display()),
            })
    }
}

/// Resolves and checks the external data of `proto`: the location must be
/// a relative path that stays inside `base_dir` (after following symlinks),
/// and `offset + length` must lie within the file, with `length` equal to
/// the `nbytes` the tensor's shape needs. Nothing is allocated from the
/// declared sizes.
pub(crate) fn open_external(
    proto: &TensorProto,
    tensor: &str,
    nbytes: u64,
    base_dir: Option<&Path>,
) -> Result<ExternalSource, OnnxError> {
    let mut location = None;
    let mut offset = None;
    let mut length = None;
    for entry in &proto.external_data {
        match entry.key() {
            "location" => location = Some(entry.value()),
            "offset" => offset = Some(entry.value()),
            "length" => length = Some(entry.value()),
            // "checksum" and unknown keys do not affect where data is.
            _ => {}
        }
    }
    let location = location.unwrap_or("");
    let err = |reason: String| OnnxError::ExternalData {
        tensor: tensor.to_string(),
        location: location.to_string(),
        reason,
    };
    if location.is_empty() {
        return Err(err("the 'location' key is missing or empty".into()));
    }
    let base_dir = base_dir.ok_or_else(|| {
        err("external data needs the model's directory (load the model from a file)".into())
    })?;
    let rel = Path::new(location);
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(err("'..' may not leave the model directory".into()))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(err("absolute paths are not allowed".into()))
            }
        }
    }
    let path = base_dir.join(rel);
    // Symlinks inside the model directory could still point outside it.
    let real = path
        .canonicalize()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    let real_base = base_dir
        .canonicalize()
        .map_err(|e| err(format!("{}: {e}", base_dir.display())))?;
    if !real.starts_with(&real_base) {
        return Err(err(format!(
            "resolves to {}, outside the model directory",
            real.display()
        )));
    }
    let file = File::open(&real).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(err("not a regular file".into()));
    }
    let file_len = meta.len();
    let parse = |key: &str, v: Option<&str>| -> Result<Option<u64>, OnnxError> {
        v.map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| err(format!("'{key}' is not a non-negative integer: '{s}'")))
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    if offset > file_len {
        return Err(err(format!(
            "offset {offset} is past the end of the {file_len}-byte file"
        )));
    }
    let length = parse("length", length)?.unwrap_or(file_len - offset);
    let end = offset.checked_add(length).filter(|&e| e <= file_len);
    if end.is_none() {
        return Err(err(format!(
            "offset {offset} + length {length} is past the end of the {file_len}-byte file"
        )));
    }
    if length != nbytes {
        return Err(err(format!(
            "length {length} does not match the {nbytes} bytes the tensor's shape and type need"
        )));
    }
    Ok(ExternalSource {
        file,
        path,
        location: location.to_string(),
        tensor: tensor.to_string(),
        offset,
    })
}
