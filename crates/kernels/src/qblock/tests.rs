use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::gemm::tests_support::Threads;
use crate::gemm::Serial;
use crate::qgemm::QLayout;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn rand_u32(n: usize, seed: u64) -> Vec<u32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| (xorshift(&mut s) >> 32) as u32).collect()
}

/// A problem: weights `m x k` (row-major), scales `m x nb`, activations
/// `k x n` in `layout`.
struct Case<T: QElem> {
    m: usize,
    k: usize,
    n: usize,
    bs: usize,
    layout: QLayout,
    ld: usize,
    x: Vec<T>,
    x_zp: i32,
    w: Vec<i8>,
    scales: Vec<f32>,
    bias: Option<Vec<f32>>,
    x_scale: f32,
    y_scale: f32,
    clamp: QClamp,
}

impl<T: QElem> Case<T> {
    #[allow(clippy::too_many_arguments)]
    fn new(
        m: usize,
        k: usize,
        n: usize,
        bs: usize,
        layout: QLayout,
        bias: bool,
        relu: bool,
        seed: u64,
    ) -> Self {
        let ld = match layout {
            QLayout::DepthMajor => n + 3,
            QLayout::PositionMajor => k + 5,
        };
        let rows = if layout == QLayout::DepthMajor { k } else { n };
        let x = rand_u32(rows * ld, seed)
            .iter()
            .map(|&v| T::saturate(T::MIN + (v % 256) as i32))
            .collect();
        let w = rand_u32(m * k, seed + 1)
            .iter()
            .map(|&v| (v % 16) as i8 - 8)
            .collect();
        let nb = k.div_ceil(bs);
        let scales = rand_u32(m * nb, seed + 2)
            .iter()
            .map(|&v| 0.001 + (v % 1000) as f32 * 1e-5)
            .collect();
        let bias = bias.then(|| {
            rand_u32(m, seed + 3)
                .iter()
                .map(|&v| (v % 2001) as f32 * 1e-3 - 1.0)
                .collect()
        });
        let x_zp = T::MIN + (seed as i32 * 37).rem_euclid(256);
        // y_scale chosen so outputs spread over the range.
        let y_scale = 0.02 * (k as f32).sqrt() / 8.0;
        let zp = T::MIN + 100;
        let clamp = QClamp {
            zero_point: zp,
            min: if relu { zp } else { T::MIN },
            max: T::MAX,
        };
        Case {
            m,
            k,
            n,
            bs,
            layout,
            ld,
            x,
            x_zp,
            w,
            scales,
            bias,
            x_scale: 0.05,
            y_scale,
            clamp,
        }
    }

    fn xv(&self, k: usize, n: usize) -> i32 {
        let at = match self.layout {
            QLayout::DepthMajor => k * self.ld + n,
            QLayout::PositionMajor => n * self.ld + k,
        };
        self.x[at].to_i32()
    }

    /// Naive f64 reference, `[c][n]`.
    fn reference(&self) -> Vec<i32> {
        let nb = self.k.div_ceil(self.bs);
        let mut out = vec![0; self.m * self.n];
        for c in 0..self.m {
            for n in 0..self.n {
                let mut v = 0f64;
                for k in 0..self.k {
                    let s = self.scales[c * nb + k / self.bs] as f64;
                    v += (self.xv(k, n) - self.x_zp) as f64
                        * self.x_scale as f64
                        * self.w[c * self.k + k] as f64
                        * s;
                }
                if let Some(b) = &self.bias {
                    v += b[c] as f64;
                }
                let q = (v / self.y_scale as f64).round_ties_even() as i64
                    + self.clamp.zero_point as i64;
                out[c * self.n + n] = q.clamp(self.clamp.min as i64, self.clamp.max as i64) as i32;
            }
        }
        out
    }

    /// Runs the kernel; output `[c][n]` (cs = n, ns = 1) or `[n][c]`.
    fn run(&self, isa: QIsa, exec: &dyn Exec, channel_major: bool) -> Vec<i32> {
        let nb = self.k.div_ceil(self.bs);
        let w = QBlockWeights::new(
            &self.w,
            self.m,
            self.k,
            self.k,
            1,
            self.bs,
            &self.scales,
            nb,
            1,
        )
        .unwrap();
        let x = QBlockInput::new(&self.x, self.k, self.n, self.ld, self.layout).unwrap();
        let o = QBlockOut {
            x_scale: self.x_scale,
            x_zero_point: self.x_zp,
            y_scale: self.y_scale,
            clamp: self.clamp,
            bias: self.bias.as_deref(),
        };
        let mut out = vec![T::saturate(0); self.m * self.n];
        let mut scratch = vec![0u8; qblock_scratch_len(&w, self.n, exec.max_tasks())];
        let (cs, ns) = if channel_major {
            (self.n, 1)
        } else {
            (1, self.m)
        };
        qblock(isa, &w, &x, &o, &mut out, cs, ns, &mut scratch, exec);
        let mut r = vec![0; self.m * self.n];
        for c in 0..self.m {
            for n in 0..self.n {
                r[c * self.n + n] = out[c * cs + n * ns].to_i32();
            }
        }
        r
    }
}

fn check<T: QElem>(c: &Case<T>) {
    let want = c.reference();
    let base = c.run(QIsa::portable(), &Serial, true);
    let mut off = 0;
    for (i, (&g, &r)) in base.iter().zip(&want).enumerate() {
        assert!(
            (g - r).abs() <= 1,
            "portable vs f64 at {i}: {g} vs {r} (m {} k {} n {} bs {})",
            c.m,
            c.k,
            c.n,
            c.bs
        );
        off += usize::from(g != r);
    }
    // Off-by-one only where f32 and f64 round differently: rare.
    assert!(
        off * 50 <= want.len().max(50),
        "{off} of {} differ by one",
        want.len()
    );
    for isa in QIsa::available() {
        for tasks in [1, 2, 3] {
            let threads = Threads(tasks);
            let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
            for cm in [true, false] {
                let got = c.run(isa, exec, cm);
                assert!(
                    got == base,
                    "{} with {tasks} tasks (channel-major {cm}) differs from portable",
                    isa.name()
                );
            }
        }
    }
}

#[test]
fn shapes_u8_and_i8_both_layouts() {
    let shapes = [
        (1, 16, 1, 16),
        (32, 64, 4, 32),
        (33, 70, 9, 32),
        (70, 100, 5, 16),
        (64, 96, 17, 64),
        (8, 200, 40, 128),
        (40, 50, 3, 18),
        (96, 256, 70, 32),
    ];
    for (i, &(m, k, n, bs)) in shapes.iter().enumerate() {
        for layout in [QLayout::DepthMajor, QLayout::PositionMajor] {
            let seed = 11 * i as u64 + 1;
            check(&Case::<u8>::new(
                m,
                k,
                n,
                bs,
                layout,
                i % 2 == 0,
                i % 3 == 0,
                seed,
            ));
            check(&Case::<i8>::new(
                m,
                k,
                n,
                bs,
                layout,
                i % 2 == 1,
                i % 3 == 1,
                seed + 5,
            ));
        }
    }
}

#[test]
fn bad_weights_and_scales_are_errors() {
    let w = [8i8; 16];
    let s = [1.0f32];
    assert_eq!(
        QBlockWeights::new(&w, 1, 16, 16, 1, 16, &s, 1, 1),
        Err(QBlockError::WeightRange { value: 8 })
    );
    let w = [0i8; 16];
    assert!(matches!(
        QBlockWeights::new(&w, 1, 16, 16, 1, 16, &[f32::NAN], 1, 1),
        Err(QBlockError::Scale { .. })
    ));
    assert_eq!(
        QBlockWeights::new(&w, 2, 16, 16, 1, 16, &[1.0, 1.0], 1, 1),
        Err(QBlockError::TooShort { what: "weights" })
    );
    assert_eq!(
        QBlockWeights::new(&w, 1, 16, 16, 1, 0, &s, 1, 1),
        Err(QBlockError::BlockSize)
    );
    let x = [0u8; 10];
    assert!(QBlockInput::new(&x, 4, 3, 3, QLayout::DepthMajor).is_err());
}

#[test]
fn packed_size_is_four_bits_per_weight() {
    let w = vec![0i8; 64 * 128];
    let s = vec![1.0f32; 64 * 4];
    let p = QBlockWeights::new(&w, 64, 128, 128, 1, 32, &s, 4, 1).unwrap();
    // 4 bits per weight plus a scale and a sum per (channel, block).
    assert_eq!(p.bytes(), 64 * 128 / 2 + 8 * 64 * 4);
}
