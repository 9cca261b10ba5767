//! Every SIMD path against a scalar emulation of its operation sequence
//! (bit for bit) and against the scalar libm formulas (within bounds).

use alloc::vec::Vec;

use super::*;

/// `fnmadd`/`fmadd` as the SIMD forms compute them.
fn fma(a: f32, b: f32, c: f32) -> f32 {
    libm::fmaf(a, b, c)
}

/// The SIMD `exp`, one lane at a time.
fn emu_exp(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(EXP_LO, EXP_HI);
    let n = libm::rintf(x * LOG2E);
    let r = fma(-n, LN2_HI, x);
    let r = fma(-n, LN2_LO, r);
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = fma(p, r, *c);
    }
    let y = fma(p, r * r, r) + 1.0;
    let ni = n as i32;
    let (n1, n2) = (ni >> 1, ni - (ni >> 1));
    let pow2 = |e: i32| f32::from_bits(((e + 127) as u32) << 23);
    y * pow2(n1) * pow2(n2)
}

fn emu_sigmoid(x: f32) -> f32 {
    let t = emu_exp(-x.abs());
    let num = if x >= 0.0 { 1.0 } else { t };
    num / (1.0 + t)
}

fn emu_tanh(x: f32) -> f32 {
    let ax = x.abs();
    let z = ax * ax;
    let mut p = TANH_P[0];
    for c in &TANH_P[1..] {
        p = fma(p, z, *c);
    }
    let y = if ax < TANH_SMALL {
        fma(p * z, ax, ax)
    } else {
        let t = emu_exp(ax * -2.0);
        (1.0 - t) / (1.0 + t)
    };
    f32::from_bits(y.to_bits() | (x.to_bits() & 0x8000_0000))
}

fn emulate(f: Func, x: f32) -> f32 {
    match f {
        Func::Exp => emu_exp(x),
        Func::Sigmoid => emu_sigmoid(x),
        Func::Swish(alpha) => x * emu_sigmoid(alpha * x),
        Func::Tanh => emu_tanh(x),
    }
}

const FUNCS: [Func; 5] = [
    Func::Exp,
    Func::Sigmoid,
    Func::Swish(1.0),
    Func::Swish(1.7),
    Func::Tanh,
];

/// Every 1e-3 in [-20, 20], every 1e-2 out to the ends of `exp`'s range,
/// 2^18 random values in [-105, 105), a log sweep of small magnitudes, and
/// the special values.
fn sweep() -> Vec<f32> {
    let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 1e-3).collect();
    xs.extend((-10_500..=9_000).map(|i| i as f32 * 1e-2));
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..1 << 18 {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        xs.push(((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 210.0);
    }
    for e in -149..0 {
        for m in [1.0f32, 1.3, 1.7] {
            let v = m * libm::exp2f(e as f32);
            xs.extend([v, -v]);
        }
    }
    let special = [
        0.0,
        88.0,
        88.72,
        88.722_83,
        88.722_84,
        89.0,
        -87.33,
        -88.0,
        -100.0,
        -103.9,
        -104.0,
        -150.0,
        1e4,
        1e30,
        f32::MAX,
        f32::INFINITY,
        f32::MIN_POSITIVE,
        1e-40,
        f32::from_bits(1),
        TANH_SMALL,
        9.0,
    ];
    for v in special {
        xs.extend([v, -v]);
    }
    xs.push(f32::NAN);
    xs
}

fn check_special(f: Func, x: f32, got: f32, want: f32) {
    if want.is_nan() || got.is_nan() {
        assert!(want.is_nan() && got.is_nan(), "{f:?}({x}): {got} vs {want}");
    } else if want.is_infinite() || got.is_infinite() || want == 0.0 {
        assert_eq!(got, want, "{f:?}({x})");
    }
}

/// The largest errors against libm over the sweep: relative where the
/// result is normal, absolute where it is subnormal or zero. For swish the
/// test is on the sigmoid factor (`y / x`): where it is subnormal, so is
/// the precision of `x * sigmoid`, and its absolute error is divided by
/// `|x|`.
#[derive(Default, Debug)]
struct Err {
    rel: f64,
    rel_at: f32,
    abs: f64,
}

fn measure(f: Func, xs: &[f32], got: &[f32]) -> Err {
    let mut e = Err::default();
    for (&x, &y) in xs.iter().zip(got) {
        let want = f.scalar(x);
        check_special(f, x, y, want);
        if !want.is_finite() {
            continue;
        }
        let scale = match f {
            Func::Swish(_) => f64::from(x.abs()).max(1.0),
            _ => 1.0,
        };
        let d = (f64::from(y) - f64::from(want)).abs();
        if f64::from(want.abs()) / scale >= f64::from(f32::MIN_POSITIVE) {
            let r = d / f64::from(want).abs();
            if r > e.rel {
                (e.rel, e.rel_at) = (r, x);
            }
        } else {
            e.abs = e.abs.max(d / scale);
        }
    }
    e
}

fn simd_paths() -> Vec<MathIsa> {
    MathIsa::available()
        .filter(|i| *i != MathIsa::scalar())
        .collect()
}

/// The SIMD paths give the emulated bits, whatever the slice length (the
/// tails included).
#[test]
fn simd_matches_emulation_bit_for_bit() {
    let xs = sweep();
    for isa in simd_paths() {
        for f in FUNCS {
            for len in [xs.len(), 1, 3, 7, 15, 17, 33] {
                let mut got = xs[..len].to_vec();
                f.apply(isa, &mut got);
                for (&x, &y) in xs.iter().zip(&got) {
                    let want = emulate(f, x);
                    assert!(
                        y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()),
                        "{} {f:?}({x}): {y} vs emulated {want}",
                        isa.name()
                    );
                }
            }
        }
    }
}

/// Each SIMD path within a few ulp of the scalar libm formula.
///
/// Measured over [`sweep`] on AVX2 and AVX-512 (x86-64) and NEON (aarch64
/// under qemu), which are bit-identical, so one set of numbers: maximum
/// relative error where the result is normal, exp 1.19e-7, sigmoid
/// 1.73e-7, silu 2.14e-7, swish(1.7) 2.12e-7, tanh 2.13e-7 (1 f32 ulp is
/// 1.19e-7 at 1); absolute error where the result (for swish: its sigmoid
/// factor) is subnormal, at most 2.05e-45 (1.4e-45 is one subnormal step).
/// Bounds: 4e-7 relative, 2.9e-45 absolute.
#[test]
fn simd_accuracy_against_libm() {
    let xs = sweep();
    for isa in simd_paths() {
        for f in FUNCS {
            let mut got = xs.clone();
            f.apply(isa, &mut got);
            let e = measure(f, &xs, &got);
            #[cfg(feature = "std")]
            std::println!("{} {f:?}: {e:?}", isa.name());
            assert!(e.rel <= 4e-7, "{} {f:?}: {e:?}", isa.name());
            assert!(e.abs <= 2.9e-45, "{} {f:?}: {e:?}", isa.name());
        }
    }
}

/// The scalar path is the libm formula itself.
#[test]
fn scalar_is_libm() {
    let xs = sweep();
    for f in FUNCS {
        let mut got = xs.clone();
        f.apply(MathIsa::scalar(), &mut got);
        for (&x, &y) in xs.iter().zip(&got) {
            let want = f.scalar(x);
            assert!(y.to_bits() == want.to_bits() || (y.is_nan() && want.is_nan()));
        }
    }
    assert_eq!(MathIsa::available().next(), Some(MathIsa::scalar()));
    assert!(MathIsa::available().any(|i| i == MathIsa::detect()));
}

#[test]
fn edge_values() {
    for isa in MathIsa::available() {
        let mut v = [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 200.0, -200.0];
        exp(isa, &mut v);
        assert_eq!(v, [f32::INFINITY, 0.0, 1.0, 1.0, f32::INFINITY, 0.0]);
        let mut v = [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e4, -1e4];
        sigmoid(isa, &mut v);
        assert_eq!(v, [1.0, 0.0, 0.5, 0.5, 1.0, 0.0]);
        let mut v = [f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e4, -1e4];
        tanh(isa, &mut v);
        assert_eq!(v, [1.0, -1.0, 0.0, -0.0, 1.0, -1.0]);
        assert!(v[3].is_sign_negative());
        let mut v = [f32::INFINITY, 0.0, -0.0, 1e4, -200.0];
        swish(isa, 1.0, &mut v);
        assert_eq!(v, [f32::INFINITY, 0.0, -0.0, 1e4, -0.0]);
        let mut v = [f32::NAN; 3];
        tanh(isa, &mut v);
        assert!(v.iter().all(|y| y.is_nan()), "{}", isa.name());
    }
}
