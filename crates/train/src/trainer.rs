//! The training loop: compile the training graph once, with the optimizer's
//! update nodes fused into the backward pass and the weights, optimizer
//! slots and running statistics resident in the plan's arena; per batch,
//! feed the data, labels and learning rate, and run.

use whittle_data::{Dataset, InputSpec};
use whittle_ir::{DType, Graph, Tensor, TensorData};
use whittle_runtime::Plan;

use crate::autodiff::{fuse_updates, FuseOptions, FusedGraph, StateRole};
use crate::{build_training_graph, Loss, Optimizer, TrainError, TrainGraph, TrainSpec};

pub use crate::memory::{plan_training_memory, TrainMemory};

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

/// A training graph compiled for one batch size.
pub(crate) struct Compiled {
    pub fused: FusedGraph,
    pub plan: Plan,
    batch: usize,
    data_slot: usize,
    label_slot: usize,
    lr_slot: usize,
    loss_slot: usize,
    logits_slot: Option<usize>,
}

/// The spec with the data input's batch dim set, and that input's name.
pub(crate) fn spec_for_batch(
    forward: &Graph,
    spec: &TrainSpec,
    batch: usize,
) -> Result<(TrainSpec, String), TrainError> {
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
    let name = data.name.clone();
    let mut spec = spec.clone();
    let shape = data
        .shape
        .as_ref()
        .ok_or_else(|| TrainError::Spec(format!("input '{name}' has no shape")))?;
    // A shape the spec gives (e.g. a larger image than the model was
    // exported with) wins over the declared one; only the batch changes.
    let mut dims: Vec<usize> = match spec.input_shapes.get(&name) {
        Some(given) => given.clone(),
        None => shape
            .iter()
            .map(|d| match d {
                whittle_ir::Dim::Known(n) => *n,
                _ => 1,
            })
            .collect(),
    };
    if dims.is_empty() {
        return Err(TrainError::Spec(format!("input '{name}' is a scalar")));
    }
    dims[0] = batch.max(1);
    spec.input_shapes.insert(name.clone(), dims);
    if let Loss::SoftmaxCrossEntropy { logits, .. } = &spec.loss {
        if !spec.keep_outputs.contains(logits) {
            spec.keep_outputs.push(logits.clone());
        }
    }
    Ok((spec, name))
}

impl Compiled {
    /// Builds, fuses and compiles the training graph for `batch` samples.
    pub(crate) fn new(
        forward: &Graph,
        spec: &TrainSpec,
        optimizer: &dyn Optimizer,
        fuse: &FuseOptions,
        batch: usize,
        threads: usize,
    ) -> Result<Compiled, TrainError> {
        let (spec, data_input) = spec_for_batch(forward, spec, batch)?;
        let train = build_training_graph(forward, &spec)?;
        let fused = fuse_updates(train, forward, optimizer, fuse)?;
        let plan = fused.compile(threads)?;
        let input = |name: &str| -> Result<usize, TrainError> {
            plan.inputs()
                .position(|i| i.name == name)
                .ok_or_else(|| TrainError::Spec(format!("compiled graph has no input '{name}'")))
        };
        let output = |name: &str| plan.outputs().position(|o| o.name == name);
        let logits_slot = match &spec.loss {
            Loss::SoftmaxCrossEntropy { logits, .. } => output(logits),
            Loss::Mse { .. } => None,
        };
        Ok(Compiled {
            data_slot: input(&data_input)?,
            label_slot: input(&fused.train.labels)?,
            lr_slot: input(&fused.lr)?,
            loss_slot: output(&fused.train.loss)
                .ok_or_else(|| TrainError::Spec("compiled graph has no loss output".into()))?,
            logits_slot,
            batch: batch.max(1),
            fused,
            plan,
        })
    }

    /// Copies every state tensor of `self` into `other` (same graph, other
    /// batch size).
    fn copy_state_to(&self, other: &mut Plan) -> Result<(), TrainError> {
        for s in &self.fused.state {
            let t = state_tensor(&self.plan, &s.name)?;
            other.set_state(&s.name, &t)?;
        }
        Ok(())
    }
}

/// A host copy of state tensor `name` of `plan`.
pub(crate) fn state_tensor(plan: &Plan, name: &str) -> Result<Tensor, TrainError> {
    let info = plan
        .states()
        .find(|i| i.name == name)
        .ok_or_else(|| TrainError::Spec(format!("no state tensor '{name}'")))?;
    let view = plan
        .state(name)
        .ok_or_else(|| TrainError::Spec(format!("no state tensor '{name}'")))?;
    let data = TensorData::from_le_bytes(info.fact.dtype, view.bytes())?;
    Ok(Tensor::new(info.fact.shape.clone(), data)?)
}

/// Trains a forward graph's weights with an [`Optimizer`], updating them
/// inside the compiled graph.
pub struct Trainer {
    forward: Graph,
    spec: TrainSpec,
    main: Compiled,
    /// A plan for another batch size (the last partial batch of an epoch),
    /// compiled on first use.
    other: Option<Compiled>,
    optimizer: Box<dyn Optimizer>,
    fuse: FuseOptions,
    threads: usize,
    data_input: String,
    classify: bool,
    steps: u64,
    drop_last: bool,
    /// Proximal regularizer steps applied to the resident weights after
    /// each update (index into `spec.trainable`).
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
        Trainer::with_fuse_options(forward, spec, optimizer, opts, FuseOptions::default())
    }

    /// [`Trainer::new`] with options for the fused graph (masks that keep
    /// pruned weights at zero; keeping gradients as outputs).
    pub fn with_fuse_options(
        forward: &Graph,
        spec: &TrainSpec,
        optimizer: Box<dyn Optimizer>,
        opts: &TrainerOptions,
        fuse: FuseOptions,
    ) -> Result<Trainer, TrainError> {
        let batch = opts.batch_size.max(1);
        let mut fuse = fuse;
        // Masks of the spec (fixed sparsity) join those given directly.
        for (w, m) in &spec.masks {
            fuse.masks.entry(w.clone()).or_insert_with(|| m.clone());
        }
        let main = Compiled::new(
            forward,
            spec,
            optimizer.as_ref(),
            &fuse,
            batch,
            opts.threads,
        )?;
        let (_, data_input) = spec_for_batch(forward, spec, batch)?;
        let prox = crate::regularize::prox_terms(forward, spec, &main.fused.train.channels)?;
        Ok(Trainer {
            forward: forward.clone(),
            classify: matches!(spec.loss, Loss::SoftmaxCrossEntropy { .. }),
            spec: spec.clone(),
            main,
            other: None,
            optimizer,
            fuse,
            threads: opts.threads,
            data_input,
            steps: 0,
            drop_last: false,
            prox,
        })
    }

    /// The training graph (with its update nodes).
    pub fn training_graph(&self) -> &TrainGraph {
        &self.main.fused.train
    }

    /// The fused training graph and its state.
    pub fn fused_graph(&self) -> &FusedGraph {
        &self.main.fused
    }

    /// The compiled training plan.
    pub fn plan(&self) -> &Plan {
        &self.main.plan
    }

    /// The optimizer (e.g. to change the learning rate).
    pub fn optimizer_mut(&mut self) -> &mut dyn Optimizer {
        self.optimizer.as_mut()
    }

    /// Samples per step.
    pub fn batch_size(&self) -> usize {
        self.main.batch
    }

    /// Changes the learning rate for the following steps (LR schedules).
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.optimizer.set_lr(lr);
    }

    /// Steps taken so far (including those of a loaded state).
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// Proximal steps (L1 soft-threshold, group-Lasso block
    /// soft-threshold) on the resident weights after an update: they need
    /// whole tensors, so they run on the host between steps.
    fn apply_prox(&mut self) -> Result<(), TrainError> {
        let lr = self.optimizer.lr();
        for (i, term) in &self.prox {
            let name = &self.spec.trainable[*i];
            let mut t = state_tensor(&self.main.plan, name)?;
            if let Ok(w) = t.as_f32_mut() {
                term.prox(w, lr);
            }
            self.main.plan.set_state(name, &t)?;
        }
        Ok(())
    }

    /// Whether [`Trainer::train_epoch`] drops the last partial batch (as
    /// PyTorch's `drop_last=True`) instead of training on it with a plan
    /// compiled for its size. Off by default.
    pub fn set_drop_last(&mut self, drop: bool) {
        self.drop_last = drop;
    }

    /// One step: `x` with any batch size (the compiled one runs without
    /// copies; another compiles a second plan once and moves the state to
    /// it and back), `labels` as int64 class indices `[N]` (or an f32
    /// target for MSE). Returns the loss before the update.
    pub fn step(&mut self, x: &Tensor, labels: &Tensor) -> Result<StepStats, TrainError> {
        let n = x.shape().first().copied().unwrap_or(0);
        let lr = Tensor::from_f32(vec![], vec![self.optimizer.lr()])?;
        let st = if n == self.main.batch {
            run_step(&mut self.main, x, labels, &lr, self.classify)?
        } else {
            if self.other.as_ref().is_none_or(|o| o.batch != n) {
                self.other = Some(Compiled::new(
                    &self.forward,
                    &self.spec,
                    self.optimizer.as_ref(),
                    &self.fuse,
                    n,
                    self.threads,
                )?);
            }
            let other = self.other.as_mut().expect("compiled above");
            self.main.copy_state_to(&mut other.plan)?;
            let st = run_step(other, x, labels, &lr, self.classify)?;
            other.copy_state_to(&mut self.main.plan)?;
            st
        };
        self.apply_prox()?;
        self.steps += 1;
        Ok(st)
    }

    /// One pass over `data` in order (or in the order of `perm`, a
    /// permutation of sample indices), in batches of the compiled size; the
    /// last partial batch is trained too unless [`Trainer::set_drop_last`].
    pub fn train_epoch(
        &mut self,
        data: &Dataset,
        input: &InputSpec,
        perm: Option<&[usize]>,
    ) -> Result<StepStats, TrainError> {
        let order: Vec<usize> = match perm {
            Some(p) => p.to_vec(),
            None => (0..data.len()).collect(),
        };
        let mut total = StepStats::default();
        let mut loss_sum = 0.0f64;
        for chunk in order.chunks(self.main.batch) {
            if chunk.len() < self.main.batch && self.drop_last {
                break;
            }
            let (x, y) = fill_batch(data, input, chunk)?;
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
        for s in &self.main.fused.state {
            if matches!(s.role, StateRole::Weight | StateRole::RunningStat) {
                if let Ok(t) = state_tensor(&self.main.plan, &s.name) {
                    g.initializers.insert(s.name.clone(), t);
                }
            }
        }
        g
    }

    /// Current value of every trainable tensor, in spec order.
    pub fn weights(&self) -> Vec<(String, Tensor)> {
        self.main
            .fused
            .state
            .iter()
            .filter(|s| s.role == StateRole::Weight)
            .filter_map(|s| Some((s.name.clone(), state_tensor(&self.main.plan, &s.name).ok()?)))
            .collect()
    }

    /// Everything needed to resume bit-exactly: weights, optimizer slots,
    /// step count, BatchNorm running statistics.
    pub fn state(&self) -> TrainState {
        let tensors = self
            .main
            .fused
            .state
            .iter()
            .filter(|s| s.role != StateRole::Step)
            .filter_map(|s| Some((s.name.clone(), state_tensor(&self.main.plan, &s.name).ok()?)))
            .collect();
        TrainState {
            step: self.steps,
            tensors,
        }
    }

    /// Restores a state taken from a Trainer built from the same model and
    /// spec; errors on name/shape mismatch (and then changes nothing).
    pub fn load_state(&mut self, state: &TrainState) -> Result<(), TrainError> {
        let own = &self.main.fused.state;
        for (name, t) in &state.tensors {
            let Some(s) = own
                .iter()
                .find(|s| s.name == *name && s.role != StateRole::Step)
            else {
                return Err(TrainError::Spec(format!(
                    "the state has a tensor '{name}' this trainer does not keep"
                )));
            };
            if s.initial.shape() != t.shape() || s.initial.dtype() != t.dtype() {
                return Err(TrainError::Spec(format!(
                    "state tensor '{name}' is {} {:?}; expected {} {:?}",
                    t.dtype(),
                    t.shape(),
                    s.initial.dtype(),
                    s.initial.shape()
                )));
            }
        }
        if let Some(s) = own
            .iter()
            .filter(|s| s.role != StateRole::Step)
            .find(|s| !state.tensors.iter().any(|(n, _)| *n == s.name))
        {
            return Err(TrainError::Spec(format!(
                "the state lacks tensor '{}'",
                s.name
            )));
        }
        let step = i64::try_from(state.step)
            .map_err(|_| TrainError::Spec(format!("step count {} too large", state.step)))?;
        for s in own {
            if s.role == StateRole::Step {
                self.main
                    .plan
                    .set_state(&s.name, &Tensor::vec_i64(vec![step]))?;
            }
        }
        for (name, t) in &state.tensors {
            self.main.plan.set_state(name, t)?;
        }
        self.steps = state.step;
        Ok(())
    }

    /// Planned memory of one training step (see [`TrainMemory`]).
    pub fn memory(&self) -> TrainMemory {
        crate::memory::of_plan(&self.forward, &self.main.fused, &self.main.plan)
    }

    /// Name of the data input.
    pub fn data_input(&self) -> &str {
        &self.data_input
    }
}

/// Feeds one batch into `c`, runs it, and reads the loss and accuracy.
fn run_step(
    c: &mut Compiled,
    x: &Tensor,
    labels: &Tensor,
    lr: &Tensor,
    classify: bool,
) -> Result<StepStats, TrainError> {
    c.plan.set_input_tensor(c.data_slot, x)?;
    c.plan.set_input_tensor(c.label_slot, labels)?;
    c.plan.set_input_tensor(c.lr_slot, lr)?;
    c.plan.execute()?;
    let loss = c.plan.output(c.loss_slot).map_or(f32::NAN, |v| v.f32()[0]);
    let mut correct = 0;
    if let (Some(slot), true) = (c.logits_slot, classify) {
        let logits = c.plan.output(slot).map(|v| v.f32()).unwrap_or(&[]);
        let l = labels.as_i64()?;
        let k = logits.len() / l.len().max(1);
        for (row, &y) in logits.chunks_exact(k.max(1)).zip(l) {
            if argmax(row) == y as usize {
                correct += 1;
            }
        }
    }
    Ok(StepStats {
        loss,
        correct,
        samples: c.batch,
    })
}

/// The samples `chunk` of `data` as a batch.
fn fill_batch(
    data: &Dataset,
    input: &InputSpec,
    chunk: &[usize],
) -> Result<(Tensor, Tensor), TrainError> {
    let numel = input.sample_numel();
    let mut shape = vec![chunk.len()];
    shape.extend_from_slice(input.sample_shape());
    let mut x = Tensor::zeros(DType::F32, shape)?;
    let mut ys = Vec::with_capacity(chunk.len());
    let xs = x.as_f32_mut()?;
    for (k, &s) in chunk.iter().enumerate() {
        data.fill(input, s, &mut xs[k * numel..(k + 1) * numel])?;
        ys.push(i64::from(data.labels()[s]));
    }
    Ok((x, Tensor::vec_i64(ys)))
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
