//! Helpers shared by the CLI's end-to-end tests. Each test binary uses a
//! different subset, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where `scripts/test.sh` has Debian's `dataset-fashion-mnist` install the
/// dataset.
pub const FASHION: &str = "/usr/share/datasets/fashion-mnist";

/// The `whittle` binary under test.
pub fn whittle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_whittle"))
}

/// A path relative to the repository root.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// `out`, after asserting the command succeeded (printing both streams if
/// not).
pub fn ok(out: &Output) -> &Output {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The one JSON document a successful `--json` run printed.
pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&ok(out).stdout).expect("stdout is one JSON document")
}

/// Writes an f32 IDX images file `[n, ...dims]` (`dims[0]` is n) and its
/// labels file into `dir`; returns the images file.
pub fn write_idx_f32(dir: &Path, x: &[f32], dims: &[u32], labels: &[u8]) -> PathBuf {
    let mut img = vec![0u8, 0, 0x0D, dims.len() as u8];
    for d in dims {
        img.extend_from_slice(&d.to_be_bytes());
    }
    for v in x {
        img.extend_from_slice(&v.to_be_bytes());
    }
    let mut lab = vec![0u8, 0, 0x08, 1];
    lab.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    lab.extend_from_slice(labels);
    let path = dir.join("t-images-idx3-ubyte");
    std::fs::write(&path, img).unwrap();
    std::fs::write(dir.join("t-labels-idx1-ubyte"), lab).unwrap();
    path
}
