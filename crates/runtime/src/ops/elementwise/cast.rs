//! Cast and CastLike between every numeric dtype and bool.
//!
//! Rules (ONNX Cast spec): float to float rounds to nearest even and
//! overflows to infinity (f16/bf16 included); float to integer truncates
//! toward zero (out of range is undefined in ONNX; here it saturates and
//! NaN gives 0); integer to integer keeps the low bits (two's complement
//! wrap); anything to bool is `x != 0` (NaN is true); bool is 0 or 1.

use half::{bf16, f16};
use whittle_ir::DType;

use crate::op::{BuildCtx, Built};
use crate::ops::common::elem::{with_type, Num};
use crate::ops::elementwise::unary::{Convert, Map};
use crate::{Fact, OpError, Registry};

/// Registers the ops of this module.
pub fn register(r: &mut Registry) {
    r.add("Cast", build_cast);
    r.add("CastLike", build_cast_like);
}

/// Conversion from `I` with the rules in the module doc.
trait CastFrom<I> {
    fn cast_from(x: I) -> Self;
}

/// `as` between primitive numbers is exactly the rule set above.
macro_rules! cast_prims {
    ($($t:ty),*) => { cast_prims!(@each [$($t),*] $($t),*); };
    (@each $all:tt $($i:ty),*) => { $(cast_prims!(@one $i => $all);)* };
    (@one $i:ty => [$($o:ty),*]) => {$(
        impl CastFrom<$i> for $o {
            #[inline(always)]
            fn cast_from(x: $i) -> $o { x as $o }
        }
    )*};
}
cast_prims!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

/// Halves go through f64, which holds every f16/bf16/f32 value exactly, so
/// the narrowing rounds once.
macro_rules! cast_halves {
    ($($p:ty),*) => {$(
        impl CastFrom<$p> for f16 {
            #[inline(always)]
            fn cast_from(x: $p) -> f16 { f16::from_f64(x as f64) }
        }
        impl CastFrom<$p> for bf16 {
            #[inline(always)]
            fn cast_from(x: $p) -> bf16 { bf16::from_f64(x as f64) }
        }
        impl CastFrom<f16> for $p {
            #[inline(always)]
            fn cast_from(x: f16) -> $p { x.to_f64() as $p }
        }
        impl CastFrom<bf16> for $p {
            #[inline(always)]
            fn cast_from(x: bf16) -> $p { x.to_f64() as $p }
        }
    )*};
}
cast_halves!(f32, f64, i8, u8, i16, u16, i32, u32, i64, u64);

impl CastFrom<f16> for bf16 {
    fn cast_from(x: f16) -> bf16 {
        bf16::from_f32(x.to_f32())
    }
}

impl CastFrom<f16> for f16 {
    fn cast_from(x: f16) -> f16 {
        x
    }
}

impl CastFrom<bf16> for bf16 {
    fn cast_from(x: bf16) -> bf16 {
        x
    }
}

impl CastFrom<bf16> for f16 {
    fn cast_from(x: bf16) -> f16 {
        f16::from_f32(x.to_f32())
    }
}

/// The dtype of an ONNX `TensorProto.DataType` code (or, in opset 1, its
/// name).
pub(crate) fn onnx_dtype(code: i64) -> Option<DType> {
    Some(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        _ => return None,
    })
}

fn onnx_dtype_name(name: &str) -> Option<DType> {
    let code = match name.to_ascii_uppercase().as_str() {
        "FLOAT" => 1,
        "UINT8" => 2,
        "INT8" => 3,
        "UINT16" => 4,
        "INT16" => 5,
        "INT32" => 6,
        "INT64" => 7,
        "BOOL" => 9,
        "FLOAT16" => 10,
        "DOUBLE" => 11,
        "UINT32" => 12,
        "UINT64" => 13,
        "BFLOAT16" => 16,
        _ => return None,
    };
    onnx_dtype(code)
}

fn build_cast(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let to = match ctx.node.attr("to") {
        Some(whittle_ir::Attr::String(name)) => {
            onnx_dtype_name(name).ok_or_else(|| ctx.err(format!("cannot cast to type '{name}'")))?
        }
        _ => {
            let Some(code) = ctx.node.attr_int_opt("to")? else {
                return Err(ctx.err("attribute 'to' is required"));
            };
            onnx_dtype(code).ok_or_else(|| {
                ctx.err(format!(
                    "cannot cast to ONNX data type {code} (strings, float8 and 4-bit types are not supported)"
                ))
            })?
        }
    };
    cast(ctx, to)
}

fn build_cast_like(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let to = ctx.fact(1)?.dtype;
    cast(ctx, to)
}

/// A kernel converting input 0 to `to`.
fn cast(ctx: &BuildCtx<'_>, to: DType) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?;
    let from = fact.dtype;
    let numel = fact.numel();
    let outputs = vec![Fact::new(to, fact.shape.clone())];
    let name = format!("cast.{from}.{to}");
    if from == to {
        // A copy (or nothing, in place), typed by element size.
        return Ok(Built::Kernel {
            outputs,
            kernel: match from.size() {
                1 => Box::new(Map::new(name, numel, |x: u8| x)),
                2 => Box::new(Map::new(name, numel, |x: u16| x)),
                4 => Box::new(Map::new(name, numel, |x: u32| x)),
                _ => Box::new(Map::new(name, numel, |x: u64| x)),
            },
        });
    }
    macro_rules! convert {
        ($I:ty, $O:ty, $f:expr) => {
            Ok(Built::Kernel {
                outputs,
                kernel: Box::new(Convert::new(name, numel, $f)),
            })
        };
    }
    // Bool sources are 0/1 bytes, which convert like u8.
    let src = if from == DType::Bool { DType::U8 } else { from };
    with_type!(src, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], I => {
        if to == DType::Bool {
            return convert!(I, u8, |x: I| u8::from(Num::nonzero(x)));
        }
        with_type!(to, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], O =>
            convert!(I, O, |x: I| <O as CastFrom<I>>::cast_from(x)),
            _ => unreachable!("every dtype is listed"))
    }, _ => unreachable!("every dtype is listed"))
}
