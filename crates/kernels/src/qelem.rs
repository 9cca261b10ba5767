//! Integer-only element-wise kernels on quantized (u8/i8) tensors: Add and
//! Mul in TFLite's fixed-point form, 256-entry table lookups (any unary
//! function of one quantized byte), and average pooling with int32 sums.
//!
//! Every path (portable, AVX2, AVX-512, NEON) produces the same bits; x86
//! SIMD is chosen at run time when the `std` feature can detect the CPU
//! (quantized Add: AVX-512, then AVX2, else portable).

#[cfg(target_arch = "aarch64")]
mod neon;
mod pool;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "x86_64")]
mod x86;

pub use pool::{qavg_pool, qglobal_avg};

use crate::requant::{QClamp, Requant};

/// A quantized 8-bit element type.
pub trait Q8: Copy + Send + Sync + 'static {
    /// Smallest value, as i32.
    const MIN: i32;
    /// Largest value, as i32.
    const MAX: i32;
    /// True for i8 (sign-extending loads), false for u8.
    const SIGNED: bool;
    /// The value as i32.
    fn get(self) -> i32;
    /// `v`, already clamped to `MIN..=MAX`.
    fn put(v: i32) -> Self;
    /// The stored byte (the table index of the value).
    fn byte(self) -> u8;
}

impl Q8 for i8 {
    const MIN: i32 = -128;
    const MAX: i32 = 127;
    const SIGNED: bool = true;
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn put(v: i32) -> i8 {
        v as i8
    }
    #[inline(always)]
    fn byte(self) -> u8 {
        self as u8
    }
}

impl Q8 for u8 {
    const MIN: i32 = 0;
    const MAX: i32 = 255;
    const SIGNED: bool = false;
    #[inline(always)]
    fn get(self) -> i32 {
        self as i32
    }
    #[inline(always)]
    fn put(v: i32) -> u8 {
        v as u8
    }
    #[inline(always)]
    fn byte(self) -> u8 {
        self
    }
}

/// TFLite's headroom shift for quantized Add: inputs are scaled up by 2^20
/// before being brought to a common scale.
pub const ADD_LEFT_SHIFT: i32 = 20;

/// Parameters of `y = (a_s (a - a_zp) + b_s (b - b_zp)) / y_s + y_zp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QAdd {
    /// Zero point of `a`.
    pub a_zp: i32,
    /// Zero point of `b`.
    pub b_zp: i32,
    /// `a_s / (2 max(a_s, b_s))`.
    pub a: Requant,
    /// `b_s / (2 max(a_s, b_s))`.
    pub b: Requant,
    /// `2 max(a_s, b_s) / (2^20 y_s)`.
    pub out: Requant,
    /// Output zero point and bounds.
    pub clamp: QClamp,
}

impl QAdd {
    /// The fixed-point form of the scales, as TFLite derives it; `None`
    /// when a scale is not finite and positive or a ratio is out of range.
    pub fn new(
        a_scale: f32,
        a_zp: i32,
        b_scale: f32,
        b_zp: i32,
        y_scale: f32,
        clamp: QClamp,
    ) -> Option<QAdd> {
        let (a_s, b_s, y_s) = (a_scale as f64, b_scale as f64, y_scale as f64);
        let twice = 2.0 * a_s.max(b_s);
        Some(QAdd {
            a_zp,
            b_zp,
            a: Requant::from_real(a_s / twice)?,
            b: Requant::from_real(b_s / twice)?,
            out: Requant::from_real(twice / ((1u64 << ADD_LEFT_SHIFT) as f64 * y_s))?,
            clamp,
        })
    }

    /// `a`'s contribution before the output rescale.
    #[inline(always)]
    pub fn scaled_a(&self, a: i32) -> i32 {
        self.a.apply((a - self.a_zp) << ADD_LEFT_SHIFT)
    }

    /// `b`'s contribution before the output rescale.
    #[inline(always)]
    pub fn scaled_b(&self, b: i32) -> i32 {
        self.b.apply((b - self.b_zp) << ADD_LEFT_SHIFT)
    }

    /// One output from two stored input values.
    #[inline(always)]
    pub fn one(&self, a: i32, b: i32) -> i32 {
        self.finish(self.scaled_a(a) + self.scaled_b(b))
    }

    #[inline(always)]
    fn finish(&self, sum: i32) -> i32 {
        self.clamp.apply(self.out.apply(sum))
    }

    /// True when every rescale only shifts right: the case the SIMD paths
    /// handle (others take the portable loop).
    pub fn right_shifts_only(&self) -> bool {
        self.a.shift <= 0 && self.b.shift <= 0 && self.out.shift <= 0
    }
}

/// Parameters of `y = a_s b_s (a - a_zp)(b - b_zp) / y_s + y_zp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QMul {
    /// Zero point of `a`.
    pub a_zp: i32,
    /// Zero point of `b`.
    pub b_zp: i32,
    /// `a_s b_s / y_s`.
    pub out: Requant,
    /// Output zero point and bounds.
    pub clamp: QClamp,
}

impl QMul {
    /// `None` when the scales are not finite and positive or their ratio is
    /// out of range.
    pub fn new(
        a_scale: f32,
        a_zp: i32,
        b_scale: f32,
        b_zp: i32,
        y_scale: f32,
        clamp: QClamp,
    ) -> Option<QMul> {
        let real = a_scale as f64 * b_scale as f64 / y_scale as f64;
        Some(QMul {
            a_zp,
            b_zp,
            out: Requant::from_real(real)?,
            clamp,
        })
    }

    /// One output from two stored input values.
    #[inline(always)]
    pub fn one(&self, a: i32, b: i32) -> i32 {
        self.clamp
            .apply(self.out.apply((a - self.a_zp) * (b - self.b_zp)))
    }
}

/// One row of a broadcast binary op: each side a slice or one value.
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a, T> {
    /// Element `i` is `s[i]`.
    Slice(&'a [T]),
    /// Every element is this value.
    Scalar(T),
}

/// `y[i] = add(a[i], b[i])` over a row.
pub fn qadd<T: Q8>(p: &QAdd, a: Operand<'_, T>, b: Operand<'_, T>, y: &mut [T]) {
    match (a, b) {
        (Operand::Slice(a), Operand::Slice(b)) => {
            let (a, b) = (&a[..y.len()], &b[..y.len()]);
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if p.right_shifts_only() && std::is_x86_feature_detected!("avx512f") {
                // SAFETY: AVX-512 F was just detected; the slices have y's length.
                unsafe { x86::qadd_avx512(p, a, b, y) };
                return;
            }
            #[cfg(all(target_arch = "x86_64", feature = "std"))]
            if p.right_shifts_only() && std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 was just detected; the slices have y's length.
                unsafe { x86::qadd_avx2(p, a, b, y) };
                return;
            }
            #[cfg(target_arch = "aarch64")]
            if p.right_shifts_only() {
                neon::qadd_neon(p, a, b, y);
                return;
            }
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = T::put(p.one(a.get(), b.get()));
            }
        }
        (Operand::Slice(a), Operand::Scalar(b)) => {
            let sb = p.scaled_b(b.get());
            for (y, &a) in y.iter_mut().zip(a) {
                *y = T::put(p.finish(p.scaled_a(a.get()) + sb));
            }
        }
        (Operand::Scalar(a), Operand::Slice(b)) => {
            let sa = p.scaled_a(a.get());
            for (y, &b) in y.iter_mut().zip(b) {
                *y = T::put(p.finish(sa + p.scaled_b(b.get())));
            }
        }
        (Operand::Scalar(a), Operand::Scalar(b)) => y.fill(T::put(p.one(a.get(), b.get()))),
    }
}

/// `y[i] = mul(a[i], b[i])` over a row.
pub fn qmul<T: Q8>(p: &QMul, a: Operand<'_, T>, b: Operand<'_, T>, y: &mut [T]) {
    match (a, b) {
        (Operand::Slice(a), Operand::Slice(b)) => {
            for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
                *y = T::put(p.one(a.get(), b.get()));
            }
        }
        (Operand::Slice(a), Operand::Scalar(b)) => {
            let b = b.get();
            for (y, &a) in y.iter_mut().zip(a) {
                *y = T::put(p.one(a.get(), b));
            }
        }
        (Operand::Scalar(a), Operand::Slice(b)) => {
            let a = a.get();
            for (y, &b) in y.iter_mut().zip(b) {
                *y = T::put(p.one(a, b.get()));
            }
        }
        (Operand::Scalar(a), Operand::Scalar(b)) => y.fill(T::put(p.one(a.get(), b.get()))),
    }
}

/// `y[i] = table[x[i]]` over bytes: any function of one quantized value
/// (the caller indexes i8 values by their two's-complement byte).
pub fn lookup(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    let x = &x[..y.len()];
    #[cfg(all(target_arch = "x86_64", feature = "std"))]
    if std::is_x86_feature_detected!("avx512vbmi") && std::is_x86_feature_detected!("avx512bw") {
        // SAFETY: AVX-512 VBMI and BW were just detected; x has y's length.
        unsafe { x86::lookup_vbmi(table, x, y) };
        return;
    }
    lookup_portable(table, x, y);
}

/// The portable form of [`lookup`].
pub fn lookup_portable(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = table[x as usize];
    }
}

/// The portable form of [`qadd`] on two slices (for tests of SIMD paths).
pub fn qadd_portable<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) {
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        *y = T::put(p.one(a.get(), b.get()));
    }
}
