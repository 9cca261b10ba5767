//! int8 depthwise conv against whittle's f32 depthwise kernel on the
//! depthwise layers of MobileNetV2 1.0 @ 224, single thread, interleaved
//! in one run; minimum of many runs (the machine is shared: the minimum is
//! the steadier figure). Also the AVX2 forms of both.
//!
//! `cargo run --release -p whittle-kernels --example qconv_bench`

mod common;

use common::{square_geom, time, times_x, us, xorshift, Args, Budget, Table};
use whittle_kernels::depthwise::Depthwise;
use whittle_kernels::gemm::{Isa, Serial};
use whittle_kernels::qconv::depthwise::QDepthwise;
use whittle_kernels::qconv::{QInput, QIsa};
use whittle_kernels::requant::{QClamp, Requant};
use whittle_kernels::Activation;

fn main() {
    // (channels, input size, stride, how many such layers in the model).
    let layers: &[(usize, usize, usize, usize)] = &[
        (32, 112, 1, 1),
        (96, 112, 2, 1),
        (144, 56, 1, 1),
        (144, 56, 2, 1),
        (192, 28, 1, 2),
        (192, 28, 2, 1),
        (384, 14, 1, 4),
        (576, 14, 1, 2),
        (576, 14, 2, 1),
        (960, 7, 1, 3),
    ];
    let (fi, qi) = (Isa::detect(), QIsa::detect());
    let (fa, qa) = (fi.without_avx512(), qi.without_avx512());
    println!(
        "depthwise 3x3, MobileNetV2 1.0 @ 224, 1 thread; f32 {} / {} vs int8 {} / {}",
        fi.name(),
        fa.name(),
        qi.name(),
        qa.name()
    );
    let table = Table::new(&[16, 9, 9, 9, 9, 7, 7]);
    table.row(&[
        "layer", "f32 us", "i8 us", "f32 avx2", "i8 avx2", "ratio", "r avx2",
    ]);
    let mut tot = [0.0f64; 4];
    let mut s = 7u64;
    // Optional filter: only layers whose input size is this.
    let only: Option<usize> = Args::parse(&[]).filter.parse().ok();
    for &(c, hw, st, count) in layers {
        if only.is_some_and(|o| o != hw) {
            continue;
        }
        let g = square_geom(c, c, c, hw, 3, st, 1);
        let out = g.output[1];
        let xf: Vec<f32> = (0..c * hw * hw)
            .map(|_| (xorshift(&mut s) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let wf: Vec<f32> = (0..c * 9)
            .map(|_| (xorshift(&mut s) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let bf = vec![0.1f32; c];
        let act = Activation::Clip { min: 0.0, max: 6.0 };
        let f32k = Depthwise::new(g.clone(), &wf, Some(&bf), act);
        let xq: Vec<u8> = (0..c * hw * hw).map(|_| xorshift(&mut s) as u8).collect();
        let wq: Vec<i16> = (0..c * 9)
            .map(|_| (xorshift(&mut s) % 255) as i16 - 127)
            .collect();
        let bq = vec![100i32; c];
        let rq = vec![Requant::from_real(0.0007).unwrap(); c];
        let clamp = QClamp {
            zero_point: 0,
            min: 0,
            max: 127,
        };
        let input = QInput {
            signed: true,
            zero_point: 3,
        };
        let qk = QDepthwise::new(g.clone(), input, &wq, Some(&bq), &rq, clamp);
        let mut yf = vec![0.0f32; c * out * out];
        let mut yf2 = yf.clone();
        let mut yq = vec![0u8; c * out * out];
        let mut yq2 = yq.clone();
        let mut scratch = vec![0i32; qk.scratch_len(1)];
        let mut scratch2 = scratch.clone();
        let t: Vec<f64> = time(
            Budget::new(0.3, 5, 3000),
            &mut [
                &mut || f32k.run(fi, &xf, &mut yf, &Serial),
                &mut || qk.run(qi, &xq, &mut yq, &mut scratch, &Serial),
                &mut || f32k.run(fa, &xf, &mut yf2, &Serial),
                &mut || qk.run(qa, &xq, &mut yq2, &mut scratch2, &Serial),
            ],
        )
        .iter()
        .map(|s| s.min)
        .collect();
        for (a, b) in tot.iter_mut().zip(&t) {
            *a += b * count as f64;
        }
        table.row(&[
            format!("{c}x{hw}x{hw} s{st} (x{count})"),
            us(t[0]),
            us(t[1]),
            us(t[2]),
            us(t[3]),
            times_x(t[0] / t[1]),
            times_x(t[2] / t[3]),
        ]);
    }
    table.row(&[
        "model total".to_string(),
        us(tot[0]),
        us(tot[1]),
        us(tot[2]),
        us(tot[3]),
        times_x(tot[0] / tot[1]),
        times_x(tot[2] / tot[3]),
    ]);
}
