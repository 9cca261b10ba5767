use crate::ops::testing::case_check::*;
use whittle_ir::Attr;

include!("norm_cases.rs");

fn case(name: &str) -> &'static Case {
    CASES.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn matches_references() {
    check_all(CASES);
}

#[test]
fn rejects_training_and_bad_attributes() {
    let bn = case("batchnorm_15");
    expect_error(bn, &[("training_mode", Attr::Int(1))], "training_mode=1");
    expect_error(bn, &[("epsilon", Attr::Float(f32::NAN))], "epsilon");
    let ln = case("layernorm_axis-1");
    expect_error(ln, &[("axis", Attr::Int(4))], "axis 4 is out of range");
    expect_error(ln, &[("stash_type", Attr::Int(11))], "stash_type");
    let gn = case("groupnorm_21");
    expect_error(gn, &[("num_groups", Attr::Int(4))], "num_groups");
    expect_error(gn, &[("num_groups", Attr::Int(0))], "num_groups");
}

#[test]
fn rejects_training_outputs_and_bad_shapes() {
    use crate::{eval_node, Registry};
    use whittle_ir::{Node, Tensor};
    let r = Registry::standard();
    let t = |s: Vec<usize>| Some(Tensor::zeros(whittle_ir::DType::F32, s).unwrap());
    let bn = Node::new(
        "bn",
        "BatchNormalization",
        &["x", "s", "b", "m", "v"],
        &["y", "rm"],
    );
    let inputs = [
        t(vec![1, 2, 3]),
        t(vec![2]),
        t(vec![2]),
        t(vec![2]),
        t(vec![2]),
    ];
    let err = eval_node(&r, &bn, &inputs, 15).unwrap_err().to_string();
    assert!(err.contains("training outputs"), "{err}");
    let bn = Node::new(
        "bn",
        "BatchNormalization",
        &["x", "s", "b", "m", "v"],
        &["y"],
    );
    let bad = [
        t(vec![1, 2, 3]),
        t(vec![3]),
        t(vec![2]),
        t(vec![2]),
        t(vec![2]),
    ];
    let err = eval_node(&r, &bn, &bad, 15).unwrap_err().to_string();
    assert!(err.contains("scale"), "{err}");
    let gn = Node::new("gn", "GroupNormalization", &["x", "s", "b"], &["y"])
        .with_attr("num_groups", Attr::Int(2));
    let per_channel = [t(vec![1, 4, 3]), t(vec![4]), t(vec![4])];
    let err = eval_node(&r, &gn, &per_channel, 18)
        .unwrap_err()
        .to_string();
    assert!(err.contains("expected 2 elements"), "{err}");
    assert!(eval_node(&r, &gn, &per_channel, 21).is_ok());
    let ln = Node::new("ln", "LayerNormalization", &["x", "s"], &["y"]);
    let err = eval_node(&r, &ln, &[t(vec![2, 3]), t(vec![2])], 17)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not broadcast"), "{err}");
    let inorm = Node::new("in", "InstanceNormalization", &["x", "s", "b"], &["y"]);
    let err = eval_node(&r, &inorm, &[t(vec![2, 3]), t(vec![3]), t(vec![3])], 6)
        .unwrap_err()
        .to_string();
    assert!(err.contains("rank >= 3"), "{err}");
}
