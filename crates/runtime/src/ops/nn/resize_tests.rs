use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("resize_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn rejects_bad_attributes() {
    let c = case("resize13_linear_half_pixel_up");
    expect_error(
        c,
        &[("antialias", Attr::Int(1))],
        "antialias=1 is not supported",
    );
    expect_error(c, &[("mode", Attr::String("area".into()))], "unknown mode");
    expect_error(
        c,
        &[("coordinate_transformation_mode", Attr::String("x".into()))],
        "coordinate_transformation_mode",
    );
    expect_error(
        c,
        &[("axes", Attr::Ints(vec![2]))],
        "scales has 4 values; expected 1",
    );
    expect_error(c, &[("axes", Attr::Ints(vec![2, 2, 1, 0]))], "listed twice");
    expect_error(c, &[("axes", Attr::Ints(vec![4, 2, 1, 0]))], "out of range");
    let n = case("resize13_nearest_round_prefer_floor_half_pixel");
    expect_error(
        n,
        &[("nearest_mode", Attr::String("up".into()))],
        "nearest_mode",
    );
    let k = case("resize18_not_larger");
    expect_error(
        k,
        &[("keep_aspect_ratio_policy", Attr::String("fit".into()))],
        "keep_aspect",
    );
    let u = case("resize13_nearest_u8");
    expect_error(
        u,
        &[("mode", Attr::String("linear".into()))],
        "not supported",
    );
    let u7 = case("upsample7_nearest");
    expect_error(
        u7,
        &[("scales", Attr::Floats(vec![1.0, 2.0]))],
        "scales has 2 values",
    );
    expect_error(
        u7,
        &[("scales", Attr::Floats(vec![1.0, 1.0, -2.0, 1.0]))],
        "positive",
    );
    expect_error(
        u7,
        &[("scales", Attr::Floats(vec![1.0, 1.0, 1e30, 1e30]))],
        "too large",
    );
}

#[test]
fn rejects_bad_inputs() {
    use crate::{eval_node, Registry};
    use whittle_ir::{Node, Tensor};
    let r = Registry::standard();
    let x = Some(Tensor::zeros(whittle_ir::DType::F32, vec![1, 1, 2, 2]).unwrap());
    let scales = Some(Tensor::from_f32(vec![4], vec![1.0, 1.0, 2.0, 2.0]).unwrap());
    let sizes = Some(Tensor::from_i64(vec![4], vec![1, 1, 3, 3]).unwrap());
    let both = Node::new("r", "Resize", &["x", "", "s", "z"], &["y"]);
    let err = eval_node(&r, &both, &[x.clone(), None, scales, sizes], 13).unwrap_err();
    assert!(err.to_string().contains("only one"), "{err}");
    let neither = Node::new("r", "Resize", &["x"], &["y"]);
    let err = eval_node(&r, &neither, std::slice::from_ref(&x), 13).unwrap_err();
    assert!(err.to_string().contains("one of scales and sizes"), "{err}");
    let neg = Some(Tensor::from_i64(vec![4], vec![1, 1, -3, 3]).unwrap());
    let sized = Node::new("r", "Resize", &["x", "", "", "z"], &["y"]);
    let err = eval_node(&r, &sized, &[x, None, None, neg], 13).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
}
