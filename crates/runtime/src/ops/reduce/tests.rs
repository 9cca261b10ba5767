//! Reductions against naive sums on every axis set, and their edge cases.

use whittle_ir::Tensor;

use crate::ops::testing::test_support::{eval, tf, tl};

#[test]
fn reductions_match_naive_sums_on_every_axis_set() {
    let shape = [3usize, 4, 5, 2];
    let x: Vec<f32> = (0..120)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
        .collect();
    let t = tf(&shape, &x);
    for mask in 0u32..16 {
        let axes: Vec<i64> = (0..4)
            .filter(|k| mask & (1 << k) != 0)
            .map(|k| k as i64)
            .collect();
        if axes.is_empty() {
            continue;
        }
        let got = eval(
            "ReduceSum",
            13,
            &[Some(t.clone()), Some(tl(&[axes.len()], &axes))],
            1,
            &[],
        )
        .unwrap();
        let out_shape: Vec<usize> = (0..4)
            .map(|k| if mask & (1 << k) != 0 { 1 } else { shape[k] })
            .collect();
        let mut want = vec![0f64; out_shape.iter().product()];
        for (i, &v) in x.iter().enumerate() {
            let (mut rem, mut o) = (i, 0);
            let mut mul = 1;
            for k in (0..4).rev() {
                let p = rem % shape[k];
                rem /= shape[k];
                if mask & (1 << k) == 0 {
                    o += p * mul;
                }
                mul *= out_shape[k];
            }
            want[o] += f64::from(v);
        }
        assert_eq!(got[0].shape(), &out_shape[..], "axes {axes:?}");
        for (g, w) in got[0].as_f32().unwrap().iter().zip(&want) {
            assert!(
                (f64::from(*g) - w).abs() < 1e-4,
                "axes {axes:?}: {g} vs {w}"
            );
        }
    }
}

#[test]
fn reduce_empty_and_scalar_edge_cases() {
    // Reducing an empty axis yields each op's identity.
    let e = tf(&[2, 0], &[]);
    let axes = || Some(tl(&[1], &[1]));
    let sum = eval("ReduceSum", 13, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(sum[0], tf(&[2, 1], &[0.0, 0.0]));
    let prod = eval("ReduceProd", 18, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(prod[0], tf(&[2, 1], &[1.0, 1.0]));
    let max = eval("ReduceMax", 18, &[Some(e.clone()), axes()], 1, &[]).unwrap();
    assert_eq!(max[0], tf(&[2, 1], &[f32::NEG_INFINITY; 2]));
    let lse = eval("ReduceLogSumExp", 18, &[Some(e), axes()], 1, &[]).unwrap();
    assert_eq!(lse[0], tf(&[2, 1], &[f32::NEG_INFINITY; 2]));
    // A scalar reduces to itself.
    let s = eval("ReduceMean", 13, &[Some(Tensor::scalar_f32(4.0))], 1, &[]).unwrap();
    assert_eq!(s[0], Tensor::scalar_f32(4.0));
    // NaN propagates through max like numpy.
    let n = eval(
        "ReduceMax",
        13,
        &[Some(tf(&[3], &[1.0, f32::NAN, 2.0]))],
        1,
        &[],
    )
    .unwrap();
    assert!(n[0].as_f32().unwrap()[0].is_nan());
}
