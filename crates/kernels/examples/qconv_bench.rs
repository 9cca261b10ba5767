//! int8 depthwise conv against whittle's f32 depthwise kernel on the
//! depthwise layers of MobileNetV2 1.0 @ 224, single thread, interleaved
//! in one run; minimum of many runs (the machine is shared: the minimum is
//! the steadier figure). Also the AVX2 forms of both.
//!
//! `cargo run --release -p whittle-kernels --example qconv_bench`

use std::time::Instant;

use whittle_kernels::conv::ConvGeom;
use whittle_kernels::depthwise::Depthwise;
use whittle_kernels::gemm::{Isa, Serial};
use whittle_kernels::qconv::depthwise::QDepthwise;
use whittle_kernels::qconv::{QInput, QIsa};
use whittle_kernels::requant::{QClamp, Requant};
use whittle_kernels::Activation;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// Minimum seconds of each closure, run alternately for ~0.3 s.
fn time_all(fs: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let t = Instant::now();
    for f in fs.iter_mut() {
        f();
    }
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.3 / once) as usize).clamp(5, 3000);
    let mut best = vec![f64::INFINITY; fs.len()];
    for _ in 0..reps {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            f();
            best[i] = best[i].min(t.elapsed().as_secs_f64());
        }
    }
    best
}

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
    println!(
        "{:<16} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7}",
        "layer", "f32 us", "i8 us", "f32 avx2", "i8 avx2", "ratio", "r avx2"
    );
    let mut tot = [0.0f64; 4];
    let mut s = 7u64;
    // Optional filter: only layers whose input size is this.
    let only: Option<usize> = std::env::args().nth(1).and_then(|a| a.parse().ok());
    for &(c, hw, st, count) in layers {
        if only.is_some_and(|o| o != hw) {
            continue;
        }
        let out = (hw + 2 - 3) / st + 1;
        let g = ConvGeom {
            batch: 1,
            cin: c,
            cout: c,
            groups: c,
            input: [1, hw, hw],
            kernel: [1, 3, 3],
            stride: [1, st, st],
            dilation: [1; 3],
            pad_begin: [0, 1, 1],
            output: [1, out, out],
        };
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
        let t = time_all(&mut [
            &mut || f32k.run(fi, &xf, &mut yf, &Serial),
            &mut || qk.run(qi, &xq, &mut yq, &mut scratch, &Serial),
            &mut || f32k.run(fa, &xf, &mut yf2, &Serial),
            &mut || qk.run(qa, &xq, &mut yq2, &mut scratch2, &Serial),
        ]);
        for (a, b) in tot.iter_mut().zip(&t) {
            *a += b * count as f64;
        }
        println!(
            "{:<16} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.2}x {:>6.2}x",
            format!("{c}x{hw}x{hw} s{st} (x{count})"),
            t[0] * 1e6,
            t[1] * 1e6,
            t[2] * 1e6,
            t[3] * 1e6,
            t[0] / t[1],
            t[2] / t[3]
        );
    }
    println!(
        "{:<16} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>6.2}x {:>6.2}x",
        "model total",
        tot[0] * 1e6,
        tot[1] * 1e6,
        tot[2] * 1e6,
        tot[3] * 1e6,
        tot[0] / tot[1],
        tot[2] / tot[3]
    );
}
