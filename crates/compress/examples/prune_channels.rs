//! Structured channel pruning from the command line (until `whittle prune`
//! exposes it), with an optional single-thread latency comparison.
//!
//! ```text
//! cargo run --release -p whittle-compress --example prune_channels -- \
//!     MODEL.onnx OUT.onnx [--ratio 0.5] [--target-macs 0.5] \
//!     [--importance l1|l2|bn|taylor] [--calib DATA] [--keep NODE]... [--bench ITERS] \
//!     [--run IN.npy OUT.npy]
//! ```
//! Prints one line per dependency group, then the MACs and (with
//! `--bench`) the median latency of the original and the pruned model;
//! `--run` runs the pruned model in whittle on IN.npy and writes OUT.npy.

use std::path::PathBuf;
use std::time::Instant;

use whittle_compress::structured::{prune_channels, ChannelImportance, ChannelPruneOptions};
use whittle_ir::{Graph, Tensor};
use whittle_runtime::{compile, CompileOptions};

/// A compiled plan with a deterministic input set.
fn ready(g: &Graph) -> Result<whittle_runtime::Plan, Box<dyn std::error::Error>> {
    let mut plan = compile(g, &CompileOptions::default())?;
    let inputs: Vec<Tensor> = plan
        .inputs()
        .map(|i| {
            let n: usize = i.fact.shape.iter().product();
            let v = (0..n)
                .map(|k| ((k * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect();
            Tensor::from_f32(i.fact.shape.clone(), v)
        })
        .collect::<Result<_, _>>()?;
    for (k, t) in inputs.iter().enumerate() {
        plan.set_input_tensor(k, t)?;
    }
    plan.execute()?;
    Ok(plan)
}

/// Median single-thread latency (ms) of each graph, runs interleaved so
/// load from other processes hits both alike.
fn median_ms(graphs: &[&Graph], iters: usize) -> Result<Vec<f64>, Box<dyn std::error::Error>> {
    let mut plans = graphs
        .iter()
        .map(|g| ready(g))
        .collect::<Result<Vec<_>, _>>()?;
    let mut times = vec![Vec::with_capacity(iters); plans.len()];
    for _ in 0..iters {
        for (plan, t) in plans.iter_mut().zip(&mut times) {
            let t0 = Instant::now();
            plan.execute()?;
            t.push(t0.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let mut opts = ChannelPruneOptions {
        ratio: 0.5,
        ..ChannelPruneOptions::default()
    };
    let mut bench = 0usize;
    let mut calib: Option<PathBuf> = None;
    let mut run_io: Option<(PathBuf, PathBuf)> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ratio" => opts.ratio = val()?.parse()?,
            "--target-macs" => opts.target_macs = Some(val()?.parse()?),
            "--keep" => opts.keep.push(val()?),
            "--bench" => bench = val()?.parse()?,
            "--calib" => calib = Some(val()?.into()),
            "--run" => {
                let input = val()?;
                run_io = Some((input.into(), val()?.into()));
            }
            "--importance" => {
                opts.importance = match val()?.as_str() {
                    "l1" => ChannelImportance::L1,
                    "l2" => ChannelImportance::L2,
                    "bn" => ChannelImportance::BatchNormScale,
                    "taylor" => ChannelImportance::Taylor,
                    other => return Err(format!("unknown importance '{other}'").into()),
                }
            }
            _ => pos.push(a.clone()),
        }
    }
    let [model, out] = pos.as_slice() else {
        return Err("usage: prune_channels MODEL OUT [options]".into());
    };
    let g = whittle_onnx::load_model(model.as_ref())?;
    let data = calib.map(whittle_data::open_dataset).transpose()?;
    let p = prune_channels(&g, &opts, data.as_ref())?;
    for gr in &p.groups {
        println!(
            "{:>5} -> {:<5} {}{}",
            gr.channels_before,
            gr.channels_after,
            gr.layers.join(", "),
            gr.pinned
                .as_deref()
                .map(|r| format!("  [{r}]"))
                .unwrap_or_default()
        );
    }
    for n in &p.notes {
        println!("note: {n}");
    }
    let params = |g: &Graph| g.initializers.values().map(Tensor::numel).sum::<usize>();
    println!(
        "params {} -> {}  MACs {} -> {} ({:.3})",
        params(&g),
        params(&p.graph),
        p.macs_before,
        p.macs_after,
        p.macs_after as f64 / p.macs_before.max(1) as f64
    );
    whittle_onnx::save_model(&p.graph, out.as_ref())?;
    if let Some((input, output)) = run_io {
        let x = whittle_data::read_npy(&input)?;
        let mut plan = compile(&p.graph, &CompileOptions::default())?;
        let y = plan.run(std::slice::from_ref(&x))?.remove(0);
        whittle_data::write_npy(&output, &y)?;
    }
    if bench > 0 {
        let m = median_ms(&[&g, &p.graph], bench)?;
        let (a, b) = (m[0], m[1]);
        println!(
            "latency (1 thread, median of {bench}): original {a:.3} ms, pruned {b:.3} ms, speedup {:.2}x",
            a / b
        );
    }
    Ok(())
}
