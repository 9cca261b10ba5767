//! Raising a model's default-domain opset to what QDQ needs: 13 for
//! per-channel DequantizeLinear, 21 for int4 block quantization.

use whittle_ir::Graph;

use crate::CompressError;

/// Ops whose inputs or attributes changed incompatibly at the given opset:
/// a model older than that which uses them cannot simply be relabelled.
const BREAKING: &[(&str, i64)] = &[
    ("Slice", 10),
    ("TopK", 10),
    ("Upsample", 10),
    ("Clip", 11),
    ("Pad", 11),
    ("Resize", 11),
    ("Dropout", 12),
    ("Squeeze", 13),
    ("Unsqueeze", 13),
    ("Split", 13),
    ("ReduceSum", 13),
    ("ReduceMax", 18),
    ("ReduceMin", 18),
    ("ReduceMean", 18),
    ("ReduceProd", 18),
    ("ReduceL1", 18),
    ("ReduceL2", 18),
    ("ReduceLogSum", 18),
    ("ReduceLogSumExp", 18),
    ("ReduceSumSquare", 18),
];

/// Sets the default opset to at least `target`, refusing (with the node
/// named) when an op's signature changed in between.
pub(crate) fn raise(g: &mut Graph, target: i64) -> Result<(), CompressError> {
    let from = g.opset();
    if from >= target {
        return Ok(());
    }
    for n in g
        .nodes
        .iter()
        .filter(|n| n.domain.is_empty() || n.domain == "ai.onnx")
    {
        if let Some((op, at)) = BREAKING.iter().find(|(op, _)| *op == n.op_type) {
            if from < *at && target >= *at {
                return Err(CompressError::Unsupported(format!(
                    "the quantized model needs opset {target}, but node '{}' ({op}) changed at opset {at} \
                     and the model is opset {from}: convert it first (python: \
                     onnx.version_converter.convert_version(model, {target}))",
                    n.name
                )));
            }
        }
    }
    g.opsets.remove("ai.onnx");
    g.opsets.insert(String::new(), target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::Node;

    #[test]
    fn raises_or_names_the_blocking_node() {
        let mut g = Graph::default();
        g.opsets.insert(String::new(), 11);
        g.nodes.push(Node::new("c", "Conv", &[], &[]));
        raise(&mut g, 13).unwrap();
        assert_eq!(g.opset(), 13);
        g.nodes.push(Node::new("rm", "ReduceMean", &[], &[]));
        let e = raise(&mut g, 21).unwrap_err().to_string();
        assert!(e.contains("'rm'") && e.contains("18"), "{e}");
    }
}
