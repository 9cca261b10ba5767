//! Test helpers for the shape, reduction and softmax ops: tensor literals,
//! single-node evaluation, and the runner for the onnx.reference cases in
//! `test_refs.rs`.

use whittle_ir::{Attr, DType, Node, Tensor, TensorData};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::{eval_node, EvalError, Fact, Parallel, Registry, RunError, View, ViewMut};

/// One reference case: a node, its inputs, and the expected outputs.
pub(crate) struct RefCase {
    pub name: &'static str,
    pub op: &'static str,
    pub opset: i64,
    pub attrs: Vec<(&'static str, Attr)>,
    pub inputs: Vec<Option<Tensor>>,
    pub outputs: Vec<Tensor>,
}

fn mk(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).expect("literal matches its shape")
}

/// A tensor literal from little-endian hex bytes.
pub(crate) fn hx(dtype: DType, shape: &[usize], hex: &str) -> Tensor {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex literal"))
        .collect();
    mk(
        shape,
        TensorData::from_le_bytes(dtype, &bytes).expect("whole elements"),
    )
}

/// f32 tensor literal.
pub(crate) fn tf(shape: &[usize], v: &[f32]) -> Tensor {
    mk(shape, TensorData::F32(v.to_vec()))
}
/// f64 tensor literal.
pub(crate) fn td(shape: &[usize], v: &[f64]) -> Tensor {
    mk(shape, TensorData::F64(v.to_vec()))
}
/// f16 tensor literal (raw bits).
pub(crate) fn th(shape: &[usize], v: &[u16]) -> Tensor {
    mk(shape, TensorData::F16(v.to_vec()))
}
/// i64 tensor literal.
pub(crate) fn tl(shape: &[usize], v: &[i64]) -> Tensor {
    mk(shape, TensorData::I64(v.to_vec()))
}
/// i32 tensor literal.
pub(crate) fn ti(shape: &[usize], v: &[i32]) -> Tensor {
    mk(shape, TensorData::I32(v.to_vec()))
}
/// u8 tensor literal.
pub(crate) fn tu8(shape: &[usize], v: &[u8]) -> Tensor {
    mk(shape, TensorData::U8(v.to_vec()))
}
/// bool tensor literal (0/1).
pub(crate) fn tb(shape: &[usize], v: &[u8]) -> Tensor {
    mk(shape, TensorData::Bool(v.to_vec()))
}

/// A node `op` with inputs `x0..` (empty name for `None`) and `n_out` outputs.
pub(crate) fn node(
    op: &str,
    inputs: &[Option<Tensor>],
    n_out: usize,
    attrs: &[(&str, Attr)],
) -> Node {
    let ins: Vec<String> = inputs
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
    let outs: Vec<String> = (0..n_out).map(|i| format!("y{i}")).collect();
    let mut n = Node::new(
        format!("test_{op}"),
        op,
        &ins.iter().map(String::as_str).collect::<Vec<_>>(),
        &outs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    for (k, v) in attrs {
        n = n.with_attr(k, v.clone());
    }
    typed_activation(n)
}

/// Test data names a fused activation by attributes (`whittle.act` = the
/// ONNX op type, `whittle.act.<attribute>` its parameters), which reads well
/// in generated case tables; this moves them into the typed
/// [`Node::activation`] that compile and the kernels use.
pub(crate) fn typed_activation(mut n: Node) -> Node {
    let Some(Attr::String(kind)) = n.attrs.remove("whittle.act") else {
        return n;
    };
    let mut act = Node::new("act", kind.as_str(), &["x"], &["y"]);
    let params: Vec<String> = n
        .attrs
        .keys()
        .filter(|k| k.starts_with("whittle.act."))
        .cloned()
        .collect();
    for k in params {
        let v = n.attrs.remove(&k).expect("listed above");
        act.attrs.insert(k["whittle.act.".len()..].to_string(), v);
    }
    n.activation = act
        .as_activation(&whittle_ir::Graph::default())
        .unwrap_or_else(|| panic!("test data names an unknown activation '{kind}'"));
    n
}

/// Evaluates one node with the standard registry.
pub(crate) fn eval(
    op: &str,
    opset: i64,
    inputs: &[Option<Tensor>],
    n_out: usize,
    attrs: &[(&str, Attr)],
) -> Result<Vec<Tensor>, EvalError> {
    eval_node(
        &Registry::standard(),
        &node(op, inputs, n_out, attrs),
        inputs,
        opset,
    )
}

/// The build error message, for error-case tests.
pub(crate) fn build_err(
    op: &str,
    opset: i64,
    inputs: &[Option<Tensor>],
    attrs: &[(&str, Attr)],
) -> String {
    match eval(op, opset, inputs, 1, attrs) {
        Ok(v) => panic!("{op} unexpectedly succeeded: {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Compares two tensors: exact for non-floats, `tol` relative (plus a small
/// absolute floor) for floats; NaN matches NaN.
pub(crate) fn assert_close(name: &str, got: &Tensor, want: &Tensor, tol: f64) {
    assert_eq!(got.dtype(), want.dtype(), "{name}: dtype");
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    if !matches!(want.dtype(), DType::F32 | DType::F64) {
        assert_eq!(got.as_bytes(), want.as_bytes(), "{name}: data");
        return;
    }
    for (i, (g, w)) in got
        .to_f64_vec()
        .into_iter()
        .zip(want.to_f64_vec())
        .enumerate()
    {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * w.abs() + 1e-6;
        assert!(ok, "{name}: element {i}: got {g}, want {w}");
    }
}

/// Builds `op` directly and runs its kernel with input 0 marked aliased and
/// output 0 pre-filled with the input's bytes, as the planner does for an
/// in-place node. Returns output 0 and whether the kernel offered in-place.
pub(crate) fn run_aliased(
    op: &str,
    opset: i64,
    inputs: &[Option<Tensor>],
    attrs: &[(&str, Attr)],
) -> (Tensor, Option<usize>) {
    let n = node(op, inputs, 1, attrs);
    let reg = Registry::standard();
    let build = reg.get("", op).expect("registered");
    let ctx = BuildCtx {
        node: &n,
        inputs: inputs
            .iter()
            .map(|t| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: Some(t),
                })
            })
            .collect(),
        opset,
    };
    let Built::Kernel { outputs, kernel } = build(&ctx).expect("builds") else {
        panic!("expected a kernel");
    };
    let x = inputs[0].as_ref().expect("input 0");
    let mut out = Tensor::new(outputs[0].shape.clone(), x.data().clone()).expect("same size");
    let views: Vec<View<'_>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| match (i, t) {
            (0, _) => View::aliased(x.dtype()),
            (_, Some(t)) => View::of(t),
            (_, None) => View::new(DType::F32, &[]),
        })
        .collect();
    let par = Parallel::single();
    let mut ctx = RunCtx {
        scratch: &mut [],
        par: &par,
    };
    kernel
        .run(&views, &mut [ViewMut::of(&mut out)], &mut ctx)
        .expect("runs");
    (out, kernel.inplace_input())
}

/// Runs every case; returns the names of those that failed, with why.
fn check_cases(cases: Vec<RefCase>) -> Vec<String> {
    let mut failed = Vec::new();
    for c in cases {
        let name = c.name;
        let r = std::panic::catch_unwind(move || {
            let got = eval(c.op, c.opset, &c.inputs, c.outputs.len(), &c.attrs)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(got.len(), c.outputs.len(), "output count");
            for (g, w) in got.iter().zip(&c.outputs) {
                assert_close(c.name, g, w, 2e-6);
            }
        });
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            failed.push(format!("{name}: {msg}"));
        }
    }
    failed
}

#[test]
fn reference_cases() {
    let cases = super::test_refs::cases();
    assert!(cases.len() > 150);
    let failed = check_cases(cases);
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn conformance_cases() {
    let cases = crate::ops::testing::test_conformance::cases();
    assert!(cases.len() > 200);
    let failed = check_cases(cases);
    // Training-mode Dropout with a non-zero ratio is random: whittle refuses
    // it with a build error rather than guessing.
    let unexpected: Vec<&String> = failed
        .iter()
        .filter(|f| !(f.starts_with("test_training_dropout") && f.contains("only for inference")))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(failed.len(), 4, "{failed:#?}");
}

/// Builds `op` with no input value known at build time (as in a compiled
/// graph) and runs it once; returns the outputs or the run error.
pub(crate) fn run_dynamic(
    op: &str,
    opset: i64,
    inputs: &[Option<Tensor>],
    n_out: usize,
    attrs: &[(&str, Attr)],
) -> Result<Vec<Tensor>, RunError> {
    let n = node(op, inputs, n_out, attrs);
    let ctx = BuildCtx {
        node: &n,
        inputs: inputs
            .iter()
            .map(|t| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: None,
                })
            })
            .collect(),
        opset,
    };
    let build = Registry::standard().get("", op).expect("registered");
    let Built::Kernel { outputs, kernel } = build(&ctx).expect("builds") else {
        panic!("expected a kernel");
    };
    let mut outs: Vec<Tensor> = outputs
        .iter()
        .map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap())
        .collect();
    let views: Vec<View<'_>> = inputs
        .iter()
        .map(|t| match t {
            Some(t) => View::of(t),
            None => View::new(DType::F32, &[]),
        })
        .collect();
    let mut out_views: Vec<ViewMut<'_>> = outs.iter_mut().map(ViewMut::of).collect();
    let mut scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8)];
    let par = Parallel::single();
    let mut run = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    kernel.run(&views, &mut out_views, &mut run)?;
    drop(out_views);
    Ok(outs)
}

/// Op, opset, inputs, attributes, and what the test expects.
pub(crate) type OpCase<'a, E> = (&'a str, i64, Vec<Option<Tensor>>, Vec<(&'a str, Attr)>, E);

pub(crate) fn ar(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    tf(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

pub(crate) fn ints<'a>(name: &'a str, v: &[i64]) -> (&'a str, Attr) {
    (name, Attr::Ints(v.to_vec()))
}
