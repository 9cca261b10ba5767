//! Hand-written tests for the shape, reduction and softmax ops: error
//! cases, the in-place (aliased) path, run-time index errors, and identities
//! the reference cases do not cover.

use whittle_ir::{Attr, DType, Tensor};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::ops::testing::test_support::{build_err, eval, run_aliased, tf, tl};
use crate::{EvalError, Fact, Parallel, Registry, RunError, View, ViewMut};

/// Op, opset, inputs, attributes, and what the test expects.
type OpCase<'a, E> = (&'a str, i64, Vec<Option<Tensor>>, Vec<(&'a str, Attr)>, E);

fn ar(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    tf(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

fn ints<'a>(name: &'a str, v: &[i64]) -> (&'a str, Attr) {
    (name, Attr::Ints(v.to_vec()))
}

#[test]
fn view_ops_run_in_place_when_aliased() {
    let x = ar(&[2, 3, 4]);
    let cases: Vec<OpCase<Vec<usize>>> = vec![
        ("Identity", 13, vec![Some(x.clone())], vec![], vec![2, 3, 4]),
        (
            "Reshape",
            13,
            vec![Some(x.clone()), Some(tl(&[2], &[4, -1]))],
            vec![],
            vec![4, 6],
        ),
        (
            "Flatten",
            13,
            vec![Some(x.clone())],
            vec![("axis", Attr::Int(2))],
            vec![6, 4],
        ),
        (
            "Unsqueeze",
            13,
            vec![Some(x.clone()), Some(tl(&[1], &[0]))],
            vec![],
            vec![1, 2, 3, 4],
        ),
        (
            "Squeeze",
            11,
            vec![Some(ar(&[1, 24]))],
            vec![ints("axes", &[0])],
            vec![24],
        ),
        ("Dropout", 13, vec![Some(x.clone())], vec![], vec![2, 3, 4]),
    ];
    for (op, opset, inputs, attrs, shape) in cases {
        let (out, inplace) = run_aliased(op, opset, &inputs, &attrs);
        assert_eq!(inplace, Some(0), "{op} offers in-place");
        assert_eq!(out.shape(), &shape[..], "{op}");
        assert_eq!(out.as_bytes(), x.as_bytes(), "{op} keeps the bytes");
        // The copying path (not aliased) gives the same result.
        let copied = eval(op, opset, &inputs, 1, &attrs).unwrap();
        assert_eq!(copied[0], out, "{op}");
    }
}

#[test]
fn aliased_view_is_not_read() {
    // With the input aliased, the kernel must leave output 0 untouched
    // (the data is already there) even though the view is empty.
    let x = ar(&[4]);
    let (out, _) = run_aliased(
        "Reshape",
        13,
        &[Some(x.clone()), Some(tl(&[2], &[2, 2]))],
        &[],
    );
    assert_eq!(out.as_f32().unwrap(), x.as_f32().unwrap());
}

#[test]
fn dropout_mask_types_follow_opset() {
    let x = ar(&[2, 2]);
    let v7 = eval("Dropout", 7, &[Some(x.clone())], 2, &[]).unwrap();
    assert_eq!(
        v7[1],
        tf(&[2, 2], &[1.0; 4]),
        "opset 7 mask has the data type"
    );
    let v10 = eval("Dropout", 10, &[Some(x.clone())], 2, &[]).unwrap();
    assert_eq!(v10[1].dtype(), DType::Bool);
    assert_eq!(v10[1].as_bytes(), &[1, 1, 1, 1]);
    assert_eq!(v10[0], x);
    // Training with ratio 0 is the identity and allowed.
    let t = eval(
        "Dropout",
        13,
        &[
            Some(x.clone()),
            Some(Tensor::scalar_f32(0.0)),
            Some(Tensor::new(vec![], whittle_ir::TensorData::Bool(vec![1])).unwrap()),
        ],
        1,
        &[],
    )
    .unwrap();
    assert_eq!(t[0], x);
}

#[test]
fn gather_index_out_of_range_is_a_run_error() {
    for (idx, bad) in [(vec![0, 3], 3), (vec![-4, 0], -4)] {
        let err = eval(
            "Gather",
            13,
            &[Some(ar(&[3, 2])), Some(tl(&[2], &idx))],
            1,
            &[],
        )
        .unwrap_err();
        match err {
            EvalError::Run {
                err: RunError::IndexOutOfRange { index, size },
                ..
            } => {
                assert_eq!((index, size), (bad, 3));
            }
            other => panic!("unexpected {other}"),
        }
    }
    let err = eval(
        "GatherElements",
        13,
        &[Some(ar(&[2, 2])), Some(tl(&[2, 2], &[0, 1, 2, 0]))],
        1,
        &[],
    )
    .unwrap_err();
    assert!(matches!(
        err,
        EvalError::Run {
            err: RunError::IndexOutOfRange { index: 2, size: 2 },
            ..
        }
    ));
}

#[test]
fn gather_with_runtime_indices() {
    // Indices not known at build time: the kernel reads them at run time.
    let data = ar(&[4, 2]);
    let idx = tl(&[3], &[3, -1, 0]);
    let node = crate::ops::testing::test_support::node(
        "Gather",
        &[Some(data.clone()), Some(idx.clone())],
        1,
        &[],
    );
    let reg = Registry::standard();
    let ctx = BuildCtx {
        node: &node,
        inputs: vec![
            Some(InputFact {
                fact: Fact::new(DType::F32, vec![4, 2]),
                value: None,
            }),
            Some(InputFact {
                fact: Fact::new(DType::I64, vec![3]),
                value: None,
            }),
        ],
        opset: 13,
    };
    let Built::Kernel { outputs, kernel } = reg.get("", "Gather").unwrap()(&ctx).unwrap() else {
        panic!("kernel expected")
    };
    assert_eq!(outputs[0].shape, vec![3, 2]);
    let mut out = Tensor::zeros(DType::F32, vec![3, 2]).unwrap();
    let par = Parallel::single();
    kernel
        .run(
            &[View::of(&data), View::of(&idx)],
            &mut [ViewMut::of(&mut out)],
            &mut RunCtx {
                scratch: &mut [],
                par: &par,
            },
        )
        .unwrap();
    assert_eq!(out.as_f32().unwrap(), &[6.0, 7.0, 6.0, 7.0, 0.0, 1.0]);
}

#[test]
fn build_errors_are_clear() {
    let x = Some(ar(&[2, 3]));
    let cases: Vec<OpCase<&str>> = vec![
        (
            "Reshape",
            13,
            vec![x.clone(), Some(tl(&[1], &[5]))],
            vec![],
            "cannot view 6 elements",
        ),
        (
            "Reshape",
            13,
            vec![x.clone(), Some(tl(&[2], &[-1, -1]))],
            vec![],
            "more than one -1",
        ),
        (
            "Reshape",
            13,
            vec![x.clone(), Some(tl(&[2], &[4, -1]))],
            vec![],
            "cannot infer -1",
        ),
        (
            "Reshape",
            13,
            vec![x.clone(), Some(tl(&[3], &[1, 1, 0]))],
            vec![],
            "copies a dimension",
        ),
        (
            "Flatten",
            13,
            vec![x.clone()],
            vec![("axis", Attr::Int(3))],
            "out of range",
        ),
        (
            "Squeeze",
            13,
            vec![x.clone(), Some(tl(&[1], &[0]))],
            vec![],
            "cannot squeeze axis 0",
        ),
        (
            "Unsqueeze",
            13,
            vec![x.clone(), Some(tl(&[2], &[1, -3]))],
            vec![],
            "more than once",
        ),
        (
            "Unsqueeze",
            11,
            vec![x.clone()],
            vec![],
            "'axes' is required",
        ),
        (
            "Transpose",
            13,
            vec![x.clone()],
            vec![ints("perm", &[0, 0])],
            "more than once",
        ),
        (
            "Transpose",
            13,
            vec![x.clone()],
            vec![ints("perm", &[0])],
            "perm",
        ),
        (
            "Concat",
            13,
            vec![x.clone(), Some(ar(&[3, 3]))],
            vec![("axis", Attr::Int(1))],
            "does not match",
        ),
        ("Concat", 13, vec![x.clone()], vec![], "'axis' is required"),
        (
            "Split",
            13,
            vec![x.clone(), Some(tl(&[1], &[2]))],
            vec![("axis", Attr::Int(1))],
            "does not sum",
        ),
        (
            "Slice",
            13,
            vec![
                x.clone(),
                Some(tl(&[1], &[0])),
                Some(tl(&[1], &[1])),
                None,
                Some(tl(&[1], &[0])),
            ],
            vec![],
            "step",
        ),
        (
            "Slice",
            13,
            vec![x.clone(), Some(tl(&[2], &[0, 0])), Some(tl(&[1], &[1]))],
            vec![],
            "ends has 1",
        ),
        (
            "Gather",
            13,
            vec![x.clone(), Some(tf(&[1], &[0.0]))],
            vec![],
            "dtype f32",
        ),
        (
            "Gather",
            13,
            vec![x.clone(), Some(tl(&[1], &[0]))],
            vec![("axis", Attr::Int(2))],
            "out of range",
        ),
        (
            "Expand",
            13,
            vec![x.clone(), Some(tl(&[2], &[4, 3]))],
            vec![],
            "cannot be broadcast",
        ),
        (
            "Tile",
            13,
            vec![x.clone(), Some(tl(&[1], &[2]))],
            vec![],
            "repeats has 1",
        ),
        (
            "Pad",
            13,
            vec![x.clone(), Some(tl(&[2], &[1, 1]))],
            vec![],
            "pads has 2",
        ),
        (
            "Pad",
            13,
            vec![x.clone(), Some(tl(&[4], &[-3, 0, 0, 0]))],
            vec![],
            "negative",
        ),
        (
            "Pad",
            13,
            vec![x.clone(), Some(tl(&[4], &[0; 4]))],
            vec![("mode", Attr::String("wrap".into()))],
            "unsupported pad mode",
        ),
        (
            "Range",
            11,
            vec![
                Some(Tensor::scalar_f32(0.0)),
                Some(Tensor::scalar_f32(1.0)),
                Some(Tensor::scalar_f32(0.0)),
            ],
            vec![],
            "delta is 0",
        ),
        (
            "Range",
            11,
            vec![
                Some(Tensor::scalar_i64(0)),
                Some(Tensor::scalar_i64(i64::MAX)),
                Some(Tensor::scalar_i64(1)),
            ],
            vec![],
            "too many elements",
        ),
        (
            "ConstantOfShape",
            9,
            vec![Some(tl(&[2], &[2, -1]))],
            vec![],
            "negative dimension",
        ),
        ("Constant", 13, vec![], vec![], "exactly one value"),
        (
            "Constant",
            13,
            vec![],
            vec![("sparse_value", Attr::Unsupported("sparse".into()))],
            "sparse",
        ),
        (
            "ReduceSum",
            13,
            vec![x.clone(), Some(tl(&[1], &[2]))],
            vec![],
            "out of range",
        ),
        (
            "ReduceMean",
            18,
            vec![Some(tl(&[2], &[1, 2]))],
            vec![],
            "dtype i64",
        ),
        (
            "ReduceMax",
            11,
            vec![x.clone()],
            vec![ints("axes", &[1, -1])],
            "more than once",
        ),
        (
            "ArgMax",
            13,
            vec![x.clone()],
            vec![("axis", Attr::Int(-3))],
            "out of range",
        ),
        (
            "Softmax",
            13,
            vec![x.clone()],
            vec![("axis", Attr::Int(2))],
            "out of range",
        ),
        (
            "Softmax",
            13,
            vec![Some(tl(&[1], &[1]))],
            vec![],
            "dtype i64",
        ),
    ];
    for (op, opset, inputs, attrs, want) in cases {
        let msg = build_err(op, opset, &inputs, &attrs);
        assert!(msg.contains(want), "{op}: '{msg}' lacks '{want}'");
        assert!(msg.contains(op), "{op}: '{msg}' names the op");
    }
}

#[test]
fn non_constant_shape_inputs_are_rejected() {
    let node = crate::ops::testing::test_support::node(
        "Reshape",
        &[Some(ar(&[2])), Some(tl(&[1], &[2]))],
        1,
        &[],
    );
    let reg = Registry::standard();
    let ctx = BuildCtx {
        node: &node,
        inputs: vec![
            Some(InputFact {
                fact: Fact::new(DType::F32, vec![2]),
                value: None,
            }),
            Some(InputFact {
                fact: Fact::new(DType::I64, vec![1]),
                value: None,
            }),
        ],
        opset: 13,
    };
    let err = reg.get("", "Reshape").unwrap()(&ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("compile-time constant"), "{err}");
}

#[test]
fn constant_attribute_forms() {
    let forms: Vec<(&str, Attr, Tensor)> = vec![
        ("value", Attr::Tensor(ar(&[2])), ar(&[2])),
        ("value_float", Attr::Float(2.5), Tensor::scalar_f32(2.5)),
        (
            "value_floats",
            Attr::Floats(vec![1.0, 2.0]),
            tf(&[2], &[1.0, 2.0]),
        ),
        ("value_int", Attr::Int(-7), Tensor::scalar_i64(-7)),
        ("value_ints", Attr::Ints(vec![3, 4]), tl(&[2], &[3, 4])),
    ];
    for (name, attr, want) in forms {
        let got = eval("Constant", 13, &[], 1, &[(name, attr)]).unwrap();
        assert_eq!(got, vec![want], "{name}");
    }
    let err = build_err(
        "Constant",
        13,
        &[],
        &[("value_string", Attr::String("s".into()))],
    );
    assert!(err.contains("string"), "{err}");
}

#[test]
fn shape_and_size_are_constants() {
    let reg = Registry::standard();
    let x = ar(&[2, 3]);
    for op in ["Shape", "Size"] {
        let node = crate::ops::testing::test_support::node(op, &[Some(x.clone())], 1, &[]);
        let ctx = BuildCtx {
            node: &node,
            inputs: vec![Some(InputFact {
                fact: Fact::new(DType::F32, vec![2, 3]),
                value: None,
            })],
            opset: 13,
        };
        assert!(
            matches!(reg.get("", op).unwrap()(&ctx).unwrap(), Built::Constant(_)),
            "{op}"
        );
    }
}

/// Naive softmax in f64 along `axis` of a row-major tensor.
fn softmax_ref(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut y = vec![0f32; x.len()];
    for o in 0..outer {
        for j in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + j;
            let m = (0..n)
                .map(|k| f64::from(x[at(k)]))
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|k| (f64::from(x[at(k)]) - m).exp()).sum();
            for k in 0..n {
                let v = f64::from(x[at(k)]) - m;
                y[at(k)] = if log { v - s.ln() } else { v.exp() / s } as f32;
            }
        }
    }
    y
}

#[test]
fn softmax_matches_naive_reference_on_larger_shapes() {
    let shape = [3usize, 50, 70];
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
        .collect();
    let t = tf(&shape, &x);
    for (op, log) in [("Softmax", false), ("LogSoftmax", true)] {
        for axis in 0..3 {
            let got = eval(
                op,
                13,
                &[Some(t.clone())],
                1,
                &[("axis", Attr::Int(axis as i64))],
            )
            .unwrap();
            let want = softmax_ref(&x, &shape, axis, log);
            for (g, w) in got[0].as_f32().unwrap().iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 2e-6 * w.abs() + 1e-6,
                    "{op} axis {axis}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn softmax_threads_give_identical_results() {
    let shape = vec![64usize, 1000];
    let x: Vec<f32> = (0..64_000)
        .map(|i| ((i * 31 % 977) as f32) / 100.0)
        .collect();
    let t = tf(&shape, &x);
    let node = crate::ops::testing::test_support::node("Softmax", &[Some(t.clone())], 1, &[]);
    let reg = Registry::standard();
    let ctx = BuildCtx {
        node: &node,
        inputs: vec![Some(InputFact {
            fact: Fact::new(DType::F32, shape.clone()),
            value: Some(&t),
        })],
        opset: 13,
    };
    let Built::Kernel { kernel, .. } = reg.get("", "Softmax").unwrap()(&ctx).unwrap() else {
        panic!()
    };
    let mut outs = Vec::new();
    for threads in [1, 2, 3] {
        let par = Parallel::new(threads).unwrap();
        let mut out = Tensor::zeros(DType::F32, shape.clone()).unwrap();
        kernel
            .run(
                &[View::of(&t)],
                &mut [ViewMut::of(&mut out)],
                &mut RunCtx {
                    scratch: &mut [],
                    par: &par,
                },
            )
            .unwrap();
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
    let want = softmax_ref(&x, &shape, 1, false);
    for (g, w) in outs[0].as_f32().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 2e-6 * w.abs() + 1e-7);
    }
}

#[test]
fn large_transpose_matches_index_formula() {
    // 4-D perms exercise both the tiled and the strided walks.
    let shape = [2usize, 17, 33, 9];
    let x = ar(&shape);
    let xs = x.as_f32().unwrap();
    for perm in [
        [0, 2, 3, 1],
        [0, 3, 1, 2],
        [3, 2, 1, 0],
        [1, 0, 3, 2],
        [0, 1, 3, 2],
    ] {
        let got = eval(
            "Transpose",
            13,
            &[Some(x.clone())],
            1,
            &[ints("perm", &perm.map(|p| p as i64))],
        )
        .unwrap();
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        assert_eq!(got[0].shape(), &out_shape[..]);
        let in_strides = [17 * 33 * 9, 33 * 9, 9, 1];
        let g = got[0].as_f32().unwrap();
        let mut i = 0;
        for a in 0..out_shape[0] {
            for b in 0..out_shape[1] {
                for c in 0..out_shape[2] {
                    for d in 0..out_shape[3] {
                        let idx = [a, b, c, d];
                        let src: usize = (0..4).map(|k| idx[k] * in_strides[perm[k]]).sum();
                        assert_eq!(g[i], xs[src], "perm {perm:?} at {idx:?}");
                        i += 1;
                    }
                }
            }
        }
    }
}

#[test]
fn reductions_match_naive_sums_on_every_axis_set() {
    let shape = [3usize, 4, 5, 2];
    let x: Vec<f32> = (0..120)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
        .collect();
    let t = tf(&shape, &x);
    for mask in 0u32..16 {
        let axes: Vec<i64> = (0..4)
            .filter(|k| mask & (1 << k) != 0)
            .map(|k| k as i64)
            .collect();
        if axes.is_empty() {
            continue;
        }
        let got = eval(
            "ReduceSum",
            13,
            &[Some(t.clone()), Some(tl(&[axes.len()], &axes))],
            1,
            &[],
        )
        .unwrap();
        let out_shape: Vec<usize> = (0..4)
            .map(|k| if mask & (1 << k) != 0 { 1 } else { shape[k] })
            .collect();
        let mut want = vec![0f64; out_shape.iter().product()];
        for (i, &v) in x.iter().enumerate() {
            let (mut rem, mut o) = (i, 0);
            let mut mul = 1;
            for k in (0..4).rev() {
                let p = rem % shape[k];
                rem /= shape[k];
                if mask & (1 << k) == 0 {
                    o += p * mul;
                }
                mul *= out_shape[k];
            }
            want[o] += f64::from(v);
        }
        assert_eq!(got[0].shape(), &out_shape[..], "axes {axes:?}");
        for (g, w) in got[0].as_f32().unwrap().iter().zip(&want) {
            assert!(
                (f64::from(*g) - w).abs() < 1e-4,
                "axes {axes:?}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn reduce_empty_and_scalar_edge_cases() {
    // Reducing an empty axis yields each op's identity.
    let e = tf(&[2, 0], &[]);
    let axes = || Some(tl(&[1], &[1]));
    let sum = eval("ReduceSum", 13, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(sum[0], tf(&[2, 1], &[0.0, 0.0]));
    let prod = eval("ReduceProd", 18, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(prod[0], tf(&[2, 1], &[1.0, 1.0]));
    let max = eval("ReduceMax", 18, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(max[0], tf(&[2, 1], &[f32::NEG_INFINITY; 2]));
    let lse = eval("ReduceLogSumExp", 18, &[Some(e), axes()], 1, &[]).unwrap();
    assert_eq!(lse[0], tf(&[2, 1], &[f32::NEG_INFINITY; 2]));
    // A scalar reduces to itself.
    let s = eval("ReduceMean", 13, &[Some(Tensor::scalar_f32(4.0))], 1, &[]).unwrap();
    assert_eq!(s[0], Tensor::scalar_f32(4.0));
    // NaN propagates through max like numpy.
    let n = eval(
        "ReduceMax",
        13,
        &[Some(tf(&[3], &[1.0, f32::NAN, 2.0]))],
        1,
        &[],
    )
    .unwrap();
    assert!(n[0].as_f32().unwrap()[0].is_nan());
}

#[test]
fn argmax_nan_is_the_max() {
    let x = tf(&[4], &[1.0, f32::NAN, 3.0, f32::NAN]);
    let first = eval("ArgMax", 13, &[Some(x.clone())], 1, &[]).unwrap();
    assert_eq!(first[0], tl(&[1], &[1]));
    let last = eval(
        "ArgMax",
        13,
        &[Some(x)],
        1,
        &[("select_last_index", Attr::Int(1))],
    )
    .unwrap();
    assert_eq!(last[0], tl(&[1], &[3]));
}

#[test]
fn dropout_ratio_may_be_a_runtime_value_in_inference() {
    let x = ar(&[2]);
    let r = Tensor::scalar_f32(0.3);
    let node = crate::ops::testing::test_support::node("Dropout", &[Some(x), Some(r)], 1, &[]);
    let reg = Registry::standard();
    let ctx = BuildCtx {
        node: &node,
        inputs: vec![
            Some(InputFact {
                fact: Fact::new(DType::F32, vec![2]),
                value: None,
            }),
            Some(InputFact {
                fact: Fact::new(DType::F32, vec![]),
                value: None,
            }),
        ],
        opset: 13,
    };
    let built = reg.get("", "Dropout").unwrap()(&ctx).unwrap();
    assert!(matches!(built, Built::Kernel { .. }));
}
