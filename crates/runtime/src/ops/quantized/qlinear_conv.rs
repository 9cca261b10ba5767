//! QLinearConv and ConvInteger (opset 10): int8/uint8 convolution with
//! int32 accumulation. Weights, scales, zero points and bias must be
//! compile-time constants: they are packed at build time and the plan does
//! not keep them. Depthwise convs run the direct int8 depthwise kernel,
//! every other conv the int8 GEMM (straight on the input for 1x1, through
//! im2col packing otherwise). QLinearConv requantizes with the fixed-point
//! multiplier `x_scale * w_scale[c] / y_scale` (TFLite rounding) and folds
//! a fused Relu/Clip (`Node::activation`) into the output clamp.

use std::sync::OnceLock;

use whittle_ir::{DType, Tensor, TensorData};
use whittle_kernels::conv::ConvGeom;
use whittle_kernels::depthwise::is_depthwise;
use whittle_kernels::qconv::conv::{QConv, QConvOutput};
use whittle_kernels::qconv::depthwise::QDepthwise;
use whittle_kernels::qconv::{QInput, QIsa};
use whittle_kernels::requant::{QClamp, Requant};
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::nn::conv::conv_geom;
use crate::ops::nn::linear::par::{max_tasks, ParExec};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add("QLinearConv", build_qlinear_conv);
    r.add("ConvInteger", build_conv_integer);
}

/// The int8 instruction set, detected once.
fn qisa() -> QIsa {
    static ISA: OnceLock<QIsa> = OnceLock::new();
    *ISA.get_or_init(QIsa::detect)
}

/// Range of an 8-bit dtype.
fn range(dt: DType) -> (i32, i32) {
    if dt == DType::I8 {
        (-128, 127)
    } else {
        (0, 255)
    }
}

/// Integer values of a u8/i8/i32 tensor.
fn int_values(t: &Tensor) -> Vec<i32> {
    match t.data() {
        TensorData::U8(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as i32).collect(),
        TensorData::I32(v) => v.clone(),
        _ => Vec::new(),
    }
}

/// A constant f32 scale: scalar, or `[channels]` when `per_channel`.
fn scales(
    ctx: &BuildCtx<'_>,
    i: usize,
    what: &str,
    per_channel: Option<usize>,
) -> Result<Vec<f32>, OpError> {
    ctx.expect_dtype(i, &[DType::F32])?;
    let t = ctx.const_value(i)?;
    let n = t.numel();
    let ok =
        (n == 1 && t.shape().len() <= 1) || per_channel.is_some_and(|c| t.shape() == [c] && c > 0);
    if !ok {
        return Err(ctx.err(format!(
            "{what} (input {i}) has shape {:?}; expected a scalar{}",
            t.shape(),
            per_channel.map_or(String::new(), |c| format!(" or [{c}]"))
        )));
    }
    let v = t.as_f32()?.to_vec();
    if let Some(bad) = v.iter().find(|s| !(s.is_finite() && **s >= 0.0)) {
        return Err(ctx.err(format!(
            "{what} (input {i}) holds {bad}; scales must be finite and non-negative"
        )));
    }
    Ok(v)
}

/// An optional zero point of `dtype`: scalar, or `[channels]` when
/// `per_channel`; absent means 0.
fn zero_points(
    ctx: &BuildCtx<'_>,
    i: usize,
    what: &str,
    dtype: DType,
    per_channel: Option<usize>,
) -> Result<Vec<i32>, OpError> {
    let Some(t) = ctx.opt_const_value(i)? else {
        return Ok(vec![0]);
    };
    if t.dtype() != dtype {
        return Err(ctx.err(format!(
            "{what} (input {i}) has dtype {}; it must match its tensor's dtype {dtype}",
            t.dtype()
        )));
    }
    let n = t.numel();
    let ok =
        (n == 1 && t.shape().len() <= 1) || per_channel.is_some_and(|c| t.shape() == [c] && c > 0);
    if !ok {
        return Err(ctx.err(format!(
            "{what} (input {i}) has shape {:?}; expected a scalar{}",
            t.shape(),
            per_channel.map_or(String::new(), |c| format!(" or [{c}]"))
        )));
    }
    Ok(int_values(t))
}

/// What both ops share: geometry, input description, weights.
struct Parsed {
    geom: ConvGeom,
    oshape: Vec<usize>,
    input: QInput,
    w_dtype: DType,
}

fn parse_common(ctx: &BuildCtx<'_>, xi: usize, wi: usize) -> Result<Parsed, OpError> {
    let x_dtype = ctx.expect_dtype(xi, &[DType::U8, DType::I8])?;
    let w_dtype = ctx.expect_dtype(wi, &[DType::U8, DType::I8])?;
    let x = ctx.fact(xi)?.shape.clone();
    let w = ctx.fact(wi)?.shape.clone();
    let (geom, oshape) = conv_geom(ctx, &x, &w)?;
    Ok(Parsed {
        geom,
        oshape,
        input: QInput {
            signed: x_dtype == DType::I8,
            zero_point: 0,
        },
        w_dtype,
    })
}

/// Builds the kernel: depthwise when it can, the GEMM conv otherwise.
#[allow(clippy::too_many_arguments)]
fn make_kernel(
    ctx: &BuildCtx<'_>,
    p: Parsed,
    w: &Tensor,
    w_zps: &[i32],
    bias: Option<&[i32]>,
    output: QConvOutput,
    act: Activation,
    absorbed: &'static [usize],
) -> Result<Box<dyn Kernel>, OpError> {
    let g = p.geom;
    let raw = int_values(w);
    let kernel_err = |e: whittle_kernels::qgemm::QGemmError| ctx.err(format!("weights: {e}"));
    let act_name = match act {
        Activation::None => String::new(),
        a => format!("+{}", a.name()),
    };
    let isa = qisa();
    if let (true, QConvOutput::Requant { requant, clamp, .. }) = (is_depthwise(&g), &output) {
        let ks = g.kernel_size();
        let centered: Vec<i16> = raw
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - w_zps[if w_zps.len() == 1 { 0 } else { i / ks }]) as i16)
            .collect();
        let requant: Vec<Requant> = if requant.len() == 1 {
            vec![requant[0]; g.cout]
        } else {
            requant.clone()
        };
        let k = QDepthwise::new(g.clone(), p.input, &centered, bias, &requant, *clamp);
        // The VBMI kernel names its own instruction set; the stride goes
        // after the shape either way: `qconv.depthwise3x3s1.vbmi`.
        let name = match k.kernel_name(isa) {
            "depthwise.direct" => format!("qconv.depthwise.direct.{}{act_name}", isa.name()),
            kn => {
                let (base, isa_name) = match kn.split_once('.') {
                    Some((base, variant)) => (base, variant),
                    None => (kn, isa.name()),
                };
                format!("qconv.{base}s{}.{isa_name}{act_name}", g.stride[2])
            }
        };
        return Ok(Box::new(QConvKernel {
            name,
            imp: Imp::Dw(Box::new(k)),
            scratch: 0,
            absorbed,
        })
        .with_scratch());
    }
    let k = if p.w_dtype == DType::I8 {
        let w: Vec<i8> = raw.iter().map(|&v| v as i8).collect();
        QConv::new(g.clone(), p.input, &w, w_zps, bias, output)
    } else {
        let w: Vec<u8> = raw.iter().map(|&v| v as u8).collect();
        QConv::new(g.clone(), p.input, &w, w_zps, bias, output)
    }
    .map_err(kernel_err)?;
    let algo = if k.is_pointwise() { "1x1" } else { "im2col" };
    let groups = if g.groups > 1 {
        format!(".g{}", g.groups)
    } else {
        String::new()
    };
    let name = format!("qconv.{algo}.qgemm{groups}.{}{act_name}", isa.name());
    Ok(Box::new(QConvKernel {
        name,
        imp: Imp::Gemm(Box::new(k)),
        scratch: 0,
        absorbed,
    })
    .with_scratch())
}

fn build_qlinear_conv(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let mut p = parse_common(ctx, 0, 3)?;
    let cout = p.geom.cout;
    let x_dtype = ctx.fact(0)?.dtype;
    let x_scale = scales(ctx, 1, "x_scale", None)?[0];
    let x_zp = zero_points(ctx, 2, "x_zero_point", x_dtype, None)?[0];
    let w = ctx.const_value(3)?;
    let w_scale = scales(ctx, 4, "w_scale", Some(cout))?;
    let w_zps = zero_points(ctx, 5, "w_zero_point", p.w_dtype, Some(cout))?;
    let y_scale = scales(ctx, 6, "y_scale", None)?[0];
    let y_dtype = match ctx.opt_input(7) {
        Some(f) => match f.fact.dtype {
            d @ (DType::U8 | DType::I8) => d,
            d => {
                return Err(ctx.err(format!(
                    "y_zero_point (input 7) has dtype {d}; supported: u8, i8"
                )))
            }
        },
        None => x_dtype,
    };
    let y_zp = zero_points(ctx, 7, "y_zero_point", y_dtype, None)?[0];
    let bias = match ctx.opt_input(8) {
        None => None,
        Some(b) => {
            ctx.expect_dtype(8, &[DType::I32])?;
            if b.fact.shape != [cout] {
                return Err(ctx.err(format!(
                    "bias B has shape {:?}; expected [{cout}]",
                    b.fact.shape
                )));
            }
            Some(int_values(ctx.const_value(8)?))
        }
    };
    if y_scale <= 0.0 {
        return Err(ctx.err(format!("y_scale is {y_scale}; it must be positive")));
    }
    let act = ctx.node.activation;
    if !matches!(
        act,
        Activation::None | Activation::Relu | Activation::Clip { .. }
    ) {
        return Err(ctx.err(format!(
            "fused activation '{}' is not supported on QLinearConv (only Relu and Clip fold into the requantization)",
            act.name()
        )));
    }
    let (qmin, qmax) = range(y_dtype);
    let clamp = QClamp::new(act, y_scale, y_zp, qmin, qmax)
        .ok_or_else(|| ctx.err(format!("fused {} bounds are not valid", act.name())))?;
    let requant = w_scale
        .iter()
        .map(|&ws| {
            let real = x_scale as f64 * ws as f64 / y_scale as f64;
            if real == 0.0 {
                return Ok(Requant {
                    multiplier: 0,
                    shift: 0,
                });
            }
            Requant::from_real(real).ok_or_else(|| {
                ctx.err(format!(
                    "requantization multiplier x_scale * w_scale / y_scale = {real} is out of range"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    p.input.zero_point = x_zp;
    let oshape = p.oshape.clone();
    let kernel = make_kernel(
        ctx,
        p,
        w,
        &w_zps,
        bias.as_deref(),
        QConvOutput::Requant {
            requant,
            clamp,
            signed: y_dtype == DType::I8,
        },
        act,
        &[1, 2, 3, 4, 5, 6, 7, 8],
    )?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(y_dtype, oshape)],
        kernel,
    })
}

fn build_conv_integer(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let mut p = parse_common(ctx, 0, 1)?;
    let cout = p.geom.cout;
    let x_dtype = ctx.fact(0)?.dtype;
    if ctx.node.activation != Activation::None {
        return Err(ctx.err("ConvInteger cannot carry a fused activation"));
    }
    let w = ctx.const_value(1)?;
    p.input.zero_point = zero_points(ctx, 2, "x_zero_point", x_dtype, None)?[0];
    let w_zps = zero_points(ctx, 3, "w_zero_point", p.w_dtype, Some(cout))?;
    let oshape = p.oshape.clone();
    let kernel = make_kernel(
        ctx,
        p,
        w,
        &w_zps,
        None,
        QConvOutput::I32,
        Activation::None,
        &[1, 2, 3],
    )?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::I32, oshape)],
        kernel,
    })
}

/// Boxed: the two kernels differ several hundred bytes in size, and a plan
/// holds one per node.
enum Imp {
    Dw(Box<QDepthwise>),
    Gemm(Box<QConv>),
}

struct QConvKernel {
    name: String,
    imp: Imp,
    /// Scratch bytes.
    scratch: usize,
    absorbed: &'static [usize],
}

impl QConvKernel {
    /// Sizes scratch for the most tasks a run may use.
    fn with_scratch(mut self: Box<Self>) -> Box<Self> {
        self.scratch = match &self.imp {
            Imp::Dw(k) => k.scratch_len(max_tasks()) * 4,
            Imp::Gemm(k) => k.scratch_len(max_tasks()),
        };
        self
    }

    fn geom(&self) -> &ConvGeom {
        match &self.imp {
            Imp::Dw(k) => k.geom(),
            Imp::Gemm(k) => k.geom(),
        }
    }
}

impl Kernel for QConvKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.geom().macs()
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch
    }

    fn weight_bytes(&self) -> usize {
        match &self.imp {
            Imp::Dw(k) => k.weight_bytes(),
            Imp::Gemm(k) => k.weight_bytes(),
        }
    }

    fn absorbed_inputs(&self) -> &[usize] {
        self.absorbed
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].u8();
        let exec = ParExec::new(ctx.par);
        let scratch = ctx
            .scratch
            .get_mut(..self.scratch)
            .ok_or(RunError::Unsupported(
                "scratch buffer smaller than requested",
            ))?;
        match &self.imp {
            Imp::Dw(k) => {
                let s: &mut [i32] = bytemuck::try_cast_slice_mut(scratch)
                    .map_err(|_| RunError::Unsupported("scratch buffer is not 4-byte aligned"))?;
                k.run(qisa(), x, outputs[0].u8(), s, &exec);
            }
            Imp::Gemm(k) => {
                if outputs[0].dtype() == DType::I32 {
                    k.run_i32(qisa(), x, outputs[0].i32(), scratch, &exec);
                } else {
                    k.run(qisa(), x, outputs[0].u8(), scratch, &exec);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "qlinear_conv_tests.rs"]
mod tests;
#[cfg(test)]
#[path = "qlinear_conv_cases.rs"]
#[rustfmt::skip]
mod cases;
