//! The whittle runtime: compiles a [`Graph`](whittle_ir::Graph) into a
//! [`Plan`] (static shapes, a schedule, one memory arena, a kernel per node)
//! and executes it without allocating.

pub mod compile;
mod eager;
mod error;
mod fact;
pub mod op;
pub mod ops;
mod parallel;
mod plan;
mod registry;
pub mod report;
mod view;

pub use compile::{compile, compile_with, CompileError, CompileOptions};
pub use compile::{compile_with_state, StatePair};
pub use compile::{infer_facts, Facts, Known};
pub use eager::{eval_node, EvalError};
pub use error::{OpError, RunError};
pub use fact::Fact;
pub use op::{BuildCtx, Built, InputFact, Kernel, RunCtx};
pub use parallel::Parallel;
pub use plan::{ExecError, IoInfo, MemoryStats, Plan};
pub use plan::{LiveKind, LiveValue};
pub use registry::Registry;
pub use view::{View, ViewMut};
