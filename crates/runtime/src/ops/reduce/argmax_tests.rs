use whittle_ir::Attr;

use crate::ops::testing::test_support::{eval, tf, tl};

#[test]
fn argmax_nan_is_the_max() {
    let x = tf(&[4], &[1.0, f32::NAN, 3.0, f32::NAN]);
    let first = eval("ArgMax", 13, &[Some(x.clone())], 1, &[]).unwrap();
    assert_eq!(first[0], tl(&[1], &[1]));
    let last = eval(
        "ArgMax",
        13,
        &[Some(x)],
        1,
        &[("select_last_index", Attr::Int(1))],
    )
    .unwrap();
    assert_eq!(last[0], tl(&[1], &[3]));
}
