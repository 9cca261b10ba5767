//! Pointwise activations, shared by standalone activation ops and by the
//! epilogues of fused Conv/Gemm/MatMul kernels.

/// An activation applied elementwise after a linear op.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// No activation.
    #[default]
    None,
    /// max(x, 0).
    Relu,
    /// min(max(x, min), max).
    Clip { min: f32, max: f32 },
    /// x if x >= 0 else alpha * x.
    LeakyRelu { alpha: f32 },
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// max(0, min(1, alpha * x + beta)).
    HardSigmoid { alpha: f32, beta: f32 },
    /// x * max(0, min(1, x / 6 + 1 / 2)).
    HardSwish,
    /// tanh(x).
    Tanh,
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
        }
    }

    /// Applies the activation to one value.
    #[inline(always)]
    pub fn apply(&self, x: f32) -> f32 {
        match *self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => x.max(min).min(max),
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
            Activation::HardSwish => x * (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0),
            Activation::Tanh => libm::tanhf(x),
        }
    }

    /// Applies the activation in place. The match is hoisted out of the loop
    /// so each arm compiles to a tight, vectorisable loop.
    pub fn apply_slice(&self, xs: &mut [f32]) {
        match *self {
            Activation::None => {}
            Activation::Relu => xs.iter_mut().for_each(|x| *x = x.max(0.0)),
            Activation::Clip { min, max } => xs.iter_mut().for_each(|x| *x = x.max(min).min(max)),
            Activation::LeakyRelu { alpha } => xs
                .iter_mut()
                .for_each(|x| *x = if *x >= 0.0 { *x } else { alpha * *x }),
            Activation::HardSigmoid { alpha, beta } => xs
                .iter_mut()
                .for_each(|x| *x = (alpha * *x + beta).clamp(0.0, 1.0)),
            Activation::HardSwish => xs
                .iter_mut()
                .for_each(|x| *x *= (*x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)),
            Activation::Sigmoid => xs.iter_mut().for_each(|x| *x = sigmoid(*x)),
            Activation::Tanh => xs.iter_mut().for_each(|x| *x = libm::tanhf(*x)),
        }
    }
}

/// Numerically stable logistic function.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + libm::expf(-x))
    } else {
        let e = libm::expf(x);
        e / (1.0 + e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_matches_scalar() {
        let acts = [
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
        ];
        let xs: [f32; 7] = [-100.0, -3.5, -0.25, 0.0, 0.5, 3.0, 90.0];
        for act in acts {
            let mut v = xs;
            act.apply_slice(&mut v);
            for (x, y) in xs.iter().zip(v) {
                assert_eq!(act.apply(*x), y, "{act:?} at {x}");
            }
        }
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert_eq!(Activation::HardSwish.apply(-3.0), 0.0);
        assert!((sigmoid(-100.0)).abs() < 1e-30 && sigmoid(100.0) == 1.0);
    }
}
