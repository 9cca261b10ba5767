//! Update schemes: which layers train, and how much of each, from a small
//! TOML (or JSON) file or from flags.
//!
//! A *layer* is a Conv, ConvTranspose, Gemm or MatMul node whose weight
//! (input 1) is an f32 initializer. Its parameters are the weight, the
//! bias (input 2, or the constant operand of an Add right after it) and
//! the scale and bias of a BatchNormalization right after it. Layers are
//! counted in topological order.
//!
//! Modes: `full` (every learnable initializer, as
//! [`default_trainable`]), `last_k` (the last K layers train, earlier ones
//! are frozen, so no backward work reaches them), `bias_only` (TinyTL:
//! every layer trains its biases only, BatchNorm scales too with
//! `bn_scale`), `sparse` (only the layers listed train). `[[layer]]`
//! entries override any mode per layer: a channel `ratio` (sparse update:
//! the first `ceil(ratio C)` output channels of the weight train, the bias
//! and BatchNorm parameters train fully), `bias_only`, or `frozen`.
//!
//! ```toml
//! mode = "bias_only"
//! frozen_bn = true
//!
//! [[layer]]
//! name = "features.4.0"   # node name, weight name, or weight name without ".weight"
//! ratio = 0.25
//!
//! [[regularizer]]
//! penalty = "group_lasso" # l1 | group_lasso | hoyer | group_hoyer
//! groups = "filters"      # filters | input_channels
//! strength = 1e-3
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path;

use serde::Deserialize;
use whittle_ir::{DType, Graph};

use crate::{
    default_trainable, BatchNormMode, Groups, Penalty, Regularizer, TrainError, TrainSpec,
};

/// Which layers train by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemeMode {
    /// Every learnable initializer trains.
    #[default]
    Full,
    /// The last `last_k` layers train fully; earlier ones are frozen.
    LastK,
    /// Every layer trains its biases only.
    BiasOnly,
    /// Only the layers named in `[[layer]]` train.
    Sparse,
}

/// How one named layer trains, overriding the mode.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerRule {
    /// Node name, weight name, or weight name without its `.weight`
    /// suffix (PyTorch's module path).
    pub name: String,
    /// Fraction of the weight's output channels that train, in (0, 1];
    /// absent means 1.
    #[serde(default)]
    pub ratio: Option<f32>,
    /// Train the biases only.
    #[serde(default)]
    pub bias_only: bool,
    /// Train nothing.
    #[serde(default)]
    pub frozen: bool,
}

impl LayerRule {
    /// A layer training the first `ratio` of its output channels.
    pub fn ratio(name: &str, ratio: f32) -> LayerRule {
        LayerRule {
            name: name.to_string(),
            ratio: Some(ratio),
            ..LayerRule::default()
        }
    }

    /// A layer training its biases only.
    pub fn bias_only(name: &str) -> LayerRule {
        LayerRule {
            name: name.to_string(),
            bias_only: true,
            ..LayerRule::default()
        }
    }
}

/// A regularizer as written in a scheme file.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegularizerConfig {
    /// `l1`, `group_lasso`, `hoyer` or `group_hoyer`.
    pub penalty: String,
    /// `filters` (default) or `input_channels`, for group penalties.
    #[serde(default)]
    pub groups: Option<String>,
    /// λ.
    pub strength: f32,
    /// Tensor or layer names; absent means every trainable layer weight.
    #[serde(default)]
    pub tensors: Vec<String>,
    /// Proximal step instead of a (sub)gradient; default: proximal for L1
    /// and group Lasso.
    #[serde(default)]
    pub proximal: Option<bool>,
}

/// An update scheme (see the module docs for the file format).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateScheme {
    /// Default training of every layer; `last_k` alone implies `LastK`.
    #[serde(default)]
    pub mode: Option<SchemeMode>,
    /// K, for `last_k`.
    #[serde(default)]
    pub last_k: Option<usize>,
    /// BatchNorm uses its running statistics and does not update them.
    #[serde(default)]
    pub frozen_bn: bool,
    /// Bias-only layers also train BatchNorm scales.
    #[serde(default)]
    pub bn_scale: bool,
    /// Per-layer overrides.
    #[serde(default, rename = "layer")]
    pub layers: Vec<LayerRule>,
    /// Regularizers.
    #[serde(default, rename = "regularizer")]
    pub regularizers: Vec<RegularizerConfig>,
}

/// How a layer ended up training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LayerTraining {
    /// Nothing trains.
    Frozen,
    /// Biases (and BatchNorm scales with `bn_scale`) only.
    BiasOnly,
    /// Everything; the weight on the first `ratio` of its output channels.
    Weights {
        /// Fraction of output channels of the weight that train.
        ratio: f32,
    },
}

/// What a scheme resolves to against a graph: the [`TrainSpec`] fields.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedScheme {
    /// Initializers that train, in graph order.
    pub trainable: Vec<String>,
    /// Sparse update ratios (only those below 1).
    pub channel_ratio: HashMap<String, f32>,
    /// BatchNorm mode.
    pub batchnorm: BatchNormMode,
    /// Regularizers, tensor names resolved.
    pub regularizers: Vec<Regularizer>,
    /// Every layer (node name) and how it trains, in topological order.
    pub layers: Vec<(String, LayerTraining)>,
}

impl ResolvedScheme {
    /// Writes the resolved fields into `spec`.
    pub fn apply(&self, spec: &mut TrainSpec) {
        spec.trainable = self.trainable.clone();
        spec.channel_ratio = self.channel_ratio.clone();
        spec.batchnorm = self.batchnorm;
        spec.regularizers = self.regularizers.clone();
    }
}

/// A layer of the graph and its parameters.
struct Layer {
    node: String,
    op: String,
    trans_b: bool,
    weight: String,
    biases: Vec<String>,
    bn_scale: Option<String>,
}

fn spec_err(msg: impl Into<String>) -> TrainError {
    TrainError::Spec(msg.into())
}

impl UpdateScheme {
    /// Every learnable initializer trains.
    pub fn full() -> UpdateScheme {
        UpdateScheme::default()
    }

    /// The last `k` layers train.
    pub fn last_k(k: usize) -> UpdateScheme {
        UpdateScheme {
            mode: Some(SchemeMode::LastK),
            last_k: Some(k),
            ..UpdateScheme::default()
        }
    }

    /// Every layer trains its biases only.
    pub fn bias_only() -> UpdateScheme {
        UpdateScheme {
            mode: Some(SchemeMode::BiasOnly),
            ..UpdateScheme::default()
        }
    }

    /// Only `layers` train, as each says.
    pub fn sparse(layers: Vec<LayerRule>) -> UpdateScheme {
        UpdateScheme {
            mode: Some(SchemeMode::Sparse),
            layers,
            ..UpdateScheme::default()
        }
    }

    /// Adds a per-layer override.
    pub fn with_layer(mut self, rule: LayerRule) -> UpdateScheme {
        self.layers.push(rule);
        self
    }

    /// Sets frozen BatchNorm statistics.
    pub fn with_frozen_bn(mut self, frozen: bool) -> UpdateScheme {
        self.frozen_bn = frozen;
        self
    }

    /// Parses a TOML scheme.
    pub fn from_toml(text: &str) -> Result<UpdateScheme, TrainError> {
        toml::from_str(text).map_err(|e| spec_err(format!("update scheme: {e}")))
    }

    /// Parses a JSON scheme (same fields as TOML).
    pub fn from_json(text: &str) -> Result<UpdateScheme, TrainError> {
        serde_json::from_str(text).map_err(|e| spec_err(format!("update scheme: {e}")))
    }

    /// Reads a scheme file: JSON when it ends in `.json`, TOML otherwise.
    pub fn from_file(path: &Path) -> Result<UpdateScheme, TrainError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| spec_err(format!("{}: {e}", path.display())))?;
        let json = path.extension().is_some_and(|e| e == "json");
        let parsed = if json {
            UpdateScheme::from_json(&text)
        } else {
            UpdateScheme::from_toml(&text)
        };
        parsed.map_err(|e| spec_err(format!("{}: {e}", path.display())))
    }

    /// The mode in force, checked against `last_k`.
    fn effective_mode(&self) -> Result<SchemeMode, TrainError> {
        match (self.mode, self.last_k) {
            (None, Some(_)) | (Some(SchemeMode::LastK), Some(_)) => Ok(SchemeMode::LastK),
            (Some(SchemeMode::LastK), None) => Err(spec_err("mode last_k needs last_k = K")),
            (Some(m), Some(_)) => Err(spec_err(format!(
                "last_k is given but mode is {m:?}; drop one of them"
            ))),
            (m, None) => Ok(m.unwrap_or_default()),
        }
    }

    /// Resolves the scheme against `graph`: the trainable tensors, channel
    /// ratios, BatchNorm mode and regularizers of a [`TrainSpec`].
    pub fn resolve(&self, graph: &Graph) -> Result<ResolvedScheme, TrainError> {
        let mode = self.effective_mode()?;
        let mut g = graph.clone();
        g.topo_sort()?;
        let layers = find_layers(&g);
        if layers.is_empty() {
            return Err(spec_err("the model has no layer with f32 weights"));
        }
        let mut how: Vec<LayerTraining> = match mode {
            SchemeMode::Full => vec![LayerTraining::Weights { ratio: 1.0 }; layers.len()],
            SchemeMode::BiasOnly => vec![LayerTraining::BiasOnly; layers.len()],
            SchemeMode::Sparse => vec![LayerTraining::Frozen; layers.len()],
            SchemeMode::LastK => {
                let k = self.last_k.unwrap_or(0);
                if k == 0 || k > layers.len() {
                    return Err(spec_err(format!(
                        "last_k = {k}, but the model has {} layers with weights (1..={} allowed)",
                        layers.len(),
                        layers.len()
                    )));
                }
                let first = layers.len() - k;
                (0..layers.len())
                    .map(|i| {
                        if i >= first {
                            LayerTraining::Weights { ratio: 1.0 }
                        } else {
                            LayerTraining::Frozen
                        }
                    })
                    .collect()
            }
        };
        if mode == SchemeMode::Sparse && self.layers.is_empty() {
            return Err(spec_err(
                "mode sparse needs [[layer]] entries naming what trains",
            ));
        }
        let mut ruled: HashMap<usize, &str> = HashMap::new();
        for rule in &self.layers {
            let i = find_layer(&layers, &rule.name)?;
            if let Some(prev) = ruled.insert(i, &rule.name) {
                return Err(spec_err(format!(
                    "layer '{}' is named twice ('{prev}' and '{}')",
                    layers[i].node, rule.name
                )));
            }
            how[i] = rule_training(rule, &layers[i])?;
        }

        // Which initializers train.
        let learnable: HashSet<String> = default_trainable(&g).into_iter().collect();
        let mut chosen: HashSet<String> = HashSet::new();
        if mode == SchemeMode::Full {
            let owned: HashSet<&String> = layers.iter().flat_map(params).collect();
            chosen.extend(learnable.iter().filter(|n| !owned.contains(n)).cloned());
        }
        let mut channel_ratio = HashMap::new();
        for (layer, t) in layers.iter().zip(&how) {
            match *t {
                LayerTraining::Frozen => {}
                LayerTraining::BiasOnly => {
                    chosen.extend(layer.biases.iter().cloned());
                    if self.bn_scale {
                        chosen.extend(layer.bn_scale.iter().cloned());
                    }
                }
                LayerTraining::Weights { ratio } => {
                    chosen.extend(params(layer).cloned());
                    if ratio < 1.0 {
                        channel_ratio.insert(layer.weight.clone(), ratio);
                    }
                }
            }
        }
        let trainable: Vec<String> = g
            .initializers
            .keys()
            .filter(|n| chosen.contains(*n) && learnable.contains(*n))
            .cloned()
            .collect();
        if trainable.is_empty() {
            return Err(spec_err(
                "the scheme trains nothing (no layer it selects has a learnable parameter)",
            ));
        }
        let regularizers = self
            .regularizers
            .iter()
            .map(|r| regularizer(r, &layers))
            .collect::<Result<_, _>>()?;
        Ok(ResolvedScheme {
            trainable,
            channel_ratio,
            batchnorm: if self.frozen_bn {
                BatchNormMode::Frozen
            } else {
                BatchNormMode::Train
            },
            regularizers,
            layers: layers.iter().map(|l| l.node.clone()).zip(how).collect(),
        })
    }

    /// A [`TrainSpec`] for `loss` with this scheme resolved on `graph`.
    pub fn train_spec(&self, graph: &Graph, loss: crate::Loss) -> Result<TrainSpec, TrainError> {
        let mut spec = TrainSpec::new(loss, Vec::new());
        self.resolve(graph)?.apply(&mut spec);
        Ok(spec)
    }
}

/// Weight, biases and BatchNorm scale of a layer.
fn params(l: &Layer) -> impl Iterator<Item = &String> {
    std::iter::once(&l.weight)
        .chain(&l.biases)
        .chain(l.bn_scale.iter())
}

fn rule_training(rule: &LayerRule, layer: &Layer) -> Result<LayerTraining, TrainError> {
    let set = [rule.ratio.is_some(), rule.bias_only, rule.frozen];
    if set.iter().filter(|&&b| b).count() > 1 {
        return Err(spec_err(format!(
            "layer '{}': ratio, bias_only and frozen exclude each other",
            rule.name
        )));
    }
    if rule.frozen {
        return Ok(LayerTraining::Frozen);
    }
    if rule.bias_only {
        if layer.biases.is_empty() {
            return Err(spec_err(format!(
                "layer '{}' has no bias (nor a BatchNorm after it) to train",
                rule.name
            )));
        }
        return Ok(LayerTraining::BiasOnly);
    }
    let ratio = rule.ratio.unwrap_or(1.0);
    if !(ratio > 0.0 && ratio <= 1.0) {
        return Err(spec_err(format!(
            "layer '{}': ratio {ratio} is outside (0, 1]",
            rule.name
        )));
    }
    let channel_first = layer.op == "Conv" || (layer.op == "Gemm" && layer.trans_b);
    if ratio < 1.0 && !channel_first {
        return Err(spec_err(format!(
            "layer '{}' ({}): a channel ratio needs a Conv or a Gemm with transB = 1",
            rule.name, layer.op
        )));
    }
    Ok(LayerTraining::Weights { ratio })
}

/// The layers of a topologically sorted graph.
fn find_layers(g: &Graph) -> Vec<Layer> {
    let is_f32 = |n: &str| {
        g.initializers
            .get(n)
            .is_some_and(|t| t.dtype() == DType::F32)
    };
    let mut layers: Vec<Layer> = Vec::new();
    // Output value of each layer's node -> layer index.
    let mut by_output: HashMap<&str, usize> = HashMap::new();
    for n in &g.nodes {
        let op = n.op_type.as_str();
        if matches!(op, "Conv" | "ConvTranspose" | "Gemm" | "MatMul") {
            if let Some(w) = n.inputs.get(1).filter(|w| is_f32(w)) {
                let biases = n.inputs.get(2).filter(|b| is_f32(b)).cloned();
                by_output.insert(n.outputs[0].as_str(), layers.len());
                layers.push(Layer {
                    node: n.name.clone(),
                    op: op.to_string(),
                    trans_b: n.attr_int("transB", 0).unwrap_or(0) != 0,
                    weight: w.clone(),
                    biases: biases.into_iter().collect(),
                    bn_scale: None,
                });
            }
            continue;
        }
        let Some(&li) = n.inputs.first().and_then(|x| by_output.get(x.as_str())) else {
            continue;
        };
        match op {
            "BatchNormalization" => {
                let l = &mut layers[li];
                l.bn_scale = n.inputs.get(1).filter(|s| is_f32(s)).cloned();
                l.biases
                    .extend(n.inputs.get(2).filter(|b| is_f32(b)).cloned());
            }
            "Add" if layers[li].biases.is_empty() => {
                if let Some(b) = n.inputs.get(1).filter(|b| is_f32(b)) {
                    layers[li].biases.push(b.clone());
                    by_output.insert(n.outputs[0].as_str(), li);
                }
            }
            _ => {}
        }
    }
    layers
}

/// The layer a rule names: node name, weight name, or weight name without
/// `.weight`.
fn find_layer(layers: &[Layer], name: &str) -> Result<usize, TrainError> {
    let hits: Vec<usize> = layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l.node == name || l.weight == name || l.weight.strip_suffix(".weight") == Some(name)
        })
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [i] => Ok(*i),
        [] => {
            let mut names: Vec<&str> = layers
                .iter()
                .flat_map(|l| {
                    [
                        l.node.as_str(),
                        l.weight.strip_suffix(".weight").unwrap_or(&l.weight),
                    ]
                })
                .collect();
            names.sort_by_key(|c| strsim::levenshtein(c, name));
            names.dedup();
            names.truncate(3);
            Err(spec_err(format!(
                "no layer named '{name}'; closest: {}",
                names.join(", ")
            )))
        }
        _ => Err(spec_err(format!(
            "'{name}' names {} layers; use a node name",
            hits.len()
        ))),
    }
}

/// A regularizer from its file form; layer names become weight names.
fn regularizer(c: &RegularizerConfig, layers: &[Layer]) -> Result<Regularizer, TrainError> {
    let groups = match c.groups.as_deref() {
        None | Some("filters") => Groups::Filters,
        Some("input_channels") => Groups::InputChannels,
        Some(other) => {
            return Err(spec_err(format!(
                "regularizer groups '{other}': expected filters or input_channels"
            )))
        }
    };
    let penalty = match c.penalty.as_str() {
        "l1" => Penalty::L1,
        "group_lasso" => Penalty::GroupLasso(groups),
        "hoyer" => Penalty::Hoyer,
        "group_hoyer" => Penalty::GroupHoyer(groups),
        other => {
            return Err(spec_err(format!(
                "regularizer penalty '{other}': expected l1, group_lasso, hoyer or group_hoyer"
            )))
        }
    };
    let mut r = Regularizer::new(penalty, c.strength);
    if let Some(p) = c.proximal {
        r.proximal = p;
    }
    for t in &c.tensors {
        let is_param = layers.iter().any(|l| params(l).any(|p| p == t));
        let name = if is_param {
            t.clone()
        } else {
            layers[find_layer(layers, t)?].weight.clone()
        };
        r.tensors.push(name);
    }
    Ok(r)
}
