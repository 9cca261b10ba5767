use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("rnn_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn rejects_bad_attributes() {
    let c = case("lstm_forward_full");
    let s = |v: &str| Attr::String(v.into());
    let ss = |v: &[&str]| Attr::Strings(v.iter().map(|x| x.to_string()).collect());
    expect_error(c, &[("direction", s("both"))], "unknown direction");
    expect_error(
        c,
        &[("direction", s("bidirectional"))],
        "expected [2, 12, 5]",
    );
    expect_error(c, &[("layout", Attr::Int(2))], "layout");
    expect_error(c, &[("hidden_size", Attr::Int(4))], "hidden_size 4");
    expect_error(
        c,
        &[("activations", ss(&["Sigmoid", "Tanh"]))],
        "expected 3",
    );
    expect_error(
        c,
        &[("activations", ss(&["Sigmoid", "Swish", "Tanh"]))],
        "Swish",
    );
    expect_error(c, &[("clip", Attr::Float(0.0))], "clip");
    // Batch-major reads X as [batch=4, seq=3, 5]: initial_h [1, 3, 3]
    // no longer fits.
    expect_error(c, &[("layout", Attr::Int(1))], "input initial_h has shape");
}

#[test]
fn rejects_bad_inputs() {
    use crate::{eval_node, EvalError, Registry, RunError};
    use whittle_ir::{Node, Tensor, TensorData};
    let r = Registry::standard();
    let f = |s: Vec<usize>| Some(Tensor::zeros(whittle_ir::DType::F32, s).unwrap());
    let node = Node::new("l", "LSTM", &["x", "w", "r", "", "lens"], &["y"]);
    let lens = |v: Vec<i32>| Some(Tensor::new(vec![2], TensorData::I32(v)).unwrap());
    let ins = |l| {
        [
            f(vec![3, 2, 4]),
            f(vec![1, 8, 4]),
            f(vec![1, 8, 2]),
            None,
            l,
        ]
    };
    assert!(eval_node(&r, &node, &ins(lens(vec![3, 1])), 14).is_ok());
    for bad in [vec![4, 1], vec![1, -1]] {
        match eval_node(&r, &node, &ins(lens(bad)), 14) {
            Err(EvalError::Run {
                err: RunError::IndexOutOfRange { .. },
                ..
            }) => {}
            other => panic!("expected an out-of-range error, got {other:?}"),
        }
    }
    let wrong_r = [f(vec![3, 2, 4]), f(vec![1, 8, 4]), f(vec![1, 8, 3])];
    let plain = Node::new("l", "LSTM", &["x", "w", "r"], &["y"]);
    let err = eval_node(&r, &plain, &wrong_r, 14).unwrap_err().to_string();
    assert!(err.contains("input W has shape"), "{err}");
    let x2 = [f(vec![3, 4]), f(vec![1, 8, 4]), f(vec![1, 8, 2])];
    let err = eval_node(&r, &plain, &x2, 14).unwrap_err().to_string();
    assert!(err.contains("rank 3"), "{err}");
    let gru = Node::new("g", "GRU", &["x", "w", "r", "", "", "", "c"], &["y"]);
    let seven = [
        f(vec![3, 2, 4]),
        f(vec![1, 6, 4]),
        f(vec![1, 6, 2]),
        None,
        None,
        None,
        f(vec![1, 2, 2]),
    ];
    let err = eval_node(&r, &gru, &seven, 14).unwrap_err().to_string();
    assert!(err.contains("at most 6 inputs"), "{err}");
}
