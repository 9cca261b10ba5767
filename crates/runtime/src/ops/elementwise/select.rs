//! Where(cond, x, y): a broadcasting select. It only moves elements, so
//! its kernel is typed by element size and serves every dtype.

use std::marker::PhantomData;

use whittle_ir::DType;

use super::binary::{out_shape, same_dtype};
use crate::op::{BuildCtx, Built, RunCtx};
use crate::ops::common::broadcast::{Plan, Src};
use crate::ops::common::elem::{check_len, input, output};
use crate::{Fact, Kernel, OpError, Registry, RunError, View, ViewMut};

/// Registers Where.
pub fn register(r: &mut Registry) {
    r.add("Where", build_where);
}

/// Where(cond, x, y), broadcasting all three. x (or y) may share the
/// output's buffer.
struct Select<T> {
    name: String,
    plan: Plan<3>,
    inplace: Option<usize>,
    _t: PhantomData<T>,
}

impl<T: bytemuck::Pod + Send + Sync> Kernel for Select<T> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn inplace_input(&self) -> Option<usize> {
        self.inplace
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let p = &self.plan;
        let c = input::<u8>(&inputs[0])?;
        check_len(c, p.input_len(0))?;
        let out = output::<T>(&mut outputs[0])?;
        check_len(out, p.numel())?;
        let (x_aliased, y_aliased) = (inputs[1].is_aliased(), inputs[2].is_aliased());
        // An aliased operand's buffer is the output; give it a dummy slice
        // that the row loop never reads.
        let x: &[T] = if x_aliased {
            &[]
        } else {
            input::<T>(&inputs[1])?
        };
        let y: &[T] = if y_aliased {
            &[]
        } else {
            input::<T>(&inputs[2])?
        };
        if !x_aliased {
            check_len(x, p.input_len(1))?;
        }
        if !y_aliased {
            check_len(y, p.input_len(2))?;
        }
        p.run(out, ctx.par, &|offs, seg| {
            let n = seg.len();
            let c = p.src(0, c, offs[0], n);
            if x_aliased {
                let y = p.src(2, y, offs[2], n);
                for (i, o) in seg.iter_mut().enumerate() {
                    if c.get(i) == 0 {
                        *o = y.get(i);
                    }
                }
            } else if y_aliased {
                let x = p.src(1, x, offs[1], n);
                for (i, o) in seg.iter_mut().enumerate() {
                    if c.get(i) != 0 {
                        *o = x.get(i);
                    }
                }
            } else {
                let (x, y) = (p.src(1, x, offs[1], n), p.src(2, y, offs[2], n));
                match (c, x, y) {
                    (Src::Slice(c), Src::Slice(x), Src::Slice(y)) => {
                        for (((o, &c), &x), &y) in seg.iter_mut().zip(c).zip(x).zip(y) {
                            *o = if c != 0 { x } else { y };
                        }
                    }
                    _ => {
                        for (i, o) in seg.iter_mut().enumerate() {
                            *o = if c.get(i) != 0 { x.get(i) } else { y.get(i) };
                        }
                    }
                }
            }
        });
        Ok(())
    }
}

fn build_where(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    if ctx.num_inputs() != 3 {
        return Err(ctx.err(format!(
            "needs exactly three inputs, got {}",
            ctx.num_inputs()
        )));
    }
    ctx.expect_dtype(0, &[DType::Bool])?;
    let dt = same_dtype(ctx, 1, &[2])?;
    let shapes = [
        ctx.fact(0)?.shape.as_slice(),
        ctx.fact(1)?.shape.as_slice(),
        ctx.fact(2)?.shape.as_slice(),
    ];
    let out = out_shape(ctx, &shapes)?;
    let plan = Plan::new(shapes, &out).map_err(|m| ctx.err(m))?;
    let inplace = if plan.is_identity(1) {
        Some(1)
    } else if plan.is_identity(2) {
        Some(2)
    } else {
        None
    };
    let name = format!("where.{dt}.{}", plan.pattern());
    let outputs = vec![Fact::new(dt, out)];
    // Where only moves elements, so it is typed by element size.
    macro_rules! select {
        ($T:ty) => {
            Ok(Built::Kernel {
                outputs,
                kernel: Box::new(Select::<$T> {
                    name,
                    plan,
                    inplace,
                    _t: PhantomData,
                }),
            })
        };
    }
    match dt.size() {
        1 => select!(u8),
        2 => select!(u16),
        4 => select!(u32),
        8 => select!(u64),
        _ => Err(ctx.err(format!("unsupported dtype {dt}"))),
    }
}
