//! Pointwise activations, shared by standalone activation ops, the epilogues
//! of fused Conv/Gemm/MatMul kernels and the training backward pass.
//!
//! Each activation's formula, and its derivative, is written once here, over
//! [`ActFloat`], so f32 kernels, f64 ops and the gradients compute the same
//! expression. [`Activation::apply_slice`] and the SIMD epilogues
//! (`gemm::micro::VecAct`) vectorise them — Sigmoid, Tanh and Swish through
//! [`crate::vmath`], within a few ulp — and are tested against these.

use core::ops::{Add, Div, Mul, Neg, Sub};

use crate::vmath::{self, MathIsa};

/// An activation applied elementwise after a linear op.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max).
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// x if x >= 0 else alpha * x.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// max(0, min(1, alpha * x + beta)).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// x * max(0, min(1, x / 6 + 1 / 2)).
    HardSwish,
    /// tanh(x).
    Tanh,
    /// x * sigmoid(alpha * x): ONNX `Swish`; SiLU when alpha is 1.
    Swish {
        /// Scale inside the sigmoid.
        alpha: f32,
    },
}

/// What the gradient of an activation reads besides dY.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradInput {
    /// The forward output Y (which the next layer keeps anyway, so the
    /// backward pass stores nothing extra).
    Output,
    /// The forward input X (when Y does not determine the derivative).
    Input,
}

/// The float operations the activation formulas use, for f32 and f64.
pub trait ActFloat:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Widens (or keeps) an f32 parameter.
    fn of(v: f32) -> Self;
    /// e^x.
    fn exp(self) -> Self;
    /// tanh(x).
    fn tanh(self) -> Self;
    /// The larger of two values; `self` if `other` is NaN.
    fn max(self, other: Self) -> Self;
    /// The smaller of two values; `self` if `other` is NaN.
    fn min(self, other: Self) -> Self;
    /// Clamped to [0, 1]; NaN stays NaN.
    fn unit_clamp(self) -> Self;
    /// x / 6, as each precision's kernels have always computed it (f32
    /// multiplies by the rounded reciprocal, f64 divides).
    fn div6(self) -> Self;
}

impl ActFloat for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    #[inline(always)]
    fn of(v: f32) -> f32 {
        v
    }
    #[inline(always)]
    fn exp(self) -> f32 {
        libm::expf(self)
    }
    #[inline(always)]
    fn tanh(self) -> f32 {
        libm::tanhf(self)
    }
    #[inline(always)]
    fn max(self, other: f32) -> f32 {
        f32::max(self, other)
    }
    #[inline(always)]
    fn min(self, other: f32) -> f32 {
        f32::min(self, other)
    }
    #[inline(always)]
    fn unit_clamp(self) -> f32 {
        self.clamp(0.0, 1.0)
    }
    #[inline(always)]
    fn div6(self) -> f32 {
        self * (1.0 / 6.0)
    }
}

impl ActFloat for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    #[inline(always)]
    fn of(v: f32) -> f64 {
        f64::from(v)
    }
    #[inline(always)]
    fn exp(self) -> f64 {
        libm::exp(self)
    }
    #[inline(always)]
    fn tanh(self) -> f64 {
        libm::tanh(self)
    }
    #[inline(always)]
    fn max(self, other: f64) -> f64 {
        f64::max(self, other)
    }
    #[inline(always)]
    fn min(self, other: f64) -> f64 {
        f64::min(self, other)
    }
    #[inline(always)]
    fn unit_clamp(self) -> f64 {
        self.clamp(0.0, 1.0)
    }
    #[inline(always)]
    fn div6(self) -> f64 {
        self / 6.0
    }
}

/// Applies `f` to every element; a separate function so each call site below
/// monomorphises into its own tight loop.
#[inline(always)]
fn each(xs: &mut [f32], f: impl Fn(f32) -> f32) {
    xs.iter_mut().for_each(|x| *x = f(*x));
}

impl Activation {
    /// Short name for kernel reports, e.g. `relu`.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::None => "none",
            Activation::Relu => "relu",
            Activation::Clip { .. } => "clip",
            Activation::LeakyRelu { .. } => "leakyrelu",
            Activation::Sigmoid => "sigmoid",
            Activation::HardSigmoid { .. } => "hardsigmoid",
            Activation::HardSwish => "hardswish",
            Activation::Tanh => "tanh",
            Activation::Swish { alpha } if *alpha == 1.0 => "silu",
            Activation::Swish { .. } => "swish",
        }
    }

    /// The activation's formula, in f32 or f64.
    #[inline(always)]
    pub fn eval<F: ActFloat>(&self, x: F) -> F {
        match *self {
            Activation::None => x,
            Activation::Relu => x.max(F::ZERO),
            Activation::Clip { min, max } => x.max(F::of(min)).min(F::of(max)),
            Activation::LeakyRelu { alpha } => {
                if x >= F::ZERO {
                    x
                } else {
                    F::of(alpha) * x
                }
            }
            Activation::Sigmoid => sigmoid_of(x),
            Activation::HardSigmoid { alpha, beta } => {
                (F::of(alpha) * x + F::of(beta)).unit_clamp()
            }
            Activation::HardSwish => x * (x.div6() + F::of(0.5)).unit_clamp(),
            Activation::Tanh => x.tanh(),
            Activation::Swish { alpha } => x * sigmoid_of(F::of(alpha) * x),
        }
    }

    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        self.eval(x)
    }

    /// Applies the activation in place, with the fastest [`MathIsa`] this
    /// CPU has for Sigmoid, Tanh and Swish (within a few ulp of
    /// [`Activation::apply`]; see [`crate::vmath`]). Code that must give the
    /// same bits on every machine (int8 lookup tables) uses
    /// [`Activation::apply`] instead.
    pub fn apply_slice(&self, xs: &mut [f32]) {
        // Kernels call this once per row or channel: only the exp-based
        // activations need the CPU's vector ISA, so only they look it up.
        let isa = match self {
            Activation::Sigmoid | Activation::Tanh | Activation::Swish { .. } => MathIsa::detect(),
            _ => MathIsa::scalar(),
        };
        self.apply_slice_with(isa, xs);
    }

    /// [`Activation::apply_slice`] with Sigmoid, Tanh and Swish on `isa`
    /// ([`MathIsa::scalar`]: exactly [`Activation::apply`]). The match is
    /// hoisted out of the loop (each arm passes a constant variant to
    /// [`Activation::eval`]), so each of the other arms compiles to its own
    /// tight, autovectorised loop.
    pub fn apply_slice_with(&self, isa: MathIsa, xs: &mut [f32]) {
        match *self {
            Activation::None => {}
            Activation::Relu => each(xs, |x| Activation::Relu.eval(x)),
            Activation::Clip { min, max } => each(xs, |x| Activation::Clip { min, max }.eval(x)),
            Activation::LeakyRelu { alpha } => {
                each(xs, |x| Activation::LeakyRelu { alpha }.eval(x))
            }
            Activation::HardSigmoid { alpha, beta } => {
                each(xs, |x| Activation::HardSigmoid { alpha, beta }.eval(x))
            }
            Activation::HardSwish => each(xs, |x| Activation::HardSwish.eval(x)),
            Activation::Sigmoid => vmath::sigmoid(isa, xs),
            Activation::Tanh => vmath::tanh(isa, xs),
            Activation::Swish { alpha } => vmath::swish(isa, alpha, xs),
        }
    }

    /// Which forward value [`Activation::derivative`] takes.
    pub fn grad_input(&self) -> GradInput {
        match self {
            Activation::None
            | Activation::Relu
            | Activation::Clip { .. }
            | Activation::Sigmoid
            | Activation::Tanh => GradInput::Output,
            Activation::LeakyRelu { .. }
            | Activation::HardSigmoid { .. }
            | Activation::HardSwish
            | Activation::Swish { .. } => GradInput::Input,
        }
    }

    /// dY/dX, from the forward value [`Activation::grad_input`] names (Y or
    /// X). At kinks it follows PyTorch: 0 at Relu's 0 and at Clip's bounds,
    /// alpha at LeakyRelu's 0, HardSwish's middle piece at exactly -3 and +3,
    /// 0 at HardSigmoid's ends.
    #[inline(always)]
    pub fn derivative(&self, v: f32) -> f32 {
        let pass = |open: bool| if open { 1.0 } else { 0.0 };
        match *self {
            Activation::None => 1.0,
            Activation::Relu => pass(v > 0.0),
            Activation::Clip { min, max } => pass(v > min && v < max),
            Activation::LeakyRelu { alpha } => {
                if v > 0.0 {
                    1.0
                } else {
                    alpha
                }
            }
            Activation::Sigmoid => v * (1.0 - v),
            Activation::HardSigmoid { alpha, beta } => {
                let z = alpha * v + beta;
                if z > 0.0 && z < 1.0 {
                    alpha
                } else {
                    0.0
                }
            }
            Activation::HardSwish => {
                if v < -3.0 {
                    0.0
                } else if v <= 3.0 {
                    v / 3.0 + 0.5
                } else {
                    1.0
                }
            }
            Activation::Tanh => 1.0 - v * v,
            Activation::Swish { alpha } => {
                let s = sigmoid(alpha * v);
                s + alpha * v * s * (1.0 - s)
            }
        }
    }

    /// The clamp `[lo, hi]` this activation is, when it is one (None, Relu,
    /// Clip): integer kernels apply those in their requantizing clamp.
    pub fn as_clamp(&self) -> Option<(f32, f32)> {
        match *self {
            Activation::None => Some((f32::NEG_INFINITY, f32::INFINITY)),
            Activation::Relu => Some((0.0, f32::INFINITY)),
            Activation::Clip { min, max } => Some((min, max)),
            _ => None,
        }
    }
}

/// Numerically stable logistic function, in f32 or f64.
#[inline(always)]
fn sigmoid_of<F: ActFloat>(x: F) -> F {
    if x >= F::ZERO {
        F::ONE / (F::ONE + (-x).exp())
    } else {
        let e = x.exp();
        e / (F::ONE + e)
    }
}

/// Numerically stable logistic function.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    sigmoid_of(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACTS: [Activation; 9] = [
        Activation::Relu,
        Activation::Clip {
            min: -1.0,
            max: 6.0,
        },
        Activation::LeakyRelu { alpha: 0.1 },
        Activation::Sigmoid,
        Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Activation::HardSwish,
        Activation::Tanh,
        Activation::Swish { alpha: 1.0 },
        Activation::Swish { alpha: 1.7 },
    ];

    /// On every [`MathIsa`]: exact for the activations without `exp` and
    /// on the scalar path, within 4e-7 relative (the bound of
    /// `vmath::tests::simd_accuracy_against_libm`) for the rest.
    #[test]
    fn slice_matches_scalar() {
        let xs: [f32; 19] = [
            -100.0, -20.0, -3.5, -0.7, -0.25, -1e-3, -0.0, 0.0, 1e-6, 0.3, 0.5, 0.8, 3.0, 7.0, 9.5,
            17.0, 90.0, -1e4, 1e4,
        ];
        for isa in MathIsa::available() {
            for act in ACTS {
                let mut v = xs;
                act.apply_slice_with(isa, &mut v);
                let uses_exp = matches!(
                    act,
                    Activation::Sigmoid | Activation::Tanh | Activation::Swish { .. }
                );
                let exact = isa == MathIsa::scalar() || !uses_exp;
                for (x, y) in xs.iter().zip(v) {
                    let want = act.apply(*x);
                    if exact {
                        assert_eq!(want.to_bits(), y.to_bits(), "{act:?} at {x}");
                    } else {
                        let tol = 4e-7 * want.abs();
                        assert!(
                            (y - want).abs() <= tol,
                            "{act:?} {isa:?} at {x}: {y} vs {want}"
                        );
                    }
                }
            }
        }
        let mut v = xs;
        Activation::Sigmoid.apply_slice(&mut v);
        assert!(v.iter().all(|y| (0.0..=1.0).contains(y)));
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert_eq!(Activation::HardSwish.apply(-3.0), 0.0);
        assert!((sigmoid(-100.0)).abs() < 1e-30 && sigmoid(100.0) == 1.0);
    }

    #[test]
    fn silu_values() {
        let silu = Activation::Swish { alpha: 1.0 };
        assert_eq!(silu.apply(0.0), 0.0);
        assert!((silu.apply(1.0) - 0.731_058_6).abs() < 1e-6);
        assert!((silu.apply(-2.0) - -0.238_405_84).abs() < 1e-6);
        assert_eq!(silu.apply(-200.0), -0.0);
        assert_eq!(silu.name(), "silu");
        assert_eq!(Activation::Swish { alpha: 2.0 }.name(), "swish");
    }

    #[test]
    fn f64_matches_f32_formula() {
        for act in ACTS {
            for x in [-7.5f32, -1.25, 0.0, 0.3, 2.0, 9.0] {
                let (a, b) = (act.eval(x), act.eval(f64::from(x)));
                assert!((f64::from(a) - b).abs() < 1e-6, "{act:?} at {x}");
            }
        }
    }

    /// The derivative against a central difference, away from kinks.
    #[test]
    fn derivative_matches_finite_difference() {
        for act in ACTS {
            for x in [-4.1f64, -2.2, -0.7, 0.4, 1.9, 3.6, 5.2] {
                let h = 1e-4;
                let fd = (act.eval(x + h) - act.eval(x - h)) / (2.0 * h);
                let v = match act.grad_input() {
                    GradInput::Output => act.eval(x),
                    GradInput::Input => x,
                } as f32;
                let d = f64::from(act.derivative(v));
                assert!((d - fd).abs() < 2e-3, "{act:?} at {x}: {d} vs {fd}");
            }
        }
    }
}
