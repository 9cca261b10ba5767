//! Fused in-place updates: the Trainer (weights, optimizer slots and
//! running statistics resident in the plan, updated by graph nodes right
//! after each gradient) against the previous host-side optimizer path and
//! against PyTorch (scripts/make_step_refs.py), plus bit-exact resume, the
//! partial-batch plan, and the memory report.

mod common;

use common::{assert_close, data_dir, npy};
use whittle_ir::{Graph, Tensor};
use whittle_onnx::load_model;
use whittle_train::{
    build_training_graph, default_trainable, Adam, FuseOptions, Loss, Optimizer, Sgd, TrainSpec,
    Trainer, TrainerOptions,
};

const STEPS: usize = 5;

fn lenet() -> (Graph, TrainSpec) {
    let g = load_model(&data_dir("lenet_bn").join("model.onnx")).unwrap();
    let spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        default_trainable(&g),
    );
    (g, spec)
}

fn opts(batch: usize) -> TrainerOptions {
    TrainerOptions {
        threads: 1,
        batch_size: batch,
    }
}

/// Runs the schedule of make_step_refs.py: STEPS steps on the fixture
/// batch, the learning rate halved before the last.
fn train_fused(opt: Box<dyn Optimizer>) -> Trainer {
    let (g, spec) = lenet();
    let lr = opt.lr();
    let mut t = Trainer::new(&g, &spec, opt, &opts(4)).unwrap();
    let (x, y) = (npy("lenet_bn", "x"), npy("lenet_bn", "labels"));
    for s in 0..STEPS {
        if s == STEPS - 1 {
            t.set_learning_rate(lr * 0.5);
        }
        t.step(&x, &y).unwrap();
    }
    t
}

/// The previous path: the training graph outputs every gradient and the
/// batch statistics; the host updates the weights and running statistics.
enum Host {
    Sgd(Sgd),
    Adam(Adam),
}

fn train_host(mut opt: Host) -> Graph {
    let (mut g, mut spec) = lenet();
    spec.input_shapes.insert("x".into(), vec![4, 1, 28, 28]);
    let tg = build_training_graph(&g, &spec).unwrap();
    let mut plan = tg.compile(1).unwrap();
    let (x, y) = (npy("lenet_bn", "x"), npy("lenet_bn", "labels"));
    let mut weights: Vec<Tensor> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let slot = |name: &str| plan.inputs().position(|i| i.name == name).unwrap();
    let slots: Vec<usize> = tg.initial.iter().map(|(w, _)| slot(w)).collect();
    let (xs, ys) = (slot("x"), slot(&tg.labels));
    for s in 0..STEPS {
        plan.set_input_tensor(xs, &x).unwrap();
        plan.set_input_tensor(ys, &y).unwrap();
        for (k, w) in slots.iter().zip(&weights) {
            plan.set_input_tensor(*k, w).unwrap();
        }
        plan.execute().unwrap();
        let grads: Vec<Vec<f32>> = (0..weights.len())
            .map(|i| plan.output(1 + i).unwrap().f32().to_vec())
            .collect();
        let grads: Vec<&[f32]> = grads.iter().map(Vec::as_slice).collect();
        let half = s == STEPS - 1;
        match &mut opt {
            Host::Sgd(o) => {
                if half {
                    o.lr *= 0.5;
                }
                o.step(&mut weights, &grads)
            }
            Host::Adam(o) => {
                if half {
                    o.lr *= 0.5;
                }
                o.step(&mut weights, &grads)
            }
        }
        // Running statistics as the old trainer folded them (count N*H*W).
        let first = 1 + weights.len();
        for (k, st) in tg.batchnorm.iter().enumerate() {
            let mean = plan.output(first + 2 * k).unwrap().f32();
            let inv = plan.output(first + 2 * k + 1).unwrap().f32();
            let n = if k == 0 {
                4.0 * 28.0 * 28.0
            } else {
                4.0 * 10.0 * 10.0f32
            };
            let m = st.momentum;
            let rm = g.initializers.get_mut(&st.running_mean).unwrap();
            for (r, &b) in rm.as_f32_mut().unwrap().iter_mut().zip(mean) {
                *r = m * *r + (1.0 - m) * b;
            }
            let rv = g.initializers.get_mut(&st.running_var).unwrap();
            for (r, &i) in rv.as_f32_mut().unwrap().iter_mut().zip(inv) {
                let var = (1.0 / (i * i) - st.epsilon).max(0.0) * n / (n - 1.0);
                *r = m * *r + (1.0 - m) * var;
            }
        }
    }
    for ((name, _), w) in tg.initial.iter().zip(weights) {
        g.initializers.insert(name.clone(), w);
    }
    g
}

fn tensors_of(g: &Graph) -> Vec<(String, Tensor)> {
    let (_, spec) = lenet();
    let mut names = spec.trainable.clone();
    for bn in ["bn1", "bn2"] {
        names.push(format!("{bn}.running_mean"));
        names.push(format!("{bn}.running_var"));
    }
    names
        .into_iter()
        .map(|n| {
            let t = g.initializers[&n].clone();
            (n, t)
        })
        .collect()
}

/// SGD: the fused kernel and the host step run the same f32 operations in
/// the same order on the same gradients (the backward kernels are
/// deterministic and the gradient values do not depend on where the
/// update runs), so the weights must match exactly.
#[test]
fn fused_sgd_equals_the_host_path_exactly() {
    let fused = train_fused(Box::new(Sgd::new(0.05, 0.9))).trained_graph();
    let host = train_host(Host::Sgd(Sgd::new(0.05, 0.9)));
    for ((name, a), (_, b)) in tensors_of(&fused).iter().zip(tensors_of(&host)) {
        assert_eq!(a.as_f32().unwrap(), b.as_f32().unwrap(), "{name}");
    }
}

/// Whether Adam's result for `name` is rounding noise: a conv bias feeding
/// a train-mode BatchNorm has a zero true gradient (the mean subtraction
/// cancels it), so its computed gradient is f32 noise (~1e-9) that Adam
/// normalises into steps of about +-lr whose signs change with any
/// last-bit difference elsewhere; the running means include those biases.
fn adam_noise(name: &str) -> bool {
    (name.starts_with("conv") && name.ends_with(".bias")) || name.ends_with(".running_mean")
}

/// Adam: given the same weights both paths compute bit-identical gradients
/// (checked during development), but the host step divides bias-corrected
/// moments (`m / (1 - b1^t)`, f32 powers) while the fused kernel follows
/// PyTorch (`lr / (1 - b1^t)` in f64, then `m / (sqrt(v) / sqrt(bc2) +
/// eps)`): a few ulps per step of an update of at most lr = 1e-3, i.e.
/// < 1e-8 per step and per weight; 1e-7 absolute leaves room for 5 steps.
/// Noise-driven tensors (see [`adam_noise`]) are skipped.
#[test]
fn fused_adam_matches_the_host_path() {
    let fused = train_fused(Box::new(Adam::new(1e-3))).trained_graph();
    let host = train_host(Host::Adam(Adam::new(1e-3)));
    for ((name, a), (_, b)) in tensors_of(&fused).iter().zip(tensors_of(&host)) {
        if adam_noise(name) {
            continue;
        }
        let d = a
            .to_f64_vec()
            .iter()
            .zip(b.to_f64_vec())
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(d <= 1e-7, "{name}: differs by {d}");
    }
}

/// Against PyTorch: gradients agree to ~1e-6 relative (torch_refs.rs), so
/// after 5 SGD steps of lr 0.05 the weights agree to well under 1e-4 of
/// each tensor's scale. For Adam the noise-driven tensors (see
/// [`adam_noise`]) are skipped; for the others 1e-4 relative holds.
/// Running statistics use PyTorch's unbiased variance.
#[test]
fn fused_training_matches_pytorch() {
    for (opt, name) in [
        (Box::new(Sgd::new(0.05, 0.9)) as Box<dyn Optimizer>, "sgd"),
        (Box::new(Adam::new(1e-3)), "adam"),
    ] {
        let g = train_fused(opt).trained_graph();
        for (w, t) in tensors_of(&g) {
            if name == "adam" && adam_noise(&w) {
                continue;
            }
            let want = npy("lenet_bn", &format!("steps/{name}.{w}"));
            assert_close(&format!("{name} {w}"), &t, &want, 1e-4);
        }
    }
}

/// Kill-and-resume: 3 steps, state out, a fresh trainer loads it and runs
/// 3 more; the result equals 6 uninterrupted steps bit for bit (Adam's
/// step counters and the running statistics included).
#[test]
fn load_state_resumes_bit_exactly() {
    let (g, spec) = lenet();
    let (x, y) = (npy("lenet_bn", "x"), npy("lenet_bn", "labels"));
    let mut a = Trainer::new(&g, &spec, Box::new(Adam::new(1e-3)), &opts(4)).unwrap();
    for _ in 0..6 {
        a.step(&x, &y).unwrap();
    }
    let mut b = Trainer::new(&g, &spec, Box::new(Adam::new(1e-3)), &opts(4)).unwrap();
    for _ in 0..3 {
        b.step(&x, &y).unwrap();
    }
    let saved = b.state();
    assert_eq!(saved.step, 3);
    assert!(saved.tensors.iter().any(|(n, _)| n == "fc1.weight.adam_m"));
    assert!(saved.tensors.iter().any(|(n, _)| n == "bn1.running_var"));
    let mut c = Trainer::new(&g, &spec, Box::new(Adam::new(1e-3)), &opts(4)).unwrap();
    c.load_state(&saved).unwrap();
    for _ in 0..3 {
        c.step(&x, &y).unwrap();
    }
    assert_eq!(a.state(), c.state());

    // Mismatches are errors.
    let mut bad = saved.clone();
    bad.tensors[0].1 = Tensor::zeros(whittle_ir::DType::F32, vec![1]).unwrap();
    assert!(c
        .load_state(&bad)
        .unwrap_err()
        .to_string()
        .contains("expected"));
    let mut bad = saved.clone();
    bad.tensors.pop();
    assert!(c
        .load_state(&bad)
        .unwrap_err()
        .to_string()
        .contains("lacks"));
    let mut sgd = Trainer::new(&g, &spec, Box::new(Sgd::new(0.1, 0.9)), &opts(4)).unwrap();
    let err = sgd.load_state(&saved).unwrap_err().to_string();
    assert!(err.contains("adam"), "{err}");
}

/// A batch of another size runs on a second plan with the state moved
/// over and back: same weights as a trainer compiled for that size.
#[test]
fn partial_batch_trains_on_a_second_plan() {
    let (g, spec) = lenet();
    let (x, y) = (npy("lenet_bn", "x"), npy("lenet_bn", "labels"));
    let x3 = Tensor::from_f32(vec![3, 1, 28, 28], x.as_f32().unwrap()[..3 * 784].to_vec()).unwrap();
    let y3 = Tensor::vec_i64(y.as_i64().unwrap()[..3].to_vec());
    let mut a = Trainer::new(&g, &spec, Box::new(Sgd::new(0.05, 0.9)), &opts(4)).unwrap();
    a.step(&x, &y).unwrap();
    let st = a.step(&x3, &y3).unwrap();
    assert_eq!(st.samples, 3);
    a.step(&x, &y).unwrap();
    assert_eq!(a.steps(), 3);

    let mut b4 = Trainer::new(&g, &spec, Box::new(Sgd::new(0.05, 0.9)), &opts(4)).unwrap();
    b4.step(&x, &y).unwrap();
    let mut b3 = Trainer::new(&g, &spec, Box::new(Sgd::new(0.05, 0.9)), &opts(3)).unwrap();
    b3.load_state(&b4.state()).unwrap();
    b3.step(&x3, &y3).unwrap();
    b4.load_state(&b3.state()).unwrap();
    b4.step(&x, &y).unwrap();
    assert_eq!(a.state(), b4.state());
}

/// With `keep_grads` the fused graph still outputs every gradient, equal to
/// PyTorch's (the updates run after each gradient is complete).
#[test]
fn kept_gradients_match_pytorch() {
    let (g, spec) = lenet();
    let fuse = FuseOptions {
        keep_grads: true,
        ..FuseOptions::default()
    };
    let t = Trainer::with_fuse_options(&g, &spec, Box::new(Sgd::new(0.0, 0.0)), &opts(4), fuse);
    let mut t = t.unwrap();
    t.step(&npy("lenet_bn", "x"), &npy("lenet_bn", "labels"))
        .unwrap();
    let plan = t.plan();
    for (w, gname) in &t.training_graph().grads {
        let k = plan.outputs().position(|o| o.name == *gname).unwrap();
        let v = plan.output(k).unwrap().f32().to_vec();
        let got = Tensor::from_f32(npy("lenet_bn", &format!("grad.{w}")).shape().to_vec(), v);
        assert_close(
            w,
            &got.unwrap(),
            &npy("lenet_bn", &format!("grad.{w}")),
            1e-4,
        );
    }
}

/// Fusing keeps at most a few gradients alive at once; keeping them all
/// costs their total, and the planned peak shows it.
#[test]
fn fused_updates_shrink_gradient_memory() {
    let (g, spec) = lenet();
    let opt = Sgd::new(0.05, 0.9);
    let fused = whittle_train::plan_training_memory(&g, &spec, &opt, 4).unwrap();
    let keep = FuseOptions {
        keep_grads: true,
        ..FuseOptions::default()
    };
    let kept = whittle_train::plan_training_memory_with(&g, &spec, &opt, 4, &keep).unwrap();
    let total_grads: usize = spec
        .trainable
        .iter()
        .map(|w| g.initializers[w].byte_size())
        .sum();
    let largest = spec
        .trainable
        .iter()
        .map(|w| g.initializers[w].byte_size())
        .max()
        .unwrap();
    assert_eq!(kept.gradients, total_grads, "{kept:?}");
    // LeNet's fc1.weight is 81% of all gradient bytes: fused, the peak is
    // that one gradient (plus at most a small one being produced).
    assert!(fused.gradients >= largest, "{fused:?}");
    assert!(fused.gradients < total_grads, "{fused:?}");
    // At batch 4 LeNet's peak comes earlier in the backward pass (conv
    // activations and im2col workspace), before the gradients pile up, so
    // fusing cannot lower it here; examples/train_memory.rs shows models
    // where it does.
    assert!(fused.peak <= kept.peak, "{fused:?} vs {kept:?}");
    // Momentum: one f32 slot per weight.
    assert_eq!(fused.optimizer_state, total_grads);
    assert!(fused.kept_activations > 0 && fused.workspace > 0);
}
