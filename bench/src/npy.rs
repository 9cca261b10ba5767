//! Reading the `.npy` inputs and outputs the harness exchanges with Python.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// A dense little-endian f32 array read from a `.npy` file.
#[derive(Clone, Debug)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<f32>,
}

/// Reads an f32 `.npy` file (C order).
pub fn read_f32(path: &Path) -> Result<Array> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a .npy file", path.display()))?;
    if npy.order() != npyz::Order::C {
        bail!("{}: Fortran-order arrays are not supported", path.display());
    }
    let shape = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: dimension too large", path.display()))?;
    let data: Vec<f32> = npy
        .into_vec()
        .with_context(|| format!("{}: expected float32 data", path.display()))?;
    if data.len() != shape.iter().product::<usize>() {
        bail!(
            "{}: {} elements do not fill shape {:?}",
            path.display(),
            data.len(),
            shape
        );
    }
    Ok(Array { shape, data })
}
