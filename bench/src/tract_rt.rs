//! tract under test: the usual optimise-then-run path.
//!
//! Threading: tract runs nodes one after another and only its matrix
//! products (and, in recent versions, some element-wise ops) hand work to an
//! executor. With one thread the plan keeps tract's default single-thread
//! executor (a one-thread rayon pool would be a different code path); with
//! more, the plan gets its own `Executor::multithread(n)` pool (feature
//! `multithread-mm` of tract-linalg).

use std::path::Path;

use tract_linalg::multithread::Executor;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::runtime::RunOptions;

use crate::npy::Array;
use crate::Runner;

/// Version pinned in Cargo.toml (tract exposes no version constant).
pub const VERSION: &str = "0.23.9";

/// An optimised tract plan, one reusable state and the input.
pub struct TractRunner {
    state: TypedSimpleState,
    input: TValue,
}

impl TractRunner {
    /// Loads and optimises `model` for the input's shape, running on
    /// `threads` threads. Errors are returned as text for the table.
    pub fn new(model: &Path, input: &Array, threads: usize) -> Result<TractRunner, String> {
        Self::build(model, input, threads).map_err(|e| format!("{e:#}"))
    }

    fn build(model: &Path, input: &Array, threads: usize) -> TractResult<TractRunner> {
        let fact = f32::fact(input.shape.clone());
        let optimised = onnx()
            .model_for_path(model)?
            .with_input_fact(0, fact.into())?
            .into_optimized()?;
        let options = RunOptions {
            executor: (threads > 1).then(|| Executor::multithread(threads)),
            ..RunOptions::default()
        };
        let plan = optimised.into_runnable_with_options(&options)?;
        // A reused state keeps tract's buffers warm across runs, as a
        // serving loop would.
        let state = TypedSimpleState::new(&plan)?;
        let input = Tensor::from_shape(&input.shape, &input.data)?.into_tvalue();
        Ok(TractRunner { state, input })
    }
}

impl Runner for TractRunner {
    fn run_once(&mut self) -> Result<(), String> {
        self.state
            .run(tvec![self.input.clone()])
            .map(drop)
            .map_err(|e| format!("{e:#}"))
    }

    fn output(&mut self) -> Result<Vec<f32>, String> {
        let outputs = self
            .state
            .run(tvec![self.input.clone()])
            .map_err(|e| format!("{e:#}"))?;
        let first = outputs.first().ok_or("tract returned no outputs")?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| format!("{e:#}"))?;
        Ok(view.iter().copied().collect())
    }
}
