use super::PassReport;
use crate::{Attr, Graph, Tensor};

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
        if try_fold_at(&mut graph, i) {
            folded += 1;
        } else {
            i += 1;
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

/// Tries to fold the BN at node index `bi` into its producer.
fn try_fold_at(graph: &mut Graph, bi: usize) -> bool {
    let bn = &graph.nodes[bi];
    if bn.op_type != "BatchNormalization" || !bn.domain.is_empty() {
        return false;
    }
    let Some(src) = bn.input(0).map(str::to_string) else {
        return false;
    };
    let producers = graph.producers();
    let Some(&pi) = producers.get(src.as_str()) else {
        return false;
    };
    let readers = graph.consumers().get(src.as_str()).map_or(0, Vec::len);
    if readers != 1 || graph.is_output(&src) {
        return false;
    }
    let prod = &graph.nodes[pi];
    if !prod.domain.is_empty() || prod.outputs.len() != 1 {
        return false;
    }
    let Some(w_name) = prod.input(1).map(str::to_string) else {
        return false;
    };
    let Some(w) = graph
        .initializers
        .get(&w_name)
        .filter(|w| w.as_f32().is_ok())
    else {
        return false;
    };
    let (channels, per_row) = match prod.op_type.as_str() {
        "Conv" if w.rank() >= 3 => (w.shape()[0], true),
        "Gemm" if w.rank() == 2 => {
            let trans_b = prod.attr_int("transB", 0).unwrap_or(0) != 0;
            (if trans_b { w.shape()[0] } else { w.shape()[1] }, trans_b)
        }
        _ => return false,
    };
    let Some(affine) = bn_affine(graph, &graph.nodes[bi], channels) else {
        return false;
    };
    // Existing bias, as a per-channel vector (Gemm's C may also be scaled by beta).
    let bias_name = prod.input(2).map(str::to_string);
    let mut bias = vec![0.0f32; channels];
    if let Some(b) = &bias_name {
        let Some(t) = graph.initializers.get(b).and_then(|t| t.as_f32().ok()) else {
            return false;
        };
        if t.len() != channels {
            return false; // a full [M, N] Gemm C cannot be folded per channel
        }
        let beta = if prod.op_type == "Gemm" {
            prod.attr_float("beta", 1.0).unwrap_or(1.0)
        } else {
            1.0
        };
        bias.iter_mut().zip(t).for_each(|(d, s)| *d = s * beta);
    }
    let Ok(wv) = w.as_f32() else { return false };
    let mut new_w = wv.to_vec();
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
    let w_shape = w.shape().to_vec();
    let bn_out = graph.nodes[bi].outputs[0].clone();
    let prod_name = graph.nodes[pi].name.clone();
    // Fresh names: the original initializers may be shared with other nodes.
    let w_new_name = graph.fresh_name(&format!("{prod_name}.weight_bnfolded"));
    let (Ok(wt), Ok(bt)) = (
        Tensor::from_f32(w_shape, new_w),
        Tensor::from_f32(vec![channels], new_b),
    ) else {
        return false;
    };
    graph.initializers.insert(w_new_name.clone(), wt);
    let b_new_name = graph.fresh_name(&format!("{prod_name}.bias_bnfolded"));
    graph.initializers.insert(b_new_name.clone(), bt);
    let prod = &mut graph.nodes[pi];
    prod.inputs[1] = w_new_name;
    if prod.inputs.len() < 3 {
        prod.inputs.resize(3, String::new());
    }
    prod.inputs[2] = b_new_name;
    if prod.op_type == "Gemm" {
        prod.attrs.insert("beta".into(), Attr::Float(1.0));
    }
    prod.outputs[0] = bn_out;
    graph.nodes.remove(bi);
    graph.prune_unused_initializers();
    true
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
