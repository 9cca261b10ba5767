//! The fixture zoo (`tests/fixtures`, made by `scripts/make_fixtures.py` from
//! PyTorch exports) against onnxruntime's reference outputs, at 1 and 2
//! threads, with and without graph simplification.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use whittle::data::read_npy;
use whittle::runtime::{compile, CompileOptions};

#[derive(Deserialize)]
struct Manifest {
    fixtures: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    inputs: Vec<Io>,
    outputs: Vec<Io>,
    tolerance: Tolerance,
}

#[derive(Deserialize)]
struct Io {
    name: String,
    file: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Tolerance {
    atol: f64,
    rtol: f64,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn check(fx: &Fixture, threads: usize, simplify: bool) -> Result<f64, String> {
    let dir = fixtures_dir().join(&fx.name);
    let graph = whittle::onnx::load_model(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    let mut opts = CompileOptions {
        threads,
        simplify,
        ..CompileOptions::default()
    };
    let mut inputs = Vec::new();
    for io in &fx.inputs {
        opts.input_shapes.insert(io.name.clone(), io.shape.clone());
        inputs.push(read_npy(&dir.join(&io.file)).map_err(|e| e.to_string())?);
    }
    let mut plan = compile(&graph, &opts).map_err(|e| e.to_string())?;
    let outs = plan.run(&inputs).map_err(|e| e.to_string())?;
    let mut worst = 0f64;
    for (io, got) in fx.outputs.iter().zip(&outs) {
        let want = read_npy(&dir.join(&io.file)).map_err(|e| e.to_string())?;
        if got.shape() != want.shape() {
            return Err(format!(
                "{}: shape {:?} != {:?}",
                io.name,
                got.shape(),
                want.shape()
            ));
        }
        for (i, (g, w)) in got.to_f64_vec().iter().zip(want.to_f64_vec()).enumerate() {
            let err = (g - w).abs();
            worst = worst.max(err);
            if err.is_nan() || err > fx.tolerance.atol + fx.tolerance.rtol * w.abs() {
                return Err(format!("{}[{i}]: {g} vs onnxruntime {w}", io.name));
            }
        }
    }
    Ok(worst)
}

#[test]
fn fixture_zoo_matches_onnxruntime() {
    let text = std::fs::read_to_string(fixtures_dir().join("manifest.json")).unwrap();
    let manifest: Manifest = serde_json::from_str(&text).unwrap();
    assert!(manifest.fixtures.len() >= 8);
    let mut failures = Vec::new();
    for fx in &manifest.fixtures {
        for (threads, simplify) in [(1, true), (2, true), (1, false)] {
            match check(fx, threads, simplify) {
                Ok(worst) => println!(
                    "{:<22} threads={threads} simplify={simplify:<5} max abs diff {worst:.2e}",
                    fx.name
                ),
                Err(e) => failures.push(format!(
                    "{} (threads={threads}, simplify={simplify}): {e}",
                    fx.name
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "fixture failures:\n{}",
        failures.join("\n")
    );
}
