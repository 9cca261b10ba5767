use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf};
use whittle_ir::Attr;

include!("lrn_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_input() {
    let base = CASES.iter().find(|c| c.name == "lrn_size3").unwrap();
    expect_error(base, &[("size", Attr::Int(0))], "size must be positive");
    let e = build_err(
        "LRN",
        13,
        &[Some(tf(&[2, 3], &[0.0; 6]))],
        &[("size", Attr::Int(3))],
    );
    assert!(e.contains("(N, C, D1"), "{e}");
    let e = build_err("LRN", 13, &[Some(tf(&[1, 2, 3], &[0.0; 6]))], &[]);
    assert!(e.contains("'size' is required"), "{e}");
}
