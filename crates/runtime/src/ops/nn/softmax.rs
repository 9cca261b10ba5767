//! Softmax, LogSoftmax and Hardmax. Before opset 13 the input is coerced to
//! 2-D at `axis` (all trailing dims form one row); from 13 the op runs along
//! `axis` alone. Rows are contiguous in the common last-axis case and run
//! through a vectorisable exp; other axes keep running maxima and sums for
//! a whole inner row in scratch so reads stay sequential.

use whittle_ir::DType;

use crate::ops::common::shape_util::{norm_axis, numel};
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers the softmax family.
pub fn register(r: &mut Registry) {
    r.add("Softmax", |c| build(c, Kind::Softmax));
    r.add("LogSoftmax", |c| build(c, Kind::LogSoftmax));
    r.add("Hardmax", |c| build(c, Kind::Hardmax));
}

/// Which member of the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Softmax,
    LogSoftmax,
    Hardmax,
}

/// e^x in f32 with under 2 ulp error over the normal range. Branch-free
/// (selects only) so loops calling it vectorise: round-to-nearest through a
/// magic constant, Cody–Waite split of ln 2, a Cephes degree-6 polynomial,
/// and the power of two assembled in the exponent bits.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let xc = x.clamp(-87.0, 88.5);
    let t = xc * std::f32::consts::LOG2_E + MAGIC;
    let n = t - MAGIC;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // t's low mantissa bits hold n exactly (its ulp is 1).
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    let scale = f32::from_bits(((ni + 127) as u32) << 23);
    let y = e * scale;
    // Selects, not branches to a libm call, so the loop stays vectorised.
    // Below the clamp the true value is subnormal or zero; for softmax
    // weights zero is the faithful answer.
    let y = if x < -87.0 { 0.0 } else { y };
    let y = if x > 88.5 { f32::INFINITY } else { y };
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// Max of a row with eight independent lanes (vectorisable).
#[inline]
fn row_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    tail.iter()
        .chain(&acc)
        .fold(f32::NEG_INFINITY, |a, &v| a.max(v))
}

/// Sum of a row with eight lanes.
#[inline]
fn row_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    tail.iter().sum::<f32>() + acc.iter().sum::<f32>()
}

/// NaN anywhere in the row makes numpy's max (and so the reference) NaN;
/// f32::max would skip it.
#[inline]
fn has_nan(x: &[f32]) -> bool {
    let mut acc = [false; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] |= c[l].is_nan();
        }
    }
    tail.iter().any(|v| v.is_nan()) || acc.iter().any(|&a| a)
}

fn softmax_row(x: &[f32], y: &mut [f32], kind: Kind) {
    match kind {
        Kind::Hardmax => {
            let mut best = 0;
            for (i, &v) in x.iter().enumerate() {
                if v > x[best] {
                    best = i;
                }
            }
            y.fill(0.0);
            if !y.is_empty() {
                y[best] = 1.0;
            }
        }
        Kind::Softmax | Kind::LogSoftmax => {
            let m = if has_nan(x) { f32::NAN } else { row_max(x) };
            for (o, &v) in y.iter_mut().zip(x) {
                *o = exp_f32(v - m);
            }
            let s = row_sum(y);
            if kind == Kind::Softmax {
                let inv = 1.0 / s;
                y.iter_mut().for_each(|o| *o *= inv);
            } else {
                // (x - m) - ln s, not x - (m + ln s): the latter cancels
                // catastrophically when m is large.
                let ls = s.ln();
                for (o, &v) in y.iter_mut().zip(x) {
                    *o = (v - m) - ls;
                }
            }
        }
    }
}

struct SoftmaxKernel {
    kind: Kind,
    outer: usize,
    n: usize,
    inner: usize,
}

impl SoftmaxKernel {
    /// One outer block of `n × inner` values, reduced along `n`.
    fn strided_block(&self, x: &[f32], y: &mut [f32], m: &mut [f32], s: &mut [f32]) {
        let inner = self.inner;
        let rows = || x.chunks_exact(inner);
        m.fill(f32::NEG_INFINITY);
        for r in rows() {
            for (a, &v) in m.iter_mut().zip(r) {
                *a = if a.is_nan() || v.is_nan() {
                    f32::NAN
                } else {
                    a.max(v)
                };
            }
        }
        if self.kind == Kind::Hardmax {
            y.fill(0.0);
            // The first row reaching the max wins.
            s.fill(0.0);
            for (k, r) in rows().enumerate() {
                let yr = &mut y[k * inner..(k + 1) * inner];
                for j in 0..inner {
                    if s[j] == 0.0 && r[j] == m[j] {
                        yr[j] = 1.0;
                        s[j] = 1.0;
                    }
                }
            }
            return;
        }
        s.fill(0.0);
        for (r, yr) in rows().zip(y.chunks_exact_mut(inner)) {
            for j in 0..inner {
                let e = exp_f32(r[j] - m[j]);
                yr[j] = e;
                s[j] += e;
            }
        }
        if self.kind == Kind::Softmax {
            s.iter_mut().for_each(|v| *v = 1.0 / *v);
            for yr in y.chunks_exact_mut(inner) {
                for (o, &inv) in yr.iter_mut().zip(&*s) {
                    *o *= inv;
                }
            }
        } else {
            s.iter_mut().for_each(|v| *v = v.ln());
            for (r, yr) in rows().zip(y.chunks_exact_mut(inner)) {
                for j in 0..inner {
                    yr[j] = (r[j] - m[j]) - s[j];
                }
            }
        }
    }
}

/// Rows per parallel task, so each task does enough work to pay for itself.
const ROW_TASK_ELEMS: usize = 16 * 1024;

impl Kernel for SoftmaxKernel {
    fn name(&self) -> String {
        let kind = format!("{:?}", self.kind).to_lowercase();
        let path = if self.inner == 1 { "rows" } else { "strided" };
        format!("{kind}.{path}")
    }

    fn scratch_bytes(&self) -> usize {
        if self.inner == 1 {
            0
        } else {
            2 * self.inner * 4
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
        let n = self.n;
        if y.is_empty() || n == 0 {
            return Ok(());
        }
        if self.inner == 1 {
            let rows_per_task = (ROW_TASK_ELEMS / n).max(1);
            ctx.par.for_each_chunk_mut(y, rows_per_task * n, &|t, yc| {
                let xc = &x[t * rows_per_task * n..][..yc.len()];
                for (xr, yr) in xc.chunks_exact(n).zip(yc.chunks_exact_mut(n)) {
                    softmax_row(xr, yr, self.kind);
                }
            });
            return Ok(());
        }
        let scratch: &mut [f32] = bytemuck::cast_slice_mut(&mut ctx.scratch[..2 * self.inner * 4]);
        let (m, s) = scratch.split_at_mut(self.inner);
        let block = n * self.inner;
        for o in 0..self.outer {
            let r = o * block..(o + 1) * block;
            self.strided_block(&x[r.clone()], &mut y[r], m, s);
        }
        Ok(())
    }
}

/// Softmax, LogSoftmax or Hardmax on f32.
pub(crate) fn build(ctx: &BuildCtx<'_>, kind: Kind) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let fact = ctx.fact(0)?.clone();
    let default_axis = if ctx.opset >= 13 { -1 } else { 1 };
    let r = fact.rank();
    let axis = ctx.node.attr_int("axis", default_axis)?;
    // The 2-D coercion accepts axis == rank (a single column per row).
    let axis = if ctx.opset < 13 && axis == r as i64 {
        r
    } else {
        norm_axis(ctx, axis, r)?
    };
    let outer = numel(ctx, &fact.shape[..axis])?;
    let (n, inner) = if ctx.opset < 13 {
        (numel(ctx, &fact.shape[axis..])?, 1)
    } else {
        (fact.shape[axis], numel(ctx, &fact.shape[axis + 1..])?)
    };
    Ok(Built::Kernel {
        outputs: vec![fact],
        kernel: Box::new(SoftmaxKernel {
            kind,
            outer,
            n,
            inner,
        }),
    })
}

#[cfg(test)]
#[path = "softmax_tests.rs"]
mod tests;
