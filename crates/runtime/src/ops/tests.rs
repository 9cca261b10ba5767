//! Tests across op families: build errors of the shape, reduction and
//! softmax ops are clear.

use whittle_ir::{Attr, Tensor};

use crate::ops::testing::test_support::{ar, build_err, ints, tf, tl, OpCase};

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
