//! `TensorProto` <-> [`Tensor`] in every storage form ONNX allows.

use std::path::Path;

use whittle_ir::{DType, Tensor, TensorData};

use crate::dtype::{dtype_from_onnx, dtype_to_onnx};
use crate::external::open_external;
use crate::limits::Budget;
use crate::proto::tensor_proto::DataLocation;
use crate::proto::{Message, TensorProto};
use crate::{ImportLimits, OnnxError};

/// Where a tensor's external data lives and which limits apply.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TensorCtx<'a> {
    pub limits: &'a ImportLimits,
    /// Directory of the model file; `None` when importing from bytes, in
    /// which case external data is an error.
    pub base_dir: Option<&'a Path>,
}

/// Converts a tensor without external data, under the default
/// [`ImportLimits`].
pub fn tensor_from_proto(proto: &TensorProto) -> Result<Tensor, OnnxError> {
    tensor_from_proto_with(proto, None, &ImportLimits::default())
}

/// Converts a tensor, reading external data (if any) relative to `base_dir`.
pub fn tensor_from_proto_with(
    proto: &TensorProto,
    base_dir: Option<&Path>,
    limits: &ImportLimits,
) -> Result<Tensor, OnnxError> {
    let ctx = TensorCtx { limits, base_dir };
    decode_tensor(proto, proto.name(), &ctx, None)
}

/// Decodes a serialized `TensorProto` (the format of the conformance
/// suite's `input_N.pb` / `output_N.pb` files).
pub fn load_tensor_bytes(bytes: &[u8]) -> Result<Tensor, OnnxError> {
    let proto = decode_tensor_proto(bytes)?;
    tensor_from_proto(&proto)
}

/// Reads a serialized `TensorProto` file; external data is looked up beside
/// it.
pub fn load_tensor(path: &Path) -> Result<Tensor, OnnxError> {
    let limits = ImportLimits::default();
    let bytes = crate::import::read_limited(path, &limits)?;
    let proto = decode_tensor_proto(&bytes).map_err(|e| e.in_file(path))?;
    let label = match proto.name() {
        "" => path.display().to_string(),
        name => name.to_string(),
    };
    let ctx = TensorCtx {
        limits: &limits,
        base_dir: path.parent(),
    };
    decode_tensor(&proto, &label, &ctx, None).map_err(|e| e.in_file(path))
}

fn decode_tensor_proto(bytes: &[u8]) -> Result<TensorProto, OnnxError> {
    TensorProto::decode(bytes).map_err(|error| OnnxError::Decode {
        what: "TensorProto",
        error,
    })
}

/// The ONNX form of a tensor: data as little-endian `raw_data`.
pub fn tensor_to_proto(name: &str, tensor: &Tensor) -> TensorProto {
    TensorProto {
        dims: tensor.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype_to_onnx(tensor.dtype())),
        name: (!name.is_empty()).then(|| name.to_string()),
        raw_data: Some(tensor.as_bytes().to_vec()),
        ..TensorProto::default()
    }
}

/// Decodes `proto`, naming it `name` in errors. When `budget` is given, the
/// tensor's bytes are charged to it before its data is allocated.
pub(crate) fn decode_tensor(
    proto: &TensorProto,
    name: &str,
    ctx: &TensorCtx<'_>,
    budget: Option<&mut Budget>,
) -> Result<Tensor, OnnxError> {
    let dtype = dtype_from_onnx(proto.data_type()).map_err(|r| OnnxError::tensor(name, r))?;
    let (shape, numel) = ctx.limits.tensor_shape(name, &proto.dims)?;
    // numel <= max_tensor_elements (<< 2^61), so this cannot overflow.
    let nbytes = numel as u64 * dtype.size() as u64;
    if let Some(budget) = budget {
        budget.take(name, nbytes)?;
    }
    if proto.segment.is_some() {
        return Err(OnnxError::tensor(
            name,
            "segmented tensors are not supported",
        ));
    }
    let typed = typed_fields(proto);
    let external = match proto.data_location.map(DataLocation::try_from) {
        None | Some(Ok(DataLocation::Default)) => false,
        Some(Ok(DataLocation::External)) => true,
        Some(Err(_)) => {
            return Err(OnnxError::tensor(
                name,
                format!("unknown data_location {:?}", proto.data_location),
            ))
        }
    };
    let data = if external {
        if proto.raw_data.as_ref().is_some_and(|r| !r.is_empty()) || typed.iter().any(|f| f.1 > 0) {
            return Err(OnnxError::tensor(
                name,
                "data_location is EXTERNAL but the tensor also has inline data",
            ));
        }
        let source = open_external(proto, name, nbytes, ctx.base_dir)?;
        // Allocated only now that the file is known to hold exactly
        // `nbytes` at the given offset.
        let mut data = TensorData::zeros(dtype, numel);
        source.read_into(data.as_bytes_mut())?;
        if let TensorData::Bool(v) = &mut data {
            v.iter_mut().for_each(|b| *b = u8::from(*b != 0));
        }
        data
    } else {
        match proto.raw_data.as_deref() {
            Some(raw) if !raw.is_empty() || typed.iter().all(|f| f.1 == 0) => {
                if let Some((field, _)) = typed.iter().find(|f| f.1 > 0) {
                    return Err(OnnxError::tensor(
                        name,
                        format!("has both raw_data and {field}"),
                    ));
                }
                if raw.len() as u64 != nbytes {
                    return Err(OnnxError::tensor(
                        name,
                        format!(
                            "raw_data has {} bytes but shape {shape:?} of {dtype} needs {nbytes}",
                            raw.len()
                        ),
                    ));
                }
                TensorData::from_le_bytes(dtype, raw)
                    .map_err(|e| OnnxError::tensor(name, e.to_string()))?
            }
            _ => from_typed_fields(proto, name, dtype, numel, &typed)?,
        }
    };
    Tensor::new(shape, data).map_err(|e| OnnxError::tensor(name, e.to_string()))
}

/// Name and length of each typed data field.
fn typed_fields(p: &TensorProto) -> [(&'static str, usize); 6] {
    [
        ("float_data", p.float_data.len()),
        ("int32_data", p.int32_data.len()),
        ("int64_data", p.int64_data.len()),
        ("double_data", p.double_data.len()),
        ("uint64_data", p.uint64_data.len()),
        ("string_data", p.string_data.len()),
    ]
}

/// The typed field that carries elements of `dtype`.
fn field_for(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float_data",
        DType::F64 => "double_data",
        DType::I64 => "int64_data",
        DType::U32 | DType::U64 => "uint64_data",
        // int32_data carries every narrower type, f16/bf16 as raw bits.
        DType::I32
        | DType::I16
        | DType::I8
        | DType::U16
        | DType::U8
        | DType::Bool
        | DType::F16
        | DType::BF16 => "int32_data",
    }
}

fn from_typed_fields(
    proto: &TensorProto,
    name: &str,
    dtype: DType,
    numel: usize,
    typed: &[(&'static str, usize)],
) -> Result<TensorData, OnnxError> {
    let want = field_for(dtype);
    for &(field, len) in typed {
        if field != want && len > 0 {
            return Err(OnnxError::tensor(
                name,
                format!("{field} holds values but a {dtype} tensor stores them in {want}"),
            ));
        }
    }
    let have = typed.iter().find(|f| f.0 == want).map_or(0, |f| f.1);
    if have != numel {
        return Err(OnnxError::tensor(
            name,
            format!(
                "{want} has {have} values but the shape {:?} needs {numel}",
                proto.dims
            ),
        ));
    }
    let range = |i: usize, v: i64| {
        OnnxError::tensor(
            name,
            format!("{want}[{i}] = {v} is out of range for {dtype}"),
        )
    };
    let ints = &proto.int32_data;
    Ok(match dtype {
        DType::F32 => TensorData::F32(proto.float_data.clone()),
        DType::F64 => TensorData::F64(proto.double_data.clone()),
        DType::I64 => TensorData::I64(proto.int64_data.clone()),
        DType::U64 => TensorData::U64(proto.uint64_data.clone()),
        DType::U32 => TensorData::U32(narrow(&proto.uint64_data, |i, v| range(i, v as i64))?),
        DType::I32 => TensorData::I32(ints.clone()),
        DType::I16 => TensorData::I16(narrow(ints, |i, v| range(i, v.into()))?),
        DType::I8 => TensorData::I8(narrow(ints, |i, v| range(i, v.into()))?),
        DType::U16 => TensorData::U16(narrow(ints, |i, v| range(i, v.into()))?),
        DType::U8 => TensorData::U8(narrow(ints, |i, v| range(i, v.into()))?),
        DType::Bool => TensorData::Bool(ints.iter().map(|&v| u8::from(v != 0)).collect()),
        DType::F16 => TensorData::F16(half_bits(ints, |i, v| range(i, v.into()))?),
        DType::BF16 => TensorData::BF16(half_bits(ints, |i, v| range(i, v.into()))?),
    })
}

/// Converts each value to a narrower type, failing on the first that does
/// not fit.
fn narrow<S: Copy, T: TryFrom<S>>(
    values: &[S],
    err: impl Fn(usize, S) -> OnnxError,
) -> Result<Vec<T>, OnnxError> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| T::try_from(v).map_err(|_| err(i, v)))
        .collect()
}

/// 16-bit float patterns from `int32_data`, which writers fill zero- or
/// sign-extended.
fn half_bits(values: &[i32], err: impl Fn(usize, i32) -> OnnxError) -> Result<Vec<u16>, OnnxError> {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            0..=0xffff => Ok(v as u16),
            -0x8000..=-1 => Ok(v as i16 as u16),
            _ => Err(err(i, v)),
        })
        .collect()
}
