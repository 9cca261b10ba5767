use super::PassReport;
use crate::{Attr, Graph, Patch, Tensor};

/// Per-channel affine form of an inference BatchNormalization:
/// `y = x * scale + shift`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// Reads BN parameters when all are f32 constants of length `channels`.
fn bn_affine(graph: &Graph, bn: &crate::Node, channels: usize) -> Option<Affine> {
    if bn.outputs.iter().skip(1).any(|o| !o.is_empty())
        || bn.attr_int("training_mode", 0).ok()? != 0
    {
        return None;
    }
    let eps = bn.attr_float("epsilon", 1e-5).ok()?;
    let get = |i: usize| -> Option<&[f32]> {
        let t = graph.initializers.get(bn.input(i)?)?;
        let v = t.as_f32().ok()?;
        (v.len() == channels).then_some(v)
    };
    let (gamma, beta, mean, var) = (get(1)?, get(2)?, get(3)?, get(4)?);
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| g / (v + eps).sqrt())
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Some(Affine { scale, shift })
}

/// Folds an inference BatchNormalization into the Conv or Gemm feeding it
/// (weights and bias rescaled per output channel), when the linear op's
/// output is read only by the BN and all parameters are constants.
pub fn fold_batchnorm(mut graph: Graph) -> (Graph, PassReport) {
    let mut folded = 0;
    let mut i = 0;
    while i < graph.nodes.len() {
        match fold_at(&graph, i) {
            Some(patch) => {
                graph.apply(patch);
                folded += 1;
            }
            None => i += 1,
        }
    }
    (
        graph,
        PassReport {
            pass: "fold-batchnorm",
            removed: folded,
            rewritten: folded,
        },
    )
}

/// Folds the BN at node index `bi` into its producer, if it can.
fn fold_at(graph: &Graph, bi: usize) -> Option<Patch> {
    let bn = &graph.nodes[bi];
    if bn.op_type != "BatchNormalization" || !bn.domain.is_empty() {
        return None;
    }
    let src = bn.input(0)?;
    let pi = *graph.producers().get(src)?;
    let readers = graph.consumers().get(src).map_or(0, Vec::len);
    if readers != 1 || graph.is_output(src) {
        return None;
    }
    let prod = &graph.nodes[pi];
    if !prod.domain.is_empty() || prod.outputs.len() != 1 {
        return None;
    }
    let w = graph
        .initializers
        .get(prod.input(1)?)
        .filter(|w| w.as_f32().is_ok())?;
    let (channels, per_row) = match prod.op_type.as_str() {
        "Conv" if w.rank() >= 3 => (w.shape()[0], true),
        "Gemm" if w.rank() == 2 => {
            let trans_b = prod.attr_int("transB", 0).unwrap_or(0) != 0;
            (if trans_b { w.shape()[0] } else { w.shape()[1] }, trans_b)
        }
        _ => return None,
    };
    let affine = bn_affine(graph, bn, channels)?;
    // Existing bias, as a per-channel vector (Gemm's C may also be scaled by beta).
    let mut bias = vec![0.0f32; channels];
    if let Some(b) = prod.input(2) {
        let t = graph.initializers.get(b).and_then(|t| t.as_f32().ok())?;
        if t.len() != channels {
            return None; // a full [M, N] Gemm C cannot be folded per channel
        }
        let beta = if prod.op_type == "Gemm" {
            prod.attr_float("beta", 1.0).unwrap_or(1.0)
        } else {
            1.0
        };
        bias.iter_mut().zip(t).for_each(|(d, s)| *d = s * beta);
    }
    let mut new_w = w.as_f32().ok()?.to_vec();
    if per_row {
        let row = new_w.len() / channels;
        for (c, chunk) in new_w.chunks_mut(row).enumerate() {
            chunk.iter_mut().for_each(|x| *x *= affine.scale[c]);
        }
    } else {
        for row in new_w.chunks_mut(channels) {
            row.iter_mut().zip(&affine.scale).for_each(|(x, s)| *x *= s);
        }
    }
    let new_b: Vec<f32> = bias
        .iter()
        .zip(&affine.scale)
        .zip(&affine.shift)
        .map(|((b, s), t)| b * s + t)
        .collect();
    let wt = Tensor::from_f32(w.shape().to_vec(), new_w).ok()?;
    let bt = Tensor::from_f32(vec![channels], new_b).ok()?;
    let mut patch = Patch::new();
    // Fresh names: the original initializers may be shared with other nodes.
    let mut node = prod.clone();
    node.inputs[1] = patch.add_initializer(&format!("{}.weight_bnfolded", prod.name), wt);
    if node.inputs.len() < 3 {
        node.inputs.resize(3, String::new());
    }
    node.inputs[2] = patch.add_initializer(&format!("{}.bias_bnfolded", prod.name), bt);
    if node.op_type == "Gemm" {
        node.attrs.insert("beta".into(), Attr::Float(1.0));
    }
    node.outputs[0].clone_from(&bn.outputs[0]);
    patch.replace_node(pi, node);
    patch.remove_node(bi);
    patch.prune_initializers();
    Some(patch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Node, ValueInfo};

    /// Conv(1x1, 2 out channels) -> BN over 2 channels, on a 1x1x1x1 input.
    fn conv_bn(with_bias: bool) -> Graph {
        let mut conv = Node::new("c", "Conv", &["x", "w"], &["y"]);
        if with_bias {
            conv.inputs.push("b".into());
        }
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 1, 1, 1])],
            outputs: vec![ValueInfo::known("z", DType::F32, &[1, 2, 1, 1])],
            nodes: vec![
                conv,
                Node::new(
                    "bn",
                    "BatchNormalization",
                    &["y", "g", "be", "m", "v"],
                    &["z"],
                )
                .with_attr("epsilon", Attr::Float(0.0)),
            ],
            ..Graph::default()
        };
        let t = |v: Vec<f32>| Tensor::from_f32(vec![v.len()], v).unwrap();
        g.initializers.insert(
            "w".into(),
            Tensor::from_f32(vec![2, 1, 1, 1], vec![2.0, 3.0]).unwrap(),
        );
        g.initializers.insert("b".into(), t(vec![1.0, -1.0]));
        g.initializers.insert("g".into(), t(vec![1.0, 2.0]));
        g.initializers.insert("be".into(), t(vec![0.5, 0.0]));
        g.initializers.insert("m".into(), t(vec![1.0, 1.0]));
        g.initializers.insert("v".into(), t(vec![4.0, 1.0]));
        g
    }

    #[test]
    fn folds_into_conv_with_bias() {
        let (g, r) = fold_batchnorm(conv_bn(true));
        assert_eq!(r.removed, 1);
        assert_eq!(g.nodes.len(), 1);
        let w = g.initializers[&g.nodes[0].inputs[1]]
            .as_f32()
            .unwrap()
            .to_vec();
        let b = g.initializers[&g.nodes[0].inputs[2]]
            .as_f32()
            .unwrap()
            .to_vec();
        // channel 0: s = 1/2, y = (2x + 1 - 1)/2 + 0.5 = x + 0.5
        // channel 1: s = 2,   y = (3x - 1 - 1)*2 + 0   = 6x - 4
        assert_eq!(w, vec![1.0, 6.0]);
        assert_eq!(b, vec![0.5, -4.0]);
        assert_eq!(g.nodes[0].outputs[0], "z");
    }

    #[test]
    fn folds_into_conv_without_bias() {
        let (g, _) = fold_batchnorm(conv_bn(false));
        let b = g.initializers[&g.nodes[0].inputs[2]]
            .as_f32()
            .unwrap()
            .to_vec();
        assert_eq!(b, vec![0.5 - 0.5, -2.0]);
    }

    #[test]
    fn leaves_bn_with_runtime_params() {
        let mut g = conv_bn(true);
        g.initializers.shift_remove("m");
        g.inputs.push(ValueInfo::known("m", DType::F32, &[2]));
        let (g, r) = fold_batchnorm(g);
        assert_eq!(r.removed, 0);
        assert_eq!(g.nodes.len(), 2);
    }
}
