//! What `quantize` reports: per-layer SQNR, sizes, choices, float nodes.

use serde::Serialize;

use crate::analyze::FloatNode;
use crate::emit::Bits;
use crate::equalize::EqualizeReport;

/// Signal-to-quantization-noise ratio accumulator.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sqnr {
    signal: f64,
    noise: f64,
}

impl Sqnr {
    pub fn add(&mut self, reference: &[f32], got: &[f32]) {
        for (&r, &q) in reference.iter().zip(got) {
            let (r, q) = (f64::from(r), f64::from(q));
            self.signal += r * r;
            self.noise += (r - q) * (r - q);
        }
    }

    /// `10 log10(signal / noise)` in dB; `None` for an all-zero signal, and
    /// a large finite value (200 dB) for an exact match.
    pub fn db(&self) -> Option<f64> {
        if self.signal <= 0.0 {
            return None;
        }
        if self.noise <= 0.0 {
            return Some(200.0);
        }
        Some(10.0 * (self.signal / self.noise).log10())
    }
}

/// Per-layer (or per quantized node) figures.
#[derive(Clone, Debug, Serialize)]
pub struct NodeReport {
    /// Node name.
    pub name: String,
    /// Op type.
    pub op: String,
    /// What it becomes when whittle compiles the QDQ model.
    pub int_op: String,
    /// Weight precision (layers only).
    pub weight_bits: Option<Bits>,
    /// The quantized tensor its result is compared on.
    pub output: String,
    /// SQNR of that tensor vs float on the calibration data (dB).
    pub sqnr_db: Option<f64>,
    /// Weight (+ bias) bytes in the input model.
    pub weight_bytes_before: Option<usize>,
    /// Weight (+ bias, scales, zero points) bytes in the output model.
    pub weight_bytes_after: Option<usize>,
    /// Sensitivity: model-output SQNR with only this layer's weights at
    /// int8 (dB), when measured.
    pub sensitivity_int8_db: Option<f64>,
    /// Same at int4 (eligible layers only).
    pub sensitivity_int4_db: Option<f64>,
}

/// Everything `quantize` measured and decided.
#[derive(Clone, Debug, Serialize)]
pub struct QuantReport {
    /// Calibration method used.
    pub method: String,
    /// Activation element type.
    pub activation_type: &'static str,
    /// Calibration samples run.
    pub calibration_samples: usize,
    /// Opset of the written model.
    pub opset: i64,
    /// int4 block size (when int4 is used).
    pub int4_group: Option<usize>,
    /// Cross-layer equalization, when on.
    pub equalization: Option<EqualizeReport>,
    /// Layers whose bias was corrected (empty when off).
    pub bias_corrected: Vec<String>,
    /// Quantized nodes, in graph order.
    pub nodes: Vec<NodeReport>,
    /// Nodes that stay float, and why.
    pub float_nodes: Vec<FloatNode>,
    /// Bytes of all initializers in the input model.
    pub weight_bytes_before: usize,
    /// Bytes of all initializers in the written model (int4 packed).
    pub weight_bytes_after: usize,
    /// SQNR of each graph output vs the float model (dB).
    pub output_sqnr_db: Vec<(String, Option<f64>)>,
    /// Size budget asked for, if any.
    pub size_budget: Option<usize>,
    /// Notes (e.g. clipped ranges, fallbacks).
    pub warnings: Vec<String>,
}
