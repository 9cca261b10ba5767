//! Elementwise, unary and cast ops against onnx.reference outputs
//! (`ops_elementwise/cases.rs`, made by `ops_elementwise/gen_cases.py`).
//! Every case runs through `eval_node` and, when the kernel offers it, a
//! second time in place (the aliased input's data pre-loaded in the output).
//! Further tests cover threaded runs against a naive broadcast, and errors.

use smallvec::SmallVec;
use whittle_ir::{Attr, DType, Node, Tensor, TensorData};
use whittle_runtime::{
    eval_node, BuildCtx, Built, EvalError, Fact, InputFact, OpError, Parallel, Registry, RunCtx,
    View, ViewMut,
};

#[rustfmt::skip]
#[path = "ops_elementwise/cases.rs"]
mod cases;

// Tensor constructors named after their dtype, as the generated cases use.
fn f32(shape: &[usize], v: &[f32]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F32(v.to_vec())).unwrap()
}
fn f64(shape: &[usize], v: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F64(v.to_vec())).unwrap()
}
fn f16(shape: &[usize], bits: &[u16]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F16(bits.to_vec())).unwrap()
}
fn bf16(shape: &[usize], bits: &[u16]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::BF16(bits.to_vec())).unwrap()
}
fn i8(shape: &[usize], v: &[i8]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I8(v.to_vec())).unwrap()
}
fn u8(shape: &[usize], v: &[u8]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::U8(v.to_vec())).unwrap()
}
fn i16(shape: &[usize], v: &[i16]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I16(v.to_vec())).unwrap()
}
fn u16(shape: &[usize], v: &[u16]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::U16(v.to_vec())).unwrap()
}
fn i32(shape: &[usize], v: &[i32]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I32(v.to_vec())).unwrap()
}
fn u32(shape: &[usize], v: &[u32]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::U32(v.to_vec())).unwrap()
}
fn i64(shape: &[usize], v: &[i64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::I64(v.to_vec())).unwrap()
}
fn u64(shape: &[usize], v: &[u64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::U64(v.to_vec())).unwrap()
}
fn bool(shape: &[usize], v: &[u8]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::Bool(v.to_vec())).unwrap()
}

fn node(op: &str, attrs: &[(&str, Attr)], inputs: &[Option<Tensor>]) -> Node {
    let names: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| t.as_ref().map_or(String::new(), |_| format!("x{i}")))
        .collect();
    let mut n = Node::new(format!("{op}_node"), op, &[], &["y"]);
    n.inputs = names;
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    n
}

/// Values widened to f64 (half types decoded from their bits).
fn values(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::F16(v) => v
            .iter()
            .map(|&b| half::f16::from_bits(b).to_f64())
            .collect(),
        TensorData::BF16(v) => v
            .iter()
            .map(|&b| half::bf16::from_bits(b).to_f64())
            .collect(),
        _ => t.to_f64_vec(),
    }
}

/// Compares with a tolerance fitting the dtype (exact for integers, bool
/// and every cast); NaN equals NaN.
fn assert_close(name: &str, got: &Tensor, want: &Tensor, exact: bool) {
    assert_eq!(got.dtype(), want.dtype(), "{name}: dtype");
    assert_eq!(got.shape(), want.shape(), "{name}: shape");
    let (rtol, atol) = match got.dtype() {
        _ if exact => (0.0, 0.0),
        DType::F32 => (1e-5, 1e-6),
        DType::F64 => (1e-12, 1e-15),
        // numpy rounds to half after every step of a composite formula;
        // whittle rounds once, so a few ulps may differ.
        DType::F16 => (4e-3, 1e-3),
        DType::BF16 => (2e-2, 1e-2),
        _ => (0.0, 0.0),
    };
    for (i, (g, w)) in values(got).iter().zip(values(want)).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || *g == w || (g - w).abs() <= atol + rtol * w.abs();
        assert!(ok, "{name}: element {i}: got {g}, want {w}");
    }
}

/// Builds the kernel for `node` with every input known.
fn build(node: &Node, inputs: &[Option<Tensor>], opset: i64) -> Result<Built, OpError> {
    let ctx = BuildCtx {
        node,
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
    let f = Registry::standard()
        .get("", &node.op_type)
        .expect("op registered");
    f(&ctx)
}

/// Runs the kernel the way the planner does when it takes the in-place
/// offer: the offered input arrives aliased, its data already in the
/// output. `None` when the kernel makes no offer.
fn run_inplace(
    node: &Node,
    inputs: &[Option<Tensor>],
    opset: i64,
    par: &Parallel,
) -> Option<Tensor> {
    let Built::Kernel { outputs, kernel } = build(node, inputs, opset).unwrap() else {
        return None;
    };
    let i = kernel.inplace_input()?;
    let shared = inputs[i].as_ref().unwrap();
    // The offer is only legal for an input with output 0's dtype and shape.
    assert_eq!(
        (shared.dtype(), shared.shape()),
        (outputs[0].dtype, outputs[0].shape.as_slice()),
        "{}: in-place offer for input {i}",
        node.name
    );
    let mut out = shared.clone();
    let views: SmallVec<[View<'_>; 4]> = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| match t {
            _ if k == i => View::aliased(shared.dtype()),
            Some(t) => View::of(t),
            None => View::new(DType::F32, &[]),
        })
        .collect();
    let mut scratch = vec![0u8; kernel.scratch_bytes()];
    let mut ctx = RunCtx {
        scratch: &mut scratch,
        par,
    };
    kernel
        .run(&views, &mut [ViewMut::of(&mut out)], &mut ctx)
        .unwrap();
    Some(out)
}

/// One generated case: through `eval_node`, then in place.
pub(crate) fn check(
    name: &str,
    op: &str,
    opset: i64,
    attrs: &[(&str, Attr)],
    inputs: Vec<Option<Tensor>>,
    want: Tensor,
) {
    let n = node(op, attrs, &inputs);
    let exact = op.starts_with("Cast");
    let got = eval_node(&Registry::standard(), &n, &inputs, opset)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(got.len(), 1, "{name}: outputs");
    assert_close(name, &got[0], &want, exact);
    if let Some(got) = run_inplace(&n, &inputs, opset, &Parallel::single()) {
        assert_close(&format!("{name} (in place)"), &got, &want, exact);
    }
}

// ---------------------------------------------------------------------------
// Threads: large tensors against a naive reference.

/// Deterministic pseudo-random values in [-4, 4).
fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 8000) as f32 / 1000.0 - 4.0
        })
        .collect()
}

/// Naive numpy broadcasting of `x` (shape `xs`) to `out`, by coordinates.
fn naive_broadcast(x: &[f32], xs: &[usize], out: &[usize]) -> Vec<f32> {
    let n: usize = out.iter().product();
    let pad = out.len() - xs.len();
    (0..n)
        .map(|lin| {
            let mut rem = lin;
            let mut coords = vec![0; out.len()];
            for d in (0..out.len()).rev() {
                coords[d] = rem % out[d];
                rem /= out[d];
            }
            let mut off = 0;
            for (k, &dim) in xs.iter().enumerate() {
                off = off * dim + if dim == 1 { 0 } else { coords[pad + k] };
            }
            x[off]
        })
        .collect()
}

fn run_with(par: &Parallel, node: &Node, inputs: &[Option<Tensor>], opset: i64) -> Tensor {
    let Built::Kernel { outputs, kernel } = build(node, inputs, opset).unwrap() else {
        panic!("expected a kernel");
    };
    let mut out = Tensor::zeros(outputs[0].dtype, outputs[0].shape.clone()).unwrap();
    let views: Vec<View<'_>> = inputs
        .iter()
        .map(|t| View::of(t.as_ref().unwrap()))
        .collect();
    let mut ctx = RunCtx {
        scratch: &mut [],
        par,
    };
    kernel
        .run(&views, &mut [ViewMut::of(&mut out)], &mut ctx)
        .unwrap();
    out
}

#[test]
fn threaded_broadcast_matches_naive() {
    let par = Parallel::new(3).unwrap();
    let cases: &[(&[usize], &[usize])] = &[
        (&[8, 64, 33, 17], &[64, 1, 1]),
        (&[300, 257], &[257]),
        (&[300, 257], &[300, 1]),
        (&[1 << 16], &[]),
        (&[2, 1, 90, 400], &[1, 3, 90, 1]),
    ];
    for &(sa, sb) in cases {
        let (na, nb) = (sa.iter().product(), sb.iter().product());
        let (a, b) = (noise(na, 1), noise(nb, 2));
        let out_shape: Vec<usize> = {
            let rank = sa.len().max(sb.len());
            (0..rank)
                .map(|d| {
                    let get = |s: &[usize]| (d + s.len()).checked_sub(rank).map_or(1, |i| s[i]);
                    get(sa).max(get(sb))
                })
                .collect()
        };
        let (ba, bb) = (
            naive_broadcast(&a, sa, &out_shape),
            naive_broadcast(&b, sb, &out_shape),
        );
        let inputs = vec![Some(f32(sa, &a)), Some(f32(sb, &b))];
        for (op, f) in [
            ("Sub", (|x, y| x - y) as fn(f32, f32) -> f32),
            ("Mul", |x, y| x * y),
            ("Max", |x: f32, y: f32| x.max(y)),
        ] {
            let want: Vec<f32> = ba.iter().zip(&bb).map(|(&x, &y)| f(x, y)).collect();
            let n = node(op, &[], &inputs);
            let got = run_with(&par, &n, &inputs, 14);
            assert_eq!(got.as_f32().unwrap(), want.as_slice(), "{op} {sa:?} {sb:?}");
            if let Some(got) = run_inplace(&n, &inputs, 14, &par) {
                assert_eq!(got.as_f32().unwrap(), want.as_slice(), "{op} in place");
            }
        }
        // Where with a broadcast condition, threaded.
        let cond: Vec<u8> = b.iter().map(|&v| u8::from(v > 0.0)).collect();
        let inputs = vec![
            Some(bool(sb, &cond)),
            Some(f32(sa, &a)),
            Some(f32(&[], &[7.0])),
        ];
        let want: Vec<f32> = ba
            .iter()
            .zip(&bb)
            .map(|(&x, &c)| if c > 0.0 { x } else { 7.0 })
            .collect();
        let n = node("Where", &[], &inputs);
        let got = run_with(&par, &n, &inputs, 16);
        assert_eq!(
            got.as_f32().unwrap(),
            want.as_slice(),
            "Where {sa:?} {sb:?}"
        );
        let inplace = run_inplace(&n, &inputs, 16, &par);
        assert_eq!(inplace.is_some(), sa == out_shape.as_slice(), "Where offer");
        if let Some(got) = inplace {
            assert_eq!(got.as_f32().unwrap(), want.as_slice(), "Where in place");
        }
    }
}

#[test]
fn threaded_unary_matches_scalar() {
    let par = Parallel::new(2).unwrap();
    let x = noise(100_003, 3);
    let inputs = vec![Some(f32(&[100_003], &x))];
    let want: Vec<f32> = x.iter().map(|v| 1.0 / (1.0 + (-v).exp())).collect();
    let got = run_with(&par, &node("Sigmoid", &[], &inputs), &inputs, 13);
    for (g, w) in got.as_f32().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 1e-6, "{g} vs {w}");
    }
    let got = run_inplace(&node("Exp", &[], &inputs), &inputs, 13, &par).unwrap();
    for (g, v) in got.as_f32().unwrap().iter().zip(&x) {
        assert!((g - v.exp()).abs() <= 1e-6 * v.exp(), "{g} vs exp({v})");
    }
}

// ---------------------------------------------------------------------------
// In-place offers.

#[test]
fn inplace_offers_follow_shapes() {
    let offer = |op: &str, inputs: Vec<Option<Tensor>>| {
        let n = node(op, &[("to", Attr::Int(6))], &inputs);
        match build(&n, &inputs, 16).unwrap() {
            Built::Kernel { kernel, .. } => kernel.inplace_input(),
            Built::Constant(_) => None,
        }
    };
    let a = || Some(f32(&[2, 3], &[0.0; 6]));
    let row = || Some(f32(&[3], &[0.0; 3]));
    assert_eq!(offer("Add", vec![a(), row()]), Some(0));
    assert_eq!(offer("Add", vec![row(), a()]), Some(1));
    assert_eq!(
        offer("Add", vec![Some(f32(&[2, 1], &[0.0; 2])), row()]),
        None
    );
    assert_eq!(offer("Max", vec![row(), a(), a()]), None);
    assert_eq!(offer("Max", vec![a(), row(), a()]), Some(0));
    // The result is bool: never the input's buffer.
    assert_eq!(offer("Less", vec![a(), a()]), None);
    assert_eq!(offer("Relu", vec![a()]), Some(0));
    assert_eq!(offer("Cast", vec![a()]), None);
}

// ---------------------------------------------------------------------------
// Errors name the node and the problem.

fn build_error(
    op: &str,
    opset: i64,
    attrs: &[(&str, Attr)],
    inputs: Vec<Option<Tensor>>,
) -> String {
    let n = node(op, attrs, &inputs);
    match eval_node(&Registry::standard(), &n, &inputs, opset) {
        Err(e @ EvalError::Build(_)) => {
            let msg = e.to_string();
            assert!(msg.contains(&n.name), "error does not name the node: {msg}");
            msg
        }
        other => panic!("{op}: expected a build error, got {other:?}"),
    }
}

#[test]
fn errors_are_clear() {
    let x = || Some(f32(&[2, 3], &[1.0; 6]));
    let msg = build_error("Add", 14, &[], vec![x(), Some(f32(&[4], &[0.0; 4]))]);
    assert!(
        msg.contains("cannot broadcast shapes [2, 3] and [4]"),
        "{msg}"
    );
    let msg = build_error("Where", 16, &[], vec![Some(bool(&[5], &[0; 5])), x(), x()]);
    assert!(msg.contains("cannot broadcast"), "{msg}");
    let msg = build_error("Add", 14, &[], vec![x(), Some(i64(&[3], &[0; 3]))]);
    assert!(
        msg.contains("input 1 has dtype i64 but input 0 has f32"),
        "{msg}"
    );
    let msg = build_error("Sqrt", 13, &[], vec![Some(i32(&[2], &[4, 9]))]);
    assert!(msg.contains("dtype i32") && msg.contains("f32"), "{msg}");
    let msg = build_error("And", 7, &[], vec![x(), x()]);
    assert!(msg.contains("dtype f32") && msg.contains("bool"), "{msg}");
    let msg = build_error("Where", 16, &[], vec![x(), x(), x()]);
    assert!(msg.contains("dtype f32"), "{msg}");
    let msg = build_error("PRelu", 16, &[], vec![Some(f32(&[3], &[0.0; 3])), x()]);
    assert!(msg.contains("does not broadcast to X"), "{msg}");
    let msg = build_error("Clip", 13, &[], vec![x(), Some(f32(&[2], &[0.0, 1.0]))]);
    assert!(msg.contains("must be a scalar"), "{msg}");
    let msg = build_error("Clip", 6, &[], vec![Some(i32(&[2], &[4, 9]))]);
    assert!(msg.contains("opset 11"), "{msg}");
    let msg = build_error("Cast", 13, &[("to", Attr::Int(8))], vec![x()]);
    assert!(msg.contains("cannot cast to ONNX data type 8"), "{msg}");
    let msg = build_error("Cast", 13, &[], vec![x()]);
    assert!(msg.contains("'to' is required"), "{msg}");
    let msg = build_error(
        "BitShift",
        11,
        &[("direction", Attr::String("UP".into()))],
        vec![Some(u8(&[1], &[1])), Some(u8(&[1], &[1]))],
    );
    assert!(msg.contains("LEFT or RIGHT"), "{msg}");
    let msg = build_error(
        "Gelu",
        20,
        &[("approximate", Attr::String("erf".into()))],
        vec![x()],
    );
    assert!(msg.contains("'none' or 'tanh'"), "{msg}");
    let msg = build_error("Add", 6, &[], vec![x(), Some(f32(&[3], &[0.0; 3]))]);
    assert!(msg.contains("broadcast=0"), "{msg}");
    let msg = build_error("Sub", 14, &[], vec![x()]);
    assert!(msg.contains("two inputs"), "{msg}");
    let msg = build_error("Pow", 7, &[], vec![x(), Some(i64(&[1], &[2]))]);
    assert!(msg.contains("dtype"), "{msg}");
}

#[test]
fn run_rejects_buffers_of_the_wrong_size() {
    let inputs = vec![Some(f32(&[2, 3], &[1.0; 6])), Some(f32(&[3], &[1.0; 3]))];
    let n = node("Add", &[], &inputs);
    let Built::Kernel { kernel, .. } = build(&n, &inputs, 14).unwrap() else {
        panic!()
    };
    let short = f32(&[2], &[1.0; 2]);
    let mut out = f32(&[6], &[0.0; 6]);
    let views = [View::of(inputs[0].as_ref().unwrap()), View::of(&short)];
    let par = Parallel::single();
    let mut ctx = RunCtx {
        scratch: &mut [],
        par: &par,
    };
    assert!(kernel
        .run(&views, &mut [ViewMut::of(&mut out)], &mut ctx)
        .is_err());
}

#[test]
fn zero_sized_and_scalar_tensors() {
    let inputs = vec![Some(f32(&[0, 3], &[])), Some(f32(&[1, 3], &[1.0; 3]))];
    let got = eval_node(
        &Registry::standard(),
        &node("Add", &[], &inputs),
        &inputs,
        14,
    )
    .unwrap();
    assert_eq!(got[0].shape(), &[0, 3]);
    let inputs = vec![Some(f32(&[], &[2.0])), Some(f32(&[], &[3.0]))];
    let got = eval_node(
        &Registry::standard(),
        &node("Mul", &[], &inputs),
        &inputs,
        14,
    )
    .unwrap();
    assert_eq!(
        (got[0].shape(), got[0].as_f32().unwrap()),
        (&[][..], &[6.0][..])
    );
}

#[test]
fn cast_opset1_takes_a_type_name() {
    // Opset 1 named the target type; float to integer truncates toward 0.
    let inputs = vec![Some(f32(&[3], &[1.5, -2.5, 3.9]))];
    let n = node("Cast", &[("to", Attr::String("INT64".into()))], &inputs);
    let got = eval_node(&Registry::standard(), &n, &inputs, 1).unwrap();
    assert_eq!(got[0].as_i64().unwrap(), &[1, -2, 3]);
}
