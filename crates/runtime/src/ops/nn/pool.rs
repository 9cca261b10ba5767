//! MaxPool, AveragePool, LpPool and their global forms over NC[D]HW tensors.
//! Attributes become a [`PoolGeom`] at build time; run loops over `(n, c)`
//! planes, splitting them across threads.

use whittle_ir::DType;
use whittle_kernels::pool::{self as k, PoolElem, PoolGeom};

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::common::shape_util::dims_attr;
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

/// Registers the pooling ops.
pub fn register(r: &mut Registry) {
    r.add("MaxPool", build_max_pool);
    r.add("AveragePool", build_avg_pool);
    r.add("LpPool", build_lp_pool);
    r.add("GlobalMaxPool", build_global_max);
    r.add("GlobalAveragePool", build_global_avg);
    r.add("GlobalLpPool", build_global_lp);
}

/// Largest output accepted, in elements.
const MAX_OUTPUT_ELEMS: usize = 1 << 32;

/// What a pooling kernel computes per window.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Max,
    Avg { include_pad: bool },
    Lp { p: f32 },
}

/// Validated windows of a pooling node plus the output shape.
pub(crate) struct Windows {
    pub(crate) geom: PoolGeom,
    pub(crate) out_shape: Vec<usize>,
}

/// Checks the input is N x C x spatial with 1..=3 spatial dims.
pub(crate) fn spatial_input(ctx: &BuildCtx<'_>) -> Result<Vec<usize>, OpError> {
    let shape = ctx.fact(0)?.shape.clone();
    if !(3..=5).contains(&shape.len()) {
        return Err(ctx.err(format!(
            "input X has shape {shape:?}; expected N x C with 1 to 3 spatial dims"
        )));
    }
    Ok(shape)
}

/// Parses kernel_shape, strides, dilations, pads, auto_pad and ceil_mode.
pub(crate) fn windows(ctx: &BuildCtx<'_>, shape: &[usize]) -> Result<Windows, OpError> {
    let nd = shape.len() - 2;
    let input = &shape[2..];
    let kernel = dims_attr(ctx, "kernel_shape", nd, 1)?
        .ok_or_else(|| ctx.err("attribute 'kernel_shape' is required"))?;
    let stride = dims_attr(ctx, "strides", nd, 1)?.unwrap_or_else(|| vec![1; nd]);
    let dilation = dims_attr(ctx, "dilations", nd, 1)?.unwrap_or_else(|| vec![1; nd]);
    let ceil = match ctx.node.attr_int("ceil_mode", 0)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("ceil_mode must be 0 or 1, got {v}"))),
    };
    let auto_pad = ctx.node.attr_string("auto_pad", "NOTSET")?;
    let ext: Vec<usize> = (0..nd).map(|i| (kernel[i] - 1) * dilation[i] + 1).collect();
    let (mut pb, mut pe) = (vec![0; nd], vec![0; nd]);
    match auto_pad.as_str() {
        "NOTSET" | "" => {
            if let Some(p) = dims_attr(ctx, "pads", 2 * nd, 0)? {
                pb.copy_from_slice(&p[..nd]);
                pe.copy_from_slice(&p[nd..]);
            }
        }
        "VALID" => {}
        "SAME_UPPER" | "SAME_LOWER" => {
            for i in 0..nd {
                let out = input[i].div_ceil(stride[i]);
                let total = ((out.max(1) - 1) * stride[i] + ext[i]).saturating_sub(input[i]);
                let small = total / 2;
                (pb[i], pe[i]) = if auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                };
            }
        }
        other => return Err(ctx.err(format!("unknown auto_pad '{other}'"))),
    }
    let mut out = vec![0; nd];
    for i in 0..nd {
        let padded = input[i] + pb[i] + pe[i];
        if padded < ext[i] {
            return Err(ctx.err(format!(
                "window extent {} exceeds padded input extent {padded} on spatial dim {i}",
                ext[i]
            )));
        }
        let span = padded - ext[i];
        let mut o = if ceil {
            span.div_ceil(stride[i])
        } else {
            span / stride[i]
        } + 1;
        // Ceil mode may add a window that starts in the end padding; like
        // PyTorch and onnxruntime, drop it.
        if ceil && (o - 1) * stride[i] >= input[i] + pb[i] {
            o -= 1;
        }
        out[i] = o;
    }
    // Left-fill to the kernels' three spatial dims.
    let lift = |v: &[usize], fill: usize| {
        let mut a = [fill; 3];
        a[3 - nd..].copy_from_slice(v);
        a
    };
    let geom = PoolGeom {
        input: lift(input, 1),
        output: lift(&out, 1),
        kernel: lift(&kernel, 1),
        stride: lift(&stride, 1),
        dilation: lift(&dilation, 1),
        pad_begin: lift(&pb, 0),
        pad_end: lift(&pe, 0),
    };
    let mut out_shape = shape[..2].to_vec();
    out_shape.extend(out);
    // Padding alone can blow the output up; keep it plannable.
    if whittle_ir::checked_numel(&out_shape).is_none_or(|n| n > MAX_OUTPUT_ELEMS) {
        return Err(ctx.err(format!("output shape {out_shape:?} is too large")));
    }
    Ok(Windows { geom, out_shape })
}

/// True when output `i` of the node is requested.
fn wants_output(ctx: &BuildCtx<'_>, i: usize) -> bool {
    ctx.node.outputs.get(i).is_some_and(|s| !s.is_empty())
}

fn build_max_pool(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, &[DType::F32, DType::I8, DType::U8])?;
    let shape = spatial_input(ctx)?;
    let w = windows(ctx, &shape)?;
    let storage_order = ctx.node.attr_int("storage_order", 0)?;
    if !(0..=1).contains(&storage_order) {
        return Err(ctx.err(format!("storage_order must be 0 or 1, got {storage_order}")));
    }
    let indices = wants_output(ctx, 1);
    let mut outputs = vec![Fact::new(dtype, w.out_shape.clone())];
    if indices {
        outputs.push(Fact::new(DType::I64, w.out_shape.clone()));
    }
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(PoolKernel {
            mode: Mode::Max,
            geom: w.geom,
            planes: shape[0] * shape[1],
            indices: indices.then_some(storage_order == 1),
        }),
    })
}

/// AveragePool's `count_include_pad` attribute (float and quantized).
pub(crate) fn count_include_pad(ctx: &BuildCtx<'_>) -> Result<bool, OpError> {
    match ctx.node.attr_int("count_include_pad", 0)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(ctx.err(format!("count_include_pad must be 0 or 1, got {v}"))),
    }
}

fn build_avg_pool(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let shape = spatial_input(ctx)?;
    let w = windows(ctx, &shape)?;
    let include_pad = count_include_pad(ctx)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, w.out_shape)],
        kernel: Box::new(PoolKernel {
            mode: Mode::Avg { include_pad },
            geom: w.geom,
            planes: shape[0] * shape[1],
            indices: None,
        }),
    })
}

/// LpPool's `p`: an int since opset 2 (a float in opset 1).
fn lp_p(ctx: &BuildCtx<'_>) -> Result<f32, OpError> {
    let p = ctx.node.attr_float("p", 2.0)?;
    if !(p.is_finite() && p > 0.0) {
        return Err(ctx.err(format!("p must be positive, got {p}")));
    }
    Ok(p)
}

fn build_lp_pool(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let shape = spatial_input(ctx)?;
    let w = windows(ctx, &shape)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, w.out_shape)],
        kernel: Box::new(PoolKernel {
            mode: Mode::Lp { p: lp_p(ctx)? },
            geom: w.geom,
            planes: shape[0] * shape[1],
            indices: None,
        }),
    })
}

/// A windowed pooling node.
struct PoolKernel {
    mode: Mode,
    geom: PoolGeom,
    planes: usize,
    /// `Some(column_major)` when the Indices output is requested.
    indices: Option<bool>,
}

impl PoolKernel {
    fn run_max<T: PoolElem>(&self, x: &[T], y: &mut [T], par: &crate::Parallel) {
        let (g, il) = (&self.geom, self.geom.input_len());
        par.for_each_chunk_mut(y, g.output_len(), &|p, out| {
            k::max_pool(&x[p * il..][..il], out, g)
        });
    }

    fn run_max_indices<T: PoolElem>(&self, x: &[T], y: &mut [T], idx: &mut [i64], col_major: bool) {
        let (g, il, ol) = (&self.geom, self.geom.input_len(), self.geom.output_len());
        let [d, h, w] = g.input;
        for p in 0..self.planes {
            let out_idx = &mut idx[p * ol..][..ol];
            k::max_pool_indices(&x[p * il..][..il], &mut y[p * ol..][..ol], out_idx, g);
            for i in out_idx.iter_mut() {
                if *i < 0 {
                    continue;
                }
                let mut at = *i as usize;
                if col_major {
                    // ONNX's column-major index lets the first spatial dim
                    // vary fastest; lifted 1-sized dims drop out.
                    let (cd, ch, cw) = (at / (h * w), at / w % h, at % w);
                    at = cd + ch * d + cw * d * h;
                }
                *i = (p * il + at) as i64;
            }
        }
    }
}

impl Kernel for PoolKernel {
    fn name(&self) -> String {
        let g = &self.geom;
        let base = match self.mode {
            Mode::Max if self.indices.is_some() => "maxpool.indices",
            Mode::Max => "maxpool",
            Mode::Avg { .. } => "avgpool",
            Mode::Lp { .. } => "lppool",
        };
        let fast_2x2 = g.kernel == [1, 2, 2] && !matches!(self.mode, Mode::Lp { .. });
        let fast_3x3 = g.kernel == [1, 3, 3] && self.mode == Mode::Max;
        let plain = g.input[0] == 1
            && g.pad_begin == [0; 3]
            && g.dilation == [1; 3]
            && g.stride[1..] == [2, 2]
            && self.indices.is_none();
        if plain && (fast_2x2 || fast_3x3) {
            format!("{base}.k{}s2", g.kernel[1])
        } else {
            base.to_string()
        }
    }

    fn macs(&self) -> u64 {
        (self.planes * self.geom.output_len() * self.geom.window_len()) as u64
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, g) = (&inputs[0], &self.geom);
        let (il, ol) = (g.input_len(), g.output_len());
        let (y, rest) = outputs
            .split_first_mut()
            .ok_or(RunError::Unsupported("missing output"))?;
        match (self.mode, self.indices) {
            (Mode::Max, Some(col_major)) => {
                let idx = rest[0].i64();
                match x.dtype() {
                    DType::F32 => self.run_max_indices(x.f32(), y.f32(), idx, col_major),
                    DType::I8 => self.run_max_indices(x.i8(), y.i8(), idx, col_major),
                    _ => self.run_max_indices(x.u8(), y.u8(), idx, col_major),
                }
            }
            (Mode::Max, None) => match x.dtype() {
                DType::F32 => self.run_max(x.f32(), y.f32(), ctx.par),
                DType::I8 => self.run_max(x.i8(), y.i8(), ctx.par),
                _ => self.run_max(x.u8(), y.u8(), ctx.par),
            },
            (Mode::Avg { include_pad }, _) => {
                let x = x.f32();
                ctx.par.for_each_chunk_mut(y.f32(), ol, &|p, out| {
                    k::avg_pool(&x[p * il..][..il], out, g, include_pad)
                });
            }
            (Mode::Lp { p }, _) => {
                let x = x.f32();
                ctx.par.for_each_chunk_mut(y.f32(), ol, &|i, out| {
                    k::lp_pool(&x[i * il..][..il], out, g, p)
                });
            }
        }
        Ok(())
    }
}

/// Builds a global pooling node: one value per `(n, c)` plane.
fn build_global(ctx: &BuildCtx<'_>, mode: Mode, dtypes: &[DType]) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, dtypes)?;
    let shape = &ctx.fact(0)?.shape;
    if shape.len() < 3 {
        return Err(ctx.err(format!(
            "input X has shape {shape:?}; expected N x C x spatial dims"
        )));
    }
    let mut out_shape = shape.clone();
    out_shape[2..].fill(1);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out_shape)],
        kernel: Box::new(GlobalPool {
            mode,
            plane: shape[2..].iter().product(),
        }),
    })
}

fn build_global_max(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build_global(ctx, Mode::Max, &[DType::F32, DType::I8, DType::U8])
}

fn build_global_avg(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build_global(ctx, Mode::Avg { include_pad: false }, &[DType::F32])
}

fn build_global_lp(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build_global(ctx, Mode::Lp { p: lp_p(ctx)? }, &[DType::F32])
}

/// Reduces each `(n, c)` plane to one value.
struct GlobalPool {
    mode: Mode,
    plane: usize,
}

fn global_each<T: Copy + Send + Sync>(
    x: &[T],
    y: &mut [T],
    plane: usize,
    par: &crate::Parallel,
    f: fn(&[T]) -> T,
) {
    // Planes per task: enough work to be worth a thread hop.
    let chunk = (4096 / plane.max(1)).max(1);
    par.for_each_chunk_mut(y, chunk, &|i, out| {
        for (j, o) in out.iter_mut().enumerate() {
            *o = f(&x[(i * chunk + j) * plane..][..plane]);
        }
    });
}

impl Kernel for GlobalPool {
    fn name(&self) -> String {
        match self.mode {
            Mode::Max => "globalmaxpool",
            Mode::Avg { .. } => "globalavgpool",
            Mode::Lp { .. } => "globallppool",
        }
        .to_string()
    }

    fn macs(&self) -> u64 {
        0
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, y, n) = (&inputs[0], &mut outputs[0], self.plane);
        match (self.mode, x.dtype()) {
            (Mode::Max, DType::F32) => global_each(x.f32(), y.f32(), n, ctx.par, k::global_max),
            (Mode::Max, DType::I8) => global_each(x.i8(), y.i8(), n, ctx.par, k::global_max),
            (Mode::Max, _) => global_each(x.u8(), y.u8(), n, ctx.par, k::global_max),
            (Mode::Avg { .. }, _) => global_each(x.f32(), y.f32(), n, ctx.par, k::global_avg),
            (Mode::Lp { p }, _) => {
                let x = x.f32();
                for (i, o) in y.f32().iter_mut().enumerate() {
                    *o = k::global_lp(&x[i * n..][..n], p);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
