use std::collections::HashMap;

use super::PassReport;
use crate::{Activation, Graph, Patch};

/// A planned fusion: producer index, activation index, the activation.
type Fusion = (usize, usize, Activation);

/// Fuses an activation into the Conv/ConvTranspose/Gemm/MatMul that feeds it
/// (any op whose [`OpInfo::epilogue`](field@crate::OpInfo::epilogue) is set) when
/// the linear op's output is read by nothing else, so kernels apply it while
/// the output tile is still in registers. The producer carries it as
/// [`Node::activation`](crate::Node::activation). First, `x * Sigmoid(x)` (how exporters write SiLU)
/// becomes one `Swish` node.
pub fn fuse_activations(graph: Graph) -> (Graph, PassReport) {
    let (mut graph, swishes) = fuse_swish(graph);
    let mut fused = 0;
    loop {
        let consumers = graph.consumers();
        let producers = graph.producers();
        let mut plan: Option<Fusion> = None;
        let mut readers: HashMap<&str, usize> = HashMap::new();
        for (v, users) in &consumers {
            readers.insert(v, users.len());
        }
        for (ai, act) in graph.nodes.iter().enumerate() {
            let Some(src) = act.input(0) else { continue };
            let Some(&pi) = producers.get(src) else {
                continue;
            };
            let prod = &graph.nodes[pi];
            if !prod.info().epilogue
                || prod.activation != Activation::None
                || prod.outputs.len() != 1
                || readers.get(src) != Some(&1)
                || graph.is_output(src)
            {
                continue;
            }
            if let Some(a) = act.as_activation(&graph) {
                plan = Some((pi, ai, a));
                break;
            }
        }
        let Some((pi, ai, a)) = plan else { break };
        // The producer applies the activation and writes its output.
        let mut prod = graph.nodes[pi].clone();
        prod.activation = a;
        prod.outputs[0].clone_from(&graph.nodes[ai].outputs[0]);
        let mut patch = Patch::new();
        patch.replace_node(pi, prod);
        patch.remove_node(ai);
        graph.apply(patch);
        fused += 1;
    }
    (
        graph,
        PassReport {
            pass: "fuse-activations",
            removed: fused + swishes,
            rewritten: fused + swishes,
        },
    )
}

/// `Mul(x, Sigmoid(x))` (either operand order), with the Sigmoid read by
/// nothing else, becomes `Swish(x)` (ONNX opset 24; alpha 1: SiLU).
fn fuse_swish(mut graph: Graph) -> (Graph, usize) {
    let mut fused = 0;
    loop {
        let producers = graph.producers();
        let consumers = graph.consumers();
        let found = graph.nodes.iter().enumerate().find_map(|(mi, m)| {
            if m.op_type != "Mul" || !m.domain.is_empty() || m.inputs.len() != 2 {
                return None;
            }
            (0..2).find_map(|k| {
                let s = &m.inputs[k];
                let si = *producers.get(s.as_str())?;
                let sig = &graph.nodes[si];
                let only_reader = consumers.get(s.as_str()).map(Vec::len) == Some(1);
                (sig.op_type == "Sigmoid"
                    && sig.domain.is_empty()
                    && sig.input(0) == Some(m.inputs[1 - k].as_str())
                    && only_reader
                    && !graph.is_output(s))
                .then_some((mi, si))
            })
        });
        let Some((mi, si)) = found else { break };
        let mut swish = graph.nodes[mi].clone();
        swish.op_type = "Swish".into();
        swish.inputs = vec![graph.nodes[si].inputs[0].clone()];
        let mut patch = Patch::new();
        patch.replace_node(mi, swish);
        patch.remove_node(si);
        graph.apply(patch);
        fused += 1;
    }
    (graph, fused)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Attr, DType, Node, Tensor, ValueInfo};

    fn conv_then(act: Node) -> Graph {
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 1, 3, 3])],
            outputs: vec![ValueInfo::known("z", DType::F32, &[1, 1, 3, 3])],
            nodes: vec![Node::new("c", "Conv", &["x", "w"], &["y"]), act],
            ..Graph::default()
        };
        g.initializers.insert(
            "w".into(),
            Tensor::from_f32(vec![1, 1, 1, 1], vec![2.0]).unwrap(),
        );
        g
    }

    #[test]
    fn fuses_relu() {
        let (g, r) = fuse_activations(conv_then(Node::new("r", "Relu", &["y"], &["z"])));
        assert_eq!(r.removed, 1);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].outputs, vec!["z".to_string()]);
        assert_eq!(g.nodes[0].activation, Activation::Relu);
    }

    #[test]
    fn fuses_clip_with_constant_inputs() {
        let mut g = conv_then(Node::new("r", "Clip", &["y", "lo", "hi"], &["z"]));
        g.initializers.insert("lo".into(), Tensor::scalar_f32(0.0));
        g.initializers.insert("hi".into(), Tensor::scalar_f32(6.0));
        let (g, _) = fuse_activations(g);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(
            g.nodes[0].activation,
            Activation::Clip { min: 0.0, max: 6.0 }
        );
    }

    #[test]
    fn keeps_activation_when_conv_output_is_shared() {
        let mut g = conv_then(Node::new("r", "Relu", &["y"], &["z"]));
        g.outputs
            .push(ValueInfo::known("y", DType::F32, &[1, 1, 3, 3]));
        let (g, r) = fuse_activations(g);
        assert_eq!(r.removed, 0);
        assert_eq!(g.nodes.len(), 2);
    }

    #[test]
    fn keeps_clip_with_runtime_bounds() {
        let g = conv_then(Node::new("r", "Clip", &["y", "x"], &["z"]));
        let (g, _) = fuse_activations(g);
        assert_eq!(g.nodes.len(), 2);
    }

    /// Conv -> Sigmoid -> Mul(conv, sigmoid): the pattern exporters emit for
    /// SiLU, in both operand orders.
    fn conv_silu(sigmoid_first: bool) -> Graph {
        let mut g = conv_then(Node::new("s", "Sigmoid", &["y"], &["sy"]));
        let ins = if sigmoid_first {
            ["sy", "y"]
        } else {
            ["y", "sy"]
        };
        g.nodes.push(Node::new("m", "Mul", &ins, &["z"]));
        g
    }

    #[test]
    fn fuses_x_times_sigmoid_x_into_the_conv() {
        for order in [false, true] {
            let (g, r) = fuse_activations(conv_silu(order));
            assert_eq!(g.nodes.len(), 1, "{:?}", g.nodes);
            assert_eq!(g.nodes[0].activation, Activation::Swish { alpha: 1.0 });
            assert_eq!(g.nodes[0].outputs, vec!["z".to_string()]);
            assert_eq!(r.removed, 2);
        }
    }

    #[test]
    fn keeps_sigmoid_that_others_read() {
        let mut g = conv_silu(false);
        g.outputs
            .push(ValueInfo::known("sy", DType::F32, &[1, 1, 3, 3]));
        let (g, _) = fuse_activations(g);
        assert_eq!(g.nodes.len(), 3);
        // Sigmoid of another value is not SiLU.
        let mut g = conv_silu(false);
        g.nodes[2].inputs[0] = "x".into();
        let (g, _) = fuse_activations(g);
        assert!(g.nodes.iter().all(|n| n.op_type != "Swish"));
    }

    #[test]
    fn fuses_standalone_swish_with_alpha() {
        let g =
            conv_then(Node::new("s", "Swish", &["y"], &["z"]).with_attr("alpha", Attr::Float(1.5)));
        let (g, _) = fuse_activations(g);
        assert_eq!(g.nodes[0].activation, Activation::Swish { alpha: 1.5 });
    }
}
