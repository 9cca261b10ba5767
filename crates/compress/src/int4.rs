//! int4 weight tensors.

use whittle_ir::{Tensor, TensorData};

use crate::CompressError;

/// An int4 tensor (values in [-8, 7], one per byte in memory; the ONNX
/// writer packs two per byte).
pub(crate) fn i4_tensor(shape: Vec<usize>, q: Vec<i8>) -> Result<Tensor, CompressError> {
    Ok(Tensor::new(shape, TensorData::I4(q))?)
}

/// Bytes of a tensor as stored in an ONNX file (int4 packed two per byte).
pub(crate) fn stored_bytes(t: &Tensor) -> usize {
    match t.data() {
        TensorData::I4(_) | TensorData::U4(_) => t.numel().div_ceil(2),
        _ => t.byte_size(),
    }
}
