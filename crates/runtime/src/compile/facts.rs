//! The static facts compile finds, for passes outside compile (autodiff,
//! channel pruning) that need every value's shape and constants.

use std::collections::HashMap;

use whittle_ir::{Graph, Tensor};

use super::analyze::{self, Value};
use super::CompileError;
use crate::{Fact, Registry};

/// What is known about one value before run time.
#[derive(Clone, Debug)]
pub struct Known {
    /// Its dtype and static shape.
    pub fact: Fact,
    /// Its value, when it is a compile-time constant (an initializer, or
    /// the output of a node whose inputs are all constant).
    pub value: Option<Tensor>,
}

/// [`Known`] facts by value name.
pub type Facts = HashMap<String, Known>;

/// The dtype, static shape and (when constant) value of every value of
/// `graph`: its graph inputs, initializers and the named outputs of every
/// node, whether or not the node contributes to a graph output.
///
/// This is the analysis [`compile`](super::compile) runs, without the
/// simplification passes: graph input shapes are resolved from their
/// declarations and `input_shapes` exactly as for
/// [`CompileOptions::input_shapes`](super::CompileOptions::input_shapes),
/// each node's kernel is built from `registry` (so its shape rules and
/// checks are the ones compiled plans use), and nodes whose inputs are all
/// constant are folded. Initializers are constants; graph inputs are
/// run-time values. `graph` must be topologically sorted
/// ([`Graph::topo_sort`]).
pub fn infer_facts(
    graph: &Graph,
    registry: &Registry,
    input_shapes: &HashMap<String, Vec<usize>>,
) -> Result<Facts, CompileError> {
    let inputs = analyze::resolve_inputs(graph, input_shapes)?;
    let analysis = analyze::analyze(graph, registry, inputs, 0..graph.nodes.len())?;
    Ok(analysis
        .values
        .into_iter()
        .map(|(name, v)| (name, Known::from(v)))
        .collect())
}

impl From<Value> for Known {
    fn from(v: Value) -> Known {
        match v {
            Value::Const(t) => Known {
                fact: Fact::new(t.dtype(), t.shape().to_vec()),
                value: Some(t),
            },
            Value::Runtime(fact) => Known { fact, value: None },
        }
    }
}
