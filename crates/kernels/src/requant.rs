//! Fixed-point requantization of int32 accumulators, as TFLite and gemmlowp
//! do it, so int8 results are bit-exact across threads, ISAs and machines.
//!
//! A real multiplier `x_scale * w_scale / y_scale` becomes an int32
//! `multiplier` in `[2^30, 2^31)` and a power-of-two `shift`
//! (`real ~= multiplier * 2^(shift - 31)`). An accumulator is scaled by
//! `SaturatingRoundingDoublingHighMul` (round half up) followed by
//! `RoundingDivideByPOT` (round half away from zero), then offset by the
//! output zero point and clamped ([`QClamp`]).

use crate::Activation;

/// An int32 fixed-point multiplier: `real ~= multiplier * 2^(shift - 31)`.
/// A positive `shift` shifts left before the multiply, a negative one
/// rounds right after it (TFLite's convention).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Requant {
    /// Q0.31 multiplier in `[2^30, 2^31)` (or 0 for a negligible real).
    pub multiplier: i32,
    /// Power-of-two exponent, in `-31..=31`.
    pub shift: i32,
}

impl Requant {
    /// TFLite's `QuantizeMultiplier`: `None` when `real` is not finite, not
    /// positive, or at least `2^30` (the left shift would overflow any
    /// useful accumulator). Reals below `2^-32` map to a zero multiplier,
    /// as in TFLite (every result is 0).
    pub fn from_real(real: f64) -> Option<Requant> {
        if !real.is_finite() || real <= 0.0 || real >= (1u64 << 30) as f64 {
            return None;
        }
        let (q, mut shift) = libm::frexp(real);
        // q in [0.5, 1): round(q * 2^31) is in [2^30, 2^31].
        let mut q_fixed = libm::round(q * (1u64 << 31) as f64) as i64;
        if q_fixed == 1i64 << 31 {
            q_fixed /= 2;
            shift += 1;
        }
        if shift < -31 {
            return Some(Requant {
                multiplier: 0,
                shift: 0,
            });
        }
        Some(Requant {
            multiplier: q_fixed as i32,
            shift,
        })
    }

    /// The real multiplier this represents.
    pub fn to_real(self) -> f64 {
        self.multiplier as f64 * libm::exp2(self.shift as f64 - 31.0)
    }

    /// Scales an accumulator: saturating left shift (for `shift > 0`),
    /// `SaturatingRoundingDoublingHighMul`, then `RoundingDivideByPOT`.
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let left = self.shift.max(0);
        let right = (-self.shift).max(0);
        let x = ((acc as i64) << left).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        rounding_divide_by_pot(srdhm(x, self.multiplier), right)
    }
}

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `round(a * b / 2^31)`,
/// ties towards +infinity; the one overflowing case saturates.
#[inline(always)]
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge = if ab >= 0 {
        1i64 << 30
    } else {
        1 - (1i64 << 30)
    };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded half away from
/// zero, for `exponent` in `0..=31`.
#[inline(always)]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// Output zero point and clamp bounds: `clamp(requantized + zero_point,
/// min, max)`. Relu and Clip fold into the bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QClamp {
    /// Output zero point, added after requantization.
    pub zero_point: i32,
    /// Lower bound (inclusive), applied before `max`.
    pub min: i32,
    /// Upper bound (inclusive), applied last.
    pub max: i32,
}

impl QClamp {
    /// The full range `qmin..=qmax` of the output type.
    pub fn range(zero_point: i32, qmin: i32, qmax: i32) -> QClamp {
        QClamp {
            zero_point,
            min: qmin,
            max: qmax,
        }
    }

    /// Folds `act` into the bounds of an output with scale `y_scale`, zero
    /// point `y_zp` and type range `qmin..=qmax`: Relu raises the lower
    /// bound to `y_zp`; `Clip(lo, hi)` clamps to
    /// `round(lo / y_scale) + y_zp ..= round(hi / y_scale) + y_zp` (round half
    /// to even, as QuantizeLinear), intersected with the type range. `None`
    /// for other activations, a non-finite or non-positive `y_scale`, a NaN
    /// clip bound, or `y_zp` outside the range.
    pub fn new(act: Activation, y_scale: f32, y_zp: i32, qmin: i32, qmax: i32) -> Option<QClamp> {
        if !(y_scale.is_finite() && y_scale > 0.0 && (qmin..=qmax).contains(&y_zp)) {
            return None;
        }
        let quant = |v: f32| -> Option<i32> {
            if v.is_nan() {
                return None;
            }
            let q = libm::rintf(v / y_scale) as f64 + y_zp as f64;
            Some(q.clamp(qmin as f64, qmax as f64) as i32)
        };
        let (min, max) = match act {
            Activation::None => (qmin, qmax),
            Activation::Relu => (y_zp, qmax),
            Activation::Clip { min, max } => (quant(min)?, quant(max)?),
            _ => return None,
        };
        Some(QClamp {
            zero_point: y_zp,
            min,
            max,
        })
    }

    /// `clamp(v + zero_point)`; `v` is a requantized accumulator.
    #[inline(always)]
    pub fn apply(self, v: i32) -> i32 {
        v.saturating_add(self.zero_point)
            .max(self.min)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Independent reference: exact rational arithmetic in i128, with the
    /// two roundings spelt out as floor divisions.
    fn naive(acc: i32, r: Requant) -> i32 {
        let x = (acc as i128) << r.shift.max(0);
        let x = x.clamp(i32::MIN as i128, i32::MAX as i128);
        // High mul: round(x * m / 2^31), ties towards +inf.
        let hi = (x * r.multiplier as i128 + (1i128 << 30)).div_euclid(1i128 << 31);
        let hi = hi.clamp(i32::MIN as i128, i32::MAX as i128);
        // Divide by 2^e, ties away from zero.
        let e = (-r.shift).max(0);
        let mag = if e == 0 {
            hi.abs()
        } else {
            (hi.abs() + (1i128 << (e - 1))) >> e
        };
        (if hi < 0 { -mag } else { mag }) as i32
    }

    fn xorshift(s: &mut u64) -> u64 {
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        *s
    }

    #[test]
    fn from_real_matches_value() {
        for &real in &[
            1e-9,
            0.0003,
            0.0078125,
            0.25,
            0.5,
            0.7,
            0.999_999_999_9,
            1.0,
            1.5,
            3.7,
            1000.0,
        ] {
            let r = Requant::from_real(real).unwrap();
            assert!(
                (r.multiplier as i64) >= 1 << 30,
                "{real}: multiplier {}",
                r.multiplier
            );
            let rel = (r.to_real() - real).abs() / real;
            assert!(rel <= 1.0 / (1u64 << 30) as f64, "{real}: {r:?} rel {rel}");
        }
        // 0.5 is exact: 2^30 * 2^(0-31).
        assert_eq!(
            Requant::from_real(0.5),
            Some(Requant {
                multiplier: 1 << 30,
                shift: 0
            })
        );
        // Rounds up to 2^31: renormalised.
        let r = Requant::from_real(1.0 - 1e-12).unwrap();
        assert_eq!((r.multiplier, r.shift), (1 << 30, 1));
        assert_eq!(
            Requant::from_real(1e-12),
            Some(Requant {
                multiplier: 0,
                shift: 0
            })
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e9] {
            assert_eq!(Requant::from_real(bad), None, "{bad}");
        }
    }

    #[test]
    fn srdhm_edges() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(i32::MIN, i32::MAX), -i32::MAX);
        // 2^30 * 2^30 / 2^31 = 2^29 exactly.
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        // Ties: +0.5 -> 1, -0.5 -> 0 (towards +inf), -1.5 -> -1.
        assert_eq!(srdhm(1, 1 << 30), 1);
        assert_eq!(srdhm(-1, 1 << 30), 0);
        assert_eq!(srdhm(-3, 1 << 30), -1);
    }

    #[test]
    fn divide_by_pot_ties_away() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(-9, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
    }

    #[test]
    fn apply_matches_naive() {
        let mut s = 0x1234_5678_9abc_def1u64;
        let specials = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            127,
            -128,
            i32::MAX,
            i32::MIN,
            i32::MIN + 1,
            1 << 20,
            -(1 << 20),
        ];
        let mut reqs = vec![
            Requant {
                multiplier: i32::MIN,
                shift: 0,
            },
            Requant {
                multiplier: 1 << 30,
                shift: -1,
            },
            Requant {
                multiplier: i32::MAX,
                shift: -31,
            },
            Requant {
                multiplier: 1 << 30,
                shift: 30,
            },
        ];
        for _ in 0..200 {
            let real = (xorshift(&mut s) % 1_000_000) as f64 * 1e-7 + 1e-9;
            reqs.push(Requant::from_real(real).unwrap());
            let m = (xorshift(&mut s) as i32).wrapping_abs().max(1 << 30);
            let sh = (xorshift(&mut s) % 40) as i32 - 31;
            reqs.push(Requant {
                multiplier: m,
                shift: sh.min(8),
            });
        }
        for r in reqs {
            for &a in &specials {
                assert_eq!(r.apply(a), naive(a, r), "{a} {r:?}");
            }
            for _ in 0..200 {
                let a = xorshift(&mut s) as i32 >> (xorshift(&mut s) % 31);
                assert_eq!(r.apply(a), naive(a, r), "{a} {r:?}");
            }
        }
        // 0.5 has no right shift: the tie is SRDHM's, towards +inf.
        let half = Requant::from_real(0.5).unwrap();
        assert_eq!(half.apply(-3), -1);
        assert_eq!(half.apply(3), 2);
        // 0.25 = 2^30 * 2^(-1-31): the tie is RoundingDivideByPOT's, away
        // from zero.
        let quarter = Requant::from_real(0.25).unwrap();
        assert_eq!(quarter.apply(-6), -2);
        assert_eq!(quarter.apply(-2), -1);
        assert_eq!(quarter.apply(2), 1);
        // Product of the extreme accumulator and multiplier saturates.
        let r = Requant {
            multiplier: i32::MIN,
            shift: 0,
        };
        assert_eq!(r.apply(i32::MIN), i32::MAX);
    }

    #[test]
    fn apply_matches_float_within_one() {
        let mut s = 99u64;
        for _ in 0..2000 {
            let real = (xorshift(&mut s) % 1_000_000) as f64 * 1e-6 + 1e-6;
            let r = Requant::from_real(real).unwrap();
            let a = (xorshift(&mut s) as i32) >> 8;
            let want = (a as f64 * real).round();
            assert!((r.apply(a) as f64 - want).abs() <= 1.0, "{a} {real}");
        }
    }

    #[test]
    fn clamp_folds_activations() {
        let none = QClamp::new(Activation::None, 0.1, 3, -128, 127).unwrap();
        assert_eq!(none, QClamp::range(3, -128, 127));
        assert_eq!(none.apply(200), 127);
        assert_eq!(none.apply(-140), -128);
        assert_eq!(none.apply(i32::MAX), 127);
        let relu = QClamp::new(Activation::Relu, 0.1, 3, -128, 127).unwrap();
        assert_eq!((relu.min, relu.max), (3, 127));
        assert_eq!(relu.apply(-10), 3);
        // Clip(0, 6) at scale 0.05, zp 10 (u8): 0 -> 10, 6/0.05=120 -> 130.
        let clip = QClamp::new(Activation::Clip { min: 0.0, max: 6.0 }, 0.05, 10, 0, 255).unwrap();
        assert_eq!((clip.min, clip.max), (10, 130));
        // Bounds beyond the type range are intersected with it; ties at
        // .5 go to even (2.5 -> 2, -0.5 -> -0).
        let clip = QClamp::new(
            Activation::Clip {
                min: -1000.0,
                max: 2.5,
            },
            1.0,
            0,
            -128,
            127,
        )
        .unwrap();
        assert_eq!((clip.min, clip.max), (-128, 2));
        let open = QClamp::new(
            Activation::Clip {
                min: f32::NEG_INFINITY,
                max: f32::INFINITY,
            },
            0.5,
            -5,
            -128,
            127,
        )
        .unwrap();
        assert_eq!((open.min, open.max), (-128, 127));
        assert!(QClamp::new(Activation::Sigmoid, 0.1, 0, 0, 255).is_none());
        assert!(QClamp::new(Activation::None, 0.0, 0, 0, 255).is_none());
        assert!(QClamp::new(Activation::None, f32::NAN, 0, 0, 255).is_none());
        assert!(QClamp::new(Activation::None, 1.0, 300, 0, 255).is_none());
        let nan = Activation::Clip {
            min: f32::NAN,
            max: 1.0,
        };
        assert!(QClamp::new(nan, 1.0, 0, 0, 255).is_none());
    }
}
