use super::PassReport;
use crate::{Graph, Node, Patch};

/// True when the node passes its first input through unchanged at inference:
/// Identity, and Dropout whose mask is unused and which is not in training mode.
fn is_passthrough(node: &Node, graph: &Graph) -> bool {
    match node.op_type.as_str() {
        "Identity" => node.inputs.len() == 1,
        "Dropout" => {
            let mask_used = node.outputs.get(1).is_some_and(|m| {
                !m.is_empty()
                    && (graph.is_output(m) || graph.nodes.iter().any(|n| n.inputs.contains(m)))
            });
            // A training_mode input other than a constant false keeps the node.
            let training = node.input(2).is_some_and(|t| {
                graph.initializers.get(t).is_none_or(|v| {
                    v.to_i64_vec()
                        .map(|v| v.iter().any(|&x| x != 0))
                        .unwrap_or(true)
                })
            });
            !mask_used && !training
        }
        _ => false,
    }
}

/// Removes Identity and inference-mode Dropout nodes by rewiring their
/// consumers to the node's input.
pub fn remove_identities(mut graph: Graph) -> (Graph, PassReport) {
    let mut removed = 0;
    let mut i = 0;
    while i < graph.nodes.len() {
        match bypass(&graph, i) {
            Some(patch) => {
                graph.apply(patch);
                removed += 1;
            }
            None => i += 1,
        }
    }
    (
        graph,
        PassReport {
            pass: "remove-identities",
            removed,
            rewritten: 0,
        },
    )
}

/// Removes node `i` if it is a pass-through, wiring its input to its
/// readers.
fn bypass(graph: &Graph, i: usize) -> Option<Patch> {
    let node = &graph.nodes[i];
    if !node.domain.is_empty() || !is_passthrough(node, graph) {
        return None;
    }
    let (src, dst) = (node.input(0)?, node.outputs.first()?);
    let src_is_boundary = graph.inputs.iter().any(|v| v.name == src)
        || graph.initializers.contains_key(src)
        || graph.is_output(src);
    let mut patch = Patch::new();
    patch.remove_node(i);
    if graph.is_output(dst) {
        if src_is_boundary {
            // Both ends are visible to the user: keep the copy.
            return None;
        }
        // Let the producer write the graph output directly.
        patch.rename_output(src, dst);
        patch.redirect(src, dst);
    } else {
        patch.redirect(dst, src);
    }
    Some(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, ValueInfo};

    fn graph(nodes: Vec<Node>, out: &str) -> Graph {
        Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[2])],
            outputs: vec![ValueInfo::known(out, DType::F32, &[2])],
            nodes,
            ..Graph::default()
        }
    }

    #[test]
    fn removes_inner_identity() {
        let g = graph(
            vec![
                Node::new("a", "Relu", &["x"], &["y"]),
                Node::new("id", "Identity", &["y"], &["y2"]),
                Node::new("b", "Relu", &["y2"], &["z"]),
            ],
            "z",
        );
        let (g, r) = remove_identities(g);
        assert_eq!(r.removed, 1);
        assert_eq!(g.nodes.len(), 2);
        assert_eq!(g.nodes[1].inputs, vec!["y".to_string()]);
    }

    #[test]
    fn identity_feeding_output_renames_producer() {
        let g = graph(
            vec![
                Node::new("a", "Relu", &["x"], &["y"]),
                Node::new("d", "Dropout", &["y"], &["z"]),
            ],
            "z",
        );
        let (g, r) = remove_identities(g);
        assert_eq!(r.removed, 1);
        assert_eq!(g.nodes[0].outputs, vec!["z".to_string()]);
    }

    #[test]
    fn keeps_input_to_output_copy() {
        let g = graph(vec![Node::new("id", "Identity", &["x"], &["z"])], "z");
        let (g, r) = remove_identities(g);
        assert_eq!(r.removed, 0);
        assert_eq!(g.nodes.len(), 1);
    }
}
