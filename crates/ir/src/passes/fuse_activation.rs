use std::collections::HashMap;

use super::PassReport;
use crate::{Attr, Graph, Node};

/// Internal attribute naming the ONNX op type of an activation fused into a
/// Conv, ConvTranspose, Gemm or MatMul. Parameters travel as
/// `whittle.act.<onnx attribute>` (`alpha`, `beta`, `min`, `max`). Export drops
/// every `whittle.` attribute, so fused graphs are only for execution.
pub const FUSED_ACTIVATION: &str = "whittle.act";

/// A planned fusion: producer index, activation index, attributes to add.
type Fusion = (usize, usize, Vec<(String, Attr)>);

/// Ops whose kernels apply a fused activation in their epilogue.
const FUSABLE_PRODUCERS: &[&str] = &["Conv", "ConvTranspose", "Gemm", "MatMul"];

/// The fused-activation attributes for `act`, or `None` when it cannot be
/// fused (unknown op, or Clip bounds that are not constants).
fn activation_attrs(act: &Node, graph: &Graph) -> Option<Vec<(String, Attr)>> {
    let key = |p: &str| format!("{FUSED_ACTIVATION}.{p}");
    let mut attrs = vec![(
        FUSED_ACTIVATION.to_string(),
        Attr::String(act.op_type.clone()),
    )];
    match act.op_type.as_str() {
        "Relu" | "Sigmoid" | "HardSwish" | "Tanh" => {}
        "LeakyRelu" => attrs.push((
            key("alpha"),
            Attr::Float(act.attr_float("alpha", 0.01).ok()?),
        )),
        "HardSigmoid" => {
            attrs.push((
                key("alpha"),
                Attr::Float(act.attr_float("alpha", 0.2).ok()?),
            ));
            attrs.push((key("beta"), Attr::Float(act.attr_float("beta", 0.5).ok()?)));
        }
        "Clip" => {
            // Opset < 11 keeps bounds in attributes, later opsets in inputs.
            let mut min = act.attr_float("min", f32::NEG_INFINITY).ok()?;
            let mut max = act.attr_float("max", f32::INFINITY).ok()?;
            for (i, slot) in [(1, &mut min), (2, &mut max)] {
                if let Some(name) = act.input(i) {
                    let t = graph.initializers.get(name)?;
                    if t.numel() != 1 {
                        return None;
                    }
                    *slot = *t.to_f32_vec().first()?;
                }
            }
            attrs.push((key("min"), Attr::Float(min)));
            attrs.push((key("max"), Attr::Float(max)));
        }
        _ => return None,
    }
    Some(attrs)
}

/// Fuses an activation into the Conv/ConvTranspose/Gemm/MatMul that feeds it
/// when the linear op's output is read by nothing else, so kernels apply it
/// while the output tile is still in registers.
pub fn fuse_activations(mut graph: Graph) -> (Graph, PassReport) {
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
            if !prod.domain.is_empty()
                || !act.domain.is_empty()
                || !FUSABLE_PRODUCERS.contains(&prod.op_type.as_str())
                || prod.attrs.contains_key(FUSED_ACTIVATION)
                || prod.outputs.len() != 1
                || readers.get(src) != Some(&1)
                || graph.is_output(src)
            {
                continue;
            }
            if let Some(attrs) = activation_attrs(act, &graph) {
                plan = Some((pi, ai, attrs));
                break;
            }
        }
        let Some((pi, ai, attrs)) = plan else { break };
        let out = graph.nodes[ai].outputs[0].clone();
        let prod = &mut graph.nodes[pi];
        prod.attrs.extend(attrs);
        prod.outputs[0] = out;
        graph.nodes.remove(ai);
        fused += 1;
    }
    (
        graph,
        PassReport {
            pass: "fuse-activations",
            removed: fused,
            rewritten: fused,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Tensor, ValueInfo};

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
        assert_eq!(
            g.nodes[0].attr(FUSED_ACTIVATION),
            Some(&Attr::String("Relu".into()))
        );
    }

    #[test]
    fn fuses_clip_with_constant_inputs() {
        let mut g = conv_then(Node::new("r", "Clip", &["y", "lo", "hi"], &["z"]));
        g.initializers.insert("lo".into(), Tensor::scalar_f32(0.0));
        g.initializers.insert("hi".into(), Tensor::scalar_f32(6.0));
        let (g, _) = fuse_activations(g);
        assert_eq!(g.nodes.len(), 1);
        assert_eq!(g.nodes[0].attr("whittle.act.max"), Some(&Attr::Float(6.0)));
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
}
