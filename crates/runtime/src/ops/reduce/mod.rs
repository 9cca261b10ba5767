//! Reductions: Reduce*, ArgMax/ArgMin and CumSum.

use whittle_ir::DType;

use crate::ops::common::shape_util::{norm_axes, opt_const_ints};
use crate::ops::reduce::reduce_kernel::{Num, ReduceOp, ReducePlan};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

mod argmax;
mod cumsum;
mod reduce_kernel;
#[cfg(test)]
mod tests;

/// Registers the reduction ops.
pub fn register(r: &mut Registry) {
    r.add("ReduceSum", |c| build(c, ReduceOp::Sum));
    r.add("ReduceMean", |c| build(c, ReduceOp::Mean));
    r.add("ReduceMax", |c| build(c, ReduceOp::Max));
    r.add("ReduceMin", |c| build(c, ReduceOp::Min));
    r.add("ReduceProd", |c| build(c, ReduceOp::Prod));
    r.add("ReduceL1", |c| build(c, ReduceOp::L1));
    r.add("ReduceL2", |c| build(c, ReduceOp::L2));
    r.add("ReduceSumSquare", |c| build(c, ReduceOp::SumSquare));
    r.add("ReduceLogSum", |c| build(c, ReduceOp::LogSum));
    r.add("ReduceLogSumExp", |c| build(c, ReduceOp::LogSumExp));
    r.add("ArgMax", |c| argmax::build(c, false));
    r.add("ArgMin", |c| argmax::build(c, true));
    cumsum::register(r);
}

struct ReduceKernel {
    op: ReduceOp,
    plan: ReducePlan,
    dtype: DType,
}

impl ReduceKernel {
    fn run_typed<T: Num>(&self, x: &View<'_>, y: &mut ViewMut<'_>, scratch: &mut [u8]) {
        let n = self.plan.scratch_elems(self.op) * size_of::<T>();
        let scratch: &mut [T] = bytemuck::cast_slice_mut(&mut scratch[..n]);
        self.plan.run(
            self.op,
            bytemuck::cast_slice(x.bytes()),
            bytemuck::cast_slice_mut(y.bytes()),
            scratch,
        );
    }
}

impl Kernel for ReduceKernel {
    fn name(&self) -> String {
        format!("reduce.{:?}.{}", self.op, self.dtype).to_lowercase()
    }

    fn scratch_bytes(&self) -> usize {
        self.plan.scratch_elems(self.op) * self.dtype.size()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, y, s) = (&inputs[0], &mut outputs[0], &mut *ctx.scratch);
        match self.dtype {
            DType::F32 => self.run_typed::<f32>(x, y, s),
            DType::F64 => self.run_typed::<f64>(x, y, s),
            DType::I32 => self.run_typed::<i32>(x, y, s),
            _ => self.run_typed::<i64>(x, y, s),
        }
        Ok(())
    }
}

/// A Reduce* node: axes from the attribute, or from input 1 once the op's
/// opset moved them there (ReduceSum 13, the others 18).
fn build(ctx: &BuildCtx<'_>, op: ReduceOp) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let dtype = if op.float_only() {
        ctx.expect_dtype(0, &[DType::F32, DType::F64])?
    } else {
        ctx.expect_dtype(0, &[DType::F32, DType::F64, DType::I32, DType::I64])?
    };
    let axes_input = if op == ReduceOp::Sum { 13 } else { 18 };
    let keepdims = ctx.node.attr_int("keepdims", 1)? != 0;
    let axes = if ctx.opset >= axes_input {
        opt_const_ints(ctx, 1)?
    } else {
        ctx.node.attr_ints("axes")?.map(<[i64]>::to_vec)
    };
    let noop = ctx.opset >= axes_input && ctx.node.attr_int("noop_with_empty_axes", 0)? != 0;
    let r = fact.rank();
    let reduced: Vec<bool> = match axes {
        Some(a) if !a.is_empty() => {
            let a = norm_axes(ctx, &a, r)?;
            (0..r).map(|k| a.contains(&k)).collect()
        }
        // Empty axes: reduce nothing under noop_with_empty_axes, else all.
        _ => vec![!noop; r],
    };
    let shape: Vec<usize> = fact
        .shape
        .iter()
        .zip(&reduced)
        .filter_map(|(&d, &red)| match (red, keepdims) {
            (false, _) => Some(d),
            (true, true) => Some(1),
            (true, false) => None,
        })
        .collect();
    let plan = ReducePlan::new(&fact.shape, &reduced).map_err(|e| ctx.err(e))?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, shape)],
        kernel: Box::new(ReduceKernel { op, plan, dtype }),
    })
}
