//! Cross-layer equalization (Nagel et al., "Data-Free Quantization Through
//! Weight Equalization and Bias Correction", ICCV 2019).
//!
//! For a pair `Conv1 -> act -> Conv2` where `act` is positively homogeneous
//! (`act(x / s) = act(x) / s` for s > 0: Relu, or nothing), dividing output
//! channel i of Conv1 (weights and bias) by `s_i` and multiplying input
//! channel i of Conv2 by `s_i` leaves the function unchanged. Choosing
//! `s_i = sqrt(r1_i / r2_i)` (r = per-channel absolute maxima) gives both
//! layers the same per-channel range, which is what per-channel weight
//! quantization of depthwise convs needs most. ReLU6 (Clip 0..6) is not
//! homogeneous; as in the paper it is replaced by Relu when `clip_to_relu`
//! is set (this changes the float model slightly, and is reported).

use std::collections::HashSet;

use whittle_ir::{Graph, Node, Patch};

use crate::prepare::unique_reader;

/// What equalization did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EqualizeReport {
    /// Conv pairs equalized.
    pub pairs: usize,
    /// Clip (ReLU6) nodes replaced by Relu to allow it.
    pub clips_replaced: usize,
    /// Sweeps over the pairs until the scales converged.
    pub sweeps: usize,
}

/// A `Conv1 -> [act] -> Conv2` pair (node indices).
struct Pair {
    first: usize,
    act: Option<usize>,
    second: usize,
}

fn conv_weight<'a>(g: &'a Graph, n: &Node) -> Option<&'a whittle_ir::Tensor> {
    let w = g.initializers.get(n.input(1)?)?;
    (w.dtype() == whittle_ir::DType::F32 && w.rank() >= 3).then_some(w)
}

fn clip_bounds(g: &Graph, n: &Node) -> Option<(f32, f32)> {
    let mut lo = n.attr_float("min", f32::NEG_INFINITY).ok()?;
    let mut hi = n.attr_float("max", f32::INFINITY).ok()?;
    for (i, slot) in [(1, &mut lo), (2, &mut hi)] {
        if let Some(name) = n.input(i) {
            *slot = *g.initializers.get(name)?.to_f32_vec().first()?;
        }
    }
    Some((lo, hi))
}

fn find_pairs(g: &Graph, clip_to_relu: bool) -> Vec<Pair> {
    let consumers = g.consumers();
    let only_reader = |v: &str| -> Option<usize> {
        match consumers.get(v).map(Vec::as_slice) {
            Some([r]) if !g.is_output(v) => Some(*r),
            _ => None,
        }
    };
    let mut pairs = Vec::new();
    for (i, n) in g.nodes.iter().enumerate() {
        if n.op_type != "Conv" || !n.domain.is_empty() || conv_weight(g, n).is_none() {
            continue;
        }
        if n.attr_int("group", 1).ok() != Some(1) && !is_depthwise(g, n) {
            continue;
        }
        // Bias and weight must belong to this conv alone.
        if !unique_reader(g, &n.inputs[1]) || n.input(2).is_some_and(|b| !unique_reader(g, b)) {
            continue;
        }
        let Some(mut next) = only_reader(&n.outputs[0]) else {
            continue;
        };
        let mut act = None;
        let m = &g.nodes[next];
        let homogeneous = match m.op_type.as_str() {
            "Relu" => true,
            "Clip" => clip_to_relu && clip_bounds(g, m).is_some_and(|(lo, _)| lo == 0.0),
            _ => false,
        };
        if m.op_type != "Conv" {
            if !homogeneous {
                continue;
            }
            act = Some(next);
            let Some(after) = only_reader(&m.outputs[0]) else {
                continue;
            };
            next = after;
        }
        let c2 = &g.nodes[next];
        if c2.op_type != "Conv"
            || conv_weight(g, c2).is_none()
            || !unique_reader(g, &c2.inputs[1])
            || c2.input(0) != Some(g.nodes[act.unwrap_or(i)].outputs[0].as_str())
        {
            continue;
        }
        if c2.attr_int("group", 1).ok() != Some(1) && !is_depthwise(g, c2) {
            continue;
        }
        pairs.push(Pair {
            first: i,
            act,
            second: next,
        });
    }
    pairs
}

/// Depthwise: one input channel per group and as many groups as channels.
fn is_depthwise(g: &Graph, n: &Node) -> bool {
    let (Some(w), Ok(group)) = (conv_weight(g, n), n.attr_int("group", 1)) else {
        return false;
    };
    group > 1 && w.shape()[1] == 1 && w.shape()[0] as i64 == group
}

/// Per-channel absolute maxima of the first conv's output channels and the
/// second conv's input channels.
fn ranges(g: &Graph, p: &Pair) -> Option<(Vec<f32>, Vec<f32>)> {
    let w1 = conv_weight(g, &g.nodes[p.first])?;
    let w2 = conv_weight(g, &g.nodes[p.second])?;
    let c = w1.shape()[0];
    let per1 = w1.numel() / c;
    let r1: Vec<f32> = w1
        .as_f32()
        .ok()?
        .chunks(per1)
        .map(|ch| ch.iter().fold(0.0f32, |m, v| m.max(v.abs())))
        .collect();
    let dw = is_depthwise(g, &g.nodes[p.second]);
    let (o2, i2) = (w2.shape()[0], w2.shape()[1]);
    if (dw && o2 != c) || (!dw && i2 != c) {
        return None;
    }
    let k: usize = w2.shape()[2..].iter().product();
    let mut r2 = vec![0.0f32; c];
    for (idx, v) in w2.as_f32().ok()?.iter().enumerate() {
        let ch = if dw { idx / k } else { (idx / k) % i2 };
        r2[ch] = r2[ch].max(v.abs());
    }
    Some((r1, r2))
}

/// Applies scales `s` (divide conv1 channel i, multiply conv2 input i).
fn apply(g: &mut Graph, p: &Pair, s: &[f32]) {
    let n1 = g.nodes[p.first].clone();
    let n2 = g.nodes[p.second].clone();
    let dw = is_depthwise(g, &n2);
    if let Some(w1) = g.initializers.get_mut(&n1.inputs[1]) {
        let per = w1.numel() / s.len();
        if let Ok(v) = w1.as_f32_mut() {
            for (i, x) in v.iter_mut().enumerate() {
                *x /= s[i / per];
            }
        }
    }
    if let Some(b) = n1.input(2) {
        if let Some(Ok(v)) = g.initializers.get_mut(b).map(|t| t.as_f32_mut()) {
            for (x, si) in v.iter_mut().zip(s) {
                *x /= si;
            }
        }
    }
    if let Some(w2) = g.initializers.get_mut(&n2.inputs[1]) {
        let i2 = w2.shape()[1];
        let k: usize = w2.shape()[2..].iter().product();
        if let Ok(v) = w2.as_f32_mut() {
            for (idx, x) in v.iter_mut().enumerate() {
                let ch = if dw { idx / k } else { (idx / k) % i2 };
                *x *= s[ch];
            }
        }
    }
}

/// Equalizes every eligible pair, sweeping until the scales settle.
pub fn equalize(g: &mut Graph, clip_to_relu: bool) -> EqualizeReport {
    let pairs = find_pairs(g, clip_to_relu);
    let mut report = EqualizeReport {
        pairs: pairs.len(),
        ..EqualizeReport::default()
    };
    if clip_to_relu {
        let mut patch = Patch::new();
        let mut relus = HashSet::new();
        for a in pairs.iter().filter_map(|p| p.act) {
            let n = &g.nodes[a];
            if n.op_type == "Clip" && relus.insert(a) {
                let mut relu = n.clone();
                relu.op_type = "Relu".into();
                relu.inputs.truncate(1);
                relu.attrs.clear();
                patch.replace_node(a, relu);
                report.clips_replaced += 1;
            }
        }
        g.apply(patch);
    }
    for sweep in 1..=20 {
        report.sweeps = sweep;
        let mut worst = 0.0f32;
        for p in &pairs {
            let Some((r1, r2)) = ranges(g, p) else {
                continue;
            };
            let s: Vec<f32> = r1
                .iter()
                .zip(&r2)
                .map(|(&a, &b)| {
                    if a > 0.0 && b > 0.0 {
                        (a / b).sqrt().clamp(1e-4, 1e4)
                    } else {
                        1.0
                    }
                })
                .collect();
            worst = s.iter().fold(worst, |m, v| m.max(v.ln().abs()));
            apply(g, p, &s);
        }
        if worst < 1e-3 {
            break;
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use whittle_ir::{DType, Tensor, ValueInfo};

    /// Conv1 (2 out channels, 1x1) -> Relu -> Conv2 (1x1): after
    /// equalization each channel's ranges match and y is unchanged, checked
    /// by evaluating both graphs with the runtime.
    #[test]
    fn equalizes_and_keeps_the_function() {
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 1, 1, 2])],
            outputs: vec![ValueInfo::known("z", DType::F32, &[1, 1, 1, 2])],
            nodes: vec![
                Node::new("c1", "Conv", &["x", "w1", "b1"], &["y"]),
                Node::new("r", "Relu", &["y"], &["a"]),
                Node::new("c2", "Conv", &["a", "w2"], &["z"]),
            ],
            ..Graph::default()
        };
        g.opsets.insert(String::new(), 13);
        g.initializers.insert(
            "w1".into(),
            Tensor::from_f32(vec![2, 1, 1, 1], vec![8.0, 0.5]).unwrap(),
        );
        g.initializers.insert(
            "b1".into(),
            Tensor::from_f32(vec![2], vec![1.0, -0.25]).unwrap(),
        );
        g.initializers.insert(
            "w2".into(),
            Tensor::from_f32(vec![1, 2, 1, 1], vec![0.5, 2.0]).unwrap(),
        );
        let x = Tensor::from_f32(vec![1, 1, 1, 2], vec![0.3, -0.7]).unwrap();
        let run = |g: &Graph| {
            let mut p = whittle_runtime::compile(g, &Default::default()).unwrap();
            p.run(std::slice::from_ref(&x)).unwrap()[0]
                .as_f32()
                .unwrap()
                .to_vec()
        };
        let before = run(&g);
        let r = equalize(&mut g, false);
        assert_eq!(r.pairs, 1);
        let after = run(&g);
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
        }
        // r1 = [8, 0.5], r2 = [0.5, 2]: s = [4, 0.5]; both ranges become
        // sqrt(r1 * r2) = [2, 1].
        let w1 = g.initializers["w1"].as_f32().unwrap().to_vec();
        let w2 = g.initializers["w2"].as_f32().unwrap().to_vec();
        assert_eq!(w1, vec![2.0, 1.0]);
        assert_eq!(w2, vec![2.0, 1.0]);
    }
}
