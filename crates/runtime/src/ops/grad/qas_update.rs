//! SGD on the integer weights of a quantized model with quantization-aware
//! scaling (QAS, Lin et al., *On-Device Training Under 256KB Memory*), as a
//! fused in-place update node:
//!
//! `QasSgdUpdate(W, G, lr, mask?, step, buf?, inv_s2?) -> (W', step', buf'?)`
//!
//! * `W`: the trained tensor, int8 / uint8 / int32 (the integer initializer
//!   a DequantizeLinear reads) or f32 (plain SGD, for mixed lists).
//! * `G`: f32 gradient with respect to `W` itself (`s · dL/dW_real`), W's
//!   shape or its first `channels` slices along axis 0 (as `SgdUpdate`).
//! * `step`: int64 `[1]` count of steps taken; it starts the momentum
//!   buffer at the first gradient (PyTorch's rule) and keys the stochastic
//!   rounding.
//! * `buf`: f32 momentum buffer shaped like W, present iff `momentum != 0`.
//! * `inv_s2`: f32 `s^-2` per output channel, shaped to broadcast
//!   unidirectionally to W along one axis (e.g. `[C,1,1,1]`, `[C]` for a
//!   bias, `[1,C]`), or one value; read when `qas = 1` (required then for
//!   integer W). It is the input after the last slot.
//!
//! Attributes: `momentum`, `qas` (0/1, default 1), `rounding` (`nearest` |
//! `stochastic`, default stochastic), `seed`, `channels`.
//!
//! The step is `v = momentum · v + G · inv_s2`, `W' = clamp(round(W - lr ·
//! v))`, clamped to `[-127, 127]` for int8 (the symmetric weight range),
//! `[0, 255]` for uint8 and the full range for int32. Stochastic rounding
//! is `floor(x + u)` with `u` in `[0, 1)` from a counter-based hash of
//! (seed, weight name, step, element index): no generator state, so a run
//! resumed from a checkpoint (which restores `step`) draws the same numbers
//! as an uninterrupted one. The mask keeps masked entries at 0 and their
//! buffer untouched.

use whittle_ir::DType;

use super::update::{masked, mirror, step_counter, take_state, updated_len};
use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "QasSgdUpdate", build);
}

const W: usize = 0;
const G: usize = 1;
const LR: usize = 2;
const MASK: usize = 3;
const STEP: usize = 4;
const BUF: usize = 5;

/// How an updated value goes back to the integer grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Round {
    Nearest,
    /// Key mixing the seed and the weight's name.
    Stochastic(u64),
}

/// SplitMix64's finaliser: a bijective mix whose outputs pass BigCrush for
/// consecutive inputs, so it serves as a counter-based generator.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The stochastic-rounding key of a weight: its name (FNV-1a) mixed with
/// the seed, so tensors draw independent numbers.
pub fn rounding_key(seed: u64, weight: &str) -> u64 {
    let name = weight.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    mix(seed ^ mix(name))
}

/// Uniform in `[0, 1)` for element `i` at step `step` (1-based) under
/// `key`.
pub fn rounding_uniform(key: u64, step: i64, i: usize) -> f64 {
    let r = mix(mix(key ^ step as u64) ^ i as u64);
    (r >> 11) as f64 / (1u64 << 53) as f64
}

fn build(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let momentum = ctx.node.attr_float("momentum", 0.0)?;
    let qas = ctx.node.attr_int("qas", 1)? != 0;
    let seed = ctx.node.attr_int("seed", 0)?;
    let weight = ctx.node.inputs.first().map_or("", String::as_str);
    let round = match ctx.node.attr_string("rounding", "stochastic")?.as_str() {
        "nearest" => Round::Nearest,
        "stochastic" => Round::Stochastic(rounding_key(seed as u64, weight)),
        other => {
            return Err(ctx.err(format!(
                "rounding '{other}': expected 'nearest' or 'stochastic'"
            )))
        }
    };
    let wdt = ctx.expect_dtype(W, &[DType::I8, DType::U8, DType::I32, DType::F32])?;
    ctx.expect_dtype(G, &[DType::F32])?;
    ctx.expect_dtype(LR, &[DType::F32])?;
    let w = ctx.fact(W)?.clone();
    if ctx.fact(LR)?.numel() != 1 {
        return Err(ctx.err("lr (input 2) must hold one element"));
    }
    let upd = updated_len(ctx, &w, ctx.fact(G)?)?;
    let mask = ctx.opt_input(MASK).is_some();
    if mask && ctx.fact(MASK)? != &crate::Fact::new(DType::F32, w.shape.clone()) {
        return Err(ctx.err(format!("mask must be f32 {:?} like the weight", w.shape)));
    }
    let step_ok = ctx
        .opt_input(STEP)
        .is_some_and(|f| f.fact.dtype == DType::I64 && f.fact.numel() == 1);
    if !step_ok {
        return Err(ctx.err(format!("input {STEP} must be the int64 [1] step counter")));
    }
    let has_buf = momentum != 0.0;
    if has_buf {
        let want = crate::Fact::new(DType::F32, w.shape.clone());
        if ctx.opt_input(BUF).is_none_or(|f| f.fact != want) {
            return Err(ctx.err(format!(
                "momentum {momentum} needs input {BUF}: an f32 {:?} buffer",
                w.shape
            )));
        }
    }
    let scale_at = BUF + usize::from(has_buf);
    if ctx.num_inputs() > scale_at + 1 {
        return Err(ctx.err(format!(
            "at most {} inputs (W, G, lr, mask, step{}, inv_s2), got {}",
            scale_at + 1,
            if has_buf { ", buf" } else { "" },
            ctx.num_inputs()
        )));
    }
    let scale = match (qas, ctx.opt_input(scale_at)) {
        (false, _) => Scale::None,
        (true, None) if wdt == DType::F32 => Scale::None,
        (true, None) => {
            return Err(ctx.err(format!(
                "qas = 1 on an integer weight needs inv_s2 (input {scale_at})"
            )))
        }
        (true, Some(f)) => scale_layout(ctx, &w.shape, &f.fact)?,
    };
    let mut mirrored = vec![W, STEP];
    if has_buf {
        mirrored.push(BUF);
    }
    let outputs = mirror(ctx, &mirrored)?;
    let (lo, hi) = match wdt {
        DType::I8 => (-127.0, 127.0),
        DType::U8 => (0.0, 255.0),
        _ => (f64::from(i32::MIN), f64::from(i32::MAX)),
    };
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(QasSgd {
            upd,
            mask,
            momentum,
            has_buf,
            scale,
            scale_at,
            round,
            lo,
            hi,
        }),
    })
}

/// Where element `i` of W finds its factor in `inv_s2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    /// No scaling (QAS off, or an f32 weight without factors).
    None,
    /// `inv_s2[(i / inner) % count]`.
    Axis { inner: usize, count: usize },
}

/// Checks that `s` (f32) is one value or broadcasts to `w` along one axis.
fn scale_layout(ctx: &BuildCtx<'_>, w: &[usize], s: &crate::Fact) -> Result<Scale, OpError> {
    if s.dtype != DType::F32 {
        return Err(ctx.err(format!("inv_s2 must be f32, got {}", s.dtype)));
    }
    if s.numel() == 1 {
        return Ok(Scale::Axis { inner: 1, count: 1 });
    }
    let axes: Vec<usize> = (0..s.shape.len()).filter(|&a| s.shape[a] != 1).collect();
    match axes.as_slice() {
        [a] if s.shape.len() == w.len() && s.shape[*a] == w[*a] => Ok(Scale::Axis {
            inner: w[a + 1..].iter().product::<usize>().max(1),
            count: w[*a],
        }),
        _ => Err(ctx.err(format!(
            "inv_s2 shape {:?} must be one value or W's rank with one axis of W's {:?}",
            s.shape, w
        ))),
    }
}

struct QasSgd {
    upd: usize,
    mask: bool,
    momentum: f32,
    has_buf: bool,
    scale: Scale,
    scale_at: usize,
    round: Round,
    lo: f64,
    hi: f64,
}

impl QasSgd {
    /// The update of element `i` before rounding, `lr · v`, updating the
    /// momentum buffer.
    #[inline]
    fn delta(&self, i: usize, g: f32, inv_s2: &[f32], buf: &mut [f32], first: bool) -> f32 {
        let mut d = match self.scale {
            Scale::None => g,
            Scale::Axis { inner, count } => g * inv_s2[(i / inner) % count],
        };
        if self.has_buf {
            buf[i] = if first { d } else { self.momentum * buf[i] + d };
            d = buf[i];
        }
        d
    }

    /// Rounds and clamps an updated integer value.
    #[inline]
    fn to_grid(&self, x: f64, step: i64, i: usize) -> f64 {
        let r = match self.round {
            Round::Nearest => x.round(),
            Round::Stochastic(key) => (x + rounding_uniform(key, step, i)).floor(),
        };
        r.clamp(self.lo, self.hi)
    }

    /// Updates integer elements through `get`/`set` (one per dtype).
    #[allow(clippy::too_many_arguments)]
    fn run_ints<T: Copy>(
        &self,
        w: &mut [T],
        get: impl Fn(T) -> f64,
        set: impl Fn(f64) -> T,
        g: &[f32],
        lr: f32,
        mask: &[f32],
        inv_s2: &[f32],
        buf: &mut [f32],
        step: i64,
    ) {
        let lr = f64::from(lr);
        for i in 0..self.upd {
            if masked(mask, i) {
                w[i] = set(0.0);
                continue;
            }
            let d = self.delta(i, g[i], inv_s2, buf, step == 1);
            let x = get(w[i]) - lr * f64::from(d);
            w[i] = set(self.to_grid(x, step, i));
        }
    }
}

impl Kernel for QasSgd {
    fn name(&self) -> String {
        match self.round {
            Round::Nearest => "update.qas_sgd.nearest".into(),
            Round::Stochastic(_) => "update.qas_sgd.stochastic".into(),
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let pairs: &[(usize, usize)] = if self.has_buf {
            &[(W, 0), (STEP, 1), (BUF, 2)]
        } else {
            &[(W, 0), (STEP, 1)]
        };
        take_state(inputs, outputs, pairs);
        let lr = inputs[LR].f32()[0];
        let g = inputs[G].f32();
        let mask = if self.mask { inputs[MASK].f32() } else { &[] };
        let inv_s2 = match self.scale {
            Scale::None => &[][..],
            Scale::Axis { .. } => inputs[self.scale_at].f32(),
        };
        let (w_out, rest) = outputs.split_at_mut(1);
        let (step_out, rest) = rest.split_at_mut(1);
        let step = {
            let c = step_counter(&mut step_out[0]);
            *c += 1;
            *c
        };
        let mut no_buf: [f32; 0] = [];
        let buf = match rest.first_mut() {
            Some(b) => b.f32(),
            None => &mut no_buf[..],
        };
        let w = &mut w_out[0];
        match w.dtype() {
            DType::I8 => self.run_ints(
                w.i8(),
                f64::from,
                |x| x as i8,
                g,
                lr,
                mask,
                inv_s2,
                buf,
                step,
            ),
            DType::U8 => self.run_ints(
                w.u8(),
                f64::from,
                |x| x as u8,
                g,
                lr,
                mask,
                inv_s2,
                buf,
                step,
            ),
            DType::I32 => self.run_ints(
                w.i32(),
                f64::from,
                |x| x as i32,
                g,
                lr,
                mask,
                inv_s2,
                buf,
                step,
            ),
            _ => {
                let w = w.f32();
                for i in 0..self.upd {
                    if masked(mask, i) {
                        w[i] = 0.0;
                        continue;
                    }
                    w[i] -= lr * self.delta(i, g[i], inv_s2, buf, step == 1);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "qas_update_tests.rs"]
mod tests;
