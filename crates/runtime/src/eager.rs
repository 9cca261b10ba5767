//! Evaluating one node on host tensors, allocating its outputs: how compile
//! folds constants, and how op tests exercise a kernel directly.

use smallvec::SmallVec;
use whittle_ir::{DType, Node, Tensor};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::{Fact, Kernel, OpError, Parallel, Registry, View, ViewMut};

/// Why a node could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No builder for the op.
    #[error("unsupported op '{op}' (node '{node}')")]
    Unsupported {
        /// Name of the node.
        node: String,
        /// Its op type, for which the registry has no builder.
        op: String,
    },
    /// The builder rejected the node.
    #[error(transparent)]
    Build(#[from] OpError),
    /// The kernel failed on this data.
    #[error("node '{node}': {err}")]
    Run {
        /// Name of the node.
        node: String,
        /// What the kernel reported.
        err: crate::RunError,
    },
}

/// Builds `node` with every input known (`None` for omitted optional inputs),
/// runs it, and returns its outputs.
pub fn eval_node(
    registry: &Registry,
    node: &Node,
    inputs: &[Option<Tensor>],
    opset: i64,
) -> Result<Vec<Tensor>, EvalError> {
    let build =
        registry
            .get(&node.domain, &node.op_type)
            .ok_or_else(|| EvalError::Unsupported {
                node: node.name.clone(),
                op: node.op_type.clone(),
            })?;
    let ctx = BuildCtx {
        node,
        inputs: inputs
            .iter()
            .map(|t| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: Some(t),
                })
            })
            .collect(),
        opset,
    };
    match build(&ctx)? {
        Built::Constant(values) => Ok(values),
        Built::Kernel { outputs, kernel } => {
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
            run_kernel(kernel.as_ref(), &refs, &outputs).map_err(|e| match e {
                EvalError::Run { err, .. } => EvalError::Run {
                    node: node.name.clone(),
                    err,
                },
                other => other,
            })
        }
    }
}

/// Runs a built kernel on host tensors, allocating outputs of the given facts.
pub(crate) fn run_kernel(
    kernel: &dyn Kernel,
    inputs: &[Option<&Tensor>],
    facts: &[Fact],
) -> Result<Vec<Tensor>, EvalError> {
    let mut outs: Vec<Tensor> = facts
        .iter()
        .map(|f| Tensor::zeros(f.dtype, f.shape.clone()))
        .collect::<Result<_, _>>()
        .map_err(OpError::from)?;
    let views: SmallVec<[View<'_>; 8]> = inputs
        .iter()
        .map(|t| match t {
            Some(t) => View::of(t),
            None => View::new(DType::F32, crate::view::empty()),
        })
        .collect();
    let mut out_views: SmallVec<[ViewMut<'_>; 4]> = outs.iter_mut().map(ViewMut::of).collect();
    // u64 words keep the scratch 8-byte aligned, enough for every element type.
    // At least one word so the (possibly empty) scratch slice is aligned.
    let mut scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8).max(1)];
    let par = Parallel::single();
    let mut run_ctx = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    kernel
        .run(&views, &mut out_views, &mut run_ctx)
        .map_err(|err| EvalError::Run {
            node: String::new(),
            err,
        })?;
    drop(out_views);
    Ok(outs)
}
