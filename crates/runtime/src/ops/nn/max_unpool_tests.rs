use crate::ops::testing::case_check::*;
use crate::ops::testing::test_support::{build_err, tf, tl};
use whittle_ir::Attr;

include!("max_unpool_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_attributes_and_shapes() {
    let base = CASES
        .iter()
        .find(|c| c.name == "maxunpool_2d_k2s2")
        .unwrap();
    expect_error(
        base,
        &[("kernel_shape", Attr::Ints(vec![2]))],
        "kernel_shape",
    );
    expect_error(base, &[("strides", Attr::Ints(vec![2]))], "strides");
    expect_error(base, &[("pads", Attr::Ints(vec![9, 9, 9, 9]))], "pads");
    expect_error(base, &[("pads", Attr::Ints(vec![-1, 0, 0, 0]))], "negative");
    let x = || Some(tf(&[1, 1, 2], &[1.0, 2.0]));
    let i = || Some(tl(&[1, 1, 2], &[0, 3]));
    let k = [
        ("kernel_shape", Attr::Ints(vec![2])),
        ("strides", Attr::Ints(vec![2])),
    ];
    let e = build_err("MaxUnpool", 11, &[x(), i(), Some(tl(&[3], &[1, 1, 3]))], &k);
    assert!(e.contains("at least the unpooled shape"), "{e}");
    let e = build_err("MaxUnpool", 11, &[x(), Some(tl(&[1, 2], &[0, 1]))], &k);
    assert!(e.contains("indices shape"), "{e}");
}
