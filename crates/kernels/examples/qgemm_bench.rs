//! int8 GEMM vs the f32 GEMM on the 1x1-conv and im2col (3x3, 7x7) shapes
//! of MobileNetV2 1.0@224 and ResNet-18@224, single thread, measured in the
//! same run (interleaved, medians). M = output channels, K = Cin*kh*kw, N =
//! output pixels; activations depth-major (NCHW / im2col rows), weights
//! pre-packed, output requantized to u8 (int8) or plain f32. The fully
//! connected classifiers (N = 1) run the matrix-vector path.
//!
//! `cargo run --release -p whittle-kernels --example qgemm_bench [filter]`
//! (`WHITTLE_BENCH_MIN=1` reports minima instead of medians;
//! `WHITTLE_QISA=avx2` or `portable` picks a slower int8 path.)

mod common;

use common::{giga, rand_bytes, ratio, time2, us, Args, Budget, Table};
use whittle_kernels::gemm::{gemm, gemm_scratch_len, Epilogue, Isa, MatRef, PackedA, Serial};
use whittle_kernels::qgemm::{
    qgemm, qgemm_scratch_len, QActivations, QIsa, QLayout, QOut, QPackedWeights,
};
use whittle_kernels::requant::{QClamp, Requant};

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
    ("mbv2 fc 1280->1000", 1000, 1280, 1),
    ("r18 conv1 7x7 3->64 @112", 64, 147, 12544),
    ("r18 3x3 64->64 @56", 64, 576, 3136),
    ("r18 3x3s2 64->128 @28", 128, 576, 784),
    ("r18 3x3 128->128 @28", 128, 1152, 784),
    ("r18 1x1 ds 64->128 @28", 128, 64, 784),
    ("r18 3x3 128->256 @14", 256, 1152, 196),
    ("r18 3x3 256->256 @14", 256, 2304, 196),
    ("r18 3x3 256->512 @7", 512, 2304, 49),
    ("r18 3x3 512->512 @7", 512, 4608, 49),
    ("r18 fc 512->1000", 1000, 512, 1),
];

fn main() {
    let args = Args::parse(&[]);
    let (fisa, mut qisa) = (Isa::detect(), QIsa::detect());
    match std::env::var("WHITTLE_QISA").as_deref() {
        Ok("avx2") => qisa = qisa.without_avx512(),
        Ok("portable") => qisa = QIsa::portable(),
        _ => {}
    }
    println!(
        "f32 isa: {}   int8 isa: {}   single thread; ratio = f32 time / int8 time",
        fisa.name(),
        qisa.name()
    );
    println!();
    let table = Table::new(&[28, 5, 5, 6, 10, 10, 9, 9, 6]);
    table.row(&[
        "shape", "M", "K", "N", "f32 us", "int8 us", "f32 GMAC", "i8 GMAC", "ratio",
    ]);
    let (mut tf_all, mut tq_all) = (0.0, 0.0);
    for &(name, m, k, n) in SHAPES {
        if !args.wants(name) {
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
        let [tf, tq] = time2(
            Budget::new(0.3, 7, 3000),
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
        )
        .map(|s| s.pick());
        tf_all += tf;
        tq_all += tq;
        let macs = (m * k * n) as f64;
        table.row(&[
            name.to_string(),
            m.to_string(),
            k.to_string(),
            n.to_string(),
            us(tf),
            us(tq),
            giga(macs, tf),
            giga(macs, tq),
            ratio(tf / tq),
        ]);
    }
    println!(
        "\ntotal: f32 {:.0} us, int8 {:.0} us, ratio {:.2}",
        tf_all * 1e6,
        tq_all * 1e6,
        tf_all / tq_all
    );
}
