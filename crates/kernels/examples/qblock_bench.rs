//! int4 block GEMM (`qblock`, block size 32) vs the int8 GEMM (`qgemm`) on
//! the 1x1-conv shapes of MobileNetV2 1.0@224 (activations depth-major, as
//! NCHW) and on MatMuls with 1024x1024 and 4096x1024 (N x K) weights at M =
//! 1 and 64 rows (activations position-major), single thread, measured in
//! the same run (interleaved, medians). Output u8 in both.
//!
//! `cargo run --release -p whittle-kernels --example qblock_bench [filter]`
//! (`WHITTLE_BENCH_MIN=1` reports minima instead of medians.)

mod common;

use common::{giga, rand_bytes, ratio, time2, us, Args, Budget, Table};
use whittle_kernels::gemm::Serial;
use whittle_kernels::qblock::{qblock, qblock_scratch_len, QBlockInput, QBlockOut, QBlockWeights};
use whittle_kernels::qgemm::{
    qgemm, qgemm_scratch_len, QActivations, QIsa, QLayout, QOut, QPackedWeights,
};
use whittle_kernels::requant::{QClamp, Requant};

const BLOCK: usize = 32;

/// (name, channels M, depth K, positions N, layout).
const SHAPES: &[(&str, usize, usize, usize, QLayout)] = &[
    ("mbv2 1x1 32->16 @112", 16, 32, 12544, QLayout::DepthMajor),
    ("mbv2 1x1 16->96 @112", 96, 16, 12544, QLayout::DepthMajor),
    ("mbv2 1x1 96->24 @56", 24, 96, 3136, QLayout::DepthMajor),
    ("mbv2 1x1 24->144 @56", 144, 24, 3136, QLayout::DepthMajor),
    ("mbv2 1x1 144->24 @56", 24, 144, 3136, QLayout::DepthMajor),
    ("mbv2 1x1 144->32 @28", 32, 144, 784, QLayout::DepthMajor),
    ("mbv2 1x1 32->192 @28", 192, 32, 784, QLayout::DepthMajor),
    ("mbv2 1x1 192->32 @28", 32, 192, 784, QLayout::DepthMajor),
    ("mbv2 1x1 192->64 @14", 64, 192, 196, QLayout::DepthMajor),
    ("mbv2 1x1 64->384 @14", 384, 64, 196, QLayout::DepthMajor),
    ("mbv2 1x1 384->64 @14", 64, 384, 196, QLayout::DepthMajor),
    ("mbv2 1x1 384->96 @14", 96, 384, 196, QLayout::DepthMajor),
    ("mbv2 1x1 96->576 @14", 576, 96, 196, QLayout::DepthMajor),
    ("mbv2 1x1 576->96 @14", 96, 576, 196, QLayout::DepthMajor),
    ("mbv2 1x1 576->160 @7", 160, 576, 49, QLayout::DepthMajor),
    ("mbv2 1x1 160->960 @7", 960, 160, 49, QLayout::DepthMajor),
    ("mbv2 1x1 960->160 @7", 160, 960, 49, QLayout::DepthMajor),
    ("mbv2 1x1 960->320 @7", 320, 960, 49, QLayout::DepthMajor),
    ("mbv2 1x1 320->1280 @7", 1280, 320, 49, QLayout::DepthMajor),
    (
        "matmul 1024x1024 M=1",
        1024,
        1024,
        1,
        QLayout::PositionMajor,
    ),
    (
        "matmul 1024x1024 M=64",
        1024,
        1024,
        64,
        QLayout::PositionMajor,
    ),
    (
        "matmul 4096x1024 M=1",
        4096,
        1024,
        1,
        QLayout::PositionMajor,
    ),
    (
        "matmul 4096x1024 M=64",
        4096,
        1024,
        64,
        QLayout::PositionMajor,
    ),
];

fn main() {
    let args = Args::parse(&[]);
    let isa = QIsa::detect();
    println!(
        "isa: {}   single thread; block {BLOCK}; ratio = int8 time / int4 time",
        isa.name()
    );
    println!();
    let table = Table::new(&[26, 5, 5, 6, 9, 9, 8, 8, 6]);
    table.row(&[
        "shape", "M", "K", "N", "int8 us", "int4 us", "i8 GMAC", "i4 GMAC", "ratio",
    ]);
    let (mut t8_all, mut t4_all) = (0.0, 0.0);
    for &(name, m, k, n, layout) in SHAPES {
        if !args.wants(name) {
            continue;
        }
        let wb = rand_bytes(m * k, 1);
        let xb = rand_bytes(k * n, 2);
        let ld = if layout == QLayout::DepthMajor { n } else { k };
        let (cs, ns) = if layout == QLayout::DepthMajor {
            (n, 1)
        } else {
            (1, m)
        };
        // int8: i8 weights, zero point 0.
        let w8: Vec<i8> = wb.iter().map(|&v| v as i8).collect();
        let pw8 = QPackedWeights::new(&w8, m, k, &[0]).unwrap();
        let x8 = QActivations::new(&xb, k, n, ld, layout, 128u8).unwrap();
        let rq = vec![Requant::from_real(0.0004).unwrap(); m];
        let bias8 = vec![100i32; m];
        let mut c8 = vec![0u8; m * n];
        let mut s8 = vec![0u8; qgemm_scratch_len(m, k, n, 1)];
        // int4: the same bytes folded into [-8, 7].
        let w4: Vec<i8> = wb.iter().map(|&v| (v % 16) as i8 - 8).collect();
        let nb = k.div_ceil(BLOCK);
        let sc = vec![0.01f32; m * nb];
        let pw4 = QBlockWeights::new(&w4, m, k, k, 1, BLOCK, &sc, nb, 1).unwrap();
        let x4 = QBlockInput::new(&xb, k, n, ld, layout).unwrap();
        let bias4 = vec![0.1f32; m];
        let o = QBlockOut {
            x_scale: 0.02,
            x_zero_point: 128,
            y_scale: 0.05,
            clamp: QClamp::range(128, 0, 255),
            bias: Some(&bias4),
        };
        let mut c4 = vec![0u8; m * n];
        let mut s4 = vec![0u8; qblock_scratch_len(&pw4, n, 1)];
        let [t8, t4] = time2(
            Budget::new(0.3, 7, 3000),
            || {
                let out = QOut::U8 {
                    data: &mut c8,
                    requant: &rq,
                    clamp: QClamp::range(128, 0, 255),
                };
                qgemm(isa, &pw8, &x8, Some(&bias8), out, cs, ns, &mut s8, &Serial)
            },
            || qblock(isa, &pw4, &x4, &o, &mut c4, cs, ns, &mut s4, &Serial),
        )
        .map(|s| s.pick());
        t8_all += t8;
        t4_all += t4;
        let macs = (m * k * n) as f64;
        table.row(&[
            name.to_string(),
            m.to_string(),
            k.to_string(),
            n.to_string(),
            us(t8),
            us(t4),
            giga(macs, t8),
            giga(macs, t4),
            ratio(t8 / t4),
        ]);
    }
    println!(
        "\ntotal: int8 {:.0} us, int4 {:.0} us, ratio {:.2}",
        t8_all * 1e6,
        t4_all * 1e6,
        t8_all / t4_all
    );
}
