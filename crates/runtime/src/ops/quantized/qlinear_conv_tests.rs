//! QLinearConv / ConvInteger tests: the generated cases of
//! `qlinear_conv_cases.rs` (onnxruntime outputs, within 1, and a naive
//! fixed-point reference, exactly), on one and two threads, plus errors.

use whittle_ir::{Attr, DType, Node, Tensor, TensorData};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::{Fact, Parallel, Registry, View, ViewMut};

/// An element type of a case tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dt {
    U8,
    I8,
    I32,
    F32,
}

/// One input tensor: integers in `i`, floats in `f`.
pub(crate) struct In {
    pub dt: Dt,
    pub shape: &'static [usize],
    pub i: &'static [i64],
    pub f: &'static [f32],
}

/// An attribute value.
pub(crate) enum A {
    I(i64),
    F(f32),
    S(&'static str),
    Is(&'static [i64]),
}

/// One reference case.
pub(crate) struct QCase {
    pub name: &'static str,
    pub op: &'static str,
    pub attrs: &'static [(&'static str, A)],
    pub inputs: &'static [Option<In>],
    pub out_dt: Dt,
    pub out_shape: &'static [usize],
    /// The naive fixed-point reference.
    pub fixed: &'static [i64],
    /// onnxruntime's output, when it runs the case.
    pub ort: Option<&'static [i64]>,
}

fn tensor(t: &In) -> Tensor {
    let shape = t.shape.to_vec();
    let data = match t.dt {
        Dt::U8 => TensorData::U8(t.i.iter().map(|&v| v as u8).collect()),
        Dt::I8 => TensorData::I8(t.i.iter().map(|&v| v as i8).collect()),
        Dt::I32 => TensorData::I32(t.i.iter().map(|&v| v as i32).collect()),
        Dt::F32 => TensorData::F32(t.f.to_vec()),
    };
    Tensor::new(shape, data).unwrap()
}

fn values(t: &Tensor) -> Vec<i64> {
    match t.data() {
        TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
        TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
        other => panic!("unexpected output {:?}", other.dtype()),
    }
}

fn node(op: &str, n_inputs: usize, attrs: &[(&str, Attr)]) -> Node {
    let names: Vec<String> = (0..n_inputs).map(|i| format!("in{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut n = Node::new("n", op, &names, &["y"]);
    for (k, v) in attrs {
        n = n.with_attr(k, v.clone());
    }
    n
}

/// Builds `node` with inputs constant where `constant` says so, runs it on
/// `threads` threads; returns the output and the kernel name.
fn eval(
    node: &Node,
    inputs: &[Option<Tensor>],
    constant: &[bool],
    threads: usize,
) -> Result<(Tensor, String), String> {
    let reg = Registry::standard();
    let build = reg.get("", &node.op_type).ok_or("unregistered")?;
    let ctx = BuildCtx {
        node,
        inputs: inputs
            .iter()
            .zip(constant)
            .map(|(t, &c)| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: c.then_some(t),
                })
            })
            .collect(),
        opset: 10,
    };
    let (facts, kernel) = match build(&ctx).map_err(|e| e.to_string())? {
        Built::Kernel { outputs, kernel } => (outputs, kernel),
        Built::Constant(_) => return Err("unexpected constant".into()),
    };
    let mut out = Tensor::zeros(facts[0].dtype, facts[0].shape.clone()).unwrap();
    // Poison, so that unwritten elements show.
    out.data_mut().as_bytes_mut().fill(0x5A);
    // Absorbed inputs arrive empty, as in a plan.
    let views: Vec<View<'_>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Some(t) if !kernel.absorbed_inputs().contains(&i) => View::of(t),
            Some(t) => View::new(t.dtype(), &[]),
            None => View::new(DType::F32, &[]),
        })
        .collect();
    let mut scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8)];
    let par = Parallel::new(threads)?;
    let mut rc = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    let mut outs = [ViewMut::of(&mut out)];
    kernel
        .run(&views, &mut outs, &mut rc)
        .map_err(|e| e.to_string())?;
    Ok((out, kernel.name()))
}

fn case_node(c: &QCase) -> Node {
    let attrs: Vec<(&str, Attr)> = c
        .attrs
        .iter()
        .map(|(k, v)| {
            let a = match v {
                A::I(i) => Attr::Int(*i),
                A::F(f) => Attr::Float(*f),
                A::S(s) => Attr::String(s.to_string()),
                A::Is(v) => Attr::Ints(v.to_vec()),
            };
            (*k, a)
        })
        .collect();
    crate::ops::testing::test_support::typed_activation(node(c.op, c.inputs.len(), &attrs))
}

#[test]
fn generated_cases() {
    let mut ort_checked = 0;
    for c in super::cases::CASES {
        let n = case_node(c);
        let inputs: Vec<Option<Tensor>> = c.inputs.iter().map(|t| t.as_ref().map(tensor)).collect();
        let all = vec![true; inputs.len()];
        let (one, name) = eval(&n, &inputs, &all, 1).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        let (two, _) = eval(&n, &inputs, &all, 2).unwrap();
        let want_dt = match c.out_dt {
            Dt::U8 => DType::U8,
            Dt::I8 => DType::I8,
            Dt::I32 => DType::I32,
            Dt::F32 => DType::F32,
        };
        assert_eq!(one.dtype(), want_dt, "{}", c.name);
        assert_eq!(one.shape(), c.out_shape, "{}", c.name);
        let got = values(&one);
        assert_eq!(got, values(&two), "{}: 1 vs 2 threads", c.name);
        assert_eq!(got, c.fixed, "{} ({name}): fixed-point reference", c.name);
        if let Some(ort) = c.ort {
            ort_checked += 1;
            let worst = got.iter().zip(ort).map(|(a, b)| (a - b).abs()).max();
            assert!(
                worst.unwrap_or(0) <= 1,
                "{} ({name}): differs from onnxruntime by {worst:?}",
                c.name
            );
        }
        assert!(name.starts_with("qconv."), "{name}");
    }
    assert!(ort_checked >= 30, "{ort_checked}");
}

/// The inputs of a small QLinearConv: x [1, 2, 5, 5] u8, w [2, 1, 3, 3] i8
/// (depthwise with group 2).
fn small() -> Vec<Option<Tensor>> {
    let x = Tensor::new(vec![1, 2, 5, 5], TensorData::U8((0..50).collect())).unwrap();
    let w = Tensor::new(
        vec![2, 1, 3, 3],
        TensorData::I8((0..18).map(|v| v - 9).collect()),
    )
    .unwrap();
    let u8s = |v: u8| Tensor::new(vec![], TensorData::U8(vec![v])).unwrap();
    let i8s = |v: i8| Tensor::new(vec![], TensorData::I8(vec![v])).unwrap();
    vec![
        Some(x),
        Some(Tensor::scalar_f32(0.02)),
        Some(u8s(3)),
        Some(w),
        Some(Tensor::scalar_f32(0.01)),
        Some(i8s(0)),
        Some(Tensor::scalar_f32(0.05)),
        Some(u8s(10)),
    ]
}

#[test]
fn kernel_names_say_what_ran() {
    let inputs = small();
    let all = vec![true; 8];
    let dw = node(
        "QLinearConv",
        8,
        &[("group", Attr::Int(2)), ("pads", Attr::Ints(vec![1; 4]))],
    );
    let (_, name) = eval(&dw, &inputs, &all, 1).unwrap();
    assert!(name.starts_with("qconv.depthwise3x3s1."), "{name}");
    let relu = dw.clone().with_activation(whittle_ir::Activation::Relu);
    let (y, name) = eval(&relu, &inputs, &all, 1).unwrap();
    assert!(name.ends_with("+relu"), "{name}");
    assert!(values(&y).iter().all(|&v| v >= 10), "relu clamps at y_zp");
    let mut dense = inputs.clone();
    dense[3] =
        Some(Tensor::new(vec![3, 2, 1, 1], TensorData::I8(vec![1, -2, 3, -4, 5, -6])).unwrap());
    let pw = node("QLinearConv", 8, &[]);
    let (y, name) = eval(&pw, &dense, &all, 1).unwrap();
    assert!(name.starts_with("qconv.1x1.qgemm."), "{name}");
    assert_eq!(y.shape(), &[1, 3, 5, 5]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let inputs = small();
    let all = vec![true; 8];
    let dw = node("QLinearConv", 8, &[("group", Attr::Int(2))]);
    // Unsupported fused activation.
    let sig = dw.clone().with_activation(whittle_ir::Activation::Sigmoid);
    let e = eval(&sig, &inputs, &all, 1).unwrap_err();
    assert!(e.contains("Sigmoid") || e.contains("sigmoid"), "{e}");
    // Run-time weights.
    let mut c = all.clone();
    c[3] = false;
    let e = eval(&dw, &inputs, &c, 1).unwrap_err();
    assert!(e.contains("must be a compile-time constant"), "{e}");
    // Per-channel scale of the wrong length.
    let mut bad = inputs.clone();
    bad[4] = Some(Tensor::from_f32(vec![3], vec![0.1, 0.1, 0.1]).unwrap());
    let e = eval(&dw, &bad, &all, 1).unwrap_err();
    assert!(e.contains("w_scale"), "{e}");
    // Zero point of the wrong type.
    let mut bad = inputs.clone();
    bad[2] = Some(Tensor::new(vec![], TensorData::I8(vec![3])).unwrap());
    let e = eval(&dw, &bad, &all, 1).unwrap_err();
    assert!(e.contains("x_zero_point"), "{e}");
    // f32 input.
    let mut bad = inputs.clone();
    bad[0] = Some(Tensor::from_f32(vec![1, 2, 5, 5], vec![0.0; 50]).unwrap());
    let e = eval(&dw, &bad, &all, 1).unwrap_err();
    assert!(e.contains("dtype"), "{e}");
    // Negative and infinite scales, wrong group.
    let mut bad = inputs.clone();
    bad[6] = Some(Tensor::scalar_f32(-1.0));
    assert!(eval(&dw, &bad, &all, 1).unwrap_err().contains("y_scale"));
    let g3 = node("QLinearConv", 8, &[("group", Attr::Int(3))]);
    assert!(eval(&g3, &inputs, &all, 1).is_err());
}
