//! Regularizer gradients as graph nodes: each gradient (not proximal)
//! [`Term`] adds `λ ∇P(w)` to its weight's gradient, built from standard
//! ONNX ops (Sign, reductions, Div, Mul, Sub) that read the weight.
//!
//! Norms that can be 0 (an all-zero group or tensor) are clamped to
//! [`TINY`] before dividing, so their contribution is exactly 0, the
//! minimum-norm subgradient.

use whittle_ir::Attr;

use super::emit::Emit;
use crate::regularize::{Penalty, Term};
use crate::TrainError;

/// Floor of a norm before dividing by it.
const TINY: f32 = 1e-30;

/// Emits the gradient of `term` and records it as a contribution to its
/// tensor's gradient (its first `channels` output channels for a sparse
/// update).
pub(crate) fn emit_penalty_grad(
    e: &mut Emit<'_>,
    term: &Term,
    opset: i64,
) -> Result<(), TrainError> {
    let w = term.tensor.as_str();
    let owner = format!("{w}.penalty");
    let rank = e.shape(w)?.len();
    let lambda = term.strength;
    let mut b = Builder {
        e,
        owner: &owner,
        opset,
    };
    let grad = match term.penalty {
        Penalty::L1 => {
            let s = b.op("Sign", &[w], vec![]);
            b.scale(&s, lambda)
        }
        Penalty::GroupLasso(_) => {
            let axis = term.group_axis.unwrap_or(0);
            let unit = b.unit_groups(w, rank, axis);
            b.scale(&unit, lambda)
        }
        Penalty::Hoyer => {
            // 2λ (S1/S2) sign(w) − 2λ (S1/S2)² w, S1 = Σ|w|, S2 = Σw².
            let s1 = b.reduce("ReduceL1", w, None);
            let r = b.ratio(&s1, w);
            let sign = b.op("Sign", &[w], vec![]);
            b.hoyer_tail(&sign, &r, w, lambda)
        }
        Penalty::GroupHoyer(_) => {
            // 2λ (S1/S2) w_g/‖w_g‖ − 2λ (S1/S2)² w, S1 = Σ_g ‖w_g‖.
            let axis = term.group_axis.unwrap_or(0);
            let norms = b.group_norms(w, rank, axis);
            let s1 = b.reduce("ReduceSum", &norms, None);
            let r = b.ratio(&s1, w);
            let floor = b.e.const_f32(&format!("{owner}.tiny"), vec![], vec![TINY]);
            let safe = b.op("Max", &[&norms, &floor], vec![]);
            let unit = b.op("Div", &[w, &safe], vec![]);
            b.hoyer_tail(&unit, &r, w, lambda)
        }
    };
    let grad = match term.channels {
        Some(k) => {
            let starts = b.e.const_i64(&format!("{owner}.starts"), vec![0]);
            let ends = b.e.const_i64(&format!("{owner}.ends"), vec![k as i64]);
            let axes = b.e.const_i64(&format!("{owner}.axes"), vec![0]);
            b.op("Slice", &[&grad, &starts, &ends, &axes], vec![])
        }
        None => grad,
    };
    b.e.pass_owned(w, &grad);
    Ok(())
}

struct Builder<'b, 'a> {
    e: &'b mut Emit<'a>,
    owner: &'b str,
    opset: i64,
}

impl Builder<'_, '_> {
    /// One default-domain node with a fresh output.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let out = self
            .e
            .fresh(&format!("{}.{}", self.owner, op.to_lowercase()));
        self.e.node(self.owner, op, false, inputs, &[&out], attrs);
        out
    }

    /// `x * s`.
    fn scale(&mut self, x: &str, s: f32) -> String {
        let k = self
            .e
            .const_f32(&format!("{}.lambda", self.owner), vec![], vec![s]);
        self.op("Mul", &[x, &k], vec![])
    }

    /// A keepdims reduction over `axes` (all axes when `None`). Axes are an
    /// attribute before the opset that made them an input (13 for
    /// ReduceSum, 18 for the others).
    fn reduce(&mut self, op: &str, x: &str, axes: Option<Vec<i64>>) -> String {
        let as_input = self.opset >= if op == "ReduceSum" { 13 } else { 18 };
        match axes {
            None => self.op(op, &[x], vec![]),
            Some(a) if as_input => {
                let c = self.e.const_i64(&format!("{}.axes", self.owner), a);
                self.op(op, &[x, &c], vec![])
            }
            Some(a) => self.op(op, &[x], vec![("axes", Attr::Ints(a))]),
        }
    }

    /// ‖w_g‖₂ of each group along `axis`, broadcastable against w.
    fn group_norms(&mut self, w: &str, rank: usize, axis: usize) -> String {
        let axes = (0..rank as i64).filter(|&a| a != axis as i64).collect();
        self.reduce("ReduceL2", w, Some(axes))
    }

    /// w_g / ‖w_g‖₂ (0 for an all-zero group).
    fn unit_groups(&mut self, w: &str, rank: usize, axis: usize) -> String {
        let norms = self.group_norms(w, rank, axis);
        let floor = self
            .e
            .const_f32(&format!("{}.tiny", self.owner), vec![], vec![TINY]);
        let safe = self.op("Max", &[&norms, &floor], vec![]);
        self.op("Div", &[w, &safe], vec![])
    }

    /// S1 / S2 with S2 = Σw² (clamped away from 0).
    fn ratio(&mut self, s1: &str, w: &str) -> String {
        let s2 = self.reduce("ReduceSumSquare", w, None);
        let floor = self
            .e
            .const_f32(&format!("{}.tiny", self.owner), vec![], vec![TINY]);
        let safe = self.op("Max", &[&s2, &floor], vec![]);
        self.op("Div", &[s1, &safe], vec![])
    }

    /// 2λ r · d − 2λ r² · w.
    fn hoyer_tail(&mut self, d: &str, r: &str, w: &str, lambda: f32) -> String {
        let c1 = self.scale(r, 2.0 * lambda);
        let t1 = self.op("Mul", &[d, &c1], vec![]);
        let r2 = self.op("Mul", &[r, r], vec![]);
        let c2 = self.scale(&r2, 2.0 * lambda);
        let t2 = self.op("Mul", &[w, &c2], vec![]);
        self.op("Sub", &[&t1, &t2], vec![])
    }
}
