//! Shrink: `x + bias` below `-lambd`, `x - bias` above `lambd`, else 0.
//! Every numeric dtype; the arithmetic runs in f64 and rounds once, which
//! equals the f32 (or integer, truncating) result onnxruntime computes.

use crate::ops::elem::{with_type, Num, NUMERIC};
use crate::ops::unary::Map;
use crate::{BuildCtx, Built, Fact, OpError, Registry};

/// Registers Shrink.
pub fn register(r: &mut Registry) {
    r.add("Shrink", shrink);
}

fn shrink(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let dtype = ctx.expect_dtype(0, NUMERIC)?;
    let fact = ctx.fact(0)?.clone();
    let lambd = f64::from(ctx.node.attr_float("lambd", 0.5)?);
    let bias = f64::from(ctx.node.attr_float("bias", 0.0)?);
    let n = fact.numel();
    let name = format!("shrink.{dtype}");
    with_type!(dtype, [F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64], T => {
        let f = move |x: T| {
            let v = x.to_f64();
            if v < -lambd {
                T::from_f64(v + bias)
            } else if v > lambd {
                T::from_f64(v - bias)
            } else {
                T::ZERO
            }
        };
        Ok(Built::Kernel {
            outputs: vec![Fact::new(dtype, fact.shape)],
            kernel: Box::new(Map::new(name, n, f)),
        })
    }, _ => Err(ctx.err(format!("dtype {dtype} is not supported"))))
}

#[cfg(test)]
mod tests {
    use super::super::case_check::*;
    use super::super::test_support::{build_err, tb};

    include!("testdata/shrink_cases.rs");

    #[test]
    fn matches_references() {
        check_all(CASES);
    }

    #[test]
    fn rejects_bool() {
        let e = build_err("Shrink", 9, &[Some(tb(&[2], &[0, 1]))], &[]);
        assert!(e.contains("dtype"), "{e}");
    }
}
