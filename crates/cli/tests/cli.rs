//! The `whittle` binary end to end: inspect, run, bench and their errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn whittle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_whittle"))
}

fn fixture(name: &str, file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .join(file)
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
}

#[test]
fn inspect_json_reports_kernels_and_memory() {
    let out = whittle()
        .arg("inspect")
        .arg(fixture("resnet_small", "model.onnx"))
        .arg("--json")
        .output()
        .unwrap();
    let doc = json(&out);
    let nodes = doc["nodes"].as_array().unwrap();
    assert!(nodes
        .iter()
        .any(|n| n["op"] == "Conv" && n["kernel"].as_str().unwrap().contains("relu")));
    let totals = &doc["totals"];
    let arena = totals["arena_bytes"].as_u64().unwrap();
    let bound = totals["arena_lower_bound"].as_u64().unwrap();
    let naive = totals["naive_activation_bytes"].as_u64().unwrap();
    assert!(bound <= arena && arena < naive, "{totals}");
    assert!(totals["macs"].as_u64().unwrap() > 1_000_000);
    // BatchNorm was folded, so no BatchNormalization node is scheduled.
    assert!(nodes.iter().all(|n| n["op"] != "BatchNormalization"));
}

#[test]
fn run_writes_outputs_matching_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let out = whittle()
        .arg("run")
        .arg(fixture("lenet", "model.onnx"))
        .arg("--input")
        .arg(fixture("lenet", "input_0.npy"))
        .arg("--output-dir")
        .arg(dir.path())
        .arg("--json")
        .output()
        .unwrap();
    let doc = json(&out);
    let file = doc[0]["file"].as_str().unwrap();
    let got = whittle::data::read_npy(Path::new(file)).unwrap();
    let want = whittle::data::read_npy(&fixture("lenet", "output_0.npy")).unwrap();
    for (g, w) in got.to_f64_vec().iter().zip(want.to_f64_vec()) {
        assert!((g - w).abs() <= 1e-4, "{g} vs {w}");
    }
}

#[test]
fn bench_json_has_latency_and_memory() {
    let out = whittle()
        .args([
            "bench",
            "--iters",
            "5",
            "--warmup",
            "1",
            "--json",
            "--threads",
            "2",
        ])
        .arg(fixture("dscnn_kws", "model.onnx"))
        .output()
        .unwrap();
    let doc = json(&out);
    let (p10, med, p90) = (
        doc["p10_ms"].as_f64().unwrap(),
        doc["median_ms"].as_f64().unwrap(),
        doc["p90_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < p10 && p10 <= med && med <= p90);
    assert_eq!(doc["threads"], 2);
    assert!(doc["arena_bytes"].as_u64().unwrap() >= doc["arena_lower_bound"].as_u64().unwrap());
}

#[test]
fn bad_inputs_fail_with_a_message_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    // Not a model.
    let out = whittle()
        .arg("inspect")
        .arg("/etc/hostname")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot import"));
    // An input of the wrong shape: nothing is written.
    let out = whittle()
        .arg("run")
        .arg(fixture("lenet", "model.onnx"))
        .arg("--input")
        .arg(fixture("mlp_dynamic", "input_0.npy"))
        .arg("--output-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A symbolic input without --input-shape names the flag.
    let out = whittle()
        .arg("inspect")
        .arg(fixture("mlp_dynamic", "model.onnx"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--input-shape input="));
}

#[test]
fn closed_stdout_is_not_a_panic() {
    let mut child = whittle()
        .arg("inspect")
        .arg(fixture("mobilenetv2_035_96", "model.onnx"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the pipe before whittle has compiled and printed anything, like
    // `| true`: its first write then fails with EPIPE.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}
