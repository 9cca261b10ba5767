//! Helpers shared by the shape, data-movement and reduction builders: axis
//! normalisation, reading constant integer inputs, strides, scalar encoding,
//! and the window attributes of the pool and conv ops.

use whittle_ir::{checked_numel, DType, Tensor};

use crate::{BuildCtx, OpError};

/// Highest rank the strided kernels handle; their odometers live on the
/// stack so `run` does not allocate.
pub(crate) const MAX_RANK: usize = 16;

/// Largest window, stride, dilation or pad accepted; keeps the size
/// arithmetic far from overflow whatever a model file says.
pub(crate) const MAX_ATTR: i64 = 1 << 24;

/// Reads an ints attribute of exactly `len` values in `[min, MAX_ATTR]`
/// (window attributes of the pool ops and the conv/pool gradients).
pub(crate) fn dims_attr(
    ctx: &BuildCtx<'_>,
    name: &str,
    len: usize,
    min: i64,
) -> Result<Option<Vec<usize>>, OpError> {
    let Some(v) = ctx.node.attr_ints(name)? else {
        return Ok(None);
    };
    if v.len() != len {
        return Err(ctx.err(format!(
            "attribute '{name}' has {} values; expected {len}",
            v.len()
        )));
    }
    v.iter()
        .map(|&x| {
            if (min..=MAX_ATTR).contains(&x) {
                Ok(x as usize)
            } else {
                Err(ctx.err(format!(
                    "attribute '{name}' value {x} is outside [{min}, {MAX_ATTR}]"
                )))
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

/// Left-pads a spatial list to the 3 dims of the kernels' geometry.
pub(crate) fn to3(v: &[usize], fill: usize) -> [usize; 3] {
    let mut out = [fill; 3];
    out[3 - v.len()..].copy_from_slice(v);
    out
}

/// Maps a possibly negative `axis` into `0..rank`.
pub(crate) fn norm_axis(ctx: &BuildCtx<'_>, axis: i64, rank: usize) -> Result<usize, OpError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(ctx.err(format!(
            "axis {axis} is out of range for rank {rank} (allowed {}..={})",
            -r,
            r - 1
        )));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Normalises a list of axes, rejecting duplicates.
pub(crate) fn norm_axes(
    ctx: &BuildCtx<'_>,
    axes: &[i64],
    rank: usize,
) -> Result<Vec<usize>, OpError> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = norm_axis(ctx, a, rank)?;
        if out.contains(&a) {
            return Err(ctx.err(format!("axis {a} appears more than once in {axes:?}")));
        }
        out.push(a);
    }
    Ok(out)
}

/// The integer values of constant input `i` (any integer dtype).
pub(crate) fn const_ints(ctx: &BuildCtx<'_>, i: usize) -> Result<Vec<i64>, OpError> {
    let t = ctx.const_value(i)?;
    ints_of(ctx, i, t)
}

/// The integer values of optional constant input `i`, if given.
pub(crate) fn opt_const_ints(ctx: &BuildCtx<'_>, i: usize) -> Result<Option<Vec<i64>>, OpError> {
    match ctx.opt_const_value(i)? {
        None => Ok(None),
        Some(t) => ints_of(ctx, i, t).map(Some),
    }
}

fn ints_of(ctx: &BuildCtx<'_>, i: usize, t: &Tensor) -> Result<Vec<i64>, OpError> {
    if t.rank() > 1 {
        return Err(ctx.err(format!(
            "input {i} must be a scalar or 1-D, found shape {:?}",
            t.shape()
        )));
    }
    t.to_i64_vec()
        .map_err(|e| ctx.err(format!("input {i}: {e}")))
}

/// Row-major element strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Element count of `shape`, with an error instead of overflow.
pub(crate) fn numel(ctx: &BuildCtx<'_>, shape: &[usize]) -> Result<usize, OpError> {
    checked_numel(shape)
        .filter(|n| n.checked_mul(8).is_some())
        .ok_or_else(|| ctx.err(format!("shape {shape:?} has too many elements")))
}

/// Converts a non-negative dimension from ONNX's i64.
pub(crate) fn dim(ctx: &BuildCtx<'_>, d: i64, what: &str) -> Result<usize, OpError> {
    usize::try_from(d).map_err(|_| ctx.err(format!("{what}: negative dimension {d}")))
}

/// Rejects ranks the strided kernels cannot walk.
pub(crate) fn check_rank(ctx: &BuildCtx<'_>, rank: usize) -> Result<(), OpError> {
    if rank > MAX_RANK {
        return Err(ctx.err(format!(
            "rank {rank} is above the supported maximum of {MAX_RANK}"
        )));
    }
    Ok(())
}

/// Encodes `v` as one element of `dtype` (little-endian bytes in the first
/// `dtype.size()` entries). Integer conversion saturates like a float cast.
pub(crate) fn scalar_bytes(dtype: DType, v: f64) -> [u8; 8] {
    let mut b = [0u8; 8];
    match dtype {
        DType::F32 => b[..4].copy_from_slice(&(v as f32).to_le_bytes()),
        DType::F64 => b.copy_from_slice(&v.to_le_bytes()),
        DType::F16 => b[..2].copy_from_slice(&f32_to_f16(v as f32).to_le_bytes()),
        DType::BF16 => b[..2].copy_from_slice(&f32_to_bf16(v as f32).to_le_bytes()),
        DType::I8 => b[0] = (v as i8) as u8,
        DType::U8 => b[0] = v as u8,
        DType::I4 => b[0] = (v.clamp(-8.0, 7.0) as i8) as u8,
        DType::U4 => b[0] = v.clamp(0.0, 15.0) as u8,
        DType::Bool => b[0] = u8::from(v != 0.0),
        DType::I16 => b[..2].copy_from_slice(&(v as i16).to_le_bytes()),
        DType::U16 => b[..2].copy_from_slice(&(v as u16).to_le_bytes()),
        DType::I32 => b[..4].copy_from_slice(&(v as i32).to_le_bytes()),
        DType::U32 => b[..4].copy_from_slice(&(v as u32).to_le_bytes()),
        DType::I64 => b.copy_from_slice(&(v as i64).to_le_bytes()),
        DType::U64 => b.copy_from_slice(&(v as u64).to_le_bytes()),
    }
    b
}

/// f32 to IEEE half bits, rounding to nearest even.
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x7f_ffff;
    if exp == 0xff {
        // Inf stays inf; NaN keeps a quiet payload bit.
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: shift the implicit-one mantissa into place and round.
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rest = m & ((1u32 << shift) - 1);
        let mut r = m >> shift;
        if rest > half || (rest == half && r & 1 == 1) {
            r += 1;
        }
        return sign | r as u16;
    }
    let mut r = ((e as u32) << 10) | (mant >> 13);
    let rest = mant & 0x1fff;
    if rest > 0x1000 || (rest == 0x1000 && r & 1 == 1) {
        // A carry into the exponent correctly yields the next binade or inf.
        r += 1;
    }
    sign | r as u16
}

/// f32 to bfloat16 bits, rounding to nearest even.
pub(crate) fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

#[cfg(test)]
#[path = "shape_util_tests.rs"]
mod tests;
