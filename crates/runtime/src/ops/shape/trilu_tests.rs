use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("trilu_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn extreme_k_zeroes_or_keeps_everything() {
    // numpy: np.triu(m, k) for k far outside the matrix.
    let m = || Some(tf(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
    let k = |v| Some(tl(&[], &[v]));
    let run = |k, upper| {
        crate::ops::testing::test_support::eval(
            "Trilu",
            14,
            &[m(), k],
            1,
            &[("upper", Attr::Int(upper))],
        )
        .unwrap()[0]
            .as_f32()
            .unwrap()
            .to_vec()
    };
    assert_eq!(run(k(i64::MAX), 1), vec![0.0; 4]);
    assert_eq!(run(k(i64::MIN), 1), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(run(k(i64::MAX), 0), vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(run(k(i64::MIN), 0), vec![0.0; 4]);
}

#[test]
fn eyelike_refuses_huge_constants() {
    use crate::op::{BuildCtx, InputFact};
    use crate::{Fact, Registry};
    let n = crate::ops::testing::test_support::node("EyeLike", &[Some(tf(&[1], &[0.0]))], 1, &[]);
    let ctx = BuildCtx {
        node: &n,
        inputs: vec![Some(InputFact {
            fact: Fact::new(whittle_ir::DType::Bool, vec![1 << 20, 1 << 20]),
            value: None,
        })],
        opset: 9,
    };
    let e = Registry::standard().get("", "EyeLike").unwrap()(&ctx).unwrap_err();
    assert!(e.to_string().contains("byte limit"), "{e}");
}

#[test]
fn rejects_bad_inputs() {
    let e = build_err("Trilu", 14, &[Some(tf(&[3], &[0.0; 3]))], &[]);
    assert!(e.contains("rank 2"), "{e}");
    let e = build_err(
        "Trilu",
        14,
        &[Some(tf(&[2, 2], &[0.0; 4])), Some(tl(&[2], &[0, 1]))],
        &[],
    );
    assert!(e.contains("scalar"), "{e}");
    let e = build_err(
        "Trilu",
        14,
        &[Some(tf(&[2, 2], &[0.0; 4]))],
        &[("upper", Attr::Int(5))],
    );
    assert!(e.contains("upper"), "{e}");
    let e = build_err("EyeLike", 9, &[Some(tf(&[2, 2, 2], &[0.0; 8]))], &[]);
    assert!(e.contains("2-D"), "{e}");
    let e = build_err(
        "EyeLike",
        9,
        &[Some(tf(&[2, 2], &[0.0; 4]))],
        &[("dtype", Attr::Int(8))],
    );
    assert!(e.contains("dtype 8"), "{e}");
}
