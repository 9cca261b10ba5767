//! Quantization arithmetic: activation parameters from a range, per-channel
//! symmetric int8 weights, block-wise int4 weights, int32 biases.

use serde::Serialize;

/// Element type of quantized activations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActType {
    /// int8, zero point in [-128, 127] (whittle's default).
    I8,
    /// uint8, zero point in [0, 255] (onnxruntime's default).
    U8,
}

impl ActType {
    /// `(qmin, qmax)`.
    pub fn bounds(self) -> (i32, i32) {
        match self {
            ActType::I8 => (-128, 127),
            ActType::U8 => (0, 255),
        }
    }

    /// Name for reports.
    pub fn name(self) -> &'static str {
        match self {
            ActType::I8 => "i8",
            ActType::U8 => "u8",
        }
    }
}

/// Scale and zero point of one quantized activation tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct QParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// Asymmetric parameters covering `[lo, hi]` (which contains 0), so that
/// 0.0 is exactly representable (zero padding stays exact).
pub(crate) fn act_qparams(lo: f32, hi: f32, t: ActType) -> QParams {
    let (qmin, qmax) = t.bounds();
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let mut scale = (hi - lo) / (qmax - qmin) as f32;
    if !scale.is_finite() || scale <= f32::MIN_POSITIVE {
        // A constant-zero tensor: any scale represents it exactly.
        scale = 1.0;
    }
    let zp = (qmin as f32 - lo / scale)
        .round()
        .clamp(qmin as f32, qmax as f32) as i32;
    QParams {
        scale,
        zero_point: zp,
    }
}

/// Splits `shape` at `axis` into `(outer, dim, inner)`.
pub(crate) fn split_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}

/// Per-channel symmetric quantization along `axis` into `[-qmax, qmax]`:
/// returns the integer values and one scale per channel.
pub(crate) fn quantize_per_channel(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    qmax: i32,
) -> (Vec<i8>, Vec<f32>) {
    let (_, dim, inner) = split_axis(shape, axis);
    let mut absmax = vec![0.0f32; dim];
    for (i, &v) in w.iter().enumerate() {
        let c = (i / inner) % dim;
        absmax[c] = absmax[c].max(v.abs());
    }
    let scales: Vec<f32> = absmax
        .iter()
        .map(|&m| if m > 0.0 { m / qmax as f32 } else { 1.0 })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[(i / inner) % dim];
            (v / s).round().clamp(-qmax as f32, qmax as f32) as i8
        })
        .collect();
    (q, scales)
}

/// Per-channel dequantization (inverse of [`quantize_per_channel`]).
pub(crate) fn dequantize_per_channel(
    q: &[i8],
    scales: &[f32],
    shape: &[usize],
    axis: usize,
) -> Vec<f32> {
    let (_, dim, inner) = split_axis(shape, axis);
    q.iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scales[(i / inner) % dim])
        .collect()
}

/// Shape of the scale tensor of a block quantization along `axis`.
pub(crate) fn block_scale_shape(shape: &[usize], axis: usize, block: usize) -> Vec<usize> {
    let mut s = shape.to_vec();
    s[axis] = shape[axis].div_ceil(block);
    s
}

/// Index into the block-scale tensor for element `i` of `shape`.
fn block_index(i: usize, shape: &[usize], axis: usize, block: usize) -> usize {
    let (_, dim, inner) = split_axis(shape, axis);
    let nb = dim.div_ceil(block);
    let o = i / (dim * inner);
    let k = (i / inner) % dim;
    let r = i % inner;
    (o * nb + k / block) * inner + r
}

/// Symmetric int4 quantization in blocks of `block` along `axis` (values in
/// [-7, 7]), as ONNX DequantizeLinear with `block_size` reads them.
pub(crate) fn quantize_blocked(
    w: &[f32],
    shape: &[usize],
    axis: usize,
    block: usize,
) -> (Vec<i8>, Vec<f32>) {
    let n: usize = block_scale_shape(shape, axis, block).iter().product();
    let mut absmax = vec![0.0f32; n];
    for (i, &v) in w.iter().enumerate() {
        let b = block_index(i, shape, axis, block);
        absmax[b] = absmax[b].max(v.abs());
    }
    let scales: Vec<f32> = absmax
        .iter()
        .map(|&m| if m > 0.0 { m / 7.0 } else { 1.0 })
        .collect();
    let q = w
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let s = scales[block_index(i, shape, axis, block)];
            (v / s).round().clamp(-7.0, 7.0) as i8
        })
        .collect();
    (q, scales)
}

/// Block dequantization (inverse of [`quantize_blocked`]).
pub(crate) fn dequantize_blocked(
    q: &[i8],
    scales: &[f32],
    shape: &[usize],
    axis: usize,
    block: usize,
) -> Vec<f32> {
    q.iter()
        .enumerate()
        .map(|(i, &v)| f32::from(v) * scales[block_index(i, shape, axis, block)])
        .collect()
}

/// int32 bias with scale `x_scale * w_scale[c]`, zero point 0.
pub(crate) fn quantize_bias(b: &[f32], x_scale: f32, w_scales: &[f32]) -> (Vec<i32>, Vec<f32>) {
    let scales: Vec<f32> = w_scales.iter().map(|&ws| x_scale * ws).collect();
    let q = b
        .iter()
        .zip(&scales)
        .map(|(&v, &s)| {
            (f64::from(v) / f64::from(s))
                .round()
                .clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
        })
        .collect();
    (q, scales)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed: range [-1, 3] in i8 -> scale 4/255, zp round(-128 +
    /// 255/4) = -64; in u8 -> zp 64.
    #[test]
    fn activation_params() {
        let p = act_qparams(-1.0, 3.0, ActType::I8);
        assert!((p.scale - 4.0 / 255.0).abs() < 1e-9);
        assert_eq!(p.zero_point, -64);
        assert_eq!(act_qparams(-1.0, 3.0, ActType::U8).zero_point, 64);
        // Relu output: zero maps to qmin.
        assert_eq!(act_qparams(0.0, 6.0, ActType::I8).zero_point, -128);
        assert_eq!(act_qparams(0.0, 0.0, ActType::I8).scale, 1.0);
    }

    /// Channel 0 = [1, -2], channel 1 = [0.5, 0.25] along axis 0:
    /// scales 2/127 and 0.5/127; -2 -> -127, 0.25 -> round(63.5) = 64.
    #[test]
    fn per_channel_symmetric() {
        let (q, s) = quantize_per_channel(&[1.0, -2.0, 0.5, 0.25], &[2, 2], 0, 127);
        assert_eq!(s, vec![2.0 / 127.0, 0.5 / 127.0]);
        assert_eq!(q, vec![64, -127, 127, 64]);
        // Along axis 1 (Gemm B [K, N]): columns [1, 0.5] and [-2, 0.25].
        let (q, s) = quantize_per_channel(&[1.0, -2.0, 0.5, 0.25], &[2, 2], 1, 127);
        assert_eq!(s, vec![1.0 / 127.0, 2.0 / 127.0]);
        assert_eq!(q, vec![127, -127, 64, 16]);
        let d = dequantize_per_channel(&q, &s, &[2, 2], 1);
        assert!((d[1] + 2.0).abs() < 1e-6);
    }

    /// K = 5 with block 2 along axis 0 of [5, 1]: blocks {0,1}, {2,3}, {4}.
    #[test]
    fn blocked_int4() {
        let w = [7.0, -3.5, 1.0, 0.25, -14.0];
        let (q, s) = quantize_blocked(&w, &[5, 1], 0, 2);
        assert_eq!(block_scale_shape(&[5, 1], 0, 2), vec![3, 1]);
        assert_eq!(s, vec![1.0, 1.0 / 7.0, 2.0]);
        assert_eq!(q, vec![7, -4, 7, 2, -7]);
        let d = dequantize_blocked(&q, &s, &[5, 1], 0, 2);
        assert_eq!(d[4], -14.0);
    }

    #[test]
    fn bias_scale_is_product() {
        let (q, s) = quantize_bias(&[1.0, -0.5], 0.5, &[0.25, 0.1]);
        assert_eq!(s, vec![0.125, 0.05]);
        assert_eq!(q, vec![8, -10]);
    }
}
