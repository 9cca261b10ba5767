use super::*;
use crate::{Attr, Tensor};

#[test]
fn every_entry_is_unique() {
    let mut seen = std::collections::HashSet::new();
    for op in all_ops() {
        assert!(seen.insert((op.domain, op.op_type)), "{} twice", op.op_type);
    }
}

#[test]
fn unknown_ops_get_the_defaults() {
    let info = op_info("", "NoSuchOp");
    assert_eq!(info.int8, Int8Form::None);
    assert_eq!(info.channels, ChannelFlow::Pinned);
    assert_eq!(info.grad, Grad::None);
    assert!(info.activation.is_none() && !info.epilogue);
    // ai.onnx is the default domain; other domains are separate.
    assert_eq!(op_info("ai.onnx", "Relu").int8, Int8Form::Lookup);
    assert_eq!(op_info("com.microsoft", "Relu").int8, Int8Form::None);
}

#[test]
fn activations_are_lookup_elementwise_and_differentiable() {
    for op in all_ops().iter().filter(|o| o.activation.is_some()) {
        assert_eq!(op.int8, Int8Form::Lookup, "{}", op.op_type);
        assert_eq!(op.channels, ChannelFlow::Elementwise, "{}", op.op_type);
        assert_eq!(op.grad, Grad::Activation, "{}", op.op_type);
    }
}

fn graph_with(node: Node) -> Graph {
    Graph {
        nodes: vec![node],
        ..Graph::default()
    }
}

#[test]
fn activations_read_their_parameters() {
    let g = Graph::default();
    let cases = [
        (Node::new("a", "Relu", &["x"], &["y"]), Activation::Relu),
        (
            Node::new("a", "LeakyRelu", &["x"], &["y"]),
            Activation::LeakyRelu { alpha: 0.01 },
        ),
        (
            Node::new("a", "HardSigmoid", &["x"], &["y"]).with_attr("beta", Attr::Float(0.25)),
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.25,
            },
        ),
        (
            Node::new("a", "Swish", &["x"], &["y"]),
            Activation::Swish { alpha: 1.0 },
        ),
        (
            Node::new("a", "Clip", &["x"], &["y"]).with_attr("max", Attr::Float(6.0)),
            Activation::Clip {
                min: f32::NEG_INFINITY,
                max: 6.0,
            },
        ),
    ];
    for (node, want) in cases {
        assert_eq!(node.as_activation(&g), Some(want), "{}", node.op_type);
    }
    assert_eq!(
        Node::new("a", "Exp", &["x"], &["y"]).as_activation(&g),
        None
    );
}

#[test]
fn clip_bounds_must_be_constant_scalars() {
    let node = Node::new("c", "Clip", &["x", "lo", "hi"], &["y"]);
    let mut g = graph_with(node.clone());
    assert_eq!(node.as_activation(&g), None, "bounds not constant");
    g.initializers.insert("lo".into(), Tensor::scalar_f32(0.0));
    g.initializers.insert("hi".into(), Tensor::scalar_f32(6.0));
    assert_eq!(
        node.as_activation(&g),
        Some(Activation::Clip { min: 0.0, max: 6.0 })
    );
    g.initializers.insert(
        "hi".into(),
        Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap(),
    );
    assert_eq!(node.as_activation(&g), None, "bound not a scalar");
    // An omitted optional bound keeps its default.
    let open = Node::new("c", "Clip", &["x", "lo", ""], &["y"]);
    assert_eq!(
        open.as_activation(&g),
        Some(Activation::Clip {
            min: 0.0,
            max: f32::INFINITY
        })
    );
}

#[test]
fn linear_ops_take_an_epilogue() {
    for op in ["Conv", "ConvTranspose", "Gemm", "MatMul"] {
        assert!(op_info("", op).epilogue, "{op}");
    }
    assert!(!op_info("", "Add").epilogue);
}
