use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::gemm::tests_support::Threads;
use crate::gemm::Serial;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn rand_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n).map(|_| (xorshift(&mut s) >> 32) as u8).collect()
}

fn as_elems<T: QElem>(b: &[u8]) -> Vec<T> {
    b.iter()
        .map(|&v| {
            if T::SIGNED {
                T::saturate(v as i8 as i32)
            } else {
                T::saturate(v as i32)
            }
        })
        .collect()
}

/// A test problem: weights `m x k` row-major, activations in `layout`.
struct Case<X: QElem, W: QElem> {
    m: usize,
    k: usize,
    n: usize,
    layout: QLayout,
    x: Vec<X>,
    ld: usize,
    x_zp: X,
    w: Vec<W>,
    w_zp: Vec<i32>,
    bias: Vec<i32>,
    requant: Vec<Requant>,
}

impl<X: QElem, W: QElem> Case<X, W> {
    fn new(m: usize, k: usize, n: usize, layout: QLayout, zp: bool, seed: u64) -> Self {
        let ld = match layout {
            QLayout::DepthMajor => n + 3,
            QLayout::PositionMajor => k + 5,
        };
        let rows = match layout {
            QLayout::DepthMajor => k,
            QLayout::PositionMajor => n,
        };
        let x = as_elems::<X>(&rand_bytes(rows * ld, seed));
        let w = as_elems::<W>(&rand_bytes(m * k, seed + 1));
        let zb = rand_bytes(m + 1, seed + 2);
        let x_zp = if zp {
            as_elems::<X>(&zb[..1])[0]
        } else {
            X::saturate(0)
        };
        let w_zp = if zp {
            as_elems::<W>(&zb[1..]).iter().map(|v| v.to_i32()).collect()
        } else {
            vec![0; m]
        };
        let mut s = seed + 3;
        let bias = (0..m)
            .map(|_| (xorshift(&mut s) as i32) >> 12)
            .collect::<Vec<_>>();
        let requant = (0..m)
            .map(|_| {
                let real = (xorshift(&mut s) % 1000 + 1) as f64 * 2e-6;
                Requant::from_real(real).unwrap()
            })
            .collect();
        Case {
            m,
            k,
            n,
            layout,
            x,
            ld,
            x_zp,
            w,
            w_zp,
            bias,
            requant,
        }
    }

    fn xat(&self, k: usize, n: usize) -> i32 {
        match self.layout {
            QLayout::DepthMajor => self.x[k * self.ld + n].to_i32(),
            QLayout::PositionMajor => self.x[n * self.ld + k].to_i32(),
        }
    }

    /// Naive int64 accumulator, then the scalar requantization.
    fn reference_acc(&self) -> Vec<i32> {
        let mut out = vec![0; self.m * self.n];
        for c in 0..self.m {
            for j in 0..self.n {
                let mut acc = self.bias[c] as i64;
                for kk in 0..self.k {
                    let xv = (self.xat(kk, j) - self.x_zp.to_i32()) as i64;
                    let wv = (self.w[c * self.k + kk].to_i32() - self.w_zp[c]) as i64;
                    acc += xv * wv;
                }
                out[c * self.n + j] = i32::try_from(acc).unwrap();
            }
        }
        out
    }

    fn acts(&self) -> QActivations<'_, X> {
        QActivations::new(&self.x, self.k, self.n, self.ld, self.layout, self.x_zp).unwrap()
    }

    fn packed(&self) -> QPackedWeights {
        QPackedWeights::new(&self.w, self.m, self.k, &self.w_zp).unwrap()
    }
}

/// Runs `case` on `isa` with `exec`, output `kind` (0 u8, 1 i8, 2 i32),
/// strides chosen by `transposed` (row-major `[n][c]` or `[c][n]`).
fn run<X: QElem, W: QElem>(
    case: &Case<X, W>,
    isa: QIsa,
    exec: &dyn Exec,
    kind: u8,
    transposed: bool,
) -> Vec<i32> {
    let (m, n) = (case.m, case.n);
    let (cs, ns) = if transposed { (1, m) } else { (n, 1) };
    let w = case.packed();
    let x = case.acts();
    let mut scratch = vec![0u8; qgemm_scratch_len(m, case.k, n, exec.max_tasks())];
    let clamp = QClamp::range(
        3,
        if kind == 0 { 0 } else { -128 },
        if kind == 0 { 255 } else { 127 },
    );
    let get = |i: usize| -> usize {
        let (c, j) = (i / n, i % n);
        c * cs + j * ns
    };
    match kind {
        0 => {
            let mut out = vec![0u8; m * n];
            let o = QOut::U8 {
                data: &mut out,
                requant: &case.requant,
                clamp,
            };
            qgemm(isa, &w, &x, Some(&case.bias), o, cs, ns, &mut scratch, exec);
            (0..m * n).map(|i| out[get(i)] as i32).collect()
        }
        1 => {
            let mut out = vec![0i8; m * n];
            let o = QOut::I8 {
                data: &mut out,
                requant: &case.requant,
                clamp,
            };
            qgemm(isa, &w, &x, Some(&case.bias), o, cs, ns, &mut scratch, exec);
            (0..m * n).map(|i| out[get(i)] as i32).collect()
        }
        _ => {
            let mut out = vec![0i32; m * n];
            let o = QOut::I32 { data: &mut out };
            qgemm(isa, &w, &x, Some(&case.bias), o, cs, ns, &mut scratch, exec);
            (0..m * n).map(|i| out[get(i)]).collect()
        }
    }
}

fn check<X: QElem, W: QElem>(m: usize, k: usize, n: usize, zp: bool, seed: u64) {
    for layout in [QLayout::DepthMajor, QLayout::PositionMajor] {
        let case = Case::<X, W>::new(m, k, n, layout, zp, seed);
        let acc = case.reference_acc();
        for isa in QIsa::available() {
            for kind in 0..3u8 {
                let (lo, hi) = if kind == 0 { (0, 255) } else { (-128, 127) };
                let want: Vec<i32> = acc
                    .iter()
                    .enumerate()
                    .map(|(i, &a)| match kind {
                        2 => a,
                        _ => (case.requant[i / n].apply(a) + 3).clamp(lo, hi),
                    })
                    .collect();
                for transposed in [false, true] {
                    let got = run(&case, isa, &Serial, kind, transposed);
                    assert_eq!(
                        got,
                        want,
                        "{} m{m} k{k} n{n} zp{zp} {layout:?} kind{kind} t{transposed} X{} W{}",
                        isa.name(),
                        X::SIGNED,
                        W::SIGNED
                    );
                }
            }
        }
    }
}

#[test]
fn matches_reference_small_shapes() {
    let mut seed = 1;
    for &(m, k, n) in &[
        (1, 1, 1),
        (1, 3, 1),
        (3, 5, 7),
        (8, 4, 32),
        (9, 17, 33),
        (7, 64, 31),
        (16, 8, 65),
        (13, 37, 5),
        (2, 300, 3),
    ] {
        for zp in [false, true] {
            check::<u8, i8>(m, k, n, zp, seed);
            check::<i8, i8>(m, k, n, zp, seed + 10);
            check::<u8, u8>(m, k, n, zp, seed + 20);
            check::<i8, u8>(m, k, n, zp, seed + 30);
            seed += 100;
        }
    }
}

#[test]
fn threads_are_bit_exact() {
    for &(m, k, n) in &[(40, 72, 200), (200, 32, 20), (17, 9, 1000)] {
        for zp in [false, true] {
            let case = Case::<i8, i8>::new(m, k, n, QLayout::DepthMajor, zp, 7);
            for isa in QIsa::available() {
                let one = run(&case, isa, &Serial, 1, false);
                for t in [2, 3] {
                    assert_eq!(run(&case, isa, &Threads(t), 1, false), one, "{t}");
                }
                let case = Case::<u8, i8>::new(m, k, n, QLayout::PositionMajor, zp, 8);
                let one = run(&case, isa, &Serial, 2, true);
                assert_eq!(run(&case, isa, &Threads(2), 2, true), one);
            }
        }
    }
}

#[test]
fn large_depth_and_extremes() {
    // Worst-case magnitudes: every product is 255 * -128.
    let (m, k, n) = (3, 4099, 40);
    let x = vec![255u8; k * n];
    let w = vec![-128i8; m * k];
    let packed = QPackedWeights::new(&w, m, k, &[0]).unwrap();
    let acts = QActivations::new(&x, k, n, n, QLayout::DepthMajor, 0u8).unwrap();
    for isa in QIsa::available() {
        let mut out = vec![0i32; m * n];
        let mut scratch = vec![0u8; qgemm_scratch_len(m, k, n, 1)];
        qgemm(
            isa,
            &packed,
            &acts,
            None,
            QOut::I32 { data: &mut out },
            n,
            1,
            &mut scratch,
            &Serial,
        );
        assert!(
            out.iter().all(|&v| v == -(255 * 128 * k as i32)),
            "{}",
            isa.name()
        );
    }
}

#[test]
fn rejects_bad_operands() {
    let w = [1i8; 6];
    assert_eq!(
        QPackedWeights::new(&w, 2, 4, &[0]),
        Err(QGemmError::TooShort { what: "weights" })
    );
    assert!(matches!(
        QPackedWeights::new(&w, 2, 3, &[0, 0, 0]),
        Err(QGemmError::ZeroPointCount { .. })
    ));
    assert!(matches!(
        QPackedWeights::new(&w, 2, 3, &[200]),
        Err(QGemmError::ZeroPointRange { value: 200 })
    ));
    let x = [0u8; 10];
    assert!(QActivations::new(&x, 3, 4, 4, QLayout::DepthMajor, 0).is_err());
    assert!(QActivations::new(&x, 2, 4, 4, QLayout::DepthMajor, 0).is_ok());
    assert!(QActivations::new(&x, 1, 2, usize::MAX, QLayout::DepthMajor, 0).is_ok());
    assert!(QActivations::new(&x, 2, 2, usize::MAX, QLayout::DepthMajor, 0).is_err());
}

#[test]
fn simd_paths_are_available_where_expected() {
    let names: Vec<&str> = QIsa::available().map(|i| i.name()).collect();
    std::println!("qgemm ISAs: {names:?}");
    assert_eq!(names[0], "portable");
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx512vnni") && std::is_x86_feature_detected!("avx512bw") {
        assert_eq!(names, ["portable", "avx2", "vnni"]);
    }
    #[cfg(target_arch = "aarch64")]
    assert_eq!(names[1], "neon");
    assert_eq!(QIsa::detect().name(), *names.last().unwrap());
}
