//! HannWindow, HammingWindow and BlackmanWindow (opset 17): cosine-sum
//! windows `Σ_k (-1)^k a_k cos(2πkn / N')` with `N' = size` (periodic) or
//! `size - 1` (symmetric). The output depends only on `size`, which sets
//! the shape and so must be a compile-time constant: the result is a
//! constant. Computed in f64, then cast to `output_datatype`.

use whittle_ir::{DType, Tensor, TensorData};

use crate::ops::common::const_size::check_const_size;
use crate::ops::common::elem::NUMERIC;
use crate::ops::common::shape_util::{const_ints, scalar_bytes};
use crate::ops::elementwise::cast::onnx_dtype;
use crate::{BuildCtx, Built, OpError, Registry};

/// Registers the window ops.
pub fn register(r: &mut Registry) {
    r.add("HannWindow", |c| window(c, &[0.5, 0.5]));
    r.add("HammingWindow", |c| window(c, &[25.0 / 46.0, 21.0 / 46.0]));
    r.add("BlackmanWindow", |c| window(c, &[0.42, 0.5, 0.08]));
}

fn window(ctx: &BuildCtx<'_>, coeffs: &[f64]) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::I32, DType::I64])?;
    let size = match const_ints(ctx, 0)?.as_slice() {
        [s] if *s >= 0 => *s as usize,
        other => {
            return Err(ctx.err(format!(
                "size must be one non-negative integer, found {other:?}"
            )))
        }
    };
    let code = ctx.node.attr_int("output_datatype", 1)?;
    let dtype = onnx_dtype(code)
        .filter(|d| NUMERIC.contains(d))
        .ok_or_else(|| ctx.err(format!("output_datatype {code} is not supported")))?;
    let periodic = match ctx.node.attr_int("periodic", 1)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("periodic must be 0 or 1, found {v}"))),
    };
    check_const_size(ctx, &[size], dtype)?;
    let period = if periodic {
        size
    } else {
        size.saturating_sub(1)
    };
    let elem = dtype.size();
    let mut bytes = vec![0u8; size * elem];
    for (n, cell) in bytes.chunks_exact_mut(elem).enumerate() {
        // A one-point symmetric window is [1], as in PyTorch.
        let v = if period == 0 {
            1.0
        } else {
            let phase = 2.0 * std::f64::consts::PI * n as f64 / period as f64;
            coeffs
                .iter()
                .enumerate()
                .map(|(k, a)| {
                    let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                    sign * a * (phase * k as f64).cos()
                })
                .sum()
        };
        cell.copy_from_slice(&scalar_bytes(dtype, v)[..elem]);
    }
    let data = TensorData::from_le_bytes(dtype, &bytes)?;
    Ok(Built::Constant(vec![Tensor::new(vec![size], data)?]))
}

#[cfg(test)]
#[path = "windows_tests.rs"]
mod tests;
