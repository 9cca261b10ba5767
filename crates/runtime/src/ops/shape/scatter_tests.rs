use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tb, tf, tl};
use whittle_ir::Attr;

include!("scatter_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_inputs() {
    let x = || Some(tf(&[2, 3], &[0.0; 6]));
    let e = build_err(
        "ScatterND",
        13,
        &[x(), Some(tl(&[1, 1], &[0])), Some(tf(&[1, 2], &[0.0; 2]))],
        &[],
    );
    assert!(e.contains("updates shape"), "{e}");
    let e = build_err(
        "ScatterND",
        18,
        &[x(), Some(tl(&[1, 1], &[0])), Some(tf(&[1, 3], &[0.0; 3]))],
        &[("reduction", Attr::String("sub".into()))],
    );
    assert!(e.contains("reduction 'sub'"), "{e}");
    let e = build_err(
        "ScatterND",
        13,
        &[x(), Some(tl(&[1, 1], &[0])), Some(tl(&[1, 3], &[0; 3]))],
        &[],
    );
    assert!(e.contains("dtype"), "{e}");
    let e = build_err(
        "ScatterElements",
        13,
        &[
            x(),
            Some(tl(&[3, 1], &[0; 3])),
            Some(tf(&[3, 1], &[0.0; 3])),
        ],
        &[("axis", Attr::Int(1))],
    );
    assert!(e.contains("does not fit"), "{e}");
    let e = build_err(
        "ScatterElements",
        13,
        &[x(), Some(tl(&[1, 1], &[0])), Some(tf(&[1, 2], &[0.0; 2]))],
        &[],
    );
    assert!(e.contains("differs from indices"), "{e}");
    let e = build_err(
        "ScatterElements",
        18,
        &[
            Some(tb(&[2], &[0, 1])),
            Some(tl(&[1], &[0])),
            Some(tb(&[1], &[1])),
        ],
        &[("reduction", Attr::String("add".into()))],
    );
    assert!(e.contains("reduction on dtype bool"), "{e}");
}
