//! `QasSgdUpdate` against a naive host reference: the QAS-SGD rule written
//! out element by element in f64 (momentum buffer in f32 as the op keeps
//! it), plus the properties stochastic rounding must have.

use whittle_ir::{Attr, DType, Node, Tensor, TensorData};

use super::super::DOMAIN;
use super::{rounding_key, rounding_uniform};
use crate::{eval_node, Registry};

fn node(inputs: &[&str], outputs: &[&str], attrs: &[(&str, Attr)]) -> Node {
    let mut n = Node::new("w/update", "QasSgdUpdate", inputs, outputs);
    n.domain = DOMAIN.to_string();
    for (k, v) in attrs {
        n.attrs.insert(k.to_string(), v.clone());
    }
    n
}

fn run(n: &Node, inputs: &[Option<Tensor>]) -> Result<Vec<Tensor>, String> {
    eval_node(&Registry::standard(), n, inputs, 1).map_err(|e| e.to_string())
}

/// int8 weight [3, 4] (3 output channels), values near the clamp edges.
fn w_i8() -> Tensor {
    let v = vec![5, -7, 3, -3, -127, 126, -1, 64, 100, -100, 0, 1];
    Tensor::new(vec![3, 4], TensorData::I8(v)).unwrap()
}

fn grad(shape: &[usize], t: usize) -> Tensor {
    let n: usize = shape.iter().product();
    let v = (0..n)
        .map(|i| (1e-4 * ((i * (t + 3) + 1) as f64).sin()) as f32)
        .collect();
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

/// Per-channel scales 0.01, 0.004, 0.02: `inv_s2 = 1 / s^2`.
const SCALES: [f32; 3] = [0.01, 0.004, 0.02];

fn inv_s2(shape: Vec<usize>) -> Tensor {
    Tensor::from_f32(shape, SCALES.iter().map(|s| 1.0 / (s * s)).collect()).unwrap()
}

/// The reference: `steps` of QAS-SGD with momentum `mom`, rounding with
/// `round(x, step, i)`, clamped to `[lo, hi]`, on the first `upd`
/// elements (inner = elements per channel).
#[allow(clippy::too_many_arguments)]
fn reference(
    w: &[f64],
    grads: &[Vec<f32>],
    lr: f32,
    mom: f32,
    inner: usize,
    (lo, hi): (f64, f64),
    upd: usize,
    round: impl Fn(f64, i64, usize) -> f64,
) -> Vec<f64> {
    let mut w = w.to_vec();
    let mut buf = vec![0f32; w.len()];
    for (t, g) in grads.iter().enumerate() {
        for i in 0..upd {
            let s = SCALES[i / inner];
            let gs = g[i] * (1.0 / (s * s));
            buf[i] = if t == 0 { gs } else { mom * buf[i] + gs };
            let d = if mom == 0.0 { gs } else { buf[i] };
            let x = w[i] - f64::from(lr) * f64::from(d);
            w[i] = round(x, t as i64 + 1, i).clamp(lo, hi);
        }
    }
    w
}

/// Runs `steps` steps feeding the outputs back; returns W as f64.
fn steps(n: &Node, w: Tensor, scale: Option<Tensor>, momentum: bool, count: usize) -> Vec<f64> {
    let mut state = vec![w.clone(), Tensor::vec_i64(vec![0])];
    if momentum {
        state.push(Tensor::zeros(DType::F32, w.shape().to_vec()).unwrap());
    }
    for t in 0..count {
        let mut feed = vec![
            Some(state[0].clone()),
            Some(grad(w.shape(), t)),
            Some(Tensor::scalar_f32(0.5)),
            None,
        ];
        feed.extend(state[1..].iter().cloned().map(Some));
        feed.push(scale.clone());
        state = run(n, &feed).unwrap();
    }
    exact(&state[0])
}

/// Integer (or f32) values as f64, exactly.
fn exact(t: &Tensor) -> Vec<f64> {
    match t.data() {
        TensorData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        _ => t.to_f32_vec().into_iter().map(f64::from).collect(),
    }
}

fn grads(shape: &[usize], count: usize) -> Vec<Vec<f32>> {
    (0..count).map(|t| grad(shape, t).to_f32_vec()).collect()
}

#[test]
fn int8_nearest_with_momentum_matches_reference() {
    let n = node(
        &["w", "g", "lr", "", "step", "buf", "s"],
        &["w1", "step1", "buf1"],
        &[
            ("momentum", Attr::Float(0.9)),
            ("rounding", Attr::String("nearest".into())),
        ],
    );
    let got = steps(&n, w_i8(), Some(inv_s2(vec![3, 1])), true, 4);
    let w0: Vec<f64> = w_i8().to_f32_vec().into_iter().map(f64::from).collect();
    let want = reference(
        &w0,
        &grads(&[3, 4], 4),
        0.5,
        0.9,
        4,
        (-127.0, 127.0),
        12,
        |x, _, _| x.round(),
    );
    assert_eq!(got, want);
    // Something moved, and the clamp was hit.
    assert!(got.iter().zip(&w0).filter(|(a, b)| a != b).count() >= 6);
    // After one step -127 - 1.31 rounds to -128, which int8 holds but the
    // symmetric weight range does not.
    let one = steps(&n, w_i8(), Some(inv_s2(vec![3, 1])), true, 1);
    assert_eq!(one[4], -127.0);
}

#[test]
fn int32_stochastic_matches_reference_with_counter_hash() {
    let n = node(
        &["w", "g", "lr", "", "step", "s"],
        &["w1", "step1"],
        &[("seed", Attr::Int(42))],
    );
    let w = Tensor::new(vec![3], TensorData::I32(vec![2_000_000_000, -3, 17])).unwrap();
    let got = steps(&n, w.clone(), Some(inv_s2(vec![3])), false, 3);
    let key = rounding_key(42, "w");
    let w0: Vec<f64> = vec![2_000_000_000.0, -3.0, 17.0];
    let lim = (f64::from(i32::MIN), f64::from(i32::MAX));
    let want = reference(&w0, &grads(&[3], 3), 0.5, 0.0, 1, lim, 3, |x, t, i| {
        (x + rounding_uniform(key, t, i)).floor()
    });
    assert_eq!(got, want);
}

/// The same inputs give the same numbers (no hidden state), other seeds
/// and steps give others, and a run split in two (state carried over, as
/// a checkpoint resumes) equals the uninterrupted one.
#[test]
fn stochastic_rounding_is_deterministic_and_resumable() {
    let n = node(
        &["w", "g", "lr", "", "step", "s"],
        &["w1", "step1"],
        &[("seed", Attr::Int(7))],
    );
    let once = steps(&n, w_i8(), Some(inv_s2(vec![3, 1])), false, 6);
    assert_eq!(once, steps(&n, w_i8(), Some(inv_s2(vec![3, 1])), false, 6));
    // Steps 1-3, then a "checkpoint": only W and the counter survive.
    let mut state = vec![w_i8(), Tensor::vec_i64(vec![0])];
    for t in 0..6 {
        if t == 3 {
            state = state
                .iter()
                .map(|x| Tensor::new(x.shape().to_vec(), x.data().clone()).unwrap())
                .collect();
        }
        let feed = vec![
            Some(state[0].clone()),
            Some(grad(&[3, 4], t)),
            Some(Tensor::scalar_f32(0.5)),
            None,
            Some(state[1].clone()),
            Some(inv_s2(vec![3, 1])),
        ];
        state = run(&n, &feed).unwrap();
    }
    let split: Vec<f64> = state[0].to_f32_vec().into_iter().map(f64::from).collect();
    assert_eq!(split, once);
    let (k, k2) = (rounding_key(7, "w"), rounding_key(8, "w"));
    let u: Vec<f64> = (0..64).map(|i| rounding_uniform(k, 1, i)).collect();
    assert!(u.iter().all(|v| (0.0..1.0).contains(v)));
    assert_ne!(rounding_uniform(k, 1, 0), rounding_uniform(k2, 1, 0));
    assert_ne!(rounding_uniform(k, 1, 0), rounding_uniform(k, 2, 0));
    assert_ne!(k, rounding_key(7, "b"));
}

/// Unbiased: a constant step of 0.1 units rounds to 0 or 1 and adds up to
/// ~100 over 1000 steps, where round-to-nearest never moves.
#[test]
fn stochastic_rounding_accumulates_small_steps() {
    let attrs = |r: &str| [("rounding", Attr::String(r.into()))];
    let w = Tensor::new(vec![3], TensorData::I32(vec![0, 50, -50])).unwrap();
    // inv_s2 = 1, lr 1: the step is the gradient, 0.1 units.
    let g = Tensor::from_f32(vec![3], vec![-0.1; 3]).unwrap();
    for (r, lo, hi) in [("stochastic", 75.0, 125.0), ("nearest", 0.0, 0.0)] {
        let n = node(
            &["w", "g", "lr", "", "step", "s"],
            &["w1", "step1"],
            &attrs(r),
        );
        let mut state = vec![w.clone(), Tensor::vec_i64(vec![0])];
        for _ in 0..1000 {
            let feed = vec![
                Some(state[0].clone()),
                Some(g.clone()),
                Some(Tensor::scalar_f32(1.0)),
                None,
                Some(state[1].clone()),
                Some(Tensor::scalar_f32(1.0)),
            ];
            state = run(&n, &feed).unwrap();
        }
        assert_eq!(state[1].as_i64().unwrap(), &[1000]);
        for (a, b) in state[0].to_f32_vec().iter().zip(w.to_f32_vec()) {
            let moved = f64::from(a - b);
            assert!((lo..=hi).contains(&moved), "{r}: moved {moved}");
        }
    }
}

/// `channels = 2` updates the first two output channels only (G may hold
/// just those); the mask pins masked entries at 0; qas = 0 is plain SGD
/// on the integer values.
#[test]
fn channels_mask_and_qas_off() {
    let mut mask = vec![1f32; 12];
    mask[1] = 0.0;
    let n = node(
        &["w", "g", "lr", "mask", "step", "s"],
        &["w1", "step1"],
        &[
            ("channels", Attr::Int(2)),
            ("rounding", Attr::String("nearest".into())),
        ],
    );
    let out = run(
        &n,
        &[
            Some(w_i8()),
            Some(grad(&[2, 4], 0)),
            Some(Tensor::scalar_f32(0.5)),
            Some(Tensor::from_f32(vec![3, 4], mask).unwrap()),
            Some(Tensor::vec_i64(vec![0])),
            Some(inv_s2(vec![3, 1])),
        ],
    )
    .unwrap();
    let w0: Vec<f64> = w_i8().to_f32_vec().into_iter().map(f64::from).collect();
    let mut want = reference(
        &w0,
        &grads(&[2, 4], 1),
        0.5,
        0.0,
        4,
        (-127.0, 127.0),
        8,
        |x, _, _| x.round(),
    );
    want[1] = 0.0;
    let got: Vec<f64> = out[0].to_f32_vec().into_iter().map(f64::from).collect();
    assert_eq!(got, want);
    assert_eq!(&got[8..], &w0[8..]);

    // Without QAS the step is lr * G = 5e-5 units: nothing moves.
    let n = node(
        &["w", "g", "lr", "", "step"],
        &["w1", "step1"],
        &[("qas", Attr::Int(0))],
    );
    let out = run(
        &n,
        &[
            Some(w_i8()),
            Some(grad(&[3, 4], 0)),
            Some(Tensor::scalar_f32(0.5)),
            None,
            Some(Tensor::vec_i64(vec![0])),
        ],
    )
    .unwrap();
    assert_eq!(out[0], w_i8());
}

/// An f32 weight in the same list gets plain SGD with momentum.
#[test]
fn f32_weight_is_plain_sgd() {
    let n = node(
        &["w", "g", "lr", "", "step", "buf"],
        &["w1", "step1", "buf1"],
        &[("momentum", Attr::Float(0.5))],
    );
    let w = Tensor::from_f32(vec![2], vec![1.0, -2.0]).unwrap();
    let mut state = vec![
        w,
        Tensor::vec_i64(vec![0]),
        Tensor::zeros(DType::F32, vec![2]).unwrap(),
    ];
    for g in [[0.5f32, 0.25], [-0.1, 0.3]] {
        let feed = vec![
            Some(state[0].clone()),
            Some(Tensor::from_f32(vec![2], g.to_vec()).unwrap()),
            Some(Tensor::scalar_f32(0.1)),
            None,
            Some(state[1].clone()),
            Some(state[2].clone()),
        ];
        state = run(&n, &feed).unwrap();
    }
    // v1 = g1; w = [0.95, -2.025]; v2 = 0.5 v1 + g2 = [0.15, 0.425];
    // w = [0.935, -2.0675].
    let w = state[0].as_f32().unwrap();
    assert!(
        (w[0] - 0.935).abs() < 1e-6 && (w[1] + 2.0675).abs() < 1e-6,
        "{w:?}"
    );
}

#[test]
fn bad_nodes_are_refused() {
    let base = || {
        vec![
            Some(w_i8()),
            Some(grad(&[3, 4], 0)),
            Some(Tensor::scalar_f32(0.5)),
            None,
            Some(Tensor::vec_i64(vec![0])),
        ]
    };
    let cases: Vec<(Node, Vec<Option<Tensor>>, &str)> = vec![
        (
            node(&["w", "g", "lr", "", "step"], &["w1", "step1"], &[]),
            base(),
            "needs inv_s2",
        ),
        (
            node(
                &["w", "g", "lr", "", "step", "s"],
                &["w1", "step1"],
                &[("rounding", Attr::String("up".into()))],
            ),
            [base(), vec![Some(inv_s2(vec![3, 1]))]].concat(),
            "rounding 'up'",
        ),
        (
            node(
                &["w", "g", "lr", "", "step", "s"],
                &["w1", "step1"],
                &[("momentum", Attr::Float(0.9))],
            ),
            [base(), vec![Some(inv_s2(vec![3, 1]))]].concat(),
            "f32 [3, 4] buffer",
        ),
        (
            node(&["w", "g", "lr", "", "step", "s"], &["w1", "step1"], &[]),
            [base(), vec![Some(inv_s2(vec![1, 3]))]].concat(),
            "inv_s2 shape",
        ),
        (
            node(&["w", "g", "lr", "", "", "s"], &["w1", "step1"], &[]),
            {
                let mut b = base();
                b[4] = None;
                [b, vec![Some(inv_s2(vec![3, 1]))]].concat()
            },
            "step counter",
        ),
    ];
    for (n, feed, want) in cases {
        let err = run(&n, &feed).unwrap_err();
        assert!(err.contains(want), "{err} (wanted '{want}')");
    }
}
