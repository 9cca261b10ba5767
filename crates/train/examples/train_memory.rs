//! Planned training memory of MobileNetV2 0.35 at 128x128, batch 1
//! (issue 5's memory acceptance): (a) full update in f32, (b) int8 forward
//! (PTQ, QDQ compiled to integer kernels) with a sparse update of integer
//! weights trained with QAS. PyTorch's saved-tensor figure for (a) comes
//! from `python3 scripts/torch_train_memory.py`.
//!
//! ```sh
//! cargo run --release -p whittle-train --example train_memory
//! ```
//!
//! The figures are the compiled training plan's: one arena holding the
//! input, the trainable weights (fed as inputs), every kept activation,
//! the gradients (graph outputs) and kernel workspace, plus the optimizer
//! state held on the host. Frozen weights are constants (flash on a
//! device) and listed apart.

#[path = "../tests/support/transfer.rs"]
mod transfer;

use std::collections::HashMap;

use transfer::{backbone, load, numel, quantize, scheme_tensors, Scheme};
use whittle_ir::Graph;
use whittle_train::{build_training_graph, BatchNormMode, Loss, TrainSpec};

const SIDE: usize = 128;

struct Row {
    what: String,
    arena: usize,
    lower_bound: usize,
    trainable_bytes: usize,
    optimizer: usize,
    frozen: usize,
}

fn plan(g: &Graph, trainable: Vec<String>, momentum_bytes_per_elem: usize, what: &str) -> Row {
    let trainable_bytes = trainable
        .iter()
        .map(|n| g.initializers[n].byte_size())
        .sum();
    let optimizer = momentum_bytes_per_elem * numel(g, &trainable);
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        trainable,
    );
    spec.batchnorm = BatchNormMode::Frozen;
    spec.input_shapes = HashMap::from([("input".to_string(), vec![1, 1, SIDE, SIDE])]);
    let tg = build_training_graph(g, &spec).unwrap_or_else(|e| panic!("{what}: {e}"));
    let p = tg.compile(1).unwrap_or_else(|e| panic!("{what}: {e}"));
    let m = p.memory();
    let frozen = g
        .initializers
        .iter()
        .filter(|(n, _)| !tg.initial.iter().any(|(w, _)| w == *n))
        .map(|(_, t)| t.byte_size())
        .sum();
    if std::env::var_os("WHITTLE_MEMORY_DEBUG").is_some() {
        // The biggest tensors, to see what sets the peak.
        let mut nodes: Vec<_> = p.report().nodes.iter().collect();
        nodes.sort_by_key(|n| std::cmp::Reverse(n.activation_bytes));
        for n in nodes.iter().take(12) {
            eprintln!(
                "{what}: {} {} {} {:?} {:?} {} B",
                n.name, n.op, n.kernel, n.output_shapes, n.output_dtypes, n.activation_bytes
            );
        }
    }
    Row {
        what: what.to_string(),
        arena: m.arena,
        lower_bound: m.lower_bound,
        trainable_bytes,
        optimizer,
        frozen,
    }
}

fn kb(b: usize) -> String {
    format!("{:.1} KB", b as f64 / 1024.0)
}

fn main() {
    let g = backbone(7);
    let mut rows = vec![plan(
        &g,
        scheme_tensors(&g, Scheme::Full),
        4,
        "(a) f32, full update, SGD momentum",
    )];
    match load("train", 5..10, 20) {
        Some(calib) => {
            let q = quantize(&g, &calib, 100);
            // The model declares 32x32: restate the input at 128x128.
            let mut at128 = q.clone();
            at128.inputs[0] =
                whittle_ir::ValueInfo::known("input", whittle_ir::DType::F32, &[1, 1, SIDE, SIDE]);
            let opts = whittle_runtime::CompileOptions::default();
            let inference = whittle_runtime::compile(&at128, &opts).unwrap().memory();
            println!(
                "int8 inference alone (same QDQ model, no training): arena {}, liveness lower bound {}\n",
                kb(inference.arena),
                kb(inference.lower_bound)
            );
            let sparse = scheme_tensors(&q, Scheme::Sparse);
            rows.push(plan(
                &q,
                sparse.clone(),
                0,
                "(b) int8 forward, sparse update (QAS, SGD)",
            ));
            rows.push(plan(
                &q,
                scheme_tensors(&q, Scheme::BiasOnly),
                0,
                "(b') int8 forward, bias-only + head (QAS, SGD)",
            ));
            rows.push(plan(
                &q,
                scheme_tensors(&q, Scheme::LastK(1)),
                0,
                "(b'') int8 forward, head only (QAS, SGD)",
            ));
        }
        None => eprintln!("Fashion-MNIST not found: int8 rows need calibration data"),
    }
    println!(
        "MobileNetV2 0.35, 1x1x128x128, batch 1; arena = compiled training plan (Plan::memory)\n"
    );
    println!("| configuration | planned arena | liveness lower bound | of which trainable weights | optimizer state | RAM total (arena + state) | frozen initializers (flash) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.what,
            kb(r.arena),
            kb(r.lower_bound),
            kb(r.trainable_bytes),
            kb(r.optimizer),
            kb(r.arena + r.optimizer),
            kb(r.frozen)
        );
    }
}
