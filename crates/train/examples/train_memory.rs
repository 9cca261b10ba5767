//! Planned memory of one training step with fused in-place updates versus
//! keeping every weight gradient to the end of the step (the host-optimizer
//! layout):
//! `cargo run --release -p whittle-train --example train_memory -- MODEL.onnx [BATCH] [sgd|adam] [LAST_K]`.
//! Trains every default trainable tensor (or the last LAST_K of them),
//! BatchNorm in train mode, softmax cross-entropy on the first graph output.

use whittle_train::{
    default_trainable, plan_training_memory_with, Adam, FuseOptions, Loss, Optimizer, Sgd,
    TrainMemory, TrainSpec,
};

fn kb(b: usize) -> String {
    format!("{:.1}", b as f64 / 1024.0)
}

fn row(name: &str, m: &TrainMemory) {
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        kb(m.kept_activations),
        kb(m.weights),
        kb(m.optimizer_state),
        kb(m.gradients),
        kb(m.workspace),
        kb(m.peak)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        return Err("usage: train_memory MODEL.onnx [BATCH] [sgd|adam] [LAST_K]".into());
    };
    let batch: usize = args.get(1).map_or(Ok(1), |b| b.parse())?;
    let opt: Box<dyn Optimizer> = match args.get(2).map(String::as_str) {
        Some("adam") => Box::new(Adam::new(1e-3)),
        _ => Box::new(Sgd::new(0.01, 0.9)),
    };
    let graph = whittle_onnx::load_model(std::path::Path::new(path))?;
    let logits = graph
        .outputs
        .first()
        .ok_or("the model has no outputs")?
        .name
        .clone();
    let mut trainable = default_trainable(&graph);
    if let Some(k) = args.get(3) {
        let k: usize = k.parse()?;
        trainable.drain(..trainable.len().saturating_sub(k));
    }
    let spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits,
            labels: "labels".into(),
        },
        trainable,
    );
    let fused =
        plan_training_memory_with(&graph, &spec, opt.as_ref(), batch, &FuseOptions::default())?;
    let keep = FuseOptions {
        keep_grads: true,
        ..FuseOptions::default()
    };
    let kept = plan_training_memory_with(&graph, &spec, opt.as_ref(), batch, &keep)?;
    println!(
        "{path}, batch {batch}, {} trainable tensors, KiB:",
        spec.trainable.len()
    );
    println!("| layout | kept activations | weights | optimizer state | gradients (peak alive) | workspace | peak |");
    println!("|---|---|---|---|---|---|---|");
    row("fused in-place updates", &fused);
    row("all gradients kept", &kept);
    println!(
        "peak saved by fusing: {} KiB ({:.1}%)",
        kb(kept.peak.saturating_sub(fused.peak)),
        100.0 * (kept.peak as f64 - fused.peak as f64) / kept.peak.max(1) as f64
    );
    Ok(())
}
