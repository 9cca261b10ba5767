//! GEMM and depthwise microbenchmark on the layer shapes of MobileNetV2 and
//! ResNet-18, with `matrixmultiply` as the peer measured in the same run.
//!
//! `cargo run --release -p whittle-kernels --example gemm_bench [filter]`

use std::time::Instant;

use whittle_kernels::gemm::{gemm, gemm_scratch_len, Epilogue, Isa, MatRef, PackedA, Serial};

fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Median seconds of `f` over enough repetitions to fill ~0.2 s.
fn median_secs(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((0.2 / once) as usize).clamp(5, 2000);
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[reps / 2]
}

/// (name, M, N, K): M = output channels, N = output pixels, K = input
/// channels x kernel area, as the conv layers see them.
const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("mbv2 stem 3x3s2 (im2col)", 32, 12544, 27),
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
    ("mbv2 fc 1280->1000", 1000, 1, 1280),
    ("r18 conv1 7x7s2 (im2col)", 64, 12544, 147),
    ("r18 3x3 64 @56 (im2col)", 64, 3136, 576),
    ("r18 3x3 128 @28 (im2col)", 128, 784, 1152),
    ("r18 3x3 256 @14 (im2col)", 256, 196, 2304),
    ("r18 3x3 512 @7 (im2col)", 512, 49, 4608),
    ("square 512", 512, 512, 512),
];

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let isa = Isa::detect();
    println!("isa: {}", isa.name());
    println!(
        "{:<28} {:>5} {:>6} {:>5} {:>9} {:>9} {:>9} {:>7}",
        "gemm shape", "M", "N", "K", "whittle", "mm", "GF/s w", "ratio"
    );
    for &(name, m, n, k) in SHAPES {
        if !name.contains(&filter) {
            continue;
        }
        let a = rand_vec(m * k, 1);
        let b = rand_vec(k * n, 2);
        let mut c = vec![0.0f32; m * n];
        let pa = PackedA::new(MatRef::row_major(&a, m, k).unwrap());
        let bm = MatRef::row_major(&b, k, n).unwrap();
        let mut scratch = vec![0.0f32; gemm_scratch_len(m, n, k, true, false, 1)];
        let ep = Epilogue::default();
        let t_w = median_secs(|| gemm(isa, &pa, &bm, &mut c, n, &ep, &mut scratch, &Serial));
        let t_mm = median_secs(|| unsafe {
            // SAFETY: pointers and strides describe the live vectors above.
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
        });
        let gf = 2.0 * (m * n * k) as f64 / t_w / 1e9;
        println!(
            "{:<28} {:>5} {:>6} {:>5} {:>7.1}us {:>7.1}us {:>9.1} {:>7.2}",
            name,
            m,
            n,
            k,
            t_w * 1e6,
            t_mm * 1e6,
            gf,
            t_mm / t_w
        );
    }
}
