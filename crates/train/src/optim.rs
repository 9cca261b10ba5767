//! Optimizers: plain host code over the weight tensors, with PyTorch's
//! update rules so results can be compared step for step.

use whittle_ir::Tensor;

/// Updates weights from their gradients, keeping per-tensor state.
pub trait Optimizer: Send {
    /// One step: `weights[i] -= update(grads[i])`. Both lists are in the
    /// same order on every call; state is created on the first.
    fn step(&mut self, weights: &mut [Tensor], grads: &[&[f32]]);
    /// The learning rate.
    fn lr(&self) -> f32;
    /// Sets the learning rate (for schedules).
    fn set_lr(&mut self, lr: f32);
    /// Names of the per-weight state slots (`"momentum"`, `"adam_m"`, ...),
    /// saved as `<weight>.<slot>` in a [`TrainState`](crate::TrainState).
    fn slot_names(&self) -> &'static [&'static str] {
        &[]
    }
    /// The state: `slots[k][i]` is slot `k` of weight `i`; empty before the
    /// first step.
    fn slots(&self) -> Vec<Vec<Vec<f32>>> {
        Vec::new()
    }
    /// Restores state taken with [`Optimizer::slots`] after `step` steps.
    fn set_slots(&mut self, _step: u64, _slots: Vec<Vec<Vec<f32>>>) {}
}

fn f32s(t: &mut Tensor) -> &mut [f32] {
    t.as_f32_mut().expect("trainable tensors are f32")
}

/// Stochastic gradient descent with momentum and L2 weight decay, as
/// `torch.optim.SGD`: `v = momentum * v + (g + wd * w)`, `w -= lr * v`.
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Learning rate.
    pub lr: f32,
    /// Momentum (0 for plain SGD).
    pub momentum: f32,
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
    velocity: Vec<Vec<f32>>,
}

impl Sgd {
    /// SGD with the given learning rate and momentum.
    pub fn new(lr: f32, momentum: f32) -> Sgd {
        Sgd {
            lr,
            momentum,
            weight_decay: 0.0,
            velocity: Vec::new(),
        }
    }
}

impl Optimizer for Sgd {
    fn step(&mut self, weights: &mut [Tensor], grads: &[&[f32]]) {
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

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn slot_names(&self) -> &'static [&'static str] {
        &["momentum"]
    }

    fn slots(&self) -> Vec<Vec<Vec<f32>>> {
        if self.velocity.is_empty() {
            Vec::new()
        } else {
            vec![self.velocity.clone()]
        }
    }

    fn set_slots(&mut self, _step: u64, slots: Vec<Vec<Vec<f32>>>) {
        self.velocity = slots.into_iter().next().unwrap_or_default();
    }
}

/// Adam, as `torch.optim.Adam` (bias-corrected moments, L2 weight decay
/// added to the gradient).
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
    /// L2 penalty added to the gradient.
    pub weight_decay: f32,
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
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl Optimizer for Adam {
    fn step(&mut self, weights: &mut [Tensor], grads: &[&[f32]]) {
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

    fn lr(&self) -> f32 {
        self.lr
    }

    fn set_lr(&mut self, lr: f32) {
        self.lr = lr;
    }

    fn slot_names(&self) -> &'static [&'static str] {
        &["adam_m", "adam_v"]
    }

    fn slots(&self) -> Vec<Vec<Vec<f32>>> {
        if self.m.is_empty() {
            Vec::new()
        } else {
            vec![self.m.clone(), self.v.clone()]
        }
    }

    fn set_slots(&mut self, step: u64, slots: Vec<Vec<Vec<f32>>>) {
        let mut it = slots.into_iter();
        self.m = it.next().unwrap_or_default();
        self.v = it.next().unwrap_or_default();
        self.t = if self.m.is_empty() {
            0
        } else {
            i32::try_from(step).unwrap_or(i32::MAX)
        };
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
