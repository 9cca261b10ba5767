use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("reverse_sequence_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_axes_and_lengths() {
    let x = || Some(tf(&[2, 3], &[0.0; 6]));
    let e = build_err(
        "ReverseSequence",
        10,
        &[x(), Some(tl(&[3], &[1; 3]))],
        &[("batch_axis", Attr::Int(0))],
    );
    assert!(e.contains("0 and 1"), "{e}");
    let e = build_err("ReverseSequence", 10, &[x(), Some(tl(&[2], &[1; 2]))], &[]);
    assert!(e.contains("expected [3]"), "{e}");
    let e = build_err(
        "ReverseSequence",
        10,
        &[Some(tf(&[3], &[0.0; 3])), Some(tl(&[1], &[1]))],
        &[],
    );
    assert!(e.contains("rank 2"), "{e}");
}
