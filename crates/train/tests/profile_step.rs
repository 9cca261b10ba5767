//! Per-node time of one training step of the LeNet+BN fixture at batch 32:
//! `cargo test --release -p whittle-train --test profile_step -- --ignored --nocapture`.
//! Not a timed test; it prints where a step spends its time.

use std::time::{Duration, Instant};

use whittle_ir::{DType, Tensor};
use whittle_train::{build_training_graph, default_trainable, Loss, TrainSpec};

#[test]
#[ignore]
fn lenet_training_step_profile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lenet_bn");
    let forward = whittle_onnx::load_model(&dir.join("model.onnx")).unwrap();
    let loss = Loss::SoftmaxCrossEntropy {
        logits: "logits".into(),
        labels: "labels".into(),
    };
    let mut spec = TrainSpec::new(loss, default_trainable(&forward));
    spec.input_shapes.insert("x".into(), vec![32, 1, 28, 28]);
    let tg = build_training_graph(&forward, &spec).unwrap();
    let mut plan = tg.compile(1).unwrap();
    let mut inputs: Vec<Tensor> = plan
        .inputs()
        .map(|i| Tensor::zeros(i.fact.dtype, i.fact.shape.clone()).unwrap())
        .collect();
    for t in inputs.iter_mut().filter(|t| t.dtype() == DType::F32) {
        for (k, v) in t.as_f32_mut().unwrap().iter_mut().enumerate() {
            *v = ((k * 7919) % 101) as f32 / 101.0 - 0.5;
        }
    }
    let iters = 50;
    let mut times = vec![Duration::ZERO; plan.num_steps()];
    let mut total = vec![Duration::ZERO; plan.num_steps()];
    let t0 = Instant::now();
    for _ in 0..iters {
        // Inputs live in the arena and are overwritten by each run.
        for (i, t) in inputs.iter().enumerate() {
            plan.set_input_tensor(i, t).unwrap();
        }
        plan.execute_profiled(&mut times).unwrap();
        for (a, b) in total.iter_mut().zip(&times) {
            *a += *b;
        }
    }
    let step = t0.elapsed().as_secs_f64() / f64::from(iters) * 1e3;
    let mut rows: Vec<_> = plan.report().nodes.iter().zip(&total).collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (n, t) in rows {
        let ms = t.as_secs_f64() * 1e3 / f64::from(iters);
        eprintln!("{ms:>8.3} ms  {:<22} {:<40} {}", n.op, n.kernel, n.name);
    }
    let m = plan.memory();
    eprintln!(
        "step {step:.2} ms; arena {} bytes (lower bound {})",
        m.arena, m.lower_bound
    );
}
