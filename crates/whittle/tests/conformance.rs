//! The ONNX backend node conformance suite (Debian package
//! `libonnx-testdata`), run against the committed list of passing cases in
//! `tests/conformance/passing.txt`. Prints passed/failed counts; fails if a
//! listed case fails. `WHITTLE_UPDATE_CONFORMANCE=1` rewrites the list.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use whittle::ir::{Tensor, TensorData};
use whittle::runtime::{compile, CompileOptions};

const SUITE: &str = "/usr/share/libonnx-testdata/data/node";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// ONNX's backend tests compare with rtol 1e-3 and atol 1e-7.
fn close(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?} != expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if got.dtype() != want.dtype() {
        return Err(format!(
            "dtype {} != expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    match (got.data(), want.data()) {
        (TensorData::F32(_), _)
        | (TensorData::F64(_), _)
        | (TensorData::F16(_), _)
        | (TensorData::BF16(_), _) => {
            let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
            for (i, (a, b)) in g.iter().zip(&w).enumerate() {
                let both_nan = a.is_nan() && b.is_nan();
                let same_inf = a.is_infinite() && a == b;
                if !(both_nan || same_inf || (a - b).abs() <= 1e-7 + 1e-3 * b.abs()) {
                    return Err(format!("element {i}: {a} != expected {b}"));
                }
            }
            Ok(())
        }
        _ => {
            if got.as_bytes() == want.as_bytes() {
                Ok(())
            } else {
                Err("integer/bool values differ".into())
            }
        }
    }
}

/// Runs one case; `Err` carries the reason.
fn run_case(dir: &Path) -> Result<(), String> {
    let graph =
        whittle::onnx::load_model(&dir.join("model.onnx")).map_err(|e| format!("import: {e}"))?;
    let data = dir.join("test_data_set_0");
    let load = |prefix: &str, n: usize| -> Result<Vec<Tensor>, String> {
        (0..n)
            .map(|i| {
                whittle::onnx::load_tensor(&data.join(format!("{prefix}_{i}.pb")))
                    .map_err(|e| format!("{prefix}_{i}: {e}"))
            })
            .collect()
    };
    let inputs = load("input", graph.inputs.len())?;
    let expected = load("output", graph.outputs.len())?;
    let mut opts = CompileOptions::default();
    for (vi, t) in graph.inputs.iter().zip(&inputs) {
        opts.input_shapes
            .insert(vi.name.clone(), t.shape().to_vec());
    }
    // Static shapes: a case that feeds a shape-like tensor as a graph input
    // (Reshape's shape, axes, pads, Resize's scales...) gets that input frozen
    // to its value, as a user would with `constant_inputs`, and is compiled
    // again. Only inputs a node names as "must be a compile-time constant" are
    // frozen; everything else stays a run-time input.
    let mut inputs: Vec<(String, Tensor)> = graph
        .inputs
        .iter()
        .map(|v| v.name.clone())
        .zip(inputs)
        .collect();
    let mut plan = loop {
        match compile(&graph, &opts) {
            Ok(plan) => break plan,
            Err(e) => {
                let msg = e.to_string();
                let frozen = msg
                    .split_once("must be a compile-time constant")
                    .and_then(|(head, _)| head.rsplit_once("('"))
                    .and_then(|(_, tail)| tail.split_once("')"))
                    .map(|(name, _)| name.to_string());
                if let Some(pos) = frozen.and_then(|n| inputs.iter().position(|(i, _)| *i == n)) {
                    let (name, t) = inputs.remove(pos);
                    opts.constant_inputs.insert(name, t);
                    continue;
                }
                // The constant is computed from inputs: freeze the integer,
                // bool and scalar inputs it can come from.
                let shape_like = |t: &Tensor| {
                    t.dtype().is_integer() || t.dtype() == whittle::DType::Bool || t.numel() <= 1
                };
                if !msg.contains("must be a compile-time constant")
                    || !inputs.iter().any(|(_, t)| shape_like(t))
                {
                    return Err(format!("compile: {msg}"));
                }
                let (freeze, keep): (Vec<_>, Vec<_>) =
                    inputs.into_iter().partition(|(_, t)| shape_like(t));
                inputs = keep;
                opts.constant_inputs.extend(freeze);
            }
        }
    };
    let runtime_inputs: Vec<Tensor> = inputs.into_iter().map(|(_, t)| t).collect();
    let outputs = plan.run(&runtime_inputs).map_err(|e| format!("run: {e}"))?;
    for (i, (g, w)) in outputs.iter().zip(&expected).enumerate() {
        close(g, w).map_err(|e| format!("output {i}: {e}"))?;
    }
    Ok(())
}

#[test]
fn onnx_node_conformance() {
    let suite = Path::new(SUITE);
    if !suite.is_dir() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SUITE} is missing: the test command installs libonnx-testdata"
        );
        eprintln!("skipping: {SUITE} not installed (apt-get install libonnx-testdata)");
        return;
    }
    let list_path = repo_root().join("tests/conformance/passing.txt");
    let listed: BTreeSet<String> = std::fs::read_to_string(&list_path)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(suite)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    cases.sort();
    let mut passed = BTreeSet::new();
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let result = std::panic::catch_unwind(|| run_case(dir)).unwrap_or_else(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
            Err(format!("PANIC: {}", msg.unwrap_or_default()))
        });
        match result {
            Ok(()) => {
                passed.insert(name);
            }
            Err(e) => failures.push((name, e)),
        }
    }
    let report_path = repo_root().join("target/conformance-failures.txt");
    let report: String = failures
        .iter()
        .map(|(n, e)| format!("{n}: {e}\n"))
        .collect();
    let _ = std::fs::write(&report_path, &report);
    let panics: Vec<&(String, String)> = failures
        .iter()
        .filter(|(_, e)| e.starts_with("PANIC"))
        .collect();
    let regressions: Vec<&String> = listed.iter().filter(|n| !passed.contains(*n)).collect();
    let new: Vec<&String> = passed.iter().filter(|n| !listed.contains(*n)).collect();
    println!(
        "onnx node conformance: {} passed, {} failed of {} cases ({} listed; failures in {})",
        passed.len(),
        failures.len(),
        cases.len(),
        listed.len(),
        report_path.display()
    );
    if std::env::var_os("WHITTLE_UPDATE_CONFORMANCE").is_some() {
        let mut text =
            String::from("# ONNX backend node cases whittle passes; see docs/CONFORMANCE.md.\n");
        passed.iter().for_each(|n| {
            text.push_str(n);
            text.push('\n');
        });
        std::fs::write(&list_path, text).unwrap();
        println!("wrote {} cases to {}", passed.len(), list_path.display());
    } else if !new.is_empty() {
        println!(
            "{} cases pass but are not listed (WHITTLE_UPDATE_CONFORMANCE=1 adds them)",
            new.len()
        );
    }
    for (n, e) in &panics {
        println!("panic in {n}: {e}");
    }
    for n in &regressions {
        let why = failures
            .iter()
            .find(|(f, _)| f == *n)
            .map(|(_, e)| e.as_str())
            .unwrap_or("");
        println!("REGRESSION {n}: {why}");
    }
    assert!(panics.is_empty(), "{} cases panicked", panics.len());
    assert!(
        regressions.is_empty(),
        "{} listed cases fail",
        regressions.len()
    );
}
