//! Unstructured and N:M (semi-structured) weight pruning of Conv, Gemm and
//! MatMul layers with constant weights.
//!
//! Criteria (lower score is pruned first):
//! * magnitude ([`Criterion::Magnitude`]): `|w|`;
//! * OBD ([`Criterion::Obd`]): Optimal Brain Damage saliency `½·h·w²`, the
//!   Hessian diagonal `h` estimated by the empirical Fisher (the mean
//!   squared per-sample gradient of the softmax cross-entropy of the model
//!   output against the dataset labels);
//! * Wanda ([`Criterion::Wanda`]): `|w|·‖X_j‖₂`, with `‖X_j‖₂` the norm of input
//!   channel `j` of the layer's activation over the calibration data.
//!
//! Unstructured targets are per layer or global ([`Scope`]); Wanda in layer
//! scope compares weights within each output row, as in its paper. N:M
//! keeps the N largest scores of every M consecutive weights along the
//! input dimension: for Conv `[O, C/g, kh, kw]`, M consecutive input
//! channels at the same kernel tap and output channel (the layout sparse
//! tensor cores and channels-last im2col kernels use); for Gemm/MatMul, M
//! consecutive rows of K.
//!
//! By default the first Conv (the stem: few weights, most sensitive) and
//! depthwise Convs are left dense; naming a layer (`only`, `per_layer`)
//! includes it.

mod layers;
mod mask;
mod report;
mod scores;

use std::collections::{BTreeMap, HashMap};

use whittle_data::{Dataset, Preprocess};
use whittle_ir::{Graph, Patch, Tensor};

use crate::pipeline::Progress;
use crate::CompressError;
pub use layers::SkippedLayer;
use layers::{candidates, select, Layer};
use mask::{n_of_m, unstructured, Pools, Scored};
pub use report::{LayerPrune, PruneReport};

/// How weights are scored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Criterion {
    /// `|w|`.
    #[default]
    Magnitude,
    /// `½·h·w²` with `h` the empirical Fisher diagonal (needs data).
    Obd,
    /// `|w|·‖X_j‖₂` (needs data).
    Wanda,
}

impl Criterion {
    /// Parses `magnitude`, `obd` or `wanda`.
    pub fn parse(s: &str) -> Result<Criterion, String> {
        match s.to_ascii_lowercase().as_str() {
            "magnitude" | "mag" | "l1" => Ok(Criterion::Magnitude),
            "obd" | "fisher" => Ok(Criterion::Obd),
            "wanda" => Ok(Criterion::Wanda),
            _ => Err(format!("unknown criterion '{s}' (magnitude, obd or wanda)")),
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Criterion::Magnitude => "magnitude",
            Criterion::Obd => "obd",
            Criterion::Wanda => "wanda",
        }
    }

    /// Whether the criterion needs calibration data.
    pub fn needs_data(self) -> bool {
        self != Criterion::Magnitude
    }
}

/// Where the unstructured target applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every layer gets the target sparsity.
    #[default]
    Layer,
    /// One threshold over all selected layers (layers with their own
    /// target are pruned separately).
    Global,
}

/// An N:M pattern: `n` nonzeros in every `m` consecutive weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NmPattern {
    /// Weights kept per group.
    pub n: usize,
    /// Group size.
    pub m: usize,
}

impl NmPattern {
    /// Parses `N:M` (e.g. `2:4`); needs `1 <= N < M <= 256`.
    pub fn parse(s: &str) -> Result<NmPattern, String> {
        let (a, b) = s
            .split_once(':')
            .ok_or_else(|| format!("bad N:M pattern '{s}' (examples: 2:4, 4:8)"))?;
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("bad N:M pattern '{s}' (examples: 2:4, 4:8)"))
        };
        let p = NmPattern {
            n: num(a)?,
            m: num(b)?,
        };
        p.check()?;
        Ok(p)
    }

    fn check(&self) -> Result<(), String> {
        if self.m > 256 {
            return Err(format!(
                "N:M pattern {self}: M = {} is too large (at most 256)",
                self.m
            ));
        }
        if self.n == 0 || self.n >= self.m {
            return Err(format!(
                "N:M pattern {self}: N must be at least 1 and smaller than M (N nonzeros kept in every M weights)"
            ));
        }
        Ok(())
    }
}

impl std::fmt::Display for NmPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.n, self.m)
    }
}

/// Options of [`prune_unstructured`].
#[derive(Clone, Debug)]
pub struct UnstructuredOptions {
    /// How weights are scored.
    pub criterion: Criterion,
    /// Target fraction of zero weights, in [0, 1) (ignored with `nm`).
    pub sparsity: f32,
    /// Per layer or global target.
    pub scope: Scope,
    /// N:M pattern instead of an unstructured target.
    pub nm: Option<NmPattern>,
    /// Per-layer targets by node or weight name; naming a layer selects it.
    pub per_layer: BTreeMap<String, f32>,
    /// Layers (node or weight names) never pruned.
    pub skip: Vec<String>,
    /// When not empty, only these layers are pruned.
    pub only: Vec<String>,
    /// Calibration samples for OBD and Wanda (the first N of the data).
    pub calib_samples: usize,
    /// Samples per run for Wanda's activation statistics.
    pub batch: usize,
    /// How raw samples become model inputs.
    pub preprocess: Preprocess,
    /// Static input shapes (`--input-shape`).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Threads kernels may use.
    pub threads: usize,
}

impl Default for UnstructuredOptions {
    fn default() -> Self {
        UnstructuredOptions {
            criterion: Criterion::Magnitude,
            sparsity: 0.5,
            scope: Scope::Layer,
            nm: None,
            per_layer: BTreeMap::new(),
            skip: Vec::new(),
            only: Vec::new(),
            calib_samples: 256,
            batch: 32,
            preprocess: Preprocess::default(),
            input_shapes: HashMap::new(),
            threads: 1,
        }
    }
}

/// A pruned model.
#[derive(Clone, Debug)]
pub struct Pruned {
    /// The model with pruned weights set to zero (save it with
    /// `whittle_onnx::save_model_with` and sparse storage so it shrinks).
    pub graph: Graph,
    /// What was pruned.
    pub report: PruneReport,
}

fn check_sparsity(what: &str, s: f32) -> Result<(), CompressError> {
    if !(0.0..1.0).contains(&s) {
        return Err(CompressError::Options(format!(
            "{what} {s} is outside [0, 1) (the fraction of weights set to zero)"
        )));
    }
    Ok(())
}

fn check_options(o: &UnstructuredOptions, data: Option<&Dataset>) -> Result<(), CompressError> {
    check_sparsity("sparsity", o.sparsity)?;
    for (name, &s) in &o.per_layer {
        check_sparsity(&format!("sparsity of layer '{name}'"), s)?;
    }
    if let Some(nm) = &o.nm {
        nm.check().map_err(CompressError::Options)?;
        if !o.per_layer.is_empty() {
            return Err(CompressError::Options(
                "per-layer sparsities do not apply to N:M pruning (use only/skip to choose layers)"
                    .into(),
            ));
        }
    }
    if o.criterion.needs_data() {
        match data {
            None => {
                return Err(CompressError::Options(format!(
                    "criterion '{}' needs calibration data (--calib DATA)",
                    o.criterion.name()
                )))
            }
            Some(d) if d.is_empty() => {
                return Err(CompressError::Options(format!(
                    "calibration data {} holds no samples",
                    d.source().display()
                )))
            }
            _ => {}
        }
        if o.calib_samples == 0 {
            return Err(CompressError::Options(
                "calibration samples must be at least 1".into(),
            ));
        }
    }
    Ok(())
}

/// Zeroes weights of the selected Conv/Gemm/MatMul layers of `graph` by
/// `opts.criterion`, to `opts.sparsity` (or to the N:M pattern). `data`
/// is the calibration set for OBD and Wanda. `progress` hears about the
/// data passes (`activations`, `gradients`).
pub fn prune_unstructured(
    graph: &Graph,
    opts: &UnstructuredOptions,
    data: Option<&Dataset>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Pruned, CompressError> {
    check_options(opts, data)?;
    let mut g = graph.clone();
    g.topo_sort()?;
    let sel = select(&g, candidates(&g)?, &opts.only, &opts.skip, &opts.per_layer)?;
    if sel.chosen.is_empty() {
        return Err(CompressError::Options(format!(
            "nothing to prune: no selected Conv, Gemm or MatMul with constant f32 weights{}",
            if sel.skipped.is_empty() {
                String::new()
            } else {
                format!(
                    " (left out: {})",
                    sel.skipped
                        .iter()
                        .map(|s| format!("{}: {}", s.node, s.reason))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        )));
    }
    let layers: Vec<&Layer> = sel.chosen.iter().map(|(l, _)| l).collect();
    if let Some(nm) = &opts.nm {
        for l in &layers {
            if !l.layout.k.is_multiple_of(nm.m) {
                return Err(CompressError::Options(format!(
                    "N:M {nm}: layer '{}' ({}, weight {:?}) has an input dimension of {}, not a multiple of {} (skip it with --skip {})",
                    l.node,
                    l.op,
                    g.initializers[&l.weight].shape(),
                    l.layout.k,
                    nm.m,
                    l.node
                )));
            }
        }
    }
    let weights: Vec<&[f32]> = layers
        .iter()
        .map(|l| {
            let w = g.initializers[&l.weight].as_f32()?;
            if let Some(bad) = w.iter().find(|v| !v.is_finite()) {
                return Err(CompressError::NonFinite {
                    tensor: l.weight.clone(),
                    what: if bad.is_nan() { "NaN" } else { "infinity" },
                    context: format!(" (weight of '{}')", l.node),
                });
            }
            Ok(w)
        })
        .collect::<Result<_, CompressError>>()?;
    let mut samples = 0;
    let scored: Vec<Vec<f64>> = match (opts.criterion, data) {
        (Criterion::Magnitude, _) | (_, None) => weights
            .iter()
            .map(|w| w.iter().map(|&v| f64::from(v.abs())).collect())
            .collect(),
        (Criterion::Wanda, Some(ds)) => {
            samples = opts.calib_samples.min(ds.len());
            let norms = scores::activation_norms(&g, &layers, ds, opts, progress)?;
            layers
                .iter()
                .zip(&weights)
                .map(|(l, w)| {
                    let norm = &norms[&l.input];
                    let lay = l.layout;
                    let mut s = vec![0.0; w.len()];
                    for row in 0..lay.rows {
                        for k in 0..lay.k {
                            let x = norm[lay.act_channel(row, k)];
                            for t in 0..lay.taps {
                                let i = lay.index(row, k, t);
                                s[i] = f64::from(w[i].abs()) * x;
                            }
                        }
                    }
                    s
                })
                .collect()
        }
        (Criterion::Obd, Some(ds)) => {
            samples = opts.calib_samples.min(ds.len());
            let fisher = scores::fisher_diagonal(&g, &layers, ds, opts, progress)?;
            layers
                .iter()
                .zip(&weights)
                .map(|(l, w)| {
                    w.iter()
                        .zip(&fisher[&l.weight])
                        .map(|(&v, &h)| 0.5 * h * f64::from(v) * f64::from(v))
                        .collect()
                })
                .collect()
        }
    };
    let (masks, scope) = match &opts.nm {
        Some(nm) => (
            layers
                .iter()
                .zip(&scored)
                .map(|(l, s)| n_of_m(&l.layout, s, nm.n, nm.m))
                .collect(),
            "n:m",
        ),
        None => {
            let pools = match (opts.scope, opts.criterion) {
                (Scope::Global, _) => Pools::Global,
                (Scope::Layer, Criterion::Wanda) => Pools::Row,
                (Scope::Layer, _) => Pools::Layer,
            };
            let items: Vec<Scored<'_>> = sel
                .chosen
                .iter()
                .zip(scored)
                .map(|((l, s), scores)| Scored {
                    layout: &l.layout,
                    scores,
                    sparsity: *s,
                })
                .collect();
            (
                unstructured(&items, pools, opts.sparsity),
                match pools {
                    Pools::Global => "global",
                    Pools::Row => "row",
                    Pools::Layer => "layer",
                },
            )
        }
    };
    let mut out = Vec::with_capacity(layers.len());
    let mut patch = Patch::new();
    for (((l, target), w), mask) in sel.chosen.iter().zip(&weights).zip(&masks) {
        let t = &g.initializers[&l.weight];
        let new: Vec<f32> = w
            .iter()
            .zip(mask)
            .map(|(&v, &p)| if p { 0.0 } else { v })
            .collect();
        let nz = |v: &[f32]| v.iter().filter(|&&x| x != 0.0).count();
        let tensor = Tensor::from_f32(t.shape().to_vec(), new)?;
        let nonzero_after = nz(tensor.as_f32()?);
        out.push(LayerPrune {
            node: l.node.clone(),
            op: l.op.clone(),
            weight: l.weight.clone(),
            shape: t.shape().to_vec(),
            params: t.numel(),
            nonzero_before: nz(w),
            nonzero_after,
            sparsity: 1.0 - nonzero_after as f64 / t.numel().max(1) as f64,
            target: target.map(f64::from),
            bytes_dense: t.byte_size(),
            bytes_stored: stored_bytes(&tensor),
        });
        patch.set_initializer(&l.weight, tensor);
    }
    g.apply(patch);
    let report = PruneReport {
        criterion: opts.criterion.name().into(),
        scope: scope.into(),
        pattern: opts
            .nm
            .map_or("unstructured".to_string(), |nm| nm.to_string()),
        target_sparsity: opts.nm.map_or(f64::from(opts.sparsity), |nm| {
            1.0 - nm.n as f64 / nm.m as f64
        }),
        calibration_samples: samples,
        params: out.iter().map(|l| l.params).sum(),
        nonzero: out.iter().map(|l| l.nonzero_after).sum(),
        layers: out,
        skipped: sel.skipped,
    };
    Ok(Pruned { graph: g, report })
}

/// Bytes `t` takes in a file written with sparse storage.
fn stored_bytes(t: &Tensor) -> usize {
    if whittle_onnx::stores_sparse(t) {
        whittle_onnx::sparse_coo_bytes(t).unwrap_or(t.byte_size())
    } else {
        t.byte_size()
    }
}
