use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("einsum_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_equations() {
    let a = || Some(tf(&[2, 3], &[0.0; 6]));
    let b = || Some(tf(&[3, 2], &[0.0; 6]));
    let err = |eq: &str, inputs: &[Option<whittle_ir::Tensor>], needle: &str| {
        let e = build_err(
            "Einsum",
            12,
            inputs,
            &[("equation", Attr::String(eq.into()))],
        );
        assert!(e.contains(needle), "{eq}: '{e}' lacks '{needle}'");
    };
    err("ij,jk->ik", &[a()], "operands");
    err("ij,ij->ij", &[a(), b()], "size");
    err("ijk,jk->ik", &[a(), b()], "rank");
    err("ij,jk->iz", &[a(), b()], "not in any input");
    err("ij,jk->ii", &[a(), b()], "repeats");
    err("i$,jk", &[a(), b()], "cannot parse");
    err("...j,jk->k", &[a(), b()], "no '...'");
    err(
        "...ij,jk->...ik",
        &[
            Some(tf(&[2, 2, 3], &[0.0; 12])),
            Some(tf(&[3, 3, 2], &[0.0; 18])),
        ],
        "rank",
    );
    err("ij,jk->ik", &[a(), Some(tl(&[3, 2], &[0; 6]))], "dtype");
    let e = build_err("Einsum", 12, &[a()], &[]);
    assert!(e.contains("'equation'"), "{e}");
}
