//! The update ops against `torch.optim` (numbers from
//! `scripts/testgen/update_cases_gen.py`, pasted) and against naive host
//! arithmetic.
//!
//! Tolerance against PyTorch: both run the same f32 formulas, but PyTorch's
//! CPU kernels fuse some multiply-adds (`add_(x, alpha=a)` is an FMA) and
//! compute `lerp` its own way, so each step may differ by an ulp or two per
//! operation; over three steps on values of magnitude <= 1 that stays below
//! 1e-6 (about 8 ulps), while any wrong term (a missing bias correction,
//! decay applied twice) moves the weights by 1e-4 or more.

use whittle_ir::{Attr, Node, Tensor};

use super::super::DOMAIN;
use crate::{eval_node, Registry};

const SGD_PLAIN: [f32; 6] = [
    0.77393323,
    0.98438764,
    0.112020046,
    -0.7752302,
    -0.9518611,
    -0.21806057,
];
const SGD_MOMENTUM_WD: [f32; 6] = [
    0.7230219,
    1.0596901,
    0.07600109,
    -0.80225575,
    -0.9088365,
    -0.1956373,
];
const SGD_DAMPENING: [f32; 6] = [
    0.7866303,
    0.98447967,
    0.110428125,
    -0.7830802,
    -0.9329303,
    -0.24226496,
];
const SGD_NESTEROV: [f32; 6] = [
    0.76402646,
    1.004015,
    0.1025081,
    -0.783342,
    -0.9391486,
    -0.21655598,
];
const ADAM: [f32; 6] = [
    0.816471,
    0.93188965,
    0.12180376,
    -0.7674271,
    -0.9489528,
    -0.27793285,
];
const ADAM_WD: [f32; 6] = [
    0.81647456,
    0.9301319,
    0.121691935,
    -0.7642401,
    -0.9464191,
    -0.25692788,
];
const ADAMW: [f32; 6] = [
    0.81438905,
    0.9295984,
    0.1214709,
    -0.7655221,
    -0.9465721,
    -0.27722356,
];

fn f32t(shape: &[usize], v: Vec<f32>) -> Tensor {
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

fn w0() -> Tensor {
    f32t(
        &[3, 2],
        (0..6).map(|i| ((i + 1) as f64).sin() as f32).collect(),
    )
}

fn grad(t: usize) -> Tensor {
    let v = (0..6)
        .map(|i| (0.5 * ((i * (t + 2) + 1) as f64).cos()) as f32)
        .collect();
    f32t(&[3, 2], v)
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Node {
    let mut n = Node::new(op, op, inputs, outputs);
    n.domain = DOMAIN.to_string();
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    n
}

fn run(n: &Node, inputs: &[Option<Tensor>]) -> Vec<Tensor> {
    eval_node(&Registry::standard(), n, inputs, 1).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs three steps of `op` as update_cases_gen.py does: `slots` are the
/// state inputs after the mask (zeros, or the int64 counter), fed back from
/// the outputs after each step; the lr is halved before the third step.
fn three_steps(op: &str, lr: f32, attrs: &[(&str, Attr)], slots: &[&str]) -> Vec<f32> {
    let mut ins = vec!["w", "g", "lr", ""];
    ins.extend_from_slice(slots);
    let outs: Vec<String> = (0..=slots.len()).map(|k| format!("o{k}")).collect();
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let n = node(op, &ins, &outs, attrs);
    let mut state: Vec<Tensor> = vec![w0()];
    for s in slots {
        state.push(if *s == "step" {
            Tensor::vec_i64(vec![0])
        } else {
            Tensor::zeros(whittle_ir::DType::F32, vec![3, 2]).unwrap()
        });
    }
    for t in 0..3 {
        let lr = if t == 2 { lr * 0.5 } else { lr };
        let mut feed: Vec<Option<Tensor>> = vec![
            Some(state[0].clone()),
            Some(grad(t)),
            Some(f32t(&[], vec![lr])),
            None,
        ];
        feed.extend(state[1..].iter().cloned().map(Some));
        state = run(&n, &feed);
    }
    state[0].as_f32().unwrap().to_vec()
}

fn assert_near(got: &[f32], want: &[f32], tol: f32) {
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol, "element {i}: got {a}, want {b}");
    }
}

#[test]
fn sgd_matches_torch() {
    let f = Attr::Float;
    assert_near(&three_steps("SgdUpdate", 0.1, &[], &[]), &SGD_PLAIN, 1e-6);
    let a = [("momentum", f(0.9)), ("weight_decay", f(0.01))];
    assert_near(
        &three_steps("SgdUpdate", 0.1, &a, &["buf"]),
        &SGD_MOMENTUM_WD,
        1e-6,
    );
    let a = [("momentum", f(0.9)), ("dampening", f(0.1))];
    let got = three_steps("SgdUpdate", 0.05, &a, &["buf", "step"]);
    assert_near(&got, &SGD_DAMPENING, 1e-6);
    let a = [
        ("momentum", f(0.8)),
        ("nesterov", Attr::Int(1)),
        ("weight_decay", f(0.001)),
    ];
    assert_near(
        &three_steps("SgdUpdate", 0.05, &a, &["buf"]),
        &SGD_NESTEROV,
        1e-6,
    );
}

#[test]
fn adam_and_adamw_match_torch() {
    let slots = ["m", "v", "step"];
    assert_near(&three_steps("AdamUpdate", 0.01, &[], &slots), &ADAM, 1e-6);
    let a = [
        ("beta1", Attr::Float(0.8)),
        ("beta2", Attr::Float(0.99)),
        ("eps", Attr::Float(1e-6)),
        ("weight_decay", Attr::Float(0.1)),
    ];
    assert_near(&three_steps("AdamUpdate", 0.01, &a, &slots), &ADAM_WD, 1e-6);
    let a = [
        ("weight_decay", Attr::Float(0.1)),
        ("decoupled", Attr::Int(1)),
    ];
    assert_near(&three_steps("AdamUpdate", 0.01, &a, &slots), &ADAMW, 1e-6);
}

/// Naive host Adam step in f64 (textbook form with bias-corrected moments).
fn naive_adam(w: &mut [f64], m: &mut [f64], v: &mut [f64], g: &[f64], t: i32, lr: f64) {
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    for i in 0..w.len() {
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        let mh = m[i] / (1.0 - b1.powi(t));
        let vh = v[i] / (1.0 - b2.powi(t));
        w[i] -= lr * mh / (vh.sqrt() + eps);
    }
}

#[test]
fn adam_matches_naive_host_arithmetic_over_many_steps() {
    let n = node(
        "AdamUpdate",
        &["w", "g", "lr", "", "m", "v", "step"],
        &["w2", "m2", "v2", "s2"],
        &[],
    );
    let mut state = vec![
        w0(),
        Tensor::zeros(whittle_ir::DType::F32, vec![3, 2]).unwrap(),
        Tensor::zeros(whittle_ir::DType::F32, vec![3, 2]).unwrap(),
        Tensor::vec_i64(vec![0]),
    ];
    let mut w: Vec<f64> = w0().to_f64_vec();
    let (mut m, mut v) = (vec![0.0; 6], vec![0.0; 6]);
    for t in 0..20 {
        let g = grad(t);
        naive_adam(&mut w, &mut m, &mut v, &g.to_f64_vec(), t as i32 + 1, 0.01);
        let mut feed = vec![
            Some(state[0].clone()),
            Some(g),
            Some(f32t(&[1], vec![0.01])),
            None,
        ];
        feed.extend(state[1..].iter().cloned().map(Some));
        state = run(&n, &feed);
    }
    assert_eq!(state[3].as_i64().unwrap(), &[20]);
    let got: Vec<f32> = state[0].as_f32().unwrap().to_vec();
    let want: Vec<f32> = w.iter().map(|&x| x as f32).collect();
    // 20 steps of lr 0.01: f32 rounding stays within 1e-5 of f64.
    assert_near(&got, &want, 1e-5);
}

#[test]
fn mask_keeps_weights_zero_and_channels_limit_the_update() {
    let a = [("momentum", Attr::Float(0.9))];
    let full = node("SgdUpdate", &["w", "g", "lr", "", "b"], &["w2", "b2"], &a);
    let zeros = Tensor::zeros(whittle_ir::DType::F32, vec![3, 2]).unwrap();
    let lr = Some(f32t(&[], vec![0.1]));
    let out = run(
        &full,
        &[
            Some(w0()),
            Some(grad(0)),
            lr.clone(),
            None,
            Some(zeros.clone()),
        ],
    );
    let (w_full, b_full) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    // Naive: w - lr * g (the buffer starts at the first gradient).
    let want: Vec<f32> = w0()
        .as_f32()
        .unwrap()
        .iter()
        .zip(grad(0).as_f32().unwrap())
        .map(|(w, g)| w - 0.1 * g)
        .collect();
    assert_eq!(w_full, &want[..]);

    // Mask: element 1 and 4 masked -> exactly 0, their buffer untouched.
    let mask = f32t(&[3, 2], vec![1.0, 0.0, 1.0, 1.0, 0.0, 1.0]);
    let masked = node(
        "SgdUpdate",
        &["w", "g", "lr", "mask", "b"],
        &["w2", "b2"],
        &a,
    );
    let out = run(
        &masked,
        &[
            Some(w0()),
            Some(grad(0)),
            lr.clone(),
            Some(mask),
            Some(zeros.clone()),
        ],
    );
    let (w, b) = (out[0].as_f32().unwrap(), out[1].as_f32().unwrap());
    for i in 0..6 {
        if i == 1 || i == 4 {
            assert_eq!((w[i], b[i]), (0.0, 0.0));
        } else {
            assert_eq!((w[i], b[i]), (w_full[i], b_full[i]));
        }
    }

    // channels = 2: the first two rows (4 elements) move, the last stays;
    // the gradient may hold only those two rows.
    let a2 = [("momentum", Attr::Float(0.9)), ("channels", Attr::Int(2))];
    let part = node("SgdUpdate", &["w", "g", "lr", "", "b"], &["w2", "b2"], &a2);
    let g2 = f32t(&[2, 2], grad(0).as_f32().unwrap()[..4].to_vec());
    for g in [grad(0), g2] {
        let out = run(
            &part,
            &[Some(w0()), Some(g), lr.clone(), None, Some(zeros.clone())],
        );
        let w = out[0].as_f32().unwrap();
        assert_eq!(&w[..4], &w_full[..4]);
        assert_eq!(&w[4..], &w0().as_f32().unwrap()[4..]);
    }
}

#[test]
fn bad_update_nodes_are_rejected() {
    let lr = Some(f32t(&[], vec![0.1]));
    let zeros = Some(Tensor::zeros(whittle_ir::DType::F32, vec![3, 2]).unwrap());
    let reg = Registry::standard();
    let expect_err = |n: &Node, ins: &[Option<Tensor>], what: &str| {
        let e = eval_node(&reg, n, ins, 1).expect_err(what).to_string();
        assert!(e.contains(what), "{e}");
    };
    // Momentum without its buffer.
    let n = node(
        "SgdUpdate",
        &["w", "g", "lr"],
        &["w2"],
        &[("momentum", Attr::Float(0.9))],
    );
    expect_err(
        &n,
        &[Some(w0()), Some(grad(0)), lr.clone()],
        "optimizer slot",
    );
    // Gradient of another shape.
    let n = node("SgdUpdate", &["w", "g", "lr"], &["w2"], &[]);
    let g = Some(f32t(&[2, 3], vec![0.0; 6]));
    expect_err(&n, &[Some(w0()), g, lr.clone()], "gradient shape");
    // channels out of range.
    let n = node(
        "SgdUpdate",
        &["w", "g", "lr"],
        &["w2"],
        &[("channels", Attr::Int(4))],
    );
    expect_err(&n, &[Some(w0()), Some(grad(0)), lr.clone()], "channels");
    // Adam without its counter.
    let n = node(
        "AdamUpdate",
        &["w", "g", "lr", "", "m", "v"],
        &["a", "b", "c", "d"],
        &[],
    );
    expect_err(
        &n,
        &[Some(w0()), Some(grad(0)), lr, None, zeros.clone(), zeros],
        "step counter",
    );
}

#[test]
fn batchnorm_stats_fold_like_pytorch() {
    // Channel 0 sees [1, 2, 3, 6], channel 1 sees [0, 0, 4, 4] (count 4).
    // Biased variances 3.5 and 4; unbiased 14/3 and 16/3. PyTorch with
    // momentum 0.1 (ONNX momentum 0.9): running = 0.9 * running + 0.1 * x.
    let eps = 1e-5f32;
    let mean = f32t(&[2], vec![3.0, 2.0]);
    let inv = f32t(
        &[2],
        vec![1.0 / (3.5f32 + eps).sqrt(), 1.0 / (4.0f32 + eps).sqrt()],
    );
    let n = node(
        "BatchNormStatsUpdate",
        &["rm", "rv", "m", "i"],
        &["rm2", "rv2"],
        &[("momentum", Attr::Float(0.9)), ("count", Attr::Int(4))],
    );
    let out = run(
        &n,
        &[
            Some(f32t(&[2], vec![0.0, 1.0])),
            Some(f32t(&[2], vec![1.0, 2.0])),
            Some(mean),
            Some(inv),
        ],
    );
    assert_near(out[0].as_f32().unwrap(), &[0.3, 1.1], 1e-6);
    let want = [0.9 + 0.1 * 14.0 / 3.0, 1.8 + 0.1 * 16.0 / 3.0];
    assert_near(out[1].as_f32().unwrap(), &want, 1e-5);
}
