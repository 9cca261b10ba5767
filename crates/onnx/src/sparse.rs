//! Densifying `SparseTensorProto`s (sparse initializers, sparse Constant
//! values).

use whittle_ir::{Tensor, TensorData};

use crate::limits::Budget;
use crate::proto::SparseTensorProto;
use crate::tensor::{decode_tensor, TensorCtx};
use crate::OnnxError;

/// The name a sparse tensor is known by (its `values.name`, per the spec).
pub(crate) fn sparse_name(sp: &SparseTensorProto) -> &str {
    sp.values.as_ref().map_or("", |v| v.name())
}

/// A dense tensor equal to `sp`. The dense size is checked against the
/// limits and charged to `budget` before it is allocated; every index is
/// bounds-checked.
pub(crate) fn densify(
    sp: &SparseTensorProto,
    name: &str,
    ctx: &TensorCtx<'_>,
    budget: Option<&mut Budget>,
) -> Result<Tensor, OnnxError> {
    let err = |r: String| OnnxError::tensor(name, format!("sparse tensor: {r}"));
    let values = sp
        .values
        .as_ref()
        .ok_or_else(|| err("has no values".into()))?;
    let indices = sp
        .indices
        .as_ref()
        .ok_or_else(|| err("has no indices".into()))?;
    let (shape, numel) = ctx.limits.tensor_shape(name, &sp.dims)?;
    let values = decode_tensor(values, name, ctx, None)?;
    let indices = decode_tensor(indices, name, ctx, None)?;
    if values.rank() != 1 {
        return Err(err(format!(
            "values must be 1-D, found shape {:?}",
            values.shape()
        )));
    }
    let nnz = values.numel();
    let idx = indices
        .to_i64_vec()
        .map_err(|e| err(format!("indices: {e}")))?;
    let rank = shape.len();
    let linear = match indices.shape() {
        [n] if *n == nnz => true,
        [n, r] if *n == nnz && *r == rank => false,
        s => {
            return Err(err(format!(
                "indices shape {s:?} is neither [{nnz}] nor [{nnz}, {rank}]"
            )))
        }
    };
    let dtype = values.dtype();
    if let Some(budget) = budget {
        budget.take(name, numel as u64 * dtype.size() as u64)?;
    }
    let mut dense = TensorData::zeros(dtype, numel);
    let size = dtype.size();
    let src = values.as_bytes();
    let dst = dense.as_bytes_mut();
    for k in 0..nnz {
        let at = if linear {
            usize::try_from(idx[k])
                .ok()
                .filter(|&i| i < numel)
                .ok_or_else(|| {
                    err(format!(
                        "index {} out of range for {numel} elements",
                        idx[k]
                    ))
                })?
        } else {
            let coords = &idx[k * rank..(k + 1) * rank];
            let mut at = 0usize;
            for (&c, &d) in coords.iter().zip(&shape) {
                let c = usize::try_from(c).ok().filter(|&c| c < d).ok_or_else(|| {
                    err(format!("index {coords:?} out of range for shape {shape:?}"))
                })?;
                // at < numel throughout, so this cannot overflow.
                at = at * d + c;
            }
            at
        };
        dst[at * size..(at + 1) * size].copy_from_slice(&src[k * size..(k + 1) * size]);
    }
    Tensor::new(shape, dense).map_err(|e| err(e.to_string()))
}
