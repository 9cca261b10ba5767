//! Builders for ModelProtos made in code (shared by the integration tests).

#![allow(dead_code)]

use whittle_onnx::proto::attribute_proto::AttributeType;
use whittle_onnx::proto::tensor_proto::DataType;
use whittle_onnx::proto::tensor_shape_proto::{dimension, Dimension};
use whittle_onnx::proto::type_proto::{self, Value};
use whittle_onnx::proto::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A tensor-typed value with dims given as `Some(n)` (known), `None`
/// (unknown) or through `sym`.
pub fn vi(name: &str, elem: DataType, dims: &[i64]) -> ValueInfoProto {
    vi_dims(
        name,
        elem,
        dims.iter()
            .map(|&d| dimension::Value::DimValue(d))
            .map(Some)
            .collect(),
    )
}

pub fn vi_dims(name: &str, elem: DataType, dims: Vec<Option<dimension::Value>>) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .into_iter()
                        .map(|value| Dimension {
                            value,
                            denotation: None,
                        })
                        .collect(),
                }),
            })),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    }
}

pub fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..NodeProto::default()
    }
}

pub fn attr(name: &str, kind: AttributeType) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(kind as i32),
        ..AttributeProto::default()
    }
}

/// An f32 tensor stored as raw_data.
pub fn raw_f32(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        dims: dims.to_vec(),
        data_type: Some(DataType::Float as i32),
        raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
        ..TensorProto::default()
    }
}

/// `y = Relu(x) + w`, x and y of shape [2, 3], w an initializer.
pub fn small_model(w: TensorProto) -> ModelProto {
    let w_name = w.name().to_string();
    ModelProto {
        ir_version: Some(8),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(17),
        }],
        producer_name: Some("test".into()),
        graph: Some(GraphProto {
            name: Some("small".into()),
            node: vec![
                node("relu", "Relu", &["x"], &["r"]),
                node("add", "Add", &["r", &w_name], &["y"]),
            ],
            initializer: vec![w],
            input: vec![vi("x", DataType::Float, &[2, 3])],
            output: vec![vi("y", DataType::Float, &[2, 3])],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
}

pub fn small_model_bytes() -> Vec<u8> {
    small_model(raw_f32("w", &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])).encode_to_vec()
}

/// The model's graph, mutably.
pub fn graph_mut(m: &mut ModelProto) -> &mut GraphProto {
    m.graph.as_mut().unwrap()
}

pub fn encode(m: &ModelProto) -> Vec<u8> {
    m.encode_to_vec()
}
