//! Accuracy of a classifier on a labelled dataset: top-1 and top-5 over
//! every sample, run in batches with the dataset's preprocessing.
//!
//! ```no_run
//! use whittle::data::open_dataset;
//! use whittle::eval::{evaluate, EvalOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = whittle::load("model.onnx")?;
//! let ds = open_dataset("t10k-images-idx3-ubyte")?;
//! let r = evaluate(model.graph(), &ds, &EvalOptions::default(), &mut |_, _| {})?;
//! println!("top-1 {:.2}%", 100.0 * r.metrics.top1());
//! # Ok(())
//! # }
//! ```

use std::path::PathBuf;
use std::time::Instant;

use whittle_data::{DataError, Dataset, Metrics, Preprocess};
use whittle_ir::{DType, Dim, Graph, IrError, Tensor};
use whittle_runtime::{CompileError, CompileOptions, ExecError, Plan};

/// Options of one evaluation.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// Samples per run when the batch dim is symbolic.
    pub batch: usize,
    /// Preprocessing.
    pub pre: Preprocess,
    /// Output holding the scores (`None`: the first).
    pub output: Option<String>,
    /// Compile options (threads, simplify, input shape overrides: an
    /// override of the data input's shape wins over the batch size).
    pub compile: CompileOptions,
}

impl Default for EvalOptions {
    /// Batches of 32, no preprocessing, the first output, default compile
    /// options.
    fn default() -> EvalOptions {
        EvalOptions {
            batch: 32,
            pre: Preprocess::default(),
            output: None,
            compile: CompileOptions::default(),
        }
    }
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

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// The model does not have exactly one input.
    #[error("eval feeds one input, but the model has {} ({})", .names.len(), .names.join(", "))]
    InputCount {
        /// The model's input names.
        names: Vec<String>,
    },
    /// The input is not float32.
    #[error("input '{name}' is {dtype}; eval feeds float32 data")]
    InputDType {
        /// The input.
        name: String,
        /// Its element type.
        dtype: DType,
    },
    /// The input is a scalar: there is no batch dim.
    #[error("input '{name}' is a scalar; eval needs [batch, ...]")]
    ScalarInput {
        /// The input.
        name: String,
    },
    /// The input's batch dim is 0.
    #[error("input '{name}' has a batch dim of 0")]
    ZeroBatch {
        /// The input.
        name: String,
    },
    /// The samples do not fit the input (or the preprocessing is invalid).
    #[error("input '{name}' {}", fmt_shape(.shape))]
    Input {
        /// The input.
        name: String,
        /// Its full shape, batch dim first.
        shape: Vec<usize>,
        /// What does not fit.
        source: DataError,
    },
    /// The model does not compile.
    #[error("cannot compile the model")]
    Compile(#[source] CompileError),
    /// The requested scores output does not exist.
    #[error("the model has no output '{name}' (outputs: {})", .outputs.join(", "))]
    NoSuchOutput {
        /// The name asked for.
        name: String,
        /// The model's outputs.
        outputs: Vec<String>,
    },
    /// The model has no outputs at all.
    #[error("the model has no outputs")]
    NoOutputs,
    /// The scores output is not float32.
    #[error("output '{name}' is {dtype}, not float32 scores")]
    OutputDType {
        /// The output.
        name: String,
        /// Its element type.
        dtype: DType,
    },
    /// The scores output is not `[batch, classes]`.
    #[error("output '{name}' has shape {} which is not [batch={batch}, classes]", fmt_shape(.shape))]
    OutputShape {
        /// The output.
        name: String,
        /// Its shape.
        shape: Vec<usize>,
        /// The batch size fed.
        batch: usize,
    },
    /// A label is not a class of the model.
    #[error("{}: label {label} (sample {sample}) is out of range for the model's {outputs} outputs", .path.display())]
    LabelRange {
        /// The dataset.
        path: PathBuf,
        /// The label.
        label: u32,
        /// Its sample.
        sample: usize,
        /// The model's class count.
        outputs: usize,
    },
    /// A run produced no scores output.
    #[error("missing output")]
    MissingOutput,
    /// Reading the samples failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A run failed.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The input tensor could not be built.
    #[error(transparent)]
    Ir(#[from] IrError),
}

/// `2x3x4`, or `scalar` for no dims; public so the CLI's reports write
/// shapes the same way.
pub fn fmt_shape(dims: &[usize]) -> String {
    if dims.is_empty() {
        return "scalar".into();
    }
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("x")
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

fn label_check(ds: &Dataset, outputs: usize) -> Result<(), EvalError> {
    match ds
        .labels()
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= outputs)
    {
        Some((sample, &label)) => Err(EvalError::LabelRange {
            path: ds.source().to_path_buf(),
            label,
            sample,
            outputs,
        }),
        None => Ok(()),
    }
}

/// Compiles `graph` (one float32 input; scores `[batch, classes]` on the
/// chosen output) for the samples of `ds` and runs all of them, `opts.batch`
/// per run unless the model fixes its batch dim (a padded last batch is
/// fine). Counts top-1/top-5 against the labels and records each sample's
/// predicted class. `progress(done, total)` is called after every run with
/// the samples done so far and the dataset's length.
pub fn evaluate(
    graph: &Graph,
    ds: &Dataset,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalOutcome, EvalError> {
    let t0 = Instant::now();
    let input = match graph.inputs.as_slice() {
        [one] => one,
        many => {
            return Err(EvalError::InputCount {
                names: many.iter().map(|v| v.name.clone()).collect(),
            })
        }
    };
    if input.dtype != DType::F32 {
        return Err(EvalError::InputDType {
            name: input.name.clone(),
            dtype: input.dtype,
        });
    }
    let (mut full, mut note) =
        input_shape(input.shape.as_deref(), ds.sample_shape(), opts.batch.max(1));
    if let Some(given) = opts.compile.input_shapes.get(&input.name) {
        full = given.clone();
        note = "from --input-shape";
    }
    let Some((&batch, sample)) = full.split_first() else {
        return Err(EvalError::ScalarInput {
            name: input.name.clone(),
        });
    };
    if batch == 0 {
        return Err(EvalError::ZeroBatch {
            name: input.name.clone(),
        });
    }
    let spec = ds
        .input_spec(sample, &opts.pre)
        .map_err(|source| EvalError::Input {
            name: input.name.clone(),
            shape: full.clone(),
            source,
        })?;
    let mut copts = opts.compile.clone();
    copts.input_shapes.insert(input.name.clone(), full.clone());
    let mut plan: Plan = whittle_runtime::compile(graph, &copts).map_err(EvalError::Compile)?;

    let out_idx = match &opts.output {
        None => 0,
        Some(name) => plan
            .outputs()
            .position(|o| &o.name == name)
            .ok_or_else(|| EvalError::NoSuchOutput {
                name: name.clone(),
                outputs: plan.outputs().map(|o| o.name.clone()).collect(),
            })?,
    };
    let out = plan
        .outputs()
        .nth(out_idx)
        .ok_or(EvalError::NoOutputs)?
        .clone();
    if out.fact.dtype != DType::F32 {
        return Err(EvalError::OutputDType {
            name: out.name,
            dtype: out.fact.dtype,
        });
    }
    let numel: usize = out.fact.shape.iter().product();
    let per_row =
        out.fact.shape.first() == Some(&batch) || (batch == 1 && !out.fact.shape.is_empty());
    if !per_row || !numel.is_multiple_of(batch) || numel == 0 {
        return Err(EvalError::OutputShape {
            name: out.name,
            shape: out.fact.shape.to_vec(),
            batch,
        });
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
        let scores = plan.output(out_idx).ok_or(EvalError::MissingOutput)?.f32();
        for i in 0..n {
            let p = metrics.add(
                &scores[i * classes..(i + 1) * classes],
                labels[start + i] as usize,
            );
            predictions.push(p as u32);
        }
        start += n;
        progress(start, ds.len());
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use whittle_data::open_dataset;

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

    /// The error and its sources, as `anyhow` prints them with `{:#}`.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut s = e.to_string();
        let mut cur = e.source();
        while let Some(c) = cur {
            s.push_str(&format!(": {c}"));
            cur = c.source();
        }
        s
    }

    fn opts(batch: usize) -> EvalOptions {
        EvalOptions {
            batch,
            ..EvalOptions::default()
        }
    }

    /// The fixture's onnxruntime outputs give the expected predictions
    /// (argmax of output_0.npy: 9, 5, 4 for mlp_dynamic; 1 for lenet).
    #[test]
    fn fixtures_predict_like_onnxruntime() {
        let fx = repo().join("tests/fixtures");
        let dir = tempfile::tempdir().unwrap();
        let load = |name: &str| {
            let g = crate::load(fx.join(name).join("model.onnx"))
                .unwrap()
                .graph()
                .clone();
            let x = whittle_data::read_npy(&fx.join(name).join("input_0.npy")).unwrap();
            (g, x.to_f32_vec())
        };
        // Symbolic batch: every batch size, including a padded last batch.
        let (g, x) = load("mlp_dynamic");
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 3, 8, 8, &[9, 5, 0])).unwrap();
        for b in [1, 2, 3, 8] {
            let mut seen = Vec::new();
            let r = evaluate(&g, &ds, &opts(b), &mut |done, total| {
                seen.push((done, total))
            })
            .unwrap();
            assert_eq!(seen.last(), Some(&(3, 3)), "batch {b}");
            assert_eq!(seen.len(), 3usize.div_ceil(b), "batch {b}");
            assert_eq!(r.batch, b);
            assert_eq!(r.predictions, vec![9, 5, 4], "batch {b}");
            assert_eq!(r.metrics.top1_correct(), 2);
        }
        // Labels past the model's outputs; data of the wrong shape.
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 3, 8, 8, &[9, 5, 10])).unwrap();
        let e = evaluate(&g, &ds, &opts(2), &mut |_, _| {}).unwrap_err();
        assert!(
            format!("{e:#}")
                .contains("label 10 (sample 2) is out of range for the model's 10 outputs"),
            "{e:#}"
        );
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 12, 4, 4, &[0; 12])).unwrap();
        let e = chain(&evaluate(&g, &ds, &opts(2), &mut |_, _| {}).unwrap_err());
        assert!(e.contains("[1, 4, 4]") && e.contains("[1, 8, 8]"), "{e}");
        // Batch fixed at 1: one sample per run whatever --batch says.
        let (g, x) = load("lenet");
        let ds = open_dataset(write_idx_f32(dir.path(), &x, 1, 28, 28, &[1])).unwrap();
        let r = evaluate(&g, &ds, &opts(16), &mut |_, _| {}).unwrap();
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
        let graph = crate::load(models.join("fashion_cnn.onnx"))
            .unwrap()
            .graph()
            .clone();
        let want = whittle_data::read_npy(&models.join("fashion_cnn_ort_top1.npy"))
            .unwrap()
            .to_i64_vec()
            .unwrap();
        let mut ds = open_dataset(data).unwrap();
        ds.truncate(want.len());
        for batch in [1, 64] {
            let r = evaluate(&graph, &ds, &opts(batch), &mut |_, _| {}).unwrap();
            let got: Vec<i64> = r.predictions.iter().map(|&p| i64::from(p)).collect();
            let diff: Vec<usize> = (0..want.len()).filter(|&i| got[i] != want[i]).collect();
            assert!(
                diff.is_empty(),
                "batch {batch}: samples {diff:?} differ from onnxruntime"
            );
        }
    }
}
