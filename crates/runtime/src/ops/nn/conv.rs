//! Conv and ConvTranspose (1 to 3 spatial dims, f32). Constant weights are
//! packed at build time; depthwise convs run the direct depthwise kernels,
//! every other conv a GEMM: the implicit GEMM where the CPU has AVX-512
//! (`conv.implicit.gemm`/`.px`, `conv.1x1.direct`), otherwise straight on
//! the input for 1x1 and through im2col packing for the rest. The fused
//! activation runs in the kernels' epilogue.

use whittle_ir::DType;
use whittle_kernels::conv::{
    conv_dynamic, conv_scratch_len, conv_transpose_dynamic, conv_transpose_scratch_len, Conv,
    ConvAlgo, ConvGeom, ConvTranspose,
};
use whittle_kernels::depthwise::{depthwise, is_depthwise, Depthwise, DwVariant};
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::common::shape_util::to3;
use crate::ops::nn::linear::par::{isa, kernel_name, max_tasks, scratch_f32, ParExec};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add("Conv", build_conv);
    r.add("ConvTranspose", build_conv_transpose);
}

/// Attributes shared by Conv and ConvTranspose, validated against the
/// input ranks.
struct Common {
    /// Spatial rank.
    sr: usize,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    group: usize,
    auto_pad: String,
    /// Explicit pads (begins then ends), if given.
    pads: Option<Vec<i64>>,
}

/// An ints attribute of `len` entries, each at least `min`, or `default`.
fn ints(
    ctx: &BuildCtx<'_>,
    name: &str,
    len: usize,
    min: i64,
    default: i64,
) -> Result<Vec<i64>, OpError> {
    match ctx.node.attr_ints(name)? {
        None => Ok(vec![default; len]),
        Some(v) if v.len() != len => Err(ctx.err(format!(
            "attribute '{name}' has {} values; expected {len} (one per spatial dim{})",
            v.len(),
            if name == "pads" {
                ", begins then ends"
            } else {
                ""
            }
        ))),
        Some(v) => match v.iter().find(|&&x| x < min) {
            Some(bad) => Err(ctx.err(format!(
                "attribute '{name}' has value {bad}; must be >= {min}"
            ))),
            None => Ok(v.to_vec()),
        },
    }
}

fn to_usize(v: &[i64]) -> Vec<usize> {
    v.iter().map(|&x| x as usize).collect()
}

impl Common {
    /// The kernel geometry for input shape `x` (`[N, C, spatial..]`) with
    /// `cout` output channels, leading pads `pb` and output size `out`.
    fn geom(&self, x: &[usize], cout: usize, pb: &[usize], out: &[usize]) -> ConvGeom {
        ConvGeom {
            batch: x[0],
            cin: x[1],
            cout,
            groups: self.group,
            input: to3(&x[2..], 1),
            kernel: to3(&self.kernel, 1),
            stride: to3(&self.strides, 1),
            dilation: to3(&self.dilations, 1),
            pad_begin: to3(pb, 0),
            output: to3(out, 1),
        }
    }
}

fn common(ctx: &BuildCtx<'_>, x: &[usize], w: &[usize]) -> Result<Common, OpError> {
    if !(3..=5).contains(&x.len()) {
        return Err(ctx.err(format!(
            "input X has shape {x:?}; expected rank 3 to 5 (N, C, then 1 to 3 spatial dims)"
        )));
    }
    if w.len() != x.len() {
        return Err(ctx.err(format!(
            "weights W have shape {w:?}; expected rank {} like X {x:?}",
            x.len()
        )));
    }
    let sr = x.len() - 2;
    let kernel = w[2..].to_vec();
    if let Some(ks) = ctx.node.attr_ints("kernel_shape")? {
        if ks.len() != sr || ks.iter().zip(&kernel).any(|(&a, &b)| a != b as i64) {
            return Err(ctx.err(format!(
                "kernel_shape {ks:?} does not match the weights' spatial dims {kernel:?}"
            )));
        }
    }
    if kernel.contains(&0) {
        return Err(ctx.err(format!("weights W have an empty kernel dim: {w:?}")));
    }
    let group = ctx.node.attr_int("group", 1)?;
    if group < 1 {
        return Err(ctx.err(format!("group must be >= 1, got {group}")));
    }
    let auto_pad = ctx.node.attr_string("auto_pad", "NOTSET")?;
    if !["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(&auto_pad.as_str()) {
        return Err(ctx.err(format!(
            "auto_pad '{auto_pad}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"
        )));
    }
    let pads = match ctx.node.attr_ints("pads")? {
        None => None,
        Some(_) => Some(ints(ctx, "pads", 2 * sr, 0, 0)?),
    };
    Ok(Common {
        sr,
        kernel,
        strides: to_usize(&ints(ctx, "strides", sr, 1, 1)?),
        dilations: to_usize(&ints(ctx, "dilations", sr, 1, 1)?),
        group: group as usize,
        auto_pad,
        pads,
    })
}

/// Bias input 2, if given: must be `[channels]`.
fn check_bias(ctx: &BuildCtx<'_>, channels: usize) -> Result<bool, OpError> {
    let Some(b) = ctx.opt_input(2) else {
        return Ok(false);
    };
    ctx.expect_dtype(2, &[DType::F32])?;
    if b.fact.shape != [channels] {
        return Err(ctx.err(format!(
            "bias B has shape {:?}; expected [{channels}]",
            b.fact.shape
        )));
    }
    Ok(true)
}

/// The constant f32 data of input `i`, if it is constant.
fn const_f32<'a>(ctx: &BuildCtx<'a>, i: usize) -> Result<Option<&'a [f32]>, OpError> {
    match ctx.opt_input(i).and_then(|f| f.value) {
        None => Ok(None),
        Some(t) => Ok(Some(t.as_f32()?)),
    }
}

/// The geometry of a Conv-like node (Conv, QLinearConv, ConvInteger) from
/// the shapes of X and W and the Conv attributes (kernel_shape, auto_pad,
/// pads, strides, dilations, group), plus the output shape.
pub(crate) fn conv_geom(
    ctx: &BuildCtx<'_>,
    x: &[usize],
    w: &[usize],
) -> Result<(ConvGeom, Vec<usize>), OpError> {
    let c = common(ctx, x, w)?;
    let (n, cin, cout) = (x[0], x[1], w[0]);
    if w[1] * c.group != cin {
        return Err(ctx.err(format!(
            "X has {cin} channels but W {w:?} with group {} expects {}",
            c.group,
            w[1] * c.group
        )));
    }
    if cout % c.group != 0 {
        return Err(ctx.err(format!(
            "W has {cout} output channels, not divisible by group {}",
            c.group
        )));
    }
    let mut pb = vec![0usize; c.sr];
    let mut out = vec![0usize; c.sr];
    for d in 0..c.sr {
        let (inp, k, s, dil) = (x[2 + d], c.kernel[d], c.strides[d], c.dilations[d]);
        let span = (k - 1) * dil + 1;
        let (begin, end) = match c.auto_pad.as_str() {
            "SAME_UPPER" | "SAME_LOWER" => {
                let o = inp.div_ceil(s);
                let total = ((o.max(1) - 1) * s + span).saturating_sub(inp);
                let small = total / 2;
                if c.auto_pad == "SAME_UPPER" {
                    (small, total - small)
                } else {
                    (total - small, small)
                }
            }
            "VALID" => (0, 0),
            _ => c
                .pads
                .as_ref()
                .map_or((0, 0), |p| (p[d] as usize, p[c.sr + d] as usize)),
        };
        pb[d] = begin;
        out[d] = ConvGeom::conv_out_dim(inp, k, s, dil, begin + end).ok_or_else(|| {
            ctx.err(format!(
                "spatial dim {d}: dilated kernel {span} is larger than the padded input {}",
                inp + begin + end
            ))
        })?;
    }
    let geom = c.geom(x, cout, &pb, &out);
    let mut oshape = vec![n, cout];
    oshape.extend(&out);
    Ok((geom, oshape))
}

fn build_conv(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let x = ctx.fact(0)?.shape.clone();
    let w = ctx.fact(1)?.shape.clone();
    let (geom, oshape) = conv_geom(ctx, &x, &w)?;
    let has_bias = check_bias(ctx, geom.cout)?;
    let group = geom.groups;
    let act = ctx.node.activation;
    let weights = const_f32(ctx, 1)?;
    let bias = if has_bias { const_f32(ctx, 2)? } else { None };
    let constant = weights.is_some() && (bias.is_some() || !has_bias);
    if let (true, Some(w)) = (constant, weights) {
        // A pruned 1x1 conv runs sparse when that beats the dense kernel.
        if let Some(built) = crate::ops::nn::sparse_linear::conv1x1(&geom, w, bias, act, &oshape) {
            return Ok(built);
        }
    }
    let dw = is_depthwise(&geom);
    let imp = match (constant, dw) {
        (true, true) => ConvImpl::Dw(Depthwise::new(
            geom.clone(),
            weights.unwrap_or(&[]),
            bias,
            act,
        )),
        (true, false) => ConvImpl::Gemm(Conv::new(geom.clone(), weights.unwrap_or(&[]), bias, act)),
        (false, true) => ConvImpl::DynDw,
        (false, false) => ConvImpl::DynGemm,
    };
    let base = if dw {
        let s = geom.stride[2];
        let v = match (&imp, DwVariant::of(&geom)) {
            (ConvImpl::Dw(k), _) if matches!(k.kernel_name(isa()), "flat" | "s2") => {
                k.kernel_name(isa())
            }
            (_, DwVariant::Generic) => "generic",
            _ => "",
        };
        format!(
            "conv.dw{}x{}s{s}{}{v}",
            geom.kernel[1],
            geom.kernel[2],
            if v.is_empty() { "" } else { "." }
        )
    } else {
        let algo = match &imp {
            ConvImpl::Gemm(k) => k.algo(),
            _ if geom.is_pointwise() => ConvAlgo::Pointwise,
            _ => ConvAlgo::Im2col,
        };
        let algo = match algo {
            ConvAlgo::Pointwise => "conv.1x1.gemm",
            ConvAlgo::Im2col => "conv.im2col.gemm",
            ConvAlgo::Shift if geom.is_pointwise() => "conv.1x1.direct",
            ConvAlgo::Shift => "conv.implicit.gemm",
            ConvAlgo::ShiftPixels if geom.is_pointwise() => "conv.1x1.direct.px",
            ConvAlgo::ShiftPixels => "conv.implicit.px",
        };
        if group > 1 {
            format!("{algo}.g{group}")
        } else {
            algo.to_string()
        }
    };
    let base = if constant {
        base
    } else {
        format!("{base}.dynw")
    };
    let scratch = match &imp {
        ConvImpl::Gemm(k) => k.scratch_len(max_tasks()),
        ConvImpl::DynGemm => conv_scratch_len(&geom, false, max_tasks()),
        ConvImpl::Dw(_) | ConvImpl::DynDw => 0,
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, oshape)],
        kernel: Box::new(ConvKernel {
            name: kernel_name(&base, act),
            geom,
            act,
            imp,
            scratch,
            has_bias,
        }),
    })
}

enum ConvImpl {
    Gemm(Conv),
    Dw(Depthwise),
    DynGemm,
    DynDw,
}

struct ConvKernel {
    name: String,
    geom: ConvGeom,
    act: Activation,
    imp: ConvImpl,
    /// f32 scratch elements.
    scratch: usize,
    has_bias: bool,
}

/// The run-time bias input, when the node has one.
fn run_bias<'a>(inputs: &[View<'a>], has_bias: bool) -> Option<&'a [f32]> {
    has_bias.then(|| inputs.get(2).map(View::f32)).flatten()
}

impl Kernel for ConvKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.geom.macs()
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        match &self.imp {
            ConvImpl::Gemm(k) => k.weight_bytes(),
            ConvImpl::Dw(k) => k.weight_bytes(),
            _ => 0,
        }
    }

    fn absorbed_inputs(&self) -> &[usize] {
        // Pre-packed weights and bias live in the kernel.
        match &self.imp {
            ConvImpl::Gemm(_) | ConvImpl::Dw(_) => &[1, 2],
            ConvImpl::DynGemm | ConvImpl::DynDw => &[],
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].f32();
        let y = outputs[0].f32();
        let exec = ParExec::new(ctx.par);
        let g = &self.geom;
        match &self.imp {
            ConvImpl::Gemm(k) => k.run(isa(), x, y, scratch_f32(ctx.scratch, self.scratch)?, &exec),
            ConvImpl::Dw(k) => k.run(isa(), x, y, &exec),
            ConvImpl::DynGemm => conv_dynamic(
                isa(),
                g,
                inputs[1].f32(),
                run_bias(inputs, self.has_bias),
                self.act,
                x,
                y,
                scratch_f32(ctx.scratch, self.scratch)?,
                &exec,
            ),
            ConvImpl::DynDw => depthwise(
                isa(),
                g,
                inputs[1].f32(),
                run_bias(inputs, self.has_bias),
                self.act,
                x,
                y,
                &exec,
            ),
        }
        Ok(())
    }
}

fn build_conv_transpose(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let x = ctx.fact(0)?.shape.clone();
    let w = ctx.fact(1)?.shape.clone();
    let c = common(ctx, &x, &w)?;
    let (n, cin) = (x[0], x[1]);
    if w[0] != cin {
        return Err(ctx.err(format!(
            "X has {cin} channels but W {w:?} expects {} (W is [C, M/group, kernel...])",
            w[0]
        )));
    }
    if cin % c.group != 0 {
        return Err(ctx.err(format!(
            "X has {cin} channels, not divisible by group {}",
            c.group
        )));
    }
    let cout = w[1] * c.group;
    let has_bias = check_bias(ctx, cout)?;
    let out_pad = to_usize(&ints(ctx, "output_padding", c.sr, 0, 0)?);
    let out_shape = match ctx.node.attr_ints("output_shape")? {
        None => None,
        Some(v) if v.len() == c.sr || v.len() == c.sr + 2 => {
            let v = &v[v.len() - c.sr..];
            if v.iter().any(|&d| d < 1) {
                return Err(ctx.err(format!("output_shape {v:?} has a dim < 1")));
            }
            Some(to_usize(v))
        }
        Some(v) => {
            return Err(ctx.err(format!(
                "output_shape has {} values; expected {}",
                v.len(),
                c.sr
            )))
        }
    };
    let mut pb = vec![0usize; c.sr];
    let mut out = vec![0usize; c.sr];
    for d in 0..c.sr {
        let (inp, k, s, dil) = (x[2 + d], c.kernel[d], c.strides[d], c.dilations[d]);
        // Output size with no padding at all.
        let natural = (s * inp.saturating_sub(1) + out_pad[d] + (k - 1) * dil + 1) as i64;
        let same = c.auto_pad.starts_with("SAME");
        let target = match &out_shape {
            Some(o) => Some(o[d] as i64),
            None if same => Some((inp * s) as i64),
            None => None,
        };
        let (begin, o) = match target {
            Some(o) => {
                let total = natural - o;
                let half = total.div_euclid(2);
                let begin = if c.auto_pad == "SAME_UPPER" {
                    half
                } else {
                    total - half
                };
                (begin, o)
            }
            None => {
                let (b, e) = match (&c.pads, c.auto_pad.as_str()) {
                    (Some(p), "NOTSET") => (p[d], p[c.sr + d]),
                    _ => (0, 0),
                };
                (b, natural - b - e)
            }
        };
        if begin < 0 {
            return Err(ctx.err(format!(
                "spatial dim {d}: the requested output needs negative leading padding ({begin}), which is not supported"
            )));
        }
        if o < 1 {
            return Err(ctx.err(format!(
                "spatial dim {d}: padding leaves an empty output ({o})"
            )));
        }
        pb[d] = begin as usize;
        out[d] = o as usize;
    }
    let geom = c.geom(&x, cout, &pb, &out);
    let act = ctx.node.activation;
    let weights = const_f32(ctx, 1)?;
    let bias = if has_bias { const_f32(ctx, 2)? } else { None };
    let constant = weights.is_some() && (bias.is_some() || !has_bias);
    let packed =
        constant.then(|| ConvTranspose::new(geom.clone(), weights.unwrap_or(&[]), bias, act));
    let scratch = conv_transpose_scratch_len(&geom, constant, max_tasks());
    let base = if constant {
        "convtranspose.gemm.col2im"
    } else {
        "convtranspose.gemm.col2im.dynw"
    };
    let mut oshape = vec![n, cout];
    oshape.extend(&out);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, oshape)],
        kernel: Box::new(ConvTransposeKernel {
            name: kernel_name(base, act),
            geom,
            act,
            packed,
            scratch,
            has_bias,
        }),
    })
}

struct ConvTransposeKernel {
    name: String,
    geom: ConvGeom,
    act: Activation,
    packed: Option<ConvTranspose>,
    scratch: usize,
    has_bias: bool,
}

impl Kernel for ConvTransposeKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        let g = &self.geom;
        (g.batch * g.cin * g.in_spatial() * g.cout_g() * g.kernel_size()) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn weight_bytes(&self) -> usize {
        self.packed.as_ref().map_or(0, ConvTranspose::weight_bytes)
    }

    fn absorbed_inputs(&self) -> &[usize] {
        if self.packed.is_some() {
            &[1, 2]
        } else {
            &[]
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].f32();
        let y = outputs[0].f32();
        let exec = ParExec::new(ctx.par);
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        match &self.packed {
            Some(k) => k.run(isa(), x, y, s, &exec),
            None => conv_transpose_dynamic(
                isa(),
                &self.geom,
                inputs[1].f32(),
                run_bias(inputs, self.has_bias),
                self.act,
                x,
                y,
                s,
                &exec,
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "conv_tests.rs"]
mod tests;
