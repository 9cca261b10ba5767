//! Sparsity-inducing regularizers for pruning-aware training.
//!
//! * **L1** `λ Σ|w|`: a subgradient `λ sign(w)` in the graph, or (the
//!   default) the proximal step after each update, soft-thresholding every
//!   weight by `lr λ`, which sets small weights exactly to 0.
//! * **Group Lasso** `λ Σ_g ‖w_g‖₂` over filters (output channels) or input
//!   channels (SSL, Wen et al. 2016): by default the proximal step, block
//!   soft-thresholding `w_g ← w_g max(0, 1 − lr λ / ‖w_g‖₂)`, which zeroes
//!   whole groups; or the subgradient `λ w_g / ‖w_g‖₂`.
//! * **Hoyer** `λ ‖w‖₁² / ‖w‖₂²` and **group Hoyer**
//!   `λ (Σ_g ‖w_g‖₂)² / Σ_g ‖w_g‖₂²` (DeepHoyer, Yang et al. 2020): scale
//!   invariant and differentiable almost everywhere, so their gradients are
//!   added to the weight gradient inside the training graph.
//!
//! Gradient terms are emitted by the autodiff pass as ordinary ONNX ops
//! reading the weight, so they are planned and fused like the rest of the
//! backward pass. Proximal steps run after the optimizer step
//! ([`apply_prox`]); the threshold `lr λ` is the exact proximal
//! operator for SGD, and the usual heuristic for Adam.

use std::collections::HashMap;

use whittle_ir::{Graph, Tensor};

use crate::TrainError;

/// Which slices of a weight form the groups of a group penalty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// One group per output channel (a conv filter, a Gemm output row).
    Filters,
    /// One group per input channel (SSL's channel-wise sparsity): removing
    /// one lets the producer of that channel be pruned.
    InputChannels,
}

/// The penalty a [`Regularizer`] adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Penalty {
    /// `Σ|w|`.
    L1,
    /// `Σ_g ‖w_g‖₂`.
    GroupLasso(Groups),
    /// `‖w‖₁² / ‖w‖₂²`.
    Hoyer,
    /// `(Σ_g ‖w_g‖₂)² / Σ_g ‖w_g‖₂²`.
    GroupHoyer(Groups),
}

impl Penalty {
    /// The grouping, for group penalties.
    pub fn groups(self) -> Option<Groups> {
        match self {
            Penalty::GroupLasso(g) | Penalty::GroupHoyer(g) => Some(g),
            Penalty::L1 | Penalty::Hoyer => None,
        }
    }

    /// Whether a proximal step exists (L1 and group Lasso).
    pub fn has_prox(self) -> bool {
        matches!(self, Penalty::L1 | Penalty::GroupLasso(_))
    }
}

/// A penalty `strength * P(w)` on some trainable tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct Regularizer {
    /// The penalty.
    pub penalty: Penalty,
    /// λ, the factor of the penalty in the objective.
    pub strength: f32,
    /// Tensors it applies to; empty means every trainable layer weight
    /// (Conv, ConvTranspose, Gemm and MatMul weights; not biases).
    pub tensors: Vec<String>,
    /// Apply the proximal step after each update instead of adding a
    /// (sub)gradient (L1 and group Lasso only).
    pub proximal: bool,
}

impl Regularizer {
    /// A global regularizer: proximal for L1 and group Lasso, gradient for
    /// the Hoyer penalties.
    pub fn new(penalty: Penalty, strength: f32) -> Regularizer {
        Regularizer {
            penalty,
            strength,
            tensors: Vec::new(),
            proximal: penalty.has_prox(),
        }
    }

    /// Restricts the regularizer to the named tensors.
    pub fn on(mut self, tensors: &[&str]) -> Regularizer {
        self.tensors = tensors.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Chooses between the proximal step and the (sub)gradient.
    pub fn with_proximal(mut self, proximal: bool) -> Regularizer {
        self.proximal = proximal;
        self
    }
}

/// One regularizer applied to one tensor, resolved against the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// The tensor.
    pub tensor: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// The penalty.
    pub penalty: Penalty,
    /// λ.
    pub strength: f32,
    /// Whether it is applied as a proximal step.
    pub proximal: bool,
    /// The axis indexing the groups (group penalties only).
    pub group_axis: Option<usize>,
    /// Output channels that train (sparse update), when fewer than all.
    pub channels: Option<usize>,
}

/// A proximal term as the trainer applies it: index of the tensor among
/// the trainable ones, and the term.
pub type ProxTerm = (usize, Term);

/// `(output-channel axis, input-channel axis)` of a layer weight, from the
/// node that reads it.
pub fn channel_axes(graph: &Graph, tensor: &str) -> Result<(usize, usize), TrainError> {
    let mut found = None;
    for n in &graph.nodes {
        for (i, inp) in n.inputs.iter().enumerate() {
            if inp != tensor {
                continue;
            }
            let axes = match (n.op_type.as_str(), i) {
                ("Conv", 1) => Some((0, 1)),
                ("ConvTranspose", 1) => Some((1, 0)),
                ("Gemm", 1) => {
                    if n.attr_int("transB", 0)? != 0 {
                        Some((0, 1))
                    } else {
                        Some((1, 0))
                    }
                }
                ("MatMul", 1) => Some((1, 0)),
                _ => None,
            };
            match (axes, found) {
                (None, _) => {
                    return Err(TrainError::Spec(format!(
                        "'{tensor}' is read by node '{}' ({}) as input {i}: not a layer weight \
                         with channels",
                        n.name, n.op_type
                    )))
                }
                (Some(a), Some(b)) if a != b => {
                    return Err(TrainError::Spec(format!(
                        "'{tensor}' is read by layers with different channel axes"
                    )))
                }
                (Some(a), _) => found = Some(a),
            }
        }
    }
    found.ok_or_else(|| TrainError::Spec(format!("no layer reads '{tensor}'")))
}

/// Layer weights a global regularizer covers: trainable tensors of rank
/// >= 2 read as the weight of Conv, ConvTranspose, Gemm or MatMul.
fn layer_weights(graph: &Graph, trainable: &[String]) -> Vec<String> {
    trainable
        .iter()
        .filter(|w| graph.initializers.get(*w).is_some_and(|t| t.rank() >= 2))
        .filter(|w| channel_axes(graph, w).is_ok())
        .cloned()
        .collect()
}

/// Resolves `regs` into one [`Term`] per (regularizer, tensor).
/// `channels` holds the sparse-update channel counts of the trainable
/// tensors.
pub fn resolve_terms(
    graph: &Graph,
    trainable: &[String],
    regs: &[Regularizer],
    channels: &HashMap<String, usize>,
) -> Result<Vec<Term>, TrainError> {
    let mut terms = Vec::new();
    for r in regs {
        if !(r.strength.is_finite() && r.strength >= 0.0) {
            return Err(TrainError::Spec(format!(
                "regularizer strength {} must be finite and >= 0",
                r.strength
            )));
        }
        if r.proximal && !r.penalty.has_prox() {
            return Err(TrainError::Spec(format!(
                "{:?} has no proximal step; use it as a gradient penalty",
                r.penalty
            )));
        }
        let tensors = if r.tensors.is_empty() {
            layer_weights(graph, trainable)
        } else {
            r.tensors.clone()
        };
        for t in tensors {
            if !trainable.contains(&t) {
                return Err(TrainError::Spec(format!(
                    "regularizer on '{t}', which is not trainable (a frozen tensor never changes)"
                )));
            }
            let shape = graph.initializers[&t].shape().to_vec();
            let group_axis = match r.penalty.groups() {
                None => None,
                Some(g) => {
                    let (out, inp) = channel_axes(graph, &t)?;
                    Some(if g == Groups::Filters { out } else { inp })
                }
            };
            let k = channels.get(&t).copied();
            if r.proximal && k.is_some() && group_axis.is_some_and(|a| a != 0) {
                return Err(TrainError::Spec(format!(
                    "'{t}' trains only some output channels: a proximal group penalty on it \
                     must group filters"
                )));
            }
            terms.push(Term {
                tensor: t,
                shape,
                penalty: r.penalty,
                strength: r.strength,
                proximal: r.proximal,
                group_axis,
                channels: k,
            });
        }
    }
    Ok(terms)
}

/// `(outer, groups, inner)` sizes of `shape` around `axis`.
fn split(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    (
        shape[..axis].iter().product(),
        shape[axis],
        shape[axis + 1..].iter().product(),
    )
}

/// Squared L2 norm of each group along `axis`.
pub fn group_sq_norms(w: &[f32], shape: &[usize], axis: usize) -> Vec<f64> {
    let (outer, n, inner) = split(shape, axis);
    let mut sq = vec![0.0f64; n];
    for o in 0..outer {
        for (g, s) in sq.iter_mut().enumerate() {
            let base = (o * n + g) * inner;
            *s += w[base..base + inner]
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>();
        }
    }
    sq
}

impl Term {
    /// The penalty `λ P(w)` at `w` (in f64).
    pub fn value(&self, w: &[f32]) -> f64 {
        let lambda = f64::from(self.strength);
        let l1 = || w.iter().map(|&v| f64::from(v).abs()).sum::<f64>();
        let l2sq = || w.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        let norms = || {
            group_sq_norms(w, &self.shape, self.group_axis.unwrap_or(0))
                .into_iter()
                .map(f64::sqrt)
                .collect::<Vec<_>>()
        };
        let ratio = |num: f64, den: f64| if den > 0.0 { num * num / den } else { 0.0 };
        lambda
            * match self.penalty {
                Penalty::L1 => l1(),
                Penalty::GroupLasso(_) => norms().iter().sum(),
                Penalty::Hoyer => ratio(l1(), l2sq()),
                Penalty::GroupHoyer(_) => ratio(norms().iter().sum(), l2sq()),
            }
    }

    /// The proximal step for learning rate `lr`, in place: L1
    /// soft-thresholds each weight by `lr λ`, group Lasso shrinks each
    /// group's norm by `lr λ` (to exactly 0 when it is smaller). With a
    /// sparse update only the trained channels (a prefix along axis 0) are
    /// touched. Does nothing for the gradient penalties.
    pub fn prox(&self, w: &mut [f32], lr: f32) {
        let t = f64::from(lr) * f64::from(self.strength);
        let mut shape = self.shape.clone();
        let w = match self.channels {
            Some(k) if !shape.is_empty() => {
                let per = shape[1..].iter().product::<usize>();
                shape[0] = k;
                &mut w[..k * per]
            }
            _ => w,
        };
        match self.penalty {
            Penalty::L1 => {
                for v in w.iter_mut() {
                    let a = f64::from(*v).abs() - t;
                    *v = if a > 0.0 {
                        (a as f32).copysign(*v)
                    } else {
                        0.0
                    };
                }
            }
            Penalty::GroupLasso(_) => {
                let axis = self.group_axis.unwrap_or(0);
                let scale: Vec<f32> = group_sq_norms(w, &shape, axis)
                    .into_iter()
                    .map(|s| {
                        let n = s.sqrt();
                        if n > t {
                            (1.0 - t / n) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let (outer, n, inner) = split(&shape, axis);
                for o in 0..outer {
                    for (g, &s) in scale.iter().enumerate() {
                        let base = (o * n + g) * inner;
                        for v in &mut w[base..base + inner] {
                            *v *= s;
                        }
                    }
                }
            }
            Penalty::Hoyer | Penalty::GroupHoyer(_) => {}
        }
    }
}

/// Applies every proximal term to the trainable tensors `weights` (in
/// trainable order) after an update with learning rate `lr`.
pub fn apply_prox(terms: &[ProxTerm], weights: &mut [Tensor], lr: f32) {
    for (i, term) in terms {
        if let Some(Ok(w)) = weights.get_mut(*i).map(Tensor::as_f32_mut) {
            term.prox(w, lr);
        }
    }
}

/// The proximal terms of `spec` against `forward`, indexed by position in
/// `spec.trainable`.
pub fn prox_terms(
    forward: &Graph,
    spec: &crate::TrainSpec,
    channels: &HashMap<String, usize>,
) -> Result<Vec<ProxTerm>, TrainError> {
    Ok(
        resolve_terms(forward, &spec.trainable, &spec.regularizers, channels)?
            .into_iter()
            .filter(|t| t.proximal)
            .filter_map(|t| {
                let i = spec.trainable.iter().position(|w| *w == t.tensor)?;
                Some((i, t))
            })
            .collect(),
    )
}

/// Output channels whose filter is entirely zero, per layer: `(node name,
/// channel indices)` for every Conv, ConvTranspose, Gemm and MatMul whose
/// weight is an f32 initializer with at least one such channel, in graph
/// order. These are the groups structured pruning can remove (a zero
/// filter still passes its bias on, which the pruner folds downstream).
pub fn zero_groups(graph: &Graph) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    for n in &graph.nodes {
        if !matches!(
            n.op_type.as_str(),
            "Conv" | "ConvTranspose" | "Gemm" | "MatMul"
        ) {
            continue;
        }
        let Some(name) = n.inputs.get(1) else {
            continue;
        };
        let Some(Ok(w)) = graph.initializers.get(name).map(Tensor::as_f32) else {
            continue;
        };
        let Ok((axis, _)) = channel_axes(graph, name) else {
            continue;
        };
        let shape = graph.initializers[name].shape();
        if shape.len() < 2 {
            continue;
        }
        let zero: Vec<usize> = group_sq_norms(w, shape, axis)
            .iter()
            .enumerate()
            .filter(|(_, &s)| s == 0.0)
            .map(|(c, _)| c)
            .collect();
        if !zero.is_empty() {
            out.push((n.name.clone(), zero));
        }
    }
    out
}
