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
        self.update_running_stats();
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
