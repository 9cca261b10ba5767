//! Tests across the shape and data-movement ops: the onnx.reference cases
//! with bool and f64 tensors (which the `Case` tables cannot hold), run-time
//! index checks, in-place (aliased) execution, int8/uint8 data, and
//! identities the reference cases do not cover.

use whittle_ir::{Attr, DType, Tensor, TensorData};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::ops::testing::test_support::{
    ar, assert_close, build_err, eval, ints, node, run_aliased, tb, td, tf, tl, OpCase, RefCase,
};
use crate::{EvalError, Fact, Parallel, Registry, RunError, View, ViewMut};

include!("data_ops_refs.rs");

/// The run error of evaluating a node on constant inputs.
fn run_err(op: &str, opset: i64, inputs: &[Option<Tensor>], attrs: &[(&str, Attr)]) -> RunError {
    match eval(op, opset, inputs, 1, attrs) {
        Err(EvalError::Run { err, .. }) => err,
        other => panic!("{op}: expected a run error, got {other:?}"),
    }
}

#[test]
fn bool_and_f64_reference_cases() {
    for c in bool_cases() {
        let got = eval(c.op, c.opset, &c.inputs, c.outputs.len(), &c.attrs)
            .unwrap_or_else(|e| panic!("{}: {e}", c.name));
        for (g, w) in got.iter().zip(&c.outputs) {
            assert_close(c.name, g, w, 1e-6);
        }
    }
}

#[test]
fn indices_out_of_range_are_run_errors() {
    let x = || Some(tf(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
    let oob = |index, size| RunError::IndexOutOfRange { index, size };
    assert_eq!(
        run_err("GatherND", 13, &[x(), Some(tl(&[1, 2], &[1, 3]))], &[]),
        oob(3, 3)
    );
    assert_eq!(
        run_err("GatherND", 13, &[x(), Some(tl(&[1, 1], &[-3]))], &[]),
        oob(-3, 2)
    );
    assert_eq!(
        run_err(
            "ScatterND",
            13,
            &[x(), Some(tl(&[1, 1], &[2])), Some(tf(&[1, 3], &[0.0; 3]))],
            &[]
        ),
        oob(2, 2)
    );
    assert_eq!(
        run_err(
            "ScatterElements",
            13,
            &[x(), Some(tl(&[1, 1], &[-4])), Some(tf(&[1, 1], &[0.0]))],
            &[("axis", Attr::Int(1))]
        ),
        oob(-4, 3)
    );
    assert_eq!(
        run_err(
            "ReverseSequence",
            10,
            &[x(), Some(tl(&[3], &[1, 3, 0]))],
            &[]
        ),
        oob(3, 3)
    );
    assert_eq!(
        run_err(
            "MaxUnpool",
            11,
            &[
                Some(tf(&[1, 1, 2], &[1.0, 2.0])),
                Some(tl(&[1, 1, 2], &[0, 4]))
            ],
            &[
                ("kernel_shape", Attr::Ints(vec![2])),
                ("strides", Attr::Ints(vec![2]))
            ]
        ),
        oob(4, 4)
    );
    // A bad index after good ones still fails cleanly.
    assert_eq!(
        run_err("GatherND", 13, &[x(), Some(tl(&[3, 1], &[0, 1, 7]))], &[]),
        oob(7, 2)
    );
}

#[test]
fn scatter_and_trilu_run_in_place() {
    let data = tf(&[4], &[1.0, 2.0, 3.0, 4.0]);
    let (out, offer) = run_aliased(
        "ScatterND",
        16,
        &[
            Some(data.clone()),
            Some(tl(&[2, 1], &[3, 3])),
            Some(tf(&[2], &[10.0, 20.0])),
        ],
        &[("reduction", Attr::String("add".into()))],
    );
    assert_eq!(offer, Some(0));
    // numpy: d = [1, 2, 3, 4]; np.add.at(d, [3, 3], [10, 20]) -> [1, 2, 3, 34]
    assert_eq!(out.as_f32().unwrap(), &[1.0, 2.0, 3.0, 34.0]);
    let m = tf(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let (out, offer) = run_aliased("Trilu", 14, &[Some(m)], &[("upper", Attr::Int(0))]);
    assert_eq!(offer, Some(0));
    // np.tril([[1, 2, 3], [4, 5, 6]]) -> [[1, 0, 0], [4, 5, 0]]
    assert_eq!(out.as_f32().unwrap(), &[1.0, 0.0, 0.0, 4.0, 5.0, 0.0]);
}

#[test]
fn data_dependent_shapes_need_constants() {
    let x = tf(&[2, 2], &[1.0, 0.0, 2.0, 0.0]);
    let cond = tb(&[2], &[1, 0]);
    for (op, inputs) in [
        ("Compress", vec![Some(x.clone()), Some(cond)]),
        ("NonZero", vec![Some(x.clone())]),
    ] {
        let n = node(op, &inputs, 1, &[]);
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
            opset: 13,
        };
        let e = Registry::standard().get("", op).unwrap()(&ctx)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("must be a compile-time constant") && e.contains("depends on its values"),
            "{e}"
        );
    }
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

// int8 / uint8 data: the data-movement ops `fuse_qdq` runs on quantized
// values directly accept i8 and u8 and move the bytes unchanged.

fn q8(dtype: DType, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let data = match dtype {
        DType::I8 => TensorData::I8((0..n).map(|i| (i as i32 * 37 - 100) as i8).collect()),
        _ => TensorData::U8((0..n).map(|i| (i * 37 % 256) as u8).collect()),
    };
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn i8_elems(t: &Tensor) -> Vec<i64> {
    t.to_i64_vec().unwrap()
}

#[test]
fn data_movement_accepts_int8() {
    for dt in [DType::I8, DType::U8] {
        let x = q8(dt, &[1, 2, 3, 4]);
        let v = i8_elems(&x);
        let one = |op: &str, extra: Vec<Option<Tensor>>, attrs: &[(&str, Attr)], opset: i64| {
            let mut ins = vec![Some(x.clone())];
            ins.extend(extra);
            let out = eval(op, opset, &ins, 1, attrs).unwrap_or_else(|e| panic!("{op} {dt}: {e}"));
            assert_eq!(out[0].dtype(), dt, "{op}");
            out.into_iter().next().unwrap()
        };
        assert_eq!(
            i8_elems(&one("Reshape", vec![Some(tl(&[2], &[6, 4]))], &[], 13)),
            v
        );
        assert_eq!(i8_elems(&one("Flatten", vec![], &[], 13)), v);
        assert_eq!(
            i8_elems(&one("Squeeze", vec![Some(tl(&[1], &[0]))], &[], 13)),
            v
        );
        assert_eq!(
            i8_elems(&one("Unsqueeze", vec![Some(tl(&[1], &[0]))], &[], 13)),
            v
        );
        let t = one(
            "Transpose",
            vec![],
            &[("perm", Attr::Ints(vec![0, 1, 3, 2]))],
            13,
        );
        assert_eq!(t.shape(), [1, 2, 4, 3]);
        assert_eq!(i8_elems(&t)[1], v[4]);
        let s = one(
            "Slice",
            vec![
                Some(tl(&[1], &[3])),
                Some(tl(&[1], &[4])),
                Some(tl(&[1], &[3])),
            ],
            &[],
            13,
        );
        assert_eq!(i8_elems(&s), [v[3], v[7], v[11], v[15], v[19], v[23]]);
        let c = eval(
            "Concat",
            13,
            &[Some(x.clone()), Some(x.clone())],
            1,
            &[("axis", Attr::Int(1))],
        )
        .unwrap();
        assert_eq!(c[0].shape(), [1, 4, 3, 4]);
        let sp = eval(
            "Split",
            13,
            &[Some(x.clone())],
            2,
            &[("axis", Attr::Int(1))],
        )
        .unwrap();
        assert_eq!(i8_elems(&sp[1]), v[12..]);
        let pad_value = Tensor::new(
            vec![],
            match dt {
                DType::I8 => TensorData::I8(vec![-7]),
                _ => TensorData::U8(vec![9]),
            },
        )
        .unwrap();
        let p = one(
            "Pad",
            vec![
                Some(tl(&[8], &[0, 0, 0, 1, 0, 0, 0, 0])),
                Some(pad_value.clone()),
            ],
            &[],
            13,
        );
        assert_eq!(p.shape(), [1, 2, 3, 5]);
        assert_eq!(i8_elems(&p)[0], i8_elems(&pad_value)[0]);
        assert_eq!(i8_elems(&p)[1], v[0]);
        let scales = Tensor::from_f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]).unwrap();
        let r = one(
            "Resize",
            vec![None, Some(scales)],
            &[("mode", Attr::String("nearest".into()))],
            13,
        );
        assert_eq!(r.shape(), [1, 2, 6, 8]);
        assert_eq!(i8_elems(&r)[..4], [v[0], v[0], v[1], v[1]]);
        let m = one(
            "MaxPool",
            vec![],
            &[("kernel_shape", Attr::Ints(vec![1, 2]))],
            13,
        );
        assert_eq!(m.shape(), [1, 2, 3, 3]);
    }
}
