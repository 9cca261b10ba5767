//! `whittle train`: train or fine-tune a classifier on a labelled dataset,
//! with learning-rate schedules, checkpoints and per-epoch evaluation.

mod init;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use whittle::data::{open_dataset, Dataset, Preprocess};
use whittle::ir::Dim;
use whittle::{DType, Graph, Tensor};
use whittle_train::{
    epoch_order, fingerprint, plan_training_memory, Adam, Checkpoint, LayerRule, Loss, LrSchedule,
    Optimizer, ScheduleKind, Sgd, TrainMemory, TrainSpec, Trainer, TrainerOptions, UpdateScheme,
};

use crate::common::{names, ModelArgs};
use crate::eval::{evaluate, limit_samples, EvalOptions};
use crate::format::{bytes, shape, table};

/// Arguments of `whittle train`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Where to write the trained model (inference form: BatchNorm with the
    /// updated running statistics).
    #[arg(short, long, value_name = "OUT.onnx")]
    output: Option<PathBuf>,
    /// Training data: IDX images file or directory, .npz with x and y, or a
    /// folder of images per class (as `whittle eval` reads).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Train on the first N samples only.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Held-out data evaluated (top-1) after every epoch.
    #[arg(long, value_name = "DATA")]
    eval: Option<PathBuf>,
    /// Evaluate on the first N held-out samples only.
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// Passes over the training data.
    #[arg(long, default_value_t = 1)]
    epochs: u64,
    /// Samples per step; a last partial batch of each epoch is dropped.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// sgd (with momentum) or adam.
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adam"])]
    optimizer: String,
    /// Peak learning rate [default: 0.01 for sgd, 0.001 for adam].
    #[arg(long)]
    lr: Option<f32>,
    /// SGD momentum.
    #[arg(long, default_value_t = 0.9)]
    momentum: f32,
    /// L2 weight decay added to the gradient.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// constant, step:EVERY:GAMMA (multiply by GAMMA every EVERY epochs) or
    /// cosine (to 0 at the last step).
    #[arg(long, default_value = "constant", value_name = "SCHEDULE")]
    lr_schedule: ScheduleKind,
    /// Epochs (may be fractional) of linear warmup from 0 to --lr.
    #[arg(long, default_value_t = 0.0, value_name = "EPOCHS")]
    warmup: f32,
    /// Seed of the per-epoch shuffling (and of --reinit).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Re-initialise all weights (PyTorch's default init) to train from
    /// scratch.
    #[arg(long)]
    reinit: bool,
    /// The output holding the class scores (logits) [default: the first].
    #[arg(long, value_name = "NAME")]
    logits: Option<String>,
    /// Train only these layers (node name, weight name or module path);
    /// repeatable or comma-separated.
    #[arg(long, value_delimiter = ',', num_args = 1.., value_name = "NAME")]
    trainable: Vec<String>,
    /// Train only the last K layers with weights.
    #[arg(long, value_name = "K")]
    last_k: Option<usize>,
    /// Train only biases (TinyTL).
    #[arg(long)]
    bias_only: bool,
    /// Keep BatchNorm running statistics fixed (BatchNorm as an affine map).
    #[arg(long)]
    frozen_bn: bool,
    /// Update scheme file, TOML or JSON (layers, channel ratios,
    /// regularizers; see docs/TRAINING.md).
    #[arg(long, value_name = "FILE")]
    scheme: Option<PathBuf>,
    /// Weights that are exactly zero in MODEL stay zero (recovery
    /// fine-tuning after pruning).
    #[arg(long)]
    keep_sparsity: bool,
    /// Print the planned training memory and exit.
    #[arg(long)]
    plan_only: bool,
    /// Directory for checkpoints, written atomically after every epoch.
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// Also checkpoint every N steps.
    #[arg(long, value_name = "N")]
    checkpoint_every: Option<u64>,
    /// Continue from the checkpoint in DIR (same model and settings).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    #[command(flatten)]
    pre: crate::common::PreprocessArgs,
    /// Testing aid: stop (as if killed) after this many global steps,
    /// having written a checkpoint if --checkpoint is given.
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
}

/// One epoch's figures.
#[derive(Serialize, Clone, Debug)]
struct EpochJson {
    epoch: u64,
    loss: f32,
    train_accuracy: f64,
    eval_top1: Option<f64>,
    lr: f32,
    /// Training time of the epoch (without evaluation).
    seconds: f64,
    eval_seconds: f64,
}

#[derive(Serialize)]
struct MemoryJson {
    kept_activations: usize,
    weights: usize,
    optimizer_state: usize,
    gradients: usize,
    workspace: usize,
    peak: usize,
}

impl From<TrainMemory> for MemoryJson {
    fn from(m: TrainMemory) -> MemoryJson {
        MemoryJson {
            kept_activations: m.kept_activations,
            weights: m.weights,
            optimizer_state: m.optimizer_state,
            gradients: m.gradients,
            workspace: m.workspace,
            peak: m.peak,
        }
    }
}

#[derive(Serialize)]
struct TrainJson {
    model: String,
    output: Option<String>,
    data: Option<String>,
    samples: usize,
    batch_size: usize,
    steps_per_epoch: u64,
    steps: u64,
    trainable: Vec<String>,
    masked_weights: usize,
    memory: MemoryJson,
    epochs: Vec<EpochJson>,
    resumed_from_step: Option<u64>,
    stopped_early: bool,
    seconds: f64,
}

/// Everything resolved from the flags before training.
struct Setup {
    graph: Graph,
    spec: TrainSpec,
    input: String,
    /// Per-sample shape of the data input.
    sample: Vec<usize>,
    classes: Option<usize>,
    masked: usize,
}

/// The model's one data input, its declared per-sample dims resolved with
/// the data's where they are symbolic.
fn data_input(graph: &Graph, data_sample: Option<&[usize]>) -> Result<(String, Vec<usize>)> {
    let inputs: Vec<_> = graph
        .inputs
        .iter()
        .filter(|i| !graph.initializers.contains_key(&i.name))
        .collect();
    let [input] = inputs.as_slice() else {
        bail!(
            "train feeds one input, but the model has {} ({})",
            inputs.len(),
            names(inputs.iter().copied())
        );
    };
    if input.dtype != DType::F32 {
        bail!(
            "input '{}' is {}; train feeds float32 data",
            input.name,
            input.dtype
        );
    }
    let decl = input.shape.as_deref().unwrap_or(&[]);
    let rest = decl.get(1..).unwrap_or(&[]);
    let sample: Vec<usize> = match data_sample {
        Some(s) if decl.is_empty() => s.to_vec(),
        _ => rest
            .iter()
            .enumerate()
            .map(|(i, d)| match d {
                Dim::Known(k) => Ok(*k),
                _ => data_sample
                    .filter(|s| s.len() == rest.len())
                    .map(|s| s[i])
                    .with_context(|| {
                        format!(
                            "input '{}' has symbolic dims: give --data (or --input-shape)",
                            input.name
                        )
                    }),
            })
            .collect::<Result<_>>()?,
    };
    Ok((input.name.clone(), sample))
}

fn open(path: &Path, limit: Option<usize>, what: &str) -> Result<Dataset> {
    let mut ds = open_dataset(path).with_context(|| format!("cannot read {what}"))?;
    limit_samples(&mut ds, limit, &format!("--{what}-limit"))?;
    if ds.is_empty() {
        bail!("{}: no samples", path.display());
    }
    Ok(ds)
}

/// Labels must index the logits: names the first offending sample.
fn check_labels(ds: &Dataset, classes: usize) -> Result<()> {
    if let Some((i, &l)) = ds
        .labels()
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        bail!(
            "{}: sample {i} has label {l}, out of range for the model's {classes} classes \
             (labels must be 0..={})",
            ds.source().display(),
            classes.saturating_sub(1)
        );
    }
    Ok(())
}

fn setup(args: &Args, data: Option<&Dataset>) -> Result<Setup> {
    let mut graph = args.model.load()?;
    if args.reinit {
        if args.keep_sparsity {
            bail!("--reinit and --keep-sparsity contradict each other: fresh weights have no zeros to keep");
        }
        init::reinit(&mut graph, args.seed)?;
    }
    let (mut input, mut sample) = data_input(&graph, data.map(|d| d.sample_shape()))?;
    for arg in &args.model.input_shapes {
        let (name, dims) = crate::common::split_named(arg, &graph, "--input-shape")?;
        let dims = crate::common::parse_dims(dims)?;
        if name == input && !dims.is_empty() {
            sample = dims[1..].to_vec();
        }
        input = name;
    }
    let logits = match &args.logits {
        Some(l) => l.clone(),
        None => graph
            .outputs
            .first()
            .map(|o| o.name.clone())
            .context("the model has no outputs")?,
    };
    let mut labels = "labels".to_string();
    while graph.inputs.iter().any(|i| i.name == labels) || graph.initializers.contains_key(&labels)
    {
        labels.push('_');
    }
    let loss = Loss::SoftmaxCrossEntropy { logits, labels };
    let mut spec = scheme(args)?
        .train_spec(&graph, loss)
        .context("update scheme")?;
    let mut masked = 0;
    if args.keep_sparsity {
        let (masks, zeros) = init::sparsity_masks(&graph, &spec.trainable)?;
        spec.masks = masks;
        masked = zeros;
    }
    let mut full = vec![args.batch_size];
    full.extend_from_slice(&sample);
    spec.input_shapes.insert(input.clone(), full);
    // Declared logits shape, when static: the class count.
    let classes = graph
        .outputs
        .iter()
        .find(
            |o| matches!(&spec.loss, Loss::SoftmaxCrossEntropy { logits, .. } if *logits == o.name),
        )
        .and_then(|o| match o.shape.as_deref() {
            Some([_, Dim::Known(c)]) => Some(*c),
            _ => None,
        });
    Ok(Setup {
        graph,
        spec,
        input,
        sample,
        classes,
        masked,
    })
}

/// The update scheme: a --scheme file, or built from the flags.
fn scheme(args: &Args) -> Result<UpdateScheme> {
    let flags = [
        (!args.trainable.is_empty(), "--trainable"),
        (args.last_k.is_some(), "--last-k"),
        (args.bias_only, "--bias-only"),
    ];
    let given: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    if given.len() > 1 || (args.scheme.is_some() && !given.is_empty()) {
        let mut all = given.clone();
        if args.scheme.is_some() {
            all.insert(0, "--scheme");
        }
        bail!("{} exclude each other: choose one", all.join(" and "));
    }
    let scheme = if let Some(path) = &args.scheme {
        UpdateScheme::from_file(path)?
    } else if let Some(k) = args.last_k {
        UpdateScheme::last_k(k)
    } else if args.bias_only {
        UpdateScheme::bias_only()
    } else if !args.trainable.is_empty() {
        UpdateScheme::sparse(
            args.trainable
                .iter()
                .map(|n| LayerRule::ratio(n, 1.0))
                .collect(),
        )
    } else {
        UpdateScheme::full()
    };
    Ok(if args.frozen_bn {
        scheme.with_frozen_bn(true)
    } else {
        scheme
    })
}

fn optimizer(args: &Args) -> Result<(Box<dyn Optimizer>, f32)> {
    let wd = args.weight_decay;
    if !(wd.is_finite() && wd >= 0.0) {
        bail!("--weight-decay must be a non-negative number, got {wd}");
    }
    Ok(if args.optimizer == "adam" {
        let lr = args.lr.unwrap_or(1e-3);
        let mut o = Adam::new(lr);
        o.weight_decay = wd;
        (Box::new(o), lr)
    } else {
        let lr = args.lr.unwrap_or(0.01);
        if !(args.momentum.is_finite() && (0.0..1.0).contains(&args.momentum)) {
            bail!("--momentum must be in [0, 1), got {}", args.momentum);
        }
        let mut o = Sgd::new(lr, args.momentum);
        o.weight_decay = wd;
        (Box::new(o), lr)
    })
}

fn memory_table(m: &TrainMemory) {
    let rows = [
        ("kept activations", m.kept_activations),
        ("weights in RAM", m.weights),
        ("optimizer state", m.optimizer_state),
        ("gradients", m.gradients),
        ("workspace", m.workspace),
        ("peak", m.peak),
    ]
    .iter()
    .map(|(k, v)| vec![k.to_string(), bytes(*v), v.to_string()])
    .collect::<Vec<_>>();
    table(&["training memory", "size", "bytes"], &rows);
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let t0 = Instant::now();
    if args.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    if args.model.threads == 0 {
        bail!("--threads must be at least 1");
    }
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if args.checkpoint_every == Some(0) {
        bail!("--checkpoint-every must be at least 1");
    }
    if args.checkpoint_every.is_some() && args.checkpoint.is_none() {
        bail!("--checkpoint-every needs --checkpoint DIR");
    }
    let train_ds = match &args.data {
        Some(p) => Some(open(p, args.limit, "data").map_err(|e| {
            // "--data-limit" reads oddly: the flag is --limit.
            anyhow::anyhow!(format!("{e:#}").replace("--data-limit", "--limit"))
        })?),
        None if args.plan_only => None,
        None => bail!("no training data: give --data DATA (IDX, .npz or an image folder)"),
    };
    if !args.plan_only && args.output.is_none() {
        bail!("no output: give -o OUT.onnx");
    }
    let (opt, base_lr) = optimizer(&args)?;
    let s = setup(&args, train_ds.as_ref())?;
    if args.plan_only {
        let m = plan_training_memory(&s.graph, &s.spec, opt.as_ref(), args.batch_size)?;
        if args.model.json {
            println!("{}", serde_json::to_string_pretty(&MemoryJson::from(m))?);
        } else {
            println!(
                "model    {} ({} trainable tensors, batch {})",
                args.model.model.display(),
                s.spec.trainable.len(),
                args.batch_size
            );
            memory_table(&m);
        }
        return Ok(());
    }
    let ds = train_ds.expect("checked above");
    let pre = args.pre.preprocess();
    let spec_in = ds
        .input_spec(&s.sample, &pre)
        .with_context(|| format!("input '{}' {}", s.input, shape(&s.sample)))?;
    let eval_ds = match &args.eval {
        Some(p) => {
            let e = open(p, args.eval_limit, "eval")?;
            e.input_spec(&s.sample, &pre)
                .with_context(|| format!("--eval data for input '{}'", s.input))?;
            Some(e)
        }
        None => None,
    };
    let opts = TrainerOptions {
        threads: args.model.threads,
        batch_size: args.batch_size,
    };
    let mut trainer = Trainer::new(&s.graph, &s.spec, opt, &opts).with_context(|| {
        format!(
            "cannot build the training graph of {}",
            args.model.model.display()
        )
    })?;
    let classes = s.classes.or_else(|| logits_classes(&trainer, &s.spec));
    if let Some(c) = classes {
        check_labels(&ds, c)?;
        if let Some(e) = &eval_ds {
            check_labels(e, c)?;
        }
    }
    let n = ds.len();
    let spe = (n / args.batch_size) as u64;
    if spe == 0 {
        bail!(
            "the training data has {n} samples, fewer than one batch of {}",
            args.batch_size
        );
    }
    let schedule = LrSchedule::new(base_lr, args.lr_schedule, args.warmup, spe, args.epochs)?;
    let config = format!(
        "{}|momentum={}|wd={}|batch={}|seed={}|samples={n}|sample={:?}",
        args.optimizer, args.momentum, args.weight_decay, args.batch_size, args.seed, s.sample
    );
    let print = fingerprint(&s.graph, &s.spec, &config);
    let (mut epoch0, mut batch0, mut resumed) = (0, 0, None);
    if let Some(dir) = &args.resume {
        let ck = Checkpoint::load(dir, print)?;
        trainer
            .load_state(&ck.state)
            .with_context(|| format!("cannot restore {}", dir.display()))?;
        (epoch0, batch0, resumed) = (ck.epoch, ck.batch, Some(ck.state.step));
        if !args.model.json {
            eprintln!(
                "resumed at epoch {}, step {} ({} steps into the epoch)",
                ck.epoch + 1,
                ck.state.step,
                ck.batch
            );
        }
    }
    let save = |trainer: &Trainer, epoch: u64, batch: u64, lr: f32| -> Result<()> {
        if let Some(dir) = &args.checkpoint {
            Checkpoint {
                fingerprint: print,
                seed: args.seed,
                epoch,
                batch,
                lr,
                state: trainer.state(),
            }
            .save(dir)?;
        }
        Ok(())
    };
    let json = args.model.json;
    if !json {
        println!(
            "training {} tensors of {} on {n} samples ({} steps/epoch of {}), {} from {}",
            s.spec.trainable.len(),
            args.model.model.display(),
            spe,
            args.batch_size,
            args.optimizer,
            if resumed.is_some() {
                "a checkpoint"
            } else {
                "the model"
            }
        );
        if args.keep_sparsity {
            println!("keeping {} zero weights at zero", s.masked);
        }
    }

    let numel: usize = spec_in.sample_numel();
    let mut x_shape = vec![args.batch_size];
    x_shape.extend_from_slice(&s.sample);
    let mut x = Tensor::zeros(DType::F32, x_shape)?;
    let mut epochs = Vec::new();
    let mut stopped = false;
    let mut lr = schedule.lr(trainer.steps());
    'epochs: for epoch in epoch0..args.epochs {
        let te = Instant::now();
        let order = epoch_order(args.seed, epoch, n);
        let start = if epoch == epoch0 { batch0 } else { 0 };
        let bar = crate::common::progress_bar(
            spe,
            "{prefix} {bar:30} {pos}/{len} steps {msg} [{elapsed_precise} < {eta_precise}]",
            std::io::stderr().is_terminal() && !json,
        );
        bar.set_prefix(format!("epoch {}/{}", epoch + 1, args.epochs));
        bar.set_position(start);
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for b in start..spe {
            let idx = &order[b as usize * args.batch_size..(b as usize + 1) * args.batch_size];
            let mut labels = Vec::with_capacity(idx.len());
            {
                let xs = x.as_f32_mut()?;
                for (k, &i) in idx.iter().enumerate() {
                    ds.fill(&spec_in, i, &mut xs[k * numel..(k + 1) * numel])?;
                    labels.push(i64::from(ds.labels()[i]));
                }
            }
            let y = Tensor::from_i64(vec![labels.len()], labels)?;
            lr = schedule.lr(trainer.steps());
            trainer.set_learning_rate(lr);
            let st = trainer.step(&x, &y)?;
            if !st.loss.is_finite() {
                bail!(
                    "the loss became {} at step {} (epoch {}): lower --lr",
                    st.loss,
                    trainer.steps(),
                    epoch + 1
                );
            }
            loss_sum += f64::from(st.loss) * st.samples as f64;
            correct += st.correct;
            seen += st.samples;
            bar.inc(1);
            bar.set_message(format!(
                "loss {:.4} acc {}",
                loss_sum / seen as f64,
                pct(correct as f64 / seen as f64)
            ));
            let step = trainer.steps();
            if args.checkpoint_every.is_some_and(|k| step % k == 0) {
                save(&trainer, epoch, b + 1, lr)?;
            }
            if args.stop_after_steps == Some(step) {
                save(&trainer, epoch, b + 1, lr)?;
                bar.finish_and_clear();
                stopped = true;
                break 'epochs;
            }
        }
        bar.finish_and_clear();
        let train_seconds = te.elapsed().as_secs_f64();
        let eval_top1 = match &eval_ds {
            Some(e) => Some(eval_top1(&trainer, e, &pre, &args)?),
            None => None,
        };
        save(&trainer, epoch + 1, 0, lr)?;
        let rec = EpochJson {
            epoch: epoch + 1,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            eval_top1,
            lr,
            seconds: train_seconds,
            eval_seconds: te.elapsed().as_secs_f64() - train_seconds,
        };
        if !json {
            println!(
                "epoch {}/{}  loss {:.4}  train acc {}{}  lr {:.3e}  {:.1} s ({:.0} ms/step)",
                rec.epoch,
                args.epochs,
                rec.loss,
                pct(rec.train_accuracy),
                rec.eval_top1
                    .map(|a| format!("  eval top-1 {}", pct(a)))
                    .unwrap_or_default(),
                rec.lr,
                rec.seconds,
                1e3 * rec.seconds / (spe - start).max(1) as f64
            );
        }
        epochs.push(rec);
    }
    let out = args.output.as_ref().expect("checked above");
    if stopped {
        if !json {
            println!(
                "stopped after {} steps (--stop-after-steps); {} not written",
                trainer.steps(),
                out.display()
            );
        }
    } else {
        whittle::Model::from_graph(trainer.trained_graph())
            .save(out)
            .with_context(|| format!("cannot write {}", out.display()))?;
        if !json {
            println!("wrote {}", out.display());
        }
    }
    let memory = trainer.memory();
    if json {
        let j = TrainJson {
            model: args.model.model.display().to_string(),
            output: (!stopped).then(|| out.display().to_string()),
            data: args.data.as_ref().map(|p| p.display().to_string()),
            samples: n,
            batch_size: args.batch_size,
            steps_per_epoch: spe,
            steps: trainer.steps(),
            trainable: s.spec.trainable.clone(),
            masked_weights: s.masked,
            memory: memory.into(),
            epochs,
            resumed_from_step: resumed,
            stopped_early: stopped,
            seconds: t0.elapsed().as_secs_f64(),
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
    }
    Ok(())
}

/// Class count from the compiled training plan's logits output.
fn logits_classes(trainer: &Trainer, spec: &TrainSpec) -> Option<usize> {
    let Loss::SoftmaxCrossEntropy { logits, .. } = &spec.loss else {
        return None;
    };
    trainer
        .plan()
        .outputs()
        .find(|o| &o.name == logits)
        .and_then(|o| o.fact.shape.get(1).copied())
}

fn eval_top1(trainer: &Trainer, ds: &Dataset, pre: &Preprocess, args: &Args) -> Result<f64> {
    let graph = trainer.trained_graph();
    let mut compile = args.model.compile_options(&graph, &Default::default())?;
    compile.input_shapes.clear();
    let opts = EvalOptions {
        batch: 256.min(ds.len()).max(1),
        pre: pre.clone(),
        output: args.logits.clone(),
        compile,
    };
    let r = evaluate(&graph, ds, &opts, &ProgressBar::hidden()).context("--eval")?;
    Ok(r.metrics.top1())
}
