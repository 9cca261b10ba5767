use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("pool_cases.rs");

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_bad_attributes() {
    let base = CASES.iter().find(|c| c.name == "maxpool_k3s2").unwrap();
    expect_error(
        base,
        &[("kernel_shape", Attr::Ints(vec![3]))],
        "kernel_shape",
    );
    expect_error(
        base,
        &[("kernel_shape", Attr::Ints(vec![3, 0]))],
        "kernel_shape",
    );
    expect_error(base, &[("strides", Attr::Ints(vec![0, 1]))], "strides");
    expect_error(base, &[("pads", Attr::Ints(vec![1, 1]))], "pads");
    expect_error(
        base,
        &[("auto_pad", Attr::String("SAME".into()))],
        "auto_pad",
    );
    expect_error(base, &[("ceil_mode", Attr::Int(2))], "ceil_mode");
    expect_error(base, &[("storage_order", Attr::Int(3))], "storage_order");
    expect_error(
        base,
        &[("kernel_shape", Attr::Ints(vec![30, 3]))],
        "exceeds padded input",
    );
    expect_error(
        base,
        &[("dilations", Attr::Ints(vec![1 << 40, 1]))],
        "dilations",
    );
    let avg = CASES.iter().find(|c| c.name == "avgpool_k3s2").unwrap();
    expect_error(
        avg,
        &[("count_include_pad", Attr::Int(-1))],
        "count_include_pad",
    );
    let lp = CASES.iter().find(|c| c.name == "lppool_p3").unwrap();
    expect_error(lp, &[("p", Attr::Int(0))], "p must be positive");
}

#[test]
fn rejects_bad_inputs() {
    use crate::{eval_node, Registry};
    use whittle_ir::{Node, Tensor};
    let node =
        Node::new("p", "MaxPool", &["x"], &["y"]).with_attr("kernel_shape", Attr::Ints(vec![2]));
    let x = Tensor::from_f32(vec![4, 4], vec![0.0; 16]).unwrap();
    let err = eval_node(&Registry::standard(), &node, &[Some(x)], 12).unwrap_err();
    assert!(err.to_string().contains("spatial"), "{err}");
    let x = Tensor::from_i64(vec![1, 1, 4], vec![0; 4]).unwrap();
    let err = eval_node(&Registry::standard(), &node, &[Some(x)], 12).unwrap_err();
    assert!(err.to_string().contains("dtype"), "{err}");
    let g = Node::new("g", "GlobalAveragePool", &["x"], &["y"]);
    let x = Tensor::from_f32(vec![4, 4], vec![0.0; 16]).unwrap();
    assert!(eval_node(&Registry::standard(), &g, &[Some(x)], 12).is_err());
}
