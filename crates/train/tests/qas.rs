//! int8 training with quantization-aware scaling on a tiny hand-built QDQ
//! model: the gradients through DequantizeLinear and QuantizeLinear, and
//! the fused QAS update against float SGD and a host reference.

mod common;

use common::run_training_graph;
use whittle_ir::{Attr, DType, Graph, Node, Tensor, TensorData, ValueInfo};
use whittle_train::{
    build_training_graph, quantized_tensors, FuseOptions, Loss, QasSgd, QuantTensor, Rounding, Sgd,
    TrainSpec, Trainer, TrainerOptions,
};

const N: usize = 4;

fn rng(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

fn ints8(shape: &[usize], seed: &mut u64) -> Tensor {
    let n = shape.iter().product();
    let v = (0..n).map(|_| (rng(seed) * 120.0) as i8).collect();
    Tensor::new(shape.to_vec(), TensorData::I8(v)).unwrap()
}

fn ints32(shape: &[usize], seed: &mut u64) -> Tensor {
    let n = shape.iter().product();
    let v = (0..n).map(|_| (rng(seed) * 3000.0) as i32).collect();
    Tensor::new(shape.to_vec(), TensorData::I32(v)).unwrap()
}

fn dq(name: &str, q: &str, s: &str, axis: i64) -> Node {
    Node::new(name, "DequantizeLinear", &[q, s], &[&format!("{q}.f")])
        .with_attr("axis", Attr::Int(axis))
}

/// x [N,1,4,4] -> Conv 3x3 (int8 per-channel weight, int32 bias) -> Relu
/// -> Q/DQ (int8, zero point -128) -> Flatten -> Gemm (int8 weight, int32
/// bias) -> logits [N,3]. Input scale 1/64, so bias scales are s_W / 64.
fn tiny_qdq() -> Graph {
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut g = Graph {
        name: "tiny_qdq".into(),
        inputs: vec![ValueInfo::known("x", DType::F32, &[N, 1, 4, 4])],
        outputs: vec![ValueInfo::known("logits", DType::F32, &[N, 3])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    let sw1 = vec![0.011f32, 0.007];
    let sw2 = vec![0.004f32, 0.006, 0.005];
    let sx = 1.0 / 64.0;
    let init = &mut g.initializers;
    init.insert("w1".into(), ints8(&[2, 1, 3, 3], &mut seed));
    init.insert("b1".into(), ints32(&[2], &mut seed));
    init.insert("w2".into(), ints8(&[3, 32], &mut seed));
    init.insert("b2".into(), ints32(&[3], &mut seed));
    init.insert(
        "w1.s".into(),
        Tensor::from_f32(vec![2], sw1.clone()).unwrap(),
    );
    init.insert(
        "b1.s".into(),
        Tensor::from_f32(vec![2], sw1.iter().map(|s| s * sx).collect()).unwrap(),
    );
    init.insert(
        "w2.s".into(),
        Tensor::from_f32(vec![3], sw2.clone()).unwrap(),
    );
    init.insert(
        "b2.s".into(),
        Tensor::from_f32(vec![3], sw2.iter().map(|s| s * 0.02).collect()).unwrap(),
    );
    init.insert("a.s".into(), Tensor::scalar_f32(0.02));
    init.insert(
        "a.zp".into(),
        Tensor::new(vec![], TensorData::I8(vec![-128])).unwrap(),
    );
    g.nodes = vec![
        dq("dq_w1", "w1", "w1.s", 0),
        dq("dq_b1", "b1", "b1.s", 0),
        Node::new("conv", "Conv", &["x", "w1.f", "b1.f"], &["c"])
            .with_attr("pads", Attr::Ints(vec![1, 1, 1, 1])),
        Node::new("relu", "Relu", &["c"], &["r"]),
        Node::new("q", "QuantizeLinear", &["r", "a.s", "a.zp"], &["rq"]),
        Node::new("dq", "DequantizeLinear", &["rq", "a.s", "a.zp"], &["rf"]),
        Node::new("flat", "Flatten", &["rf"], &["h"]),
        dq("dq_w2", "w2", "w2.s", 0),
        dq("dq_b2", "b2", "b2.s", 0),
        Node::new("fc", "Gemm", &["h", "w2.f", "b2.f"], &["logits"])
            .with_attr("transB", Attr::Int(1)),
    ];
    g
}

/// The float twin: each trainable integer tensor's DequantizeLinear
/// replaced by an f32 initializer `s * q` under the DQ output's name.
fn float_twin(g: &Graph, ints: &[&str]) -> Graph {
    let mut f = g.clone();
    for q in quantized_tensors(g)
        .into_iter()
        .filter(|q| ints.contains(&q.name.as_str()))
    {
        let vals = g.initializers[&q.name].to_f32_vec();
        let real = vals
            .iter()
            .enumerate()
            .map(|(i, v)| v * q.scale_of(i))
            .collect();
        let out = format!("{}.f", q.name);
        f.nodes.retain(|n| !n.outputs.contains(&out));
        f.initializers
            .insert(out, Tensor::from_f32(q.shape.clone(), real).unwrap());
    }
    f.prune_unused_initializers();
    f
}

fn batch() -> (Tensor, Tensor) {
    let mut seed = 0xfeed_beefu64;
    let x = (0..N * 16).map(|_| rng(&mut seed) * 2.0).collect();
    (
        Tensor::from_f32(vec![N, 1, 4, 4], x).unwrap(),
        Tensor::from_i64(vec![N], vec![0, 1, 2, 1]).unwrap(),
    )
}

fn spec(trainable: &[&str]) -> TrainSpec {
    TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        trainable.iter().map(|s| s.to_string()).collect(),
    )
}

const INTS: [&str; 4] = ["w1", "b1", "w2", "b2"];
const FLOATS: [&str; 4] = ["w1.f", "b1.f", "w2.f", "b2.f"];

/// Gradients of the quantized graph and its float twin, per tensor.
fn gradients() -> (Graph, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let g = tiny_qdq();
    let f = float_twin(&g, &INTS);
    let (x, y) = batch();
    let feeds = [("x", x), ("labels", y)];
    let tq = build_training_graph(&g, &spec(&INTS)).unwrap();
    let tf = build_training_graph(&f, &spec(&FLOATS)).unwrap();
    // The backward pass re-dequantizes the int8 weights it reads rather
    // than keeping their f32 forward copies alive.
    let remat: Vec<_> = tq
        .graph
        .nodes
        .iter()
        .filter(|n| n.name.ends_with(".remat"))
        .collect();
    assert!(
        remat.iter().any(|n| n.inputs[0] == "w2"),
        "no DequantizeLinear recomputed for the backward pass"
    );
    let wq: Vec<Tensor> = tq.initial.iter().map(|(_, t)| t.clone()).collect();
    let wf: Vec<Tensor> = tf.initial.iter().map(|(_, t)| t.clone()).collect();
    let oq = run_training_graph(&tq, &feeds, &wq);
    let of = run_training_graph(&tf, &feeds, &wf);
    // Same forward: same loss.
    let (lq, lf) = (oq[0].as_f32().unwrap()[0], of[0].as_f32().unwrap()[0]);
    assert!((lq - lf).abs() < 1e-5, "loss {lq} vs {lf}");
    let grads = |o: &[Tensor]| {
        (1..=4)
            .map(|i| o[i].as_f32().unwrap().to_vec())
            .collect::<Vec<_>>()
    };
    (g, grads(&oq), grads(&of))
}

#[test]
fn integer_gradient_is_scale_times_float_gradient() {
    let (g, gq, gf) = gradients();
    let qs = quantized_tensors(&g);
    for (k, name) in INTS.iter().enumerate() {
        let q = qs.iter().find(|q| q.name == *name).unwrap();
        let peak = gf[k].iter().fold(0f32, |a, b| a.max(b.abs()));
        assert!(peak > 0.0, "{name}: zero gradient");
        for (i, (a, b)) in gq[k].iter().zip(&gf[k]).enumerate() {
            let want = q.scale_of(i) * b;
            assert!(
                (a - want).abs() <= 1e-5 * q.scale_of(i) * peak + 1e-12,
                "{name}[{i}]: {a} vs s * {b} = {want}"
            );
        }
    }
}

fn trainer(g: &Graph, opt: QasSgd, keep_grads: bool) -> Trainer {
    let opts = TrainerOptions {
        threads: 1,
        batch_size: N,
    };
    let fuse = FuseOptions {
        keep_grads,
        ..FuseOptions::default()
    };
    Trainer::with_fuse_options(g, &spec(&INTS), Box::new(opt), &opts, fuse)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Integer (or f32) values as f64, exactly.
fn exact(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        _ => t.to_f32_vec().into_iter().map(f64::from).collect(),
    }
}

fn values(t: &Trainer) -> Vec<Vec<f64>> {
    t.weights().iter().map(|(_, w)| exact(w)).collect()
}

/// The host reference of QAS-SGD (the rule of the old host optimizer):
/// per element, `v = momentum · v + g · s^-2` (v starts at the first
/// scaled gradient), `w = clamp(round(w - lr · v))`, stochastic rounding
/// drawing from the same counter-based hash as the fused node.
struct HostQas {
    lr: f32,
    momentum: f32,
    qas: bool,
    seed: Option<u64>,
    bufs: Vec<Vec<f32>>,
    step: i64,
}

impl HostQas {
    fn step(&mut self, params: &[Option<QuantTensor>], w: &mut [Vec<f64>], grads: &[Vec<f32>]) {
        self.step += 1;
        if self.bufs.is_empty() {
            self.bufs = w.iter().map(|w| vec![0.0; w.len()]).collect();
        }
        for (k, q) in params.iter().enumerate() {
            let q = q.as_ref().unwrap();
            let (lo, hi) = q.range();
            let key = self
                .seed
                .map(|s| whittle_runtime::ops::grad::rounding_key(s, &q.name));
            for i in 0..w[k].len() {
                let s = f64::from(q.scale_of(i));
                let inv = if self.qas {
                    (1.0 / (s * s)) as f32
                } else {
                    1.0
                };
                let gs = grads[k][i] * inv;
                let b = &mut self.bufs[k][i];
                *b = if self.step == 1 {
                    gs
                } else {
                    self.momentum * *b + gs
                };
                let d = if self.momentum == 0.0 { gs } else { *b };
                let x = w[k][i] - f64::from(self.lr) * f64::from(d);
                let r = match key {
                    None => x.round(),
                    Some(key) => {
                        (x + whittle_runtime::ops::grad::rounding_uniform(key, self.step, i))
                            .floor()
                    }
                };
                w[k][i] = r.clamp(lo, hi);
            }
        }
    }
}

/// One fused QAS step moves each integer value by the float SGD step
/// divided by its scale, rounded to nearest; without QAS by s^2 times
/// less (here: nothing moves).
#[test]
fn qas_update_is_float_update_over_scale() {
    let (g, gq, gf) = gradients();
    let trainable: Vec<String> = INTS.iter().map(|s| s.to_string()).collect();
    let lr = 0.05;
    let init: Vec<Tensor> = INTS.iter().map(|n| g.initializers[*n].clone()).collect();

    let mut float_w: Vec<Tensor> = FLOATS
        .iter()
        .map(|n| float_twin(&g, &INTS).initializers[*n].clone())
        .collect();
    let before: Vec<Vec<f32>> = float_w.iter().map(|t| t.to_f32_vec()).collect();
    let fg: Vec<&[f32]> = gf.iter().map(Vec::as_slice).collect();
    Sgd::new(lr, 0.0).step(&mut float_w, &fg);

    let (x, y) = batch();
    let opt = QasSgd::new(&g, &trainable, lr, 0.0)
        .unwrap()
        .with_rounding(Rounding::Nearest);
    let params = opt.params().to_vec();
    let mut t = trainer(&g, opt.clone(), false);
    t.step(&x, &y).unwrap();
    let with = values(&t);
    let mut t = trainer(&g, opt.with_qas(false), false);
    t.step(&x, &y).unwrap();
    let without = values(&t);

    let mut moved = 0;
    for k in 0..INTS.len() {
        let q = params[k].as_ref().unwrap();
        let (lo, hi) = q.range();
        let q0 = exact(&init[k]);
        let f1 = float_w[k].to_f32_vec();
        for i in 0..q0.len() {
            let s = q.scale_of(i);
            let want = (q0[i] + f64::from(f1[i] - before[k][i]) / f64::from(s)).clamp(lo, hi);
            assert!(
                (with[k][i] - want).abs() <= 0.5 + 1e-3,
                "{}[{i}]: {} -> {}, float step / s = {want}",
                INTS[k],
                q0[i],
                with[k][i]
            );
            moved += usize::from(with[k][i] != q0[i]);
            // Without QAS the step is lr * s * g: far under one unit here.
            let raw = q0[i] - f64::from(lr) * f64::from(gq[k][i]);
            assert_eq!(without[k][i], raw.round().clamp(lo, hi));
        }
    }
    assert!(moved > 10, "only {moved} values moved");
}

/// Several fused steps (momentum, stochastic rounding, weights updated in
/// place in the arena) equal the host reference fed the same gradients;
/// nearest rounding and QAS off too.
#[test]
fn fused_qas_matches_host_reference_over_steps() {
    let g = tiny_qdq();
    let trainable: Vec<String> = INTS.iter().map(|s| s.to_string()).collect();
    let (x, y) = batch();
    for (rounding, qas) in [
        (Rounding::Stochastic { seed: 5 }, true),
        (Rounding::Nearest, true),
        (Rounding::Stochastic { seed: 9 }, false),
    ] {
        let opt = QasSgd::new(&g, &trainable, 0.05, 0.9)
            .unwrap()
            .with_rounding(rounding)
            .with_qas(qas);
        let params = opt.params().to_vec();
        let mut t = trainer(&g, opt, true);
        let mut host = HostQas {
            lr: 0.05,
            momentum: 0.9,
            qas,
            seed: match rounding {
                Rounding::Stochastic { seed } => Some(seed),
                Rounding::Nearest => None,
            },
            bufs: Vec::new(),
            step: 0,
        };
        let mut want = values(&t);
        let mut moved = 0;
        for _ in 0..5 {
            t.step(&x, &y).unwrap();
            let plan = t.plan();
            let grads: Vec<Vec<f32>> = t
                .training_graph()
                .grads
                .iter()
                .map(|(_, gname)| {
                    let i = plan.outputs().position(|o| o.name == *gname).unwrap();
                    plan.output(i).unwrap().f32().to_vec()
                })
                .collect();
            let before = want.clone();
            host.step(&params, &mut want, &grads);
            let got = values(&t);
            assert_eq!(got, want, "{rounding:?}, qas {qas}");
            moved += got
                .iter()
                .flatten()
                .zip(before.iter().flatten())
                .filter(|(a, b)| a != b)
                .count();
        }
        if qas {
            assert!(moved > 20, "{rounding:?}: only {moved} moves");
        }
    }
}

/// A run stopped after 3 steps and resumed from its state (weights,
/// momentum, step count) ends where an uninterrupted run of 6 ends:
/// stochastic rounding keys on the step counter, not on generator state.
#[test]
fn qas_training_resumes_bit_exactly() {
    let g = tiny_qdq();
    let trainable: Vec<String> = INTS.iter().map(|s| s.to_string()).collect();
    let opt = || QasSgd::new(&g, &trainable, 0.05, 0.9).unwrap();
    let (x, y) = batch();
    let mut full = trainer(&g, opt(), false);
    for _ in 0..6 {
        full.step(&x, &y).unwrap();
    }
    let mut first = trainer(&g, opt(), false);
    for _ in 0..3 {
        first.step(&x, &y).unwrap();
    }
    let state = first.state();
    drop(first);
    let mut resumed = trainer(&g, opt(), false);
    resumed.load_state(&state).unwrap();
    for _ in 0..3 {
        resumed.step(&x, &y).unwrap();
    }
    assert_eq!(values(&resumed), values(&full));
    assert_ne!(values(&full), values(&trainer(&g, opt(), false)));
}

/// QuantizeLinear -> DequantizeLinear passes the gradient straight through
/// inside the representable range and blocks it where the clamp saturates.
#[test]
fn fake_quant_pair_is_straight_through() {
    let mut g = Graph {
        name: "qdq_pair".into(),
        inputs: vec![ValueInfo::known("inp", DType::F32, &[6])],
        outputs: vec![ValueInfo::known("y", DType::F32, &[6])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    // int8, scale 0.1, zero point 10: representable [-13.8, 11.7].
    let xs = vec![-20.0f32, -13.9, -5.04, 0.33, 11.6, 30.0];
    g.initializers
        .insert("p".into(), Tensor::from_f32(vec![6], xs.clone()).unwrap());
    g.initializers.insert("s".into(), Tensor::scalar_f32(0.1));
    g.initializers.insert(
        "zp".into(),
        Tensor::new(vec![], TensorData::I8(vec![10])).unwrap(),
    );
    g.nodes = vec![
        Node::new("add", "Add", &["inp", "p"], &["x"]),
        Node::new("q", "QuantizeLinear", &["x", "s", "zp"], &["xq"]),
        Node::new("dq", "DequantizeLinear", &["xq", "s", "zp"], &["y"]),
    ];
    let spec = TrainSpec::new(
        Loss::Mse {
            output: "y".into(),
            target: "t".into(),
        },
        vec!["p".into()],
    );
    let tg = build_training_graph(&g, &spec).unwrap();
    let target = vec![1.0f32; 6];
    let out = run_training_graph(
        &tg,
        &[
            ("inp", Tensor::zeros(DType::F32, vec![6]).unwrap()),
            ("t", Tensor::from_f32(vec![6], target.clone()).unwrap()),
        ],
        &[Tensor::from_f32(vec![6], xs.clone()).unwrap()],
    );
    let grad = out[1].as_f32().unwrap();
    for (i, &x) in xs.iter().enumerate() {
        // Forward by the ONNX formula, saturating to int8.
        let q = ((x / 0.1).round_ties_even() + 10.0).clamp(-128.0, 127.0);
        let y = (q - 10.0) * 0.1;
        let inside = (-128.5..127.5).contains(&((x / 0.1) + 10.0));
        let want = if inside {
            2.0 * (y - target[i]) / 6.0
        } else {
            0.0
        };
        assert!(
            (grad[i] - want).abs() < 1e-5,
            "x = {x}: grad {} want {want}",
            grad[i]
        );
    }
}

#[test]
fn integer_tensor_outside_dequantize_is_refused() {
    let mut g = tiny_qdq();
    // The activation zero point is an integer initializer read by Q and DQ.
    let err = build_training_graph(&g, &spec(&["a.zp"])).unwrap_err();
    assert!(err.to_string().contains("not f32"), "{err}");
    // Scales are f32 but feed DequantizeLinear's scale input.
    let err = build_training_graph(&g, &spec(&["w1.s"])).unwrap_err();
    assert!(err.to_string().contains("scales"), "{err}");
    g.nodes.retain(|n| n.name != "dq_w2");
    assert!(QasSgd::new(&g, &["nope".into()], 0.1, 0.0).is_err());
}
