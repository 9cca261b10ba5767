//! End-to-end int8: models quantized by onnxruntime's `quantize_static`
//! (`tests/fixtures/quantized`, made by `scripts/make_quantized_fixtures.py`)
//! in QDQ and QOperator form, run by whittle with `fuse_qdq` on, against
//! onnxruntime's outputs within a few output quantization steps.
//!
//! The plans must also be integer-only inside: Quantize/Dequantize only at
//! the graph boundary, no float Conv/Gemm/MatMul, and bit-exact between 1
//! and 2 threads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use whittle::data::read_npy;
use whittle::ir::passes::simplify_for_inference;
use whittle::ir::Graph;
use whittle::runtime::{compile, CompileError, CompileOptions, Plan, Registry};

#[derive(Deserialize)]
struct Manifest {
    fixtures: Vec<Fixture>,
}

#[derive(Deserialize)]
struct Fixture {
    name: String,
    model: String,
    format: String,
    inputs: Vec<Input>,
    outputs: Vec<Output>,
}

#[derive(Deserialize)]
struct Input {
    name: String,
    file: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Output {
    file: String,
    atol: f64,
    /// The float model's output, relative to the quantized directory.
    float_file: String,
    /// onnxruntime's int8 output SQNR against the float model.
    ort_sqnr_db: f64,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/quantized")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("valid manifest")
}

fn load(fx: &Fixture) -> Graph {
    whittle::onnx::load_model(&dir().join(&fx.model)).expect("fixture imports")
}

/// The ops the int8 plans need, by (domain, op type).
const INT8_OPS: &[(&str, &str)] = &[
    ("", "QLinearConv"),
    ("", "QLinearMatMul"),
    ("com.microsoft", "QGemm"),
    ("com.microsoft", "QLinearAdd"),
    ("com.microsoft", "QLinearGlobalAveragePool"),
    ("com.microsoft", "QLinearConcat"),
];

fn missing_int8_ops() -> Vec<&'static str> {
    let reg = Registry::standard();
    INT8_OPS
        .iter()
        .filter(|(d, op)| reg.get(d, op).is_none())
        .map(|(_, op)| *op)
        .collect()
}

/// Quantize nodes read only graph inputs, Dequantize nodes write only graph
/// outputs, and no float linear op is left.
fn integer_inside(g: &Graph) -> Result<(), String> {
    for n in &g.nodes {
        let bad = match n.op_type.as_str() {
            "QuantizeLinear" => !g.inputs.iter().any(|i| Some(i.name.as_str()) == n.input(0)),
            "DequantizeLinear" => !n.outputs.iter().all(|o| g.is_output(o)),
            "Conv" | "Gemm" | "MatMul" | "Add" | "Mul" | "GlobalAveragePool" | "AveragePool" => {
                true
            }
            _ => false,
        };
        if bad {
            return Err(format!("node '{}' ({}) stays float", n.name, n.op_type));
        }
    }
    Ok(())
}

fn histogram(g: &Graph) -> BTreeMap<&str, usize> {
    let mut h = BTreeMap::new();
    for n in &g.nodes {
        *h.entry(n.op_type.as_str()).or_insert(0) += 1;
    }
    h
}

#[test]
fn fuse_qdq_leaves_only_boundary_quantization() {
    for fx in manifest().fixtures.iter().filter(|f| f.format == "qdq") {
        let (g, _) = simplify_for_inference(load(fx));
        eprintln!("{}: {:?}", fx.name, histogram(&g));
        if let Err(e) = integer_inside(&g) {
            panic!("{}: {e}", fx.name);
        }
    }
}

/// How far (dB) whittle's int8 SQNR against the float model may fall below
/// onnxruntime's when results differ by more than `atol`.
const SQNR_MARGIN_DB: f64 = 3.0;

/// Signal-to-quantization-noise ratio of `got` against `want`, in dB.
fn sqnr_db(want: &[f64], got: &[f64]) -> f64 {
    let signal: f64 = want.iter().map(|v| v * v).sum();
    let noise: f64 = want.iter().zip(got).map(|(a, b)| (a - b) * (a - b)).sum();
    if noise == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (signal / noise).log10()
    }
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |best, i| if v[i] > v[best] { i } else { best })
}

fn compile_fixture(fx: &Fixture, threads: usize) -> Result<Plan, CompileError> {
    let mut opts = CompileOptions {
        threads,
        ..CompileOptions::default()
    };
    for i in &fx.inputs {
        opts.input_shapes.insert(i.name.clone(), i.shape.clone());
    }
    compile(&load(fx), &opts)
}

fn run(plan: &mut Plan, fx: &Fixture) -> Vec<whittle::Tensor> {
    let inputs: Vec<_> = fx
        .inputs
        .iter()
        .map(|i| read_npy(&dir().join(&i.file)).expect("input npy"))
        .collect();
    plan.run(&inputs).expect("plan runs")
}

#[test]
fn quantized_models_match_onnxruntime() {
    let missing = missing_int8_ops();
    assert!(missing.is_empty(), "no int8 kernel for {missing:?}");
    for fx in &manifest().fixtures {
        let mut plan = compile_fixture(fx, 1).unwrap_or_else(|e| panic!("{}: {e}", fx.name));
        let outs = run(&mut plan, fx);
        for (o, got) in fx.outputs.iter().zip(&outs) {
            let want = read_npy(&dir().join(&o.file)).expect("output npy");
            assert_eq!(got.shape(), want.shape(), "{}", fx.name);
            let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
            let float = read_npy(&dir().join(&o.float_file)).expect("float output npy");
            let f = float.to_f64_vec();
            let worst = g
                .iter()
                .zip(&w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            let sqnr = sqnr_db(&f, &g);
            eprintln!(
                "{}: worst {worst:.4} vs onnxruntime (tolerance {:.4}); SQNR vs float {sqnr:.1} dB \
                 (onnxruntime int8 {:.1} dB)",
                fx.name, o.atol, o.ort_sqnr_db
            );
            // Deep nets compound the +-1 differences between fixed-point
            // and onnxruntime's float requantization layer after layer; they
            // must then be as accurate as onnxruntime's int8 against the
            // float model, with the same top-1.
            let as_accurate = sqnr >= o.ort_sqnr_db - SQNR_MARGIN_DB && argmax(&g) == argmax(&w);
            assert!(
                worst <= o.atol || as_accurate,
                "{}: off by {worst} > {} and SQNR {sqnr:.1} dB vs onnxruntime's {:.1}",
                fx.name,
                o.atol,
                o.ort_sqnr_db
            );
        }
        let kernels: Vec<String> = plan
            .report()
            .nodes
            .iter()
            .map(|n| format!("{} {}", n.op, n.kernel))
            .collect();
        let inside = |op: &str| plan.report().nodes.iter().filter(|n| n.op == op).count();
        assert!(
            inside("DequantizeLinear") <= fx.outputs.len()
                && inside("QuantizeLinear") <= fx.inputs.len()
                && ["Conv", "Gemm", "MatMul"].iter().all(|op| inside(op) == 0),
            "{}: float work left in the plan: {kernels:#?}",
            fx.name
        );
        let mut two = compile_fixture(fx, 2).expect("compiles with 2 threads");
        assert_eq!(run(&mut two, fx), outs, "{}: 1 vs 2 threads", fx.name);
    }
}
