//! What a caller can ask of [`compile`](super::compile).

use std::collections::HashMap;

use whittle_ir::Tensor;

/// Options for [`compile`](super::compile).
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Static shapes for graph inputs, overriding symbolic or unknown dims.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Threads kernels may use (1 = the calling thread only).
    pub threads: usize,
    /// Run the simplification passes (identity removal, BatchNorm folding,
    /// activation fusion) before building kernels.
    pub simplify: bool,
    /// Graph inputs frozen to a value at compile time (e.g. a shape tensor
    /// fed as an input): they become constants and fold like initializers.
    pub constant_inputs: HashMap<String, Tensor>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            input_shapes: HashMap::new(),
            threads: 1,
            simplify: true,
            constant_inputs: HashMap::new(),
        }
    }
}

impl CompileOptions {
    /// The shape overrides of the inputs that stay run-time values (frozen
    /// inputs are constants and need none).
    pub(super) fn runtime_input_shapes(&self) -> HashMap<String, Vec<usize>> {
        self.input_shapes
            .iter()
            .filter(|(k, _)| !self.constant_inputs.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}
