use std::fmt;

/// Element type of a tensor. The variants mirror the ONNX `TensorProto.DataType`
/// values that whittle can store; which of them an op can compute on is the
/// op's business.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// 32-bit IEEE float (ONNX FLOAT); the type most kernels compute in.
    F32,
    /// 64-bit IEEE float (ONNX DOUBLE).
    F64,
    /// IEEE half precision, stored as raw bits.
    F16,
    /// bfloat16, stored as raw bits.
    BF16,
    /// 8-bit signed integer (ONNX INT8), e.g. quantized weights.
    I8,
    /// 8-bit unsigned integer (ONNX UINT8), e.g. quantized activations.
    U8,
    /// 16-bit signed integer (ONNX INT16).
    I16,
    /// 16-bit unsigned integer (ONNX UINT16).
    U16,
    /// 32-bit signed integer (ONNX INT32), e.g. quantized biases and
    /// integer accumulators.
    I32,
    /// 32-bit unsigned integer (ONNX UINT32).
    U32,
    /// 64-bit signed integer (ONNX INT64), the type of shapes, axes and
    /// indices in ONNX.
    I64,
    /// 64-bit unsigned integer (ONNX UINT64).
    U64,
    /// Stored as one byte per element, 0 or 1.
    Bool,
    /// 4-bit signed integer (ONNX INT4), held in memory as one `i8` per
    /// element in [-8, 7]; packed two per byte only in ONNX files.
    I4,
    /// 4-bit unsigned integer (ONNX UINT4), held in memory as one `u8` per
    /// element in [0, 15]; packed two per byte only in ONNX files.
    U4,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool | DType::I4 | DType::U4 => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// Lower-case name as used in reports (`f32`, `i64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::U16 => "u16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::I64 => "i64",
            DType::U64 => "u64",
            DType::Bool => "bool",
            DType::I4 => "i4",
            DType::U4 => "u4",
        }
    }

    /// True for floating-point types.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }

    /// True for signed or unsigned integer types (not bool).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DType::I8
                | DType::U8
                | DType::I16
                | DType::U16
                | DType::I32
                | DType::U32
                | DType::I64
                | DType::U64
                | DType::I4
                | DType::U4
        )
    }

    /// The inclusive value range of a 4-bit type, `None` for other types.
    pub fn int4_range(self) -> Option<(i8, i8)> {
        match self {
            DType::I4 => Some((-8, 7)),
            DType::U4 => Some((0, 15)),
            _ => None,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
