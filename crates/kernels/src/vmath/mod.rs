//! Vectorised `exp` and the activations built on it (sigmoid, swish/SiLU,
//! tanh) for AVX2+FMA, AVX-512F and NEON, chosen at run time.
//!
//! Every SIMD form runs the same sequence of IEEE operations (same clamp,
//! round-to-nearest-even, fused multiply-adds and divisions), so AVX2,
//! AVX-512 and NEON give bit-identical results; the tests check each one
//! against a scalar emulation of that sequence. The reference for accuracy
//! stays the scalar libm formula of [`Activation::eval`], which is also what
//! [`MathIsa::scalar`] runs: the SIMD forms agree with it to a few ulp (the
//! measured bounds are in the tests).
//!
//! `exp(x)`: Cephes-style. `x` is clamped to `[-104, 89]` (beyond which
//! `expf` is 0 or infinite; NaN passes through), `n = round(x log2 e)`,
//! `r = x - n ln2` in two parts (Cody-Waite), `e^r` by a degree-7 polynomial
//! `1 + r + r^2 P(r)` and the result scaled by `2^n` in two exact steps (so
//! results near overflow and in the subnormal range are rounded once).
//!
//! sigmoid: `t = exp(-|x|)`, then `1 / (1 + t)` for `x >= 0` and
//! `t / (1 + t)` otherwise, as the scalar formula. tanh: odd polynomial
//! (Cephes `tanhf`) below `|x| = 0.625`, `(1 - t) / (1 + t)` with
//! `t = exp(-2|x|)` above, sign copied from `x`.
//!
//! [`Activation::eval`]: crate::Activation::eval

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;
#[cfg(test)]
mod tests;

use crate::Activation;

/// Inputs below this give `exp(x) = 0` in f32 (`e^-104 < 2^-150`).
pub(crate) const EXP_LO: f32 = -104.0;
/// Inputs above this give `exp(x) = inf` in f32 (`e^89 > f32::MAX`).
pub(crate) const EXP_HI: f32 = 89.0;
/// log2(e).
pub(crate) const LOG2E: f32 = core::f32::consts::LOG2_E;
/// High part of ln 2 (few significant bits, so `n * LN2_HI` is exact).
pub(crate) const LN2_HI: f32 = 0.693_359_4;
/// ln 2 - LN2_HI.
pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes `expf` coefficients, highest degree first:
/// `e^r = 1 + r + r^2 (((((P0 r + P1) r + P2) r + P3) r + P4) r + P5)`.
pub(crate) const EXP_P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_6e-1,
    5e-1,
];
/// Below this |x|, tanh uses its odd polynomial.
pub(crate) const TANH_SMALL: f32 = 0.625;
/// Cephes `tanhf` coefficients, highest degree first:
/// `tanh(x) = x + x z P(z)`, `z = x^2`.
pub(crate) const TANH_P: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_908_8e-2,
    -5.373_971_5e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// The instruction set the vector math runs on. Only [`MathIsa::detect`]
/// and [`MathIsa::available`] hand out SIMD variants, so holding one proves
/// the CPU supports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MathIsa(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The scalar libm formulas.
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "aarch64")]
    Neon,
}

impl MathIsa {
    /// The scalar libm formulas of [`Activation::eval`]; runs anywhere.
    pub const fn scalar() -> MathIsa {
        MathIsa(Kind::Scalar)
    }

    /// The fastest instruction set this CPU supports.
    pub fn detect() -> MathIsa {
        let mut best = MathIsa::scalar();
        for isa in MathIsa::available() {
            best = isa;
        }
        best
    }

    /// Every instruction set usable here, scalar first, fastest last (for
    /// tests and benchmarks that check each one).
    pub fn available() -> impl Iterator<Item = MathIsa> {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut all = [Some(MathIsa::scalar()), None, None];
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            all[1] = Some(MathIsa(Kind::Avx2));
            if std::is_x86_feature_detected!("avx512f") {
                all[2] = Some(MathIsa(Kind::Avx512));
            }
        }
        #[cfg(all(target_arch = "x86_64", not(feature = "std")))]
        if cfg!(all(target_feature = "avx2", target_feature = "fma")) {
            all[1] = Some(MathIsa(Kind::Avx2));
            if cfg!(target_feature = "avx512f") {
                all[2] = Some(MathIsa(Kind::Avx512));
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            // NEON is part of the aarch64 baseline.
            all[1] = Some(MathIsa(Kind::Neon));
        }
        all.into_iter().flatten()
    }

    /// Short name for reports: `scalar`, `avx2`, `avx512` or `neon`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Scalar => "scalar",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => "avx512",
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => "neon",
        }
    }
}

/// A function the vector math computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Func {
    Exp,
    Sigmoid,
    /// `x * sigmoid(alpha * x)`.
    Swish(f32),
    Tanh,
}

impl Func {
    /// The scalar libm formula (the reference).
    #[inline]
    pub(crate) fn scalar(self, x: f32) -> f32 {
        match self {
            Func::Exp => libm::expf(x),
            Func::Sigmoid => Activation::Sigmoid.eval(x),
            Func::Swish(alpha) => Activation::Swish { alpha }.eval(x),
            Func::Tanh => Activation::Tanh.eval(x),
        }
    }

    /// Applies the function to every element with `isa`.
    pub(crate) fn apply(self, isa: MathIsa, xs: &mut [f32]) {
        match isa.0 {
            Kind::Scalar => xs.iter_mut().for_each(|x| *x = self.scalar(*x)),
            // SAFETY: `Kind::Avx2` is only handed out when the CPU has AVX2
            // and FMA (`MathIsa::available`).
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2 => unsafe { avx2::apply(self, xs) },
            // SAFETY: `Kind::Avx512` is only handed out when the CPU has
            // AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => unsafe { avx512::apply(self, xs) },
            #[cfg(target_arch = "aarch64")]
            Kind::Neon => neon::apply(self, xs),
        }
    }
}

/// `xs[i] = e^xs[i]` with `isa`: `+inf` above ~88.72, 0 below ~-103.97,
/// NaN for NaN.
pub fn exp(isa: MathIsa, xs: &mut [f32]) {
    Func::Exp.apply(isa, xs);
}

/// `xs[i] = 1 / (1 + e^-xs[i])` with `isa` (numerically stable form).
pub fn sigmoid(isa: MathIsa, xs: &mut [f32]) {
    Func::Sigmoid.apply(isa, xs);
}

/// `xs[i] = xs[i] * sigmoid(alpha * xs[i])` with `isa`: ONNX Swish, SiLU
/// when `alpha` is 1.
pub fn swish(isa: MathIsa, alpha: f32, xs: &mut [f32]) {
    Func::Swish(alpha).apply(isa, xs);
}

/// `xs[i] = tanh(xs[i])` with `isa`.
pub fn tanh(isa: MathIsa, xs: &mut [f32]) {
    Func::Tanh.apply(isa, xs);
}
