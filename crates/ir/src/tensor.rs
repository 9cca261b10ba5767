use crate::{DType, IrError, Result};

/// The elements of a tensor, one variant per [`DType`].
///
/// Typed vectors (rather than raw bytes) keep every buffer aligned for its
/// element type, so views can be cast with `bytemuck` without copying.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    /// [`DType::F32`] elements.
    F32(Vec<f32>),
    /// [`DType::F64`] elements.
    F64(Vec<f64>),
    /// [`DType::F16`] elements as raw IEEE half-precision bit patterns (no
    /// `f16` type is needed to store or move them).
    F16(Vec<u16>),
    /// [`DType::BF16`] elements as raw bfloat16 bit patterns (the upper 16
    /// bits of an `f32`).
    BF16(Vec<u16>),
    /// [`DType::I8`] elements.
    I8(Vec<i8>),
    /// [`DType::U8`] elements.
    U8(Vec<u8>),
    /// [`DType::I16`] elements.
    I16(Vec<i16>),
    /// [`DType::U16`] elements.
    U16(Vec<u16>),
    /// [`DType::I32`] elements.
    I32(Vec<i32>),
    /// [`DType::U32`] elements.
    U32(Vec<u32>),
    /// [`DType::I64`] elements.
    I64(Vec<i64>),
    /// [`DType::U64`] elements.
    U64(Vec<u64>),
    /// One byte per element, 0 or 1.
    Bool(Vec<u8>),
    /// One element per byte, each in [-8, 7].
    I4(Vec<i8>),
    /// One element per byte, each in [0, 15].
    U4(Vec<u8>),
}

/// Applies `$body` to the vector inside any [`TensorData`] variant.
macro_rules! dispatch {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::F32($v) => $body,
            TensorData::F64($v) => $body,
            TensorData::F16($v) => $body,
            TensorData::BF16($v) => $body,
            TensorData::I8($v) => $body,
            TensorData::U8($v) => $body,
            TensorData::I16($v) => $body,
            TensorData::U16($v) => $body,
            TensorData::I32($v) => $body,
            TensorData::U32($v) => $body,
            TensorData::I64($v) => $body,
            TensorData::U64($v) => $body,
            TensorData::Bool($v) => $body,
            TensorData::I4($v) => $body,
            TensorData::U4($v) => $body,
        }
    };
}

/// Applies `$body` to every element (as `f64`) of any variant and collects.
macro_rules! map_to {
    ($data:expr, $x:ident => $body:expr) => {
        match $data {
            TensorData::F32(v) => v.iter().map(|&$x| $body(f64::from($x))).collect(),
            TensorData::F64(v) => v.iter().map(|&$x| $body($x)).collect(),
            TensorData::F16(v) => v.iter().map(|&$x| $body(f16_to_f32($x) as f64)).collect(),
            TensorData::BF16(v) => v
                .iter()
                .map(|&$x| $body(f32::from_bits(u32::from($x) << 16) as f64))
                .collect(),
            TensorData::I8(v) | TensorData::I4(v) => {
                v.iter().map(|&$x| $body(f64::from($x))).collect()
            }
            TensorData::U8(v) | TensorData::Bool(v) | TensorData::U4(v) => {
                v.iter().map(|&$x| $body(f64::from($x))).collect()
            }
            TensorData::I16(v) => v.iter().map(|&$x| $body(f64::from($x))).collect(),
            TensorData::U16(v) => v.iter().map(|&$x| $body(f64::from($x))).collect(),
            TensorData::I32(v) => v.iter().map(|&$x| $body(f64::from($x))).collect(),
            TensorData::U32(v) => v.iter().map(|&$x| $body(f64::from($x))).collect(),
            TensorData::I64(v) => v.iter().map(|&$x| $body($x as f64)).collect(),
            TensorData::U64(v) => v.iter().map(|&$x| $body($x as f64)).collect(),
        }
    };
}

impl TensorData {
    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F64(_) => DType::F64,
            TensorData::F16(_) => DType::F16,
            TensorData::BF16(_) => DType::BF16,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::U16(_) => DType::U16,
            TensorData::I32(_) => DType::I32,
            TensorData::U32(_) => DType::U32,
            TensorData::I64(_) => DType::I64,
            TensorData::U64(_) => DType::U64,
            TensorData::Bool(_) => DType::Bool,
            TensorData::I4(_) => DType::I4,
            TensorData::U4(_) => DType::U4,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        dispatch!(self, v => v.len())
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as little-endian bytes (the host is little-endian).
    pub fn as_bytes(&self) -> &[u8] {
        dispatch!(self, v => bytemuck::cast_slice(v.as_slice()))
    }

    /// The elements as mutable bytes.
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        dispatch!(self, v => bytemuck::cast_slice_mut(v.as_mut_slice()))
    }

    /// `len` zero elements of `dtype`.
    pub fn zeros(dtype: DType, len: usize) -> TensorData {
        match dtype {
            DType::F32 => TensorData::F32(vec![0.0; len]),
            DType::F64 => TensorData::F64(vec![0.0; len]),
            DType::F16 => TensorData::F16(vec![0; len]),
            DType::BF16 => TensorData::BF16(vec![0; len]),
            DType::I8 => TensorData::I8(vec![0; len]),
            DType::U8 => TensorData::U8(vec![0; len]),
            DType::I16 => TensorData::I16(vec![0; len]),
            DType::U16 => TensorData::U16(vec![0; len]),
            DType::I32 => TensorData::I32(vec![0; len]),
            DType::U32 => TensorData::U32(vec![0; len]),
            DType::I64 => TensorData::I64(vec![0; len]),
            DType::U64 => TensorData::U64(vec![0; len]),
            DType::Bool => TensorData::Bool(vec![0; len]),
            DType::I4 => TensorData::I4(vec![0; len]),
            DType::U4 => TensorData::U4(vec![0; len]),
        }
    }

    /// For I4/U4 data, an error naming the first element outside the 4-bit
    /// range (in-memory values are one per byte, so a byte can hold more).
    pub fn check_int4_range(&self) -> Result<()> {
        let bad = match self {
            TensorData::I4(v) => v
                .iter()
                .position(|&x| !(-8..=7).contains(&x))
                .map(|i| (i, i64::from(v[i]))),
            TensorData::U4(v) => v.iter().position(|&x| x > 15).map(|i| (i, i64::from(v[i]))),
            _ => None,
        };
        match bad {
            Some((i, x)) => Err(IrError::Invalid(format!(
                "element {i} = {x} is out of range for {}",
                self.dtype()
            ))),
            None => Ok(()),
        }
    }

    /// Builds data of `dtype` from little-endian bytes. The byte count must be
    /// a multiple of the element size.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Result<TensorData> {
        let size = dtype.size();
        if !bytes.len().is_multiple_of(size) {
            return Err(IrError::Invalid(format!(
                "{} bytes is not a whole number of {dtype} elements",
                bytes.len()
            )));
        }
        let mut data = TensorData::zeros(dtype, bytes.len() / size);
        data.as_bytes_mut().copy_from_slice(bytes);
        if let TensorData::Bool(v) = &mut data {
            v.iter_mut().for_each(|b| *b = u8::from(*b != 0));
        }
        data.check_int4_range()?;
        Ok(data)
    }
}

/// Converts IEEE half-precision bits to f32.
pub(crate) fn f16_to_f32(bits: u16) -> f32 {
    let sign = u32::from(bits >> 15) << 31;
    let exp = u32::from((bits >> 10) & 0x1f);
    let mant = u32::from(bits & 0x3ff);
    let out = if exp == 0 {
        if mant == 0 {
            sign
        } else {
            // Subnormal half: renormalise.
            let shift = mant.leading_zeros() - 21;
            let mant = (mant << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (mant << 13)
        }
    } else if exp == 0x1f {
        sign | 0x7f80_0000 | (mant << 13)
    } else {
        sign | ((exp + 112) << 23) | (mant << 13)
    };
    f32::from_bits(out)
}

/// A dense tensor with a static shape: the constant values of a graph
/// (initializers, folded constants) and the host-side inputs and outputs of
/// a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

/// Product of dims, or `None` on overflow.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

impl Tensor {
    /// A tensor from a shape and data whose length matches it (and, for
    /// I4/U4, whose values are in the 4-bit range).
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Tensor> {
        let expected = checked_numel(&shape).ok_or_else(|| IrError::TooLarge {
            shape: shape.clone(),
            limit: usize::MAX,
        })?;
        if expected != data.len() {
            return Err(IrError::DataLength {
                shape,
                len: data.len(),
                expected,
            });
        }
        data.check_int4_range()?;
        Ok(Tensor { shape, data })
    }

    /// An f32 tensor.
    pub fn from_f32(shape: Vec<usize>, values: Vec<f32>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::F32(values))
    }

    /// An i64 tensor.
    pub fn from_i64(shape: Vec<usize>, values: Vec<i64>) -> Result<Tensor> {
        Tensor::new(shape, TensorData::I64(values))
    }

    /// The value of a one-element tensor (any shape, any numeric dtype) as
    /// f32; `None` when it holds more or fewer elements.
    pub fn as_scalar_f32(&self) -> Option<f32> {
        if self.numel() != 1 {
            return None;
        }
        self.to_f32_vec().first().copied()
    }

    /// A rank-0 f32 tensor.
    pub fn scalar_f32(v: f32) -> Tensor {
        Tensor {
            shape: vec![],
            data: TensorData::F32(vec![v]),
        }
    }

    /// A rank-0 i64 tensor.
    pub fn scalar_i64(v: i64) -> Tensor {
        Tensor {
            shape: vec![],
            data: TensorData::I64(vec![v]),
        }
    }

    /// A rank-1 i64 tensor.
    pub fn vec_i64(values: Vec<i64>) -> Tensor {
        Tensor {
            shape: vec![values.len()],
            data: TensorData::I64(values),
        }
    }

    /// A zero-filled tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Result<Tensor> {
        let n = checked_numel(&shape).ok_or_else(|| IrError::TooLarge {
            shape: shape.clone(),
            limit: usize::MAX,
        })?;
        Ok(Tensor {
            data: TensorData::zeros(dtype, n),
            shape,
        })
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.data.dtype()
    }

    /// Dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Rank (number of dimensions).
    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Size of the data in bytes.
    pub fn byte_size(&self) -> usize {
        self.numel() * self.dtype().size()
    }

    /// The elements.
    pub fn data(&self) -> &TensorData {
        &self.data
    }

    /// The elements, mutably.
    pub fn data_mut(&mut self) -> &mut TensorData {
        &mut self.data
    }

    /// Splits into shape and data.
    pub fn into_parts(self) -> (Vec<usize>, TensorData) {
        (self.shape, self.data)
    }

    /// Same data under a new shape with the same element count.
    pub fn reshaped(self, shape: Vec<usize>) -> Result<Tensor> {
        Tensor::new(shape, self.data)
    }

    /// The f32 elements, or an error for another dtype.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Ok(v),
            other => Err(IrError::DType {
                expected: "f32",
                found: other.dtype(),
            }),
        }
    }

    /// The f32 elements, mutably.
    pub fn as_f32_mut(&mut self) -> Result<&mut [f32]> {
        match &mut self.data {
            TensorData::F32(v) => Ok(v),
            other => Err(IrError::DType {
                expected: "f32",
                found: other.dtype(),
            }),
        }
    }

    /// The i64 elements, or an error for another dtype.
    pub fn as_i64(&self) -> Result<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Ok(v),
            other => Err(IrError::DType {
                expected: "i64",
                found: other.dtype(),
            }),
        }
    }

    /// Elements of any integer (or bool) dtype widened to i64: how shape,
    /// axes and index tensors are read whatever type the exporter chose.
    pub fn to_i64_vec(&self) -> Result<Vec<i64>> {
        Ok(match &self.data {
            TensorData::I64(v) => v.clone(),
            TensorData::I32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::I8(v) | TensorData::I4(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U8(v) | TensorData::Bool(v) | TensorData::U4(v) => {
                v.iter().map(|&x| i64::from(x)).collect()
            }
            TensorData::U16(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U32(v) => v.iter().map(|&x| i64::from(x)).collect(),
            TensorData::U64(v) => v
                .iter()
                .map(|&x| {
                    i64::try_from(x)
                        .map_err(|_| IrError::Invalid(format!("{x} does not fit in i64")))
                })
                .collect::<Result<_>>()?,
            other => {
                return Err(IrError::DType {
                    expected: "an integer type",
                    found: other.dtype(),
                })
            }
        })
    }

    /// Elements of any dtype converted to f64 (lossless for all but u64/i64
    /// beyond 2^53).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        map_to!(&self.data, x => |v: f64| v)
    }

    /// Elements of any dtype converted to f32.
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.data {
            TensorData::F32(v) => v.clone(),
            other => map_to!(other, x => |v: f64| v as f32),
        }
    }

    /// The elements as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.data.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_rejects_wrong_length() {
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 5]).is_err());
        assert!(Tensor::from_f32(vec![2, 3], vec![0.0; 6]).is_ok());
    }

    #[test]
    fn new_rejects_overflowing_shape() {
        let err = Tensor::zeros(DType::F32, vec![usize::MAX, 2]).unwrap_err();
        assert!(matches!(err, IrError::TooLarge { .. }));
    }

    #[test]
    fn bytes_round_trip() {
        let t = Tensor::from_f32(vec![2], vec![1.5, -2.0]).unwrap();
        let back = TensorData::from_le_bytes(DType::F32, t.as_bytes()).unwrap();
        assert_eq!(&back, t.data());
        assert!(TensorData::from_le_bytes(DType::F32, &[0, 1, 2]).is_err());
    }

    #[test]
    fn integer_widening() {
        let t = Tensor::new(vec![3], TensorData::I32(vec![-1, 0, 7])).unwrap();
        assert_eq!(t.to_i64_vec().unwrap(), vec![-1, 0, 7]);
        assert!(Tensor::scalar_f32(1.0).to_i64_vec().is_err());
    }

    #[test]
    fn int4_values_are_range_checked() {
        assert!(Tensor::new(vec![2], TensorData::I4(vec![-8, 7])).is_ok());
        assert!(Tensor::new(vec![1], TensorData::I4(vec![8])).is_err());
        assert!(Tensor::new(vec![2], TensorData::U4(vec![0, 15])).is_ok());
        let err = Tensor::new(vec![2], TensorData::U4(vec![3, 16])).unwrap_err();
        assert!(err.to_string().contains("element 1 = 16"), "{err}");
        assert!(TensorData::from_le_bytes(DType::I4, &[0xf8]).is_ok());
        assert!(TensorData::from_le_bytes(DType::I4, &[0x07, 0x08]).is_err());
        assert_eq!(DType::I4.size(), 1);
        assert!(DType::U4.is_integer());
    }

    #[test]
    fn half_conversion() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7e00).is_nan());
    }
}
