//! Resize (opsets 10 to 19) and its predecessor Upsample (opsets 7 and 9).
//!
//! Everything that depends on shapes is decided at build time: the output
//! shape, and per resized axis a table of source taps and weights for every
//! output position. Nearest mode gathers through the index tables (any
//! dtype, by element size); linear and cubic run one separable pass per
//! resized axis, ping-ponging through scratch, which matches the N-linear
//! product of weights exactly.

use whittle_ir::{DType, Tensor};

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

/// Registers Resize and Upsample.
pub fn register(r: &mut Registry) {
    r.add("Resize", build_resize);
    r.add("Upsample", build_upsample);
}

/// Output tensors larger than this many elements are rejected: a scale in a
/// model file must not make the planner allocate without bound.
const MAX_OUTPUT_ELEMS: usize = 1 << 32;

/// Highest rank the nearest gather handles (its per-axis state lives on
/// the stack, so run needs no allocation).
const MAX_RANK: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Coord {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Nearest {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
    /// Resize-10 and Upsample: truncate when upsampling, ceil when
    /// downsampling (what onnxruntime does for those opsets).
    Legacy,
}

/// Interpolation settings shared by all axes.
struct Settings {
    mode: Mode,
    coord: Coord,
    nearest: Nearest,
    cubic_a: f64,
    exclude_outside: bool,
    extrapolation: f32,
}

/// Source taps of one axis: output `o` reads `idx[o * taps + k]` with weight
/// `w[o * taps + k]`; `outside[o]` marks outputs that take the
/// extrapolation value (tf_crop_and_resize only).
#[derive(Debug)]
struct AxisTable {
    axis: usize,
    taps: usize,
    idx: Vec<usize>,
    w: Vec<f32>,
    outside: Vec<bool>,
}

fn build_upsample(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let rank = ctx.fact(0)?.rank();
    let scales: Vec<f32> = if ctx.opset < 9 {
        ctx.node
            .attr_floats("scales")?
            .ok_or_else(|| ctx.err("attribute 'scales' is required"))?
            .to_vec()
    } else {
        ctx.const_value(1)?.to_f32_vec()
    };
    if scales.len() != rank {
        return Err(ctx.err(format!(
            "scales has {} values; expected one per input dim ({rank})",
            scales.len()
        )));
    }
    let mode = match ctx.node.attr_string("mode", "nearest")?.as_str() {
        "nearest" => Mode::Nearest,
        "linear" | "bilinear" => Mode::Linear,
        other => return Err(ctx.err(format!("unknown mode '{other}'"))),
    };
    let settings = Settings {
        mode,
        coord: Coord::Asymmetric,
        nearest: Nearest::Legacy,
        cubic_a: -0.75,
        exclude_outside: false,
        extrapolation: 0.0,
    };
    finish(ctx, settings, Target::Scales(scales), None)
}

/// What the node asks for: per-axis scales or output sizes (already spread
/// over all axes, 1.0 / the input size for axes not listed).
enum Target {
    Scales(Vec<f32>),
    /// Sizes, and the scales (out / in, kept in f64 so that coordinates
    /// meant to land on a tie do) the coordinate transforms use.
    Sizes(Vec<usize>, Vec<f64>),
}

fn build_resize(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let shape = ctx.fact(0)?.shape.clone();
    let rank = shape.len();
    let node = ctx.node;
    if node.attr_int("antialias", 0)? != 0 {
        return Err(ctx.err("antialias=1 is not supported"));
    }
    let mode = match node.attr_string("mode", "nearest")?.as_str() {
        "nearest" => Mode::Nearest,
        "linear" => Mode::Linear,
        "cubic" if ctx.opset >= 11 => Mode::Cubic,
        other => return Err(ctx.err(format!("unknown mode '{other}'"))),
    };
    let legacy = ctx.opset < 11;
    let coord = if legacy {
        Coord::Asymmetric
    } else {
        match node
            .attr_string("coordinate_transformation_mode", "half_pixel")?
            .as_str()
        {
            "half_pixel" => Coord::HalfPixel,
            "half_pixel_symmetric" => Coord::HalfPixelSymmetric,
            "pytorch_half_pixel" => Coord::PytorchHalfPixel,
            "align_corners" => Coord::AlignCorners,
            "asymmetric" => Coord::Asymmetric,
            "tf_half_pixel_for_nn" => Coord::TfHalfPixelForNn,
            "tf_crop_and_resize" => Coord::TfCropAndResize,
            other => {
                return Err(ctx.err(format!("unknown coordinate_transformation_mode '{other}'")))
            }
        }
    };
    let nearest = if legacy {
        Nearest::Legacy
    } else {
        match node
            .attr_string("nearest_mode", "round_prefer_floor")?
            .as_str()
        {
            "round_prefer_floor" => Nearest::RoundPreferFloor,
            "round_prefer_ceil" => Nearest::RoundPreferCeil,
            "floor" => Nearest::Floor,
            "ceil" => Nearest::Ceil,
            other => return Err(ctx.err(format!("unknown nearest_mode '{other}'"))),
        }
    };
    let settings = Settings {
        mode,
        coord,
        nearest,
        cubic_a: f64::from(node.attr_float("cubic_coeff_a", -0.75)?),
        exclude_outside: node.attr_int("exclude_outside", 0)? != 0,
        extrapolation: node.attr_float("extrapolation_value", 0.0)?,
    };

    // Axes the scales / sizes / roi refer to (opset 18); all by default.
    let axes: Vec<usize> = match node.attr_ints("axes")? {
        None => (0..rank).collect(),
        Some(a) => {
            let mut out = Vec::with_capacity(a.len());
            for &x in a {
                let r = rank as i64;
                if !(-r..r).contains(&x) {
                    return Err(ctx.err(format!("axis {x} is out of range for rank {rank}")));
                }
                let x = x.rem_euclid(r) as usize;
                if out.contains(&x) {
                    return Err(ctx.err(format!("axis {x} is listed twice in 'axes'")));
                }
                out.push(x);
            }
            out
        }
    };

    // Inputs: opset 10 is (X, scales); later (X, roi, scales, sizes), where
    // an empty tensor stands for an absent input.
    let non_empty = |i: usize| -> Result<Option<&Tensor>, OpError> {
        Ok(ctx.opt_const_value(i)?.filter(|t| t.numel() > 0))
    };
    let (roi, scales, sizes) = if legacy {
        (None, Some(ctx.const_value(1)?), None)
    } else {
        (
            if coord == Coord::TfCropAndResize {
                non_empty(1)?
            } else {
                None
            },
            non_empty(2)?,
            non_empty(3)?,
        )
    };
    let target = match (scales, sizes) {
        (Some(s), None) => {
            let s = s.to_f32_vec();
            if s.len() != axes.len() {
                return Err(ctx.err(format!(
                    "scales has {} values; expected {}",
                    s.len(),
                    axes.len()
                )));
            }
            let mut all = vec![1.0f32; rank];
            for (&a, &v) in axes.iter().zip(&s) {
                all[a] = v;
            }
            Target::Scales(all)
        }
        (None, Some(z)) => {
            let z = z.to_i64_vec()?;
            if z.len() != axes.len() {
                return Err(ctx.err(format!(
                    "sizes has {} values; expected {}",
                    z.len(),
                    axes.len()
                )));
            }
            let mut out = shape.clone();
            for (&a, &v) in axes.iter().zip(&z) {
                out[a] = usize::try_from(v)
                    .map_err(|_| ctx.err(format!("sizes value {v} is negative")))?;
            }
            let policy = node.attr_string("keep_aspect_ratio_policy", "stretch")?;
            sizes_target(ctx, &shape, out, &axes, &policy)?
        }
        (Some(_), Some(_)) => return Err(ctx.err("only one of scales and sizes may be given")),
        (None, None) => return Err(ctx.err("one of scales and sizes is required")),
    };
    let roi = match roi {
        None => None,
        Some(r) => {
            let r = r.to_f64_vec();
            if r.len() != 2 * axes.len() {
                return Err(ctx.err(format!(
                    "roi has {} values; expected {}",
                    r.len(),
                    2 * axes.len()
                )));
            }
            let mut all: Vec<(f64, f64)> = vec![(0.0, 1.0); rank];
            for (k, &a) in axes.iter().enumerate() {
                all[a] = (r[k], r[axes.len() + k]);
            }
            Some(all)
        }
    };
    finish(ctx, settings, target, roi)
}

/// Output sizes and the scales the coordinate transforms use, honouring
/// keep_aspect_ratio_policy (opset 18).
fn sizes_target(
    ctx: &BuildCtx<'_>,
    shape: &[usize],
    mut out: Vec<usize>,
    axes: &[usize],
    policy: &str,
) -> Result<Target, OpError> {
    let ratio = |a: usize| out[a] as f64 / shape[a] as f64;
    let pick = match policy {
        "stretch" => None,
        "not_larger" => Some(axes.iter().map(|&a| ratio(a)).fold(f64::INFINITY, f64::min)),
        "not_smaller" => Some(axes.iter().map(|&a| ratio(a)).fold(0.0, f64::max)),
        other => return Err(ctx.err(format!("unknown keep_aspect_ratio_policy '{other}'"))),
    };
    let scales = match pick {
        None => (0..shape.len()).map(ratio).collect(),
        Some(s) => {
            for &a in axes {
                out[a] = (s * shape[a] as f64 + 0.5).floor() as usize;
            }
            (0..shape.len())
                .map(|a| if axes.contains(&a) { s } else { 1.0 })
                .collect()
        }
    };
    Ok(Target::Sizes(out, scales))
}

/// Computes the output shape and the axis tables, and makes the kernel.
fn finish(
    ctx: &BuildCtx<'_>,
    s: Settings,
    target: Target,
    roi: Option<Vec<(f64, f64)>>,
) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?;
    let shape = fact.shape.clone();
    let dtype = fact.dtype;
    if (s.mode != Mode::Nearest || s.coord == Coord::TfCropAndResize) && dtype != DType::F32 {
        return Err(ctx.err(format!(
            "{} on {dtype} is not supported (f32 only; nearest without tf_crop_and_resize takes any dtype)",
            if s.mode == Mode::Nearest { "tf_crop_and_resize" } else { "interpolation" }
        )));
    }
    if shape.len() > MAX_RANK {
        return Err(ctx.err(format!(
            "rank {} is not supported (at most {MAX_RANK})",
            shape.len()
        )));
    }
    let (out_shape, scales) = match target {
        Target::Sizes(o, sc) => (o, sc),
        Target::Scales(sc) => {
            let mut out = Vec::with_capacity(shape.len());
            for (&n, &k) in shape.iter().zip(&sc) {
                if !(k.is_finite() && k > 0.0) {
                    return Err(ctx.err(format!("scale {k} must be positive and finite")));
                }
                let o = (n as f64 * f64::from(k)).floor();
                if o > MAX_OUTPUT_ELEMS as f64 {
                    return Err(ctx.err(format!("scale {k} makes the output too large")));
                }
                out.push(o as usize);
            }
            (out, sc.iter().map(|&k| f64::from(k)).collect())
        }
    };
    if whittle_ir::checked_numel(&out_shape).is_none_or(|n| n > MAX_OUTPUT_ELEMS) {
        return Err(ctx.err(format!("output shape {out_shape:?} is too large")));
    }
    for (a, (&i, &o)) in shape.iter().zip(&out_shape).enumerate() {
        if i == 0 && o != 0 {
            return Err(ctx.err(format!("cannot resize empty dim {a} to {o}")));
        }
    }
    let mut tables = Vec::new();
    for a in 0..shape.len() {
        let r = roi.as_ref().map(|r| r[a]);
        if let Some(t) = axis_table(&s, a, shape[a], out_shape[a], scales[a], r) {
            tables.push(t);
        }
    }
    // Resample the shrinking axes first so intermediates stay small.
    tables.sort_by(|x, y| {
        let g = |t: &AxisTable| out_shape[t.axis] as f64 / shape[t.axis].max(1) as f64;
        g(x).total_cmp(&g(y))
    });
    let kernel = ResizeKernel::new(s, shape, out_shape.clone(), tables, dtype);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out_shape)],
        kernel: Box::new(kernel),
    })
}

/// Source coordinate of output `x` along an axis; `None` when it lies
/// outside the input (tf_crop_and_resize extrapolates there).
fn source_coord(
    s: &Settings,
    x: usize,
    n_in: usize,
    n_out: usize,
    scale: f64,
    roi: Option<(f64, f64)>,
) -> Option<f64> {
    let x = x as f64;
    let (fin, fout) = (n_in as f64, n_out as f64);
    Some(match s.coord {
        Coord::HalfPixel => (x + 0.5) / scale - 0.5,
        Coord::HalfPixelSymmetric => {
            let adjustment = fout / (scale * fin);
            let offset = fin / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        Coord::PytorchHalfPixel => {
            if n_out > 1 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        Coord::AlignCorners => {
            if n_out > 1 {
                x * (fin - 1.0) / (fout - 1.0)
            } else {
                0.0
            }
        }
        Coord::Asymmetric => x / scale,
        Coord::TfHalfPixelForNn => (x + 0.5) / scale,
        Coord::TfCropAndResize => {
            let (start, end) = roi.unwrap_or((0.0, 1.0));
            let c = if n_out > 1 {
                start * (fin - 1.0) + x * (end - start) * (fin - 1.0) / (fout - 1.0)
            } else {
                0.5 * (start + end) * (fin - 1.0)
            };
            if c < 0.0 || c > fin - 1.0 {
                return None;
            }
            c
        }
    })
}

/// The taps of one axis, or `None` when the axis maps every output to the
/// same input position with weight 1 (identity).
fn axis_table(
    s: &Settings,
    axis: usize,
    n_in: usize,
    n_out: usize,
    scale: f64,
    roi: Option<(f64, f64)>,
) -> Option<AxisTable> {
    let taps = match s.mode {
        Mode::Nearest => 1,
        Mode::Linear => 2,
        Mode::Cubic => 4,
    };
    let mut t = AxisTable {
        axis,
        taps,
        idx: vec![0; n_out * taps],
        w: vec![0.0; n_out * taps],
        outside: vec![false; n_out],
    };
    let last = n_in.saturating_sub(1) as i64;
    let mut coeffs = [0.0f64; 4];
    for o in 0..n_out {
        let Some(x) = source_coord(s, o, n_in, n_out, scale, roi) else {
            t.outside[o] = true;
            continue;
        };
        let (first, k) = match s.mode {
            Mode::Nearest => {
                let i = match s.nearest {
                    Nearest::RoundPreferFloor => (x - 0.5).ceil(),
                    Nearest::RoundPreferCeil => (x + 0.5).floor(),
                    Nearest::Floor => x.floor(),
                    Nearest::Ceil => x.ceil(),
                    Nearest::Legacy if scale < 1.0 => x.ceil(),
                    Nearest::Legacy => x.floor(),
                };
                coeffs[0] = 1.0;
                (i as i64, 1)
            }
            Mode::Linear => {
                let f = x.floor();
                let r = x - f;
                coeffs[..2].copy_from_slice(&[1.0 - r, r]);
                (f as i64, 2)
            }
            Mode::Cubic => {
                let f = x.floor();
                coeffs = cubic_coeffs(x - f, s.cubic_a);
                (f as i64 - 1, 4)
            }
        };
        let row = o * taps;
        let mut sum = 0.0;
        for (j, &c) in coeffs.iter().enumerate().take(k) {
            let i = first + j as i64;
            let inside = (0..=last).contains(&i);
            let w = if s.exclude_outside && !inside { 0.0 } else { c };
            t.idx[row + j] = i.clamp(0, last) as usize;
            t.w[row + j] = w as f32;
            sum += w;
        }
        if s.exclude_outside && sum != 0.0 {
            for w in &mut t.w[row..row + k] {
                *w = (f64::from(*w) / sum) as f32;
            }
        }
    }
    // An axis whose every row is a single weight-1 tap on its own index is
    // the identity; one whose rows each have one weight-1 tap is a gather.
    let single = |o: usize| {
        let row = &t.w[o * taps..][..taps];
        row.iter().filter(|&&w| w != 0.0).count() == 1 && row.iter().sum::<f32>() == 1.0
    };
    if !t.outside.iter().any(|&b| b) && (0..n_out).all(single) {
        let idx: Vec<usize> = (0..n_out)
            .map(|o| {
                let k = t.w[o * taps..][..taps]
                    .iter()
                    .position(|&w| w != 0.0)
                    .unwrap_or(0);
                t.idx[o * taps + k]
            })
            .collect();
        if n_in == n_out && idx.iter().enumerate().all(|(o, &i)| o == i) {
            return None;
        }
        t.w = vec![1.0; n_out];
        t.idx = idx;
        t.taps = 1;
    }
    Some(t)
}

/// Keys' cubic convolution weights for taps at offsets -1, 0, 1, 2 from
/// the floor of the source coordinate, `t` being the fractional part.
fn cubic_coeffs(t: f64, a: f64) -> [f64; 4] {
    let far = |d: f64| ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a; // 1 <= d < 2
    let near = |d: f64| ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0; // 0 <= d <= 1
    [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]
}

/// The prepared resize.
struct ResizeKernel {
    s: Settings,
    in_shape: Vec<usize>,
    out_shape: Vec<usize>,
    tables: Vec<AxisTable>,
    dtype: DType,
    /// Shape before each separable pass (passes run in `tables` order).
    pass_shapes: Vec<Vec<usize>>,
    /// Elements of each ping-pong scratch buffer.
    buf_len: usize,
}

impl ResizeKernel {
    fn new(
        s: Settings,
        in_shape: Vec<usize>,
        out_shape: Vec<usize>,
        tables: Vec<AxisTable>,
        dtype: DType,
    ) -> ResizeKernel {
        let mut pass_shapes = Vec::new();
        let mut cur = in_shape.clone();
        let mut buf_len = 0;
        for (i, t) in tables.iter().enumerate() {
            pass_shapes.push(cur.clone());
            cur[t.axis] = out_shape[t.axis];
            if i + 1 < tables.len() {
                buf_len = buf_len.max(cur.iter().product());
            }
        }
        ResizeKernel {
            s,
            in_shape,
            out_shape,
            tables,
            dtype,
            pass_shapes,
            buf_len,
        }
    }

    fn separable(&self) -> bool {
        self.s.mode != Mode::Nearest
    }

    /// Number of scratch buffers the separable passes ping-pong through.
    fn buffers(&self) -> usize {
        if !self.separable() {
            0
        } else {
            self.tables.len().saturating_sub(1).min(2)
        }
    }

    /// Nearest: one gather through per-axis index tables.
    fn gather<T: Copy>(&self, x: &[T], y: &mut [T], fill: Option<T>) {
        let rank = self.out_shape.len();
        let mut idx: [&[usize]; 8] = [&[]; MAX_RANK];
        let mut outside: [&[bool]; 8] = [&[]; MAX_RANK];
        for t in &self.tables {
            idx[t.axis] = &t.idx;
            outside[t.axis] = &t.outside;
        }
        // Input strides per axis.
        let mut stride = [0usize; MAX_RANK];
        let mut acc = 1;
        for a in (0..rank).rev() {
            stride[a] = acc;
            acc *= self.in_shape[a];
        }
        let mut coord = [0usize; MAX_RANK];
        let inner = self.out_shape[rank - 1];
        if inner == 0 {
            return;
        }
        for row in y.chunks_exact_mut(inner) {
            let mut base = 0;
            let mut out_row = false;
            for a in 0..rank - 1 {
                let c = coord[a];
                base += stride[a] * if idx[a].is_empty() { c } else { idx[a][c] };
                out_row |= !outside[a].is_empty() && outside[a][c];
            }
            let last = rank - 1;
            for (o, v) in row.iter_mut().enumerate() {
                let i = if idx[last].is_empty() {
                    o
                } else {
                    idx[last][o]
                };
                let out = out_row || (!outside[last].is_empty() && outside[last][o]);
                *v = match (out, fill) {
                    (true, Some(f)) => f,
                    _ => x[base + i],
                };
            }
            // Advance the odometer over the leading axes.
            for a in (0..rank - 1).rev() {
                coord[a] += 1;
                if coord[a] < self.out_shape[a] {
                    break;
                }
                coord[a] = 0;
            }
        }
    }

    /// One separable pass of `t` from `src` (shape `shape`) into `dst`.
    fn pass(
        &self,
        t: &AxisTable,
        shape: &[usize],
        src: &[f32],
        dst: &mut [f32],
        par: &crate::Parallel,
    ) {
        let outer: usize = shape[..t.axis].iter().product();
        let n_in = shape[t.axis];
        let inner: usize = shape[t.axis + 1..].iter().product();
        let n_out = t.outside.len();
        let plane = n_out * inner;
        if outer == 0 || plane == 0 {
            return;
        }
        let ext = self.s.extrapolation;
        par.for_each_chunk_mut(&mut dst[..outer * plane], plane, &|p, out| {
            let src = &src[p * n_in * inner..][..n_in * inner];
            for (o, row) in out.chunks_exact_mut(inner).enumerate() {
                if t.outside[o] {
                    row.fill(ext);
                    continue;
                }
                let taps = &t.idx[o * t.taps..][..t.taps];
                let ws = &t.w[o * t.taps..][..t.taps];
                if inner == 1 {
                    row[0] = taps.iter().zip(ws).map(|(&i, &w)| w * src[i]).sum();
                    continue;
                }
                let first = &src[taps[0] * inner..][..inner];
                row.iter_mut().zip(first).for_each(|(r, &v)| *r = ws[0] * v);
                for (&i, &w) in taps.iter().zip(ws).skip(1) {
                    let s = &src[i * inner..][..inner];
                    row.iter_mut().zip(s).for_each(|(r, &v)| *r += w * v);
                }
            }
        });
    }
}

impl Kernel for ResizeKernel {
    fn name(&self) -> String {
        let m = match self.s.mode {
            Mode::Nearest => "nearest",
            Mode::Linear => "linear",
            Mode::Cubic => "cubic",
        };
        format!("resize.{m}")
    }

    fn macs(&self) -> u64 {
        if !self.separable() {
            return 0;
        }
        self.tables
            .iter()
            .zip(&self.pass_shapes)
            .map(|(t, s)| {
                let n: usize = s.iter().product::<usize>() / s[t.axis].max(1);
                (n * t.outside.len() * t.taps) as u64
            })
            .sum()
    }

    fn scratch_bytes(&self) -> usize {
        self.buffers() * self.buf_len * 4
    }

    fn weight_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(|t| t.idx.len() * std::mem::size_of::<usize>() + t.w.len() * 4)
            .sum()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = &inputs[0];
        let y = &mut outputs[0];
        if !self.separable() {
            // A rank-0 tensor is a single element: copy it.
            if self.out_shape.is_empty() {
                y.bytes().copy_from_slice(x.bytes());
                return Ok(());
            }
            let fill = Some(self.s.extrapolation);
            match self.dtype.size() {
                1 => self.gather(x.u8(), y.u8(), None),
                2 => self.gather::<u16>(
                    bytemuck::cast_slice(x.bytes()),
                    bytemuck::cast_slice_mut(y.bytes()),
                    None,
                ),
                4 if self.dtype == DType::F32 => self.gather(x.f32(), y.f32(), fill),
                4 => self.gather(x.i32(), y.i32(), None),
                _ => self.gather(x.i64(), y.i64(), None),
            }
            return Ok(());
        }
        let (x, y) = (x.f32(), y.f32());
        if self.tables.is_empty() {
            y.copy_from_slice(x);
            return Ok(());
        }
        let scratch: &mut [f32] =
            bytemuck::cast_slice_mut(&mut ctx.scratch[..self.scratch_bytes()]);
        let (mut a, mut b) = scratch.split_at_mut(self.buf_len.min(scratch.len()));
        let last = self.tables.len() - 1;
        for (i, (t, shape)) in self.tables.iter().zip(&self.pass_shapes).enumerate() {
            match (i == 0, i == last) {
                (true, true) => self.pass(t, shape, x, y, ctx.par),
                (true, false) => self.pass(t, shape, x, a, ctx.par),
                (false, true) => self.pass(t, shape, a, y, ctx.par),
                (false, false) => {
                    self.pass(t, shape, a, b, ctx.par);
                    std::mem::swap(&mut a, &mut b);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "resize_tests.rs"]
mod tests;
