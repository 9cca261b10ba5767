//! `ValueInfoProto` <-> [`ValueInfo`].

use whittle_ir::{Dim, ValueInfo};

use crate::dtype::{dtype_from_onnx, dtype_to_onnx};
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::type_proto::{self, Value};
use crate::proto::{TensorShapeProto, TypeProto, ValueInfoProto};
use crate::{ImportLimits, OnnxError};

/// The declared type of a value. Only dense tensor types are representable;
/// sequences, maps, optionals, sparse and opaque types are errors naming the
/// value.
pub(crate) fn value_info_from_proto(
    vi: &ValueInfoProto,
    limits: &ImportLimits,
) -> Result<ValueInfo, OnnxError> {
    let name = vi.name();
    if name.is_empty() {
        return Err(OnnxError::value(name, "has no name"));
    }
    let err = |r: String| OnnxError::value(name, r);
    let tensor_type = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(Value::TensorType(t)) => t,
        Some(other) => {
            return Err(err(format!(
                "{} values are not supported (only dense tensors)",
                kind_name(other)
            )))
        }
        None => return Err(err("has no declared type".into())),
    };
    let dtype = dtype_from_onnx(tensor_type.elem_type()).map_err(err)?;
    let shape = match &tensor_type.shape {
        None => None,
        Some(s) => {
            limits.check_rank(|| format!("value '{name}'"), s.dim.len())?;
            let dims = s
                .dim
                .iter()
                .map(|d| dim_from_proto(d).map_err(&err))
                .collect::<Result<Vec<_>, _>>()?;
            let known = dims.iter().fold(1u64, |acc, d| match d {
                Dim::Known(n) => acc.saturating_mul(*n as u64),
                _ => acc,
            });
            if known > limits.max_value_elements {
                return Err(OnnxError::TooLarge {
                    what: format!("declared element count of value '{name}'"),
                    size: known,
                    limit: limits.max_value_elements,
                });
            }
            Some(dims)
        }
    };
    Ok(ValueInfo {
        name: name.to_string(),
        dtype,
        shape,
    })
}

fn dim_from_proto(d: &Dimension) -> Result<Dim, String> {
    Ok(match &d.value {
        Some(dimension::Value::DimValue(v)) if *v >= 0 => {
            Dim::Known(usize::try_from(*v).map_err(|_| format!("dim {v} is too large"))?)
        }
        Some(dimension::Value::DimValue(-1)) | None => Dim::Unknown,
        Some(dimension::Value::DimValue(v)) => return Err(format!("negative dim {v}")),
        Some(dimension::Value::DimParam(p)) if p.is_empty() => Dim::Unknown,
        Some(dimension::Value::DimParam(p)) => Dim::Symbolic(p.clone()),
    })
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::TensorType(_) => "tensor",
        Value::SequenceType(_) => "sequence",
        Value::MapType(_) => "map",
        Value::OptionalType(_) => "optional",
        Value::SparseTensorType(_) => "sparse tensor",
        Value::OpaqueType(_) => "opaque",
    }
}

/// The ONNX form of a declared value type.
pub(crate) fn value_info_to_proto(vi: &ValueInfo) -> ValueInfoProto {
    let shape = vi.shape.as_ref().map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Dim::Known(n) => Some(dimension::Value::DimValue(*n as i64)),
                    Dim::Symbolic(s) => Some(dimension::Value::DimParam(s.clone())),
                    Dim::Unknown => None,
                },
                denotation: None,
            })
            .collect(),
    });
    ValueInfoProto {
        name: Some(vi.name.clone()),
        r#type: Some(TypeProto {
            value: Some(Value::TensorType(type_proto::Tensor {
                elem_type: Some(dtype_to_onnx(vi.dtype)),
                shape,
            })),
            denotation: None,
        }),
        ..ValueInfoProto::default()
    }
}
