//! Every way ONNX stores tensors, values, nodes and attributes, built in
//! code and imported.

mod common;

use std::io::Write;

use common::*;
use whittle_ir::{Attr, DType, Dim, Tensor, TensorData};
use whittle_onnx::proto::attribute_proto::AttributeType;
use whittle_onnx::proto::tensor_proto::{DataLocation, DataType};
use whittle_onnx::proto::tensor_shape_proto::dimension;
use whittle_onnx::proto::{Message, SparseTensorProto, StringStringEntryProto, TensorProto};
use whittle_onnx::{load_model, load_model_bytes, load_model_bytes_with, ImportLimits};

fn typed(dtype: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some("t".into()),
        dims: dims.to_vec(),
        data_type: Some(dtype as i32),
        ..TensorProto::default()
    }
}

fn import_one(t: TensorProto) -> Tensor {
    whittle_onnx::tensor_from_proto(&t).unwrap()
}

#[test]
fn raw_data_initializer() {
    let g = load_model_bytes(&small_model_bytes(), None).unwrap();
    let w = &g.initializers["w"];
    assert_eq!(w.shape(), &[2, 3]);
    assert_eq!(w.as_f32().unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(g.opset(), 17);
    assert_eq!(g.producer, "test");
    assert_eq!(g.nodes.len(), 2);
}

#[test]
fn typed_fields() {
    let mut t = typed(DataType::Float, &[2]);
    t.float_data = vec![1.5, -2.0];
    assert_eq!(import_one(t).as_f32().unwrap(), &[1.5, -2.0]);

    let mut t = typed(DataType::Double, &[2]);
    t.double_data = vec![0.25, 1e300];
    assert_eq!(import_one(t).data(), &TensorData::F64(vec![0.25, 1e300]));

    let mut t = typed(DataType::Int64, &[3]);
    t.int64_data = vec![i64::MIN, 0, i64::MAX];
    assert_eq!(import_one(t).as_i64().unwrap(), &[i64::MIN, 0, i64::MAX]);

    let mut t = typed(DataType::Uint64, &[2]);
    t.uint64_data = vec![u64::MAX, 7];
    assert_eq!(import_one(t).data(), &TensorData::U64(vec![u64::MAX, 7]));

    let mut t = typed(DataType::Uint32, &[2]);
    t.uint64_data = vec![u64::from(u32::MAX), 7];
    assert_eq!(import_one(t).data(), &TensorData::U32(vec![u32::MAX, 7]));

    let cases: Vec<(DataType, Vec<i32>, TensorData)> = vec![
        (
            DataType::Int32,
            vec![i32::MIN, 5],
            TensorData::I32(vec![i32::MIN, 5]),
        ),
        (
            DataType::Int8,
            vec![-128, 127],
            TensorData::I8(vec![-128, 127]),
        ),
        (DataType::Uint8, vec![0, 255], TensorData::U8(vec![0, 255])),
        (
            DataType::Int16,
            vec![-32768, 32767],
            TensorData::I16(vec![-32768, 32767]),
        ),
        (
            DataType::Uint16,
            vec![0, 65535],
            TensorData::U16(vec![0, 65535]),
        ),
        (DataType::Bool, vec![0, 1], TensorData::Bool(vec![0, 1])),
        // 1.0 and -2.0 in half precision, written zero- and sign-extended.
        (
            DataType::Float16,
            vec![0x3c00, -16384],
            TensorData::F16(vec![0x3c00, 0xc000]),
        ),
        // 1.0 and -1.0 in bfloat16.
        (
            DataType::Bfloat16,
            vec![0x3f80, 0xbf80],
            TensorData::BF16(vec![0x3f80, 0xbf80]),
        ),
    ];
    for (dt, ints, want) in cases {
        let mut t = typed(dt, &[2]);
        t.int32_data = ints;
        assert_eq!(import_one(t).data(), &want, "{dt:?}");
    }
}

#[test]
fn typed_values_out_of_range_are_errors() {
    for (dt, v) in [
        (DataType::Int8, 128),
        (DataType::Uint8, -1),
        (DataType::Int16, 40000),
        (DataType::Uint16, 70000),
        (DataType::Float16, 0x10000),
    ] {
        let mut t = typed(dt, &[1]);
        t.int32_data = vec![v];
        let err = whittle_onnx::tensor_from_proto(&t).unwrap_err().to_string();
        assert!(err.contains("out of range"), "{dt:?}: {err}");
    }
    let mut t = typed(DataType::Uint32, &[1]);
    t.uint64_data = vec![1 << 32];
    assert!(whittle_onnx::tensor_from_proto(&t).is_err());
}

#[test]
fn wrong_typed_field_is_an_error() {
    let mut t = typed(DataType::Int8, &[1]);
    t.int64_data = vec![1];
    let err = whittle_onnx::tensor_from_proto(&t).unwrap_err().to_string();
    assert!(err.contains("int64_data"), "{err}");
}

#[test]
fn raw_data_of_every_dtype() {
    let t = TensorProto {
        dims: vec![3],
        data_type: Some(DataType::Bool as i32),
        raw_data: Some(vec![0, 1, 0]),
        ..TensorProto::default()
    };
    assert_eq!(import_one(t).data(), &TensorData::Bool(vec![0, 1, 0]));
    let t = TensorProto {
        dims: vec![2],
        data_type: Some(DataType::Int16 as i32),
        raw_data: Some(vec![0xff, 0xff, 0x01, 0x00]),
        ..TensorProto::default()
    };
    assert_eq!(import_one(t).data(), &TensorData::I16(vec![-1, 1]));
    // A scalar and an empty tensor.
    let t = raw_f32("s", &[], &[4.0]);
    let s = import_one(t);
    assert_eq!((s.shape(), s.as_f32().unwrap()), (&[][..], &[4.0][..]));
    let e = import_one(raw_f32("e", &[0, 5], &[]));
    assert_eq!((e.shape(), e.numel()), (&[0, 5][..], 0));
}

fn external(location: &str, offset: Option<u64>, length: Option<u64>) -> TensorProto {
    let mut entries = vec![StringStringEntryProto {
        key: Some("location".into()),
        value: Some(location.into()),
    }];
    for (k, v) in [("offset", offset), ("length", length)] {
        if let Some(v) = v {
            entries.push(StringStringEntryProto {
                key: Some(k.into()),
                value: Some(v.to_string()),
            });
        }
    }
    TensorProto {
        name: Some("w".into()),
        dims: vec![2, 3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: entries,
        ..TensorProto::default()
    }
}

fn write_external_model(dir: &std::path::Path, w: TensorProto) -> std::path::PathBuf {
    let values: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut f = std::fs::File::create(dir.join("weights.bin")).unwrap();
    f.write_all(&[0xAA; 16]).unwrap(); // 16 bytes of padding before the data
    f.write_all(&values).unwrap();
    let model = dir.join("model.onnx");
    std::fs::write(&model, encode(&small_model(w))).unwrap();
    model
}

#[test]
fn external_data_with_offset_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_external_model(dir.path(), external("weights.bin", Some(16), Some(24)));
    let g = load_model(&path).unwrap();
    assert_eq!(
        g.initializers["w"].as_f32().unwrap(),
        &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    // Length defaults to the rest of the file.
    let path = write_external_model(dir.path(), external("./weights.bin", Some(16), None));
    assert!(load_model(&path).is_ok());
    // In a subdirectory.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::copy(dir.path().join("weights.bin"), dir.path().join("sub/w.bin")).unwrap();
    let path = write_external_model(dir.path(), external("sub/w.bin", Some(16), Some(24)));
    assert!(load_model(&path).is_ok());
}

#[test]
fn external_data_needs_a_directory() {
    let m = small_model(external("weights.bin", None, None));
    let err = load_model_bytes(&encode(&m), None).unwrap_err().to_string();
    assert!(err.contains("directory"), "{err}");
}

#[test]
fn sparse_initializers_are_densified() {
    // Linear indices into a [2, 3] tensor.
    let values = raw_f32("w", &[2], &[7.0, 9.0]);
    let lin = TensorProto {
        dims: vec![2],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![1, 5],
        ..TensorProto::default()
    };
    let coo = TensorProto {
        dims: vec![2, 2],
        data_type: Some(DataType::Int64 as i32),
        int64_data: vec![0, 1, 1, 2],
        ..TensorProto::default()
    };
    for indices in [lin, coo] {
        let mut m = small_model(raw_f32("unused", &[1], &[0.0]));
        graph_mut(&mut m).sparse_initializer = vec![SparseTensorProto {
            values: Some(values.clone()),
            indices: Some(indices),
            dims: vec![2, 3],
        }];
        let g = load_model_bytes(&encode(&m), None).unwrap();
        assert_eq!(
            g.initializers["w"].as_f32().unwrap(),
            &[0.0, 7.0, 0.0, 0.0, 0.0, 9.0]
        );
    }
}

fn constant_model(attr: whittle_onnx::proto::AttributeProto) -> Vec<u8> {
    let mut m = small_model(raw_f32("unused", &[1], &[0.0]));
    let mut c = node("", "Constant", &[], &["w"]);
    c.attribute = vec![attr];
    graph_mut(&mut m).node.insert(0, c);
    encode(&m)
}

#[test]
fn constant_nodes_become_initializers() {
    let mut a = attr("value", AttributeType::Tensor);
    a.t = Some(raw_f32("", &[2, 3], &[1.0; 6]));
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(g.nodes.len(), 2, "the Constant node is gone");
    assert_eq!(g.initializers["w"].shape(), &[2, 3]);

    let mut a = attr("value_float", AttributeType::Float);
    a.f = Some(2.5);
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(g.initializers["w"], Tensor::scalar_f32(2.5));

    let mut a = attr("value_floats", AttributeType::Floats);
    a.floats = vec![1.0, 2.0];
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(
        g.initializers["w"],
        Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap()
    );

    let mut a = attr("value_int", AttributeType::Int);
    a.i = Some(-3);
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(g.initializers["w"], Tensor::scalar_i64(-3));

    let mut a = attr("value_ints", AttributeType::Ints);
    a.ints = vec![4, 5, 6];
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(g.initializers["w"], Tensor::vec_i64(vec![4, 5, 6]));

    let mut a = attr("sparse_value", AttributeType::SparseTensor);
    a.sparse_tensor = Some(SparseTensorProto {
        values: Some(raw_f32("", &[1], &[3.0])),
        indices: Some(TensorProto {
            dims: vec![1],
            data_type: Some(DataType::Int64 as i32),
            int64_data: vec![2],
            ..TensorProto::default()
        }),
        dims: vec![4],
    });
    let g = load_model_bytes(&constant_model(a), None).unwrap();
    assert_eq!(g.initializers["w"].as_f32().unwrap(), &[0.0, 0.0, 3.0, 0.0]);
}

#[test]
fn string_constants_are_clear_errors() {
    let mut a = attr("value_string", AttributeType::String);
    a.s = Some(b"hi".to_vec());
    let err = load_model_bytes(&constant_model(a), None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("value_string") && err.contains("Constant"),
        "{err}"
    );
}

#[test]
fn inputs_with_initializers_are_constants() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m)
        .input
        .push(vi("w", DataType::Float, &[2, 3]));
    let g = load_model_bytes(&encode(&m), None).unwrap();
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(g.inputs[0].name, "x");
    assert!(g.initializers.contains_key("w"));
}

#[test]
fn value_info_dims() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).input[0] = vi_dims(
        "x",
        DataType::Float,
        vec![
            Some(dimension::Value::DimParam("batch".into())),
            Some(dimension::Value::DimValue(-1)),
            None,
            Some(dimension::Value::DimValue(0)),
            Some(dimension::Value::DimValue(7)),
        ],
    );
    graph_mut(&mut m).value_info = vec![vi("r", DataType::Float, &[2, 3])];
    let g = load_model_bytes(&encode(&m), None).unwrap();
    assert_eq!(g.inputs[0].dtype, DType::F32);
    assert_eq!(
        g.inputs[0].shape.as_deref().unwrap(),
        &[
            Dim::Symbolic("batch".into()),
            Dim::Unknown,
            Dim::Unknown,
            Dim::Known(0),
            Dim::Known(7)
        ]
    );
    assert_eq!(g.value_info[0].static_shape(), Some(vec![2, 3]));
}

#[test]
fn unsupported_value_types_name_the_value() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).output[0] = vi("y", DataType::Complex64, &[2, 3]);
    let err = load_model_bytes(&encode(&m), None).unwrap_err().to_string();
    assert!(err.contains("'y'") && err.contains("COMPLEX64"), "{err}");
    graph_mut(&mut m).output[0] = vi("y", DataType::String, &[2, 3]);
    let err = load_model_bytes(&encode(&m), None).unwrap_err().to_string();
    assert!(err.contains("'y'") && err.contains("STRING"), "{err}");
    // In value_info, it is only a warning.
    graph_mut(&mut m).output[0] = vi("y", DataType::Float, &[2, 3]);
    graph_mut(&mut m).value_info = vec![vi("r", DataType::String, &[])];
    let imp = load_model_bytes_with(&encode(&m), None, &ImportLimits::default()).unwrap();
    assert!(imp.graph.value_info.is_empty());
    assert!(
        imp.warnings.iter().any(|w| w.contains("'r'")),
        "{:?}",
        imp.warnings
    );
}

#[test]
fn node_names_are_filled_and_unique() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    let nodes = &mut graph_mut(&mut m).node;
    nodes[0].name = None;
    nodes[1].name = Some("Relu_0".into());
    let g = load_model_bytes(&encode(&m), None).unwrap();
    assert_eq!(g.nodes[0].name, "Relu_0");
    assert_eq!(g.nodes[1].name, "Relu_0_1");
}

#[test]
fn every_attribute_kind() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    let mut attrs = vec![];
    let mut a = attr("f", AttributeType::Float);
    a.f = Some(0.5);
    attrs.push(a);
    let mut a = attr("i", AttributeType::Int);
    a.i = Some(-7);
    attrs.push(a);
    let mut a = attr("s", AttributeType::String);
    a.s = Some(b"NOTSET".to_vec());
    attrs.push(a);
    let mut a = attr("t", AttributeType::Tensor);
    a.t = Some(raw_f32("", &[1], &[9.0]));
    attrs.push(a);
    let mut a = attr("floats", AttributeType::Floats);
    a.floats = vec![1.0, 2.0];
    attrs.push(a);
    let mut a = attr("ints", AttributeType::Ints);
    a.ints = vec![1, -2];
    attrs.push(a);
    let mut a = attr("strings", AttributeType::Strings);
    a.strings = vec![b"a".to_vec(), b"bc".to_vec()];
    attrs.push(a);
    let mut a = attr("empty_ints", AttributeType::Ints);
    a.ints = vec![];
    attrs.push(a);
    attrs.push(attr("g", AttributeType::Graph));
    attrs.push(attr("tp", AttributeType::TypeProto));
    // Pre-IR-2 style: no type, only a value.
    let mut a = attr("legacy", AttributeType::Undefined);
    a.i = Some(3);
    attrs.push(a);
    graph_mut(&mut m).node[0].attribute = attrs;
    let g = load_model_bytes(&encode(&m), None).unwrap();
    let n = &g.nodes[0];
    assert_eq!(n.attrs["f"], Attr::Float(0.5));
    assert_eq!(n.attrs["i"], Attr::Int(-7));
    assert_eq!(n.attrs["s"], Attr::String("NOTSET".into()));
    assert_eq!(
        n.attrs["t"],
        Attr::Tensor(Tensor::from_f32(vec![1], vec![9.0]).unwrap())
    );
    assert_eq!(n.attrs["floats"], Attr::Floats(vec![1.0, 2.0]));
    assert_eq!(n.attrs["ints"], Attr::Ints(vec![1, -2]));
    assert_eq!(
        n.attrs["strings"],
        Attr::Strings(vec!["a".into(), "bc".into()])
    );
    assert_eq!(n.attrs["empty_ints"], Attr::Ints(vec![]));
    assert_eq!(n.attrs["g"], Attr::Unsupported("graph".into()));
    assert_eq!(n.attrs["tp"], Attr::Unsupported("type_proto".into()));
    assert_eq!(n.attrs["legacy"], Attr::Int(3));
}

#[test]
fn function_attribute_references_are_errors() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    let mut a = attr("alpha", AttributeType::Float);
    a.ref_attr_name = Some("outer".into());
    graph_mut(&mut m).node[0].attribute = vec![a];
    let err = load_model_bytes(&encode(&m), None).unwrap_err().to_string();
    assert!(err.contains("relu") && err.contains("outer"), "{err}");
}

#[test]
fn opsets_and_warnings() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    m.opset_import[0].domain = Some("ai.onnx".into());
    m.opset_import[0].version = Some(6);
    m.opset_import
        .push(whittle_onnx::proto::OperatorSetIdProto {
            domain: Some("com.microsoft".into()),
            version: Some(1),
        });
    m.functions.push(whittle_onnx::proto::FunctionProto {
        name: Some("MyFn".into()),
        domain: Some("local".into()),
        ..Default::default()
    });
    let imp = load_model_bytes_with(&encode(&m), None, &ImportLimits::default()).unwrap();
    assert_eq!(imp.graph.opsets[""], 6);
    assert_eq!(imp.graph.opsets["com.microsoft"], 1);
    assert!(imp.warnings.iter().any(|w| w.contains("older than 7")));
    assert!(imp.warnings.iter().any(|w| w.contains("local:MyFn")));
}

#[test]
fn nodes_are_sorted() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).node.reverse();
    let g = load_model_bytes(&encode(&m), None).unwrap();
    assert_eq!(g.nodes[0].name, "relu");
}

#[test]
fn tensor_files() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("input_0.pb");
    std::fs::write(&p, raw_f32("x", &[3], &[1.0, 2.0, 3.0]).encode_to_vec()).unwrap();
    let t = whittle_onnx::load_tensor(&p).unwrap();
    assert_eq!(t.as_f32().unwrap(), &[1.0, 2.0, 3.0]);
    let back = whittle_onnx::tensor_to_proto("x", &t);
    assert_eq!(whittle_onnx::tensor_from_proto(&back).unwrap(), t);
    let err = whittle_onnx::load_tensor(&dir.path().join("missing.pb")).unwrap_err();
    assert!(err.to_string().contains("missing.pb"), "{err}");
}
