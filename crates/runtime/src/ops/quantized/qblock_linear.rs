//! `whittle::QBlockLinear`: int4 block-quantized weights x 8-bit
//! activations (MatMul or 1x1 Conv), the integer form of
//! `DQ(x) -> MatMul/Conv(DQ_blocked(w_int4)) [+ bias] [-> Relu/Clip] -> Q`.
//!
//! Inputs: `x` (u8/i8), `x_scale`, `x_zero_point`, `w` (I8 in [-8, 7]),
//! `w_scale` (one per block and channel), `y_scale`, `y_zero_point` (x's
//! dtype), optional f32 `bias [N]`. Attributes: `block_size` (>= 16; the
//! last block may be short), `layout` = `matmul` (x `[..., M, K]`, w `[K,
//! N]`, w_scale `[ceil(K/bs), N]`) or `conv1x1` (x `[B, K, H, W]`, w `[N,
//! K, 1, 1]`, w_scale `[N, ceil(K/bs), 1, 1]`), and the fused activation
//! (Relu or Clip only). Per-block int32 sums, then a float epilogue that is
//! bit-identical on every ISA and thread count (see `whittle_kernels::qblock`).

use whittle_ir::DType;
use whittle_kernels::qblock::{qblock, qblock_scratch_len, QBlockInput, QBlockOut, QBlockWeights};
use whittle_kernels::qgemm::{QElem, QLayout};
use whittle_kernels::requant::QClamp;
use whittle_kernels::Activation;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::nn::linear::par::{max_tasks, ParExec};
use crate::ops::quantized::qlinear_matmul::qisa;
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain("whittle", "QBlockLinear", build);
}

/// A positive finite scalar scale.
fn scale(ctx: &BuildCtx<'_>, idx: usize, what: &str) -> Result<f32, OpError> {
    let t = ctx.const_value(idx)?;
    if !matches!(t.dtype(), DType::F32 | DType::F16 | DType::BF16) || t.numel() != 1 {
        return Err(ctx.err(format!(
            "{what} must be one float, got {} {:?}",
            t.dtype(),
            t.shape()
        )));
    }
    let v = t.to_f32_vec()[0];
    if !(v.is_finite() && v > 0.0) {
        return Err(ctx.err(format!("{what} must be positive and finite, got {v}")));
    }
    Ok(v)
}

/// A scalar zero point of dtype `dt` (0 when omitted).
fn zero_point(ctx: &BuildCtx<'_>, idx: usize, dt: DType, what: &str) -> Result<i32, OpError> {
    let Some(t) = ctx.opt_const_value(idx)? else {
        return Ok(0);
    };
    if t.dtype() != dt || t.numel() != 1 {
        return Err(ctx.err(format!(
            "{what} must be one {dt} value, got {} {:?}",
            t.dtype(),
            t.shape()
        )));
    }
    Ok(t.to_i64_vec()?[0] as i32)
}

fn build(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let x_dt = ctx.expect_dtype(0, &[DType::U8, DType::I8])?;
    let xs = ctx.fact(0)?.shape.clone();
    let node = ctx.node;
    let bs = node
        .attr_int_opt("block_size")?
        .ok_or_else(|| ctx.err("attribute block_size is required"))?;
    if bs < 16 {
        return Err(ctx.err(format!("block_size must be >= 16, got {bs}")));
    }
    let bs = bs as usize;
    let layout = node.attr_string("layout", "matmul")?;
    let x_scale = scale(ctx, 1, "x_scale")?;
    let x_zp = zero_point(ctx, 2, x_dt, "x_zero_point")?;
    let w = ctx.const_value(3)?;
    if w.dtype() != DType::I8 {
        return Err(ctx.err(format!(
            "w must be I8 holding int4 values, got {}",
            w.dtype()
        )));
    }
    let ws = ctx.const_value(4)?;
    if ws.dtype() != DType::F32 {
        return Err(ctx.err(format!("w_scale must be F32, got {}", ws.dtype())));
    }
    let y_scale = scale(ctx, 5, "y_scale")?;
    let y_zp = zero_point(ctx, 6, x_dt, "y_zero_point")?;
    let bias = ctx.opt_const_value(7)?;
    let (wsh, ssh) = (w.shape(), ws.shape());
    let (k, n, positions, out_shape, conv) = match layout.as_str() {
        "matmul" => {
            if xs.is_empty() || wsh.len() != 2 || xs[xs.len() - 1] != wsh[0] {
                return Err(ctx.err(format!(
                    "matmul layout needs x [..., M, K] and w [K, N]; got x {xs:?}, w {wsh:?}"
                )));
            }
            let (k, n) = (wsh[0], wsh[1]);
            let mut out = xs[..xs.len() - 1].to_vec();
            out.push(n);
            let positions = xs[..xs.len() - 1].iter().product();
            if ssh != [k.div_ceil(bs), n] {
                return Err(ctx.err(format!(
                    "w_scale has shape {ssh:?}, expected [{}, {n}] (ceil(K / block_size), N)",
                    k.div_ceil(bs)
                )));
            }
            (k, n, positions, out, false)
        }
        "conv1x1" => {
            if xs.len() != 4 || wsh.len() != 4 || wsh[2..] != [1, 1] || wsh[1] != xs[1] {
                return Err(ctx.err(format!(
                    "conv1x1 layout needs x [B, K, H, W] and w [N, K, 1, 1]; got x {xs:?}, w {wsh:?}"
                )));
            }
            let (k, n) = (wsh[1], wsh[0]);
            if ssh != [n, k.div_ceil(bs), 1, 1] {
                return Err(ctx.err(format!(
                    "w_scale has shape {ssh:?}, expected [{n}, {}, 1, 1]",
                    k.div_ceil(bs)
                )));
            }
            (k, n, xs[2] * xs[3], vec![xs[0], n, xs[2], xs[3]], true)
        }
        other => {
            return Err(ctx.err(format!(
                "layout must be \"matmul\" or \"conv1x1\", got \"{other}\""
            )))
        }
    };
    let bias = match bias {
        None => None,
        Some(b) if b.dtype() == DType::F32 && b.shape() == [n] => {
            let v = b.to_f32_vec();
            if let Some(bad) = v.iter().find(|v| !v.is_finite()) {
                return Err(ctx.err(format!("bias must be finite, got {bad}")));
            }
            Some(v)
        }
        Some(b) => {
            return Err(ctx.err(format!(
                "bias must be F32 [{n}], got {} {:?}",
                b.dtype(),
                b.shape()
            )))
        }
    };
    let wv: &[i8] = bytemuck::cast_slice(w.as_bytes());
    let sv = ws.to_f32_vec();
    let packed = if conv {
        QBlockWeights::new(wv, n, k, k, 1, bs, &sv, k.div_ceil(bs), 1)
    } else {
        QBlockWeights::new(wv, n, k, 1, n, bs, &sv, 1, n)
    }
    .map_err(|e| ctx.err(format!("w / w_scale: {e}")))?;
    let act = ctx.node.activation;
    let (lo, hi) = if x_dt == DType::U8 {
        (0, 255)
    } else {
        (-128, 127)
    };
    let clamp = QClamp::new(act, y_scale, y_zp, lo, hi).ok_or_else(|| {
        ctx.err(format!(
            "fused activation {} is not supported (only Relu and Clip)",
            act.name()
        ))
    })?;
    let mut name = format!("qblock_linear.int4.{}", qisa().name());
    if act != Activation::None {
        name.push('+');
        name.push_str(act.name());
    }
    let batches = if conv { xs[0] } else { 1 };
    let mut absorbed = vec![3, 4];
    if bias.is_some() {
        absorbed.push(7);
    }
    Ok(Built::Kernel {
        outputs: vec![Fact::new(x_dt, out_shape)],
        kernel: Box::new(QBlockLinearKernel {
            name,
            scratch: qblock_scratch_len(&packed, positions, max_tasks()),
            w: packed,
            k,
            n,
            positions,
            batches,
            conv,
            x_scale,
            x_zp,
            y_scale,
            clamp,
            bias,
            absorbed,
        }),
    })
}

struct QBlockLinearKernel {
    name: String,
    w: QBlockWeights,
    k: usize,
    n: usize,
    /// Positions per batch (conv) or in all (matmul).
    positions: usize,
    batches: usize,
    conv: bool,
    x_scale: f32,
    x_zp: i32,
    y_scale: f32,
    clamp: QClamp,
    bias: Option<Vec<f32>>,
    absorbed: Vec<usize>,
    scratch: usize,
}

impl Kernel for QBlockLinearKernel {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        (self.batches * self.positions * self.n * self.k) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch
    }

    fn weight_bytes(&self) -> usize {
        self.w.int4_bytes() + 4 * self.bias.as_ref().map_or(0, Vec::len)
    }

    fn absorbed_inputs(&self) -> &[usize] {
        &self.absorbed
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x = inputs[0].bytes();
        let y = &mut outputs[0];
        match y.dtype() {
            DType::U8 => self.go::<u8>(x, y.u8(), ctx),
            _ => self.go::<i8>(bytemuck::cast_slice(x), y.i8(), ctx),
        }
    }
}

impl QBlockLinearKernel {
    fn go<T: QElem + bytemuck::Pod>(
        &self,
        x: &[u8],
        y: &mut [T],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let x: &[T] = bytemuck::cast_slice(x);
        let (k, n, p) = (self.k, self.n, self.positions);
        if x.len() < self.batches * p * k || y.len() < self.batches * p * n {
            return Err(RunError::Unsupported(
                "operand buffer smaller than its shape",
            ));
        }
        let exec = ParExec::new(ctx.par);
        let o = QBlockOut {
            x_scale: self.x_scale,
            x_zero_point: self.x_zp,
            y_scale: self.y_scale,
            clamp: self.clamp,
            bias: self.bias.as_deref(),
        };
        let scratch = &mut ctx.scratch[..self.scratch];
        for b in 0..self.batches {
            let (xb, yb) = (&x[b * p * k..][..p * k], &mut y[b * p * n..][..p * n]);
            let (layout, ld, cs, ns) = if self.conv {
                (QLayout::DepthMajor, p, p, 1)
            } else {
                (QLayout::PositionMajor, k, 1, n)
            };
            let xin = QBlockInput::new(xb, k, p, ld, layout)
                .map_err(|_| RunError::Unsupported("x smaller than its shape"))?;
            qblock(qisa(), &self.w, &xin, &o, yb, cs, ns, scratch, &exec);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "qblock_linear_tests.rs"]
mod tests;
