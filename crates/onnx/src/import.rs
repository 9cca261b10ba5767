//! ModelProto -> [`Graph`].

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

use whittle_ir::{Attr, Graph, Node, Tensor};

use crate::attr::attr_from_proto;
use crate::limits::Budget;
use crate::proto::{Message, ModelProto, NodeProto};
use crate::sparse::{densify, sparse_name};
use crate::tensor::{decode_tensor, TensorCtx};
use crate::value_info::value_info_from_proto;
use crate::{ImportLimits, OnnxError};

/// A model import's result: the graph plus notes about parts of the file
/// that were accepted but ignored or may not run (old opsets, model-local
/// functions, unreadable `value_info` entries, training info).
#[derive(Clone, Debug, PartialEq)]
pub struct Imported {
    /// The graph, topologically sorted.
    pub graph: Graph,
    /// Human-readable notes, one per issue.
    pub warnings: Vec<String>,
}

/// Reads an ONNX model file under the default [`ImportLimits`]. External
/// tensor data is read from files beside it.
pub fn load_model(path: &Path) -> Result<Graph, OnnxError> {
    load_model_with(path, &ImportLimits::default()).map(|i| i.graph)
}

/// Reads an ONNX model file under the given limits, keeping the warnings.
pub fn load_model_with(path: &Path, limits: &ImportLimits) -> Result<Imported, OnnxError> {
    let bytes = read_limited(path, limits)?;
    let base_dir = match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Path::new("."),
        Some(p) => p,
        None => Path::new("."),
    };
    load_model_bytes_with(&bytes, Some(base_dir), limits).map_err(|e| e.in_file(path))
}

/// Imports a serialized model under the default [`ImportLimits`].
/// `base_dir` is the directory external data is read from; with `None`,
/// external data is an error.
pub fn load_model_bytes(bytes: &[u8], base_dir: Option<&Path>) -> Result<Graph, OnnxError> {
    load_model_bytes_with(bytes, base_dir, &ImportLimits::default()).map(|i| i.graph)
}

/// Imports a serialized model under the given limits, keeping the warnings.
pub fn load_model_bytes_with(
    bytes: &[u8],
    base_dir: Option<&Path>,
    limits: &ImportLimits,
) -> Result<Imported, OnnxError> {
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(OnnxError::TooLarge {
            what: "model size in bytes".into(),
            size: bytes.len() as u64,
            limit: limits.max_file_bytes,
        });
    }
    let model = ModelProto::decode(bytes).map_err(|error| OnnxError::Decode {
        what: "ModelProto",
        error,
    })?;
    graph_from_model(&model, base_dir, limits)
}

/// Reads a whole file after checking its size against
/// [`ImportLimits::max_file_bytes`].
pub(crate) fn read_limited(path: &Path, limits: &ImportLimits) -> Result<Vec<u8>, OnnxError> {
    let file = std::fs::File::open(path).map_err(|e| OnnxError::io(path, e))?;
    let len = file.metadata().map_err(|e| OnnxError::io(path, e))?.len();
    let too_large = |size| OnnxError::TooLarge {
        what: format!("size of {}", path.display()),
        size,
        limit: limits.max_file_bytes,
    };
    if len > limits.max_file_bytes {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    // The file may grow after metadata was read; never read past the limit.
    file.take(limits.max_file_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| OnnxError::io(path, e))?;
    if bytes.len() as u64 > limits.max_file_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Converts a decoded model. See the crate docs for what is accepted.
pub fn graph_from_model(
    model: &ModelProto,
    base_dir: Option<&Path>,
    limits: &ImportLimits,
) -> Result<Imported, OnnxError> {
    let mut warnings = Vec::new();
    let ctx = TensorCtx { limits, base_dir };
    let mut budget = Budget::new(limits);
    let mut graph = Graph {
        producer: model.producer_name().to_string(),
        opsets: opsets(model, &mut warnings)?,
        ..Graph::default()
    };
    if !model.functions.is_empty() {
        let names: Vec<String> = model
            .functions
            .iter()
            .map(|f| format!("{}:{}", f.domain(), f.name()))
            .collect();
        warnings.push(format!(
            "model-local functions are not inlined; nodes calling them are unknown ops: {}",
            names.join(", ")
        ));
    }
    if !model.training_info.is_empty() {
        warnings.push("training_info is ignored".into());
    }
    let g = model.graph.as_ref().ok_or(OnnxError::NoGraph)?;
    graph.name = g.name().to_string();

    for t in &g.initializer {
        let name = t.name();
        if name.is_empty() {
            return Err(OnnxError::Model("an initializer has no name".into()));
        }
        let tensor = decode_tensor(t, name, &ctx, Some(&mut budget))?;
        add_initializer(&mut graph, name, tensor)?;
    }
    for sp in &g.sparse_initializer {
        let name = sparse_name(sp);
        if name.is_empty() {
            return Err(OnnxError::Model("a sparse initializer has no name".into()));
        }
        let tensor = densify(sp, name, &ctx, Some(&mut budget))?;
        add_initializer(&mut graph, name, tensor)?;
    }

    let mut seen = HashSet::new();
    for vi in &g.input {
        // Inputs with an initializer are defaults that whittle treats as
        // constants, as most runtimes do when no value is fed.
        if graph.initializers.contains_key(vi.name()) {
            continue;
        }
        let v = value_info_from_proto(vi, limits)?;
        if !seen.insert(v.name.clone()) {
            return Err(OnnxError::value(&v.name, "listed twice as a graph input"));
        }
        graph.inputs.push(v);
    }
    let mut seen = HashSet::new();
    for vi in &g.output {
        let v = value_info_from_proto(vi, limits)?;
        if !seen.insert(v.name.clone()) {
            return Err(OnnxError::value(&v.name, "listed twice as a graph output"));
        }
        graph.outputs.push(v);
    }
    for vi in &g.value_info {
        match value_info_from_proto(vi, limits) {
            Ok(v) => graph.value_info.push(v),
            Err(e) => warnings.push(format!("value_info skipped: {e}")),
        }
    }

    let names = node_names(&g.node);
    for (np, name) in g.node.iter().zip(names) {
        if let Some(node) = import_node(np, name, &ctx, &mut budget, &mut graph)? {
            graph.nodes.push(node);
        }
    }
    graph.topo_sort()?;
    Ok(Imported { graph, warnings })
}

fn add_initializer(graph: &mut Graph, name: &str, tensor: Tensor) -> Result<(), OnnxError> {
    if graph
        .initializers
        .insert(name.to_string(), tensor)
        .is_some()
    {
        return Err(OnnxError::tensor(name, "defined twice"));
    }
    Ok(())
}

/// Opset per domain, with "ai.onnx" folded into "".
fn opsets(
    model: &ModelProto,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, i64>, OnnxError> {
    let mut map = BTreeMap::new();
    for op in &model.opset_import {
        let domain = match op.domain() {
            "ai.onnx" => "",
            d => d,
        };
        let Some(version) = op.version else {
            return Err(OnnxError::Model(format!(
                "opset_import for domain '{domain}' has no version"
            )));
        };
        if map.insert(domain.to_string(), version).is_some() {
            return Err(OnnxError::Model(format!(
                "opset_import lists domain '{domain}' twice"
            )));
        }
    }
    match map.get("") {
        None => warnings.push("the model declares no default-domain (ai.onnx) opset".into()),
        Some(&v) if v < 7 => warnings.push(format!(
            "opset {v} is older than 7, the oldest whittle targets; ops may be misread"
        )),
        _ => {}
    }
    Ok(map)
}

/// Unique node names: blanks become `{op_type}_{index}`, repeats get a
/// numeric suffix.
fn node_names(nodes: &[NodeProto]) -> Vec<String> {
    let mut taken: HashSet<String> = HashSet::new();
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let base = match n.name() {
                "" => format!("{}_{i}", n.op_type()),
                name => name.to_string(),
            };
            let mut name = base.clone();
            let mut k = 1;
            while taken.contains(&name) {
                name = format!("{base}_{k}");
                k += 1;
            }
            taken.insert(name.clone());
            name
        })
        .collect()
}

/// Converts one node; Constant nodes become initializers (returns `None`).
fn import_node(
    np: &NodeProto,
    name: String,
    ctx: &TensorCtx<'_>,
    budget: &mut Budget,
    graph: &mut Graph,
) -> Result<Option<Node>, OnnxError> {
    let domain = match np.domain() {
        "ai.onnx" => "",
        d => d,
    };
    let op = np.op_type();
    let err = |reason: String| OnnxError::Node {
        node: name.clone(),
        op: op.to_string(),
        reason,
    };
    if op.is_empty() {
        return Err(err("has no op_type".into()));
    }
    if domain.is_empty() && op == "Constant" {
        let (out, tensor) = constant_value(np, ctx, budget).map_err(err)?;
        if graph.initializers.contains_key(&out) || graph.inputs.iter().any(|v| v.name == out) {
            return Err(OnnxError::Graph(whittle_ir::IrError::DuplicateValue(out)));
        }
        graph.initializers.insert(out, tensor);
        return Ok(None);
    }
    let mut attrs = BTreeMap::new();
    for a in &np.attribute {
        let value = attr_from_proto(a, ctx, budget).map_err(&err)?;
        if attrs.insert(a.name().to_string(), value).is_some() {
            return Err(err(format!("attribute '{}' appears twice", a.name())));
        }
    }
    Ok(Some(Node {
        name,
        op_type: op.to_string(),
        domain: domain.to_string(),
        inputs: np.input.clone(),
        outputs: np.output.clone(),
        attrs,
        ..Node::default()
    }))
}

/// The output name and value of a Constant node.
fn constant_value(
    np: &NodeProto,
    ctx: &TensorCtx<'_>,
    budget: &mut Budget,
) -> Result<(String, Tensor), String> {
    let out = match np.output.as_slice() {
        [o] if !o.is_empty() => o.clone(),
        _ => return Err("a Constant must have exactly one named output".into()),
    };
    if np.input.iter().any(|i| !i.is_empty()) {
        return Err("a Constant takes no inputs".into());
    }
    let [a] = np.attribute.as_slice() else {
        return Err(format!(
            "a Constant needs exactly one value attribute, found {}",
            np.attribute.len()
        ));
    };
    if !a.ref_attr_name().is_empty() {
        return Err("a Constant outside a function cannot use ref_attr_name".into());
    }
    let attr_name = a.name();
    let tensor = match attr_name {
        "value" => {
            let t = a.t.as_ref().ok_or("value holds no tensor")?;
            decode_tensor(t, &out, ctx, Some(budget)).map_err(|e| e.to_string())?
        }
        "sparse_value" => {
            let sp = a
                .sparse_tensor
                .as_ref()
                .ok_or("sparse_value holds no sparse tensor")?;
            densify(sp, &out, ctx, Some(budget)).map_err(|e| e.to_string())?
        }
        "value_float" | "value_floats" | "value_int" | "value_ints" => {
            let t = match (attr_name, attr_from_proto(a, ctx, budget)?) {
                ("value_float", Attr::Float(v)) => Tensor::scalar_f32(v),
                ("value_int", Attr::Int(v)) => Tensor::scalar_i64(v),
                ("value_floats", Attr::Floats(v)) => {
                    Tensor::from_f32(vec![v.len()], v).map_err(|e| e.to_string())?
                }
                ("value_ints", Attr::Ints(v)) => Tensor::vec_i64(v),
                (_, other) => {
                    return Err(format!("{attr_name} has the wrong kind ({})", other.kind()))
                }
            };
            budget
                .take(&out, t.byte_size() as u64)
                .map_err(|e| e.to_string())?;
            t
        }
        "value_string" | "value_strings" => {
            return Err(format!(
                "{attr_name}: string tensors are not supported by whittle"
            ))
        }
        other => return Err(format!("unknown Constant attribute '{other}'")),
    };
    Ok((out, tensor))
}
