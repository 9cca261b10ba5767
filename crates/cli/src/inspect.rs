//! `whittle inspect`: what the compiled plan looks like.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;
use whittle::runtime::report::PlanReport;

use crate::common::ModelArgs;
use crate::format::{bytes, count, shape, table};

/// Arguments of `whittle inspect`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
}

#[derive(Serialize)]
struct Io {
    name: String,
    dtype: String,
    shape: Vec<usize>,
}

#[derive(Serialize)]
struct InspectJson<'a> {
    model: String,
    producer: String,
    opset: i64,
    threads: usize,
    inputs: Vec<Io>,
    outputs: Vec<Io>,
    #[serde(flatten)]
    report: &'a PlanReport,
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let (graph, plan) = args.model.plan(&HashMap::new())?;
    let report = plan.report();
    let io = |it: &mut dyn Iterator<Item = &whittle::runtime::IoInfo>| -> Vec<Io> {
        it.map(|i| Io {
            name: i.name.clone(),
            dtype: i.fact.dtype.name().into(),
            shape: i.fact.shape.clone(),
        })
        .collect()
    };
    let doc = InspectJson {
        model: args.model.model.display().to_string(),
        producer: graph.producer.clone(),
        opset: graph.opset(),
        threads: plan.threads(),
        inputs: io(&mut plan.inputs()),
        outputs: io(&mut plan.outputs()),
        report,
    };
    if args.model.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!(
        "model    {} (producer '{}', opset {})",
        doc.model, doc.producer, doc.opset
    );
    for i in &doc.inputs {
        println!("input    {} {} {}", i.name, i.dtype, shape(&i.shape));
    }
    for o in &doc.outputs {
        println!("output   {} {} {}", o.name, o.dtype, shape(&o.shape));
    }
    let passes: Vec<String> = report
        .passes
        .iter()
        .map(|p| format!("{} (-{} nodes)", p.pass, p.removed))
        .collect();
    println!(
        "passes   {}; {} nodes folded into constants",
        passes.join(", "),
        report.totals.folded_nodes
    );
    println!();
    let rows: Vec<Vec<String>> = report
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            vec![
                i.to_string(),
                n.name.clone(),
                n.op.clone(),
                format!(
                    "{}{}",
                    n.kernel,
                    if n.in_place { " (in place)" } else { "" }
                ),
                n.output_shapes
                    .iter()
                    .map(|s| shape(s))
                    .collect::<Vec<_>>()
                    .join(", "),
                count(n.params as u64),
                count(n.macs),
                bytes(n.activation_bytes),
            ]
        })
        .collect();
    table(
        &[
            "#",
            "node",
            "op",
            "kernel",
            "output",
            "params",
            "MACs",
            "activations",
        ],
        &rows,
    );
    let t = &report.totals;
    println!();
    println!(
        "nodes          {} scheduled ({} schedule)",
        t.nodes, t.schedule
    );
    println!("params         {}", count(t.params as u64));
    println!("MACs           {}", count(t.macs));
    println!(
        "weights        {} in memory ({} packed into kernel layouts, {} kept as constants)",
        bytes(t.weight_bytes + t.packed_weight_bytes),
        bytes(t.packed_weight_bytes),
        bytes(t.weight_bytes)
    );
    let over = if t.arena_lower_bound > 0 {
        t.arena_bytes as f64 / t.arena_lower_bound as f64
    } else {
        1.0
    };
    println!(
        "arena          {} (liveness lower bound {}, x{over:.3}; naive sum of intermediates {})",
        bytes(t.arena_bytes),
        bytes(t.arena_lower_bound),
        bytes(t.naive_activation_bytes)
    );
    Ok(())
}
