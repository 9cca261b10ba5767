//! `whittle eval`: accuracy of a classifier on a labelled dataset.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use whittle::data::{open_dataset, Dataset, Metrics, Preprocess};
use whittle::ir::Dim;
use whittle::runtime::{CompileOptions, Plan};
use whittle::{DType, Graph, Tensor};

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

/// Options of one evaluation, independent of the command line.
pub struct EvalOptions {
    /// Samples per run when the batch dim is symbolic.
    pub batch: usize,
    /// Preprocessing.
    pub pre: Preprocess,
    /// Output holding the scores (`None`: the first).
    pub output: Option<String>,
    /// Compile options (threads, simplify, `--input-shape` overrides).
    pub compile: CompileOptions,
}

/// What an evaluation measured.
#[derive(Debug)]
pub struct EvalOutcome {
    /// Accuracy counts and confusion matrix.
    pub metrics: Metrics,
    /// Predicted class per sample.
    pub predictions: Vec<u32>,
    /// Samples per run.
    pub batch: usize,
    /// Why that batch size.
    pub batch_note: &'static str,
    /// Name and per-sample shape of the model input fed.
    pub input: (String, Vec<usize>),
    /// Name of the scores output.
    pub output: String,
    /// Wall time of compile + runs.
    pub seconds: f64,
}

/// Resolves the data input's full shape `[batch, ...sample]`: declared dims
/// win, symbolic/unknown ones are taken from the data, and the batch dim
/// becomes `batch` when it is not fixed.
fn input_shape(decl: Option<&[Dim]>, sample: &[usize], batch: usize) -> (Vec<usize>, &'static str) {
    let Some(dims) = decl.filter(|d| !d.is_empty()) else {
        let mut s = vec![batch];
        s.extend_from_slice(sample);
        return (s, "input shape unknown: taken from the data");
    };
    let (b, note) = match dims[0] {
        Dim::Known(1) => (1, "the model's batch dim is fixed at 1: one sample per run"),
        Dim::Known(k) => (k, "the model's batch dim is fixed"),
        _ => (batch, "symbolic batch dim"),
    };
    let rest = &dims[1..];
    let mut s = vec![b];
    for (i, d) in rest.iter().enumerate() {
        s.push(match d {
            Dim::Known(k) => *k,
            // Symbolic spatial dims follow the data when the ranks agree.
            _ if rest.len() == sample.len() => sample[i],
            _ => 0,
        });
    }
    (s, note)
}

fn label_check(ds: &Dataset, outputs: usize) -> Result<()> {
    if let Some((i, &l)) = ds
        .labels()
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= outputs)
    {
        bail!(
            "{}: label {l} (sample {i}) is out of range for the model's {outputs} outputs",
            ds.source().display()
        );
    }
    Ok(())
}

/// Compiles `graph` for `ds` and runs every sample, reporting progress.
pub fn evaluate(
    graph: &Graph,
    ds: &Dataset,
    opts: &EvalOptions,
    progress: &ProgressBar,
) -> Result<EvalOutcome> {
    let t0 = Instant::now();
    let input = match graph.inputs.as_slice() {
        [one] => one,
        many => bail!(
            "eval feeds one input, but the model has {} ({})",
            many.len(),
            many.iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if input.dtype != DType::F32 {
        bail!(
            "input '{}' is {}; eval feeds float32 data",
            input.name,
            input.dtype
        );
    }
    let (mut full, mut note) =
        input_shape(input.shape.as_deref(), ds.sample_shape(), opts.batch.max(1));
    if let Some(given) = opts.compile.input_shapes.get(&input.name) {
        full = given.clone();
        note = "from --input-shape";
    }
    let Some((&batch, sample)) = full.split_first() else {
        bail!(
            "input '{}' is a scalar; eval needs [batch, ...]",
            input.name
        );
    };
    if batch == 0 {
        bail!("input '{}' has a batch dim of 0", input.name);
    }
    let spec = ds
        .input_spec(sample, &opts.pre)
        .with_context(|| format!("input '{}' {}", input.name, shape(&full)))?;
    let mut copts = opts.compile.clone();
    copts.input_shapes.insert(input.name.clone(), full.clone());
    let mut plan: Plan =
        whittle::runtime::compile(graph, &copts).context("cannot compile the model")?;

    let out_idx = match &opts.output {
        None => 0,
        Some(name) => plan
            .outputs()
            .position(|o| &o.name == name)
            .with_context(|| {
                format!(
                    "the model has no output '{name}' (outputs: {})",
                    plan.outputs()
                        .map(|o| o.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
    };
    let out = plan
        .outputs()
        .nth(out_idx)
        .context("the model has no outputs")?
        .clone();
    if out.fact.dtype != DType::F32 {
        bail!(
            "output '{}' is {}, not float32 scores",
            out.name,
            out.fact.dtype
        );
    }
    let numel: usize = out.fact.shape.iter().product();
    let per_row =
        out.fact.shape.first() == Some(&batch) || (batch == 1 && !out.fact.shape.is_empty());
    if !per_row || !numel.is_multiple_of(batch) || numel == 0 {
        bail!(
            "output '{}' has shape {} which is not [batch={batch}, classes]",
            out.name,
            shape(&out.fact.shape)
        );
    }
    let classes = numel / batch;
    label_check(ds, classes)?;

    let mut x = Tensor::zeros(DType::F32, full.clone())?;
    let mut metrics = Metrics::new(classes);
    let mut predictions = Vec::with_capacity(ds.len());
    let labels = ds.labels();
    let mut start = 0;
    while start < ds.len() {
        let n = ds.fill(&spec, start, x.as_f32_mut()?)?;
        plan.set_input_tensor(0, &x)?;
        plan.execute()?;
        let scores = plan.output(out_idx).context("missing output")?.f32();
        for i in 0..n {
            let p = metrics.add(
                &scores[i * classes..(i + 1) * classes],
                labels[start + i] as usize,
            );
            predictions.push(p as u32);
        }
        start += n;
        progress.inc(n as u64);
    }
    Ok(EvalOutcome {
        metrics,
        predictions,
        batch,
        batch_note: note,
        input: (input.name.clone(), sample.to_vec()),
        output: out.name,
        seconds: t0.elapsed().as_secs_f64(),
    })
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
    if let Some(n) = args.limit {
        if n == 0 {
            bail!("--limit must be at least 1");
        }
        ds.truncate(n);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn batch_dims_resolve() {
        let sym = [
            Dim::Symbolic("batch".into()),
            Dim::Known(1),
            Dim::Unknown,
            Dim::Known(28),
        ];
        assert_eq!(
            input_shape(Some(&sym), &[1, 28, 28], 16).0,
            vec![16, 1, 28, 28]
        );
        let fixed = [Dim::Known(1), Dim::Known(3), Dim::Known(8), Dim::Known(8)];
        assert_eq!(
            input_shape(Some(&fixed), &[3, 8, 8], 16).0,
            vec![1, 3, 8, 8]
        );
        assert_eq!(input_shape(None, &[4], 5).0, vec![5, 4]);
    }

    /// Writes an f32 IDX images file `[n, h, w]` and its u8 labels file.
    fn write_idx_f32(dir: &Path, x: &[f32], n: u32, h: u32, w: u32, labels: &[u8]) -> PathBuf {
        let mut img = vec![0u8, 0, 0x0D, 3];
        for d in [n, h, w] {
            img.extend_from_slice(&d.to_be_bytes());
        }
        for v in x {
            img.extend_from_slice(&v.to_be_bytes());
        }
        let mut lab = vec![0u8, 0, 0x08, 1];
        lab.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        lab.extend_from_slice(labels);
        let path = dir.join("t-images-idx3-ubyte");
        std::fs::write(&path, img).unwrap();
        std::fs::write(dir.join("t-labels-idx1-ubyte"), lab).unwrap();
        path
    }

    fn opts(batch: usize) -> EvalOptions {
        EvalOptions {
            batch,
            pre: Preprocess::default(),
            output: None,
            compile: CompileOptions::default(),
        }
    }

    /// The fixture's onnxruntime outputs give the expected predictions
    /// (argmax of output_0.npy: 9, 5, 4 for mlp_dynamic; 1 for lenet).
    #[test]
    fn fixtures_predict_like_onnxruntime() {
        let fx = repo().join("tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str| {
            let g = whittle::load(fx.join(name).join("model.onnx"))
                .unwrap()
                .graph()
                .clone();
            let x = whittle::data::read_npy(&fx.join(name).join("input_0.npy")).unwrap();
            (g, x.to_f32_vec())
        };
        // Symbolic batch: every batch size, including a padded last batch.
        let (g, x) = load("mlp_dynamic");
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 3, 8, 8, &[9, 5, 0])).unwrap();
        for b in [1, 2, 3, 8] {
            let r = evaluate(&g, &ds, &opts(b), &ProgressBar::hidden()).unwrap();
            assert_eq!(r.batch, b);
            assert_eq!(r.predictions, vec![9, 5, 4], "batch {b}");
            assert_eq!(r.metrics.top1_correct(), 2);
        }
        // Labels past the model's outputs; data of the wrong shape.
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 3, 8, 8, &[9, 5, 10])).unwrap();
        let e = evaluate(&g, &ds, &opts(2), &ProgressBar::hidden()).unwrap_err();
        assert!(
            format!("{e:#}")
                .contains("label 10 (sample 2) is out of range for the model's 10 outputs"),
            "{e:#}"
        );
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 12, 4, 4, &[0; 12])).unwrap();
        let e = format!(
            "{:#}",
            evaluate(&g, &ds, &opts(2), &ProgressBar::hidden()).unwrap_err()
        );
        assert!(e.contains("[1, 4, 4]") && e.contains("[1, 8, 8]"), "{e}");
        // Batch fixed at 1: one sample per run whatever --batch says.
        let (g, x) = load("lenet");
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 1, 28, 28, &[1])).unwrap();
        let r = evaluate(&g, &ds, &opts(16), &ProgressBar::hidden()).unwrap();
        assert_eq!((r.batch, r.predictions.clone()), (1, vec![1]));
        assert_eq!(r.metrics.top1(), 1.0);
    }

    /// whittle's predictions equal onnxruntime's on the first 500
    /// Fashion-MNIST test images (stored by scripts/train_fashion_mnist.py).
    #[test]
    fn fashion_cnn_matches_onnxruntime() {
        let data = Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
        if !data.exists() {
            eprintln!(
                "skipped: {} not found (apt-get install dataset-fashion-mnist)",
                data.display()
            );
            return;
        }
        let models = repo().join("tests/models");
        let graph = whittle::load(models.join("fashion_cnn.onnx"))
            .unwrap()
            .graph()
            .clone();
        let want = whittle::data::read_npy(&models.join("fashion_cnn_ort_top1.npy"))
            .unwrap()
            .to_i64_vec()
            .unwrap();
        let mut ds = open_dataset(data).unwrap();
        ds.truncate(want.len());
        for batch in [1, 64] {
            let opts = EvalOptions {
                batch,
                pre: Preprocess::default(),
                output: None,
                compile: CompileOptions::default(),
            };
            let r = evaluate(&graph, &ds, &opts, &ProgressBar::hidden()).unwrap();
            let got: Vec<i64> = r.predictions.iter().map(|&p| i64::from(p)).collect();
            let diff: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
            assert!(
                diff.is_empty(),
                "batch {batch}: samples {diff:?} differ from onnxruntime"
            );
        }
    }
}
