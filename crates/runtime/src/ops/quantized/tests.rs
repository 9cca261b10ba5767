//! The quantized element-wise, table, pooling and concat ops against
//! onnxruntime (`scripts/testgen/qlinear_cases_gen.py`), within one
//! quantization step, and bit-exact between one and two threads.

use whittle_ir::{Graph, Node, Tensor, TensorData, ValueInfo};

use super::qlinear_case_types::QCase;
use super::qlinear_cases::CASES;
use crate::{compile, eval_node, CompileOptions, Registry};

fn node_of(c: &QCase) -> Node {
    let ins: Vec<String> = c
        .inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_some() {
                format!("x{i}")
            } else {
                String::new()
            }
        })
        .collect();
    let mut n = Node::new(
        c.name,
        c.op,
        &ins.iter().map(String::as_str).collect::<Vec<_>>(),
        &["y"],
    );
    n.domain = c.domain.to_string();
    for (k, v) in c.attrs {
        n.attrs.insert(k.to_string(), v.attr());
    }
    crate::ops::testing::test_support::typed_activation(n)
}

fn inputs_of(c: &QCase) -> Vec<Option<Tensor>> {
    c.inputs
        .iter()
        .map(|t| t.as_ref().map(|t| t.tensor()))
        .collect()
}

#[test]
fn matches_onnxruntime_within_one_step() {
    let reg = Registry::standard();
    for c in CASES {
        let got = eval_node(&reg, &node_of(c), &inputs_of(c), 13)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let want = c.output.tensor();
        assert_eq!(got[0].dtype(), want.dtype(), "{}", c.name);
        assert_eq!(got[0].shape(), want.shape(), "{}", c.name);
        let (g, w) = (got[0].to_f64_vec(), want.to_f64_vec());
        let worst = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1.0,
            "{}: off by {worst}\n got {g:?}\nwant {w:?}",
            c.name
        );
    }
}

/// `t` repeated `r` times along axis 0.
fn tile(t: &Tensor, r: usize) -> Tensor {
    let mut shape = t.shape().to_vec();
    shape[0] *= r;
    let bytes = t.as_bytes().repeat(r);
    Tensor::new(shape, TensorData::from_le_bytes(t.dtype(), &bytes).unwrap()).unwrap()
}

/// Runs the case as a one-node graph whose data inputs are graph inputs,
/// tiled along the batch axis so the work is large enough to split.
fn run_threads(c: &QCase, threads: usize) -> Vec<Tensor> {
    const R: usize = 1500;
    let mut inputs = inputs_of(c);
    let first = inputs[0].as_ref().map(|t| t.shape().to_vec());
    for (i, t) in inputs.iter_mut().enumerate() {
        let Some(v) = t else { continue };
        let data = match c.op {
            "QLinearConcat" => i >= 2 && (i - 2) % 3 == 0,
            _ => i == 0 || (i == 3 && first.as_deref() == Some(v.shape())),
        };
        if data {
            *v = tile(v, R);
        }
    }
    let mut g = Graph::default();
    g.opsets.insert(String::new(), 13);
    g.opsets.insert(c.domain.to_string(), 1);
    let mut opts = CompileOptions {
        threads,
        ..CompileOptions::default()
    };
    let data_inputs: Vec<usize> = match c.op {
        "QLinearAdd" | "QLinearMul" => vec![0, 3],
        "QLinearConcat" => (2..inputs.len()).step_by(3).collect(),
        _ => vec![0],
    };
    let mut feeds = Vec::new();
    for (i, t) in inputs.iter().enumerate() {
        let Some(t) = t else { continue };
        let name = format!("x{i}");
        if data_inputs.contains(&i) {
            g.inputs.push(ValueInfo::known(&name, t.dtype(), t.shape()));
            opts.input_shapes.insert(name.clone(), t.shape().to_vec());
            feeds.push(t.clone());
        } else {
            g.initializers.insert(name, t.clone());
        }
    }
    g.nodes.push(node_of(c));
    let want = c.output.tensor();
    g.outputs.push(ValueInfo {
        name: "y".into(),
        dtype: want.dtype(),
        shape: None,
    });
    let mut plan = compile(&g, &opts).unwrap_or_else(|e| panic!("{}: {e}", c.name));
    plan.run(&feeds)
        .unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

#[test]
fn one_and_two_threads_agree() {
    for c in CASES {
        assert_eq!(run_threads(c, 1), run_threads(c, 2), "{}", c.name);
    }
}
