//! The activation functions recurrent ops (RNN, GRU, LSTM) name in their
//! `activations` attribute, with their `activation_alpha` /
//! `activation_beta` parameters.

use whittle_kernels::activation::sigmoid;

/// One recurrent-op activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RnnAct {
    Sigmoid,
    Tanh,
    Relu,
    Affine(f32, f32),
    LeakyRelu(f32),
    ThresholdedRelu(f32),
    ScaledTanh(f32, f32),
    HardSigmoid(f32, f32),
    Elu(f32),
    Softsign,
    Softplus,
}

impl RnnAct {
    /// Parses activation names, taking alphas and betas in order for the
    /// functions that use them (as onnxruntime does); missing values take
    /// the ONNX defaults of the matching standalone op.
    pub(crate) fn parse_all(
        names: &[String],
        alphas: &[f32],
        betas: &[f32],
    ) -> Result<Vec<RnnAct>, String> {
        let (mut a, mut b) = (alphas.iter().copied(), betas.iter().copied());
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let mut alpha = |d: f32| a.next().unwrap_or(d);
            let act = match name.to_ascii_lowercase().as_str() {
                "sigmoid" => RnnAct::Sigmoid,
                "tanh" => RnnAct::Tanh,
                "relu" => RnnAct::Relu,
                "affine" => RnnAct::Affine(alpha(1.0), b.next().unwrap_or(0.0)),
                "leakyrelu" => RnnAct::LeakyRelu(alpha(0.01)),
                "thresholdedrelu" => RnnAct::ThresholdedRelu(alpha(1.0)),
                "scaledtanh" => RnnAct::ScaledTanh(alpha(1.0), b.next().unwrap_or(1.0)),
                "hardsigmoid" => RnnAct::HardSigmoid(alpha(0.2), b.next().unwrap_or(0.5)),
                "elu" => RnnAct::Elu(alpha(1.0)),
                "softsign" => RnnAct::Softsign,
                "softplus" => RnnAct::Softplus,
                _ => return Err(format!("unknown activation '{name}'")),
            };
            out.push(act);
        }
        Ok(out)
    }

    /// Applies the function to one value.
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            RnnAct::Sigmoid => sigmoid(x),
            RnnAct::Tanh => x.tanh(),
            RnnAct::Relu => x.max(0.0),
            RnnAct::Affine(a, b) => a * x + b,
            RnnAct::LeakyRelu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * x
                }
            }
            RnnAct::ThresholdedRelu(a) => {
                if x > a {
                    x
                } else {
                    0.0
                }
            }
            RnnAct::ScaledTanh(a, b) => a * (b * x).tanh(),
            RnnAct::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            RnnAct::Elu(a) => {
                if x >= 0.0 {
                    x
                } else {
                    a * (x.exp() - 1.0)
                }
            }
            RnnAct::Softsign => x / (1.0 + x.abs()),
            RnnAct::Softplus => {
                // log(1 + e^x) without overflow for large x.
                if x > 20.0 {
                    x
                } else {
                    x.exp().ln_1p()
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rnn_act_tests.rs"]
mod tests;
