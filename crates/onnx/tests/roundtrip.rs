//! Export: import -> export -> import gives the same graph; files are
//! written atomically; internal attributes stay internal.

mod common;

use std::path::Path;

use common::*;
use whittle_ir::{Attr, DType, Dim, Graph, Node, Tensor, TensorData, ValueInfo};
use whittle_onnx::proto::{Message, ModelProto};
use whittle_onnx::{load_model, load_model_bytes, model_bytes, save_model, OnnxError};

fn rich_graph() -> Graph {
    let mut g = Graph {
        name: "rich".into(),
        producer: "whittle".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            dtype: DType::F32,
            shape: Some(vec![Dim::Symbolic("n".into()), Dim::Unknown, Dim::Known(3)]),
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            dtype: DType::F32,
            shape: None,
        }],
        value_info: vec![ValueInfo::known("r", DType::F32, &[1, 2, 3])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    g.opsets.insert("com.microsoft".into(), 1);
    let datas = [
        TensorData::F32(vec![1.0, -2.5]),
        TensorData::F64(vec![1e-300, 2.0]),
        TensorData::F16(vec![0x3c00, 0x7c00]),
        TensorData::BF16(vec![0x3f80, 0]),
        TensorData::I8(vec![-128, 127]),
        TensorData::U8(vec![0, 255]),
        TensorData::I16(vec![-1, 2]),
        TensorData::U16(vec![65535, 0]),
        TensorData::I32(vec![i32::MIN, 1]),
        TensorData::U32(vec![u32::MAX, 1]),
        TensorData::I64(vec![i64::MIN, i64::MAX]),
        TensorData::U64(vec![u64::MAX, 0]),
        TensorData::Bool(vec![1, 0]),
    ];
    for (i, d) in datas.into_iter().enumerate() {
        g.initializers
            .insert(format!("c{i}"), Tensor::new(vec![2], d).unwrap());
    }
    g.initializers.insert(
        "empty".into(),
        Tensor::zeros(DType::F32, vec![0, 4]).unwrap(),
    );
    g.initializers
        .insert("scalar".into(), Tensor::scalar_i64(5));
    g.nodes.push(
        Node::new("relu", "Relu", &["x"], &["r"])
            .with_attr("f", Attr::Float(0.25))
            .with_attr("i", Attr::Int(-1))
            .with_attr("s", Attr::String("same".into()))
            .with_attr("t", Attr::Tensor(Tensor::vec_i64(vec![1, 2])))
            .with_attr("fs", Attr::Floats(vec![1.0]))
            .with_attr("is", Attr::Ints(vec![]))
            .with_attr("ss", Attr::Strings(vec!["a".into()])),
    );
    let mut fused = Node::new("add", "FusedThing", &["r", "", "c0"], &["y", ""]);
    fused.domain = "com.microsoft".into();
    g.nodes.push(fused);
    g
}

#[test]
fn rich_graph_round_trips() {
    let g = rich_graph();
    let back = load_model_bytes(&model_bytes(&g).unwrap(), None).unwrap();
    assert_eq!(back, g);
}

#[test]
fn model_header() {
    let bytes = model_bytes(&rich_graph()).unwrap();
    let m = ModelProto::decode(bytes.as_slice()).unwrap();
    assert_eq!(m.producer_name(), "whittle");
    assert_eq!(m.ir_version(), 8);
    assert_eq!(whittle_onnx::ir_version_for_opset(21), 10);
    let g = m.graph.unwrap();
    assert!(g.initializer.iter().all(|t| t.raw_data.is_some()));
    assert!(
        g.input.iter().all(|v| v.name() == "x"),
        "initializers are not inputs"
    );
}

#[test]
fn internal_attributes_are_not_exported() {
    let mut g = rich_graph();
    g.nodes[0]
        .attrs
        .insert("whittle.kernel".into(), Attr::String("int8".into()));
    g.nodes[0]
        .attrs
        .insert("whittle.sub".into(), Attr::Unsupported("graph".into()));
    let back = load_model_bytes(&model_bytes(&g).unwrap(), None).unwrap();
    assert_eq!(back, rich_graph());
}

#[test]
fn unsupported_attributes_cannot_be_exported() {
    let mut g = rich_graph();
    g.nodes[0]
        .attrs
        .insert("body".into(), Attr::Unsupported("graph".into()));
    let err = model_bytes(&g).unwrap_err();
    assert!(matches!(err, OnnxError::Export(_)));
    let err = err.to_string();
    assert!(err.contains("relu") && err.contains("body"), "{err}");
}

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn save_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.onnx");
    save_model(&rich_graph(), &path).unwrap();
    assert_eq!(load_model(&path).unwrap(), rich_graph());
    assert_eq!(dir_entries(dir.path()), ["out.onnx"]);

    // A failed export leaves the existing file and the directory as they were.
    let before = std::fs::read(&path).unwrap();
    let mut bad = rich_graph();
    bad.nodes[0]
        .attrs
        .insert("body".into(), Attr::Unsupported("graph".into()));
    assert!(save_model(&bad, &path).is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(dir_entries(dir.path()), ["out.onnx"]);

    // Writing over a directory fails at the rename; the temp file is removed.
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    std::fs::write(dir.path().join("taken/x"), b"x").unwrap();
    let err = save_model(&rich_graph(), &dir.path().join("taken")).unwrap_err();
    assert!(err.to_string().contains("taken"), "{err}");
    assert_eq!(dir_entries(dir.path()), ["out.onnx", "taken"]);

    // A missing directory is an error naming the path.
    let err = save_model(&rich_graph(), &dir.path().join("no/such/out.onnx")).unwrap_err();
    assert!(err.to_string().contains("no/such"), "{err}");
}

#[test]
fn imported_models_round_trip() {
    let g = load_model_bytes(&small_model_bytes(), None).unwrap();
    let mut back = load_model_bytes(&model_bytes(&g).unwrap(), None).unwrap();
    back.producer = g.producer.clone();
    assert_eq!(back, g);
}

/// Every conformance model that imports and has no subgraph attributes
/// survives export and re-import unchanged.
#[test]
fn conformance_models_round_trip() {
    let dir = Path::new("/usr/share/libonnx-testdata/data/node");
    if !dir.is_dir() {
        println!("note: {} is absent; skipping", dir.display());
        return;
    }
    let (mut done, mut skipped) = (0, 0);
    for case in std::fs::read_dir(dir).unwrap() {
        let Ok(g) = load_model(&case.unwrap().path().join("model.onnx")) else {
            continue;
        };
        let bytes = match model_bytes(&g) {
            Ok(b) => b,
            Err(OnnxError::Export(_)) => {
                skipped += 1;
                continue;
            }
            Err(e) => panic!("{e}"),
        };
        let mut back = load_model_bytes(&bytes, None).unwrap();
        back.producer = g.producer.clone();
        assert_eq!(back, g, "{}", g.name);
        done += 1;
    }
    println!("{done} models round-tripped, {skipped} have subgraph attributes");
    assert!(done > 800);
}
