//! Static facts (dtype, shape, and the value when constant) of every value
//! of a forward graph, from the runtime's own op builders, so the autodiff
//! pass knows the shapes its backward nodes need.

use std::collections::{HashMap, HashSet};

use whittle_ir::{Dim, Graph, Tensor};
use whittle_runtime::{eval_node, BuildCtx, Built, CompileError, Fact, InputFact, Registry};

use crate::TrainError;

/// What is known about one value.
#[derive(Clone, Debug)]
pub struct Known {
    /// Its dtype and static shape.
    pub fact: Fact,
    /// The value, when it is a compile-time constant.
    pub value: Option<Tensor>,
}

/// Facts of every value of `graph` (sorted topologically). Initializers in
/// `variable` are treated as run-time values (they are the trained weights).
pub fn infer(
    graph: &Graph,
    variable: &HashSet<String>,
    overrides: &HashMap<String, Vec<usize>>,
    registry: &Registry,
) -> Result<HashMap<String, Known>, TrainError> {
    let mut known: HashMap<String, Known> = HashMap::new();
    for vi in &graph.inputs {
        let shape = match overrides.get(&vi.name) {
            Some(s) => s.clone(),
            None => vi
                .shape
                .as_ref()
                .and_then(|dims| {
                    dims.iter()
                        .map(|d| match d {
                            Dim::Known(n) => Some(*n),
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                })
                .ok_or_else(|| {
                    TrainError::Spec(format!(
                        "graph input '{}' has no static shape; give one in input_shapes",
                        vi.name
                    ))
                })?,
        };
        known.insert(
            vi.name.clone(),
            Known {
                fact: Fact::new(vi.dtype, shape),
                value: None,
            },
        );
    }
    for (name, t) in &graph.initializers {
        let value = (!variable.contains(name)).then(|| t.clone());
        known.insert(
            name.clone(),
            Known {
                fact: Fact::new(t.dtype(), t.shape().to_vec()),
                value,
            },
        );
    }
    for node in &graph.nodes {
        let build = registry.get(&node.domain, &node.op_type).ok_or_else(|| {
            CompileError::Unsupported(vec![(node.op_type.clone(), vec![node.name.clone()])])
        })?;
        let mut inputs = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let k = known.get(name).ok_or_else(|| {
                TrainError::Ir(whittle_ir::IrError::Dangling {
                    node: node.name.clone(),
                    value: name.clone(),
                })
            })?;
            inputs.push(Some(k));
        }
        let all_const = inputs.iter().flatten().all(|k| k.value.is_some());
        let outputs: Vec<Known> = if all_const && !inputs.is_empty() {
            let vals: Vec<Option<Tensor>> = inputs
                .iter()
                .map(|k| k.and_then(|k| k.value.clone()))
                .collect();
            let outs = eval_node(registry, node, &vals, opset(graph, &node.domain))
                .map_err(|e| node_err(node, e.to_string()))?;
            outs.into_iter()
                .map(|t| Known {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: Some(t),
                })
                .collect()
        } else {
            let ctx = BuildCtx {
                node,
                inputs: inputs
                    .iter()
                    .map(|k| {
                        k.map(|k| InputFact {
                            fact: k.fact.clone(),
                            value: k.value.as_ref(),
                        })
                    })
                    .collect(),
                opset: opset(graph, &node.domain),
            };
            match build(&ctx).map_err(|e| node_err(node, e.to_string()))? {
                Built::Constant(ts) => ts
                    .into_iter()
                    .map(|t| Known {
                        fact: Fact::new(t.dtype(), t.shape().to_vec()),
                        value: Some(t),
                    })
                    .collect(),
                Built::Kernel { outputs, .. } => outputs
                    .into_iter()
                    .map(|fact| Known { fact, value: None })
                    .collect(),
            }
        };
        for (name, k) in node.outputs.iter().zip(outputs) {
            if !name.is_empty() {
                known.insert(name.clone(), k);
            }
        }
    }
    Ok(known)
}

fn opset(graph: &Graph, domain: &str) -> i64 {
    if domain.is_empty() || domain == "ai.onnx" {
        graph.opset()
    } else {
        graph.opsets.get(domain).copied().unwrap_or(1)
    }
}

fn node_err(node: &whittle_ir::Node, msg: String) -> TrainError {
    TrainError::Node {
        node: node.name.clone(),
        op: node.op_type.clone(),
        msg,
    }
}
