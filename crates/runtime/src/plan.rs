//! The compiled, memory-planned form of a model and its executor.

use std::time::{Duration, Instant};

use smallvec::SmallVec;
use whittle_ir::{DType, Tensor};

use crate::op::RunCtx;
use crate::{Fact, Kernel, Parallel, RunError, View, ViewMut};

/// A byte range of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Region {
    pub offset: usize,
    pub len: usize,
}

/// Output region index of a tensor with no elements.
pub(crate) const EMPTY_REGION: usize = usize::MAX;

/// Where a kernel input comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InputSlot {
    /// `regions[i]` of the step.
    Region(usize),
    /// A constant of the plan.
    Const(usize),
    /// Shares output 0's buffer (in-place).
    Aliased,
    /// An omitted optional input.
    Empty,
}

/// One scheduled kernel call with its arena regions resolved.
pub(crate) struct PlanStep {
    pub name: String,
    pub kernel: Box<dyn Kernel>,
    /// Distinct arena regions the step touches, sorted by offset, disjoint.
    pub regions: SmallVec<[Region; 8]>,
    pub inputs: SmallVec<[(InputSlot, DType); 4]>,
    /// Region index and dtype of each output.
    pub outputs: SmallVec<[(usize, DType); 2]>,
    /// Region index of the scratch workspace, if any.
    pub scratch: Option<usize>,
}

/// Where a graph output lives after a run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum OutputSource {
    Arena(Region),
    Const(usize),
}

/// Name and type of a graph input or output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoInfo {
    /// Value name.
    pub name: String,
    /// Static type.
    pub fact: Fact,
}

/// Memory figures of a plan, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Size of the one arena holding every run-time tensor and workspace.
    pub arena: usize,
    /// Peak of simultaneously live bytes for the chosen schedule: no
    /// placement can do better.
    pub lower_bound: usize,
    /// Sum of all intermediates and workspaces, as if nothing were reused.
    pub naive: usize,
    /// Constant tensors the steps read (the model's weights as stored).
    pub weights: usize,
    /// Extra bytes kernels hold in their own layouts (pre-packed weights).
    pub packed_weights: usize,
}

/// What an arena buffer of [`Plan::liveness`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveKind {
    /// A graph input, set before each run.
    Input,
    /// Persistent state (see [`Plan::state`]), live for every run.
    State,
    /// A value computed by a step.
    Value,
    /// A kernel's workspace, live during its step only.
    Scratch,
}

/// One run-time value (or workspace) of the planned arena. Times count
/// steps in execution order: step `p` (0-based) runs at time `p + 1`,
/// graph inputs and state exist from time 0, and `end` is the last time
/// the bytes are needed (inclusive). Values merged in place share bytes at
/// the one time where the first ends and the second starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveValue {
    /// Value name (workspaces: the step name and " (workspace)").
    pub name: String,
    /// Bytes of the value.
    pub bytes: usize,
    /// Offset in the arena.
    pub offset: usize,
    /// First time the bytes are in use.
    pub start: usize,
    /// Last time the bytes are in use.
    pub end: usize,
    /// What the bytes hold.
    pub kind: LiveKind,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// Wrong number of inputs.
    #[error("expected {expected} inputs, got {got}")]
    InputCount {
        /// Number of graph inputs the plan was compiled with.
        expected: usize,
        /// Number of tensors passed to the run.
        got: usize,
    },
    /// An input of the wrong type or shape.
    #[error("input '{name}': expected {expected_dtype} {expected:?}, got {got_dtype} {got:?}")]
    InputMismatch {
        /// Name of the graph input.
        name: String,
        /// Element type the plan was compiled for.
        expected_dtype: DType,
        /// Static shape the plan was compiled for (plans have no dynamic
        /// dims: recompile to change it).
        expected: Vec<usize>,
        /// Element type of the tensor passed.
        got_dtype: DType,
        /// Shape of the tensor passed.
        got: Vec<usize>,
    },
    /// A kernel failed on this data.
    #[error("node '{node}': {err}")]
    Kernel {
        /// Name of the node whose kernel failed.
        node: String,
        /// What the kernel reported.
        err: RunError,
    },
    /// No state tensor of that name.
    #[error("the plan has no state tensor '{0}'")]
    NoState(String),
    /// The plan violates its own invariants (a bug in whittle).
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// A compiled model: schedule, arena, kernels. Running it allocates nothing.
pub struct Plan {
    pub(crate) steps: Vec<PlanStep>,
    pub(crate) arena: Vec<ArenaBlock>,
    pub(crate) consts: Vec<Tensor>,
    pub(crate) inputs: Vec<(IoInfo, Region)>,
    pub(crate) outputs: Vec<(IoInfo, OutputSource)>,
    /// Persistent state: regions kept across runs, updated in place.
    pub(crate) states: Vec<(IoInfo, Region)>,
    pub(crate) liveness: Vec<LiveValue>,
    pub(crate) par: Parallel,
    pub(crate) memory: MemoryStats,
    pub(crate) report: crate::report::PlanReport,
}

/// 64-byte aligned storage unit of the arena.
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C, align(64))]
pub(crate) struct ArenaBlock([u8; 64]);

impl ArenaBlock {
    pub(crate) const ZERO: ArenaBlock = ArenaBlock([0; 64]);
}

impl Plan {
    /// Graph inputs in declaration order.
    pub fn inputs(&self) -> impl ExactSizeIterator<Item = &IoInfo> {
        self.inputs.iter().map(|(i, _)| i)
    }

    /// Graph outputs in declaration order.
    pub fn outputs(&self) -> impl ExactSizeIterator<Item = &IoInfo> {
        self.outputs.iter().map(|(i, _)| i)
    }

    /// Memory figures.
    pub fn memory(&self) -> MemoryStats {
        self.memory
    }

    /// Every arena value and workspace with its lifetime, for memory
    /// reports that split the arena by role.
    pub fn liveness(&self) -> &[LiveValue] {
        &self.liveness
    }

    /// Persistent state tensors (see
    /// [`compile_with_state`](crate::compile::compile_with_state)), by
    /// their input names.
    pub fn states(&self) -> impl ExactSizeIterator<Item = &IoInfo> {
        self.states.iter().map(|(i, _)| i)
    }

    /// The current value of state tensor `name`: its initial value before
    /// the first run, the updated one after each run.
    pub fn state(&self, name: &str) -> Option<View<'_>> {
        let (info, r) = self.states.iter().find(|(i, _)| i.name == name)?;
        let bytes: &[u8] = bytemuck::cast_slice(&self.arena);
        Some(View::new(
            info.fact.dtype,
            &bytes[r.offset..r.offset + r.len],
        ))
    }

    /// Sets state tensor `name` (e.g. the initial weights, or a checkpoint).
    /// It keeps this value until a run updates it.
    pub fn set_state(&mut self, name: &str, t: &Tensor) -> Result<(), ExecError> {
        let Some((info, r)) = self.states.iter().find(|(i, _)| i.name == name) else {
            return Err(ExecError::NoState(name.to_string()));
        };
        if info.fact.dtype != t.dtype() || info.fact.shape != t.shape() {
            return Err(ExecError::InputMismatch {
                name: info.name.clone(),
                expected_dtype: info.fact.dtype,
                expected: info.fact.shape.clone(),
                got_dtype: t.dtype(),
                got: t.shape().to_vec(),
            });
        }
        let r = *r;
        self.arena_bytes()[r.offset..r.offset + r.len].copy_from_slice(t.as_bytes());
        Ok(())
    }

    /// Per-node report (op, kernel, shapes, params, MACs) and totals.
    pub fn report(&self) -> &crate::report::PlanReport {
        &self.report
    }

    /// Threads kernels may use.
    pub fn threads(&self) -> usize {
        self.par.threads()
    }

    fn arena_bytes(&mut self) -> &mut [u8] {
        bytemuck::cast_slice_mut(&mut self.arena)
    }

    /// Copies input `i` into the arena (no allocation).
    pub fn set_input(
        &mut self,
        i: usize,
        dtype: DType,
        shape: &[usize],
        bytes: &[u8],
    ) -> Result<(), ExecError> {
        let (info, region) = self.inputs.get(i).ok_or(ExecError::InputCount {
            expected: self.inputs.len(),
            got: i + 1,
        })?;
        if info.fact.dtype != dtype || info.fact.shape != shape || bytes.len() != region.len {
            return Err(ExecError::InputMismatch {
                name: info.name.clone(),
                expected_dtype: info.fact.dtype,
                expected: info.fact.shape.clone(),
                got_dtype: dtype,
                got: shape.to_vec(),
            });
        }
        let region = *region;
        self.arena_bytes()[region.offset..region.offset + region.len].copy_from_slice(bytes);
        Ok(())
    }

    /// Copies a host tensor into input `i`.
    pub fn set_input_tensor(&mut self, i: usize, t: &Tensor) -> Result<(), ExecError> {
        self.set_input(i, t.dtype(), t.shape(), t.as_bytes())
    }

    /// Runs every step on the inputs already set. Allocates nothing.
    pub fn execute(&mut self) -> Result<(), ExecError> {
        self.execute_inner(None)
    }

    /// Like [`Plan::execute`], recording each step's wall time in `times`
    /// (which must have one entry per step: see [`Plan::num_steps`]).
    pub fn execute_profiled(&mut self, times: &mut [Duration]) -> Result<(), ExecError> {
        if times.len() != self.steps.len() {
            return Err(ExecError::Internal("profile buffer has the wrong length"));
        }
        self.execute_inner(Some(times))
    }

    /// Number of scheduled steps.
    pub fn num_steps(&self) -> usize {
        self.steps.len()
    }

    fn execute_inner(&mut self, mut times: Option<&mut [Duration]>) -> Result<(), ExecError> {
        let arena: &mut [u8] = bytemuck::cast_slice_mut(&mut self.arena);
        let (steps, consts, par) = (&self.steps, &self.consts, &self.par);
        par.install(|| {
            for (si, step) in steps.iter().enumerate() {
                let t0 = times.as_ref().map(|_| Instant::now());
                run_step(step, arena, consts, par)?;
                if let (Some(times), Some(t0)) = (times.as_deref_mut(), t0) {
                    times[si] = t0.elapsed();
                }
            }
            Ok(())
        })
    }

    /// A view of output `i` after [`Plan::execute`].
    pub fn output(&self, i: usize) -> Option<View<'_>> {
        let (info, src) = self.outputs.get(i)?;
        Some(match *src {
            OutputSource::Arena(r) => {
                let bytes: &[u8] = bytemuck::cast_slice(&self.arena);
                View::new(info.fact.dtype, &bytes[r.offset..r.offset + r.len])
            }
            OutputSource::Const(c) => View::of(&self.consts[c]),
        })
    }

    /// Convenience: sets every input, runs, and copies the outputs out.
    pub fn run(&mut self, inputs: &[Tensor]) -> Result<Vec<Tensor>, ExecError> {
        if inputs.len() != self.inputs.len() {
            return Err(ExecError::InputCount {
                expected: self.inputs.len(),
                got: inputs.len(),
            });
        }
        for (i, t) in inputs.iter().enumerate() {
            self.set_input_tensor(i, t)?;
        }
        self.execute()?;
        (0..self.outputs.len())
            .map(|i| {
                let view = self
                    .output(i)
                    .ok_or(ExecError::Internal("missing output"))?;
                let fact = &self.outputs[i].0.fact;
                let data = whittle_ir::TensorData::from_le_bytes(fact.dtype, view.bytes())
                    .map_err(|_| ExecError::Internal("output size"))?;
                Tensor::new(fact.shape.clone(), data)
                    .map_err(|_| ExecError::Internal("output shape"))
            })
            .collect()
    }
}

/// Splits the arena into the step's regions (sorted, disjoint) without
/// unsafe code, hands outputs and scratch out mutably and inputs shared.
fn run_step(
    step: &PlanStep,
    arena: &mut [u8],
    consts: &[Tensor],
    par: &Parallel,
) -> Result<(), ExecError> {
    let mut parts: SmallVec<[Option<&mut [u8]>; 8]> = SmallVec::new();
    // An empty slice at the 64-aligned arena base: kernels may cast an empty
    // scratch to any element type.
    let (no_scratch, arena) = arena.split_at_mut(0);
    let mut rest: &mut [u8] = arena;
    // Outputs with no elements get zero-length slices at the aligned base too.
    let mut empties: SmallVec<[&mut [u8]; 2]> = SmallVec::new();
    for _ in step.outputs.iter().filter(|(ri, _)| *ri == EMPTY_REGION) {
        let (e, r) = std::mem::take(&mut rest).split_at_mut(0);
        empties.push(e);
        rest = r;
    }
    let mut pos = 0;
    for r in &step.regions {
        let tail = std::mem::take(&mut rest);
        let skip = r
            .offset
            .checked_sub(pos)
            .ok_or(ExecError::Internal("regions out of order"))?;
        if skip + r.len > tail.len() {
            return Err(ExecError::Internal("region outside the arena"));
        }
        let (_, tail) = tail.split_at_mut(skip);
        let (mine, tail) = tail.split_at_mut(r.len);
        parts.push(Some(mine));
        rest = tail;
        pos = r.offset + r.len;
    }
    let mut outs: SmallVec<[ViewMut<'_>; 4]> = SmallVec::new();
    for &(ri, dt) in &step.outputs {
        if ri == EMPTY_REGION {
            let e = empties
                .pop()
                .ok_or(ExecError::Internal("empty outputs miscounted"))?;
            outs.push(ViewMut::new(dt, e));
            continue;
        }
        let bytes = parts
            .get_mut(ri)
            .and_then(Option::take)
            .ok_or(ExecError::Internal("output region reused"))?;
        outs.push(ViewMut::new(dt, bytes));
    }
    let scratch: &mut [u8] = match step.scratch {
        Some(ri) => parts
            .get_mut(ri)
            .and_then(Option::take)
            .ok_or(ExecError::Internal("scratch region reused"))?,
        None => no_scratch,
    };
    let shared: SmallVec<[&[u8]; 8]> = parts
        .into_iter()
        .map(|p| p.map_or(crate::view::empty(), |m| &*m))
        .collect();
    let mut ins: SmallVec<[View<'_>; 8]> = SmallVec::new();
    for &(slot, dt) in &step.inputs {
        ins.push(match slot {
            InputSlot::Region(ri) => View::new(
                dt,
                shared
                    .get(ri)
                    .copied()
                    .ok_or(ExecError::Internal("input region"))?,
            ),
            InputSlot::Const(c) => {
                View::of(consts.get(c).ok_or(ExecError::Internal("constant index"))?)
            }
            InputSlot::Aliased => View::aliased(dt),
            InputSlot::Empty => View::new(dt, crate::view::empty()),
        });
    }
    let mut ctx = RunCtx { scratch, par };
    step.kernel
        .run(&ins, &mut outs, &mut ctx)
        .map_err(|err| ExecError::Kernel {
            node: step.name.clone(),
            err,
        })
}
