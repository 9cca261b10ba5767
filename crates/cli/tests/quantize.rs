//! `whittle quantize` end to end: accuracy on Fashion-MNIST, and every bad
//! input it must refuse with a clear error and no file left behind.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use whittle::ir::{Graph, Node, ValueInfo};
use whittle::{DType, Tensor};

/// A Conv(1->2, 1x1) -> Relu -> Flatten -> Gemm(2*4*4 -> 3) model on
/// [1, 1, 4, 4] inputs, saved to `dir/name`.
fn tiny_model(dir: &Path, name: &str, weight_nan: bool, input_dtype: DType) -> PathBuf {
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", input_dtype, &[1, 1, 4, 4])],
        outputs: vec![ValueInfo::known("y", DType::F32, &[1, 3])],
        nodes: vec![
            Node::new("conv", "Conv", &["x", "w", "b"], &["c"]),
            Node::new("relu", "Relu", &["c"], &["r"]),
            Node::new("flat", "Flatten", &["r"], &["f"]),
            Node::new("fc", "Gemm", &["f", "fw", "fb"], &["y"]),
        ],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    let mut w = vec![0.5, -1.5];
    if weight_nan {
        w[1] = f32::NAN;
    }
    g.initializers
        .insert("w".into(), Tensor::from_f32(vec![2, 1, 1, 1], w).unwrap());
    g.initializers.insert(
        "b".into(),
        Tensor::from_f32(vec![2], vec![0.1, 0.2]).unwrap(),
    );
    let fw: Vec<f32> = (0..32 * 3)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 10.0)
        .collect();
    g.initializers
        .insert("fw".into(), Tensor::from_f32(vec![32, 3], fw).unwrap());
    g.initializers.insert(
        "fb".into(),
        Tensor::from_f32(vec![3], vec![0.0; 3]).unwrap(),
    );
    let path = dir.join(name);
    whittle::onnx::save_model(&g, &path).unwrap();
    path
}

/// Calibration data fitting `tiny_model`: 8 samples of [4, 4].
fn tiny_data(dir: &Path, poison: Option<f32>) -> PathBuf {
    let mut x: Vec<f32> = (0..8 * 16).map(|i| (i % 13) as f32 / 13.0).collect();
    if let Some(p) = poison {
        x[20] = p;
    }
    write_idx_f32(dir, &x, &[8, 4, 4], &[0, 1, 2, 0, 1, 2, 0, 1])
}

/// Runs quantize expecting failure; returns stderr and checks that the
/// output directory holds nothing new.
fn fails(dir: &Path, model: &Path, calib: &Path, extra: &[&str]) -> String {
    let out_dir = dir.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = whittle()
        .arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out_dir.join("q.onnx"))
        .arg("--calib")
        .arg(calib)
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "quantize should fail");
    let left: Vec<_> = std::fs::read_dir(&out_dir).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn tiny_model_quantizes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", false, DType::F32);
    let data = tiny_data(dir.path(), None);
    let q = dir.path().join("q.onnx");
    let out = whittle()
        .arg("quantize")
        .arg(&model)
        .arg("-o")
        .arg(&q)
        .arg("--calib")
        .arg(&data)
        .arg("--json")
        .output()
        .unwrap();
    let doc = json(&out);
    let g = whittle::load(&q).unwrap().graph().clone();
    let ops: Vec<&str> = g.nodes.iter().map(|n| n.op_type.as_str()).collect();
    assert!(
        ops.contains(&"QuantizeLinear") && ops.contains(&"DequantizeLinear"),
        "{ops:?}"
    );
    // Relu shares the conv's Q: nothing quantizes the raw conv output.
    let conv = g.nodes.iter().find(|n| n.op_type == "Conv").unwrap();
    let relu = g.nodes.iter().find(|n| n.op_type == "Relu").unwrap();
    assert_eq!(relu.inputs[0], conv.outputs[0]);
    assert!(g
        .nodes
        .iter()
        .all(|n| n.op_type != "QuantizeLinear" || n.inputs[0] != conv.outputs[0]));
    // The graph output keeps its name, produced by a DequantizeLinear.
    let y = g.nodes.iter().find(|n| n.outputs[0] == "y").unwrap();
    assert_eq!(y.op_type, "DequantizeLinear");
    assert_eq!(g.opset(), 13);
    let nodes = doc["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}"); // conv, flatten, gemm
    assert!(doc["weight_bytes_after"].as_u64() < doc["weight_bytes_before"].as_u64());
    assert!(
        doc["output_sqnr_db"][0][1].as_f64().unwrap() > 20.0,
        "{doc}"
    );
}

#[test]
fn wrong_shape_calibration_names_input_and_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", false, DType::F32);
    let x = vec![0.5f32; 4 * 5 * 5];
    let data = write_idx_f32(dir.path(), &x, &[4, 5, 5], &[0, 1, 2, 0]);
    let err = fails(dir.path(), &model, &data, &[]);
    assert!(
        err.contains("'x'") && err.contains("[1, 4, 4]") && err.contains("[1, 5, 5]"),
        "{err}"
    );
}

#[test]
fn wrong_dtype_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", false, DType::I64);
    let data = tiny_data(dir.path(), None);
    let err = fails(dir.path(), &model, &data, &[]);
    assert!(
        err.contains("'x'") && err.contains("i64") && err.contains("f32"),
        "{err}"
    );
}

#[test]
fn nan_weight_names_the_initializer() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", true, DType::F32);
    let data = tiny_data(dir.path(), None);
    let err = fails(dir.path(), &model, &data, &[]);
    assert!(err.contains("'w'") && err.contains("NaN"), "{err}");
}

#[test]
fn infinite_activation_names_the_tensor_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", false, DType::F32);
    let data = tiny_data(dir.path(), Some(f32::INFINITY));
    let err = fails(dir.path(), &model, &data, &[]);
    // Sample 1 (element 20 of 16-element samples) is infinite at the input.
    assert!(
        err.contains("'x'") && err.contains("infinity") && err.contains("sample 1"),
        "{err}"
    );
}

#[test]
fn nothing_to_quantize_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, &[1, 16])],
        outputs: vec![ValueInfo::known("y", DType::F32, &[1, 16])],
        nodes: vec![Node::new("sm", "Softmax", &["x"], &["y"])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    let model = dir.path().join("sm.onnx");
    whittle::onnx::save_model(&g, &model).unwrap();
    let data = tiny_data(dir.path(), None);
    let err = fails(dir.path(), &model, &data, &[]);
    assert!(
        err.contains("nothing to quantize") && err.contains("Softmax"),
        "{err}"
    );
}

#[test]
fn unreachable_size_budget_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_model(dir.path(), "m.onnx", false, DType::F32);
    let data = tiny_data(dir.path(), None);
    let err = fails(dir.path(), &model, &data, &["--size-budget", "10"]);
    assert!(
        err.contains("budget of 10 bytes") && err.contains("smallest"),
        "{err}"
    );
    let err = fails(dir.path(), &model, &data, &["--size-budget", "lots"]);
    assert!(err.contains("bad size"), "{err}");
}

/// Acceptance: the Fashion-MNIST CNN quantized with 200 calibration
/// samples keeps top-1 on the 10k test set within 0.5 points of float.
#[test]
fn fashion_cnn_int8_keeps_accuracy() {
    let train = Path::new(FASHION).join("train-images-idx3-ubyte.gz");
    let test = Path::new(FASHION).join("t10k-images-idx3-ubyte.gz");
    if !train.exists() {
        eprintln!("skipped: {FASHION} not found (apt-get install dataset-fashion-mnist)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let q = dir.path().join("fashion_int8.onnx");
    let out = whittle()
        .arg("quantize")
        .arg(repo("tests/models/fashion_cnn.onnx"))
        .arg("-o")
        .arg(&q)
        .arg("--calib")
        .arg(&train)
        .args(["--calib-samples", "200", "--json", "--eval"])
        .arg(&test)
        // whittle compiles the QDQ model (fuse_qdq: int8 kernels where the
        // build has them, DQ -> float op -> Q elsewhere).
        .args(["--eval-path", "int8"])
        .output()
        .unwrap();
    let doc = json(&out);
    let acc = &doc["accuracy"];
    let (f, qa) = (
        acc["float_top1"].as_f64().unwrap(),
        acc["quantized_top1"].as_f64().unwrap(),
    );
    assert_eq!(acc["samples"], 10000);
    assert!(f > 0.90, "float top-1 {f}");
    assert!((f - qa).abs() <= 0.005, "float {f} vs int8 {qa}");
    assert!(q.exists());
}
