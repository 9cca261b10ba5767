//! Time of one training step of the LeNet+BN fixture at batch 32, fused
//! in-place updates (the Trainer) against the previous path (gradients out
//! of the graph, weights fed in and updated on the host), plus per-node
//! times of the fused step:
//! `cargo test --release -p whittle-train --test profile_step -- --ignored --nocapture`.
//! Not a timed test; it prints figures.

use std::time::{Duration, Instant};

use whittle_ir::Tensor;
use whittle_train::{
    build_training_graph, default_trainable, Loss, Sgd, TrainSpec, Trainer, TrainerOptions,
};

const BATCH: usize = 32;
const ITERS: usize = 50;
const ROUNDS: usize = 10;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn batch() -> (Tensor, Tensor) {
    let n = BATCH * 28 * 28;
    let x = (0..n).map(|k| ((k * 7919) % 101) as f32 / 101.0).collect();
    let x = Tensor::from_f32(vec![BATCH, 1, 28, 28], x).unwrap();
    let y = Tensor::vec_i64((0..BATCH as i64).map(|k| k % 10).collect());
    (x, y)
}

#[test]
#[ignore]
fn lenet_training_step_profile() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lenet_bn");
    let forward = whittle_onnx::load_model(&dir.join("model.onnx")).unwrap();
    let loss = Loss::SoftmaxCrossEntropy {
        logits: "logits".into(),
        labels: "labels".into(),
    };
    let spec = TrainSpec::new(loss, default_trainable(&forward));
    let (x, y) = batch();

    // Fused: the Trainer.
    let opts = TrainerOptions {
        threads: 1,
        batch_size: BATCH,
    };
    let mut trainer = Trainer::new(&forward, &spec, Box::new(Sgd::new(0.01, 0.9)), &opts).unwrap();

    // Host path: the graph outputs gradients and batch statistics; weights
    // are fed in and updated on the host each step.
    let mut hspec = spec.clone();
    hspec
        .input_shapes
        .insert("x".into(), vec![BATCH, 1, 28, 28]);
    hspec.keep_outputs.push("logits".into());
    let tg = build_training_graph(&forward, &hspec).unwrap();
    let mut plan = tg.compile(1).unwrap();
    let mut weights: Vec<Tensor> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let slot = |name: &str| plan.inputs().position(|i| i.name == name).unwrap();
    let wslots: Vec<usize> = tg.initial.iter().map(|(w, _)| slot(w)).collect();
    let (xs, ys) = (slot("x"), slot(&tg.labels));
    let mut host_opt = Sgd::new(0.01, 0.9);
    let mut host_step = |plan: &mut whittle_runtime::Plan| {
        plan.set_input_tensor(xs, &x).unwrap();
        plan.set_input_tensor(ys, &y).unwrap();
        for (k, w) in wslots.iter().zip(&weights) {
            plan.set_input_tensor(*k, w).unwrap();
        }
        plan.execute().unwrap();
        let grads: Vec<Vec<f32>> = (0..weights.len())
            .map(|i| plan.output(1 + i).unwrap().f32().to_vec())
            .collect();
        let grads: Vec<&[f32]> = grads.iter().map(Vec::as_slice).collect();
        host_opt.step(&mut weights, &grads);
    };

    // Rounds alternate which path runs first, so drift in the machine's
    // load or clock affects both alike.
    let (mut fused, mut host) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        for which in [r % 2, 1 - r % 2] {
            let t0 = Instant::now();
            for _ in 0..ITERS {
                if which == 0 {
                    trainer.step(&x, &y).unwrap();
                } else {
                    host_step(&mut plan);
                }
            }
            let ms = t0.elapsed().as_secs_f64() / ITERS as f64 * 1e3;
            if which == 0 {
                fused.push(ms);
            } else {
                host.push(ms);
            }
        }
    }
    let (f, h) = (median(fused), median(host));
    eprintln!(
        "LeNet+BN batch {BATCH}, SGD momentum, 1 thread: fused {f:.3} ms/step, host path {h:.3} ms/step (host/fused {:.2}x; medians of {ROUNDS} x {ITERS} steps)",
        h / f
    );

    eprintln!(
        "schedules: fused {} (arena {} B), host {} (arena {} B)",
        trainer.plan().report().totals.schedule,
        trainer.plan().memory().arena,
        plan.report().totals.schedule,
        plan.memory().arena
    );
    let mut times = vec![Duration::ZERO; plan.num_steps()];
    let mut total = vec![Duration::ZERO; plan.num_steps()];
    for _ in 0..ITERS {
        plan.set_input_tensor(xs, &x).unwrap();
        plan.set_input_tensor(ys, &y).unwrap();
        for (k, w) in wslots.iter().zip(&tg.initial) {
            plan.set_input_tensor(*k, &w.1).unwrap();
        }
        plan.execute_profiled(&mut times).unwrap();
        for (a, b) in total.iter_mut().zip(&times) {
            *a += *b;
        }
    }
    eprintln!("host path per node:");
    let mut rows: Vec<_> = plan.report().nodes.iter().zip(&total).collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (n, t) in rows.iter().take(12) {
        let ms = t.as_secs_f64() * 1e3 / ITERS as f64;
        eprintln!("{ms:>8.3} ms  {:<22} {:<40} {}", n.op, n.kernel, n.name);
    }
    eprintln!("fused per node:");

    // Per-node profile of the fused step.
    let mut fplan = trainer.fused_graph().compile(1).unwrap();
    let ins: Vec<Tensor> = fplan
        .inputs()
        .map(|i| match i.name.as_str() {
            "x" => x.clone(),
            "labels" => y.clone(),
            _ => Tensor::from_f32(vec![], vec![0.01]).unwrap(),
        })
        .collect();
    for round in 0..3 {
        let t0 = Instant::now();
        for _ in 0..ITERS {
            for (i, t) in ins.iter().enumerate() {
                fplan.set_input_tensor(i, t).unwrap();
            }
            fplan.execute().unwrap();
        }
        let a = t0.elapsed().as_secs_f64() / ITERS as f64 * 1e3;
        let t0 = Instant::now();
        for _ in 0..ITERS {
            host_step(&mut plan);
        }
        let b = t0.elapsed().as_secs_f64() / ITERS as f64 * 1e3;
        eprintln!("round {round}: fresh fused plan {a:.3} ms, host {b:.3} ms");
    }
    let mut times = vec![Duration::ZERO; fplan.num_steps()];
    let mut total = vec![Duration::ZERO; fplan.num_steps()];
    for _ in 0..ITERS {
        for (i, t) in ins.iter().enumerate() {
            fplan.set_input_tensor(i, t).unwrap();
        }
        fplan.execute_profiled(&mut times).unwrap();
        for (a, b) in total.iter_mut().zip(&times) {
            *a += *b;
        }
    }
    let mut rows: Vec<_> = fplan.report().nodes.iter().zip(&total).collect();
    rows.sort_by(|a, b| b.1.cmp(a.1));
    for (n, t) in rows.iter().take(15) {
        let ms = t.as_secs_f64() * 1e3 / ITERS as f64;
        eprintln!("{ms:>8.3} ms  {:<22} {:<40} {}", n.op, n.kernel, n.name);
    }
    let m = trainer.memory();
    eprintln!("{m:?}");
}
