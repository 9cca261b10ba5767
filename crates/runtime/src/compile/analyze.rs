//! Phase 2, analyze: the prepared graph → its steps and constants. Static
//! analysis of a graph: resolve input shapes, build every node's kernel in
//! topological order, and fold everything whose inputs are known.

use std::collections::{BTreeMap, HashMap, HashSet};

use whittle_ir::{Dim, Graph, Node, Tensor};

use super::CompileError;
use crate::eager::run_kernel;
use crate::op::{BuildCtx, Built, InputFact};
use crate::{Fact, Kernel, Registry};

/// What compile knows about a value after analysis.
#[derive(Debug)]
pub(crate) enum Value {
    /// Known at compile time.
    Const(Tensor),
    /// Computed at run time (graph input or step output).
    Runtime(Fact),
}

/// A node that survives folding.
pub(crate) struct Step {
    pub node: Node,
    pub kernel: Box<dyn Kernel>,
    /// Facts of every built output, named or not.
    pub output_facts: Vec<Fact>,
}

/// Result of analysis.
pub(crate) struct Analysis {
    pub values: HashMap<String, Value>,
    pub steps: Vec<Step>,
    /// Graph inputs with their resolved facts, in declaration order.
    pub inputs: Vec<(String, Fact)>,
    /// Nodes folded into constants.
    pub folded: usize,
}

/// Every op type (with its node names) that `registry` cannot build.
pub(crate) fn unsupported_ops(graph: &Graph, registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in &graph.nodes {
        if registry.get(&n.domain, &n.op_type).is_none() {
            let key = if n.domain.is_empty() || n.domain == "ai.onnx" {
                n.op_type.clone()
            } else {
                format!("{}::{}", n.domain, n.op_type)
            };
            missing.entry(key).or_default().push(n.name.clone());
        }
    }
    missing.into_iter().collect()
}

/// Nodes that contribute to a graph output, in graph order.
pub(crate) fn live_nodes(graph: &Graph) -> Vec<usize> {
    let producers = graph.producers();
    let mut needed: HashSet<usize> = HashSet::new();
    let mut stack: Vec<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    while let Some(v) = stack.pop() {
        if let Some(&p) = producers.get(v) {
            if needed.insert(p) {
                stack.extend(
                    graph.nodes[p]
                        .inputs
                        .iter()
                        .filter(|s| !s.is_empty())
                        .map(String::as_str),
                );
            }
        }
    }
    let mut order: Vec<usize> = needed.into_iter().collect();
    order.sort_unstable();
    order
}

/// Takes the graph and the user's shape overrides; gives each graph input
/// with its static shape (from its declaration and the overrides), in
/// declaration order.
pub(crate) fn resolve_inputs(
    graph: &Graph,
    overrides: &HashMap<String, Vec<usize>>,
) -> Result<Vec<(String, Fact)>, CompileError> {
    for name in overrides.keys() {
        if !graph.inputs.iter().any(|v| &v.name == name) {
            let known: Vec<&str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();
            return Err(CompileError::Input {
                name: name.clone(),
                msg: format!("no such graph input (inputs: {})", known.join(", ")),
            });
        }
    }
    let mut out = Vec::new();
    for vi in &graph.inputs {
        // An example override: the declared dims with unfixed ones set to 1.
        let example = match &vi.shape {
            Some(dims) => dims
                .iter()
                .map(|d| match d {
                    Dim::Known(k) => k.to_string(),
                    _ => "1".to_string(),
                })
                .collect::<Vec<_>>()
                .join("x"),
            None => "1x3x224x224".to_string(),
        };
        let hint = |dims: &str| {
            format!(
                "{dims}; pass --input-shape {}={example} (for example)",
                vi.name
            )
        };
        let shape = match (overrides.get(&vi.name), &vi.shape) {
            (Some(o), Some(decl)) => {
                if o.len() != decl.len() {
                    return Err(CompileError::Input {
                        name: vi.name.clone(),
                        msg: format!(
                            "--input-shape gives rank {} but the model declares rank {}",
                            o.len(),
                            decl.len()
                        ),
                    });
                }
                for (i, (d, want)) in decl.iter().zip(o).enumerate() {
                    if let Dim::Known(k) = d {
                        if k != want {
                            return Err(CompileError::Input {
                                name: vi.name.clone(),
                                msg: format!("--input-shape sets dim {i} to {want} but the model fixes it at {k}"),
                            });
                        }
                    }
                }
                o.clone()
            }
            (Some(o), None) => o.clone(),
            (None, None) => {
                return Err(CompileError::Input {
                    name: vi.name.clone(),
                    msg: hint("the model does not declare its shape"),
                })
            }
            (None, Some(decl)) => {
                let unresolved: Vec<String> = decl
                    .iter()
                    .filter_map(|d| match d {
                        Dim::Known(_) => None,
                        Dim::Symbolic(s) => Some(s.clone()),
                        Dim::Unknown => Some("?".to_string()),
                    })
                    .collect();
                if !unresolved.is_empty() {
                    return Err(CompileError::Input {
                        name: vi.name.clone(),
                        msg: hint(&format!("dims [{}] are not fixed", unresolved.join(", "))),
                    });
                }
                decl.iter()
                    .map(|d| if let Dim::Known(k) = d { *k } else { 0 })
                    .collect()
            }
        };
        let numel = whittle_ir::checked_numel(&shape).filter(|&n| n <= super::MAX_TENSOR_ELEMENTS);
        if numel.is_none() {
            return Err(CompileError::Input {
                name: vi.name.clone(),
                msg: format!("shape {shape:?} is too large"),
            });
        }
        out.push((vi.name.clone(), Fact::new(vi.dtype, shape)));
    }
    Ok(out)
}

/// Takes the graph, the registry, its resolved inputs and the nodes to
/// build (indices into the topologically sorted `graph.nodes`, in order:
/// compile passes the [`live_nodes`], [`infer_facts`](super::infer_facts)
/// every node); gives every value's constant or run-time fact and a step
/// (node, kernel, output facts) per node that is not folded. A node whose
/// inputs are all constant is folded.
pub(crate) fn analyze(
    graph: &Graph,
    registry: &Registry,
    inputs: Vec<(String, Fact)>,
    nodes: impl IntoIterator<Item = usize>,
) -> Result<Analysis, CompileError> {
    let mut values: HashMap<String, Value> = HashMap::new();
    for (name, t) in &graph.initializers {
        values.insert(name.clone(), Value::Const(t.clone()));
    }
    for (name, fact) in &inputs {
        values.insert(name.clone(), Value::Runtime(fact.clone()));
    }
    let mut steps = Vec::new();
    let mut folded = 0;
    for idx in nodes {
        let node = &graph.nodes[idx];
        let build = registry.get(&node.domain, &node.op_type).ok_or_else(|| {
            CompileError::Unsupported(vec![(node.op_type.clone(), vec![node.name.clone()])])
        })?;
        let mut facts = Vec::with_capacity(node.inputs.len());
        let mut all_const = true;
        for name in &node.inputs {
            if name.is_empty() {
                facts.push(None);
                continue;
            }
            let v = values
                .get(name)
                .ok_or_else(|| CompileError::Internal(format!("value '{name}' unknown")))?;
            facts.push(Some(match v {
                Value::Const(t) => InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: Some(t),
                },
                Value::Runtime(f) => {
                    all_const = false;
                    InputFact {
                        fact: f.clone(),
                        value: None,
                    }
                }
            }));
        }
        let ctx = BuildCtx {
            node,
            inputs: facts,
            opset: graph.opset_for(&node.domain),
        };
        let built = build(&ctx)?;
        let outputs: Vec<Value> = match built {
            Built::Constant(ts) => {
                folded += 1;
                ts.into_iter().map(Value::Const).collect()
            }
            Built::Kernel { outputs, kernel } => {
                for f in &outputs {
                    let bytes = whittle_ir::checked_numel(&f.shape)
                        .and_then(|n| n.checked_mul(f.dtype.size()));
                    if bytes.is_none_or(|b| b > super::MAX_TENSOR_BYTES) {
                        return Err(CompileError::Op(ctx.err(format!(
                            "output shape {:?} ({}) is larger than the {} byte limit",
                            f.shape,
                            f.dtype,
                            super::MAX_TENSOR_BYTES
                        ))));
                    }
                }
                if kernel.scratch_bytes() > super::MAX_TENSOR_BYTES {
                    return Err(CompileError::Op(ctx.err(format!(
                        "its kernel needs {} bytes of workspace, over the {} byte limit",
                        kernel.scratch_bytes(),
                        super::MAX_TENSOR_BYTES
                    ))));
                }
                if all_const {
                    let inputs: Vec<Option<&Tensor>> = ctx
                        .inputs
                        .iter()
                        .map(|i| i.as_ref().and_then(|i| i.value))
                        .collect();
                    let ts = run_kernel(kernel.as_ref(), &inputs, &outputs).map_err(|e| {
                        CompileError::Fold {
                            node: node.name.clone(),
                            msg: e.to_string(),
                        }
                    })?;
                    folded += 1;
                    ts.into_iter().map(Value::Const).collect()
                } else {
                    let vals = outputs.iter().cloned().map(Value::Runtime).collect();
                    steps.push(Step {
                        node: node.clone(),
                        kernel,
                        output_facts: outputs,
                    });
                    vals
                }
            }
        };
        if outputs.len() < node.outputs.iter().filter(|o| !o.is_empty()).count() {
            return Err(CompileError::Internal(format!(
                "node '{}' built {} outputs but declares {}",
                node.name,
                outputs.len(),
                node.outputs.len()
            )));
        }
        for (name, v) in node.outputs.iter().zip(outputs) {
            if !name.is_empty() {
                values.insert(name.clone(), v);
            }
        }
    }
    for o in &graph.outputs {
        if !values.contains_key(&o.name) {
            return Err(CompileError::Internal(format!(
                "graph output '{}' was not computed",
                o.name
            )));
        }
    }
    Ok(Analysis {
        values,
        steps,
        inputs,
        folded,
    })
}
