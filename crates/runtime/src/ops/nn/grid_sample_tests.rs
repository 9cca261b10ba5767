use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf};
use whittle_ir::Attr;

include!("grid_sample_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn reflect_bounces_between_borders() {
    // By hand: [0, 3] reflects 4 to 2, -1 to 1, 7 to 1 (two bounces).
    assert_eq!(super::reflect(4.0, 0.0, 3.0), 2.0);
    assert_eq!(super::reflect(-1.0, 0.0, 3.0), 1.0);
    assert_eq!(super::reflect(7.0, 0.0, 3.0), 1.0);
    assert_eq!(super::reflect(-4.0, 0.0, 3.0), 2.0);
    assert_eq!(super::reflect(1.5, 0.0, 3.0), 1.5);
}

#[test]
fn rejects_bad_input() {
    let base = CASES
        .iter()
        .find(|c| c.name == "gs16_bilinear_zeros_ac0")
        .unwrap();
    expect_error(
        base,
        &[("mode", Attr::String("area".into()))],
        "mode 'area'",
    );
    expect_error(
        base,
        &[("padding_mode", Attr::String("wrap".into()))],
        "padding_mode",
    );
    expect_error(base, &[("align_corners", Attr::Int(2))], "align_corners");
    let x = || Some(tf(&[1, 1, 2, 2], &[0.0; 4]));
    let e = build_err(
        "GridSample",
        16,
        &[x(), Some(tf(&[1, 2, 2, 3], &[0.0; 12]))],
        &[],
    );
    assert!(e.contains("grid shape"), "{e}");
    let e = build_err(
        "GridSample",
        16,
        &[x(), Some(tf(&[2, 2, 2, 2], &[0.0; 16]))],
        &[],
    );
    assert!(e.contains("grid shape"), "{e}");
    let e = build_err(
        "GridSample",
        16,
        &[Some(tf(&[2, 2], &[0.0; 4])), Some(tf(&[2, 1], &[0.0; 2]))],
        &[],
    );
    assert!(e.contains("spatial"), "{e}");
}
