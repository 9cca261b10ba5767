use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("gather_nd_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_shapes() {
    let x = Some(tf(&[2, 3], &[0.0; 6]));
    let err = |idx: &[usize], attrs: &[(&str, Attr)], needle: &str| {
        let n: usize = idx.iter().product();
        let e = build_err(
            "GatherND",
            13,
            &[x.clone(), Some(tl(idx, &vec![0; n]))],
            attrs,
        );
        assert!(e.contains(needle), "'{e}' lacks '{needle}'");
    };
    err(&[1, 3], &[], "last dim 3");
    err(&[1, 0], &[], "last dim 0");
    err(&[3, 1], &[("batch_dims", Attr::Int(1))], "differ");
    err(&[2, 1], &[("batch_dims", Attr::Int(2))], "batch_dims 2");
    err(&[2, 1], &[("batch_dims", Attr::Int(-1))], "non-negative");
    err(&[], &[], "rank 1");
}
