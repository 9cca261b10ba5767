//! Optimizers as descriptions of the update node the training graph runs
//! after each weight gradient (see `whittle.grad` `SgdUpdate` and
//! `AdamUpdate`), with PyTorch's update rules. `Sgd::step` and `Adam::step`
//! are the same rules on the host, kept as a reference for tests and for
//! comparing against the fused path.

use whittle_ir::{Attr, Tensor};

/// A per-weight state tensor an update node keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// An f32 tensor shaped like the weight, named `<weight>.<suffix>`
    /// (e.g. `momentum`, `adam_m`, `adam_v`), starting at zero.
    Tensor(&'static str),
    /// The int64 `[1]` count of steps taken, named `<weight>.step`.
    Step,
}

/// The update node of an optimizer: op type in the `whittle.grad` domain,
/// attributes, and the state slots it reads and writes (inputs 4.. and
/// outputs 1.., in this order), followed by the optimizer's
/// [`Optimizer::per_weight_inputs`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpdateRule {
    /// Op type (`SgdUpdate`, `AdamUpdate`, `QasSgdUpdate`).
    pub op: &'static str,
    /// Node attributes.
    pub attrs: Vec<(String, Attr)>,
    /// Per-weight state.
    pub slots: Vec<Slot>,
}

/// An optimizer, described by the node that applies it inside the
/// training graph.
pub trait Optimizer: Send {
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (for schedules): the compiled graph reads it
    /// as an input, so nothing is recompiled.
    fn set_lr(&mut self, lr: f32);
    /// The update node to emit after each weight's gradient.
    fn update_rule(&self) -> UpdateRule;
    /// Constant inputs of `weight`'s update node after its slots, as
    /// `(suffix, value)`: each becomes an initializer `<weight>.<suffix>`
    /// (e.g. QAS's per-channel `inv_s2`). None by default.
    fn per_weight_inputs(&self, weight: &str) -> Vec<(&'static str, Tensor)> {
        let _ = weight;
        Vec::new()
    }
}

fn f32s(t: &mut Tensor) -> &mut [f32] {
    t.as_f32_mut().expect("trainable tensors are f32")
}

/// Stochastic gradient descent with momentum and L2 weight decay, as
/// `torch.optim.SGD`: `v = momentum * v + (1 - dampening) * (g + wd * w)`,
/// `w -= lr * v` (or `lr * (g + momentum * v)` with Nesterov).
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    /// Dampening of the gradient in the momentum buffer.
    pub dampening: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    /// SGD with the given learning rate and momentum.
    pub fn new(lr: f32, momentum: f32) -> Sgd {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            dampening: 0.0,
            nesterov: false,
            velocity: Vec::new(),
        }
    }

    /// With L2 weight decay.
    pub fn weight_decay(mut self, wd: f32) -> Sgd {
        self.weight_decay = wd;
        self
    }

    /// With dampening.
    pub fn dampening(mut self, d: f32) -> Sgd {
        self.dampening = d;
        self
    }

    /// With Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Sgd {
        self.nesterov = on;
        self
    }

    /// The host-side reference step (no dampening or Nesterov): `weights[i]
    /// -= update(grads[i])`, both lists in the same order on every call.
    pub fn step(&mut self, weights: &mut [Tensor], grads: &[&[f32]]) {
        let first = self.velocity.is_empty();
        if first {
            self.velocity = weights.iter().map(|w| vec![0.0; w.numel()]).collect();
        }
        for ((w, g), v) in weights.iter_mut().zip(grads).zip(&mut self.velocity) {
            for ((w, &g), v) in f32s(w).iter_mut().zip(g.iter()).zip(v.iter_mut()) {
                let d = g + self.weight_decay * *w;
                // PyTorch starts the buffer at the first gradient.
                *v = if first { d } else { self.momentum * *v + d };
                *w -= self.lr * if self.momentum == 0.0 { d } else { *v };
            }
        }
    }
}

impl Optimizer for Sgd {
    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update_rule(&self) -> UpdateRule {
        let mut slots = Vec::new();
        if self.momentum != 0.0 {
            slots.push(Slot::Tensor("momentum"));
            if self.dampening != 0.0 {
                slots.push(Slot::Step);
            }
        }
        UpdateRule {
            op: "SgdUpdate",
            attrs: vec![
                ("momentum".into(), Attr::Float(self.momentum)),
                ("dampening".into(), Attr::Float(self.dampening)),
                ("weight_decay".into(), Attr::Float(self.weight_decay)),
                ("nesterov".into(), Attr::Int(i64::from(self.nesterov))),
            ],
            slots,
        }
    }
}

/// Adam, as `torch.optim.Adam` (bias-corrected moments, L2 weight decay
/// added to the gradient), or `torch.optim.AdamW` with decoupled decay.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// L2 penalty added to the gradient (or, when `decoupled`, the AdamW
    /// decay `w *= 1 - lr * weight_decay`).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay.
    pub decoupled: bool,
    t: i32,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Adam with PyTorch's defaults (betas 0.9, 0.999; eps 1e-8).
    pub fn new(lr: f32) -> Adam {
        Adam {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// AdamW (`torch.optim.AdamW`) with the given decoupled weight decay.
    pub fn adamw(lr: f32, weight_decay: f32) -> Adam {
        Adam {
            weight_decay,
            decoupled: true,
            ..Adam::new(lr)
        }
    }

    /// The host-side reference step (L2 decay only), as the original
    /// host optimizer path.
    pub fn step(&mut self, weights: &mut [Tensor], grads: &[&[f32]]) {
        if self.m.is_empty() {
            self.m = weights.iter().map(|w| vec![0.0; w.numel()]).collect();
            self.v = self.m.clone();
        }
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t);
        let c2 = 1.0 - self.beta2.powi(self.t);
        for (i, (w, g)) in weights.iter_mut().zip(grads).enumerate() {
            let (m, v) = (&mut self.m[i], &mut self.v[i]);
            for (k, (w, &g)) in f32s(w).iter_mut().zip(g.iter()).enumerate() {
                let d = g + self.weight_decay * *w;
                m[k] = self.beta1 * m[k] + (1.0 - self.beta1) * d;
                v[k] = self.beta2 * v[k] + (1.0 - self.beta2) * d * d;
                let mhat = m[k] / c1;
                let vhat = v[k] / c2;
                *w -= self.lr * mhat / (vhat.sqrt() + self.eps);
            }
        }
    }
}

impl Optimizer for Adam {
    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn update_rule(&self) -> UpdateRule {
        UpdateRule {
            op: "AdamUpdate",
            attrs: vec![
                ("beta1".into(), Attr::Float(self.beta1)),
                ("beta2".into(), Attr::Float(self.beta2)),
                ("eps".into(), Attr::Float(self.eps)),
                ("weight_decay".into(), Attr::Float(self.weight_decay)),
                ("decoupled".into(), Attr::Int(i64::from(self.decoupled))),
            ],
            slots: vec![Slot::Tensor("adam_m"), Slot::Tensor("adam_v"), Slot::Step],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two steps of `torch.optim.SGD(lr=0.1, momentum=0.9)` on w = [1, -2]
    /// with grads [0.5, 0.25] then [-0.1, 0.3] end at [0.915, -2.0775]
    /// (checked with PyTorch 2.x).
    #[test]
    fn sgd_momentum_matches_torch() {
        let mut w = vec![Tensor::from_f32(vec![2], vec![1.0, -2.0]).unwrap()];
        let mut o = Sgd::new(0.1, 0.9);
        o.step(&mut w, &[&[0.5, 0.25]]);
        o.step(&mut w, &[&[-0.1, 0.3]]);
        let v = w[0].as_f32().unwrap();
        // Step 1: v = g = [0.5, 0.25]; w = [0.95, -2.025].
        // Step 2: v = 0.9 v + g = [0.35, 0.525]; w = [0.915, -2.0775].
        assert!(
            (v[0] - 0.915).abs() < 1e-6 && (v[1] + 2.0775).abs() < 1e-6,
            "{v:?}"
        );
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction the first update is lr * sign(g);
        // torch.optim.Adam(lr=0.01) gives [0.99, -1.99] as well.
        let mut w = vec![Tensor::from_f32(vec![2], vec![1.0, -2.0]).unwrap()];
        let mut o = Adam::new(0.01);
        o.step(&mut w, &[&[0.5, -0.25]]);
        let v = w[0].as_f32().unwrap();
        assert!(
            (v[0] - 0.99).abs() < 1e-6 && (v[1] + 1.99).abs() < 1e-6,
            "{v:?}"
        );
    }
}
