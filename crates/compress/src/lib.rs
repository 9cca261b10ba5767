//! Post-training quantization for whittle: calibrate a float ONNX model on
//! sample data and write standard QDQ ONNX (QuantizeLinear/DequantizeLinear
//! around float ops) that onnxruntime runs and whittle's compiler turns into
//! integer kernels.
//!
//! * Weights of Conv (incl. depthwise), Gemm and MatMul: int8 per output
//!   channel, symmetric (zero point 0); optionally int4 in blocks along the
//!   reduction axis (opset 21 `block_size`) for Gemm/MatMul/1x1 Conv.
//! * Activations: int8 (or uint8) per tensor, asymmetric, ranges chosen by a
//!   calibration [`Method`].
//! * Bias: int32 with scale `x_scale * w_scale[c]`.
//! * Optional cross-layer equalization and bias correction, and a size
//!   budget that picks int4 / int8 / float per layer by sensitivity.
//!
//! ```no_run
//! use whittle_compress::{quantize, QuantizeOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let model = whittle_onnx::load_model("model.onnx".as_ref())?;
//! let calib = whittle_data::open_dataset("train-images-idx3-ubyte.gz")?;
//! let q = quantize(&model, &calib, &QuantizeOptions::default(), &mut |_| {})?;
//! whittle_onnx::save_model(&q.qdq, "model.int8.onnx".as_ref())?;
//! # Ok(()) }
//! ```

mod analyze;
mod calibrate;
mod emit;
mod equalize;
mod error;
mod int4;
mod mixed;
mod observer;
mod opset;
mod pipeline;
mod prepare;
mod report;
pub mod structured;
mod weights;

pub use analyze::FloatNode;
pub use emit::Bits;
pub use equalize::{equalize, EqualizeReport};
pub use error::CompressError;
pub use observer::{Method, HIST_BINS};
pub use pipeline::{quantize, Progress, QuantizeOptions, Quantized};
pub use prepare::prepare;
pub use report::{NodeReport, QuantReport};
pub use weights::ActType;

/// Parses a byte size such as `200000`, `200k`, `1.5M`, `2MiB` (k/M/G are
/// powers of 1000; Ki/Mi/Gi powers of 1024; a trailing `B` is allowed).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let (num, mult) = [
        ("ki", 1024f64),
        ("mi", 1024f64 * 1024.0),
        ("gi", 1024f64 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("m", 1e6),
        ("g", 1e9),
    ]
    .iter()
    .find_map(|(s, m)| body.strip_suffix(s).map(|n| (n, *m)))
    .unwrap_or((body, 1.0));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad size '{text}' (examples: 200000, 200k, 1.5M, 2MiB)"))?;
    if !v.is_finite() || v < 0.0 || v * mult > 1e18 {
        return Err(format!("size '{text}' is out of range"));
    }
    Ok((v * mult).round() as usize)
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("200000").unwrap(), 200_000);
        assert_eq!(parse_size("200k").unwrap(), 200_000);
        assert_eq!(parse_size("1.5M").unwrap(), 1_500_000);
        assert_eq!(parse_size("2MiB").unwrap(), 2 * 1024 * 1024);
        assert_eq!(parse_size("64KB").unwrap(), 64_000);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("-1k").is_err());
    }
}
