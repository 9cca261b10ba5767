//! The sparse kernels against a naive dense reference in f64, on every
//! instruction set of this machine and several task counts.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::gemm::tests_support::{rand_vec, Threads, ACTS};
use crate::gemm::Serial;

/// A `rows x cols` weight with about `density` nonzeros, and every row
/// whose index is a multiple of 5 empty.
fn pruned(rows: usize, cols: usize, density: f32, seed: u64) -> Vec<f32> {
    let keep = rand_vec(rows * cols, seed + 100);
    let mut w = rand_vec(rows * cols, seed);
    for (i, v) in w.iter_mut().enumerate() {
        if (keep[i] + 1.0) / 2.0 >= density || (i / cols.max(1)).is_multiple_of(5) {
            *v = 0.0;
        }
    }
    w
}

/// `act(W X + bias)` in f64 from the dense weight, and the bound on the
/// f32 kernel's error: recursive summation of K + 1 terms errs by at most
/// `(K + 1) eps` times the sum of their magnitudes (Higham, Accuracy and
/// Stability, 4.2), and no activation here has a slope above 1.5
/// (HardSwish near 3).
fn reference(
    w: &[f32],
    m: usize,
    k: usize,
    x: &[f32],
    n: usize,
    bias: Option<&[f32]>,
    act: Activation,
) -> (Vec<f32>, Vec<f64>) {
    let mut y = vec![0.0; m * n];
    let mut tol = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            let b = bias.map_or(0.0, |b| b[i]) as f64;
            let (mut s, mut mag) = (b, b.abs());
            for p in 0..k {
                let t = w[i * k + p] as f64 * x[p * n + j] as f64;
                s += t;
                mag += t.abs();
            }
            y[i * n + j] = act.apply(s as f32);
            tol[i * n + j] = 1.5 * (k as f64 + 2.0) * f32::EPSILON as f64 * mag + 1e-30;
        }
    }
    (y, tol)
}

fn check(got: &[f32], want: &[f32], tol: &[f64], what: &dyn Fn() -> alloc::string::String) {
    for (i, ((&g, &r), &t)) in got.iter().zip(want).zip(tol).enumerate() {
        let d = (g as f64 - r as f64).abs();
        assert!(
            d <= t,
            "{}: element {i}: got {g}, want {r} (tol {t})",
            what()
        );
    }
}

#[test]
fn csr_holds_the_nonzeros() {
    let w = [0.0, 1.5, 0.0, -0.0, 2.0, 3.0];
    let c = Csr::from_dense(&w, 2, 3).unwrap();
    assert_eq!(c.row_ptr(), &[0, 1, 3]);
    assert_eq!(c.col_indices(), &Cols::U16(vec![1, 1, 2]));
    assert_eq!(c.values(), &[1.5, 2.0, 3.0]);
    assert_eq!(c.nnz(), 3);
    assert!((c.density() - 0.5).abs() < 1e-12);
    // The same matrix stored transposed ([cols, rows]).
    let wt = [0.0, -0.0, 1.5, 2.0, 0.0, 3.0];
    assert_eq!(Csr::from_dense_t(&wt, 2, 3).unwrap(), c);
    assert!(Csr::from_dense(&w, 3, 3).is_none());
    assert_eq!(Csr::from_dense(&[], 0, 0).unwrap().density(), 0.0);
}

#[test]
fn spmm_matches_dense_reference() {
    let shapes = [
        (1, 1, 1),
        (7, 16, 49),
        (13, 9, 17),
        (16, 32, 128),
        (6, 40, 129),
        (9, 24, 300),
        (5, 3, 7),
        // Depth blocks (KBLOCK = 256): 2 blocks, the last partial.
        (11, 300, 49),
        (4, 257, 130),
    ];
    for &(m, k, n) in &shapes {
        for density in [0.0, 0.05, 0.3, 1.0] {
            let w = pruned(m, k, density, (m * k * n) as u64);
            let csr = Csr::from_dense(&w, m, k).unwrap();
            let x = rand_vec(k * n, 7);
            let bias = rand_vec(m, 8);
            for (ai, act) in ACTS.iter().enumerate() {
                let b = (ai % 2 == 0).then_some(&bias[..]);
                let (want, tol) = reference(&w, m, k, &x, n, b, *act);
                for isa in Isa::available() {
                    let mut first = None;
                    for tasks in [1, 2, 3] {
                        let threads = Threads(tasks);
                        let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
                        let mut y = vec![f32::NAN; m * n];
                        // Odd-sized, misaligned scratch: the kernel aligns.
                        let mut s = vec![f32::NAN; spmm_scratch_len(isa, &csr, n) + 1];
                        spmm(isa, &csr, b, *act, &x, n, &mut y, &mut s[1..], exec);
                        let what = || {
                            alloc::format!(
                                "spmm {m}x{k}x{n} d={density} {act:?} {} tasks={tasks}",
                                isa.name()
                            )
                        };
                        check(&y, &want, &tol, &what);
                        match &first {
                            None => first = Some(y),
                            Some(f) => assert_eq!(f, &y, "{}: task count changed bits", what()),
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn all_zero_weight_gives_the_activated_bias() {
    let (m, k, n) = (4, 10, 21);
    let csr = Csr::from_dense(&vec![0.0; m * k], m, k).unwrap();
    assert_eq!(csr.nnz(), 0);
    let bias = [-1.0, 0.5, 2.0, 7.0];
    let x = rand_vec(k * n, 1);
    let act = Activation::Clip { min: 0.0, max: 6.0 };
    for isa in Isa::available() {
        let mut y = vec![f32::NAN; m * n];
        let mut s = vec![0.0; spmm_scratch_len(isa, &csr, n)];
        spmm(isa, &csr, Some(&bias), act, &x, n, &mut y, &mut s, &Serial);
        for (i, row) in y.chunks(n).enumerate() {
            assert!(
                row.iter().all(|&v| v == act.apply(bias[i])),
                "{}",
                isa.name()
            );
        }
        let mut y = vec![f32::NAN; 2 * m];
        spmv(isa, &csr, None, act, &x, 2, &mut y, &Serial);
        assert!(y.iter().all(|&v| v == 0.0));
    }
}

#[test]
fn spmv_matches_dense_reference() {
    // Row lengths cover every gather tail (0..=40 nonzeros in a row).
    let shapes = [(41, 40, 1), (30, 100, 3), (17, 1280, 2), (3, 5, 1)];
    for &(m, k, batch) in &shapes {
        for density in [0.0, 0.05, 0.3, 1.0] {
            let mut w = pruned(m, k, density, (m + k) as u64);
            if k == 40 {
                // Row i keeps its first i entries (row 0 empty).
                w = (0..m * k)
                    .map(|e| {
                        if e % k < e / k {
                            0.25 + (e % 7) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
            }
            let csr = Csr::from_dense(&w, m, k).unwrap();
            let x = rand_vec(batch * k, 9);
            let bias = rand_vec(m, 10);
            for (ai, act) in ACTS.iter().enumerate() {
                let b = (ai % 2 == 1).then_some(&bias[..]);
                for isa in Isa::available() {
                    for tasks in [1, 2] {
                        let threads = Threads(tasks);
                        let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
                        let mut y = vec![f32::NAN; batch * m];
                        spmv(isa, &csr, b, *act, &x, batch, &mut y, exec);
                        for r in 0..batch {
                            // One row of X as a K x 1 matrix.
                            let xr = &x[r * k..][..k];
                            let (want, tol) = reference(&w, m, k, xr, 1, b, *act);
                            let what = || {
                                alloc::format!(
                                    "spmv {m}x{k} row {r} d={density} {act:?} {}",
                                    isa.name()
                                )
                            };
                            check(&y[r * m..][..m], &want, &tol, &what);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn linear_matches_dense_reference_at_every_batch() {
    // 45 rows: two full groups of 16 lanes and a partial one; 70 columns:
    // two full blocks of 32 and a partial one.
    let (m, k) = (45, 70);
    for batch in [1, 2, SPMM_MIN_BATCH - 1, SPMM_MIN_BATCH, 21] {
        for density in [0.0, 0.1, 0.5, 1.0] {
            let w = pruned(m, k, density, batch as u64);
            let x = rand_vec(batch * k, 4);
            let bias = rand_vec(m, 5);
            for act in [Activation::Relu, Activation::Sigmoid] {
                for isa in Isa::available() {
                    let lin = SparseLinear::new(isa, Csr::from_dense(&w, m, k).unwrap());
                    for tasks in [1, 3] {
                        let threads = Threads(tasks);
                        let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
                        let mut scratch = vec![0.0; lin.scratch_len(isa, batch)];
                        let mut y = vec![f32::NAN; batch * m];
                        lin.run(isa, Some(&bias), act, &x, batch, &mut y, &mut scratch, exec);
                        for r in 0..batch {
                            let xr = &x[r * k..][..k];
                            let (want, tol) = reference(&w, m, k, xr, 1, Some(&bias), act);
                            let what = || {
                                alloc::format!(
                                    "linear batch {batch} row {r} d={density} {act:?} {} tasks={tasks}",
                                    isa.name()
                                )
                            };
                            check(&y[r * m..][..m], &want, &tol, &what);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn sell_holds_the_same_products() {
    let (m, k) = (37, 100);
    let w = pruned(m, k, 0.3, 12);
    let csr = Csr::from_dense(&w, m, k).unwrap();
    let sell = Sell::from_csr(&csr).unwrap();
    assert!(sell.fill(csr.nnz()) >= 1.0);
    let x = rand_vec(k, 13);
    let (want, tol) = reference(&w, m, k, &x, 1, None, Activation::None);
    check(&sell::reference(&sell, &x), &want, &tol, &|| {
        "sell layout".into()
    });
}

#[test]
fn wide_matrices_use_u32_indices() {
    let (m, k, n) = (3, 70_000, 2);
    let mut w = vec![0.0; m * k];
    for (i, v) in w.iter_mut().enumerate() {
        if i % 9_973 == 0 || i % k == k - 1 {
            *v = 0.5 + (i % 3) as f32;
        }
    }
    let csr = Csr::from_dense(&w, m, k).unwrap();
    assert!(matches!(csr.col_indices(), Cols::U32(_)));
    let x = rand_vec(k * n, 2);
    let (want, tol) = reference(&w, m, k, &x, n, None, Activation::None);
    for isa in Isa::available() {
        let mut y = vec![f32::NAN; m * n];
        let mut s = vec![0.0; spmm_scratch_len(isa, &csr, n)];
        spmm(
            isa,
            &csr,
            None,
            Activation::None,
            &x,
            n,
            &mut y,
            &mut s,
            &Serial,
        );
        check(&y, &want, &tol, &|| {
            alloc::format!("u32 spmm {}", isa.name())
        });
        let xv = rand_vec(k, 3);
        let (want, tol) = reference(&w, m, k, &xv, 1, None, Activation::None);
        let mut y = vec![f32::NAN; m];
        spmv(isa, &csr, None, Activation::None, &xv, 1, &mut y, &Serial);
        check(&y, &want, &tol, &|| {
            alloc::format!("u32 spmv {}", isa.name())
        });
    }
}
