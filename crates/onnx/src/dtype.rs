//! Mapping between ONNX `TensorProto.DataType` codes and [`DType`].

use whittle_ir::DType;

use crate::proto::tensor_proto::DataType;

/// The ONNX data type code of a [`DType`].
pub fn dtype_to_onnx(dtype: DType) -> i32 {
    let code = match dtype {
        DType::F32 => DataType::Float,
        DType::F64 => DataType::Double,
        DType::F16 => DataType::Float16,
        DType::BF16 => DataType::Bfloat16,
        DType::I8 => DataType::Int8,
        DType::U8 => DataType::Uint8,
        DType::I16 => DataType::Int16,
        DType::U16 => DataType::Uint16,
        DType::I32 => DataType::Int32,
        DType::U32 => DataType::Uint32,
        DType::I64 => DataType::Int64,
        DType::U64 => DataType::Uint64,
        DType::Bool => DataType::Bool,
        DType::I4 => DataType::Int4,
        DType::U4 => DataType::Uint4,
    };
    code as i32
}

/// The [`DType`] of an ONNX data type code, or a reason it has none
/// (strings, complex numbers, 8-bit floats, unknown codes).
pub fn dtype_from_onnx(code: i32) -> Result<DType, String> {
    let dt = DataType::try_from(code).map_err(|_| format!("unknown element type code {code}"))?;
    Ok(match dt {
        DataType::Float => DType::F32,
        DataType::Double => DType::F64,
        DataType::Float16 => DType::F16,
        DataType::Bfloat16 => DType::BF16,
        DataType::Int8 => DType::I8,
        DataType::Uint8 => DType::U8,
        DataType::Int16 => DType::I16,
        DataType::Uint16 => DType::U16,
        DataType::Int32 => DType::I32,
        DataType::Uint32 => DType::U32,
        DataType::Int64 => DType::I64,
        DataType::Uint64 => DType::U64,
        DataType::Bool => DType::Bool,
        DataType::Int4 => DType::I4,
        DataType::Uint4 => DType::U4,
        DataType::Undefined => return Err("element type is not set (UNDEFINED)".into()),
        other => {
            return Err(format!(
                "element type {} is not supported by whittle",
                other.as_str_name()
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dtype_round_trips() {
        for dt in [
            DType::F32,
            DType::F64,
            DType::F16,
            DType::BF16,
            DType::I8,
            DType::U8,
            DType::I16,
            DType::U16,
            DType::I32,
            DType::U32,
            DType::I64,
            DType::U64,
            DType::Bool,
            DType::I4,
            DType::U4,
        ] {
            assert_eq!(dtype_from_onnx(dtype_to_onnx(dt)), Ok(dt));
        }
    }

    #[test]
    fn unsupported_types_are_named() {
        assert!(dtype_from_onnx(8).unwrap_err().contains("STRING"));
        assert!(dtype_from_onnx(14).unwrap_err().contains("COMPLEX64"));
        assert!(dtype_from_onnx(999).unwrap_err().contains("999"));
    }
}
