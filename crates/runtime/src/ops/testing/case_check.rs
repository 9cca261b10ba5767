//! Table-driven op tests: a [`Case`] is one node with literal inputs and the
//! outputs an independent implementation (onnxruntime, the ONNX reference,
//! or the ONNX conformance data) produced for them. The tables are generated
//! by `scripts/testgen/gen_cases.py`; see there for where each expectation
//! comes from.

use smallvec::SmallVec;
use whittle_ir::{Attr, Node, Tensor, TensorData};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::{eval_node, Fact, Parallel, Registry, View, ViewMut};

/// An attribute value in a case table.
pub(crate) enum A {
    I(i64),
    F(f32),
    S(&'static str),
    Is(&'static [i64]),
    Fs(&'static [f32]),
    Ss(&'static [&'static str]),
}

/// A tensor in a case table; `None` is an omitted optional input or an
/// output that is not requested.
pub(crate) enum T {
    None,
    F(&'static [usize], &'static [f32]),
    I(&'static [usize], &'static [i64]),
    I32(&'static [usize], &'static [i32]),
    U8(&'static [usize], &'static [u8]),
    I8(&'static [usize], &'static [i8]),
}

/// One node evaluation and its expected outputs.
pub(crate) struct Case {
    pub name: &'static str,
    pub op: &'static str,
    pub opset: i64,
    pub attrs: &'static [(&'static str, A)],
    pub inputs: &'static [T],
    pub outputs: &'static [T],
    /// Allowed |got - want| is `tol * (1 + |want|)`.
    pub tol: f32,
}

fn tensor(t: &T) -> Option<Tensor> {
    let (shape, data) = match t {
        T::None => return None,
        T::F(s, d) => (s, TensorData::F32(d.to_vec())),
        T::I(s, d) => (s, TensorData::I64(d.to_vec())),
        T::I32(s, d) => (s, TensorData::I32(d.to_vec())),
        T::U8(s, d) => (s, TensorData::U8(d.to_vec())),
        T::I8(s, d) => (s, TensorData::I8(d.to_vec())),
    };
    Some(Tensor::new(shape.to_vec(), data).expect("case tensor"))
}

/// The node a case describes.
pub(crate) fn node(case: &Case) -> Node {
    let names = |ts: &[T], p: &str| -> Vec<String> {
        let mut v: Vec<String> = ts
            .iter()
            .enumerate()
            .map(|(i, t)| match t {
                T::None => String::new(),
                _ => format!("{p}{i}"),
            })
            .collect();
        while v.last().is_some_and(String::is_empty) {
            v.pop();
        }
        v
    };
    let mut n = Node::new(case.name, case.op, &[], &[]);
    n.inputs = names(case.inputs, "x");
    n.outputs = names(case.outputs, "y");
    for (k, a) in case.attrs {
        let v = match a {
            A::I(v) => Attr::Int(*v),
            A::F(v) => Attr::Float(*v),
            A::S(v) => Attr::String(v.to_string()),
            A::Is(v) => Attr::Ints(v.to_vec()),
            A::Fs(v) => Attr::Floats(v.to_vec()),
            A::Ss(v) => Attr::Strings(v.iter().map(|s| s.to_string()).collect()),
        };
        n.attrs.insert(k.to_string(), v);
    }
    n
}

/// Builds a node with no input known at build time, then runs it on
/// `threads` threads: the path compiled graphs take, where activations and
/// often weights are not constants. `None` when the op needs constants.
fn eval_dynamic(
    n: &Node,
    inputs: &[Option<Tensor>],
    opset: i64,
    threads: usize,
) -> Option<Vec<Tensor>> {
    let build = Registry::standard()
        .get("", &n.op_type)
        .expect("registered");
    let ctx = BuildCtx {
        node: n,
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
    let (facts, kernel) = match build(&ctx) {
        Ok(Built::Kernel { outputs, kernel }) => (outputs, kernel),
        Ok(Built::Constant(v)) => return Some(v),
        // Ops whose shapes depend on an input's value need it constant.
        Err(e) if e.to_string().contains("compile-time constant") => return None,
        Err(e) => panic!("{e}"),
    };
    let mut outs: Vec<Tensor> = facts
        .iter()
        .map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap())
        .collect();
    let views: SmallVec<[View<'_>; 8]> = inputs
        .iter()
        .map(|t| match t {
            Some(t) => View::of(t),
            None => View::new(whittle_ir::DType::F32, &[]),
        })
        .collect();
    let mut out_views: Vec<ViewMut<'_>> = outs.iter_mut().map(ViewMut::of).collect();
    // NaN-filled scratch: kernels must not rely on zeroed workspace.
    let mut scratch = vec![0x7fc0_0001u32; kernel.scratch_bytes().div_ceil(4)];
    let par = Parallel::new(threads).unwrap();
    let mut run = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    kernel.run(&views, &mut out_views, &mut run).expect("run");
    drop(out_views);
    Some(outs)
}

/// Evaluates a case (all inputs constant, then none constant on two
/// threads) and compares every requested output.
pub(crate) fn check(case: &Case) {
    let n = node(case);
    let inputs: Vec<Option<Tensor>> = case.inputs.iter().map(tensor).collect();
    let inputs = &inputs[..n.inputs.len()];
    let got = eval_node(&Registry::standard(), &n, inputs, case.opset)
        .unwrap_or_else(|e| panic!("case {}: {e}", case.name));
    compare(case, &got, "constant inputs");
    if let Some(got) = eval_dynamic(&n, inputs, case.opset, 2) {
        compare(case, &got, "runtime inputs");
    }
}

fn compare(case: &Case, got: &[Tensor], how: &str) {
    for (i, want) in case.outputs.iter().enumerate() {
        let Some(want) = tensor(want) else { continue };
        let got = &got[i];
        assert_eq!(
            got.shape(),
            want.shape(),
            "case {} output {i} shape",
            case.name
        );
        assert_eq!(
            got.dtype(),
            want.dtype(),
            "case {} output {i} dtype",
            case.name
        );
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        for (j, (a, b)) in g.iter().zip(&w).enumerate() {
            let ok = if b.is_nan() {
                a.is_nan()
            } else {
                (a - b).abs() <= f64::from(case.tol) * (1.0 + b.abs())
            };
            assert!(
                ok,
                "case {} ({how}) output {i}[{j}]: got {a}, want {b}",
                case.name
            );
        }
    }
}

/// Runs every case, reporting all failures together.
pub(crate) fn check_all(cases: &[Case]) {
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            std::panic::catch_unwind(|| check(c)).err().map(|e| {
                e.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| c.name.to_string())
            })
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} cases failed:\n{}",
        failed.len(),
        cases.len(),
        failed.join("\n")
    );
}

/// Builds a case's node with replaced attributes and expects a build error
/// whose message mentions `needle`.
pub(crate) fn expect_error(case: &Case, attrs: &[(&str, Attr)], needle: &str) {
    let mut n = node(case);
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    let inputs: Vec<Option<Tensor>> = case.inputs.iter().map(tensor).collect();
    match eval_node(
        &Registry::standard(),
        &n,
        &inputs[..n.inputs.len()],
        case.opset,
    ) {
        Ok(_) => panic!(
            "case {} with {attrs:?}: expected an error about '{needle}'",
            case.name
        ),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(needle),
                "case {}: error '{msg}' lacks '{needle}'",
                case.name
            );
        }
    }
}
