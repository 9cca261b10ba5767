//! A minimal training loop: compile the training graph once, then per
//! batch feed inputs, labels and weights, run, and update the weights on
//! the host.

use whittle_data::{Dataset, InputSpec};
use whittle_ir::{DType, Graph, Tensor};
use whittle_runtime::Plan;

use crate::{build_training_graph, Loss, Optimizer, TrainError, TrainGraph, TrainSpec};

/// How a [`Trainer`] runs.
#[derive(Clone, Debug)]
pub struct TrainerOptions {
    /// Threads for the compiled graph.
    pub threads: usize,
    /// Samples per step (the graph is compiled for this batch size).
    pub batch_size: usize,
}

/// Figures of one step or one epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Mean loss.
    pub loss: f32,
    /// Samples whose logits' argmax is the label (classification only).
    pub correct: usize,
    /// Samples seen.
    pub samples: usize,
}

impl StepStats {
    /// Fraction of samples classified correctly.
    pub fn accuracy(&self) -> f64 {
        if self.samples == 0 {
            0.0
        } else {
            self.correct as f64 / self.samples as f64
        }
    }
}

/// Trains a forward graph's weights with an [`Optimizer`].
pub struct Trainer {
    forward: Graph,
    train: TrainGraph,
    plan: Plan,
    optimizer: Box<dyn Optimizer>,
    weights: Vec<Tensor>,
    data_input: String,
    /// Plan input index of: the data, the labels, each weight.
    data_slot: usize,
    label_slot: usize,
    weight_slots: Vec<usize>,
    /// Plan output index of the logits (classification).
    logits_slot: Option<usize>,
    batch: usize,
    classify: bool,
    /// Proximal regularizer steps applied after each update.
    prox: Vec<crate::regularize::ProxTerm>,
    /// Per weight (spec order): where the spec's mask is 0, the weight is
    /// held at exactly 0 after every step.
    masks: Vec<Option<Vec<bool>>>,
    steps: u64,
}

impl Trainer {
    /// Builds and compiles the training graph of `forward` for batches of
    /// `opts.batch_size` samples. The forward graph must have exactly one
    /// data input.
    pub fn new(
        forward: &Graph,
        spec: &TrainSpec,
        optimizer: Box<dyn Optimizer>,
        opts: &TrainerOptions,
    ) -> Result<Trainer, TrainError> {
        let data: Vec<_> = forward
            .inputs
            .iter()
            .filter(|i| !forward.initializers.contains_key(&i.name))
            .collect();
        let [data] = data.as_slice() else {
            return Err(TrainError::Spec(format!(
                "the trainer needs a model with one data input, found {}",
                data.len()
            )));
        };
        let data_input = data.name.clone();
        let mut spec = spec.clone();
        let shape = data
            .shape
            .as_ref()
            .ok_or_else(|| TrainError::Spec(format!("input '{data_input}' has no shape")))?;
        let mut dims: Vec<usize> = shape
            .iter()
            .map(|d| match d {
                whittle_ir::Dim::Known(n) => *n,
                _ => 1,
            })
            .collect();
        if dims.is_empty() {
            return Err(TrainError::Spec(format!(
                "input '{data_input}' is a scalar"
            )));
        }
        dims[0] = opts.batch_size.max(1);
        spec.input_shapes.insert(data_input.clone(), dims);
        let classify = matches!(spec.loss, Loss::SoftmaxCrossEntropy { .. });
        if let Loss::SoftmaxCrossEntropy { logits, .. } = &spec.loss {
            if !spec.keep_outputs.contains(logits) {
                spec.keep_outputs.push(logits.clone());
            }
        }
        let train = build_training_graph(forward, &spec)?;
        let prox = crate::regularize::prox_terms(forward, &spec, &train.channels)?;
        let plan = train.compile(opts.threads)?;
        let slot = |name: &str| -> Result<usize, TrainError> {
            plan.inputs()
                .position(|i| i.name == name)
                .ok_or_else(|| TrainError::Spec(format!("compiled graph has no input '{name}'")))
        };
        let data_slot = slot(&data_input)?;
        let label_slot = slot(&train.labels)?;
        let weight_slots = train
            .initial
            .iter()
            .map(|(w, _)| slot(w))
            .collect::<Result<_, _>>()?;
        let logits_slot = match &spec.loss {
            Loss::SoftmaxCrossEntropy { logits, .. } => {
                plan.outputs().position(|o| o.name == *logits)
            }
            Loss::Mse { .. } => None,
        };
        let masks = weight_masks(&train.initial, &spec)?;
        Ok(Trainer {
            forward: forward.clone(),
            weights: train.initial.iter().map(|(_, t)| t.clone()).collect(),
            train,
            plan,
            optimizer,
            data_input,
            data_slot,
            label_slot,
            weight_slots,
            logits_slot,
            batch: opts.batch_size.max(1),
            classify,
            prox,
            masks,
            steps: 0,
        })
    }

    /// The training graph.
    pub fn training_graph(&self) -> &TrainGraph {
        &self.train
    }

    /// The compiled training plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The optimizer (e.g. to change the learning rate).
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// Samples per step.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// One step on a full batch: `x` of the compiled input shape, `labels`
    /// as int64 class indices `[N]` (or an f32 target for MSE). Returns the
    /// loss before the update.
    pub fn step(&mut self, x: &Tensor, labels: &Tensor) -> Result<StepStats, TrainError> {
        self.plan.set_input_tensor(self.data_slot, x)?;
        self.plan.set_input_tensor(self.label_slot, labels)?;
        for (slot, w) in self.weight_slots.iter().zip(&self.weights) {
            self.plan.set_input_tensor(*slot, w)?;
        }
        self.plan.execute()?;
        let loss = self.plan.output(0).map_or(f32::NAN, |v| v.f32()[0]);
        let mut correct = 0;
        if let (Some(slot), true) = (self.logits_slot, self.classify) {
            let logits = self.plan.output(slot).map(|v| v.f32()).unwrap_or(&[]);
            let l = labels.as_i64()?;
            let c = logits.len() / l.len().max(1);
            for (row, &y) in logits.chunks_exact(c.max(1)).zip(l) {
                if argmax(row) == y as usize {
                    correct += 1;
                }
            }
        }
        let grads: Vec<&[f32]> = (0..self.weights.len())
            .map(|i| self.plan.output(1 + i).map_or(&[][..], |v| v.f32()))
            .collect();
        self.optimizer.step(&mut self.weights, &grads);
        crate::regularize::apply_prox(&self.prox, &mut self.weights, self.optimizer.lr());
        self.apply_masks();
        self.update_running_stats();
        self.steps += 1;
        Ok(StepStats {
            loss,
            correct,
            samples: self.batch,
        })
    }

    /// Folds the last step's batch statistics into the running ones
    /// (unbiased variance, as PyTorch).
    fn update_running_stats(&mut self) {
        let first = 1 + self.weights.len();
        let count = self.batch_count_per_channel();
        for (k, s) in self.train.batchnorm.iter().enumerate() {
            let (Some(mean), Some(inv)) = (
                self.plan.output(first + 2 * k).map(|v| v.f32()),
                self.plan.output(first + 2 * k + 1).map(|v| v.f32()),
            ) else {
                continue;
            };
            let n = count.get(k).copied().unwrap_or(1) as f32;
            let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            let m = s.momentum;
            if let Some(t) = self.forward.initializers.get_mut(&s.running_mean) {
                if let Ok(r) = t.as_f32_mut() {
                    for (r, &b) in r.iter_mut().zip(mean) {
                        *r = m * *r + (1.0 - m) * b;
                    }
                }
            }
            if let Some(t) = self.forward.initializers.get_mut(&s.running_var) {
                if let Ok(r) = t.as_f32_mut() {
                    for (r, &i) in r.iter_mut().zip(inv) {
                        let var = (1.0 / (i * i) - s.epsilon).max(0.0) * unbias;
                        *r = m * *r + (1.0 - m) * var;
                    }
                }
            }
        }
    }

    /// Elements per channel each BatchNorm normalises over, from the
    /// plan's shapes.
    fn batch_count_per_channel(&self) -> Vec<usize> {
        let report = self.plan.report();
        self.train
            .batchnorm
            .iter()
            .map(|s| {
                report
                    .nodes
                    .iter()
                    .find(|r| r.name == s.node)
                    .and_then(|r| r.output_shapes.first())
                    .map_or(1, |sh| {
                        sh.iter().product::<usize>() / sh.get(1).copied().unwrap_or(1).max(1)
                    })
            })
            .collect()
    }

    /// One pass over `data` in order (or in the order of `perm`, a
    /// permutation of sample indices), in full batches; a last partial
    /// batch is skipped.
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        input: &InputSpec,
        perm: Option<&[usize]>,
    ) -> Result<StepStats, TrainError> {
        let numel = input.sample_numel();
        let mut shape = vec![self.batch];
        shape.extend_from_slice(input.sample_shape());
        let mut x = Tensor::zeros(DType::F32, shape)?;
        let mut y = Tensor::zeros(DType::I64, vec![self.batch])?;
        let mut total = StepStats::default();
        let mut loss_sum = 0.0f64;
        let order: Vec<usize> = match perm {
            Some(p) => p.to_vec(),
            None => (0..data.len()).collect(),
        };
        for chunk in order.chunks_exact(self.batch) {
            {
                let xs = x.as_f32_mut()?;
                let ys = match y.data_mut() {
                    whittle_ir::TensorData::I64(v) => v,
                    _ => unreachable!("created as i64"),
                };
                for (k, &s) in chunk.iter().enumerate() {
                    data.fill(input, s, &mut xs[k * numel..(k + 1) * numel])?;
                    ys[k] = i64::from(data.labels()[s]);
                }
            }
            let st = self.step(&x, &y)?;
            loss_sum += f64::from(st.loss) * st.samples as f64;
            total.correct += st.correct;
            total.samples += st.samples;
        }
        total.loss = if total.samples == 0 {
            f32::NAN
        } else {
            (loss_sum / total.samples as f64) as f32
        };
        Ok(total)
    }

    /// The forward graph with the trained weights and updated running
    /// statistics, ready to compile for inference or export.
    pub fn trained_graph(&self) -> Graph {
        let mut g = self.forward.clone();
        for ((name, _), w) in self.train.initial.iter().zip(&self.weights) {
            g.initializers.insert(name.clone(), w.clone());
        }
        g
    }

    /// Current value of every trainable tensor, in spec order.
    pub fn weights(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.train
            .initial
            .iter()
            .map(|(n, _)| n.as_str())
            .zip(&self.weights)
    }

    /// Name of the data input.
    pub fn data_input(&self) -> &str {
        &self.data_input
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Each trainable weight's mask as "keep" flags, checked against the
/// weight's shape; weights without a mask get `None`.
fn weight_masks(
    initial: &[(String, Tensor)],
    spec: &TrainSpec,
) -> Result<Vec<Option<Vec<bool>>>, TrainError> {
    for name in spec.masks.keys() {
        if !initial.iter().any(|(w, _)| w == name) {
            return Err(TrainError::Spec(format!(
                "a mask is given for '{name}', which is not a trainable tensor"
            )));
        }
    }
    initial
        .iter()
        .map(|(w, t)| {
            let Some(m) = spec.masks.get(w) else {
                return Ok(None);
            };
            if m.shape() != t.shape() {
                return Err(TrainError::Spec(format!(
                    "mask of '{w}' has shape {:?}, the weight {:?}",
                    m.shape(),
                    t.shape()
                )));
            }
            let keep = m
                .as_f32()
                .map_err(|_| TrainError::Spec(format!("mask of '{w}' must be f32")))?;
            Ok(Some(keep.iter().map(|&v| v != 0.0).collect()))
        })
        .collect()
}

/// Everything a [`Trainer`] needs to continue bit-exactly where another
/// left off.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainState {
    /// Steps taken.
    pub step: u64,
    /// Weights by name, optimizer slots as `<weight>.<slot>` (`momentum`,
    /// `adam_m`, `adam_v`), BatchNorm running statistics by their
    /// initializer names.
    pub tensors: Vec<(String, Tensor)>,
}

/// Planned memory of one training step, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainMemory {
    /// Forward activations kept for the backward pass.
    pub kept_activations: usize,
    /// Trainable weights plus frozen weights held in RAM.
    pub weights: usize,
    /// Optimizer slots (momentum, Adam moments).
    pub optimizer_state: usize,
    /// Weight gradients (all of them: the host-side optimizer path keeps
    /// them until the update).
    pub gradients: usize,
    /// The rest of the arena: other intermediates and kernel workspace.
    pub workspace: usize,
    /// Arena plus weights plus optimizer state.
    pub peak: usize,
}

// Minimal versions of the contract's state and memory API for the host-side
// optimizer path (the fused in-place update path replaces them).
impl Trainer {
    /// Changes the learning rate for the following steps (LR schedules).
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.optimizer.set_lr(lr);
    }

    /// Steps taken so far (including those of a loaded state).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Everything needed to resume bit-exactly: weights, optimizer slots,
    /// step count, BatchNorm running statistics.
    pub fn state(&self) -> TrainState {
        let mut tensors: Vec<(String, Tensor)> = self
            .weights()
            .map(|(n, t)| (n.to_string(), t.clone()))
            .collect();
        let slots = self.optimizer.slots();
        for (name, slot) in self.optimizer.slot_names().iter().zip(&slots) {
            for ((w, t), buf) in self.train.initial.iter().zip(slot) {
                if let Ok(t) = Tensor::from_f32(t.shape().to_vec(), buf.clone()) {
                    tensors.push((format!("{w}.{name}"), t));
                }
            }
        }
        for s in &self.train.batchnorm {
            for r in [&s.running_mean, &s.running_var] {
                if let Some(t) = self.forward.initializers.get(r) {
                    tensors.push((r.clone(), t.clone()));
                }
            }
        }
        TrainState {
            step: self.steps,
            tensors,
        }
    }

    /// Restores a state taken from a Trainer built from the same model and
    /// spec; errors on a missing, unknown or misshapen tensor.
    pub fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError> {
        let mut by_name: std::collections::HashMap<&str, &Tensor> =
            state.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut take = |name: &str, like: &Tensor| -> Result<Tensor, TrainError> {
            let t = by_name
                .remove(name)
                .ok_or_else(|| TrainError::Spec(format!("the state has no tensor '{name}'")))?;
            if t.shape() != like.shape() || t.dtype() != like.dtype() {
                return Err(TrainError::Spec(format!(
                    "state tensor '{name}' is {} {:?}; the model's is {} {:?}",
                    t.dtype(),
                    t.shape(),
                    like.dtype(),
                    like.shape()
                )));
            }
            Ok(t.clone())
        };
        let weights = self
            .train
            .initial
            .iter()
            .map(|(w, t)| take(w, t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut slots = Vec::new();
        if state.step > 0 {
            for name in self.optimizer.slot_names() {
                let bufs = self
                    .train
                    .initial
                    .iter()
                    .map(|(w, t)| Ok(take(&format!("{w}.{name}"), t)?.to_f32_vec()))
                    .collect::<Result<Vec<_>, TrainError>>()?;
                slots.push(bufs);
            }
        }
        let mut stats = Vec::new();
        for s in &self.train.batchnorm {
            for r in [&s.running_mean, &s.running_var] {
                if let Some(t) = self.forward.initializers.get(r) {
                    stats.push((r.clone(), take(r, t)?));
                }
            }
        }
        if let Some(extra) = by_name.keys().next() {
            return Err(TrainError::Spec(format!(
                "the state has a tensor '{extra}' this trainer does not know"
            )));
        }
        self.weights = weights;
        self.optimizer.set_slots(state.step, slots);
        for (r, t) in stats {
            self.forward.initializers.insert(r, t);
        }
        self.steps = state.step;
        Ok(())
    }

    /// Planned memory of one training step.
    pub fn memory(&self) -> TrainMemory {
        self.memory_with(self.optimizer.slot_names().len())
    }

    fn memory_with(&self, slots: usize) -> TrainMemory {
        let plan = self.plan.memory();
        let report = self.plan.report();
        let trainable: usize = self.weights.iter().map(Tensor::byte_size).sum();
        let gradients = trainable;
        // Forward values a backward node reads.
        let grad_domain = whittle_runtime::ops::grad::DOMAIN;
        let g = &self.train.graph;
        let producers = g.producers();
        let mut kept = std::collections::HashSet::new();
        for n in g.nodes.iter().filter(|n| n.domain == grad_domain) {
            for i in &n.inputs {
                if let Some(&p) = producers.get(i.as_str()) {
                    if g.nodes[p].domain != grad_domain {
                        kept.insert((g.nodes[p].name.clone(), i.clone()));
                    }
                }
            }
        }
        let kept_activations = kept
            .iter()
            .filter_map(|(node, value)| {
                let n = g.nodes.iter().find(|n| &n.name == node)?;
                let k = n.outputs.iter().position(|o| o == value)?;
                let r = report.nodes.iter().find(|r| &r.name == node)?;
                Some(r.output_shapes.get(k)?.iter().product::<usize>() * 4)
            })
            .sum::<usize>();
        let optimizer_state = slots * trainable;
        let weights = trainable + plan.weights + plan.packed_weights;
        TrainMemory {
            kept_activations,
            weights,
            optimizer_state,
            gradients,
            workspace: plan
                .arena
                .saturating_sub(kept_activations.saturating_add(gradients)),
            peak: plan.arena + weights + optimizer_state,
        }
    }

    /// Holds masked weights at exactly 0.
    fn apply_masks(&mut self) {
        for (w, m) in self.weights.iter_mut().zip(&self.masks) {
            let (Some(m), Ok(w)) = (m, w.as_f32_mut()) else {
                continue;
            };
            for (w, &keep) in w.iter_mut().zip(m) {
                if !keep {
                    *w = 0.0;
                }
            }
        }
    }
}

/// Memory of a training graph without running it (for `--plan-only`).
pub fn plan_training_memory(
    forward: &Graph,
    spec: &TrainSpec,
    optimizer: &dyn Optimizer,
    batch_size: usize,
) -> Result<TrainMemory, TrainError> {
    let opts = TrainerOptions {
        threads: 1,
        batch_size,
    };
    let t = Trainer::new(forward, spec, Box::new(crate::Sgd::new(0.0, 0.0)), &opts)?;
    Ok(t.memory_with(optimizer.slot_names().len()))
}
