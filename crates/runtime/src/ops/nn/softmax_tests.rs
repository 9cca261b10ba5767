use whittle_ir::{Attr, DType, Tensor};

use super::*;
use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::ops::testing::test_support::{eval, tf};
use crate::{Fact, Parallel, Registry, View, ViewMut};

#[test]
fn exp_is_accurate() {
    let mut worst = 0f64;
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = f64::from(x).exp();
        let got = f64::from(exp_f32(x));
        worst = worst.max(((got - want) / want).abs());
        x += 0.0137;
    }
    assert!(worst < 3e-7, "worst relative error {worst}");
    assert_eq!(exp_f32(-1000.0), 0.0);
    assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp_f32(1000.0), f32::INFINITY);
    assert!(exp_f32(f32::NAN).is_nan());
    assert_eq!(exp_f32(0.0), 1.0);
}

/// Naive softmax in f64 along `axis` of a row-major tensor.
fn softmax_ref(x: &[f32], shape: &[usize], axis: usize, log: bool) -> Vec<f32> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut y = vec![0f32; x.len()];
    for o in 0..outer {
        for j in 0..inner {
            let at = |k: usize| o * n * inner + k * inner + j;
            let m = (0..n)
                .map(|k| f64::from(x[at(k)]))
                .fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = (0..n).map(|k| (f64::from(x[at(k)]) - m).exp()).sum();
            for k in 0..n {
                let v = f64::from(x[at(k)]) - m;
                y[at(k)] = if log { v - s.ln() } else { v.exp() / s } as f32;
            }
        }
    }
    y
}

#[test]
fn softmax_matches_naive_reference_on_larger_shapes() {
    let shape = [3usize, 50, 70];
    let x: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 37.0)
        .collect();
    let t = tf(&shape, &x);
    for (op, log) in [("Softmax", false), ("LogSoftmax", true)] {
        for axis in 0..3 {
            let got = eval(
                op,
                13,
                &[Some(t.clone())],
                1,
                &[("axis", Attr::Int(axis as i64))],
            )
            .unwrap();
            let want = softmax_ref(&x, &shape, axis, log);
            for (g, w) in got[0].as_f32().unwrap().iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 2e-6 * w.abs() + 1e-6,
                    "{op} axis {axis}: {g} vs {w}"
                );
            }
        }
    }
}

#[test]
fn softmax_threads_give_identical_results() {
    let shape = vec![64usize, 1000];
    let x: Vec<f32> = (0..64_000)
        .map(|i| ((i * 31 % 977) as f32) / 100.0)
        .collect();
    let t = tf(&shape, &x);
    let node = crate::ops::testing::test_support::node("Softmax", &[Some(t.clone())], 1, &[]);
    let reg = Registry::standard();
    let ctx = BuildCtx {
        node: &node,
        inputs: vec![Some(InputFact {
            fact: Fact::new(DType::F32, shape.clone()),
            value: Some(&t),
        })],
        opset: 13,
    };
    let Built::Kernel { kernel, .. } = reg.get("", "Softmax").unwrap()(&ctx).unwrap() else {
        panic!()
    };
    let mut outs = Vec::new();
    for threads in [1, 2, 3] {
        let par = Parallel::new(threads).unwrap();
        let mut out = Tensor::zeros(DType::F32, shape.clone()).unwrap();
        kernel
            .run(
                &[View::of(&t)],
                &mut [ViewMut::of(&mut out)],
                &mut RunCtx {
                    scratch: &mut [],
                    par: &par,
                },
            )
            .unwrap();
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[0], outs[2]);
    let want = softmax_ref(&x, &shape, 1, false);
    for (g, w) in outs[0].as_f32().unwrap().iter().zip(&want) {
        assert!((g - w).abs() <= 2e-6 * w.abs() + 1e-7);
    }
}
