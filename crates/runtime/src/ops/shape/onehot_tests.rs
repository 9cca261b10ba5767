use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("onehot_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_depth_values_and_axis() {
    let idx = || Some(tl(&[2], &[0, 1]));
    let vals = || Some(tf(&[2], &[0.0, 1.0]));
    let err = |inputs: &[Option<whittle_ir::Tensor>], attrs: &[(&str, Attr)], needle: &str| {
        let e = build_err("OneHot", 11, inputs, attrs);
        assert!(e.contains(needle), "'{e}' lacks '{needle}'");
    };
    err(&[idx(), Some(tl(&[], &[0])), vals()], &[], "positive");
    err(
        &[idx(), Some(tf(&[], &[f32::NAN])), vals()],
        &[],
        "positive",
    );
    err(&[idx(), Some(tl(&[2], &[2, 2])), vals()], &[], "scalar");
    err(
        &[idx(), Some(tl(&[], &[3])), Some(tf(&[3], &[0.0; 3]))],
        &[],
        "off_value",
    );
    err(
        &[idx(), Some(tl(&[], &[3])), vals()],
        &[("axis", Attr::Int(2))],
        "axis",
    );
}
