use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("mvn_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_axes() {
    let base = CASES.iter().find(|c| c.name == "mvn_default").unwrap();
    expect_error(base, &[("axes", Attr::Ints(vec![0, 4]))], "out of range");
    expect_error(base, &[("axes", Attr::Ints(vec![1, -3]))], "more than once");
}
