//! Conv and depthwise layers of MobileNetV2 and ResNet-18: the current
//! kernels against the previous forms (im2col GEMM for dense convs, the
//! AVX2 row kernels for depthwise),
//! interleaved in one run, minimum and median of many runs (the machine is
//! shared: the minimum is the steadier figure).
//!
//! `cargo run --release -p whittle-kernels --example conv_bench [filter]`

mod common;

use common::{giga, rand_vec, ratio, square_geom, time2, Args, Budget, Stats, Table, Two};
use whittle_kernels::conv::{Conv, ConvGeom};
use whittle_kernels::depthwise::Depthwise;
use whittle_kernels::gemm::{Isa, Serial};
use whittle_kernels::Activation;

/// (name, cin, cout, groups, hw, k, stride, pad).
type Layer = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const LAYERS: &[Layer] = &[
    ("mbv2 1x1 32->16 @112", 32, 16, 1, 112, 1, 1, 0),
    ("mbv2 1x1 16->96 @112", 16, 96, 1, 112, 1, 1, 0),
    ("mbv2 1x1 96->24 @56", 96, 24, 1, 56, 1, 1, 0),
    ("mbv2 1x1 24->144 @56", 24, 144, 1, 56, 1, 1, 0),
    ("mbv2 1x1 144->24 @56", 144, 24, 1, 56, 1, 1, 0),
    ("mbv2 1x1 144->32 @28", 144, 32, 1, 28, 1, 1, 0),
    ("mbv2 1x1 192->32 @28", 192, 32, 1, 28, 1, 1, 0),
    ("mbv2 1x1 32->192 @28", 32, 192, 1, 28, 1, 1, 0),
    ("mbv2 1x1 384->64 @14", 384, 64, 1, 14, 1, 1, 0),
    ("mbv2 1x1 64->384 @14", 64, 384, 1, 14, 1, 1, 0),
    ("mbv2 1x1 576->96 @14", 576, 96, 1, 14, 1, 1, 0),
    ("mbv2 1x1 96->576 @14", 96, 576, 1, 14, 1, 1, 0),
    ("mbv2 1x1 576->160 @7", 576, 160, 1, 7, 1, 1, 0),
    ("mbv2 1x1 160->960 @7", 160, 960, 1, 7, 1, 1, 0),
    ("mbv2 1x1 960->160 @7", 960, 160, 1, 7, 1, 1, 0),
    ("mbv2 1x1 960->320 @7", 960, 320, 1, 7, 1, 1, 0),
    ("mbv2 1x1 320->1280 @7", 320, 1280, 1, 7, 1, 1, 0),
    ("mbv2 stem 3x3s2 3->32 @224", 3, 32, 1, 224, 3, 2, 1),
    ("mbv2.35 stem 3x3s2 3->16 @144", 3, 16, 1, 144, 3, 2, 1),
    ("r18 conv1 7x7s2 3->64 @224", 3, 64, 1, 224, 7, 2, 3),
    ("r18 3x3 64 @56", 64, 64, 1, 56, 3, 1, 1),
    ("r18 3x3s2 64->128 @56", 64, 128, 1, 56, 3, 2, 1),
    ("r18 3x3 128 @28", 128, 128, 1, 28, 3, 1, 1),
    ("r18 3x3s2 128->256 @28", 128, 256, 1, 28, 3, 2, 1),
    ("r18 3x3 256 @14", 256, 256, 1, 14, 3, 1, 1),
    ("r18 3x3s2 256->512 @14", 256, 512, 1, 14, 3, 2, 1),
    ("r18 3x3 512 @7", 512, 512, 1, 7, 3, 1, 1),
    ("r18 1x1s2 256->512 @14", 256, 512, 1, 14, 1, 2, 0),
    ("mbv2 dw 32 @112 s1", 32, 32, 32, 112, 3, 1, 1),
    ("mbv2 dw 96 @112 s2", 96, 96, 96, 112, 3, 2, 1),
    ("mbv2 dw 144 @56 s1", 144, 144, 144, 56, 3, 1, 1),
    ("mbv2 dw 144 @56 s2", 144, 144, 144, 56, 3, 2, 1),
    ("mbv2 dw 192 @28 s1", 192, 192, 192, 28, 3, 1, 1),
    ("mbv2 dw 192 @28 s2", 192, 192, 192, 28, 3, 2, 1),
    ("mbv2 dw 384 @14 s1", 384, 384, 384, 14, 3, 1, 1),
    ("mbv2 dw 576 @14 s1", 576, 576, 576, 14, 3, 1, 1),
    ("mbv2 dw 576 @14 s2", 576, 576, 576, 14, 3, 2, 1),
    ("mbv2 dw 960 @7 s1", 960, 960, 960, 7, 3, 1, 1),
    ("mbv2.35 dw 48 @72 s2", 48, 48, 48, 72, 3, 2, 1),
    ("mbv2.35 dw 336 @5 s1", 336, 336, 336, 5, 3, 1, 1),
];

fn geom(l: &Layer) -> ConvGeom {
    let &(_, cin, cout, groups, hw, k, s, p) = l;
    square_geom(cin, cout, groups, hw, k, s, p)
}

/// About 0.4 s per timed pair.
const BUDGET: Budget = Budget::new(0.4, 9, 5000);

/// `min / median` in microseconds.
fn min_med(s: Stats) -> String {
    format!("{:>7.1} / {:>7.1}", s.min * 1e6, s.median * 1e6)
}

fn main() {
    let args = Args::parse(&[]);
    let isa = Isa::detect();
    println!("isa {}; times in us as min / median", isa.name());
    let table = Table::new(&[32, 17, 17, 7, 8, 7]);
    table.row(&["layer", "new", "old", "speedup", "GFLOP/s", "2thr x"]);
    let act = Activation::Clip { min: 0.0, max: 6.0 };
    let mut total = [0.0f64; 2];
    for l in LAYERS {
        if !args.wants(l.0) {
            continue;
        }
        let g = geom(l);
        let x = rand_vec(g.cin * g.in_spatial(), 3);
        let w = rand_vec(g.cout * g.cin_g() * g.kernel_size(), 4);
        let bias = rand_vec(g.cout, 5);
        let mut y = vec![0.0f32; g.cout * g.out_spatial()];
        let mut y2 = y.clone();
        let [new, old, two] = if g.groups == g.cin && g.groups > 1 {
            let dw = Depthwise::new(g.clone(), &w, Some(&bias), act);
            // The previous kernels are the AVX2 ones.
            let [new, old] = time2(
                BUDGET,
                || dw.run(isa, &x, &mut y, &Serial),
                || dw.run(isa.without_avx512(), &x, &mut y2, &Serial),
            );
            let [_, two] = time2(
                BUDGET,
                || dw.run(isa, &x, &mut y, &Serial),
                || dw.run(isa, &x, &mut y2, &Two),
            );
            assert_eq!(y, y2, "thread count changed the result");
            [new, old, two]
        } else {
            let conv = Conv::new(g.clone(), &w, Some(&bias), act);
            let prev = Conv::new_im2col(g.clone(), &w, Some(&bias), act);
            let len = conv.scratch_len(2).max(prev.scratch_len(2));
            let mut s1 = vec![0.0f32; len];
            let mut s2 = vec![0.0f32; len];
            let [new, old] = time2(
                BUDGET,
                || conv.run(isa, &x, &mut y, &mut s1, &Serial),
                || prev.run(isa, &x, &mut y2, &mut s2, &Serial),
            );
            let [_, two] = time2(
                BUDGET,
                || conv.run(isa, &x, &mut y, &mut s1, &Serial),
                || conv.run(isa, &x, &mut y2, &mut s2, &Two),
            );
            assert_eq!(y, y2, "thread count changed the result");
            [new, old, two]
        };
        total[0] += new.min;
        total[1] += old.min;
        let algo = if g.groups == g.cin && g.groups > 1 {
            String::from("dw")
        } else {
            format!("{:?}", Conv::new(g.clone(), &w, None, act).algo())
        };
        table.row(&[
            l.0.to_string(),
            min_med(new),
            min_med(old),
            ratio(old.min / new.min),
            giga(2.0 * g.macs() as f64, new.min),
            ratio(new.min / two.min),
            algo,
        ]);
    }
    println!(
        "total (min): new {:.0} us, old {:.0} us",
        total[0] * 1e6,
        total[1] * 1e6
    );
}
