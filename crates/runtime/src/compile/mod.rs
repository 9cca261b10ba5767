//! Graph → [`Plan`]: simplify, resolve shapes, fold constants, build kernels,
//! schedule, and place every run-time tensor in one arena.
//!
//! [`compile_with_state`] is the pipeline, one phase per file:
//!
//! 1. `prepare.rs`: freeze constant inputs, declare state, sort, check
//!    every op is supported, run the simplification passes;
//! 2. `analyze.rs`: resolve input shapes, build every live node's kernel
//!    and fold constants (public as [`infer_facts`], over every node);
//! 3. `number.rs`: give every run-time value an id;
//! 4. `choose.rs`: pick, among candidate schedules, the one whose arena is
//!    smallest;
//! 5. `place.rs`: lay out one schedule's buffers in the arena (lifetimes,
//!    in-place reuse, offsets), run by `choose.rs` for every candidate;
//! 6. `assemble.rs`: build the [`Plan`] from the chosen layout.
//!
//! `schedule.rs`, [`memory`] and `state.rs` hold the algorithms the phases
//! use: candidate orders, arena placement, state update constraints.

mod analyze;
mod assemble;
mod choose;
mod error;
mod facts;
pub mod memory;
mod number;
mod options;
mod place;
mod prepare;
mod schedule;
mod state;

use whittle_ir::Graph;

use crate::{Parallel, Plan, Registry};
pub use error::CompileError;
pub use facts::{infer_facts, Facts, Known};
pub use options::CompileOptions;
pub use state::StatePair;

/// Largest element count of any tensor compile will plan (2^31).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// Largest byte size of any tensor compile will plan or fold (2 GiB): a
/// hostile model cannot make compile allocate more than this per tensor.
pub const MAX_TENSOR_BYTES: usize = 1 << 31;

/// Largest arena compile will allocate (4 GiB), activations and kernel
/// workspaces together.
pub const MAX_ARENA_BYTES: usize = 1 << 32;

/// Compiles `graph` into a runnable [`Plan`].
pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<Plan, CompileError> {
    compile_with(graph, opts, &Registry::standard())
}

/// [`compile`] with a custom op registry.
pub fn compile_with(
    graph: &Graph,
    opts: &CompileOptions,
    registry: &Registry,
) -> Result<Plan, CompileError> {
    compile_with_state(graph, opts, registry, &[])
}

/// [`compile_with`] for a graph with persistent state (a training graph):
/// each [`StatePair`]'s input and output share one arena region that lives
/// across runs. The step writing a state output runs after every other
/// reader of the state input and updates it in place; state inputs are not
/// among [`Plan::inputs`] but are read and written with [`Plan::state`] and
/// [`Plan::set_state`]. State outputs the graph does not list as outputs
/// are added after its own outputs.
pub fn compile_with_state(
    graph: &Graph,
    opts: &CompileOptions,
    registry: &Registry,
    state: &[StatePair],
) -> Result<Plan, CompileError> {
    let (graph, passes) = prepare::prepare(graph, opts, registry, state)?;
    let inputs = analyze::resolve_inputs(&graph, &opts.runtime_input_shapes())?;
    let live = analyze::live_nodes(&graph);
    let analysis = analyze::analyze(&graph, registry, inputs, live)?;
    let par = Parallel::new(opts.threads).map_err(|msg| CompileError::Threads {
        threads: opts.threads,
        msg,
    })?;
    let numbered = number::number_values(&graph, &analysis, state)?;
    let (schedule, layout) = choose::choose_schedule(&graph, &numbered, &analysis)?;
    let mut plan = assemble::assemble(&graph, analysis, &numbered, schedule, &layout, par)?;
    plan.report.passes = passes;
    Ok(plan)
}
