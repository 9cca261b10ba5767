//! The contract between the compiler and each operator.
//!
//! For every node, compile calls the builder function registered for the
//! op in the [`Registry`](crate::Registry) with a [`BuildCtx`]: the node, and for each input its [`Fact`] (dtype and
//! static shape) plus its value when it is a compile-time constant. The
//! builder validates attributes and shapes, infers the output facts, and
//! returns a [`Kernel`] that is ready to run: attributes parsed, weights
//! packed, scratch sized. The same kernels fold constants at compile time, so
//! there is one implementation per op.

use whittle_ir::{DType, Node, Tensor};

use crate::{Fact, OpError, Parallel, RunError, View, ViewMut};

/// Compile-time knowledge of one node input.
#[derive(Clone, Debug)]
pub struct InputFact<'a> {
    /// Type and shape.
    pub fact: Fact,
    /// The value, when it is known at compile time (initializer or folded).
    pub value: Option<&'a Tensor>,
}

/// Everything a builder may look at.
#[derive(Debug)]
pub struct BuildCtx<'a> {
    /// The node being built.
    pub node: &'a Node,
    /// One entry per declared input; `None` for an omitted optional input.
    pub inputs: Vec<Option<InputFact<'a>>>,
    /// Opset version of the node's domain.
    pub opset: i64,
}

impl<'a> BuildCtx<'a> {
    /// An error about this node.
    pub fn err(&self, msg: impl Into<String>) -> OpError {
        OpError::Invalid {
            node: self.node.name.clone(),
            op: self.node.op_type.clone(),
            msg: msg.into(),
        }
    }

    /// Number of declared inputs (including omitted optional ones).
    pub fn num_inputs(&self) -> usize {
        self.inputs.len()
    }

    /// A required input.
    pub fn input(&self, i: usize) -> Result<&InputFact<'a>, OpError> {
        self.opt_input(i)
            .ok_or_else(|| self.err(format!("input {i} is required")))
    }

    /// An optional input.
    pub fn opt_input(&self, i: usize) -> Option<&InputFact<'a>> {
        self.inputs.get(i).and_then(Option::as_ref)
    }

    /// The fact of a required input.
    pub fn fact(&self, i: usize) -> Result<&Fact, OpError> {
        Ok(&self.input(i)?.fact)
    }

    /// The compile-time value of a required input, or an error saying it
    /// must be constant (whittle plans static shapes).
    pub fn const_value(&self, i: usize) -> Result<&'a Tensor, OpError> {
        self.input(i)?.value.ok_or_else(|| {
            self.err(format!(
                "input {i} ('{}') must be a compile-time constant",
                self.node.inputs.get(i).map(String::as_str).unwrap_or("")
            ))
        })
    }

    /// The compile-time value of an optional input, if given. An input given
    /// but not constant is an error.
    pub fn opt_const_value(&self, i: usize) -> Result<Option<&'a Tensor>, OpError> {
        match self.opt_input(i) {
            None => Ok(None),
            Some(_) => self.const_value(i).map(Some),
        }
    }

    /// Requires input `i` to have one of `dtypes`.
    pub fn expect_dtype(&self, i: usize, dtypes: &[DType]) -> Result<DType, OpError> {
        let dt = self.fact(i)?.dtype;
        if dtypes.contains(&dt) {
            Ok(dt)
        } else {
            Err(self.err(format!(
                "input {i} has dtype {dt}; supported: {}",
                dtypes
                    .iter()
                    .map(|d| d.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

/// What a builder returns.
pub enum Built {
    /// A kernel to run, with the facts of its outputs.
    Kernel {
        /// One fact per node output.
        outputs: Vec<Fact>,
        /// The prepared kernel.
        kernel: Box<dyn Kernel>,
    },
    /// The outputs are known at compile time without running anything
    /// (Shape, Size of a statically shaped value).
    Constant(Vec<Tensor>),
}

impl std::fmt::Debug for Built {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Built::Kernel { outputs, kernel } => f
                .debug_struct("Kernel")
                .field("outputs", outputs)
                .field("kernel", &kernel.name())
                .finish(),
            Built::Constant(t) => f.debug_tuple("Constant").field(t).finish(),
        }
    }
}

/// Per-run context for a kernel.
pub struct RunCtx<'a> {
    /// Workspace of [`Kernel::scratch_bytes`] bytes, 64-byte aligned.
    pub scratch: &'a mut [u8],
    /// Threads the kernel may use.
    pub par: &'a Parallel,
}

/// A prepared operator. `run` must not allocate: everything it needs was
/// sized at build time.
pub trait Kernel: Send + Sync {
    /// What runs, for reports: e.g. `conv2d.im2col.gemm.avx2+relu`.
    fn name(&self) -> String;

    /// Multiply-accumulates per run (0 for data movement).
    fn macs(&self) -> u64 {
        0
    }

    /// Workspace bytes `run` needs in [`RunCtx::scratch`].
    fn scratch_bytes(&self) -> usize {
        0
    }

    /// Bytes of weights this kernel holds itself (e.g. pre-packed).
    fn weight_bytes(&self) -> usize {
        0
    }

    /// Inputs whose compile-time value the kernel copied into its own layout
    /// at build time and never reads in `run`. The plan does not keep those
    /// constants (they arrive as empty views), so weights are held once.
    fn absorbed_inputs(&self) -> &[usize] {
        &[]
    }

    /// Index of an input that may share output 0's buffer. When the planner
    /// takes the offer, that input arrives as [`View::aliased`] and its data
    /// is already in `outputs[0]`. Only offer it for inputs with the same
    /// byte size as output 0.
    fn inplace_input(&self) -> Option<usize> {
        None
    }

    /// Computes outputs from inputs. Inputs and outputs come in node order;
    /// omitted optional inputs are empty views.
    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError>;
}
