//! com.microsoft QLinearAveragePool, QLinearGlobalAveragePool (NCHW, int32
//! window sums requantized in fixed point) and QLinearConcat (each input
//! copied, or requantized through a 256-entry table when its parameters
//! differ from the output's).

use whittle_ir::DType;
use whittle_kernels::qelem::{self, Q8};
use whittle_kernels::requant::{QClamp, Requant};

use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::shape_util::norm_axis;
use crate::ops::nn::pool::{count_include_pad, spatial_input, windows};
use crate::ops::quantized::qlinear_elementwise::{range_of, scale_of, zp_of};
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add_in_domain("com.microsoft", "QLinearAveragePool", build_avg_pool);
    r.add_in_domain(
        "com.microsoft",
        "QLinearGlobalAveragePool",
        build_global_avg,
    );
    r.add_in_domain("com.microsoft", "QLinearConcat", build_concat);
}

/// Largest plane a global average sums in i32 (255 per element).
const MAX_GLOBAL_PLANE: usize = (i32::MAX / 255) as usize;

fn nchw_only(ctx: &BuildCtx<'_>) -> Result<(), OpError> {
    match ctx.node.attr_int("channels_last", 0)? {
        0 => Ok(()),
        _ => Err(ctx.err("channels_last=1 (NHWC) is not supported")),
    }
}

/// Input/output parameters: x, x_scale, x_zp, y_scale, y_zp.
struct PoolIo {
    dtype: DType,
    x_scale: f32,
    x_zp: i32,
    y_scale: f32,
    clamp: QClamp,
}

fn pool_io(ctx: &BuildCtx<'_>) -> Result<PoolIo, OpError> {
    nchw_only(ctx)?;
    let dtype = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let (lo, hi) = range_of(dtype);
    let y_zp = zp_of(ctx, 4, dtype)?;
    Ok(PoolIo {
        dtype,
        x_scale: scale_of(ctx, 1)?,
        x_zp: zp_of(ctx, 2, dtype)?,
        y_scale: scale_of(ctx, 3)?,
        clamp: QClamp::range(y_zp, lo, hi),
    })
}

/// `x_scale / (n * y_scale)` as a fixed-point multiplier.
fn mean_requant(ctx: &BuildCtx<'_>, io: &PoolIo, n: usize) -> Result<Requant, OpError> {
    Requant::from_real(io.x_scale as f64 / (n as f64 * io.y_scale as f64))
        .ok_or_else(|| ctx.err("scale ratio is out of the fixed-point range"))
}

fn build_avg_pool(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let io = pool_io(ctx)?;
    let shape = spatial_input(ctx)?;
    let w = windows(ctx, &shape)?;
    let include_pad = count_include_pad(ctx)?;
    let taps = w.geom.window_len();
    if taps > MAX_GLOBAL_PLANE {
        return Err(ctx.err(format!("window of {taps} taps is too large")));
    }
    let mut rq = vec![Requant::default()];
    for n in 1..=taps {
        rq.push(mean_requant(ctx, &io, n)?);
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(io.dtype, w.out_shape)],
        kernel: Box::new(AvgKernel {
            window: Window::Pool {
                geom: w.geom,
                include_pad,
                rq,
            },
            x_zp: io.x_zp,
            clamp: io.clamp,
            dtype: io.dtype,
        }),
    })
}

/// The window an average runs over.
enum Window {
    /// AveragePool windows, with a multiplier per tap count (index 0 unused).
    Pool {
        geom: whittle_kernels::pool::PoolGeom,
        include_pad: bool,
        rq: Vec<Requant>,
    },
    /// The whole spatial plane of `plane` elements.
    Global { plane: usize, rq: Requant },
}

/// QLinearAveragePool and QLinearGlobalAveragePool: one kernel, as they
/// differ only in the window.
struct AvgKernel {
    window: Window,
    x_zp: i32,
    clamp: QClamp,
    dtype: DType,
}

impl AvgKernel {
    fn run_typed<T: Q8 + bytemuck::Pod>(
        &self,
        x: &View<'_>,
        y: &mut ViewMut<'_>,
        ctx: &RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x: &[T] = crate::ops::common::elem::input(x)?;
        let y: &mut [T] = crate::ops::common::elem::output(y)?;
        match &self.window {
            Window::Pool {
                geom,
                include_pad,
                rq,
            } => self.run_pool(x, y, ctx, geom, *include_pad, rq),
            &Window::Global { plane, rq } => self.run_global(x, y, ctx, plane, rq),
        }
    }

    fn run_pool<T: Q8 + bytemuck::Pod>(
        &self,
        x: &[T],
        y: &mut [T],
        ctx: &RunCtx<'_>,
        geom: &whittle_kernels::pool::PoolGeom,
        include_pad: bool,
        rq: &[Requant],
    ) -> Result<(), RunError> {
        let (il, ol) = (geom.input_len(), geom.output_len());
        if ol == 0 || il == 0 || x.len() / il != y.len() / ol {
            return if y.is_empty() {
                Ok(())
            } else {
                Err(RunError::Unsupported(
                    "buffer size differs from the compiled shape",
                ))
            };
        }
        ctx.par.for_each_chunk_mut(y, ol, &|p, out| {
            qelem::qavg_pool(
                &x[p * il..][..il],
                out,
                geom,
                include_pad,
                self.x_zp,
                rq,
                self.clamp,
            )
        });
        Ok(())
    }

    fn run_global<T: Q8 + bytemuck::Pod>(
        &self,
        x: &[T],
        y: &mut [T],
        ctx: &RunCtx<'_>,
        n: usize,
        rq: Requant,
    ) -> Result<(), RunError> {
        if x.len() != y.len() * n {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let chunk = (4096 / n.max(1)).max(1);
        ctx.par.for_each_chunk_mut(y, chunk, &|i, out| {
            for (j, o) in out.iter_mut().enumerate() {
                let plane = &x[(i * chunk + j) * n..][..n];
                *o = qelem::qglobal_avg(plane, self.x_zp, rq, self.clamp);
            }
        });
        Ok(())
    }
}

impl Kernel for AvgKernel {
    fn name(&self) -> String {
        match self.window {
            Window::Pool { .. } => format!("qlinear_avgpool.{}", self.dtype),
            Window::Global { .. } => format!("qlinear_globalavgpool.{}", self.dtype),
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        match self.dtype {
            DType::I8 => self.run_typed::<i8>(&inputs[0], &mut outputs[0], ctx),
            _ => self.run_typed::<u8>(&inputs[0], &mut outputs[0], ctx),
        }
    }
}

fn build_global_avg(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let io = pool_io(ctx)?;
    let shape = ctx.fact(0)?.shape.clone();
    if shape.len() < 3 {
        return Err(ctx.err(format!(
            "input X has shape {shape:?}; expected N x C x spatial dims"
        )));
    }
    let plane: usize = shape[2..].iter().product();
    if plane > MAX_GLOBAL_PLANE {
        return Err(ctx.err(format!(
            "plane of {plane} elements is too large to sum in int32"
        )));
    }
    let rq = mean_requant(ctx, &io, plane.max(1))?;
    let mut out = shape.clone();
    out[2..].fill(1);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(io.dtype, out)],
        kernel: Box::new(AvgKernel {
            window: Window::Global { plane, rq },
            x_zp: io.x_zp,
            clamp: io.clamp,
            dtype: io.dtype,
        }),
    })
}

/// QLinearConcat: inputs Y_scale, Y_zero_point, then (X, X_scale,
/// X_zero_point) per tensor; attribute `axis`.
fn build_concat(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let n_in = ctx.num_inputs();
    if n_in < 5 || !(n_in - 2).is_multiple_of(3) {
        return Err(ctx.err(format!(
            "expected Y_scale, Y_zero_point and triples (X, X_scale, X_zero_point); got {n_in} inputs"
        )));
    }
    let y_scale = scale_of(ctx, 0)?;
    let dtype = ctx.fact(1)?.dtype;
    if !matches!(dtype, DType::U8 | DType::I8) {
        return Err(ctx.err(format!("Y_zero_point has dtype {dtype}; supported: u8, i8")));
    }
    let y_zp = zp_of(ctx, 1, dtype)?;
    let first = ctx.fact(2)?.shape.clone();
    let axis = norm_axis(
        ctx,
        ctx.node
            .attr_int_opt("axis")?
            .ok_or_else(|| ctx.err("attribute 'axis' is required"))?,
        first.len(),
    )?;
    let (lo, hi) = range_of(dtype);
    let mut parts = Vec::new();
    let mut out = first.clone();
    out[axis] = 0;
    for k in 0..(n_in - 2) / 3 {
        let i = 2 + 3 * k;
        ctx.expect_dtype(i, &[dtype])?;
        let shape = &ctx.fact(i)?.shape;
        if shape.len() != first.len()
            || shape
                .iter()
                .zip(&first)
                .enumerate()
                .any(|(d, (a, b))| d != axis && a != b)
        {
            return Err(ctx.err(format!(
                "input {i} has shape {shape:?}, which does not match {first:?} outside axis {axis}"
            )));
        }
        out[axis] += shape[axis];
        let (s, z) = (scale_of(ctx, i + 1)?, zp_of(ctx, i + 2, dtype)?);
        let table = (s.to_bits() != y_scale.to_bits() || z != y_zp).then(|| {
            let mut t = [0u8; 256];
            for (b, e) in t.iter_mut().enumerate() {
                let q = if dtype == DType::I8 {
                    b as u8 as i8 as i32
                } else {
                    b as i32
                };
                let real = (q as f32 - z as f32) * s;
                let v = ((real / y_scale).round_ties_even() as i64 + y_zp as i64)
                    .clamp(lo as i64, hi as i64);
                *e = v as i32 as u8;
            }
            t
        });
        parts.push((shape[axis..].iter().product::<usize>(), table));
    }
    let outer = first[..axis].iter().product();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out)],
        kernel: Box::new(ConcatKernel { outer, parts }),
    })
}

struct ConcatKernel {
    outer: usize,
    /// Per input: elements per outer slice, and its requantizing table
    /// (`None` when its parameters equal the output's).
    parts: Vec<(usize, Option<[u8; 256]>)>,
}

impl Kernel for ConcatKernel {
    fn name(&self) -> String {
        let tables = self.parts.iter().filter(|p| p.1.is_some()).count();
        format!("qlinear_concat.requant{tables}")
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let y = outputs[0].u8();
        let row: usize = self.parts.iter().map(|p| p.0).sum();
        if y.len() != self.outer * row {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        let mut at = 0;
        for (k, (len, table)) in self.parts.iter().enumerate() {
            let x = inputs[2 + 3 * k].u8();
            if x.len() != self.outer * len {
                return Err(RunError::Unsupported(
                    "buffer size differs from the compiled shape",
                ));
            }
            for o in 0..self.outer {
                let src = &x[o * len..][..*len];
                let dst = &mut y[o * row + at..][..*len];
                match table {
                    Some(t) => qelem::lookup(t, src, dst),
                    None => dst.copy_from_slice(src),
                }
            }
            at += len;
        }
        Ok(())
    }
}
