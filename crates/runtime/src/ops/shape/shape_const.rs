//! Ops whose output is known from static shapes or attributes (Shape, Size,
//! Constant) and generators sized at build time (ConstantOfShape, Range).

use whittle_ir::{Attr, DType, Tensor};

use crate::ops::common::shape_util::{const_ints, dim, numel};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// Shape (opset 15: `start`/`end` slice the shape, clamped).
pub(crate) fn shape(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let s = &ctx.fact(0)?.shape;
    let r = s.len() as i64;
    let (mut start, mut end) = (0, r);
    if ctx.opset >= 15 {
        let clamp = |v: i64| if v < 0 { v + r } else { v }.clamp(0, r);
        start = clamp(ctx.node.attr_int("start", 0)?);
        end = clamp(ctx.node.attr_int("end", r)?);
    }
    let dims: Vec<i64> = if end > start {
        s[start as usize..end as usize]
            .iter()
            .map(|&d| d as i64)
            .collect()
    } else {
        Vec::new()
    };
    Ok(Built::Constant(vec![Tensor::vec_i64(dims)]))
}

/// Size: element count as an i64 scalar.
pub(crate) fn size(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let n = ctx.fact(0)?.numel();
    Ok(Built::Constant(vec![Tensor::scalar_i64(n as i64)]))
}

/// Constant: exactly one of the `value*` attributes.
pub(crate) fn constant(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let node = ctx.node;
    let mut found = Vec::new();
    for (name, attr) in &node.attrs {
        let t = match (name.as_str(), attr) {
            ("value", Attr::Tensor(t)) => t.clone(),
            ("value_float", Attr::Float(v)) => Tensor::scalar_f32(*v),
            ("value_floats", Attr::Floats(v)) => Tensor::from_f32(vec![v.len()], v.clone())?,
            ("value_int", Attr::Int(v)) => Tensor::scalar_i64(*v),
            ("value_ints", Attr::Ints(v)) => Tensor::vec_i64(v.clone()),
            ("sparse_value", _) => return Err(ctx.err("sparse_value constants are not supported")),
            ("value_string" | "value_strings", _) => {
                return Err(ctx.err("string constants are not supported"))
            }
            (n, a) if n.starts_with("value") => {
                return Err(node
                    .bad_attr(n, format!("unexpected attribute kind {}", a.kind()))
                    .into())
            }
            _ => continue,
        };
        found.push(t);
    }
    if found.len() != 1 {
        return Err(ctx.err(format!(
            "exactly one value attribute is required, found {}",
            found.len()
        )));
    }
    Ok(Built::Constant(found))
}

/// Writes one element's bytes over the whole output.
struct FillKernel {
    value: [u8; 8],
}

impl Kernel for FillKernel {
    fn name(&self) -> String {
        "fill".into()
    }

    fn run(
        &self,
        _inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let es = outputs[0].dtype().size();
        for e in outputs[0].bytes().chunks_exact_mut(es) {
            e.copy_from_slice(&self.value[..es]);
        }
        Ok(())
    }
}

/// ConstantOfShape: shape from a constant input, value from the one-element
/// `value` tensor attribute (default f32 zero).
pub(crate) fn constant_of_shape(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dims = const_ints(ctx, 0)?;
    let shape = dims
        .iter()
        .map(|&d| dim(ctx, d, "shape"))
        .collect::<Result<Vec<_>, _>>()?;
    numel(ctx, &shape)?;
    let (dtype, mut value) = (DType::F32, [0u8; 8]);
    let dtype = match ctx.node.attr_tensor("value")? {
        None => dtype,
        Some(t) if t.numel() != 1 => {
            return Err(ctx.err(format!(
                "value must hold one element, found shape {:?}",
                t.shape()
            )))
        }
        Some(t) => {
            value[..t.dtype().size()].copy_from_slice(t.as_bytes());
            t.dtype()
        }
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, shape)],
        kernel: Box::new(FillKernel { value }),
    })
}

/// Range output: `start + i·delta` (as numpy.arange computes it).
struct RangeKernel;

/// Fills `out` with `start + i·delta` for one element type.
fn arange<T: bytemuck::Pod>(inputs: &[View<'_>], out: &mut [u8], at: impl Fn(T, T, usize) -> T) {
    let start: T = bytemuck::pod_read_unaligned(&inputs[0].bytes()[..size_of::<T>()]);
    let delta: T = bytemuck::pod_read_unaligned(&inputs[2].bytes()[..size_of::<T>()]);
    let out: &mut [T] = bytemuck::cast_slice_mut(out);
    for (i, o) in out.iter_mut().enumerate() {
        *o = at(start, delta, i);
    }
}

impl Kernel for RangeKernel {
    fn name(&self) -> String {
        "range".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let out = outputs[0].bytes();
        match inputs[0].dtype() {
            DType::F32 => arange::<f32>(inputs, out, |s, d, i| s + d * i as f32),
            DType::F64 => arange::<f64>(inputs, out, |s, d, i| s + d * i as f64),
            DType::I16 => arange::<i16>(inputs, out, |s, d, i| {
                s.wrapping_add(d.wrapping_mul(i as i16))
            }),
            DType::I32 => arange::<i32>(inputs, out, |s, d, i| {
                s.wrapping_add(d.wrapping_mul(i as i32))
            }),
            _ => arange::<i64>(inputs, out, |s, d, i| {
                s.wrapping_add(d.wrapping_mul(i as i64))
            }),
        }
        Ok(())
    }
}

/// Largest Range output whittle will plan: a guard against absurd constants.
const MAX_RANGE: f64 = (1u64 << 32) as f64;

/// Range: scalar start, limit, delta (constant, since they fix the shape).
pub(crate) fn range(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(
        0,
        &[DType::F32, DType::F64, DType::I16, DType::I32, DType::I64],
    )?;
    let mut vals = [0f64; 3];
    let mut ints = [0i128; 3];
    for i in 0..3 {
        let t = ctx.const_value(i)?;
        if t.dtype() != dtype || t.numel() != 1 {
            return Err(ctx.err(format!(
                "input {i} must be a {dtype} scalar, found {} {:?}",
                t.dtype(),
                t.shape()
            )));
        }
        vals[i] = t.to_f64_vec()[0];
        if let Ok(v) = t.to_i64_vec() {
            ints[i] = i128::from(v[0]);
        }
    }
    let [start, limit, delta] = vals;
    if delta == 0.0 {
        return Err(ctx.err("delta is 0"));
    }
    let n = if dtype.is_float() {
        ((limit - start) / delta).ceil().max(0.0)
    } else {
        // Exact ceil((limit - start) / delta) for integers.
        let (span, d) = (ints[1] - ints[0], ints[2]);
        let q = span / d;
        let q = if span % d != 0 && (span < 0) == (d < 0) {
            q + 1
        } else {
            q
        };
        q.max(0) as f64
    };
    if !n.is_finite() || n > MAX_RANGE {
        return Err(ctx.err(format!(
            "range({start}, {limit}, {delta}) has too many elements"
        )));
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, vec![n as usize])],
        kernel: Box::new(RangeKernel),
    })
}
