//! onnxruntime under test, through `bench/ort_bench.py` in a subprocess
//! (there is no onnxruntime crate here; the Python wheel is the reference
//! build users have).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

/// What `ort_bench.py --json` prints (the fields the harness uses).
#[derive(Debug, Deserialize)]
struct OrtJson {
    version: String,
    times_ms: Vec<f64>,
}

/// How to call the script.
#[derive(Clone, Debug)]
pub struct OrtCommand {
    /// Python interpreter.
    pub python: String,
    /// Path of `ort_bench.py`.
    pub script: PathBuf,
}

/// One subprocess run's result.
pub struct OrtRun {
    /// onnxruntime version the script reported.
    pub version: String,
    /// Timed iterations, in milliseconds.
    pub times_ms: Vec<f64>,
}

impl OrtCommand {
    /// Runs `iters` timed iterations after `warmup` in a fresh session on
    /// `threads` threads; writes the first output to `save_output` if given.
    pub fn run(
        &self,
        model: &Path,
        input: &Path,
        threads: usize,
        iters: usize,
        warmup: usize,
        save_output: Option<&Path>,
    ) -> Result<OrtRun, String> {
        let mut cmd = Command::new(&self.python);
        cmd.arg(&self.script)
            .arg(model)
            .arg(input)
            .args(["--threads", &threads.to_string()])
            .args(["--iters", &iters.to_string()])
            .args(["--warmup", &warmup.to_string()])
            .arg("--json");
        if let Some(out) = save_output {
            cmd.arg("--save-output").arg(out);
        }
        let out = cmd
            .output()
            .map_err(|e| format!("cannot start {}: {e}", self.python))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(format!("ort_bench.py failed ({}): {last}", out.status));
        }
        let parsed: OrtJson = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("ort_bench.py printed no valid JSON: {e}"))?;
        Ok(OrtRun {
            version: parsed.version,
            times_ms: parsed.times_ms,
        })
    }
}
