//! The size check for builders that return [`Built::Constant`]: compile
//! bounds every planned tensor, but a constant is allocated by the builder
//! itself, from sizes that may come from untrusted model data.
//!
//! [`Built::Constant`]: crate::Built::Constant

use whittle_ir::{checked_numel, DType};

use crate::compile::MAX_TENSOR_BYTES;
use crate::{BuildCtx, OpError};

/// Fails unless a constant of `shape` and `dtype` fits the tensor limit.
pub(crate) fn check_const_size(
    ctx: &BuildCtx<'_>,
    shape: &[usize],
    dtype: DType,
) -> Result<(), OpError> {
    let bytes = checked_numel(shape).and_then(|n| n.checked_mul(dtype.size()));
    match bytes {
        Some(b) if b <= MAX_TENSOR_BYTES => Ok(()),
        _ => Err(ctx.err(format!(
            "output shape {shape:?} ({dtype}) is larger than the {MAX_TENSOR_BYTES} byte limit"
        ))),
    }
}
