//! int8 im2col conv (QConv) against whittle's f32 Conv on the non-depthwise,
//! non-pointwise conv layers of ResNet-18 and MobileNetV2 1.0 @ 224, single
//! thread, interleaved, minimum of many runs. Also the int8 GEMM alone at
//! the same shape (a 1x1 conv over `cin * k * k` channels: what the conv
//! would cost if im2col were free), so `i8/gemm` is the packing overhead.
//!
//! `cargo run --release -p whittle-kernels --example qconv_im2col_bench`

mod common;

use common::{square_geom, time, times_x, us, xorshift, Args, Budget, Table};
use whittle_kernels::conv::{Conv, ConvGeom};
use whittle_kernels::gemm::{Isa, Serial};
use whittle_kernels::qconv::conv::{QConv, QConvOutput};
use whittle_kernels::qconv::{QInput, QIsa};
use whittle_kernels::requant::{QClamp, Requant};
use whittle_kernels::Activation;

/// (name, cin, cout, input size, kernel, stride, pad, count).
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

fn geom(cin: usize, cout: usize, hw: usize, k: usize, s: usize, pad: usize) -> ConvGeom {
    square_geom(cin, cout, 1, hw, k, s, pad)
}

fn qconv(g: &ConvGeom, s: &mut u64) -> QConv {
    let n = g.cout * g.cin * g.kernel_size();
    let w: Vec<i8> = (0..n).map(|_| xorshift(s) as i8).collect();
    let bias = vec![100i32; g.cout];
    let output = QConvOutput::Requant {
        requant: vec![Requant::from_real(0.0007).unwrap(); g.cout],
        clamp: QClamp {
            zero_point: -128,
            min: -128,
            max: 127,
        },
        signed: true,
    };
    let input = QInput {
        signed: true,
        zero_point: -5,
    };
    QConv::new(g.clone(), input, &w, &[0], Some(&bias), output).unwrap()
}

fn main() {
    let layers: &[Layer] = &[
        ("r18 stem", 3, 64, 224, 7, 2, 3, 1),
        ("r18 l1", 64, 64, 56, 3, 1, 1, 4),
        ("r18 l2.0", 64, 128, 56, 3, 2, 1, 1),
        ("r18 l2.0 ds", 64, 128, 56, 1, 2, 0, 1),
        ("r18 l2", 128, 128, 28, 3, 1, 1, 3),
        ("r18 l3.0", 128, 256, 28, 3, 2, 1, 1),
        ("r18 l3.0 ds", 128, 256, 28, 1, 2, 0, 1),
        ("r18 l3", 256, 256, 14, 3, 1, 1, 3),
        ("r18 l4.0", 256, 512, 14, 3, 2, 1, 1),
        ("r18 l4.0 ds", 256, 512, 14, 1, 2, 0, 1),
        ("r18 l4", 512, 512, 7, 3, 1, 1, 3),
        ("mnv2 stem", 3, 32, 224, 3, 2, 1, 1),
    ];
    let (fi, qi) = (Isa::detect(), QIsa::detect());
    println!(
        "int8 im2col conv vs f32 conv, 1 thread; f32 {} vs int8 {}",
        fi.name(),
        qi.name()
    );
    let table = Table::new(&[20, 9, 9, 9, 8, 8]);
    table.row(&["layer", "f32 us", "i8 us", "gemm us", "f32/i8", "i8/gemm"]);
    let mut s = 9u64;
    let args = Args::parse(&[]);
    let (mut tf, mut tq) = (0.0, 0.0);
    for &(name, cin, cout, hw, k, st, pad, count) in layers {
        if !args.wants(name) {
            continue;
        }
        let g = geom(cin, cout, hw, k, st, pad);
        let [_, oh, ow] = g.output;
        let osp = oh * ow;
        // The same GEMM with the im2col matrix given: a pointwise conv.
        let gg = geom(cin * k * k, cout, 1, 1, 1, 0);
        let gg = ConvGeom {
            input: [1, oh, ow],
            output: [1, oh, ow],
            ..gg
        };
        let xf: Vec<f32> = (0..cin * hw * hw)
            .map(|_| (xorshift(&mut s) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let wf: Vec<f32> = (0..cout * cin * k * k)
            .map(|_| (xorshift(&mut s) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let fk = Conv::new(g.clone(), &wf, Some(&vec![0.1; cout]), Activation::Relu);
        let qk = qconv(&g, &mut s);
        let gk = qconv(&gg, &mut s);
        let xq: Vec<u8> = (0..cin * hw * hw).map(|_| xorshift(&mut s) as u8).collect();
        let xg: Vec<u8> = (0..cin * k * k * osp)
            .map(|_| xorshift(&mut s) as u8)
            .collect();
        let mut yf = vec![0f32; cout * osp];
        let mut yq = vec![0u8; cout * osp];
        let mut yg = yq.clone();
        let mut sf = vec![0f32; fk.scratch_len(1)];
        let mut sq = vec![0u8; qk.scratch_len(1)];
        let mut sg = vec![0u8; gk.scratch_len(1)];
        let t: Vec<f64> = time(
            Budget::new(0.4, 5, 3000),
            &mut [
                &mut || fk.run(fi, &xf, &mut yf, &mut sf, &Serial),
                &mut || qk.run(qi, &xq, &mut yq, &mut sq, &Serial),
                &mut || gk.run(qi, &xg, &mut yg, &mut sg, &Serial),
            ],
        )
        .iter()
        .map(|s| s.min)
        .collect();
        tf += t[0] * count as f64;
        tq += t[1] * count as f64;
        table.row(&[
            format!("{name} (x{count})"),
            us(t[0]),
            us(t[1]),
            us(t[2]),
            times_x(t[0] / t[1]),
            times_x(t[1] / t[2]),
        ]);
    }
    table.row(&[
        "total".to_string(),
        us(tf),
        us(tq),
        String::new(),
        times_x(tf / tq),
    ]);
}
