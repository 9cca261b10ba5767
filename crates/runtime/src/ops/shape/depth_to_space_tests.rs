use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("depth_to_space_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_attributes() {
    let d2s = CASES.iter().find(|c| c.name == "d2s_DCR_b2").unwrap();
    expect_error(d2s, &[("blocksize", Attr::Int(3))], "divisible");
    expect_error(d2s, &[("blocksize", Attr::Int(0))], "positive");
    expect_error(d2s, &[("blocksize", Attr::Int(-2))], "negative");
    expect_error(d2s, &[("blocksize", Attr::Int(1 << 40))], "blocksize");
    expect_error(d2s, &[("mode", Attr::String("XYZ".into()))], "mode");
    let s2d = CASES.iter().find(|c| c.name == "s2d_b2").unwrap();
    expect_error(s2d, &[("blocksize", Attr::Int(4))], "divisible");
}

#[test]
fn rejects_non_4d_input() {
    use crate::ops::testing::test_support::{build_err, tf};
    let x = Some(tf(&[4, 2, 2], &[0.0; 16]));
    let e = build_err("DepthToSpace", 13, &[x], &[("blocksize", Attr::Int(2))]);
    assert!(e.contains("4-D"), "{e}");
}
