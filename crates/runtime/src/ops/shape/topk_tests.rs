use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, eval, tf, tl};
use whittle_ir::Attr;

include!("topk_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn nan_ranks_highest() {
    // numpy's sort puts NaN last: largest-first takes it first.
    let x = Some(tf(&[4], &[1.0, f32::NAN, 3.0, -1.0]));
    let k = Some(tl(&[1], &[2]));
    let got = eval("TopK", 11, &[x.clone(), k.clone()], 2, &[]).unwrap();
    assert!(got[0].as_f32().unwrap()[0].is_nan());
    assert_eq!(got[1].as_i64().unwrap(), &[1, 2]);
    let got = eval("TopK", 11, &[x, k], 2, &[("largest", Attr::Int(0))]).unwrap();
    assert_eq!(got[1].as_i64().unwrap(), &[3, 0]);
}

#[test]
fn rejects_bad_k_and_attributes() {
    let x = Some(tf(&[2, 3], &[0.0; 6]));
    let k = |v: &[i64]| Some(tl(&[v.len()], v));
    let err = |inputs: &[Option<whittle_ir::Tensor>], attrs: &[(&str, Attr)], needle: &str| {
        let e = build_err("TopK", 11, inputs, attrs);
        assert!(e.contains(needle), "'{e}' lacks '{needle}'");
    };
    err(&[x.clone(), k(&[4])], &[], "k = 4");
    err(&[x.clone(), k(&[-1])], &[], "k = -1");
    err(&[x.clone(), k(&[1, 1])], &[], "one value");
    err(&[x.clone(), k(&[1])], &[("axis", Attr::Int(2))], "axis");
    err(
        &[x.clone(), k(&[1])],
        &[("largest", Attr::Int(2))],
        "largest",
    );
    err(
        &[x.clone(), k(&[1])],
        &[("sorted", Attr::Int(-1))],
        "sorted",
    );
    err(&[Some(tf(&[], &[1.0])), k(&[1])], &[], "rank");
    let e = build_err("TopK", 1, &[x], &[]);
    assert!(e.contains("'k'"), "{e}");
}
