//! `whittle prune` end to end. Masks are checked against numpy references
//! computed from the original weights (and, for Wanda and OBD, from the
//! calibration data); pruned files are checked by the ONNX checker, run in
//! onnxruntime and reloaded in whittle. Python checks are skipped when
//! python3 with numpy, onnx and onnxruntime is missing (CI installs them).

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use whittle::ir::{Attr, Graph, Node, ValueInfo};
use whittle::{CompileOptions, DType, Tensor};

fn has_python() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import numpy, onnx, onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!(
            "note: python3 with numpy, onnx and onnxruntime missing; skipping the python checks"
        );
    }
    ok
}

/// Shared python helpers: dense weights of a model (sparse initializers
/// expanded by hand from their linear COO indices, independently of the
/// onnx helpers) and onnxruntime inference.
const PY_LIB: &str = r#"
import sys, json
import numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper

def weights(path):
    m = onnx.load(path)
    w = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    for sp in m.graph.sparse_initializer:
        v = numpy_helper.to_array(sp.values)
        i = numpy_helper.to_array(sp.indices)
        assert i.dtype == np.int64 and i.ndim == 1 and np.all(np.diff(i) > 0)
        d = np.zeros(int(np.prod(sp.dims)), v.dtype)
        d[i] = v
        w[sp.values.name] = d.reshape(tuple(sp.dims))
    return m, w

def run_ort(path, x):
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x})[0]
"#;

/// Runs `PY_LIB + script` with `args`; panics with its stderr on failure
/// and returns stdout.
fn python(script: &str, args: &[&Path]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(format!("{PY_LIB}\n{script}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic values in [-1, 1) with distinct magnitudes.
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn init(g: &mut Graph, name: &str, shape: &[usize], seed: u64) {
    let n = shape.iter().product();
    g.initializers.insert(
        name.into(),
        Tensor::from_f32(shape.to_vec(), values(n, seed)).unwrap(),
    );
}

/// x [N, 4, 6, 6] -> Conv c1 (8x4x3x3) -> Relu -> Conv c2 (8x8x3x3) ->
/// Relu -> Flatten -> Gemm fc (10x288, transB) -> y [N, 10].
fn cnn(dir: &Path) -> PathBuf {
    let pad = || Attr::Ints(vec![1, 1, 1, 1]);
    let mut g = Graph {
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![
                whittle::ir::Dim::Symbolic("N".into()),
                whittle::ir::Dim::Known(4),
                whittle::ir::Dim::Known(6),
                whittle::ir::Dim::Known(6),
            ]),
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: Some(vec![
                whittle::ir::Dim::Symbolic("N".into()),
                whittle::ir::Dim::Known(10),
            ]),
        }],
        nodes: vec![
            Node::new("c1", "Conv", &["x", "w1", "b1"], &["a1"]).with_attr("pads", pad()),
            Node::new("relu1", "Relu", &["a1"], &["r1"]),
            Node::new("c2", "Conv", &["r1", "w2", "b2"], &["a2"]).with_attr("pads", pad()),
            Node::new("relu2", "Relu", &["a2"], &["r2"]),
            Node::new("flat", "Flatten", &["r2"], &["f"]),
            Node::new("fc", "Gemm", &["f", "wf", "bf"], &["y"]).with_attr("transB", Attr::Int(1)),
        ],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    init(&mut g, "w1", &[8, 4, 3, 3], 1);
    init(&mut g, "b1", &[8], 2);
    init(&mut g, "w2", &[8, 8, 3, 3], 3);
    init(&mut g, "b2", &[8], 4);
    init(&mut g, "wf", &[10, 288], 5);
    init(&mut g, "bf", &[10], 6);
    g.name = "cnn".into();
    let path = dir.join("cnn.onnx");
    whittle::onnx::save_model(&g, &path).unwrap();
    path
}

/// x [N, 8] -> Gemm fc1 (6x8, transB) -> Relu -> Gemm fc2 (4x6, transB)
/// -> y [N, 4].
fn mlp(dir: &Path) -> PathBuf {
    let mut g = Graph {
        name: "mlp".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![
                whittle::ir::Dim::Symbolic("N".into()),
                whittle::ir::Dim::Known(8),
            ]),
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        nodes: vec![
            Node::new("fc1", "Gemm", &["x", "w1", "b1"], &["h"]).with_attr("transB", Attr::Int(1)),
            Node::new("relu", "Relu", &["h"], &["r"]),
            Node::new("fc2", "Gemm", &["r", "w2", "b2"], &["y"]).with_attr("transB", Attr::Int(1)),
        ],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    init(&mut g, "w1", &[6, 8], 11);
    init(&mut g, "b1", &[6], 12);
    init(&mut g, "w2", &[4, 6], 13);
    init(&mut g, "b2", &[4], 14);
    let path = dir.join("mlp.onnx");
    whittle::onnx::save_model(&g, &path).unwrap();
    path
}

/// Writes an f32 IDX images file `[n, ...dims]`, its labels file, and the
/// same samples as `x.npy` / labels as `labels.npy`.
fn write_data(dir: &Path, x: &[f32], dims: &[usize], labels: &[u8]) -> PathBuf {
    let mut img = vec![0u8, 0, 0x0D, dims.len() as u8 + 1];
    img.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    for d in dims {
        img.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    for v in x {
        img.extend_from_slice(&v.to_be_bytes());
    }
    let mut lab = vec![0u8, 0, 0x08, 1];
    lab.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    lab.extend_from_slice(labels);
    let path = dir.join("d-images-idx3-ubyte");
    std::fs::write(&path, img).unwrap();
    std::fs::write(dir.join("d-labels-idx1-ubyte"), lab).unwrap();
    let mut shape = vec![labels.len()];
    shape.extend_from_slice(dims);
    whittle::data::write_npy(
        &dir.join("x.npy"),
        &Tensor::from_f32(shape, x.to_vec()).unwrap(),
    )
    .unwrap();
    whittle::data::write_npy(
        &dir.join("labels.npy"),
        &Tensor::from_i64(
            vec![labels.len()],
            labels.iter().map(|&l| i64::from(l)).collect(),
        )
        .unwrap(),
    )
    .unwrap();
    path
}

fn prune(model: &Path, out: &Path, extra: &[&str]) -> serde_json::Value {
    json(
        &whittle()
            .arg("prune")
            .arg(model)
            .arg("-o")
            .arg(out)
            .args(["--json", "--profile-iters", "2"])
            .args(extra)
            .output()
            .unwrap(),
    )
}

/// Runs `model` in whittle on `x`.
fn run_whittle(model: &Path, x: &Tensor) -> Vec<f32> {
    let m = whittle::load(model).unwrap();
    let mut opts = CompileOptions::default();
    let input = m.graph().inputs[0].name.clone();
    opts.input_shapes.insert(input, x.shape().to_vec());
    let mut plan = m.compile(&opts).unwrap();
    plan.run(std::slice::from_ref(x)).unwrap()[0].to_f32_vec()
}

/// Whittle on the sparse file, whittle on a dense copy and onnxruntime
/// agree on `x`.
fn check_outputs(dir: &Path, model: &Path, x: &Tensor) {
    let got = run_whittle(model, x);
    let g = whittle::load(model).unwrap().graph().clone();
    let dense = dir.join("dense_copy.onnx");
    whittle::onnx::save_model(&g, &dense).unwrap();
    assert_eq!(got, run_whittle(&dense, x), "sparse vs dense storage");
    if !has_python() {
        return;
    }
    let xp = dir.join("ort_x.npy");
    let yp = dir.join("ort_y.npy");
    whittle::data::write_npy(&xp, x).unwrap();
    python(
        "np.save(sys.argv[3], run_ort(sys.argv[1], np.load(sys.argv[2])))",
        &[model, &xp, &yp],
    );
    let want = whittle::data::read_npy(&yp).unwrap().to_f32_vec();
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-4 + 1e-4 * b.abs(),
            "output {i}: whittle {a} vs onnxruntime {b}"
        );
    }
}

fn layer<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["unstructured"]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["node"] == name)
        .unwrap_or_else(|| panic!("no layer {name} in {doc}"))
}

#[test]
fn magnitude_per_layer_shrinks_the_file_and_runs_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let model = cnn(dir.path());
    let out = dir.path().join("p.onnx");
    let doc = prune(&model, &out, &["--sparsity", "0.9"]);
    // The stem conv is left dense by default.
    let skipped = doc["unstructured"]["skipped"].as_array().unwrap();
    assert!(skipped.iter().any(|s| s["node"] == "c1"), "{doc}");
    let mut expected_saving = 0i64;
    for (name, numel) in [("c2", 576), ("fc", 2880)] {
        let l = layer(&doc, name);
        let nnz = l["nonzero_after"].as_i64().unwrap();
        assert_eq!(numel - nnz, (0.9f64 * numel as f64).round() as i64, "{l}");
        expected_saving += numel * 4 - nnz * 12;
    }
    let before = std::fs::metadata(&model).unwrap().len() as i64;
    let after = std::fs::metadata(&out).unwrap().len() as i64;
    let saved = before - after;
    assert!(
        (saved - expected_saving).abs() < 200,
        "file {before} -> {after}: saved {saved}, COO arithmetic says {expected_saving}"
    );
    assert_eq!(doc["totals"]["file_bytes_after"].as_i64(), Some(after));
    let rows = doc["layers"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["macs_before"].as_u64().unwrap() > 0));
    if has_python() {
        // The pruned weights are exactly the smallest 90% by |w| of each
        // layer; c1 and the biases are untouched; the file passes the checker.
        let script = r#"
onnx.checker.check_model(onnx.load(sys.argv[2]))
_, a = weights(sys.argv[1])
m, b = weights(sys.argv[2])
assert len(m.graph.sparse_initializer) == 2, len(m.graph.sparse_initializer)
for k in a:
    if k not in ("w2", "wf"):
        assert np.array_equal(a[k], b[k]), k
        continue
    w, p = np.abs(a[k]).ravel(), b[k].ravel()
    zero = p == 0
    assert zero.sum() == round(0.9 * w.size), (k, zero.sum())
    assert w[~zero].min() > w[zero].max(), k
    assert np.array_equal(p[~zero], a[k].ravel()[~zero]), k
print("ok")
"#;
        assert_eq!(python(script, &[&model, &out]).trim(), "ok");
    }
    let x = Tensor::from_f32(vec![2, 4, 6, 6], values(288, 9)).unwrap();
    check_outputs(dir.path(), &out, &x);
}

#[test]
fn two_of_four_groups_input_channels_per_tap() {
    let dir = tempfile::tempdir().unwrap();
    let model = cnn(dir.path());
    let out = dir.path().join("nm.onnx");
    let doc = prune(&model, &out, &["--nm", "2:4"]);
    assert_eq!(doc["unstructured"]["pattern"], "2:4");
    assert!((layer(&doc, "fc")["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-9);
    if has_python() {
        // Conv [O, C, kh, kw]: groups of 4 consecutive C at each (O, kh, kw);
        // Gemm [N, K]: groups of 4 consecutive K. Two largest |w| kept.
        let script = r#"
_, a = weights(sys.argv[1])
m, b = weights(sys.argv[2])
assert len(m.graph.sparse_initializer) == 0  # 50% COO is larger than dense
def check(orig, got):
    o, g = np.abs(orig), got
    for grp in range(o.shape[-1] // 4):
        ow, gw = o[..., grp*4:(grp+1)*4], g[..., grp*4:(grp+1)*4]
        keep = np.argsort(-ow, axis=-1)[..., :2]
        want = np.zeros_like(ow, dtype=bool)
        np.put_along_axis(want, keep, True, axis=-1)
        assert np.array_equal(gw != 0, want)
check(np.moveaxis(a["w2"], 1, -1), np.moveaxis(b["w2"], 1, -1))
check(a["wf"], b["wf"])
assert np.array_equal(a["w1"], b["w1"])
print("ok")
"#;
        assert_eq!(python(script, &[&model, &out]).trim(), "ok");
    }
    let x = Tensor::from_f32(vec![1, 4, 6, 6], values(144, 21)).unwrap();
    check_outputs(dir.path(), &out, &x);
}

#[test]
fn wanda_and_obd_match_numpy_references() {
    if !has_python() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = mlp(dir.path());
    // Input channels with very different scales, so Wanda differs from
    // magnitude.
    let x: Vec<f32> = values(16 * 8, 31)
        .iter()
        .enumerate()
        .map(|(i, v)| v * (1 + i % 8) as f32)
        .collect();
    let labels: Vec<u8> = (0..16).map(|i| (i * 7 % 4) as u8).collect();
    let data = write_data(dir.path(), &x, &[8], &labels);
    let wanda = dir.path().join("wanda.onnx");
    let obd = dir.path().join("obd.onnx");
    let mag = dir.path().join("mag.onnx");
    for (out, crit) in [(&wanda, "wanda"), (&obd, "obd"), (&mag, "magnitude")] {
        let mut args = vec!["--sparsity", "0.5", "--criterion", crit, "--calib"];
        let d = data.to_str().unwrap();
        args.push(d);
        let doc = prune(&model, out, &args);
        let want = if crit == "magnitude" { 0 } else { 16 };
        assert_eq!(doc["unstructured"]["calibration_samples"], want);
    }
    let script = r#"
_, a = weights(sys.argv[1])
W1, b1, W2, b2 = (a[k].astype(np.float64) for k in ("w1", "b1", "w2", "b2"))
X = np.load(sys.argv[5]).astype(np.float64)
y = np.load(sys.argv[6])
def masks(path):
    w = weights(path)[1]
    return w["w1"] == 0, w["w2"] == 0
pre = X @ W1.T + b1
H = np.maximum(pre, 0)
# Wanda: |W| * ||X_j|| of each layer's input, half of each output row pruned.
def wanda(W, inp):
    s = np.abs(W) * np.sqrt((inp ** 2).sum(axis=0))[None, :]
    m = np.zeros_like(W, dtype=bool)
    np.put_along_axis(m, np.argsort(s, axis=1)[:, :W.shape[1] // 2], True, axis=1)
    return m
got = masks(sys.argv[2])
assert np.array_equal(got[0], wanda(W1, X)), ("wanda fc1", got[0])
assert np.array_equal(got[1], wanda(W2, H)), ("wanda fc2", got[1])
# OBD: 1/2 F w^2, F the mean over samples of the squared per-sample
# gradient of the softmax cross-entropy; half of each layer pruned.
z = H @ W2.T + b2
p = np.exp(z - z.max(axis=1, keepdims=True)); p /= p.sum(axis=1, keepdims=True)
e = p - np.eye(4)[y]
g2 = e[:, :, None] * H[:, None, :]
g1 = ((e @ W2) * (pre > 0))[:, :, None] * X[:, None, :]
def obd(W, g):
    sal = (0.5 * np.mean(g ** 2, axis=0) * W ** 2).ravel()
    m = np.zeros(W.size, dtype=bool); m[np.argsort(sal)[:W.size // 2]] = True
    return m.reshape(W.shape)
got = masks(sys.argv[3])
assert np.array_equal(got[0], obd(W1, g1)), ("obd fc1", got[0], obd(W1, g1))
assert np.array_equal(got[1], obd(W2, g2)), ("obd fc2", got[1], obd(W2, g2))
# Both differ from plain magnitude here, or the test proves nothing.
mag = masks(sys.argv[4])
assert not np.array_equal(masks(sys.argv[2])[0], mag[0])
assert not np.array_equal(masks(sys.argv[3])[0], mag[0])
print("ok")
"#;
    let xs = dir.path().join("x.npy");
    let ys = dir.path().join("labels.npy");
    assert_eq!(
        python(script, &[&model, &wanda, &obd, &mag, &xs, &ys]).trim(),
        "ok"
    );
}

#[test]
fn global_scope_and_named_layers() {
    let dir = tempfile::tempdir().unwrap();
    let model = cnn(dir.path());
    let out = dir.path().join("g.onnx");
    let doc = prune(
        &model,
        &out,
        &[
            "--sparsity",
            "0.8",
            "--scope",
            "global",
            "--layer",
            "c1=0.25",
        ],
    );
    assert_eq!(doc["unstructured"]["scope"], "global");
    // c1 is named, so pruned at its own target despite being the stem.
    let c1 = layer(&doc, "c1");
    assert_eq!(c1["nonzero_after"], 288 - 72);
    let (c2, fc) = (layer(&doc, "c2"), layer(&doc, "fc"));
    let pruned =
        576 + 2880 - c2["nonzero_after"].as_i64().unwrap() - fc["nonzero_after"].as_i64().unwrap();
    assert_eq!(pruned, ((576.0 + 2880.0) * 0.8f64).round() as i64);
}

/// Runs prune expecting failure; returns stderr and checks that nothing
/// was written.
fn fails(model: &Path, extra: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = whittle()
        .arg("prune")
        .arg(model)
        .arg("-o")
        .arg(dir.path().join("bad.onnx"))
        .args(extra)
        .output()
        .unwrap();
    assert!(!out.status.success(), "prune {extra:?} should fail");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_input_is_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = cnn(dir.path());
    let cases: &[(&[&str], &[&str])] = &[
        (&["--sparsity", "1.0"], &["outside [0, 1)"]),
        (&["--sparsity", "-0.1"], &["outside [0, 1)"]),
        (&["--layer", "fc=1.5"], &["'fc'", "outside [0, 1)"]),
        (&["--nm", "4:4"], &["smaller than M"]),
        (&["--nm", "3:2"], &["smaller than M"]),
        (&["--nm", "2:3"], &["'c2'", "not a multiple of 3"]),
        (&["--nm", "2-4"], &["bad N:M"]),
        (
            &["--sparsity", "0.5", "--layer", "nope=0.5"],
            &["nope", "no layer"],
        ),
        (&["--sparsity", "0.5", "--skip", "nope"], &["nope", "c2"]),
        (
            &["--sparsity", "0.5", "--only", "relu1"],
            &["relu1", "Relu"],
        ),
        (&["--sparsity", "0.5", "--criterion", "obd"], &["--calib"]),
        (&["--sparsity", "0.5", "--criterion", "wanda"], &["--calib"]),
        (&["--channels", "1.5"], &["outside [0, 1)"]),
        (&[], &["say what to prune"]),
    ];
    for (args, want) in cases {
        let err = fails(&model, args);
        for w in *want {
            assert!(err.contains(w), "{args:?}: '{w}' not in: {err}");
        }
    }
    // A --keep name that does not exist (checked by the channel library).
    let err = fails(&model, &["--channels", "0.5", "--keep", "nope"]);
    assert!(
        err.contains("nope") || err.contains("not merged yet"),
        "{err}"
    );
}

/// The Fashion-MNIST CNN at 80% global magnitude sparsity: the file
/// shrinks, accuracy is reported, and onnxruntime agrees with whittle.
#[test]
fn fashion_cnn_prunes_and_matches_onnxruntime() {
    let test = Path::new(FASHION).join("t10k-images-idx3-ubyte.gz");
    if !test.exists() {
        eprintln!("skipped: {FASHION} not found (apt-get install dataset-fashion-mnist)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fashion_80.onnx");
    let model = repo("tests/models/fashion_cnn.onnx");
    let doc = prune(
        &model,
        &out,
        &[
            "--sparsity",
            "0.8",
            "--scope",
            "global",
            "--eval",
            test.to_str().unwrap(),
            "--eval-limit",
            "1000",
        ],
    );
    let acc = &doc["accuracy"];
    assert_eq!(acc["samples"], 1000);
    assert!(acc["top1_before"].as_f64().unwrap() > 0.88, "{acc}");
    assert!(acc["top1_after"].as_f64().unwrap() > 0.5, "{acc}");
    let before = std::fs::metadata(&model).unwrap().len();
    let after = std::fs::metadata(&out).unwrap().len();
    assert!(after * 10 < before * 7, "{before} -> {after}");
    let pixels = values(3 * 784, 77)
        .iter()
        .map(|v| (v + 1.0) / 2.0)
        .collect();
    let x = Tensor::from_f32(vec![3, 1, 28, 28], pixels).unwrap();
    check_outputs(dir.path(), &out, &x);
}
