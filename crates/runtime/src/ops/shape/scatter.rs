//! ScatterND, ScatterElements and its deprecated alias Scatter (opset 9):
//! the output is `data` with the `updates` written (or combined, with
//! `reduction` add/mul/max/min) at run-time indices, each checked against
//! its axis. Updates apply in order, so with `reduction="none"` the last
//! duplicate wins, as in onnxruntime. The output may share `data`'s
//! buffer; plain writes work on raw bytes for every dtype.

use bytemuck::Pod;
use whittle_ir::DType;

use crate::ops::common::elem::{with_type, Num, NUMERIC};
use crate::ops::common::shape_util::{check_rank, norm_axis, strides, MAX_RANK};
use crate::ops::shape::gather_nd::NdIndexing;
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers the scatter ops.
pub fn register(r: &mut Registry) {
    r.add("ScatterND", scatter_nd);
    r.add("ScatterElements", scatter_elements);
    r.add("Scatter", scatter_elements);
}

/// How an update combines with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

impl Reduction {
    fn parse(ctx: &BuildCtx<'_>, dtype: DType) -> Result<Reduction, OpError> {
        let r = match ctx.node.attr_string("reduction", "none")?.as_str() {
            "none" => Reduction::None,
            "add" => Reduction::Add,
            "mul" => Reduction::Mul,
            "max" => Reduction::Max,
            "min" => Reduction::Min,
            other => {
                return Err(ctx.err(format!(
                    "reduction '{other}' is not one of none, add, mul, max, min"
                )))
            }
        };
        if r != Reduction::None && !NUMERIC.contains(&dtype) {
            return Err(ctx.err(format!("reduction on dtype {dtype} is not supported")));
        }
        Ok(r)
    }

    fn name(self) -> &'static str {
        match self {
            Reduction::None => "",
            Reduction::Add => ".add",
            Reduction::Mul => ".mul",
            Reduction::Max => ".max",
            Reduction::Min => ".min",
        }
    }
}

/// Where each update element goes: the part that differs between the ops.
trait Targets: Send + Sync {
    /// Calls `put(dst, src)` for every update element, in order: `dst` is
    /// an element offset in the output, `src` one in `updates`.
    fn each(
        &self,
        idx: &View<'_>,
        put: &mut dyn FnMut(usize, usize, usize),
    ) -> Result<(), RunError>;
}

/// ScatterND: each index tuple selects a slice of `slice` elements.
struct NdTargets(NdIndexing);

impl Targets for NdTargets {
    fn each(
        &self,
        idx: &View<'_>,
        put: &mut dyn FnMut(usize, usize, usize),
    ) -> Result<(), RunError> {
        let p = &self.0;
        for t in 0..p.tuples {
            put(p.offset(idx, 0, t)?, t * p.slice, p.slice);
        }
        Ok(())
    }
}

/// ScatterElements: one index per update element, replacing its
/// coordinate along `axis`.
struct ElemTargets {
    /// Shape of indices and updates.
    shape: Vec<usize>,
    data_strides: Vec<usize>,
    axis: usize,
    axis_len: usize,
}

impl Targets for ElemTargets {
    fn each(
        &self,
        idx: &View<'_>,
        put: &mut dyn FnMut(usize, usize, usize),
    ) -> Result<(), RunError> {
        let total: usize = self.shape.iter().product();
        let r = self.shape.len();
        let mut pos = [0usize; MAX_RANK];
        let mut base = 0usize;
        for j in 0..total {
            let raw = match idx.dtype() {
                DType::I32 => idx.i32().get(j).map(|&v| i64::from(v)),
                _ => idx.i64().get(j).copied(),
            }
            .ok_or(RunError::Unsupported("indices shorter than compiled"))?;
            let size = self.axis_len;
            let v = if raw < 0 { raw + size as i64 } else { raw };
            if v < 0 || v >= size as i64 {
                return Err(RunError::IndexOutOfRange { index: raw, size });
            }
            put(base + v as usize * self.data_strides[self.axis], j, 1);
            // Odometer over the update shape; the axis adds nothing to base.
            for d in (0..r).rev() {
                pos[d] += 1;
                if d != self.axis {
                    base += self.data_strides[d];
                }
                if pos[d] < self.shape[d] {
                    break;
                }
                if d != self.axis {
                    base -= self.data_strides[d] * self.shape[d];
                }
                pos[d] = 0;
            }
        }
        Ok(())
    }
}

struct Scatter<P> {
    op: &'static str,
    dtype: DType,
    data_len: usize,
    updates_len: usize,
    reduction: Reduction,
    targets: P,
}

impl<P: Targets> Scatter<P> {
    fn apply<T: Pod>(
        &self,
        idx: &View<'_>,
        upd: &[u8],
        out: &mut [u8],
        f: impl Fn(T, T) -> T,
    ) -> Result<(), RunError> {
        let upd: &[T] = bytemuck::try_cast_slice(upd)
            .map_err(|_| RunError::Unsupported("misaligned updates"))?;
        let out: &mut [T] = bytemuck::try_cast_slice_mut(out)
            .map_err(|_| RunError::Unsupported("misaligned output"))?;
        if upd.len() != self.updates_len || out.len() != self.data_len {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        self.targets.each(idx, &mut |dst, src, n| {
            for (o, &u) in out[dst..dst + n].iter_mut().zip(&upd[src..src + n]) {
                *o = f(*o, u);
            }
        })
    }
}

impl<P: Targets> Kernel for Scatter<P> {
    fn name(&self) -> String {
        format!("{}{}", self.op, self.reduction.name())
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let out = outputs[0].bytes();
        if !inputs[0].is_aliased() {
            let data = inputs[0].bytes();
            if data.len() != out.len() {
                return Err(RunError::Unsupported(
                    "buffer size differs from the compiled shape",
                ));
            }
            out.copy_from_slice(data);
        }
        let (idx, upd) = (&inputs[1], inputs[2].bytes());
        macro_rules! reduce {
            ($f:expr) => {
                with_type!(self.dtype, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64],
                    T => self.apply::<T>(idx, upd, out, $f),
                    _ => Err(RunError::Unsupported("scatter reduction dtype")))
            };
        }
        match self.reduction {
            Reduction::None => match self.dtype.size() {
                1 => self.apply::<u8>(idx, upd, out, |_, u| u),
                2 => self.apply::<u16>(idx, upd, out, |_, u| u),
                4 => self.apply::<u32>(idx, upd, out, |_, u| u),
                _ => self.apply::<u64>(idx, upd, out, |_, u| u),
            },
            Reduction::Add => reduce!(|a: T, b: T| a.add(b)),
            Reduction::Mul => reduce!(|a: T, b: T| a.mul(b)),
            Reduction::Max => reduce!(|a: T, b: T| a.max_nan(b)),
            Reduction::Min => reduce!(|a: T, b: T| a.min_nan(b)),
        }
    }
}

/// Checks the index and update inputs shared by both ops.
fn check_inputs(ctx: &BuildCtx<'_>) -> Result<DType, OpError> {
    let dtype = ctx.fact(0)?.dtype;
    ctx.expect_dtype(1, &[DType::I64, DType::I32])?;
    let upd = ctx.fact(2)?.dtype;
    if upd != dtype {
        return Err(ctx.err(format!("updates have dtype {upd}, data has {dtype}")));
    }
    Ok(dtype)
}

fn scatter_nd(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = check_inputs(ctx)?;
    let (data, idx, upd) = (ctx.fact(0)?, ctx.fact(1)?, ctx.fact(2)?);
    let plan = NdIndexing::new(ctx, &data.shape, &idx.shape, 0)?;
    let mut want = idx.shape[..idx.rank() - 1].to_vec();
    want.extend(&data.shape[plan.depth..]);
    if upd.shape != want {
        return Err(ctx.err(format!(
            "updates shape {:?} must be {want:?} (indices {:?}, data {:?})",
            upd.shape, idx.shape, data.shape
        )));
    }
    Ok(Built::Kernel {
        outputs: vec![data.clone()],
        kernel: Box::new(Scatter {
            op: "scatter_nd",
            dtype,
            data_len: data.numel(),
            updates_len: upd.numel(),
            reduction: Reduction::parse(ctx, dtype)?,
            targets: NdTargets(plan),
        }),
    })
}

fn scatter_elements(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = check_inputs(ctx)?;
    let (data, idx, upd) = (ctx.fact(0)?, ctx.fact(1)?, ctx.fact(2)?);
    let r = data.rank();
    check_rank(ctx, r)?;
    if r == 0 {
        return Err(ctx.err("data must have rank 1 or more"));
    }
    let axis = norm_axis(ctx, ctx.node.attr_int("axis", 0)?, r)?;
    if upd.shape != idx.shape {
        return Err(ctx.err(format!(
            "updates shape {:?} differs from indices shape {:?}",
            upd.shape, idx.shape
        )));
    }
    let fits = idx.rank() == r && (0..r).all(|k| k == axis || idx.shape[k] <= data.shape[k]);
    if !fits {
        return Err(ctx.err(format!(
            "indices shape {:?} does not fit data shape {:?} outside axis {axis}",
            idx.shape, data.shape
        )));
    }
    Ok(Built::Kernel {
        outputs: vec![data.clone()],
        kernel: Box::new(Scatter {
            op: "scatter_elements",
            dtype,
            data_len: data.numel(),
            updates_len: upd.numel(),
            reduction: Reduction::parse(ctx, dtype)?,
            targets: ElemTargets {
                shape: idx.shape.clone(),
                data_strides: strides(&data.shape),
                axis,
                axis_len: data.shape[axis],
            },
        }),
    })
}

#[cfg(test)]
#[path = "scatter_tests.rs"]
mod tests;
