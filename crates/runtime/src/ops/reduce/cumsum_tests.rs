use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::run_dynamic;
use crate::ops::testing::test_support::{build_err, eval, tf, tl};
use crate::{EvalError, RunError};
use whittle_ir::Attr;

include!("cumsum_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_axis_and_flags() {
    let x = Some(tf(&[2, 3], &[0.0; 6]));
    let e = build_err("CumSum", 14, &[x.clone(), Some(tl(&[], &[2]))], &[]);
    assert!(e.contains("axis 2"), "{e}");
    let e = build_err("CumSum", 14, &[x.clone(), Some(tl(&[2], &[0, 1]))], &[]);
    assert!(e.contains("scalar"), "{e}");
    let e = build_err(
        "CumSum",
        14,
        &[x.clone(), Some(tl(&[], &[0]))],
        &[("reverse", Attr::Int(3))],
    );
    assert!(e.contains("reverse"), "{e}");
    let e = build_err("CumSum", 14, &[x, Some(tf(&[], &[0.0]))], &[]);
    assert!(e.contains("dtype"), "{e}");
}

#[test]
fn runtime_axis_is_checked() {
    let x = tf(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    let axis = tl(&[], &[-3]);
    let r = run_dynamic("CumSum", 14, &[Some(x.clone()), Some(axis.clone())], 1, &[]);
    assert_eq!(
        r.unwrap_err(),
        RunError::IndexOutOfRange { index: -3, size: 2 }
    );
    // With a constant axis the same mistake is a build error.
    let e = eval("CumSum", 14, &[Some(x), Some(axis)], 1, &[]).unwrap_err();
    assert!(matches!(e, EvalError::Build(_)), "{e}");
}
