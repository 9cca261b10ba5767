//! Exactness against a naive i128 model of the fixed-point formulas, SIMD
//! against portable, and closeness (within 1) to the float definitions.

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::pool::PoolGeom;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// `x * m * 2^(shift-31)` with gemmlowp's two roundings, in exact i128.
fn naive_requant(x: i32, r: Requant) -> i32 {
    let x = ((x as i128) << r.shift.max(0)).clamp(i32::MIN as i128, i32::MAX as i128);
    let hi = (x * r.multiplier as i128 + (1i128 << 30)).div_euclid(1i128 << 31);
    let e = (-r.shift).max(0);
    let mag = if e == 0 {
        hi.abs()
    } else {
        (hi.abs() + (1i128 << (e - 1))) >> e
    };
    (if hi < 0 { -mag } else { mag }) as i32
}

fn naive_add(p: &QAdd, a: i32, b: i32) -> i32 {
    let sa = naive_requant((a - p.a_zp) << 20, p.a);
    let sb = naive_requant((b - p.b_zp) << 20, p.b);
    let v = naive_requant(sa + sb, p.out) + p.clamp.zero_point;
    v.clamp(p.clamp.min, p.clamp.max)
}

fn rand_scale(s: &mut u64) -> f32 {
    // 2^-10 .. 2^2, log-uniform.
    let u = (xorshift(s) % 1000) as f32 / 1000.0;
    libm::exp2f(-10.0 + 12.0 * u)
}

fn check_add<T: Q8 + PartialEq + core::fmt::Debug>(seed: u64, from: fn(u64) -> T) {
    let mut s = seed;
    for case in 0..200 {
        let (a_s, b_s, y_s) = (rand_scale(&mut s), rand_scale(&mut s), rand_scale(&mut s));
        let zp = |s: &mut u64| T::MIN + (xorshift(s) % 256) as i32;
        let (azp, bzp, yzp) = (zp(&mut s), zp(&mut s), zp(&mut s));
        let clamp = QClamp::range(yzp, T::MIN, T::MAX);
        let Some(p) = QAdd::new(a_s, azp, b_s, bzp, y_s, clamp) else {
            continue;
        };
        let n = 1 + (case * 7) % 70;
        let a: Vec<T> = (0..n).map(|_| from(xorshift(&mut s))).collect();
        let b: Vec<T> = (0..n).map(|_| from(xorshift(&mut s))).collect();
        let mut y = vec![from(0); n];
        qadd(&p, Operand::Slice(&a), Operand::Slice(&b), &mut y);
        for i in 0..n {
            let want = naive_add(&p, a[i].get(), b[i].get());
            assert_eq!(y[i].get(), want, "case {case} elem {i}: {p:?}");
            let real = (a_s as f64 * (a[i].get() - azp) as f64
                + b_s as f64 * (b[i].get() - bzp) as f64)
                / y_s as f64;
            let float = (libm::round(real) as i64 + yzp as i64).clamp(T::MIN as i64, T::MAX as i64);
            assert!(
                (want as i64 - float).abs() <= 1,
                "case {case}: {want} vs {float}"
            );
        }
        // The broadcast forms agree with the slice form.
        let mut yb = vec![from(0); n];
        qadd(&p, Operand::Slice(&a), Operand::Scalar(b[0]), &mut yb);
        let mut ya = vec![from(0); n];
        qadd(&p, Operand::Scalar(b[0]), Operand::Slice(&a), &mut ya);
        for i in 0..n {
            assert_eq!(yb[i].get(), naive_add(&p, a[i].get(), b[0].get()));
        }
        let _ = ya;
    }
}

#[test]
fn add_is_exact_for_i8_and_u8() {
    check_add::<i8>(0x9e37_79b9, |r| r as u8 as i8);
    check_add::<u8>(0x1234_5678, |r| r as u8);
}

#[test]
fn add_simd_matches_portable_with_activation_bounds() {
    let mut s = 42u64;
    let a: Vec<i8> = (0..1027).map(|_| xorshift(&mut s) as u8 as i8).collect();
    let b: Vec<i8> = (0..1027).map(|_| xorshift(&mut s) as u8 as i8).collect();
    let clamp = QClamp {
        zero_point: -5,
        min: -5,
        max: 100,
    };
    let p = QAdd::new(0.02, 3, 0.05, -7, 0.04, clamp).unwrap();
    let mut fast = vec![0i8; a.len()];
    let mut slow = vec![0i8; a.len()];
    qadd(&p, Operand::Slice(&a), Operand::Slice(&b), &mut fast);
    qadd_portable(&p, &a, &b, &mut slow);
    assert_eq!(fast, slow);
    assert!(fast.iter().all(|&v| (-5..=100).contains(&v)));
    // Each x86 path on its own, whichever `qadd` picked above.
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            let mut avx2 = vec![0i8; a.len()];
            // SAFETY: AVX2 was just detected; the slices have equal lengths.
            unsafe { super::x86::qadd_avx2(&p, &a, &b, &mut avx2) };
            assert_eq!(avx2, slow);
        }
        if std::is_x86_feature_detected!("avx512f") {
            let mut avx512 = vec![0i8; a.len()];
            // SAFETY: AVX-512 F was just detected; the slices have equal lengths.
            unsafe { super::x86::qadd_avx512(&p, &a, &b, &mut avx512) };
            assert_eq!(avx512, slow);
        }
    }
}

#[test]
fn mul_is_close_to_float() {
    let p = QMul::new(0.05, 10, 0.02, 128, 0.01, QClamp::range(100, 0, 255)).unwrap();
    for a in (0..=255u8).step_by(7) {
        for b in (0..=255u8).step_by(5) {
            let mut y = [0u8];
            qmul(&p, Operand::Scalar(a), Operand::Slice(&[b]), &mut y);
            let real = 0.05 * (a as f64 - 10.0) * 0.02 * (b as f64 - 128.0) / 0.01;
            let want = (libm::round(real) + 100.0).clamp(0.0, 255.0) as i32;
            assert!(
                (y[0] as i32 - want).abs() <= 1,
                "{a} * {b}: {} vs {want}",
                y[0]
            );
        }
    }
}

#[test]
fn lookup_simd_matches_portable() {
    let mut s = 7u64;
    let mut table = [0u8; 256];
    table.iter_mut().for_each(|t| *t = xorshift(&mut s) as u8);
    for n in [0, 1, 63, 64, 65, 200, 1000] {
        let x: Vec<u8> = (0..n).map(|_| xorshift(&mut s) as u8).collect();
        let mut fast = vec![0u8; n];
        lookup(&table, &x, &mut fast);
        let want: Vec<u8> = x.iter().map(|&v| table[v as usize]).collect();
        assert_eq!(fast, want, "n = {n}");
    }
}

fn requants(max_count: usize, x_s: f32, y_s: f32) -> Vec<Requant> {
    (0..=max_count)
        .map(|n| {
            if n == 0 {
                Requant::default()
            } else {
                Requant::from_real(x_s as f64 / (n as f64 * y_s as f64)).unwrap()
            }
        })
        .collect()
}

#[test]
fn avg_pool_with_padding_is_close_to_float() {
    // 1 x 5 x 5 plane, 3x3 window, stride 2, pads 1.
    let g = PoolGeom {
        input: [1, 5, 5],
        output: [1, 3, 3],
        kernel: [1, 3, 3],
        stride: [1, 2, 2],
        dilation: [1, 1, 1],
        pad_begin: [0, 1, 1],
        pad_end: [0, 1, 1],
    };
    let x: Vec<i8> = (0..25).map(|i| (i * 37 % 251) as u8 as i8).collect();
    let (x_s, x_zp, y_s, y_zp) = (0.1f32, -3, 0.07f32, 2);
    for include_pad in [false, true] {
        let mut y = vec![0i8; 9];
        let rq = requants(9, x_s, y_s);
        qavg_pool(
            &x,
            &mut y,
            &g,
            include_pad,
            x_zp,
            &rq,
            QClamp::range(y_zp, -128, 127),
        );
        for oh in 0..3 {
            for ow in 0..3 {
                let (mut sum, mut valid, mut padded) = (0.0f64, 0, 0);
                for kh in 0..3 {
                    for kw in 0..3 {
                        let (h, w) = ((oh * 2 + kh) as i64 - 1, (ow * 2 + kw) as i64 - 1);
                        padded += 1;
                        if (0..5).contains(&h) && (0..5).contains(&w) {
                            sum += x_s as f64 * (x[(h * 5 + w) as usize] as f64 - x_zp as f64);
                            valid += 1;
                        }
                    }
                }
                let n = if include_pad { padded } else { valid };
                let want = (libm::round(sum / n as f64 / y_s as f64) + y_zp as f64)
                    .clamp(-128.0, 127.0) as i32;
                let got = y[oh * 3 + ow] as i32;
                assert!(
                    (got - want).abs() <= 1,
                    "({oh},{ow}) pad {include_pad}: {got} vs {want}"
                );
            }
        }
    }
}

#[test]
fn global_avg_is_close_to_float() {
    let x: Vec<u8> = (0..49).map(|i| (i * 91 % 256) as u8).collect();
    let (x_s, x_zp, y_s, y_zp) = (0.02f32, 128, 0.01f32, 120);
    let rq = Requant::from_real(x_s as f64 / (49.0 * y_s as f64)).unwrap();
    let got = qglobal_avg(&x, x_zp, rq, QClamp::range(y_zp, 0, 255)) as i32;
    let mean: f64 = x.iter().map(|&v| (v as f64 - 128.0) * 0.02).sum::<f64>() / 49.0;
    let want = (libm::round(mean / 0.01) + 120.0).clamp(0.0, 255.0) as i32;
    assert!((got - want).abs() <= 1, "{got} vs {want}");
}
