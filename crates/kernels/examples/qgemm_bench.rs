//! int8 GEMM vs the f32 GEMM on the 1x1-conv and im2col (3x3, 7x7) shapes
//! of MobileNetV2 1.0@224 and ResNet-18@224, single thread, measured in the
//! same run (interleaved, medians). M = output channels, K = Cin*kh*kw, N =
//! output pixels; activations depth-major (NCHW / im2col rows), weights
//! pre-packed, output requantized to u8 (int8) or plain f32.
//!
//! `cargo run --release -p whittle-kernels --example qgemm_bench [filter]`
//! (`WHITTLE_BENCH_MIN=1` reports minima instead of medians.)

use std::time::Instant;

use whittle_kernels::gemm::{gemm, gemm_scratch_len, Epilogue, Isa, MatRef, PackedA, Serial};
use whittle_kernels::qgemm::{
    qgemm, qgemm_scratch_len, QActivations, QIsa, QLayout, QOut, QPackedWeights,
};
use whittle_kernels::requant::{QClamp, Requant};

fn rand_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// Median (or minimum) seconds of `a` and of `b`, run alternately.
fn medians(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    a();
    b();
    let t = Instant::now();
    a();
    b();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.3 / once) as usize).clamp(7, 3000);
    let (mut ta, mut tb) = (Vec::with_capacity(reps), Vec::with_capacity(reps));
    for _ in 0..reps {
        let t = Instant::now();
        a();
        ta.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b();
        tb.push(t.elapsed().as_secs_f64());
    }
    let use_min = std::env::var("WHITTLE_BENCH_MIN").is_ok_and(|v| v == "1");
    let pick = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.total_cmp(y));
        if use_min {
            v[0]
        } else {
            v[v.len() / 2]
        }
    };
    (pick(&mut ta), pick(&mut tb))
}

/// (name, M, K, N).
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("mbv2 stem 3x3 3->32 @112", 32, 27, 12544),
    ("mbv2 1x1 32->16 @112", 16, 32, 12544),
    ("mbv2 1x1 16->96 @112", 96, 16, 12544),
    ("mbv2 1x1 96->24 @56", 24, 96, 3136),
    ("mbv2 1x1 24->144 @56", 144, 24, 3136),
    ("mbv2 1x1 144->24 @56", 24, 144, 3136),
    ("mbv2 1x1 144->32 @28", 32, 144, 784),
    ("mbv2 1x1 32->192 @28", 192, 32, 784),
    ("mbv2 1x1 192->64 @14", 64, 192, 196),
    ("mbv2 1x1 64->384 @14", 384, 64, 196),
    ("mbv2 1x1 384->96 @14", 96, 384, 196),
    ("mbv2 1x1 576->160 @7", 160, 576, 49),
    ("mbv2 1x1 160->960 @7", 960, 160, 49),
    ("mbv2 1x1 960->320 @7", 320, 960, 49),
    ("mbv2 1x1 320->1280 @7", 1280, 320, 49),
    ("r18 conv1 7x7 3->64 @112", 64, 147, 12544),
    ("r18 3x3 64->64 @56", 64, 576, 3136),
    ("r18 3x3s2 64->128 @28", 128, 576, 784),
    ("r18 3x3 128->128 @28", 128, 1152, 784),
    ("r18 1x1 ds 64->128 @28", 128, 64, 784),
    ("r18 3x3 128->256 @14", 256, 1152, 196),
    ("r18 3x3 256->256 @14", 256, 2304, 196),
    ("r18 3x3 256->512 @7", 512, 2304, 49),
    ("r18 3x3 512->512 @7", 512, 4608, 49),
];

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let (fisa, qisa) = (Isa::detect(), QIsa::detect());
    println!(
        "f32 isa: {}   int8 isa: {}   single thread; ratio = f32 time / int8 time",
        fisa.name(),
        qisa.name()
    );
    println!(
        "\n{:<28} {:>5} {:>5} {:>6} {:>10} {:>10} {:>9} {:>9} {:>6}",
        "shape", "M", "K", "N", "f32 us", "int8 us", "f32 GMAC", "i8 GMAC", "ratio"
    );
    let (mut tf_all, mut tq_all) = (0.0, 0.0);
    for &(name, m, k, n) in SHAPES {
        if !name.contains(&filter) {
            continue;
        }
        // f32 operands.
        let to_f = |b: &[u8]| {
            b.iter()
                .map(|&v| v as f32 / 128.0 - 1.0)
                .collect::<Vec<_>>()
        };
        let (wb, xb) = (rand_bytes(m * k, 1), rand_bytes(k * n, 2));
        let (wf, xf) = (to_f(&wb), to_f(&xb));
        let pa = PackedA::new(MatRef::row_major(&wf, m, k).unwrap());
        let bm = MatRef::row_major(&xf, k, n).unwrap();
        let mut cf = vec![0.0f32; m * n];
        let mut fscratch = vec![0.0f32; gemm_scratch_len(m, n, k, true, false, 1)];
        let ep = Epilogue::default();
        // int8 operands: i8 weights (zero point 0), u8 activations.
        let wq: Vec<i8> = wb.iter().map(|&v| v as i8).collect();
        let pw = QPackedWeights::new(&wq, m, k, &[0]).unwrap();
        let xq = QActivations::new(&xb, k, n, n, QLayout::DepthMajor, 128u8).unwrap();
        let rq = vec![Requant::from_real(0.0004).unwrap(); m];
        let bias = vec![100i32; m];
        let mut cq = vec![0u8; m * n];
        let mut qscratch = vec![0u8; qgemm_scratch_len(m, k, n, 1)];
        let (tf, tq) = medians(
            || gemm(fisa, &pa, &bm, &mut cf, n, &ep, &mut fscratch, &Serial),
            || {
                let out = QOut::U8 {
                    data: &mut cq,
                    requant: &rq,
                    clamp: QClamp::range(128, 0, 255),
                };
                qgemm(
                    qisa,
                    &pw,
                    &xq,
                    Some(&bias),
                    out,
                    n,
                    1,
                    &mut qscratch,
                    &Serial,
                )
            },
        );
        tf_all += tf;
        tq_all += tq;
        let macs = (m * k * n) as f64;
        println!(
            "{:<28} {:>5} {:>5} {:>6} {:>10.1} {:>10.1} {:>9.1} {:>9.1} {:>6.2}",
            name,
            m,
            k,
            n,
            tf * 1e6,
            tq * 1e6,
            macs / tf / 1e9,
            macs / tq / 1e9,
            tf / tq
        );
    }
    println!(
        "\ntotal: f32 {:.0} us, int8 {:.0} us, ratio {:.2}",
        tf_all * 1e6,
        tq_all * 1e6,
        tf_all / tq_all
    );
}
