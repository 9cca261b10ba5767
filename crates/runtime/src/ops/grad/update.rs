//! Optimizer steps as graph nodes, so a training graph updates its weights
//! inside the backward pass, right after each gradient is computed (the
//! Tiny Training Engine's fused in-place update), and the weight gradients
//! are never all alive at once.
//!
//! * `SgdUpdate(W, G, lr, mask?, buf?, step?) -> (W', buf'?, step'?)`, as
//!   `torch.optim.SGD`: attributes `momentum`, `dampening`, `nesterov`,
//!   `weight_decay`. The momentum buffer `buf` is required when momentum is
//!   not 0; the step counter (int64 `[1]`, number of steps taken) when
//!   dampening is not 0, because PyTorch starts the buffer at the first
//!   gradient undamped.
//! * `AdamUpdate(W, G, lr, mask?, m, v, step) -> (W', m', v', step')`, as
//!   `torch.optim.Adam` (bias correction from the step counter); with
//!   `decoupled = 1`, as `torch.optim.AdamW`. Attributes `beta1`, `beta2`,
//!   `eps`, `weight_decay`.
//! * `BatchNormStatsUpdate(mean, var, batch_mean, batch_invstd) -> (mean',
//!   var')`: folds a train-mode BatchNorm's batch statistics into its running
//!   ones (ONNX momentum convention, unbiased variance over `count`
//!   elements per channel, as PyTorch).
//!
//! State inputs (weight, slots, counter) arrive aliased to their outputs
//! when the planner places them in one buffer; otherwise the kernel copies
//! them over first, so the ops also run on host tensors. `lr` is a run-time
//! scalar so schedules change it without recompiling. The optional 0/1
//! `mask` (same shape as W) keeps masked weights exactly 0 and their slots
//! untouched. The optional `channels = k` updates only the first k slices
//! along axis 0 (output channels: sparse update); G may then have k slices.

use whittle_ir::DType;

use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "SgdUpdate", build_sgd);
    r.add_in_domain(DOMAIN, "AdamUpdate", build_adam);
    r.add_in_domain(DOMAIN, "BatchNormStatsUpdate", build_stats);
}

const W: usize = 0;
const G: usize = 1;
const LR: usize = 2;
const MASK: usize = 3;

/// What both optimizers share: sizes and the optional inputs.
#[derive(Clone, Copy, Debug)]
struct Shape {
    /// Elements updated: all of W, or its first `channels` slices.
    upd: usize,
    mask: bool,
}

/// Validates W, G, lr, mask and `channels`, and each slot input (same fact
/// as W, or the int64 step counter).
fn check_common(
    ctx: &BuildCtx<'_>,
    slots: &[usize],
    step: Option<usize>,
) -> Result<Shape, OpError> {
    ctx.expect_dtype(W, &[DType::F32])?;
    ctx.expect_dtype(G, &[DType::F32])?;
    ctx.expect_dtype(LR, &[DType::F32])?;
    let w = ctx.fact(W)?.clone();
    let g = ctx.fact(G)?;
    if ctx.fact(LR)?.numel() != 1 {
        return Err(ctx.err("lr (input 2) must hold one element"));
    }
    let upd = updated_len(ctx, &w, g)?;
    let mask = ctx.opt_input(MASK).is_some();
    if mask && ctx.fact(MASK)? != &w {
        return Err(ctx.err(format!("mask must be f32 {:?} like the weight", w.shape)));
    }
    for &i in slots {
        if ctx.opt_input(i).is_none() || ctx.fact(i)? != &w {
            return Err(ctx.err(format!(
                "input {i} ('{}') must be an f32 {:?} optimizer slot",
                ctx.node.inputs.get(i).map_or("", String::as_str),
                w.shape
            )));
        }
    }
    if let Some(i) = step {
        let ok = ctx
            .opt_input(i)
            .is_some_and(|f| f.fact.dtype == DType::I64 && f.fact.numel() == 1);
        if !ok {
            return Err(ctx.err(format!("input {i} must be the int64 [1] step counter")));
        }
    }
    Ok(Shape { upd, mask })
}

/// Elements an update touches: all of W, or its first `channels` slices
/// along axis 0 (G then has W's shape or those slices only).
pub(super) fn updated_len(ctx: &BuildCtx<'_>, w: &Fact, g: &Fact) -> Result<usize, OpError> {
    let numel = w.numel();
    Ok(match ctx.node.attr_int("channels", 0)? {
        0 => {
            if g.shape != w.shape {
                return Err(ctx.err(format!(
                    "gradient shape {:?} differs from the weight's {:?}",
                    g.shape, w.shape
                )));
            }
            numel
        }
        k => {
            let c = w.shape.first().copied().unwrap_or(1);
            let k = usize::try_from(k)
                .ok()
                .filter(|&k| (1..=c).contains(&k))
                .ok_or_else(|| ctx.err(format!("channels = {k} outside 1..={c}")))?;
            let mut partial = w.shape.clone();
            if let Some(d) = partial.first_mut() {
                *d = k;
            }
            if g.shape != w.shape && g.shape != partial {
                return Err(ctx.err(format!(
                    "gradient shape {:?}: expected {:?} or {:?} with channels = {k}",
                    g.shape, w.shape, partial
                )));
            }
            numel / c.max(1) * k
        }
    })
}

/// The facts of outputs mirroring `inputs` (W and the state slots).
pub(super) fn mirror(ctx: &BuildCtx<'_>, inputs: &[usize]) -> Result<Vec<Fact>, OpError> {
    let want = inputs.len();
    let declared = ctx.node.outputs.len();
    if declared != want || ctx.node.outputs.iter().any(String::is_empty) {
        return Err(ctx.err(format!(
            "needs exactly {want} outputs (the updated weight and state), got {declared}"
        )));
    }
    inputs.iter().map(|&i| ctx.fact(i).cloned()).collect()
}

/// Copies each state input into its output unless the planner aliased them.
pub(super) fn take_state(
    inputs: &[View<'_>],
    outputs: &mut [ViewMut<'_>],
    pairs: &[(usize, usize)],
) {
    for &(i, o) in pairs {
        if !inputs[i].is_aliased() {
            outputs[o].bytes().copy_from_slice(inputs[i].bytes());
        }
    }
}

pub(super) fn step_counter<'a>(out: &'a mut ViewMut<'_>) -> &'a mut i64 {
    &mut out.i64()[0]
}

pub(super) fn masked(mask: &[f32], i: usize) -> bool {
    mask.get(i).is_some_and(|&m| m == 0.0)
}

// ---- SGD ----

fn build_sgd(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let momentum = ctx.node.attr_float("momentum", 0.0)?;
    let dampening = ctx.node.attr_float("dampening", 0.0)?;
    let weight_decay = ctx.node.attr_float("weight_decay", 0.0)?;
    let nesterov = ctx.node.attr_int("nesterov", 0)? != 0;
    if nesterov && (momentum <= 0.0 || dampening != 0.0) {
        return Err(ctx.err("nesterov needs momentum > 0 and dampening = 0"));
    }
    let has_buf = momentum != 0.0;
    let has_step = has_buf && dampening != 0.0;
    let slots: &[usize] = if has_buf { &[4] } else { &[] };
    let shape = check_common(ctx, slots, has_step.then_some(5))?;
    let mut mirrored = vec![W];
    mirrored.extend_from_slice(slots);
    if has_step {
        mirrored.push(5);
    }
    let outputs = mirror(ctx, &mirrored)?;
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(Sgd {
            shape,
            momentum,
            dampening,
            weight_decay,
            nesterov,
            has_buf,
            has_step,
        }),
    })
}

struct Sgd {
    shape: Shape,
    momentum: f32,
    dampening: f32,
    weight_decay: f32,
    nesterov: bool,
    has_buf: bool,
    has_step: bool,
}

impl Kernel for Sgd {
    fn name(&self) -> String {
        "update.sgd".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let pairs: &[(usize, usize)] = match (self.has_buf, self.has_step) {
            (false, _) => &[(W, 0)],
            (true, false) => &[(W, 0), (4, 1)],
            (true, true) => &[(W, 0), (4, 1), (5, 2)],
        };
        take_state(inputs, outputs, pairs);
        let lr = inputs[LR].f32()[0];
        let g = inputs[G].f32();
        let mask = if self.shape.mask {
            inputs[MASK].f32()
        } else {
            &[]
        };
        let (w_out, rest) = outputs.split_at_mut(1);
        let first = match rest.get_mut(1) {
            Some(s) => {
                let c = step_counter(s);
                *c += 1;
                *c == 1
            }
            None => false,
        };
        let w = w_out[0].f32();
        let mut no_buf: [f32; 0] = [];
        let buf = match rest.first_mut() {
            Some(b) => b.f32(),
            None => &mut no_buf[..],
        };
        let (mom, damp, wd) = (self.momentum, 1.0 - self.dampening, self.weight_decay);
        for i in 0..self.shape.upd {
            if masked(mask, i) {
                w[i] = 0.0;
                continue;
            }
            let mut d = g[i];
            if wd != 0.0 {
                d += wd * w[i];
            }
            if self.has_buf {
                // An absent counter means dampening is 0: a zero buffer
                // then starts at the first gradient too.
                buf[i] = if first { d } else { mom * buf[i] + damp * d };
                d = if self.nesterov {
                    d + mom * buf[i]
                } else {
                    buf[i]
                };
            }
            w[i] -= lr * d;
        }
        Ok(())
    }
}

// ---- Adam ----

fn build_adam(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let beta1 = ctx.node.attr_float("beta1", 0.9)?;
    let beta2 = ctx.node.attr_float("beta2", 0.999)?;
    let eps = ctx.node.attr_float("eps", 1e-8)?;
    let weight_decay = ctx.node.attr_float("weight_decay", 0.0)?;
    let decoupled = ctx.node.attr_int("decoupled", 0)? != 0;
    if !(0.0..1.0).contains(&beta1) || !(0.0..1.0).contains(&beta2) {
        return Err(ctx.err(format!("betas ({beta1}, {beta2}) must be in [0, 1)")));
    }
    let shape = check_common(ctx, &[4, 5], Some(6))?;
    let outputs = mirror(ctx, &[W, 4, 5, 6])?;
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(Adam {
            shape,
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        }),
    })
}

struct Adam {
    shape: Shape,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    decoupled: bool,
}

impl Kernel for Adam {
    fn name(&self) -> String {
        if self.decoupled {
            "update.adamw".into()
        } else {
            "update.adam".into()
        }
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        take_state(inputs, outputs, &[(W, 0), (4, 1), (5, 2), (6, 3)]);
        let lr = inputs[LR].f32()[0];
        let g = inputs[G].f32();
        let mask = if self.shape.mask {
            inputs[MASK].f32()
        } else {
            &[]
        };
        let [w, m, v, t] = outputs else {
            return Err(RunError::Unsupported("AdamUpdate needs 4 outputs"));
        };
        let t = step_counter(t);
        *t += 1;
        // PyTorch computes the bias corrections in double precision and
        // applies them as f32 scalars.
        let step = *t as f64;
        let bc1 = 1.0 - f64::from(self.beta1).powf(step);
        let bc2 = 1.0 - f64::from(self.beta2).powf(step);
        let step_size = (f64::from(lr) / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = (f64::from(lr) * f64::from(self.weight_decay)) as f32;
        let (w, m, v) = (w.f32(), m.f32(), v.f32());
        let (b1, b2) = (1.0 - self.beta1, 1.0 - self.beta2);
        for i in 0..self.shape.upd {
            if masked(mask, i) {
                w[i] = 0.0;
                continue;
            }
            let mut gi = g[i];
            if self.weight_decay != 0.0 {
                if self.decoupled {
                    w[i] *= 1.0 - decay;
                } else {
                    gi += self.weight_decay * w[i];
                }
            }
            m[i] += b1 * (gi - m[i]);
            v[i] = self.beta2 * v[i] + b2 * gi * gi;
            let denom = v[i].sqrt() / bc2_sqrt + self.eps;
            w[i] -= step_size * (m[i] / denom);
        }
        Ok(())
    }
}

// ---- BatchNorm running statistics ----

fn build_stats(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let momentum = ctx.node.attr_float("momentum", 0.9)?;
    let epsilon = ctx.node.attr_float("epsilon", 1e-5)?;
    let count = ctx.node.attr_int("count", 1)?;
    if count < 1 {
        return Err(ctx.err(format!("count = {count} must be at least 1")));
    }
    let c = ctx.fact(0)?.clone();
    if c.dtype != DType::F32 || c.shape.len() != 1 {
        return Err(ctx.err("running mean must be f32 [C]"));
    }
    for i in 1..4 {
        if ctx.fact(i)? != &c {
            return Err(ctx.err(format!("input {i} must be f32 {:?}", c.shape)));
        }
    }
    let outputs = mirror(ctx, &[0, 1])?;
    let n = count as f32;
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(Stats {
            momentum,
            epsilon,
            unbias: if count > 1 { n / (n - 1.0) } else { 1.0 },
        }),
    })
}

struct Stats {
    momentum: f32,
    epsilon: f32,
    unbias: f32,
}

impl Kernel for Stats {
    fn name(&self) -> String {
        "update.batchnorm_stats".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        take_state(inputs, outputs, &[(0, 0), (1, 1)]);
        let (mean, inv) = (inputs[2].f32(), inputs[3].f32());
        let [rm, rv] = outputs else {
            return Err(RunError::Unsupported(
                "BatchNormStatsUpdate needs 2 outputs",
            ));
        };
        let m = self.momentum;
        for (r, &b) in rm.f32().iter_mut().zip(mean) {
            *r = m * *r + (1.0 - m) * b;
        }
        for (r, &i) in rv.f32().iter_mut().zip(inv) {
            let var = (1.0 / (i * i) - self.epsilon).max(0.0) * self.unbias;
            *r = m * *r + (1.0 - m) * var;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "update_tests.rs"]
mod tests;
