//! `whittle prune`: unstructured, N:M and structured (channel) pruning, with
//! a per-layer report of sparsity, MACs, bytes and measured latency.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use whittle::data::open_dataset;
use whittle::ir::Dim;
use whittle::onnx::{ExportOptions, SparseStorage};
use whittle::runtime::{CompileOptions, Plan};
use whittle::Graph;
use whittle_compress::prune::{PruneReport, SkippedLayer};
use whittle_compress::structured::{prune_channels, ChannelImportance, ChannelPruneOptions};
use whittle_compress::{
    prune_unstructured, Criterion, NmPattern, Progress, Scope, UnstructuredOptions,
};

use crate::common::{fill_inputs, ModelArgs};
use crate::eval::{agreement, evaluate, EvalOptions};
use crate::format::{bytes, count, shape, table};

/// Arguments of `whittle prune`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Where to write the pruned model.
    #[arg(short, long, value_name = "OUT.onnx")]
    output: PathBuf,
    /// Unstructured: fraction of weights set to zero, in [0, 1).
    #[arg(long, value_name = "S", allow_negative_numbers = true)]
    sparsity: Option<f32>,
    /// How weights are scored: magnitude |w|, obd (½·h·w², h the empirical
    /// Fisher from --calib) or wanda (|w|·‖X‖ from --calib).
    #[arg(long, default_value = "magnitude", value_parser = ["magnitude", "obd", "wanda"])]
    criterion: String,
    /// Unstructured target per layer, or one global threshold.
    #[arg(long, default_value = "layer", value_parser = ["layer", "global"])]
    scope: String,
    /// Semi-structured N:M sparsity along the input dimension (2:4, 4:8).
    #[arg(long, value_name = "N:M")]
    nm: Option<String>,
    /// Per-layer sparsity NAME=S (node or weight name); selects the layer.
    #[arg(long = "layer", value_name = "NAME=S")]
    layers: Vec<String>,
    /// Never prune this layer (node or weight name); repeatable.
    #[arg(long, value_name = "NAME")]
    skip: Vec<String>,
    /// Prune only these layers (node or weight names); repeatable.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Calibration data for obd and wanda (and taylor channel importance):
    /// IDX, .npz with x and y, or a folder of images per class.
    #[arg(long, value_name = "DATA")]
    calib: Option<PathBuf>,
    /// Calibration samples (the first N of --calib).
    #[arg(long, default_value_t = 256, value_name = "N")]
    calib_samples: usize,
    /// Structured: fraction of channels removed in each prunable group.
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    channels: Option<f32>,
    /// Structured: channel importance.
    #[arg(long, default_value = "l1", value_parser = ["l1", "l2", "bn", "taylor"])]
    importance: String,
    /// Structured: keep this fraction of the MACs (overrides --channels).
    #[arg(long, value_name = "F")]
    target_macs: Option<f64>,
    /// Structured: never remove channels of this node; repeatable.
    #[arg(long, value_name = "NAME")]
    keep: Vec<String>,
    /// Top-1 accuracy before and after on this labelled dataset.
    #[arg(long, value_name = "DATA")]
    eval: Option<PathBuf>,
    /// Evaluate only the first N samples of --eval.
    #[arg(long, value_name = "N")]
    eval_limit: Option<usize>,
    /// Timed runs per model for the per-layer latency (0: skip timing).
    #[arg(long, default_value_t = 20, value_name = "N")]
    profile_iters: usize,
    /// Samples per run when the batch dim is symbolic (calibration, eval).
    #[arg(long, default_value_t = 32, value_name = "B")]
    batch: usize,
    #[command(flatten)]
    pre: crate::common::PreprocessArgs,
}

/// One row of the per-layer table.
#[derive(Serialize, Default)]
struct LayerRow {
    node: String,
    op: String,
    /// Weight shape after pruning.
    shape: Vec<usize>,
    params_before: usize,
    params_after: usize,
    nonzero: usize,
    sparsity: f64,
    macs_before: u64,
    /// Dense-equivalent MACs of the pruned layer.
    macs_dense: u64,
    /// MACs that touch a nonzero weight.
    macs_effective: u64,
    bytes_before: usize,
    bytes_after: usize,
    ms_before: Option<f64>,
    ms_after: Option<f64>,
    /// Kernel the pruned model's layer runs with.
    kernel_after: String,
}

#[derive(Serialize, Default)]
struct Totals {
    params_before: usize,
    params_after: usize,
    nonzero_after: usize,
    macs_before: u64,
    macs_dense_after: u64,
    macs_effective_after: u64,
    weight_bytes_before: usize,
    weight_bytes_after: usize,
    file_bytes_before: u64,
    file_bytes_after: usize,
    latency_ms_before: Option<f64>,
    latency_ms_after: Option<f64>,
}

#[derive(Serialize)]
struct Group {
    layers: Vec<String>,
    channels_before: usize,
    channels_after: usize,
}

#[derive(Serialize)]
struct Accuracy {
    data: String,
    samples: usize,
    top1_before: f64,
    top1_after: f64,
    agreement: f64,
}

#[derive(Serialize)]
struct PruneJson<'a> {
    model: String,
    output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    unstructured: Option<&'a PruneReport>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    channel_groups: Vec<Group>,
    layers: Vec<LayerRow>,
    totals: Totals,
    accuracy: Option<Accuracy>,
    warnings: Vec<String>,
}

/// The unstructured options, or `None` when no unstructured pruning was
/// asked for.
fn unstructured_options(
    args: &Args,
    compile: &CompileOptions,
) -> Result<Option<UnstructuredOptions>> {
    let mut per_layer = BTreeMap::new();
    for l in &args.layers {
        let (name, s) = l
            .split_once('=')
            .with_context(|| format!("--layer '{l}' is not NAME=SPARSITY"))?;
        let s: f32 = s
            .trim()
            .parse()
            .with_context(|| format!("--layer '{l}': '{s}' is not a number"))?;
        per_layer.insert(name.to_string(), s);
    }
    let nm = args
        .nm
        .as_deref()
        .map(NmPattern::parse)
        .transpose()
        .map_err(anyhow::Error::msg)?;
    if nm.is_some() && args.sparsity.is_some() {
        bail!("--nm fixes the sparsity; leave out --sparsity");
    }
    let wanted = args.sparsity.is_some() || nm.is_some() || !per_layer.is_empty();
    if !wanted {
        if !args.only.is_empty() || !args.skip.is_empty() {
            bail!("--only/--skip choose layers for unstructured pruning: give --sparsity S or --nm N:M");
        }
        return Ok(None);
    }
    Ok(Some(UnstructuredOptions {
        criterion: Criterion::parse(&args.criterion).map_err(anyhow::Error::msg)?,
        sparsity: args.sparsity.unwrap_or(0.0),
        scope: if args.scope == "global" {
            Scope::Global
        } else {
            Scope::Layer
        },
        nm,
        per_layer,
        skip: args.skip.clone(),
        only: args.only.clone(),
        calib_samples: args.calib_samples,
        batch: args.batch,
        preprocess: args.pre.preprocess(),
        input_shapes: compile.input_shapes.clone(),
        threads: compile.threads,
    }))
}

fn channel_options(args: &Args) -> Result<Option<ChannelPruneOptions>> {
    if args.channels.is_none() && args.target_macs.is_none() {
        if !args.keep.is_empty() {
            bail!("--keep names layers for channel pruning: give --channels R or --target-macs F");
        }
        return Ok(None);
    }
    if let Some(r) = args.channels {
        if !(0.0..1.0).contains(&r) {
            bail!("--channels {r} is outside [0, 1) (the fraction of channels removed)");
        }
    }
    if let Some(f) = args.target_macs {
        if !(f > 0.0 && f <= 1.0) {
            bail!("--target-macs {f} is outside (0, 1] (the fraction of MACs kept)");
        }
    }
    Ok(Some(ChannelPruneOptions {
        ratio: args.channels.unwrap_or(0.0),
        per_layer: HashMap::new(),
        target_macs: args.target_macs,
        importance: match args.importance.as_str() {
            "l2" => ChannelImportance::L2,
            "bn" => ChannelImportance::BatchNormScale,
            "taylor" => ChannelImportance::Taylor,
            _ => ChannelImportance::L1,
        },
        keep: args.keep.clone(),
    }))
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let graph = args.model.load()?;
    let compile = args.model.compile_options(&graph, &Default::default())?;
    let unstructured = unstructured_options(&args, &compile)?;
    let channels = channel_options(&args)?;
    if unstructured.is_none() && channels.is_none() {
        bail!("say what to prune: --sparsity S, --nm N:M or --layer NAME=S (weights), or --channels R / --target-macs F (channels)");
    }
    let needs_data = unstructured
        .as_ref()
        .is_some_and(|u| u.criterion.needs_data())
        || channels
            .as_ref()
            .is_some_and(|c| c.importance == ChannelImportance::Taylor);
    if needs_data && args.calib.is_none() {
        let what = match &unstructured {
            Some(u) if u.criterion.needs_data() => format!("--criterion {}", u.criterion.name()),
            _ => "--importance taylor".to_string(),
        };
        bail!("{what} needs calibration data: add --calib DATA");
    }
    if args.eval_limit == Some(0) {
        bail!("--eval-limit must be at least 1");
    }
    let calib = match &args.calib {
        Some(p) => Some(open_dataset(p).context("cannot open the calibration data")?),
        None => None,
    };
    if let (Some(c), true) = (&calib, needs_data) {
        if args.calib_samples > c.len() {
            eprintln!(
                "note: --calib-samples {} but {} holds {} samples; using all of them",
                args.calib_samples,
                c.source().display(),
                c.len()
            );
        }
    }

    let mut pruned = graph.clone();
    let mut groups = Vec::new();
    if let Some(co) = &channels {
        let r = prune_channels(&pruned, co, calib.as_ref())
            .with_context(|| format!("cannot prune channels of {}", args.model.model.display()))?;
        pruned = r.graph;
        groups = r
            .groups
            .into_iter()
            .map(|g| Group {
                layers: g.layers,
                channels_before: g.channels_before,
                channels_after: g.channels_after,
            })
            .collect();
    }
    let mut report = None;
    if let Some(uo) = &unstructured {
        let mut stages = crate::common::StageProgress::default();
        let mut on_progress = |p: Progress| stages.update(p);
        let r = prune_unstructured(&pruned, uo, calib.as_ref(), &mut on_progress)
            .with_context(|| format!("cannot prune {}", args.model.model.display()))?;
        stages.finish();
        pruned = r.graph;
        report = Some(r.report);
    }

    let accuracy = match &args.eval {
        Some(p) => Some(eval_both(&args, &graph, &pruned, p, &compile)?),
        None => None,
    };
    let export = ExportOptions {
        sparse: SparseStorage::WhenSmaller,
    };
    let file = whittle::onnx::proto::Message::encode_to_vec(
        &whittle::onnx::model_proto_with(&pruned, &export)
            .context("cannot encode the pruned model")?,
    );
    let mut warnings = Vec::new();
    let (layers, mut totals) = measure(
        &args,
        &graph,
        &pruned,
        report.as_ref(),
        &compile,
        &mut warnings,
    );
    totals.file_bytes_before = std::fs::metadata(&args.model.model)
        .map(|m| m.len())
        .unwrap_or(0);
    totals.file_bytes_after = file.len();
    whittle::data::atomic_write(&args.output, &file)
        .with_context(|| format!("cannot write {}", args.output.display()))?;

    let doc = PruneJson {
        model: args.model.model.display().to_string(),
        output: args.output.display().to_string(),
        unstructured: report.as_ref(),
        channel_groups: groups,
        layers,
        totals,
        accuracy,
        warnings,
    };
    if args.model.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print_report(&doc, report.as_ref());
    }
    Ok(())
}

/// Top-1 of the original and the pruned model.
fn eval_both(
    args: &Args,
    before: &Graph,
    after: &Graph,
    path: &Path,
    compile: &CompileOptions,
) -> Result<Accuracy> {
    let mut ds = open_dataset(path).context("cannot open the --eval data")?;
    if let Some(n) = args.eval_limit {
        ds.truncate(n);
    }
    let opts = EvalOptions {
        batch: args.batch,
        pre: args.pre.preprocess(),
        output: None,
        compile: compile.clone(),
    };
    let run = |g: &Graph, what: &str| {
        let b = crate::common::stage_bar(what);
        b.set_length(ds.len() as u64);
        let r = evaluate(g, &ds, &opts, &b);
        b.finish_and_clear();
        r
    };
    let f = run(before, "eval before")?;
    let p = run(after, "eval after").context("cannot evaluate the pruned model")?;
    Ok(Accuracy {
        data: ds.source().display().to_string(),
        samples: ds.len(),
        top1_before: f.metrics.top1(),
        top1_after: p.metrics.top1(),
        agreement: agreement(&f, &p, ds.len()),
    })
}

/// Compile options for measuring: a symbolic batch dim becomes 1.
fn measure_options(g: &Graph, compile: &CompileOptions) -> CompileOptions {
    let mut o = compile.clone();
    for vi in &g.inputs {
        if o.input_shapes.contains_key(&vi.name) {
            continue;
        }
        if let Some(dims) = &vi.shape {
            if dims.iter().skip(1).all(|d| matches!(d, Dim::Known(_)))
                && !matches!(dims.first(), Some(Dim::Known(_)) | None)
            {
                let s = std::iter::once(1)
                    .chain(dims.iter().skip(1).map(|d| match d {
                        Dim::Known(k) => *k,
                        _ => 1,
                    }))
                    .collect();
                o.input_shapes.insert(vi.name.clone(), s);
            }
        }
    }
    o
}

/// A compiled plan, its per-node median times (if timed) and whole-run
/// median.
struct Measured {
    plan: Plan,
    node_ms: HashMap<String, f64>,
    total_ms: Option<f64>,
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

fn profile(g: &Graph, opts: &CompileOptions, iters: usize) -> Result<Measured> {
    let mut plan = whittle::runtime::compile(g, opts)?;
    let inputs = fill_inputs(&plan, &HashMap::new())?;
    for (i, t) in inputs.iter().enumerate() {
        plan.set_input_tensor(i, t)?;
    }
    let mut node_ms = HashMap::new();
    let mut total_ms = None;
    if iters > 0 {
        plan.execute()?;
        let steps = plan.num_steps();
        let mut per_run = vec![Duration::ZERO; steps];
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(iters); steps];
        let mut whole = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            plan.execute()?;
            whole.push(t0.elapsed());
            plan.execute_profiled(&mut per_run)?;
            for (s, t) in samples.iter_mut().zip(&per_run) {
                s.push(*t);
            }
        }
        total_ms = Some(median(&mut whole));
        for (r, s) in plan.report().nodes.iter().zip(samples.iter_mut()) {
            node_ms.insert(r.name.clone(), median(s));
        }
    }
    Ok(Measured {
        plan,
        node_ms,
        total_ms,
    })
}

/// Per-layer rows (every Conv/Gemm/MatMul of the original model) and
/// totals. Measuring never fails the command: problems become warnings.
fn measure(
    args: &Args,
    before: &Graph,
    after: &Graph,
    report: Option<&PruneReport>,
    compile: &CompileOptions,
    warnings: &mut Vec<String>,
) -> (Vec<LayerRow>, Totals) {
    let opts = measure_options(before, compile);
    let mut timed = |g: &Graph, what: &str| match profile(g, &opts, args.profile_iters) {
        Ok(m) => Some(m),
        Err(e) => {
            warnings.push(format!("cannot measure the {what} model: {e:#}"));
            None
        }
    };
    let b = timed(before, "original");
    let a = timed(after, "pruned");
    let node_macs = |m: &Option<Measured>| -> HashMap<String, (u64, String)> {
        m.as_ref().map_or_else(HashMap::new, |m| {
            m.plan
                .report()
                .nodes
                .iter()
                .map(|n| (n.name.clone(), (n.macs, n.kernel.clone())))
                .collect()
        })
    };
    let (macs_b, macs_a) = (node_macs(&b), node_macs(&a));
    let by_name: HashMap<&str, &whittle_compress::prune::LayerPrune> = report
        .map(|r| r.layers.iter().map(|l| (l.node.as_str(), l)).collect())
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut totals = Totals::default();
    for n in &before.nodes {
        if !matches!(n.op_type.as_str(), "Conv" | "Gemm" | "MatMul") {
            continue;
        }
        let weight = |g: &Graph| {
            g.nodes
                .iter()
                .find(|m| m.name == n.name)
                .and_then(|m| m.input(1))
                .and_then(|w| g.initializers.get(w))
                .cloned()
        };
        let (Some(wb), wa) = (weight(before), weight(after)) else {
            continue;
        };
        let wa = wa.unwrap_or_else(|| wb.clone());
        let nonzero = wa
            .as_f32()
            .map_or(wa.numel(), |v| v.iter().filter(|&&x| x != 0.0).count());
        let density = nonzero as f64 / wa.numel().max(1) as f64;
        let macs_before = macs_b.get(&n.name).map_or(0, |m| m.0);
        let (macs_dense, kernel_after) = macs_a.get(&n.name).cloned().unwrap_or((0, "-".into()));
        let time = |m: &Option<Measured>| m.as_ref().and_then(|m| m.node_ms.get(&n.name).copied());
        let row = LayerRow {
            node: n.name.clone(),
            op: n.op_type.clone(),
            shape: wa.shape().to_vec(),
            params_before: wb.numel(),
            params_after: wa.numel(),
            nonzero,
            sparsity: 1.0 - density,
            macs_before,
            macs_dense,
            macs_effective: (macs_dense as f64 * density).round() as u64,
            bytes_before: wb.byte_size(),
            bytes_after: by_name
                .get(n.name.as_str())
                .map_or(wa.byte_size(), |l| l.bytes_stored),
            ms_before: time(&b),
            ms_after: time(&a),
            kernel_after,
        };
        rows.push(row);
    }
    let all = |g: &Graph| g.initializers.values().map(|t| t.numel()).sum::<usize>();
    totals.params_before = all(before);
    totals.params_after = all(after);
    totals.nonzero_after = after
        .initializers
        .values()
        .map(|t| {
            t.as_f32()
                .map_or(t.numel(), |v| v.iter().filter(|&&x| x != 0.0).count())
        })
        .sum();
    let layer_effective: u64 = rows.iter().map(|r| r.macs_effective).sum();
    let layer_dense: u64 = rows.iter().map(|r| r.macs_dense).sum();
    totals.macs_before = b.as_ref().map_or(0, |m| m.plan.report().totals.macs);
    totals.macs_dense_after = a.as_ref().map_or(0, |m| m.plan.report().totals.macs);
    totals.macs_effective_after =
        totals.macs_dense_after - layer_dense.min(totals.macs_dense_after) + layer_effective;
    totals.weight_bytes_before = before.initializers.values().map(|t| t.byte_size()).sum();
    totals.weight_bytes_after = after
        .initializers
        .values()
        .map(|t| {
            if whittle::onnx::stores_sparse(t) {
                whittle::onnx::sparse_coo_bytes(t).unwrap_or(t.byte_size())
            } else {
                t.byte_size()
            }
        })
        .sum();
    totals.latency_ms_before = b.as_ref().and_then(|m| m.total_ms);
    totals.latency_ms_after = a.as_ref().and_then(|m| m.total_ms);
    (rows, totals)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |m| format!("{m:.4}"))
}

fn print_report(doc: &PruneJson<'_>, report: Option<&PruneReport>) {
    println!("model     {} -> {}", doc.model, doc.output);
    if let Some(r) = report {
        let pattern = if r.pattern == "unstructured" {
            format!("unstructured {:.1}%", 100.0 * r.target_sparsity)
        } else {
            format!("{} ({:.1}%)", r.pattern, 100.0 * r.target_sparsity)
        };
        println!(
            "pruning   {pattern}, criterion {}, scope {}{}",
            r.criterion,
            r.scope,
            if r.calibration_samples > 0 {
                format!(", {} calibration samples", r.calibration_samples)
            } else {
                String::new()
            }
        );
    }
    if !doc.channel_groups.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = doc
            .channel_groups
            .iter()
            .map(|g| {
                vec![
                    g.layers.join(", "),
                    g.channels_before.to_string(),
                    g.channels_after.to_string(),
                ]
            })
            .collect();
        table(&["channel group", "before", "after"], &rows);
    }
    println!();
    let rows: Vec<Vec<String>> = doc
        .layers
        .iter()
        .map(|l| {
            vec![
                l.node.clone(),
                l.op.clone(),
                shape(&l.shape),
                format!("{:.1}%", 100.0 * l.sparsity),
                count(l.params_after as u64),
                count(l.nonzero as u64),
                count(l.macs_before),
                count(l.macs_effective),
                l.bytes_before.to_string(),
                l.bytes_after.to_string(),
                ms(l.ms_before),
                ms(l.ms_after),
                l.kernel_after.clone(),
            ]
        })
        .collect();
    table(
        &[
            "layer",
            "op",
            "weight",
            "sparsity",
            "params",
            "nonzero",
            "MACs before",
            "MACs nonzero",
            "bytes before",
            "bytes after",
            "ms before",
            "ms after",
            "kernel after",
        ],
        &rows,
    );
    if let Some(r) = report {
        let skipped: Vec<&SkippedLayer> = r.skipped.iter().collect();
        if !skipped.is_empty() {
            println!();
            println!("left dense:");
            for s in skipped {
                println!("  {} ({}): {}", s.node, s.op, s.reason);
            }
        }
    }
    let t = &doc.totals;
    println!();
    println!(
        "params    {} -> {} ({} nonzero, {:.1}% of the original)",
        count(t.params_before as u64),
        count(t.params_after as u64),
        count(t.nonzero_after as u64),
        100.0 * t.nonzero_after as f64 / t.params_before.max(1) as f64
    );
    println!(
        "MACs      {} -> {} dense, {} on nonzero weights",
        count(t.macs_before),
        count(t.macs_dense_after),
        count(t.macs_effective_after)
    );
    println!(
        "weights   {} -> {}; file {} -> {} ({:.2}x smaller)",
        bytes(t.weight_bytes_before),
        bytes(t.weight_bytes_after),
        bytes(t.file_bytes_before as usize),
        bytes(t.file_bytes_after),
        t.file_bytes_before as f64 / t.file_bytes_after.max(1) as f64
    );
    if let (Some(b), Some(a)) = (t.latency_ms_before, t.latency_ms_after) {
        println!(
            "latency   {b:.3} ms -> {a:.3} ms median ({:.2}x)",
            b / a.max(1e-9)
        );
    }
    if let Some(a) = &doc.accuracy {
        println!(
            "accuracy  top-1 {:.2}% -> {:.2}%, agreement {:.2}% on {} samples",
            100.0 * a.top1_before,
            100.0 * a.top1_after,
            100.0 * a.agreement,
            a.samples
        );
    }
    for w in &doc.warnings {
        println!("warning: {w}");
    }
}
