//! `whittle bench`: latency (median and spread) and memory of a model.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::common::{fill_inputs, read_inputs, ModelArgs};
use crate::format::{bytes, table};

/// Arguments of `whittle bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Timed runs.
    #[arg(long, default_value_t = 50)]
    iters: usize,
    /// Untimed runs first.
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Optional inputs as NAME=FILE.npy; others are seeded random data.
    #[arg(long = "input", value_name = "NAME=FILE.npy")]
    inputs: Vec<String>,
    /// Also time every node and list where the time goes.
    #[arg(long)]
    profile: bool,
}

#[derive(Serialize)]
struct NodeTime {
    name: String,
    op: String,
    kernel: String,
    median_ms: f64,
    share: f64,
}

#[derive(Serialize)]
struct BenchJson {
    model: String,
    threads: usize,
    iters: usize,
    median_ms: f64,
    p10_ms: f64,
    p90_ms: f64,
    min_ms: f64,
    mean_ms: f64,
    arena_bytes: usize,
    arena_lower_bound: usize,
    weight_bytes: usize,
    packed_weight_bytes: usize,
    macs: u64,
    gmacs_per_s: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    nodes: Vec<NodeTime>,
}

/// The q-quantile of sorted durations, in ms.
fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    let graph = args.model.load()?;
    let given = read_inputs(&args.inputs, &graph)?;
    let opts = args.model.compile_options(&graph, &given)?;
    let mut plan = whittle::runtime::compile(&graph, &opts)?;
    let inputs = fill_inputs(&plan, &given)?;
    for (i, t) in inputs.iter().enumerate() {
        plan.set_input_tensor(i, t)?;
    }
    for _ in 0..args.warmup {
        plan.execute()?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let t0 = Instant::now();
        plan.execute()?;
        times.push(t0.elapsed());
    }
    let mut nodes = Vec::new();
    if args.profile {
        let n = plan.num_steps();
        let mut per_run = vec![Duration::ZERO; n];
        let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(args.iters); n];
        for _ in 0..args.iters {
            plan.execute_profiled(&mut per_run)?;
            for (s, t) in samples.iter_mut().zip(&per_run) {
                s.push(*t);
            }
        }
        let medians: Vec<f64> = samples
            .iter_mut()
            .map(|s| {
                s.sort();
                quantile(s, 0.5)
            })
            .collect();
        let total: f64 = medians.iter().sum();
        for (r, m) in plan.report().nodes.iter().zip(&medians) {
            nodes.push(NodeTime {
                name: r.name.clone(),
                op: r.op.clone(),
                kernel: r.kernel.clone(),
                median_ms: *m,
                share: if total > 0.0 { m / total } else { 0.0 },
            });
        }
    }
    times.sort();
    let mem = plan.memory();
    let macs = plan.report().totals.macs;
    let median = quantile(&times, 0.5);
    let doc = BenchJson {
        model: args.model.model.display().to_string(),
        threads: plan.threads(),
        iters: args.iters,
        median_ms: median,
        p10_ms: quantile(&times, 0.1),
        p90_ms: quantile(&times, 0.9),
        min_ms: times[0].as_secs_f64() * 1e3,
        mean_ms: times.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / times.len() as f64,
        arena_bytes: mem.arena,
        arena_lower_bound: mem.lower_bound,
        weight_bytes: mem.weights,
        packed_weight_bytes: mem.packed_weights,
        macs,
        gmacs_per_s: macs as f64 / (median * 1e-3) / 1e9,
        nodes,
    };
    if args.model.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "model      {} ({} thread{})",
        doc.model,
        doc.threads,
        if doc.threads == 1 { "" } else { "s" }
    );
    println!(
        "latency    median {:.3} ms  (p10 {:.3}, p90 {:.3}, min {:.3}; {} runs after {} warm-up)",
        doc.median_ms, doc.p10_ms, doc.p90_ms, doc.min_ms, doc.iters, args.warmup
    );
    println!("throughput {:.2} GMAC/s", doc.gmacs_per_s);
    println!(
        "arena      {} (lower bound {})",
        bytes(doc.arena_bytes),
        bytes(doc.arena_lower_bound)
    );
    println!(
        "weights    {} in memory ({} packed into kernel layouts, {} kept as constants)",
        bytes(doc.weight_bytes + doc.packed_weight_bytes),
        bytes(doc.packed_weight_bytes),
        bytes(doc.weight_bytes)
    );
    if !doc.nodes.is_empty() {
        let mut by_time: Vec<&NodeTime> = doc.nodes.iter().collect();
        by_time.sort_by(|a, b| b.median_ms.total_cmp(&a.median_ms));
        let rows: Vec<Vec<String>> = by_time
            .iter()
            .take(20)
            .map(|n| {
                vec![
                    n.name.clone(),
                    n.op.clone(),
                    n.kernel.clone(),
                    format!("{:.4}", n.median_ms),
                    format!("{:.1}%", n.share * 100.0),
                ]
            })
            .collect();
        println!();
        table(&["node", "op", "kernel", "ms", "share"], &rows);
    }
    Ok(())
}
