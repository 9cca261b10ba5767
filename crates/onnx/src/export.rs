//! [`Graph`] -> ModelProto, and atomic saving.

use std::io::Write;
use std::path::Path;

use whittle_ir::Graph;

use crate::attr::attr_to_proto;
use crate::proto::{GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto};
use crate::sparse_export::{sparse_to_proto, stores_sparse, ExportOptions, SparseStorage};
use crate::tensor::tensor_to_proto;
use crate::value_info::value_info_to_proto;
use crate::OnnxError;

/// Prefix of attributes that whittle passes attach for their own use; they
/// are not part of ONNX and are never exported.
pub const INTERNAL_ATTR_PREFIX: &str = "whittle.";

/// The IR version written for a model whose default-domain opset is
/// `opset`: the one the ONNX release introducing that opset used, and no
/// lower than 8 so external tools see a modern file.
pub fn ir_version_for_opset(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19..=20 => 9,
        21..=22 => 10,
        23 => 11,
        24 => 12,
        25..=27 => 13,
        _ => 14,
    }
}

/// Builds the ONNX model for `graph`. Tensors are stored as `raw_data`;
/// attributes named `whittle.*` are dropped. Fails if a node carries an
/// [`whittle_ir::Attr::Unsupported`] attribute (such as a subgraph), whose
/// value import did not keep.
pub fn model_proto(graph: &Graph) -> Result<ModelProto, OnnxError> {
    model_proto_with(graph, &ExportOptions::default())
}

/// [`model_proto`] with storage options: with
/// [`SparseStorage::WhenSmaller`], mostly-zero initializers are written to
/// `sparse_initializer` (see [`crate::stores_sparse`]).
pub fn model_proto_with(graph: &Graph, opts: &ExportOptions) -> Result<ModelProto, OnnxError> {
    let mut nodes = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        let mut attribute = Vec::with_capacity(n.attrs.len());
        for (name, attr) in &n.attrs {
            if name.starts_with(INTERNAL_ATTR_PREFIX) {
                continue;
            }
            attribute.push(attr_to_proto(name, attr).ok_or_else(|| {
                OnnxError::Export(format!(
                    "node '{}' ({}): attribute '{name}' is a {} attribute, which whittle does not keep",
                    n.name,
                    n.op_type,
                    match attr {
                        whittle_ir::Attr::Unsupported(kind) => kind.as_str(),
                        other => other.kind(),
                    }
                ))
            })?);
        }
        nodes.push(NodeProto {
            input: n.inputs.clone(),
            output: n.outputs.clone(),
            name: (!n.name.is_empty()).then(|| n.name.clone()),
            op_type: Some(n.op_type.clone()),
            domain: (!n.domain.is_empty()).then(|| n.domain.clone()),
            attribute,
            ..NodeProto::default()
        });
    }
    let sparse =
        |t: &whittle_ir::Tensor| opts.sparse == SparseStorage::WhenSmaller && stores_sparse(t);
    let graph_proto = GraphProto {
        node: nodes,
        // The ONNX checker requires a graph name.
        name: Some(if graph.name.is_empty() {
            "main".to_string()
        } else {
            graph.name.clone()
        }),
        initializer: graph
            .initializers
            .iter()
            .filter(|(_, t)| !sparse(t))
            .map(|(name, t)| tensor_to_proto(name, t))
            .collect(),
        sparse_initializer: graph
            .initializers
            .iter()
            .filter(|(_, t)| sparse(t))
            .map(|(name, t)| sparse_to_proto(name, t))
            .collect(),
        input: graph.inputs.iter().map(value_info_to_proto).collect(),
        output: graph.outputs.iter().map(value_info_to_proto).collect(),
        value_info: graph.value_info.iter().map(value_info_to_proto).collect(),
        ..GraphProto::default()
    };
    Ok(ModelProto {
        ir_version: Some(ir_version_for_opset(graph.opset())),
        opset_import: graph
            .opsets
            .iter()
            .map(|(domain, &version)| OperatorSetIdProto {
                domain: Some(domain.clone()),
                version: Some(version),
            })
            .collect(),
        producer_name: Some("whittle".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph_proto),
        ..ModelProto::default()
    })
}

/// The serialized ONNX model for `graph` (see [`model_proto`]).
pub fn model_bytes(graph: &Graph) -> Result<Vec<u8>, OnnxError> {
    Ok(model_proto(graph)?.encode_to_vec())
}

/// Writes `graph` as an ONNX file atomically: the bytes go to a temporary
/// file in the same directory, which is flushed to disk and then renamed
/// over `path`. On any failure the temporary file is removed and `path` is
/// untouched.
pub fn save_model(graph: &Graph, path: &Path) -> Result<(), OnnxError> {
    let bytes = model_bytes(graph)?;
    write_atomic(path, &bytes)
}

/// [`save_model`] with storage options (see [`model_proto_with`]).
pub fn save_model_with(graph: &Graph, path: &Path, opts: &ExportOptions) -> Result<(), OnnxError> {
    let bytes = model_proto_with(graph, opts)?.encode_to_vec();
    write_atomic(path, &bytes)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), OnnxError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let io = |e| OnnxError::io(path, e);
    // NamedTempFile deletes itself when dropped, i.e. on every error path.
    let mut tmp = tempfile::Builder::new()
        .prefix(".whittle-")
        .suffix(".onnx.tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    // Make the rename itself durable; not all platforms can open a
    // directory, so this is best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
