//! Shared tests for the data-movement and misc ops (TopK,
//! scatter/gather, OneHot, Trilu, Compress, ...): the onnx.reference cases
//! with bool and f64 tensors (which the `Case` tables cannot hold), run-time
//! index checks, and in-place execution.

use whittle_ir::{Attr, Tensor};

use crate::op::{BuildCtx, InputFact};
use crate::ops::testing::test_support::{
    assert_close, eval, node, run_aliased, tb, td, tf, tl, RefCase,
};
use crate::{EvalError, Fact, Registry, RunError};

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
