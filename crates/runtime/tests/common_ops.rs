//! Tiny ops defined by the tests themselves, so planner and executor tests do
//! not depend on the real op library.

use whittle_ir::{DType, Graph, Node, ValueInfo};
use whittle_runtime::op::{BuildCtx, Built, Kernel, RunCtx};
use whittle_runtime::{Fact, OpError, Registry, RunError, View, ViewMut};

/// y = 2x, offering to run in place.
struct Double;

impl Kernel for Double {
    fn name(&self) -> String {
        "test.double".into()
    }
    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }
    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let out = outputs[0].f32();
        if inputs[0].is_aliased() {
            out.iter_mut().for_each(|x| *x *= 2.0);
        } else {
            out.iter_mut()
                .zip(inputs[0].f32())
                .for_each(|(o, x)| *o = 2.0 * x);
        }
        Ok(())
    }
}

/// y = a + b (same shapes), using scratch to prove scratch is writable.
struct AddWithScratch {
    n: usize,
}

impl Kernel for AddWithScratch {
    fn name(&self) -> String {
        "test.add".into()
    }
    fn scratch_bytes(&self) -> usize {
        self.n * 4
    }
    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let tmp: &mut [f32] = bytemuck::cast_slice_mut(&mut ctx.scratch[..self.n * 4]);
        tmp.iter_mut()
            .zip(inputs[0].f32())
            .for_each(|(t, a)| *t = *a);
        let out = outputs[0].f32();
        for ((o, t), b) in out.iter_mut().zip(tmp.iter()).zip(inputs[1].f32()) {
            *o = t + b;
        }
        Ok(())
    }
}

/// Concatenates two tensors along axis 0 (flat).
struct Cat;

impl Kernel for Cat {
    fn name(&self) -> String {
        "test.cat".into()
    }
    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let a = inputs[0].bytes();
        let b = inputs[1].bytes();
        let out = outputs[0].bytes();
        out[..a.len()].copy_from_slice(a);
        out[a.len()..].copy_from_slice(b);
        Ok(())
    }
}

/// Keeps the first half of a flat tensor.
struct Head;

impl Kernel for Head {
    fn name(&self) -> String {
        "test.head".into()
    }
    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let out = outputs[0].bytes();
        let n = out.len();
        out.copy_from_slice(&inputs[0].bytes()[..n]);
        Ok(())
    }
}

fn build_head(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let mut f = ctx.fact(0)?.clone();
    f.shape[0] /= 2;
    Ok(Built::Kernel {
        outputs: vec![f],
        kernel: Box::new(Head),
    })
}

fn build_double(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    Ok(Built::Kernel {
        outputs: vec![ctx.fact(0)?.clone()],
        kernel: Box::new(Double),
    })
}

fn build_add(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let f = ctx.fact(0)?.clone();
    if ctx.fact(1)? != &f {
        return Err(ctx.err("shapes differ"));
    }
    Ok(Built::Kernel {
        kernel: Box::new(AddWithScratch { n: f.numel() }),
        outputs: vec![f],
    })
}

fn build_cat(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (a, b) = (ctx.fact(0)?, ctx.fact(1)?);
    let mut shape = a.shape.clone();
    shape[0] += b.shape[0];
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, shape)],
        kernel: Box::new(Cat),
    })
}

/// A registry with `Double`, `Add`, `Cat` and `Head`.
pub fn test_registry() -> Registry {
    let mut r = Registry::empty();
    r.add("Double", build_double);
    r.add("Add", build_add);
    r.add("Cat", build_cat);
    r.add("Head", build_head);
    r
}

/// A graph over one f32 input `x` of `shape` with the given nodes and outputs.
pub fn graph(shape: &[usize], nodes: Vec<Node>, outputs: &[(&str, &[usize])]) -> Graph {
    Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, shape)],
        outputs: outputs
            .iter()
            .map(|(n, s)| ValueInfo::known(*n, DType::F32, s))
            .collect(),
        nodes,
        ..Graph::default()
    }
}
