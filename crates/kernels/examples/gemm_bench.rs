//! GEMM, conv and depthwise microbenchmark on the layer shapes of
//! MobileNetV2 and ResNet-18, with `matrixmultiply` as the GEMM peer,
//! measured in the same run (whittle and peer runs interleaved, medians).
//!
//! `cargo run --release -p whittle-kernels --example gemm_bench [filter]`
//!
//! Note: on CPUs with AVX-512, `matrixmultiply` uses AVX-512 kernels while
//! whittle uses AVX2+FMA.

mod common;

use common::{
    giga, rand_vec, ratio, square_geom as geom, time2, us_unit, Args, Budget, Table, Two,
};
use whittle_kernels::conv::Conv;
use whittle_kernels::depthwise::Depthwise;
use whittle_kernels::gemm::{gemm, gemm_scratch_len, Epilogue, Isa, MatRef, PackedA, Serial};
use whittle_kernels::Activation;

fn mm_sgemm(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    // SAFETY: the pointers and row-major strides describe the slices above,
    // whose lengths were just checked.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// (name, M, N, K) as the 1x1 conv / FC layers see them: M = output
/// channels, N = pixels, K = input channels.
const GEMMS: &[(&str, usize, usize, usize)] = &[
    ("mbv2 1x1 32->16 @112", 16, 12544, 32),
    ("mbv2 1x1 16->96 @112", 96, 12544, 16),
    ("mbv2 1x1 96->24 @56", 24, 3136, 96),
    ("mbv2 1x1 24->144 @56", 144, 3136, 24),
    ("mbv2 1x1 144->32 @28", 32, 784, 144),
    ("mbv2 1x1 192->64 @14", 64, 196, 192),
    ("mbv2 1x1 64->384 @14", 384, 196, 64),
    ("mbv2 1x1 576->160 @7", 160, 49, 576),
    ("mbv2 1x1 960->320 @7", 320, 49, 960),
    ("mbv2 1x1 320->1280 @7", 1280, 49, 320),
    ("mbv2 fc 1280->1000 (N=1)", 1000, 1, 1280),
    ("square 512", 512, 512, 512),
];

/// (name, cin, cout, hw, k, stride, pad) convs that run through im2col.
const CONVS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("mbv2 stem 3x3s2 3->32", 3, 32, 224, 3, 2, 1),
    ("r18 conv1 7x7s2 3->64", 3, 64, 224, 7, 2, 3),
    ("r18 3x3 64 @56", 64, 64, 56, 3, 1, 1),
    ("r18 3x3s2 64->128", 64, 128, 56, 3, 2, 1),
    ("r18 3x3 128 @28", 128, 128, 28, 3, 1, 1),
    ("r18 3x3 256 @14", 256, 256, 14, 3, 1, 1),
    ("r18 3x3 512 @7", 512, 512, 7, 3, 1, 1),
];

/// (name, channels, input hw, stride) depthwise 3x3 pad 1 layers.
const DWS: &[(&str, usize, usize, usize)] = &[
    ("mbv2 dw 32 @112 s1", 32, 112, 1),
    ("mbv2 dw 96 @112 s2", 96, 112, 2),
    ("mbv2 dw 144 @56 s1", 144, 56, 1),
    ("mbv2 dw 144 @56 s2", 144, 56, 2),
    ("mbv2 dw 192 @28 s1", 192, 28, 1),
    ("mbv2 dw 192 @28 s2", 192, 28, 2),
    ("mbv2 dw 384 @14 s1", 384, 14, 1),
    ("mbv2 dw 576 @14 s1", 576, 14, 1),
    ("mbv2 dw 576 @14 s2", 576, 14, 2),
    ("mbv2 dw 960 @7 s1", 960, 7, 1),
];

/// About 0.3 s per timed pair.
const BUDGET: Budget = Budget::new(0.3, 7, 3000);

fn main() {
    let args = Args::parse(&[]);
    let isa = Isa::detect();
    let mut totals = [0.0f64; 2];
    println!(
        "isa: {}   (mm = matrixmultiply 0.3; ratio = mm time / whittle time)",
        isa.name()
    );
    println!();
    let table = Table::new(&[28, 5, 6, 5, 10, 10, 8, 6, 8]);
    table.row(&[
        "GEMM (A pre-packed)",
        "M",
        "N",
        "K",
        "whittle",
        "mm",
        "GFLOP/s",
        "ratio",
    ]);
    for &(name, m, n, k) in GEMMS {
        if !args.wants(name) {
            continue;
        }
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let mut c2 = vec![0.0f32; m * n];
        let pa = PackedA::new(MatRef::row_major(&a, m, k).unwrap());
        let bm = MatRef::row_major(&b, k, n).unwrap();
        let mut scratch = vec![0.0f32; gemm_scratch_len(m, n, k, true, false, 1)];
        let ep = Epilogue::default();
        let [tw, tm] = time2(
            BUDGET,
            || gemm(isa, &pa, &bm, &mut c, n, &ep, &mut scratch, &Serial),
            || mm_sgemm(m, n, k, &a, &b, &mut c2),
        )
        .map(|s| s.pick());
        totals[0] += tw;
        totals[1] += tm;
        table.row(&[
            name.to_string(),
            m.to_string(),
            n.to_string(),
            k.to_string(),
            us_unit(tw),
            us_unit(tm),
            giga(2.0 * (m * n * k) as f64, tw),
            ratio(tm / tw),
        ]);
    }
    println!();
    table.row(&[
        "conv via im2col (+bias,relu)",
        "M",
        "N",
        "K",
        "whittle",
        "mm gemm",
        "GFLOP/s",
        "ratio",
        "2 thr x",
    ]);
    for &(name, cin, cout, hw, k, s, p) in CONVS {
        if !args.wants(name) {
            continue;
        }
        let g = geom(cin, cout, 1, hw, k, s, p);
        let (m, n, kk) = (cout, g.out_spatial(), cin * k * k);
        let x = rand_vec(cin * hw * hw, 3);
        let w = rand_vec(m * kk, 4);
        let bias = rand_vec(m, 5);
        let conv = Conv::new(g.clone(), &w, Some(&bias), Activation::Relu);
        let mut y = vec![0.0f32; m * n];
        let mut scratch = vec![0.0f32; conv.scratch_len(1)];
        // The peer multiplies a ready-made im2col matrix: its im2col is free.
        let cols = rand_vec(kk * n, 6);
        let mut c2 = vec![0.0f32; m * n];
        let [tw, tm] = time2(
            BUDGET,
            || conv.run(isa, &x, &mut y, &mut scratch, &Serial),
            || mm_sgemm(m, n, kk, &w, &cols, &mut c2),
        )
        .map(|s| s.pick());
        totals[0] += tw;
        totals[1] += tm;
        let mut s2 = vec![0.0f32; conv.scratch_len(2)];
        let mut y2 = y.clone();
        let [t1, t2] = time2(
            BUDGET,
            || conv.run(isa, &x, &mut y, &mut scratch, &Serial),
            || conv.run(isa, &x, &mut y2, &mut s2, &Two),
        )
        .map(|s| s.pick());
        assert_eq!(y, y2, "thread count changed the result");
        table.row(&[
            name.to_string(),
            m.to_string(),
            n.to_string(),
            kk.to_string(),
            us_unit(tw),
            us_unit(tm),
            giga(2.0 * (m * n * kk) as f64, tw),
            ratio(tm / tw),
            ratio(t1 / t2),
        ]);
    }
    println!();
    let table = Table::new(&[28, 6, 10, 10, 8, 8]);
    table.row(&[
        "depthwise 3x3 (+bias,relu6)",
        "out",
        "simd",
        "portable",
        "GB/s",
        "GMAC/s",
    ]);
    for &(name, c, hw, s) in DWS {
        if !args.wants(name) {
            continue;
        }
        let g = geom(c, c, c, hw, 3, s, 1);
        let x = rand_vec(c * hw * hw, 7);
        let w = rand_vec(c * 9, 8);
        let bias = rand_vec(c, 9);
        let dw = Depthwise::new(
            g.clone(),
            &w,
            Some(&bias),
            Activation::Clip { min: 0.0, max: 6.0 },
        );
        let mut y = vec![0.0f32; c * g.out_spatial()];
        let mut y2 = y.clone();
        let [tw, tp] = time2(
            BUDGET,
            || dw.run(isa, &x, &mut y, &Serial),
            || dw.run(Isa::portable(), &x, &mut y2, &Serial),
        )
        .map(|s| s.pick());
        let bytes = 4.0 * (x.len() + y.len()) as f64;
        let macs = (c * g.out_spatial() * 9) as f64;
        table.row(&[
            name.to_string(),
            g.output[1].to_string(),
            us_unit(tw),
            us_unit(tp),
            giga(bytes, tw),
            giga(macs, tw),
        ]);
    }
    println!(
        "\ntotal of GEMM + conv rows: whittle {:.0}us, mm {:.0}us, ratio {:.2}",
        totals[0] * 1e6,
        totals[1] * 1e6,
        totals[1] / totals[0]
    );
}
