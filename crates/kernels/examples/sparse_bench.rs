//! Sparse kernels against whittle's dense kernels on the 1x1 convs and the
//! classifier of MobileNetV2 1.0 @224, single-threaded, at unstructured
//! random sparsities: the dense kernel is the one the runtime runs for the
//! layer (`Conv` for the convs, the packed-B `gemm` for the Gemm), timed
//! interleaved with the sparse one in the same run; medians of many runs.
//!
//! `cargo run --release -p whittle-kernels --example sparse_bench [sweep] [filter]`
//!
//! `sweep` times densities from 5% to 70% instead, to find where sparse
//! stops paying (the break-even the runtime's selection rule encodes).

mod common;

use common::{rand_vec, time2, times_x, Args, Budget, Table};
use whittle_kernels::conv::{Conv, ConvGeom};
use whittle_kernels::gemm::{gemm, gemm_scratch_len, Bias, Epilogue, Isa, MatRef, PackedB, Serial};
use whittle_kernels::sparse::{spmm, spmm_scratch_len, Csr, SparseLinear};
use whittle_kernels::Activation;

/// Zeroes a uniformly random `sparsity` fraction of the entries.
fn prune(w: &mut [f32], sparsity: f64, seed: u64) {
    let r = rand_vec(w.len(), seed);
    for (v, r) in w.iter_mut().zip(r) {
        if ((r as f64 + 1.0) / 2.0) < sparsity {
            *v = 0.0;
        }
    }
}

/// (cin, cout, h*w); the classifier Gemm is `hw == 1`.
const SHAPES: &[(usize, usize, usize)] = &[
    (32, 16, 112 * 112),
    (16, 96, 112 * 112),
    (96, 24, 56 * 56),
    (24, 144, 56 * 56),
    (144, 24, 56 * 56),
    (144, 32, 28 * 28),
    (32, 192, 28 * 28),
    (192, 32, 28 * 28),
    (192, 64, 14 * 14),
    (64, 384, 14 * 14),
    (384, 64, 14 * 14),
    (384, 96, 14 * 14),
    (96, 576, 14 * 14),
    (576, 96, 14 * 14),
    (576, 160, 7 * 7),
    (160, 960, 7 * 7),
    (960, 160, 7 * 7),
    (960, 320, 7 * 7),
    (320, 1280, 7 * 7),
    (1280, 1000, 1),
];

/// Median (dense, sparse) seconds of one layer at `sparsity`.
fn layer(isa: Isa, cin: usize, cout: usize, hw: usize, sparsity: f64, budget: Budget) -> [f64; 2] {
    let mut w = rand_vec(cout * cin, 4);
    prune(&mut w, sparsity, 11 + cin as u64 * 7 + cout as u64);
    let bias = rand_vec(cout, 5);
    let csr = Csr::from_dense(&w, cout, cin).unwrap();
    let act = Activation::Clip { min: 0.0, max: 6.0 };
    if hw == 1 {
        // Gemm: X [1, cin], B = W^T stored [cout, cin] with transB = 1.
        let x = rand_vec(cin, 3);
        let bm = MatRef::row_major(&w, cout, cin).unwrap().t();
        let pb = PackedB::new(bm);
        let a = MatRef::row_major(&x, 1, cin).unwrap();
        let mut s1 = vec![0.0; gemm_scratch_len(1, cout, cin, false, true, 1)];
        let lin = SparseLinear::new(isa, csr);
        let mut s2 = vec![0.0; lin.scratch_len(isa, 1)];
        let (mut y1, mut y2) = (vec![0.0; cout], vec![0.0; cout]);
        let ep = Epilogue::new(Bias::PerCol(&bias), Activation::None);
        let r = time2(
            budget,
            || gemm(isa, &a, &pb, &mut y1, cout, &ep, &mut s1, &Serial),
            || {
                lin.run(
                    isa,
                    Some(&bias),
                    Activation::None,
                    &x,
                    1,
                    &mut y2,
                    &mut s2,
                    &Serial,
                )
            },
        )
        .map(|s| s.median);
        check(&y1, &y2, cin);
        return r;
    }
    let side = (hw as f64).sqrt() as usize;
    let g = ConvGeom {
        batch: 1,
        cin,
        cout,
        groups: 1,
        input: [1, side, side],
        kernel: [1; 3],
        stride: [1; 3],
        dilation: [1; 3],
        pad_begin: [0; 3],
        output: [1, side, side],
    };
    let x = rand_vec(cin * hw, 3);
    let conv = Conv::new(g, &w, Some(&bias), act);
    let mut s = vec![0.0; conv.scratch_len(1)];
    let mut s2 = vec![0.0; spmm_scratch_len(isa, &csr, hw)];
    let (mut y1, mut y2) = (vec![0.0; cout * hw], vec![0.0; cout * hw]);
    let r = time2(
        budget,
        || conv.run(isa, &x, &mut y1, &mut s, &Serial),
        || {
            spmm(
                isa,
                &csr,
                Some(&bias),
                act,
                &x,
                hw,
                &mut y2,
                &mut s2,
                &Serial,
            )
        },
    )
    .map(|s| s.median);
    check(&y1, &y2, cin);
    r
}

/// The two kernels agree to rounding (inputs in [-1, 1]).
fn check(a: &[f32], b: &[f32], k: usize) {
    let tol = 1e-6 * k as f32;
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= tol, "dense {x} vs sparse {y}");
    }
}

fn name(cin: usize, cout: usize, hw: usize) -> String {
    if hw == 1 {
        format!("gemm {cin}->{cout} batch 1")
    } else {
        let side = (hw as f64).sqrt() as usize;
        format!("1x1 {cin}->{cout} @{side}x{side}")
    }
}

fn main() {
    let args = Args::parse(&["sweep"]);
    let sweep = args.flag("sweep");
    let isa = Isa::detect();
    println!("isa {}; single-threaded; median times in us", isa.name());
    let sparsities: &[f64] = if sweep {
        &[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    } else {
        &[0.7, 0.8, 0.9, 0.95]
    };
    let budget = Budget::new(if sweep { 0.15 } else { 0.3 }, 11, 3000);
    let mut widths = vec![26, 9];
    widths.extend(sparsities.iter().map(|_| 14));
    let table = Table::new(&widths);
    let mut header = vec!["layer".to_string(), "dense".to_string()];
    header.extend(
        sparsities
            .iter()
            .map(|s| format!("{:.0}% sp / x", s * 100.0)),
    );
    table.row(&header);
    let mut logs = vec![0.0f64; sparsities.len()];
    let mut count = 0;
    for &(cin, cout, hw) in SHAPES {
        let nm = name(cin, cout, hw);
        if !args.wants(&nm) {
            continue;
        }
        count += 1;
        let mut dense = Vec::new();
        let mut cells = Vec::new();
        for (i, &s) in sparsities.iter().enumerate() {
            let [d, sp] = layer(isa, cin, cout, hw, s, budget);
            dense.push(d);
            logs[i] += (d / sp).ln();
            cells.push(format!("{:>7.1} {:>5.2}x", sp * 1e6, d / sp));
        }
        dense.sort_by(|a, b| a.total_cmp(b));
        let mut row = vec![nm, format!("{:.1}", dense[dense.len() / 2] * 1e6)];
        row.extend(cells);
        table.row(&row);
    }
    let mut row = vec!["geomean speedup".to_string(), String::new()];
    row.extend(
        logs.iter()
            .map(|l| times_x((l / count.max(1) as f64).exp())),
    );
    table.row(&row);
}
