use crate::ops::testing::test_support::{assert_close, build_err, eval, tf, tl};
use whittle_ir::Attr;

/// Expected values: numpy with the formulas of onnx.reference.
#[test]
fn matches_reference_values() {
    let run = |op: &str, size: i64, periodic: i64| {
        eval(
            op,
            17,
            &[Some(tl(&[], &[size]))],
            1,
            &[("periodic", Attr::Int(periodic))],
        )
        .unwrap()
        .remove(0)
    };
    // np: 0.5 - 0.5 * cos(2 pi n / 4), n = 0..4
    assert_close(
        "hann",
        &run("HannWindow", 4, 1),
        &tf(&[4], &[0.0, 0.5, 1.0, 0.5]),
        1e-6,
    );
    // np: 25/46 - 21/46 * cos(2 pi n / 4), n = 0..5
    assert_close(
        "hamming",
        &run("HammingWindow", 5, 0),
        &tf(&[5], &[0.08695652, 0.54347825, 1.0, 0.54347825, 0.08695652]),
        1e-6,
    );
    // np: 0.42 - 0.5 cos(2 pi n / 3) + 0.08 cos(4 pi n / 3), n = 0..3
    assert_close(
        "blackman",
        &run("BlackmanWindow", 3, 1),
        &tf(&[3], &[0.0, 0.63, 0.63]),
        1e-6,
    );
    assert_close("one", &run("HannWindow", 1, 0), &tf(&[1], &[1.0]), 0.0);
    assert_eq!(run("HannWindow", 0, 1).shape(), &[0]);
}

#[test]
fn output_datatype_and_errors() {
    let got = eval(
        "HannWindow",
        17,
        &[Some(tl(&[], &[2]))],
        1,
        &[("output_datatype", Attr::Int(11))],
    )
    .unwrap();
    assert_eq!(got[0].dtype(), whittle_ir::DType::F64);
    let e = build_err("HannWindow", 17, &[Some(tl(&[], &[-1]))], &[]);
    assert!(e.contains("non-negative"), "{e}");
    // A hostile size is refused before anything is allocated.
    let e = build_err("HannWindow", 17, &[Some(tl(&[], &[1 << 40]))], &[]);
    assert!(e.contains("byte limit"), "{e}");
    let e = build_err(
        "HannWindow",
        17,
        &[Some(tl(&[], &[3]))],
        &[("output_datatype", Attr::Int(9))],
    );
    assert!(e.contains("output_datatype"), "{e}");
    let e = build_err(
        "HannWindow",
        17,
        &[Some(tl(&[], &[3]))],
        &[("periodic", Attr::Int(2))],
    );
    assert!(e.contains("periodic"), "{e}");
    let e = build_err("HannWindow", 17, &[Some(tf(&[], &[3.0]))], &[]);
    assert!(e.contains("dtype"), "{e}");
}
