//! Element types for the elementwise kernels: the per-dtype arithmetic
//! ([`Num`]), floating-point math ([`Real`]), typed access to views, and the
//! macro that turns a run-time [`DType`] into a Rust type.
//!
//! f16 and bf16 compute through f32 and round back after every op, which is
//! what numpy does for a single half-precision op.

use bytemuck::Pod;
use half::{bf16, f16};
use whittle_ir::DType;

use crate::{RunError, View, ViewMut};

/// The Rust type that stores one element of a dtype (bool is a 0/1 byte).
macro_rules! rust_type {
    (F32) => {
        f32
    };
    (F64) => {
        f64
    };
    (F16) => {
        half::f16
    };
    (BF16) => {
        half::bf16
    };
    (I8) => {
        i8
    };
    (U8) => {
        u8
    };
    (I16) => {
        i16
    };
    (U16) => {
        u16
    };
    (I32) => {
        i32
    };
    (U32) => {
        u32
    };
    (I64) => {
        i64
    };
    (U64) => {
        u64
    };
    (Bool) => {
        u8
    };
}
pub(crate) use rust_type;

/// Evaluates `$body` with `$T` bound to the Rust type of `$dt` for each
/// listed dtype, or `$other` for any other dtype.
macro_rules! with_type {
    ($dt:expr, [$($v:ident),+ $(,)?], $T:ident => $body:expr, _ => $other:expr) => {
        match $dt {
            $(whittle_ir::DType::$v => {
                #[allow(dead_code)]
                type $T = $crate::ops::common::elem::rust_type!($v);
                $body
            })+
            #[allow(unreachable_patterns)]
            _ => $other,
        }
    };
}
pub(crate) use with_type;

/// Floating dtypes.
pub(crate) const FLOATS: &[DType] = &[DType::F32, DType::F64, DType::F16, DType::BF16];
/// Every numeric dtype (not bool): the floats, then the integers.
pub(crate) const NUMERIC: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I8,
    DType::U8,
    DType::I16,
    DType::U16,
    DType::I32,
    DType::U32,
    DType::I64,
    DType::U64,
];
/// Integer dtypes.
pub(crate) const INTEGERS: &[DType] = NUMERIC.split_at(FLOATS.len()).1;
/// Floats and signed integers, for ops that negate (Neg, integer Relu).
pub(crate) const SIGNED: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
];
/// Floats and the 32/64-bit integers, for ops ONNX does not define on
/// narrow integers (CumSum, Einsum; Pow takes the signed ones, the first 6).
pub(crate) const WIDE: &[DType] = &[
    DType::F32,
    DType::F64,
    DType::F16,
    DType::BF16,
    DType::I32,
    DType::I64,
    DType::U32,
    DType::U64,
];

/// The elements of an input view as `T`.
pub(crate) fn input<'a, T: Pod>(v: &View<'a>) -> Result<&'a [T], RunError> {
    bytemuck::try_cast_slice(v.bytes()).map_err(|_| RunError::Unsupported("misaligned input"))
}

/// The elements of an output view as `T`.
pub(crate) fn output<'a, T: Pod>(v: &'a mut ViewMut<'_>) -> Result<&'a mut [T], RunError> {
    bytemuck::try_cast_slice_mut(v.bytes()).map_err(|_| RunError::Unsupported("misaligned output"))
}

/// Fails unless an input holds `len` elements: a plan mismatch must be an
/// error, not an out-of-bounds panic.
pub(crate) fn check_len<T>(s: &[T], len: usize) -> Result<(), RunError> {
    if s.len() == len {
        Ok(())
    } else {
        Err(RunError::Unsupported(
            "buffer size differs from the compiled shape",
        ))
    }
}

/// Arithmetic of one numeric element type with ONNX semantics: integers wrap
/// on overflow and divide like C (truncating; a zero divisor gives 0 rather
/// than trapping), floats follow IEEE and Min/Max propagate NaN like numpy.
pub(crate) trait Num: Pod + PartialOrd + Send + Sync + 'static {
    /// 0.
    const ZERO: Self;
    /// a + b.
    fn add(self, b: Self) -> Self;
    /// a - b.
    fn sub(self, b: Self) -> Self;
    /// a * b.
    fn mul(self, b: Self) -> Self;
    /// a / b.
    fn div(self, b: Self) -> Self;
    /// The smaller (NaN if either is NaN).
    fn min_nan(self, b: Self) -> Self;
    /// The larger (NaN if either is NaN).
    fn max_nan(self, b: Self) -> Self;
    /// Remainder with the sign of the divisor (Python `%`, Mod fmod=0).
    fn modulo(self, b: Self) -> Self;
    /// Remainder with the sign of the dividend (C `fmod`, Mod fmod=1).
    fn fmod(self, b: Self) -> Self;
    /// -a (wrapping for integers).
    fn neg(self) -> Self;
    /// |a| (wrapping for the most negative integer).
    fn abs(self) -> Self;
    /// -1, 0 or 1 (NaN stays NaN).
    fn sign(self) -> Self;
    /// a converted to f64.
    fn to_f64(self) -> f64;
    /// v converted (rounded, or truncated and saturated for integers).
    fn from_f64(v: f64) -> Self;
    /// True unless a is zero (NaN is true), for casts to bool.
    fn nonzero(self) -> bool;
}

macro_rules! int_num {
    ($($t:ty: $signed:tt),+) => {$(
        impl Num for $t {
            const ZERO: Self = 0;
            #[inline(always)]
            fn add(self, b: Self) -> Self { self.wrapping_add(b) }
            #[inline(always)]
            fn sub(self, b: Self) -> Self { self.wrapping_sub(b) }
            #[inline(always)]
            fn mul(self, b: Self) -> Self { self.wrapping_mul(b) }
            #[inline(always)]
            fn div(self, b: Self) -> Self {
                if b == 0 { 0 } else { self.wrapping_div(b) }
            }
            #[inline(always)]
            fn min_nan(self, b: Self) -> Self { if b < self { b } else { self } }
            #[inline(always)]
            fn max_nan(self, b: Self) -> Self { if b > self { b } else { self } }
            #[inline(always)]
            fn modulo(self, b: Self) -> Self {
                let r = self.fmod(b);
                #[allow(unused_comparisons)]
                if r != 0 && ((r < 0) != (b < 0)) { r.wrapping_add(b) } else { r }
            }
            #[inline(always)]
            fn fmod(self, b: Self) -> Self {
                if b == 0 { 0 } else { self.wrapping_rem(b) }
            }
            #[inline(always)]
            fn neg(self) -> Self { self.wrapping_neg() }
            #[inline(always)]
            fn abs(self) -> Self { int_num!(@abs $signed, self) }
            #[inline(always)]
            fn sign(self) -> Self {
                #[allow(unused_comparisons)]
                if self > 0 { 1 } else if self < 0 { (0 as Self).wrapping_sub(1) } else { 0 }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { v as Self }
            #[inline(always)]
            fn nonzero(self) -> bool { self != 0 }
        }
    )+};
    (@abs signed, $x:expr) => { $x.wrapping_abs() };
    (@abs unsigned, $x:expr) => { $x };
}
int_num!(i8: signed, u8: unsigned, i16: signed, u16: unsigned, i32: signed,
         u32: unsigned, i64: signed, u64: unsigned);

macro_rules! float_num {
    ($($t:ty),+) => {$(
        impl Num for $t {
            const ZERO: Self = 0.0;
            #[inline(always)]
            fn add(self, b: Self) -> Self { self + b }
            #[inline(always)]
            fn sub(self, b: Self) -> Self { self - b }
            #[inline(always)]
            fn mul(self, b: Self) -> Self { self * b }
            #[inline(always)]
            fn div(self, b: Self) -> Self { self / b }
            #[inline(always)]
            fn min_nan(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() { Self::NAN } else if b < self { b } else { self }
            }
            #[inline(always)]
            fn max_nan(self, b: Self) -> Self {
                if self.is_nan() || b.is_nan() { Self::NAN } else if b > self { b } else { self }
            }
            #[inline(always)]
            fn modulo(self, b: Self) -> Self {
                let r = self % b;
                if r != 0.0 && ((r < 0.0) != (b < 0.0)) { r + b } else { r }
            }
            #[inline(always)]
            fn fmod(self, b: Self) -> Self { self % b }
            #[inline(always)]
            fn neg(self) -> Self { -self }
            #[inline(always)]
            fn abs(self) -> Self { <$t>::abs(self) }
            #[inline(always)]
            fn sign(self) -> Self {
                if self > 0.0 { 1.0 } else if self < 0.0 { -1.0 } else { self }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { v as Self }
            #[inline(always)]
            fn nonzero(self) -> bool { self != 0.0 }
        }
    )+};
}
float_num!(f32, f64);

macro_rules! half_num {
    ($($t:ty),+) => {$(
        impl Num for $t {
            const ZERO: Self = <$t>::ZERO;
            #[inline(always)]
            fn add(self, b: Self) -> Self { Self::from_f32(self.to_f32() + b.to_f32()) }
            #[inline(always)]
            fn sub(self, b: Self) -> Self { Self::from_f32(self.to_f32() - b.to_f32()) }
            #[inline(always)]
            fn mul(self, b: Self) -> Self { Self::from_f32(self.to_f32() * b.to_f32()) }
            #[inline(always)]
            fn div(self, b: Self) -> Self { Self::from_f32(self.to_f32() / b.to_f32()) }
            #[inline(always)]
            fn min_nan(self, b: Self) -> Self {
                Self::from_f32(self.to_f32().min_nan(b.to_f32()))
            }
            #[inline(always)]
            fn max_nan(self, b: Self) -> Self {
                Self::from_f32(self.to_f32().max_nan(b.to_f32()))
            }
            #[inline(always)]
            fn modulo(self, b: Self) -> Self {
                Self::from_f32(self.to_f32().modulo(b.to_f32()))
            }
            #[inline(always)]
            fn fmod(self, b: Self) -> Self { Self::from_f32(self.to_f32() % b.to_f32()) }
            #[inline(always)]
            fn neg(self) -> Self { -self }
            #[inline(always)]
            fn abs(self) -> Self { Self::from_bits(self.to_bits() & 0x7fff) }
            #[inline(always)]
            fn sign(self) -> Self { Self::from_f32(self.to_f32().sign()) }
            #[inline(always)]
            fn to_f64(self) -> f64 { <$t>::to_f64(self) }
            #[inline(always)]
            fn from_f64(v: f64) -> Self { <$t>::from_f64(v) }
            #[inline(always)]
            fn nonzero(self) -> bool { self.to_f32() != 0.0 }
        }
    )+};
}
half_num!(f16, bf16);

/// Floating-point math for the types that compute natively (f32, f64); the
/// half types convert to f32 around these.
pub(crate) trait Real: Num + Copy {
    /// e^x.
    fn exp(self) -> Self;
    /// ln(1 + x), accurate near 0.
    fn ln_1p(self) -> Self;
    /// Error function.
    fn erf(self) -> Self;
    /// x^y.
    fn powf(self, y: Self) -> Self;
}

macro_rules! real {
    ($t:ty, $erf:path) => {
        impl Real for $t {
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln_1p(self) -> Self {
                <$t>::ln_1p(self)
            }
            #[inline(always)]
            fn erf(self) -> Self {
                $erf(self)
            }
            #[inline(always)]
            fn powf(self, y: Self) -> Self {
                <$t>::powf(self, y)
            }
        }
    };
}
real!(f32, libm::erff);
real!(f64, libm::erf);

/// Half-precision types stored as 16 bits and computed in f32.
pub(crate) trait Half: Num {
    /// To f32 (exact).
    fn widen(self) -> f32;
    /// From f32, rounding to nearest even.
    fn narrow(v: f32) -> Self;
}

impl Half for f16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        f16::from_f32(v)
    }
}

impl Half for bf16 {
    #[inline(always)]
    fn widen(self) -> f32 {
        self.to_f32()
    }
    #[inline(always)]
    fn narrow(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

#[cfg(test)]
#[path = "elem_tests.rs"]
mod tests;
