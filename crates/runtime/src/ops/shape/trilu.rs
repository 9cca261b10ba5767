//! Trilu (upper or lower triangle of the last two axes) and EyeLike. Trilu
//! copies or zeroes raw bytes, so it serves every dtype; its diagonal
//! offset `k` is an input read at run time. EyeLike depends only on its
//! input's shape, so it is a compile-time constant.

use whittle_ir::{DType, Tensor, TensorData};

use crate::ops::common::const_size::check_const_size;
use crate::ops::common::shape_util::{numel, scalar_bytes};
use crate::ops::elementwise::cast::onnx_dtype;
use crate::{BuildCtx, Built, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers Trilu and EyeLike.
pub fn register(r: &mut Registry) {
    r.add("Trilu", trilu);
    r.add("EyeLike", eye_like);
}

struct Trilu {
    upper: bool,
    matrices: usize,
    rows: usize,
    cols: usize,
    elem: usize,
}

impl Kernel for Trilu {
    fn name(&self) -> String {
        if self.upper { "triu" } else { "tril" }.into()
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let k = match inputs.get(1).filter(|v| !v.bytes().is_empty()) {
            Some(v) => *v
                .i64()
                .first()
                .ok_or(RunError::Unsupported("Trilu k is empty"))?,
            None => 0,
        };
        let out = outputs[0].bytes();
        let row = self.cols * self.elem;
        if out.len() != self.matrices * self.rows * row {
            return Err(RunError::Unsupported(
                "buffer size differs from the compiled shape",
            ));
        }
        if !inputs[0].is_aliased() {
            let x = inputs[0].bytes();
            if x.len() != out.len() {
                return Err(RunError::Unsupported(
                    "buffer size differs from the compiled shape",
                ));
            }
            out.copy_from_slice(x);
        }
        if out.is_empty() {
            // A zero-sized matrix has nothing to zero (and no row length to chunk by).
            return Ok(());
        }
        let cols = self.cols as i64;
        for (r, line) in out.chunks_exact_mut(row).enumerate() {
            let i = (r % self.rows) as i64;
            // Kept columns: j - i >= k (upper) or j - i <= k (lower).
            let edge = i.saturating_add(k);
            let (zero_from, zero_to) = if self.upper {
                (0, edge.clamp(0, cols))
            } else {
                (edge.saturating_add(1).clamp(0, cols), cols)
            };
            line[zero_from as usize * self.elem..zero_to as usize * self.elem].fill(0);
        }
        Ok(())
    }
}

fn trilu(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    if r < 2 {
        return Err(ctx.err(format!(
            "input must have rank 2 or more, found shape {:?}",
            fact.shape
        )));
    }
    if let Some(k) = ctx.opt_input(1) {
        ctx.expect_dtype(1, &[DType::I64])?;
        if k.fact.numel() != 1 {
            return Err(ctx.err(format!(
                "k must be a scalar, found shape {:?}",
                k.fact.shape
            )));
        }
    }
    let upper = match ctx.node.attr_int("upper", 1)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("upper must be 0 or 1, found {v}"))),
    };
    numel(ctx, &fact.shape)?;
    Ok(Built::Kernel {
        outputs: vec![fact.clone()],
        kernel: Box::new(Trilu {
            upper,
            matrices: fact.shape[..r - 2].iter().product(),
            rows: fact.shape[r - 2],
            cols: fact.shape[r - 1],
            elem: fact.dtype.size(),
        }),
    })
}

fn eye_like(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?;
    let [rows, cols]: [usize; 2] = fact
        .shape
        .as_slice()
        .try_into()
        .map_err(|_| ctx.err(format!("input must be 2-D, found shape {:?}", fact.shape)))?;
    let dtype = match ctx.node.attr_int_opt("dtype")? {
        Some(code) => {
            onnx_dtype(code).ok_or_else(|| ctx.err(format!("dtype {code} is not supported")))?
        }
        None => fact.dtype,
    };
    let k = ctx.node.attr_int("k", 0)?;
    check_const_size(ctx, &fact.shape, dtype)?;
    let elem = dtype.size();
    let one = scalar_bytes(dtype, 1.0);
    let mut bytes = vec![0u8; rows * cols * elem];
    for i in 0..rows {
        let j = i as i64 + k;
        if (0..cols as i64).contains(&j) {
            let at = (i * cols + j as usize) * elem;
            bytes[at..at + elem].copy_from_slice(&one[..elem]);
        }
    }
    let data = TensorData::from_le_bytes(dtype, &bytes)?;
    Ok(Built::Constant(vec![Tensor::new(vec![rows, cols], data)?]))
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::case_check::*;
    use crate::ops::testing::test_support::{build_err, tf, tl};
    use whittle_ir::Attr;

    include!("trilu_cases.rs");

    #[test]
    fn matches_references() {
        check_all(CASES);
    }

    #[test]
    fn extreme_k_zeroes_or_keeps_everything() {
        // numpy: np.triu(m, k) for k far outside the matrix.
        let m = || Some(tf(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
        let k = |v| Some(tl(&[], &[v]));
        let run = |k, upper| {
            crate::ops::testing::test_support::eval(
                "Trilu",
                14,
                &[m(), k],
                1,
                &[("upper", Attr::Int(upper))],
            )
            .unwrap()[0]
                .as_f32()
                .unwrap()
                .to_vec()
        };
        assert_eq!(run(k(i64::MAX), 1), vec![0.0; 4]);
        assert_eq!(run(k(i64::MIN), 1), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(run(k(i64::MAX), 0), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(run(k(i64::MIN), 0), vec![0.0; 4]);
    }

    #[test]
    fn eyelike_refuses_huge_constants() {
        use crate::op::{BuildCtx, InputFact};
        use crate::{Fact, Registry};
        let n =
            crate::ops::testing::test_support::node("EyeLike", &[Some(tf(&[1], &[0.0]))], 1, &[]);
        let ctx = BuildCtx {
            node: &n,
            inputs: vec![Some(InputFact {
                fact: Fact::new(whittle_ir::DType::Bool, vec![1 << 20, 1 << 20]),
                value: None,
            })],
            opset: 9,
        };
        let e = Registry::standard().get("", "EyeLike").unwrap()(&ctx).unwrap_err();
        assert!(e.to_string().contains("byte limit"), "{e}");
    }

    #[test]
    fn rejects_bad_inputs() {
        let e = build_err("Trilu", 14, &[Some(tf(&[3], &[0.0; 3]))], &[]);
        assert!(e.contains("rank 2"), "{e}");
        let e = build_err(
            "Trilu",
            14,
            &[Some(tf(&[2, 2], &[0.0; 4])), Some(tl(&[2], &[0, 1]))],
            &[],
        );
        assert!(e.contains("scalar"), "{e}");
        let e = build_err(
            "Trilu",
            14,
            &[Some(tf(&[2, 2], &[0.0; 4]))],
            &[("upper", Attr::Int(5))],
        );
        assert!(e.contains("upper"), "{e}");
        let e = build_err("EyeLike", 9, &[Some(tf(&[2, 2, 2], &[0.0; 8]))], &[]);
        assert!(e.contains("2-D"), "{e}");
        let e = build_err(
            "EyeLike",
            9,
            &[Some(tf(&[2, 2], &[0.0; 4]))],
            &[("dtype", Attr::Int(8))],
        );
        assert!(e.contains("dtype 8"), "{e}");
    }
}
