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

/// The ONNX form of a tensor: data as little-endian `raw_data` (4-bit types
/// packed two per byte, low nibble first).
pub fn tensor_to_proto(name: &str, tensor: &Tensor) -> TensorProto {
    let raw = match tensor.data() {
        TensorData::I4(v) => pack_nibbles(v.iter().map(|&x| x as u8)),
        TensorData::U4(v) => pack_nibbles(v.iter().copied()),
        _ => tensor.as_bytes().to_vec(),
    };
    TensorProto {
        dims: tensor.shape().iter().map(|&d| d as i64).collect(),
        data_type: Some(dtype_to_onnx(tensor.dtype())),
        name: (!name.is_empty()).then(|| name.to_string()),
        raw_data: Some(raw),
        ..TensorProto::default()
    }
}

/// Packs 4-bit values two per byte, element 2i in the low nibble.
fn pack_nibbles(values: impl ExactSizeIterator<Item = u8>) -> Vec<u8> {
    let mut out = vec![0u8; values.len().div_ceil(2)];
    for (i, v) in values.enumerate() {
        out[i / 2] |= (v & 0x0f) << (4 * (i % 2));
    }
    out
}

/// Unpacks `numel` 4-bit values of `dtype` (I4 sign-extended) from bytes
/// packed two per byte, low nibble first. `packed` holds exactly
/// `numel.div_ceil(2)` bytes.
fn unpack_nibbles(dtype: DType, packed: &[u8], numel: usize) -> TensorData {
    let nib = |i: usize| (packed[i / 2] >> (4 * (i % 2))) & 0x0f;
    if dtype == DType::I4 {
        // Shifting the nibble into the top of an i8 and back sign-extends it.
        TensorData::I4((0..numel).map(|i| ((nib(i) << 4) as i8) >> 4).collect())
    } else {
        TensorData::U4((0..numel).map(nib).collect())
    }
}

/// Bytes a tensor of `numel` elements of `dtype` occupies in an ONNX file.
fn stored_bytes(dtype: DType, numel: usize) -> u64 {
    if dtype.int4_range().is_some() {
        numel.div_ceil(2) as u64
    } else {
        numel as u64 * dtype.size() as u64
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
    let mem_bytes = numel as u64 * dtype.size() as u64;
    if let Some(budget) = budget {
        budget.take(name, mem_bytes)?;
    }
    let nbytes = stored_bytes(dtype, numel);
    let int4 = dtype.int4_range().is_some();
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
        if int4 {
            let mut packed = vec![0u8; numel.div_ceil(2)];
            source.read_into(&mut packed)?;
            let data = unpack_nibbles(dtype, &packed, numel);
            return Tensor::new(shape, data).map_err(|e| OnnxError::tensor(name, e.to_string()));
        }
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
                if int4 {
                    unpack_nibbles(dtype, raw, numel)
                } else {
                    TensorData::from_le_bytes(dtype, raw)
                        .map_err(|e| OnnxError::tensor(name, e.to_string()))?
                }
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
        | DType::BF16
        | DType::I4
        | DType::U4 => "int32_data",
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
    // 4-bit types keep two values per int32_data entry (one packed byte).
    let needed = if dtype.int4_range().is_some() {
        numel.div_ceil(2)
    } else {
        numel
    };
    if have != needed {
        return Err(OnnxError::tensor(
            name,
            format!(
                "{want} has {have} values but the shape {:?} needs {needed}",
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
        DType::I4 | DType::U4 => {
            let packed: Vec<u8> = narrow(ints, |i, v| {
                OnnxError::tensor(
                    name,
                    format!("{want}[{i}] = {v} is not a byte of two packed {dtype} values"),
                )
            })?;
            unpack_nibbles(dtype, &packed, numel)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dtype: DType, dims: Vec<i64>) -> TensorProto {
        TensorProto {
            dims,
            data_type: Some(dtype_to_onnx(dtype)),
            ..TensorProto::default()
        }
    }

    // Expected packings from `onnx.helper.make_tensor` (onnx 1.17):
    // INT4 [-8, 7, 3] -> int32_data [120, 3]; UINT4 [1, 15, 3] -> [241, 3].
    #[test]
    fn int4_from_int32_data() {
        let mut p = proto(DType::I4, vec![3]);
        p.int32_data = vec![120, 3];
        let t = tensor_from_proto(&p).unwrap();
        assert_eq!(t.data(), &TensorData::I4(vec![-8, 7, 3]));
        let mut p = proto(DType::U4, vec![3]);
        p.int32_data = vec![241, 3];
        let t = tensor_from_proto(&p).unwrap();
        assert_eq!(t.data(), &TensorData::U4(vec![1, 15, 3]));
    }

    #[test]
    fn int4_raw_round_trip() {
        let t = Tensor::new(vec![5], TensorData::I4(vec![-8, 7, -1, 0, 5])).unwrap();
        let p = tensor_to_proto("w", &t);
        assert_eq!(p.raw_data.as_deref(), Some(&[0x78, 0x0f, 0x05][..]));
        assert_eq!(tensor_from_proto(&p).unwrap(), t);
        let t = Tensor::new(vec![2, 2], TensorData::U4(vec![15, 0, 9, 3])).unwrap();
        assert_eq!(tensor_from_proto(&tensor_to_proto("w", &t)).unwrap(), t);
    }

    #[test]
    fn int4_bad_lengths_and_values_are_errors() {
        let mut p = proto(DType::I4, vec![3]);
        p.raw_data = Some(vec![0; 3]);
        let err = tensor_from_proto(&p).unwrap_err().to_string();
        assert!(err.contains("raw_data has 3 bytes"), "{err}");
        let mut p = proto(DType::U4, vec![3]);
        p.int32_data = vec![1];
        let err = tensor_from_proto(&p).unwrap_err().to_string();
        assert!(err.contains("needs 2"), "{err}");
        let mut p = proto(DType::U4, vec![2]);
        p.int32_data = vec![256];
        let err = tensor_from_proto(&p).unwrap_err().to_string();
        assert!(err.contains("int32_data[0] = 256"), "{err}");
    }
}
