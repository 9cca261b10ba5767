//! Pruned Conv/Gemm/MatMul nodes pick the sparse kernels, dense ones keep
//! the dense kernels, and both agree with a naive reference.

use whittle_ir::{Attr, Node, Tensor};

use crate::ops::nn::linear::linear_cases_types::{assert_close, eval_with};
use crate::{eval_node, Registry};

/// Deterministic values in [-1, 1).
fn vals(n: usize, seed: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let h = (i as u32 ^ seed)
                .wrapping_mul(2_654_435_761)
                .rotate_left(13);
            (h % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// `vals` with all but about `keep` of the entries zeroed.
fn pruned(n: usize, keep: f32, seed: u32) -> Vec<f32> {
    let mask = vals(n, seed + 7);
    vals(n, seed)
        .into_iter()
        .zip(mask)
        .map(|(v, m)| if (m + 1.0) / 2.0 < keep { v } else { 0.0 })
        .collect()
}

fn t(shape: &[usize], v: Vec<f32>) -> Option<Tensor> {
    Some(Tensor::from_f32(shape.to_vec(), v).unwrap())
}

/// Kernel name of `node` with every input constant but X.
fn name_of(node: &Node, inputs: &[Option<Tensor>]) -> String {
    let mut constant = vec![true; inputs.len()];
    constant[0] = false;
    eval_with(node, inputs, &constant, 13, 1).unwrap().1
}

#[test]
fn pruned_1x1_conv_runs_sparse_and_matches() {
    let (n, cin, cout, h, w) = (2, 24, 10, 5, 7);
    let x = vals(n * cin * h * w, 1);
    let wt = pruned(cout * cin, 0.15, 2);
    let bias = vals(cout, 3);
    let node = Node::new("c", "Conv", &["x", "w", "b"], &["y"])
        .with_activation(whittle_ir::Activation::Relu);
    let inputs = [
        t(&[n, cin, h, w], x.clone()),
        t(&[cout, cin, 1, 1], wt.clone()),
        t(&[cout], bias.clone()),
    ];
    let name = name_of(&node, &inputs);
    assert!(name.starts_with("sparse.csr.d"), "{name}");
    assert!(
        name.contains("%.conv1x1.") && name.ends_with("+relu"),
        "{name}"
    );
    // Naive reference.
    let mut want = vec![0.0f32; n * cout * h * w];
    for b in 0..n {
        for o in 0..cout {
            for p in 0..h * w {
                let mut s = bias[o];
                for c in 0..cin {
                    s += wt[o * cin + c] * x[(b * cin + c) * h * w + p];
                }
                want[(b * cout + o) * h * w + p] = s.max(0.0);
            }
        }
    }
    let got = eval_node(&Registry::standard(), &node, &inputs, 13).unwrap();
    assert_close(got[0].as_f32().unwrap(), &want, "sparse conv");
    // Two threads give the same bits.
    let (two, _) = eval_with(&node, &inputs, &[false, true, true], 13, 2).unwrap();
    assert_eq!(two[0].as_f32().unwrap(), got[0].as_f32().unwrap());
}

#[test]
fn dense_or_non_pointwise_convs_stay_dense() {
    let x = t(&[1, 24, 6, 6], vals(24 * 36, 1));
    let node = Node::new("c", "Conv", &["x", "w"], &["y"]);
    let dense = name_of(&node, &[x.clone(), t(&[8, 24, 1, 1], vals(8 * 24, 2))]);
    assert!(dense.starts_with("conv.1x1."), "{dense}");
    let three = name_of(
        &node,
        &[x.clone(), t(&[8, 24, 3, 3], pruned(8 * 24 * 9, 0.1, 2))],
    );
    assert!(three.starts_with("conv."), "{three}");
    let strided = node.clone().with_attr("strides", Attr::Ints(vec![2, 2]));
    let s = name_of(&strided, &[x, t(&[8, 24, 1, 1], pruned(8 * 24, 0.1, 2))]);
    assert!(s.starts_with("conv."), "{s}");
}

/// Gemm `Y = alpha * X op(B) + beta * C` by hand.
#[allow(clippy::too_many_arguments)]
fn gemm_ref(
    x: &[f32],
    b: &[f32],
    c: &[f32],
    (m, n, k): (usize, usize, usize),
    trans_b: bool,
    alpha: f32,
    beta: f32,
) -> Vec<f32> {
    let mut y = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                s += x[i * k + p] * bv;
            }
            y[i * n + j] = alpha * s + beta * c[j];
        }
    }
    y
}

#[test]
fn pruned_gemm_runs_sparse_at_every_batch() {
    let (n, k) = (37, 70);
    for (m, keep) in [(1, 0.3), (3, 0.08), (5, 0.05), (20, 0.1)] {
        for trans_b in [false, true] {
            let x = vals(m * k, 4);
            let b = pruned(n * k, keep, 5);
            let c = vals(n, 6);
            let node = Node::new("g", "Gemm", &["a", "b", "c"], &["y"])
                .with_attr("transB", Attr::Int(trans_b as i64))
                .with_attr("alpha", Attr::Float(0.5))
                .with_attr("beta", Attr::Float(2.0));
            let bshape = if trans_b { [n, k] } else { [k, n] };
            let inputs = [
                t(&[m, k], x.clone()),
                t(&bshape, b.clone()),
                t(&[n], c.clone()),
            ];
            let name = name_of(&node, &inputs);
            assert!(
                name.starts_with("sparse.csr.d") && name.contains(".gemm."),
                "{name}"
            );
            let want = gemm_ref(&x, &b, &c, (m, n, k), trans_b, 0.5, 2.0);
            let got = eval_node(&Registry::standard(), &node, &inputs, 13).unwrap();
            assert_close(got[0].as_f32().unwrap(), &want, &name);
        }
    }
}

#[test]
fn dense_gemm_and_row_bias_stay_dense() {
    let (m, n, k) = (2, 16, 32);
    let node = Node::new("g", "Gemm", &["a", "b", "c"], &["y"]);
    let x = t(&[m, k], vals(m * k, 1));
    let dense = name_of(
        &node,
        &[x.clone(), t(&[k, n], vals(k * n, 2)), t(&[n], vals(n, 3))],
    );
    assert!(dense.starts_with("gemm."), "{dense}");
    // A per-row C does not fold into the sparse kernel's bias.
    let row_c = name_of(
        &node,
        &[
            x,
            t(&[k, n], pruned(k * n, 0.05, 2)),
            t(&[m, 1], vals(m, 3)),
        ],
    );
    assert!(row_c.starts_with("gemm."), "{row_c}");
}

#[test]
fn pruned_matmul_runs_sparse() {
    let (bt, m, k, n) = (2, 3, 40, 24);
    let x = vals(bt * m * k, 8);
    let b = pruned(k * n, 0.1, 9);
    let node = Node::new("mm", "MatMul", &["a", "b"], &["y"]);
    let inputs = [t(&[bt, m, k], x.clone()), t(&[k, n], b.clone())];
    let name = name_of(&node, &inputs);
    assert!(
        name.starts_with("sparse.csr.d") && name.contains(".matmul."),
        "{name}"
    );
    let want = gemm_ref(&x, &b, &vec![0.0; n], (bt * m, n, k), false, 1.0, 0.0);
    let got = eval_node(&Registry::standard(), &node, &inputs, 13).unwrap();
    assert_eq!(got[0].shape(), &[bt, m, n]);
    assert_close(got[0].as_f32().unwrap(), &want, &name);
}
