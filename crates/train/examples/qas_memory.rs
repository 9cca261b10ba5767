//! Planned training memory of MobileNetV2 0.35 at 128x128, batch 1
//! (issue 5's memory acceptance): (a) full update in f32, (b) int8 forward
//! (PTQ, QDQ compiled to integer kernels) with a sparse update of the
//! integer weights trained by `QasSgd`, all with fused in-place updates
//! (each gradient dies right after its update; trained weights and
//! optimizer slots are resident plan state). PyTorch's saved-tensor figure
//! for (a) comes from `python3 scripts/torch_train_memory.py`.
//!
//! ```sh
//! cargo run --release -p whittle-train --example qas_memory [-- --top 8]
//! ```
//!
//! Figures are `Trainer::memory()` of the compiled training plan. The
//! arena is the RAM a device needs (input, kept activations, live
//! gradients, workspace, resident trained weights and optimizer state);
//! frozen weights are constants (flash on a device) and listed apart. For
//! each row the values alive at the arena's busiest time are printed
//! (`Plan::liveness`), to show what sets the peak.

#[path = "../tests/support/transfer.rs"]
mod transfer;

use std::collections::HashMap;

use transfer::{backbone, load, quantize, scheme_tensors, Scheme};
use whittle_ir::{DType, Graph, ValueInfo};
use whittle_runtime::{compile, CompileOptions, LiveValue, Plan};
use whittle_train::{
    BatchNormMode, Loss, Optimizer, QasSgd, Sgd, TrainMemory, TrainSpec, Trainer, TrainerOptions,
};

const SIDE: usize = 128;

fn kb(b: usize) -> String {
    format!("{:.1} KB", b as f64 / 1024.0)
}

/// The busiest time of the plan's liveness, its live bytes, and the
/// values alive then, largest first.
fn busiest(live: &[LiveValue]) -> (usize, usize, Vec<&LiveValue>) {
    let end = live.iter().map(|v| v.end).max().unwrap_or(0);
    let mut best = (0, 0);
    for t in 0..=end {
        let bytes: usize = live
            .iter()
            .filter(|v| v.start <= t && t <= v.end)
            .map(|v| v.bytes)
            .sum();
        if bytes > best.1 {
            best = (t, bytes);
        }
    }
    let mut alive: Vec<&LiveValue> = live
        .iter()
        .filter(|v| v.start <= best.0 && best.0 <= v.end)
        .collect();
    alive.sort_by_key(|v| std::cmp::Reverse(v.bytes));
    (best.0, best.1, alive)
}

fn explain(what: &str, plan: &Plan, top: usize) {
    let (t, bytes, alive) = busiest(plan.liveness());
    let step = t
        .checked_sub(1)
        .and_then(|p| plan.report().nodes.get(p))
        .map_or("(inputs)".to_string(), |n| {
            format!("{} ({}, {})", n.name, n.op, n.kernel)
        });
    eprintln!(
        "{what}: busiest at time {t}, step {step}: {} live",
        kb(bytes)
    );
    for v in alive.iter().take(top) {
        eprintln!(
            "    {:>9}  {:?}  {} [{}..{}]",
            kb(v.bytes),
            v.kind,
            v.name,
            v.start,
            v.end
        );
    }
}

struct Row {
    what: String,
    arena: usize,
    lower_bound: usize,
    m: TrainMemory,
    constants: usize,
}

fn plan(g: &Graph, trainable: Vec<String>, opt: Box<dyn Optimizer>, what: &str, top: usize) -> Row {
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        trainable,
    );
    spec.batchnorm = BatchNormMode::Frozen;
    spec.input_shapes = HashMap::from([("input".to_string(), vec![1, 1, SIDE, SIDE])]);
    let opts = TrainerOptions {
        threads: 1,
        batch_size: 1,
    };
    let t = Trainer::new(g, &spec, opt, &opts).unwrap_or_else(|e| panic!("{what}: {e}"));
    let stats = t.plan().memory();
    explain(what, t.plan(), top);
    Row {
        what: what.to_string(),
        arena: stats.arena,
        lower_bound: stats.lower_bound,
        m: t.memory(),
        constants: stats.weights + stats.packed_weights,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let top: usize = args
        .iter()
        .position(|a| a == "--top")
        .and_then(|i| args.get(i + 1))
        .map_or(8, |v| v.parse().expect("--top N"));
    let g = backbone(7);
    let mut rows = vec![plan(
        &g,
        scheme_tensors(&g, Scheme::Full),
        Box::new(Sgd::new(0.01, 0.9)),
        "(a) f32, full update, SGD momentum 0.9",
        top,
    )];
    let Some(calib) = load("train", 5..10, 20) else {
        eprintln!("Fashion-MNIST not found: int8 rows need calibration data");
        return;
    };
    let q = quantize(&g, &calib, 100);
    let qas = |names: &[String], momentum: f32| -> Box<dyn Optimizer> {
        Box::new(QasSgd::new(&q, names, 0.01, momentum).unwrap())
    };
    let sparse = scheme_tensors(&q, Scheme::Sparse);
    rows.push(plan(
        &q,
        sparse.clone(),
        qas(&sparse, 0.0),
        "(b) int8 forward, sparse update, QAS SGD",
        top,
    ));
    rows.push(plan(
        &q,
        sparse.clone(),
        qas(&sparse, 0.9),
        "(b, momentum) int8 forward, sparse update, QAS SGD momentum 0.9",
        top,
    ));
    let bias = scheme_tensors(&q, Scheme::BiasOnly);
    rows.push(plan(
        &q,
        bias.clone(),
        qas(&bias, 0.0),
        "(b') int8 forward, bias-only + head, QAS SGD",
        top,
    ));
    let head = scheme_tensors(&q, Scheme::LastK(1));
    rows.push(plan(
        &q,
        head.clone(),
        qas(&head, 0.0),
        "(b'') int8 forward, head only, QAS SGD",
        top,
    ));
    // The exported model fixes 32x32; the same weights run at 128x128.
    let mut q128 = q.clone();
    for i in q128.inputs.iter_mut().filter(|i| i.name == "input") {
        *i = ValueInfo::known("input", DType::F32, &[1, 1, SIDE, SIDE]);
    }
    let inference =
        compile(&q128, &CompileOptions::default()).unwrap_or_else(|e| panic!("inference: {e}"));
    explain("int8 inference", &inference, top);

    println!("MobileNetV2 0.35, 1x1x128x128, batch 1, BatchNorm frozen; fused in-place updates; Trainer::memory() of the compiled training plan\n");
    println!("| configuration | **arena (RAM)** | liveness lower bound | kept activations | trained weights (resident) | optimizer state | gradients (peak alive) | workspace (largest) | frozen weights (flash) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        // TrainMemory::weights also counts the constants; the resident
        // trained weights are the rest.
        let resident = r.m.weights.saturating_sub(r.constants);
        println!(
            "| {} | **{}** | {} | {} | {} | {} | {} | {} | {} |",
            r.what,
            kb(r.arena),
            kb(r.lower_bound),
            kb(r.m.kept_activations),
            kb(resident),
            kb(r.m.optimizer_state),
            kb(r.m.gradients),
            kb(r.m.workspace),
            kb(r.constants)
        );
    }
    let s = inference.memory();
    println!(
        "| int8 inference alone (same QDQ model) | **{}** | {} | – | – | – | – | – | {} |",
        kb(s.arena),
        kb(s.lower_bound),
        kb(s.weights + s.packed_weights)
    );
}
