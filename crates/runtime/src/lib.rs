//! The whittle runtime: compiles a [`Graph`](whittle_ir::Graph) into a
//! [`Plan`] (static shapes, a schedule, one memory arena, a kernel per node)
//! and executes it without allocating.

mod eager;
mod error;
mod fact;
pub mod op;
pub mod ops;
mod parallel;
mod registry;
mod view;

pub use eager::{eval_node, EvalError};
pub use error::{OpError, RunError};
pub use fact::Fact;
pub use op::{BuildCtx, Built, InputFact, Kernel, RunCtx};
pub use parallel::Parallel;
pub use registry::Registry;
pub use view::{View, ViewMut};
