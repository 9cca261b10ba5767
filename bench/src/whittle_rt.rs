//! whittle under test: import, compile for a thread count, run.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use whittle_ir::Tensor;
use whittle_runtime::{compile, CompileOptions, Plan};

use crate::npy::Array;
use crate::Runner;

/// Memory figures of a compiled plan, in bytes.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// Planned arena.
    pub arena: usize,
    /// Liveness lower bound for the chosen schedule.
    pub lower_bound: usize,
    /// Sum of every intermediate, as if nothing were reused.
    pub naive: usize,
    /// Constant weights as stored.
    pub weights: usize,
    /// Extra bytes of pre-packed weights held by kernels.
    pub packed_weights: usize,
}

/// A compiled whittle plan with its input already converted.
pub struct WhittleRunner {
    plan: Plan,
    input: Tensor,
}

impl WhittleRunner {
    /// Imports `model` and compiles it for `threads` threads with the input's
    /// static shape. Errors are returned as text: they go into the table.
    pub fn new(model: &Path, input: &Array, threads: usize) -> Result<WhittleRunner, String> {
        let graph = whittle_onnx::load_model(model).map_err(|e| format!("import: {e}"))?;
        let first = graph
            .inputs
            .first()
            .ok_or("import: the graph has no inputs")?;
        let opts = CompileOptions {
            input_shapes: HashMap::from([(first.name.clone(), input.shape.clone())]),
            threads,
            simplify: true,
            ..CompileOptions::default()
        };
        let plan = compile(&graph, &opts).map_err(|e| format!("compile: {e}"))?;
        let input = Tensor::from_f32(input.shape.clone(), input.data.clone())
            .map_err(|e| format!("input: {e}"))?;
        Ok(WhittleRunner { plan, input })
    }

    /// The plan's memory figures.
    pub fn memory(&self) -> Memory {
        let m = self.plan.memory();
        Memory {
            arena: m.arena,
            lower_bound: m.lower_bound,
            naive: m.naive,
            weights: m.weights,
            packed_weights: m.packed_weights,
        }
    }
}

impl Runner for WhittleRunner {
    fn run_once(&mut self) -> Result<(), String> {
        // Setting the input is part of an inference, as it is for the peers.
        self.plan
            .set_input_tensor(0, &self.input)
            .map_err(|e| format!("run: {e}"))?;
        self.plan.execute().map_err(|e| format!("run: {e}"))
    }

    fn output(&mut self) -> Result<Vec<f32>, String> {
        self.run_once()?;
        let view = self.plan.output(0).ok_or("run: the plan has no outputs")?;
        if view.dtype() != whittle_ir::DType::F32 {
            return Err(format!("output 0 is {}, not f32", view.dtype()));
        }
        Ok(view.f32().to_vec())
    }
}
