//! Which layers can be pruned, how their weights are laid out (output rows,
//! input dimension, kernel taps), and which ones the options select.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use whittle_ir::{DType, Graph, Node};

use crate::CompressError;

/// Where a weight's elements sit: `rows` output units, each reading `k`
/// input positions at `taps` kernel taps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Conv `[O, C/g, *kernel]`: row-major (row, k, tap); `per_group`
    /// output channels per group.
    Conv { per_group: usize },
    /// Gemm with `transB = 1`: `[N, K]`.
    RowK,
    /// Gemm with `transB = 0` or MatMul: `[..., K, N]`, `n` columns.
    KCol { n: usize },
}

/// The weight layout of one prunable layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    pub kind: Kind,
    /// Output units (rows of the reduction).
    pub rows: usize,
    /// Length of the input dimension per row and tap.
    pub k: usize,
    /// Kernel taps (1 for Gemm/MatMul).
    pub taps: usize,
    /// Axis of the activation input holding the input channels.
    pub act_axis: ActAxis,
}

/// Which axis of the activation input is the reduction dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ActAxis {
    /// Axis 1 (NCHW Conv, Gemm with `transA = 0`).
    One,
    /// Axis 0 (Gemm with `transA = 1`).
    Zero,
    /// The last axis (MatMul).
    Last,
}

impl Layout {
    /// Linear index of element (row, k, tap).
    pub fn index(&self, row: usize, k: usize, tap: usize) -> usize {
        match self.kind {
            Kind::Conv { .. } => (row * self.k + k) * self.taps + tap,
            Kind::RowK => row * self.k + k,
            Kind::KCol { n } => ((row / n) * self.k + k) * n + row % n,
        }
    }

    /// Input channel of the activation that element (row, k) multiplies.
    pub fn act_channel(&self, row: usize, k: usize) -> usize {
        match self.kind {
            Kind::Conv { per_group } => (row / per_group) * self.k + k,
            Kind::RowK | Kind::KCol { .. } => k,
        }
    }

    /// Channels the activation must have along [`Layout::act_axis`].
    pub fn act_channels(&self) -> usize {
        match self.kind {
            Kind::Conv { per_group } => self.rows / per_group.max(1) * self.k,
            Kind::RowK | Kind::KCol { .. } => self.k,
        }
    }

    /// Elements of the weight.
    pub fn numel(&self) -> usize {
        self.rows * self.k * self.taps
    }
}

/// A Conv/Gemm/MatMul with a constant f32 weight.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Weight initializer.
    pub weight: String,
    /// Activation input.
    pub input: String,
    pub layout: Layout,
    /// Why the default selection leaves it out (first conv, depthwise).
    pub default_skip: Option<&'static str>,
}

/// A layer that is not pruned, and why.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SkippedLayer {
    /// Node name.
    pub node: String,
    /// Op type.
    pub op: String,
    /// Why it keeps its weights.
    pub reason: String,
}

/// Prunable layers and the Conv/Gemm/MatMul nodes that are not.
pub(crate) struct Candidates {
    pub layers: Vec<Layer>,
    pub unprunable: Vec<SkippedLayer>,
}

fn skipped(n: &Node, reason: impl Into<String>) -> SkippedLayer {
    SkippedLayer {
        node: n.name.clone(),
        op: n.op_type.clone(),
        reason: reason.into(),
    }
}

/// Finds every Conv/Gemm/MatMul and, for those whose weight is a constant
/// f32 used by that node alone, its layout.
pub(crate) fn candidates(g: &Graph) -> Result<Candidates, CompressError> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for n in &g.nodes {
        for i in n.inputs.iter().filter(|i| !i.is_empty()) {
            *uses.entry(i.as_str()).or_default() += 1;
        }
    }
    for o in &g.outputs {
        *uses.entry(o.name.as_str()).or_default() += 1;
    }
    let mut out = Candidates {
        layers: Vec::new(),
        unprunable: Vec::new(),
    };
    let mut seen_conv = false;
    for n in &g.nodes {
        if !matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul") || !n.domain.is_empty() {
            continue;
        }
        let (Some(input), Some(wname)) = (n.input(0), n.input(1)) else {
            out.unprunable.push(skipped(n, "missing inputs"));
            continue;
        };
        let Some(w) = g.initializers.get(wname) else {
            out.unprunable
                .push(skipped(n, "weight is not a constant initializer"));
            continue;
        };
        if w.dtype() != DType::F32 {
            out.unprunable
                .push(skipped(n, format!("weight is {}, not f32", w.dtype())));
            continue;
        }
        if uses.get(wname).copied().unwrap_or(0) > 1 {
            out.unprunable.push(skipped(
                n,
                format!("weight '{wname}' is shared with other nodes"),
            ));
            continue;
        }
        let layout = match layout(n, w.shape()) {
            Ok(l) => l,
            Err(reason) => {
                out.unprunable.push(skipped(n, reason));
                continue;
            }
        };
        let mut default_skip = None;
        if n.op_type == "Conv" {
            if !seen_conv {
                default_skip =
                    Some("first conv (few weights, the most sensitive layer); name it to prune it");
            } else if layout.k == 1 && matches!(layout.kind, Kind::Conv { .. }) {
                default_skip = Some("depthwise (one input channel per filter)");
            }
            seen_conv = true;
        }
        if layout.numel() == 0 {
            out.unprunable.push(skipped(n, "weight is empty"));
            continue;
        }
        out.layers.push(Layer {
            node: n.name.clone(),
            op: n.op_type.clone(),
            weight: wname.to_string(),
            input: input.to_string(),
            layout,
            default_skip,
        });
    }
    Ok(out)
}

fn layout(n: &Node, shape: &[usize]) -> Result<Layout, String> {
    let bad = |want: &str| format!("weight shape {shape:?} is not {want}");
    match n.op_type.as_str() {
        "Conv" => {
            if shape.len() < 3 {
                return Err(bad("[O, C/group, *kernel]"));
            }
            let group = n.attr_int("group", 1).map_err(|e| e.to_string())?;
            let group = usize::try_from(group)
                .ok()
                .filter(|&g| g >= 1 && shape[0].is_multiple_of(g))
                .ok_or_else(|| format!("group {group} does not divide {} filters", shape[0]))?;
            Ok(Layout {
                kind: Kind::Conv {
                    per_group: shape[0] / group,
                },
                rows: shape[0],
                k: shape[1],
                taps: shape[2..].iter().product(),
                act_axis: ActAxis::One,
            })
        }
        "Gemm" => {
            let [a, b] = shape else {
                return Err(bad("2-D"));
            };
            let trans_b = n.attr_int("transB", 0).map_err(|e| e.to_string())? != 0;
            let trans_a = n.attr_int("transA", 0).map_err(|e| e.to_string())? != 0;
            let act_axis = if trans_a { ActAxis::Zero } else { ActAxis::One };
            Ok(if trans_b {
                Layout {
                    kind: Kind::RowK,
                    rows: *a,
                    k: *b,
                    taps: 1,
                    act_axis,
                }
            } else {
                Layout {
                    kind: Kind::KCol { n: *b },
                    rows: *b,
                    k: *a,
                    taps: 1,
                    act_axis,
                }
            })
        }
        _ => {
            let r = shape.len();
            if r < 2 {
                return Err(bad("at least 2-D (a 1-D right operand has no output rows)"));
            }
            let batch: usize = shape[..r - 2].iter().product();
            Ok(Layout {
                kind: Kind::KCol { n: shape[r - 1] },
                rows: batch * shape[r - 1],
                k: shape[r - 2],
                taps: 1,
                act_axis: ActAxis::Last,
            })
        }
    }
}

/// The layers chosen for pruning, each with its target sparsity (`None`:
/// the global/default target).
pub(crate) struct Selection {
    pub chosen: Vec<(Layer, Option<f32>)>,
    pub skipped: Vec<SkippedLayer>,
}

/// Applies `--only`, `--skip` and `--layer NAME=S` to the candidates. A
/// name matches a node or its weight initializer; names that match no
/// prunable layer are errors that list the prunable ones.
pub(crate) fn select(
    g: &Graph,
    cands: Candidates,
    only: &[String],
    skip: &[String],
    per_layer: &BTreeMap<String, f32>,
) -> Result<Selection, CompressError> {
    let find = |name: &str, flag: &str| -> Result<usize, CompressError> {
        if let Some(i) = cands
            .layers
            .iter()
            .position(|l| l.node == name || l.weight == name)
        {
            return Ok(i);
        }
        let known: Vec<&str> = cands.layers.iter().map(|l| l.node.as_str()).collect();
        let why = if let Some(s) = cands.unprunable.iter().find(|s| s.node == name) {
            format!("{} '{name}' cannot be pruned: {}", s.op, s.reason)
        } else if let Some(n) = g.nodes.iter().find(|n| n.name == name) {
            format!(
                "node '{name}' is a {}; only Conv, Gemm and MatMul with constant weights are pruned",
                n.op_type
            )
        } else {
            format!("the model has no layer named '{name}'")
        };
        Err(CompressError::Options(format!(
            "{flag} {name}: {why} (prunable layers: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )))
    };
    let mut only_idx = Vec::new();
    for n in only {
        only_idx.push(find(n, "--only")?);
    }
    let mut skip_idx = Vec::new();
    for n in skip {
        skip_idx.push(find(n, "--skip")?);
    }
    let mut named: HashMap<usize, f32> = HashMap::new();
    for (n, &s) in per_layer {
        let i = find(n, "--layer")?;
        if skip_idx.contains(&i) {
            return Err(CompressError::Options(format!(
                "layer '{n}' is both skipped (--skip) and given a sparsity (--layer)"
            )));
        }
        if named.insert(i, s).is_some() {
            return Err(CompressError::Options(format!(
                "--layer names '{}' twice (by node and by weight name?)",
                cands.layers[i].node
            )));
        }
    }
    let mut out = Selection {
        chosen: Vec::new(),
        skipped: cands.unprunable,
    };
    for (i, l) in cands.layers.into_iter().enumerate() {
        let reason = if skip_idx.contains(&i) {
            Some("--skip".to_string())
        } else if named.contains_key(&i) || only_idx.contains(&i) {
            None
        } else if !only.is_empty() {
            Some("not named by --only".to_string())
        } else {
            l.default_skip.map(str::to_string)
        };
        match reason {
            Some(reason) => out.skipped.push(SkippedLayer {
                node: l.node,
                op: l.op,
                reason,
            }),
            None => {
                let s = named.get(&i).copied();
                out.chosen.push((l, s));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_index_and_channels() {
        // Conv [4, 2, 3, 3] with 2 groups: row 3 is in group 1.
        let conv = Layout {
            kind: Kind::Conv { per_group: 2 },
            rows: 4,
            k: 2,
            taps: 9,
            act_axis: ActAxis::One,
        };
        assert_eq!(conv.index(3, 1, 4), (3 * 2 + 1) * 9 + 4);
        assert_eq!(conv.act_channel(3, 1), 3);
        assert_eq!(conv.act_channels(), 4);
        // MatMul [2, 3, 5]: row 7 = batch 1, column 2.
        let mm = Layout {
            kind: Kind::KCol { n: 5 },
            rows: 10,
            k: 3,
            taps: 1,
            act_axis: ActAxis::Last,
        };
        assert_eq!(mm.index(7, 2, 0), (3 + 2) * 5 + 2);
        assert_eq!(mm.numel(), 30);
    }
}
