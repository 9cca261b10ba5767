//! whittle: import an ONNX model, compile it into a memory-planned plan, and
//! run it, from Rust, in a few lines.
//!
//! ```no_run
//! use whittle::{CompileOptions, Tensor};
//!
//! # fn main() -> Result<(), whittle::Error> {
//! let model = whittle::load("model.onnx")?;
//! let mut plan = model.compile(&CompileOptions::default())?;
//! let x = Tensor::from_f32(vec![1, 3, 224, 224], vec![0.5; 3 * 224 * 224])?;
//! let outputs = plan.run(&[x])?;
//! println!("{:?} -> arena {} bytes", outputs[0].shape(), plan.memory().arena);
//! # Ok(())
//! # }
//! ```
//!
//! The pieces are separate crates, re-exported here: [`ir`] (the graph),
//! [`onnx`] (import/export), [`runtime`] (compile and execute), [`data`]
//! (array files, datasets), and [`eval`] (a classifier's accuracy on a
//! labelled dataset).

use std::path::Path;

pub mod eval;

pub use whittle_data as data;
pub use whittle_ir as ir;
pub use whittle_onnx as onnx;
pub use whittle_runtime as runtime;

pub use whittle_ir::{DType, Graph, Tensor};
pub use whittle_runtime::{CompileOptions, Plan};

/// Any error from loading, compiling or running a model.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The model file could not be imported.
    #[error(transparent)]
    Import(#[from] whittle_onnx::OnnxError),
    /// The graph could not be compiled.
    #[error(transparent)]
    Compile(#[from] whittle_runtime::CompileError),
    /// A run failed.
    #[error(transparent)]
    Exec(#[from] whittle_runtime::ExecError),
    /// Tensor construction failed.
    #[error(transparent)]
    Ir(#[from] whittle_ir::IrError),
    /// A data file could not be read or written.
    #[error(transparent)]
    Data(#[from] whittle_data::DataError),
}

/// An imported model.
#[derive(Clone, Debug)]
pub struct Model {
    graph: Graph,
}

/// Imports an ONNX model (external data files are read from beside it).
pub fn load(path: impl AsRef<Path>) -> Result<Model, Error> {
    Ok(Model {
        graph: whittle_onnx::load_model(path.as_ref())?,
    })
}

impl Model {
    /// Wraps an existing graph.
    pub fn from_graph(graph: Graph) -> Model {
        Model { graph }
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Compiles into a runnable plan.
    pub fn compile(&self, opts: &CompileOptions) -> Result<Plan, Error> {
        Ok(whittle_runtime::compile(&self.graph, opts)?)
    }

    /// Writes the model as ONNX (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        Ok(whittle_onnx::save_model(&self.graph, path.as_ref())?)
    }
}
