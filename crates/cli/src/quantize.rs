//! `whittle quantize`: post-training static quantization to QDQ ONNX.

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use serde::Serialize;
use whittle::data::open_dataset;
use whittle::runtime::CompileOptions;
use whittle::Graph;
use whittle_compress::{
    parse_size, quantize, ActType, Method, Progress, QuantReport, QuantizeOptions,
};

use crate::common::ModelArgs;
use crate::eval::{agreement, evaluate, limit_samples, EvalOptions};
use crate::format::{bytes, table};

/// Arguments of `whittle quantize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Where to write the quantized QDQ model.
    #[arg(short, long, value_name = "OUT.onnx")]
    output: PathBuf,
    /// Calibration data: IDX images file (or a directory with one IDX
    /// pair), a .npz with arrays x and y, or a folder of images per class.
    #[arg(long, value_name = "DATA")]
    calib: PathBuf,
    /// Calibration samples (the first N of DATA).
    #[arg(long, default_value_t = 500, value_name = "N")]
    calib_samples: usize,
    /// Activation range method: minmax, percentile[:P] (default P 99.99),
    /// entropy (KL divergence, TensorRT style) or mse [default: mse, the best
    /// measured: docs/QUANTIZATION.md].
    #[arg(long, value_name = "METHOD")]
    method: Option<String>,
    /// Activation element type.
    #[arg(long, default_value = "i8", value_parser = ["i8", "u8"])]
    activation_type: String,
    /// Cross-layer equalization of Conv -> Relu -> Conv pairs.
    #[arg(long, overrides_with = "no_equalize")]
    equalize: bool,
    /// Turn cross-layer equalization off (the default).
    #[arg(long)]
    no_equalize: bool,
    /// With --equalize, also equalize through ReLU6 by replacing it with
    /// Relu (changes the float model; Nagel et al. 2019).
    #[arg(long)]
    equalize_relu6: bool,
    /// Bias correction of quantized layers (the default).
    #[arg(long, overrides_with = "no_bias_correction")]
    bias_correction: bool,
    /// Turn bias correction off.
    #[arg(long)]
    no_bias_correction: bool,
    /// int4 weights (blocks along K) for every Gemm, MatMul and 1x1 Conv.
    #[arg(long)]
    int4: bool,
    /// int4 block (group) size.
    #[arg(long, default_value_t = 32, value_name = "N")]
    int4_group: usize,
    /// Fit the model's weights in this many bytes (suffixes k, M, G, KiB,
    /// MiB): picks int4, int8 or float per layer by sensitivity.
    #[arg(long, value_name = "BYTES")]
    size_budget: Option<String>,
    /// Measure per-layer sensitivity (int8 and int4) even without a budget.
    #[arg(long)]
    sensitivity: bool,
    /// Top-1 accuracy of the float and the quantized model on this
    /// labelled dataset.
    #[arg(long, value_name = "DATA")]
    eval: Option<PathBuf>,
    /// Evaluate only the first N samples of --eval.
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// How whittle runs the quantized model for --eval: int8 (compile the
    /// QDQ model: integer kernels where available), fake (the float
    /// equivalent of the QDQ model), or auto (int8 if it compiles).
    #[arg(long, default_value = "auto", value_parser = ["auto", "int8", "fake"])]
    eval_path: String,
    /// Also write the fake-quantized float model here.
    #[arg(long, value_name = "FILE.onnx")]
    fake_quant_output: Option<PathBuf>,
    /// Samples per run when the batch dim is symbolic.
    #[arg(long, default_value_t = 32, value_name = "B")]
    batch: usize,
    #[command(flatten)]
    pre: crate::common::PreprocessArgs,
}

#[derive(Serialize)]
struct Accuracy {
    data: String,
    samples: usize,
    float_top1: f64,
    quantized_top1: f64,
    /// Which graph whittle ran: "int8" (the QDQ model compiled) or "fake"
    /// (its float equivalent).
    quantized_path: String,
    /// Fraction of samples where float and quantized predict the same class.
    agreement: f64,
}

#[derive(Serialize)]
struct QuantizeJson<'a> {
    model: String,
    output: String,
    calib: String,
    #[serde(flatten)]
    report: &'a QuantReport,
    accuracy: Option<Accuracy>,
}

fn options(args: &Args, graph: &Graph) -> Result<QuantizeOptions> {
    let compile = args.model.compile_options(graph, &Default::default())?;
    let mut o = QuantizeOptions {
        calib_samples: args.calib_samples,
        activation_type: if args.activation_type == "u8" {
            ActType::U8
        } else {
            ActType::I8
        },
        batch: args.batch,
        preprocess: args.pre.preprocess(),
        input_shapes: compile.input_shapes,
        threads: compile.threads,
        int4: args.int4,
        int4_group: args.int4_group,
        sensitivity: args.sensitivity,
        equalize_relu6: args.equalize_relu6,
        ..QuantizeOptions::default()
    };
    if let Some(m) = &args.method {
        o.method = Method::parse(m).map_err(anyhow::Error::msg)?;
    }
    if args.equalize {
        o.equalize = true;
    }
    if args.no_equalize {
        o.equalize = false;
    }
    if args.bias_correction {
        o.bias_correction = true;
    }
    if args.no_bias_correction {
        o.bias_correction = false;
    }
    if let Some(b) = &args.size_budget {
        o.size_budget = Some(parse_size(b).map_err(anyhow::Error::msg)?);
    }
    Ok(o)
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let graph = args.model.load()?;
    let opts = options(&args, &graph)?;
    let calib = open_dataset(&args.calib).context("cannot open the calibration data")?;
    if args.calib_samples > calib.len() {
        eprintln!(
            "note: --calib-samples {} but {} holds {} samples; using all of them",
            args.calib_samples,
            calib.source().display(),
            calib.len()
        );
    }
    let mut stages = crate::common::StageProgress::default();
    let mut on_progress = |p: Progress| stages.update(p);
    let q = quantize(&graph, &calib, &opts, &mut on_progress)
        .with_context(|| format!("cannot quantize {}", args.model.model.display()))?;
    stages.finish();
    let accuracy = match &args.eval {
        Some(path) => Some(eval_both(&args, &graph, &q, path)?),
        None => None,
    };
    whittle::onnx::save_model(&q.qdq, &args.output)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if let Some(p) = &args.fake_quant_output {
        whittle::onnx::save_model(&q.fake_quant, p)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if args.model.json {
        let j = QuantizeJson {
            model: args.model.model.display().to_string(),
            output: args.output.display().to_string(),
            calib: calib.source().display().to_string(),
            report: &q.report,
            accuracy,
        };
        println!("{}", serde_json::to_string_pretty(&j)?);
        return Ok(());
    }
    print_report(&args, &q.report, accuracy.as_ref());
    Ok(())
}

/// Top-1 of the float model and of the quantized one on `path`.
fn eval_both(
    args: &Args,
    graph: &Graph,
    q: &whittle_compress::Quantized,
    path: &std::path::Path,
) -> Result<Accuracy> {
    let mut ds = open_dataset(path).context("cannot open the --eval data")?;
    limit_samples(&mut ds, args.eval_limit, "--eval-limit")?;
    let opts = EvalOptions {
        batch: args.batch,
        pre: args.pre.preprocess(),
        output: None,
        compile: CompileOptions {
            threads: args.model.threads,
            ..args.model.compile_options(graph, &Default::default())?
        },
    };
    let hidden = ProgressBar::hidden();
    let pb = |what: &str| {
        let b = crate::common::stage_bar(what);
        b.set_length(ds.len() as u64);
        b
    };
    let b = pb("eval float");
    let f = evaluate(graph, &ds, &opts, &b)?;
    b.finish_and_clear();
    let b = pb("eval quant");
    let (r, path_used) = match args.eval_path.as_str() {
        "fake" => (evaluate(&q.fake_quant, &ds, &opts, &b)?, "fake"),
        "int8" => (
            evaluate(&q.qdq, &ds, &opts, &b)
                .context("whittle cannot compile the QDQ model (try --eval-path fake)")?,
            "int8",
        ),
        // A build without the QDQ ops cannot compile the QDQ model.
        _ => match evaluate(&q.qdq, &ds, &opts, &b) {
            Ok(r) => (r, "int8"),
            Err(_) => (evaluate(&q.fake_quant, &ds, &opts, &hidden)?, "fake"),
        },
    };
    b.finish_and_clear();
    Ok(Accuracy {
        data: ds.source().display().to_string(),
        samples: ds.len(),
        float_top1: f.metrics.top1(),
        quantized_top1: r.metrics.top1(),
        quantized_path: path_used.to_string(),
        agreement: agreement(&f, &r, ds.len()),
    })
}

fn db(v: Option<f64>) -> String {
    v.map_or("-".into(), |d| format!("{d:.1}"))
}

fn print_report(args: &Args, r: &QuantReport, acc: Option<&Accuracy>) {
    println!(
        "model       {} -> {}",
        args.model.model.display(),
        args.output.display()
    );
    println!(
        "calibration {} samples of {}, method {}, activations {}",
        r.calibration_samples,
        args.calib.display(),
        r.method,
        r.activation_type
    );
    let eq = match &r.equalization {
        Some(e) => format!(
            "on ({} pairs, {} sweeps, {} ReLU6 replaced)",
            e.pairs, e.sweeps, e.clips_replaced
        ),
        None => "off".into(),
    };
    let bc = if r.bias_corrected.is_empty() {
        "off".to_string()
    } else {
        format!("on ({} layers)", r.bias_corrected.len())
    };
    println!("equalize    {eq}; bias correction {bc}; opset {}", r.opset);
    println!();
    let sens = r.nodes.iter().any(|n| n.sensitivity_int8_db.is_some());
    let mut header = vec![
        "node",
        "op",
        "runs as",
        "weights",
        "SQNR dB",
        "bytes before",
        "bytes after",
    ];
    if sens {
        header.extend(["sens int8 dB", "sens int4 dB"]);
    }
    let rows: Vec<Vec<String>> = r
        .nodes
        .iter()
        .map(|n| {
            let mut row = vec![
                n.name.clone(),
                n.op.clone(),
                n.int_op.clone(),
                n.weight_bits.map_or("-".into(), |b| b.name().to_string()),
                db(n.sqnr_db),
                n.weight_bytes_before.map_or("-".into(), |b| b.to_string()),
                n.weight_bytes_after.map_or("-".into(), |b| b.to_string()),
            ];
            if sens {
                row.push(db(n.sensitivity_int8_db));
                row.push(db(n.sensitivity_int4_db));
            }
            row
        })
        .collect();
    table(&header, &rows);
    if !r.float_nodes.is_empty() {
        println!();
        println!("stays float:");
        for f in &r.float_nodes {
            println!("  {} ({}): {}", f.name, f.op, f.reason);
        }
    }
    println!();
    println!(
        "weights     {} -> {} ({:.2}x smaller){}",
        bytes(r.weight_bytes_before),
        bytes(r.weight_bytes_after),
        r.weight_bytes_before as f64 / r.weight_bytes_after.max(1) as f64,
        r.size_budget
            .map_or(String::new(), |b| format!(", budget {}", bytes(b)))
    );
    for (o, s) in &r.output_sqnr_db {
        println!("output      {o}: SQNR {} dB vs float", db(*s));
    }
    if let Some(a) = acc {
        println!(
            "accuracy    float {:.2}%, quantized {:.2}% ({} path), agreement {:.2}% on {} samples",
            100.0 * a.float_top1,
            100.0 * a.quantized_top1,
            a.quantized_path,
            100.0 * a.agreement,
            a.samples
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
}
