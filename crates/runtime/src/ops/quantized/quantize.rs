//! QuantizeLinear, DequantizeLinear (opsets 10, 13, 19, 21) and
//! DynamicQuantizeLinear.
//!
//! Scales and zero points are read at run time (the conformance suite feeds
//! them as graph inputs), so one kernel serves constant and dynamic
//! parameters. Their layout is fixed at build time: per tensor (one
//! element), per axis (1-D along `axis`, opset >= 13) or blocked (same rank
//! as `x`, `axis` dim `ceil(D / block_size)`, opset >= 21).
//!
//! Arithmetic follows the ONNX reference: `y = saturate(round_half_even(x /
//! scale) + zp)` with the division in f32, and `y = (f32(x) - f32(zp)) *
//! scale`. 4-bit values live one per byte (see [`DType::I4`]).

use bytemuck::Pod;
use whittle_ir::DType;

use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::elem::{check_len, input, output};
use crate::ops::common::shape_util::norm_axis;
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add("QuantizeLinear", build_quantize);
    r.add("DequantizeLinear", build_dequantize);
    r.add("DynamicQuantizeLinear", build_dynamic);
}

/// An integer type a quantized tensor is stored in.
trait QInt: Pod {
    fn to_i32(self) -> i32;
    /// `v` is already clamped to the target range.
    fn from_i32(v: i32) -> Self;
}

macro_rules! qint {
    ($($t:ty),*) => {$(
        impl QInt for $t {
            #[inline(always)]
            fn to_i32(self) -> i32 { self as i32 }
            #[inline(always)]
            fn from_i32(v: i32) -> $t { v as $t }
        }
    )*};
}
qint!(i8, u8, i16, u16, i32);

/// The inclusive range of a quantized dtype, `None` if `dtype` is not one.
pub(crate) fn qrange(dtype: DType) -> Option<(i32, i32)> {
    Some(match dtype {
        DType::I8 => (-128, 127),
        DType::U8 => (0, 255),
        DType::I4 => (-8, 7),
        DType::U4 => (0, 15),
        DType::I16 => (-32768, 32767),
        DType::U16 => (0, 65535),
        _ => return None,
    })
}

/// Where the parameter of each element of `x` comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Tensor,
    Axis,
    /// Blocks of this many elements along the axis share a parameter.
    Block(usize),
}

/// `x` seen as `[outer, dim, inner]` around the quantization axis.
#[derive(Clone, Copy, Debug)]
struct Layout {
    outer: usize,
    dim: usize,
    inner: usize,
    mode: Mode,
    /// Number of parameters.
    params: usize,
}

impl Layout {
    /// Calls `f(range of x, parameter index, step)` for each run of `x`
    /// elements: the parameter index advances by `step` (0 or 1) per element.
    #[inline(always)]
    fn for_runs(&self, mut f: impl FnMut(std::ops::Range<usize>, usize, usize)) {
        let n = self.outer * self.dim * self.inner;
        match self.mode {
            Mode::Tensor => f(0..n, 0, 0),
            Mode::Axis => {
                for o in 0..self.outer {
                    for a in 0..self.dim {
                        let at = (o * self.dim + a) * self.inner;
                        f(at..at + self.inner, a, 0);
                    }
                }
            }
            Mode::Block(bs) => {
                let nb = self.dim.div_ceil(bs);
                for o in 0..self.outer {
                    for a in 0..self.dim {
                        let at = (o * self.dim + a) * self.inner;
                        f(at..at + self.inner, (o * nb + a / bs) * self.inner, 1);
                    }
                }
            }
        }
    }
}

/// Validates the scale (input 1) and zero point (input 2) against `x`
/// (input 0) and the `axis` / `block_size` attributes.
fn layout(ctx: &BuildCtx<'_>) -> Result<Layout, OpError> {
    let x = ctx.fact(0)?;
    let scale = ctx.fact(1)?;
    if scale.dtype != DType::F32 {
        return Err(ctx.err(format!("scale has dtype {}; supported: f32", scale.dtype)));
    }
    if let Some(zp) = ctx.opt_input(2) {
        if zp.fact.shape != scale.shape {
            return Err(ctx.err(format!(
                "zero point shape {:?} differs from scale shape {:?}",
                zp.fact.shape, scale.shape
            )));
        }
    }
    let block_size = ctx.node.attr_int("block_size", 0)?;
    if block_size != 0 && ctx.opset < 21 {
        return Err(ctx.err(format!(
            "block_size needs opset 21, the model uses opset {}",
            ctx.opset
        )));
    }
    if block_size < 0 {
        return Err(ctx.err(format!("block_size {block_size} is negative")));
    }
    let n = x.numel();
    if scale.numel() == 1 {
        return Ok(Layout {
            outer: 1,
            dim: 1,
            inner: n,
            mode: Mode::Tensor,
            params: 1,
        });
    }
    if ctx.opset < 13 {
        return Err(ctx.err(format!(
            "scale must be a scalar before opset 13, found shape {:?}",
            scale.shape
        )));
    }
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 1)?, x.rank())?;
    let dim = x.shape[axis];
    let outer = x.shape[..axis].iter().product();
    let inner = x.shape[axis + 1..].iter().product();
    if block_size == 0 {
        if scale.shape != [dim] {
            return Err(ctx.err(format!(
                "per-axis scale must have shape [{dim}] (x {:?}, axis {axis}), found {:?}",
                x.shape, scale.shape
            )));
        }
        return Ok(Layout {
            outer,
            dim,
            inner,
            mode: Mode::Axis,
            params: dim,
        });
    }
    let bs = block_size as usize;
    let mut want = x.shape.clone();
    want[axis] = dim.div_ceil(bs);
    if scale.shape != want {
        return Err(ctx.err(format!(
            "blocked scale must have shape {want:?} (x {:?}, axis {axis}, block_size {bs}), found {:?}",
            x.shape, scale.shape
        )));
    }
    Ok(Layout {
        outer,
        dim,
        inner,
        mode: Mode::Block(bs),
        params: scale.numel(),
    })
}

/// The dtype of an ONNX data type code that can hold quantized values.
fn quant_dtype(code: i64) -> Option<DType> {
    Some(match code {
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        21 => DType::U4,
        22 => DType::I4,
        _ => return None,
    })
}

fn build_quantize(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x = ctx.expect_dtype(0, &[DType::F32, DType::I32])?;
    let layout = layout(ctx)?;
    let attr_dtype = match ctx.node.attr_int("output_dtype", 0)? {
        0 => None,
        code => Some(quant_dtype(code).ok_or_else(|| {
            ctx.err(format!(
                "output_dtype {code} is not a supported quantized type (u8, i8, u16, i16, u4, i4)"
            ))
        })?),
    };
    let out = match (ctx.opt_input(2).map(|z| z.fact.dtype), attr_dtype) {
        (Some(z), Some(a)) if z != a => {
            return Err(ctx.err(format!(
                "output_dtype {a} differs from the zero point's dtype {z}"
            )))
        }
        (Some(z), _) => z,
        (None, Some(a)) => a,
        (None, None) => DType::U8,
    };
    let range = qrange(out).ok_or_else(|| {
        ctx.err(format!(
            "output dtype {out} is not a quantized type (u8, i8, u16, i16, u4, i4)"
        ))
    })?;
    let shape = ctx.fact(0)?.shape.clone();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(out, shape)],
        kernel: Box::new(QuantizeKernel {
            x,
            out,
            range,
            layout,
        }),
    })
}

struct QuantizeKernel {
    x: DType,
    out: DType,
    range: (i32, i32),
    layout: Layout,
}

/// `saturate(round_half_even(x / s) + zp)`.
#[inline(always)]
fn quantize_one(x: f32, s: f32, zp: i32, (lo, hi): (i32, i32)) -> i32 {
    // `as i32` saturates (NaN -> 0), so the sum cannot overflow in i64.
    let q = (x / s).round_ties_even() as i32;
    (i64::from(q) + i64::from(zp)).clamp(i64::from(lo), i64::from(hi)) as i32
}

/// [`quantize_one`] over a run that shares one scale and zero point, in a
/// form the compiler vectorises: clamping before rounding is exact because
/// the bounds are integers, and once `|v| < 2^22` adding and subtracting
/// 1.5 * 2^23 rounds half to even in the default rounding mode, without the
/// per-element libm call `round_ties_even` costs on baseline x86-64.
fn quantize_run<X: Copy, T: QInt>(
    x: &[X],
    y: &mut [T],
    conv: &impl Fn(X) -> f32,
    s: f32,
    zp: i32,
    (lo, hi): (i32, i32),
) {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
                                     // The range of a quantized type minus a zero point in it is below 2^17.
    let (lo, hi) = ((lo - zp) as f32, (hi - zp) as f32);
    for (xv, yv) in x.iter().zip(y.iter_mut()) {
        let v = conv(*xv) / s;
        // NaN maps to the zero point, as `quantize_one`'s saturating cast does.
        let v = if v.is_nan() { 0.0 } else { v.max(lo).min(hi) };
        *yv = T::from_i32(((v + MAGIC) - MAGIC) as i32 + zp);
    }
}

impl QuantizeKernel {
    fn run_typed<X: Pod, T: QInt>(
        &self,
        conv: impl Fn(X) -> f32,
        inputs: &[View<'_>],
        y: &mut ViewMut<'_>,
    ) -> Result<(), RunError> {
        let x: &[X] = input(&inputs[0])?;
        let scale: &[f32] = input(&inputs[1])?;
        let zp: &[T] = match inputs.get(2) {
            Some(v) if !v.bytes().is_empty() => input(v)?,
            _ => &[],
        };
        let y: &mut [T] = output(y)?;
        check_len(scale, self.layout.params)?;
        if !zp.is_empty() {
            check_len(zp, self.layout.params)?;
        }
        check_len(y, x.len())?;
        let range = self.range;
        self.layout.for_runs(|r, p0, step| {
            if step == 0 {
                let z = zp.get(p0).map_or(0, |z| z.to_i32());
                return quantize_run(&x[r.clone()], &mut y[r], &conv, scale[p0], z, range);
            }
            for (k, (xv, yv)) in x[r.clone()].iter().zip(&mut y[r]).enumerate() {
                let p = p0 + k * step;
                let z = zp.get(p).map_or(0, |z| z.to_i32());
                *yv = T::from_i32(quantize_one(conv(*xv), scale[p], z, range));
            }
        });
        Ok(())
    }
}

impl Kernel for QuantizeKernel {
    fn name(&self) -> String {
        format!("quantize_linear.{:?}.{}", self.layout.mode, self.out).to_lowercase()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let y = &mut outputs[0];
        match (self.x, self.out) {
            (DType::F32, DType::I8 | DType::I4) => self.run_typed::<f32, i8>(|v| v, inputs, y),
            (DType::F32, DType::U8 | DType::U4) => self.run_typed::<f32, u8>(|v| v, inputs, y),
            (DType::F32, DType::I16) => self.run_typed::<f32, i16>(|v| v, inputs, y),
            (DType::F32, DType::U16) => self.run_typed::<f32, u16>(|v| v, inputs, y),
            (DType::I32, DType::I8 | DType::I4) => {
                self.run_typed::<i32, i8>(|v| v as f32, inputs, y)
            }
            (DType::I32, DType::U8 | DType::U4) => {
                self.run_typed::<i32, u8>(|v| v as f32, inputs, y)
            }
            (DType::I32, DType::I16) => self.run_typed::<i32, i16>(|v| v as f32, inputs, y),
            (DType::I32, DType::U16) => self.run_typed::<i32, u16>(|v| v as f32, inputs, y),
            _ => Err(RunError::Unsupported("quantize: dtype pair not built")),
        }
    }
}

fn build_dequantize(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x = ctx.expect_dtype(
        0,
        &[
            DType::I8,
            DType::U8,
            DType::I32,
            DType::I4,
            DType::U4,
            DType::I16,
            DType::U16,
        ],
    )?;
    if let Some(zp) = ctx.opt_input(2) {
        if zp.fact.dtype != x {
            return Err(ctx.err(format!(
                "zero point dtype {} differs from x dtype {x}",
                zp.fact.dtype
            )));
        }
    }
    let layout = layout(ctx)?;
    let shape = ctx.fact(0)?.shape.clone();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, shape)],
        kernel: Box::new(DequantizeKernel { x, layout }),
    })
}

struct DequantizeKernel {
    x: DType,
    layout: Layout,
}

impl DequantizeKernel {
    fn run_typed<T: QInt>(&self, inputs: &[View<'_>], y: &mut ViewMut<'_>) -> Result<(), RunError> {
        let x: &[T] = input(&inputs[0])?;
        let scale: &[f32] = input(&inputs[1])?;
        let zp: &[T] = match inputs.get(2) {
            Some(v) if !v.bytes().is_empty() => input(v)?,
            _ => &[],
        };
        let y: &mut [f32] = output(y)?;
        check_len(scale, self.layout.params)?;
        if !zp.is_empty() {
            check_len(zp, self.layout.params)?;
        }
        check_len(y, x.len())?;
        self.layout.for_runs(|r, p0, step| {
            if step == 0 {
                let s = scale[p0];
                let z = zp.get(p0).map_or(0.0, |z| z.to_i32() as f32);
                for (xv, yv) in x[r.clone()].iter().zip(&mut y[r]) {
                    *yv = (xv.to_i32() as f32 - z) * s;
                }
            } else {
                for (k, (xv, yv)) in x[r.clone()].iter().zip(&mut y[r]).enumerate() {
                    let p = p0 + k;
                    let z = zp.get(p).map_or(0.0, |z| z.to_i32() as f32);
                    *yv = (xv.to_i32() as f32 - z) * scale[p];
                }
            }
        });
        Ok(())
    }
}

impl Kernel for DequantizeKernel {
    fn name(&self) -> String {
        format!("dequantize_linear.{:?}.{}", self.layout.mode, self.x).to_lowercase()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let y = &mut outputs[0];
        match self.x {
            DType::I8 | DType::I4 => self.run_typed::<i8>(inputs, y),
            DType::U8 | DType::U4 => self.run_typed::<u8>(inputs, y),
            DType::I16 => self.run_typed::<i16>(inputs, y),
            DType::U16 => self.run_typed::<u16>(inputs, y),
            DType::I32 => self.run_typed::<i32>(inputs, y),
            _ => Err(RunError::Unsupported("dequantize: dtype not built")),
        }
    }
}

fn build_dynamic(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let shape = ctx.fact(0)?.shape.clone();
    Ok(Built::Kernel {
        outputs: vec![
            Fact::new(DType::U8, shape),
            Fact::new(DType::F32, vec![]),
            Fact::new(DType::U8, vec![]),
        ],
        kernel: Box::new(DynamicKernel),
    })
}

struct DynamicKernel;

/// Scale and zero point of DynamicQuantizeLinear for data in [min, max]
/// (the range is widened to include 0, as the spec requires).
fn dynamic_params(x: &[f32]) -> (f32, u8) {
    let max = x.iter().fold(0f32, |m, &v| m.max(v));
    let min = x.iter().fold(0f32, |m, &v| m.min(v));
    let scale = if max == min { 1.0 } else { max - min } / 255.0;
    let zp = (0.0 - min / scale).clamp(0.0, 255.0).round_ties_even();
    (scale, zp as u8)
}

impl Kernel for DynamicKernel {
    fn name(&self) -> String {
        "dynamic_quantize_linear.u8".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x: &[f32] = input(&inputs[0])?;
        let (scale, zp) = dynamic_params(x);
        let [y, s, z] = outputs else {
            return Err(RunError::Unsupported("dynamic quantize: three outputs"));
        };
        let y: &mut [u8] = output(y)?;
        check_len(y, x.len())?;
        for (xv, yv) in x.iter().zip(y.iter_mut()) {
            *yv = quantize_one(*xv, scale, i32::from(zp), (0, 255)) as u8;
        }
        let s: &mut [f32] = output(s)?;
        check_len(s, 1)?;
        s[0] = scale;
        let z: &mut [u8] = output(z)?;
        check_len(z, 1)?;
        z[0] = zp;
        Ok(())
    }
}

#[cfg(test)]
#[path = "quantize_tests.rs"]
mod tests;
