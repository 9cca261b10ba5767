//! `whittle eval`: accuracy of a classifier on a labelled dataset.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use whittle::data::{open_dataset, Dataset};
use whittle::{Graph, Tensor};

use crate::common::ModelArgs;
use crate::format::{shape, table};

/// Arguments of `whittle eval`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Labelled data: IDX images file (its labels file beside it) or a
    /// directory holding one IDX pair, a .npz with arrays x and y, or a
    /// folder with one sub-folder of images per class.
    #[arg(long)]
    data: PathBuf,
    /// Evaluate only the first N samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Samples per run when the model's batch dim is symbolic.
    #[arg(long, default_value_t = 32, value_name = "B")]
    batch: usize,
    #[command(flatten)]
    pre: crate::common::PreprocessArgs,
    /// The output holding class scores [default: the first].
    #[arg(long, value_name = "NAME")]
    output: Option<String>,
    /// Write the predicted class of every sample to this .npy (int64).
    #[arg(long, value_name = "FILE.npy")]
    predictions: Option<PathBuf>,
}

pub use whittle::eval::{EvalOptions, EvalOutcome};

/// Keeps the first `limit` samples of `ds`; `flag` names the option in the
/// error for 0. Shared by every command that evaluates a dataset.
pub fn limit_samples(ds: &mut Dataset, limit: Option<usize>, flag: &str) -> Result<()> {
    if let Some(n) = limit {
        if n == 0 {
            bail!("{flag} must be at least 1");
        }
        ds.truncate(n);
    }
    Ok(())
}

/// Share of the `samples` on which two evaluations predict the same class
/// (the before/after agreement `prune` and `quantize` report).
pub fn agreement(a: &EvalOutcome, b: &EvalOutcome, samples: usize) -> f64 {
    let same = a
        .predictions
        .iter()
        .zip(&b.predictions)
        .filter(|(a, b)| a == b)
        .count();
    same as f64 / samples.max(1) as f64
}

/// [`whittle::eval::evaluate`], advancing `progress` by the samples run.
pub fn evaluate(
    graph: &Graph,
    ds: &Dataset,
    opts: &EvalOptions,
    progress: &ProgressBar,
) -> Result<EvalOutcome> {
    let mut last = 0;
    let r = whittle::eval::evaluate(graph, ds, opts, &mut |done, _| {
        progress.inc((done - last) as u64);
        last = done;
    })?;
    Ok(r)
}

#[derive(Serialize)]
struct EvalJson {
    model: String,
    data: String,
    format: &'static str,
    samples: usize,
    classes: usize,
    class_names: Vec<String>,
    input: String,
    input_sample_shape: Vec<usize>,
    output: String,
    batch: usize,
    top1: f64,
    top1_correct: u64,
    top5: Option<f64>,
    per_class_accuracy: Vec<Option<f64>>,
    /// rows = true class, columns = predicted class
    confusion: Vec<Vec<u64>>,
    seconds: f64,
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let graph = args.model.load()?;
    let mut ds = open_dataset(&args.data)?;
    limit_samples(&mut ds, args.limit, "--limit")?;
    let opts = EvalOptions {
        batch: args.batch,
        pre: args.pre.preprocess(),
        output: args.output.clone(),
        compile: args.model.compile_options(&graph, &HashMap::new())?,
    };
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let bar = crate::common::progress_bar(
        ds.len() as u64,
        "{bar:40} {pos}/{len} samples [{elapsed_precise} < {eta_precise}]",
        std::io::stdout().is_terminal(),
    );
    let r = evaluate(&graph, &ds, &opts, &bar)?;
    bar.finish_and_clear();
    if let Some(path) = &args.predictions {
        write_predictions(path, &r.predictions)?;
    }
    let m = &r.metrics;
    let top5 = (m.outputs() > 5).then(|| m.top5());
    if args.model.json {
        let j = EvalJson {
            model: args.model.model.display().to_string(),
            data: ds.source().display().to_string(),
            format: ds.format().name(),
            samples: ds.len(),
            classes: m.outputs(),
            class_names: class_names(&ds, m.outputs()),
            input: r.input.0.clone(),
            input_sample_shape: r.input.1.clone(),
            output: r.output.clone(),
            batch: r.batch,
            top1: m.top1(),
            top1_correct: m.top1_correct(),
            top5,
            per_class_accuracy: m.per_class_accuracy(),
            confusion: m.confusion(),
            seconds: r.seconds,
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    println!("model    {}", args.model.model.display());
    println!(
        "data     {} ({}, {} samples of {}, {} classes)",
        ds.source().display(),
        ds.format().name(),
        ds.len(),
        shape(ds.sample_shape()),
        ds.num_classes()
    );
    println!("input    {} {} per sample", r.input.0, shape(&r.input.1));
    println!("batch    {} ({})", r.batch, r.batch_note);
    println!(
        "top-1    {}  ({}/{})",
        pct(m.top1()),
        m.top1_correct(),
        m.count()
    );
    if let Some(t5) = top5 {
        println!("top-5    {}", pct(t5));
    }
    println!(
        "time     {:.2} s ({:.0} samples/s)",
        r.seconds,
        ds.len() as f64 / r.seconds.max(1e-9)
    );
    println!();
    let names = class_names(&ds, m.outputs());
    let conf = m.confusion();
    let rows: Vec<Vec<String>> = m
        .per_class_accuracy()
        .iter()
        .enumerate()
        .filter_map(|(i, acc)| {
            acc.map(|a| {
                vec![
                    i.to_string(),
                    names[i].clone(),
                    conf[i].iter().sum::<u64>().to_string(),
                    pct(a),
                ]
            })
        })
        .collect();
    // Numbered classes (IDX, .npz) need no name column.
    let named = names.iter().enumerate().any(|(i, n)| *n != i.to_string());
    if named {
        table(&["class", "name", "samples", "top-1"], &rows);
    } else {
        let rows: Vec<Vec<String>> = rows
            .into_iter()
            .map(|mut r| {
                r.remove(1);
                r
            })
            .collect();
        table(&["class", "samples", "top-1"], &rows);
    }
    Ok(())
}

/// Class names for `outputs` classes: the dataset's, then numbers.
fn class_names(ds: &Dataset, outputs: usize) -> Vec<String> {
    (0..outputs)
        .map(|i| {
            ds.class_names()
                .get(i)
                .cloned()
                .unwrap_or_else(|| i.to_string())
        })
        .collect()
}

fn write_predictions(path: &Path, preds: &[u32]) -> Result<()> {
    let t = Tensor::from_i64(
        vec![preds.len()],
        preds.iter().map(|&p| i64::from(p)).collect(),
    )?;
    whittle::data::write_npy(path, &t)?;
    Ok(())
}
