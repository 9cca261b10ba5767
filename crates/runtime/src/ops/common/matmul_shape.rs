//! Numpy-style MatMul shape resolution, shared by the float MatMul and the
//! integer MatMuls so that they accept, reject and batch operands alike.

use crate::ops::common::broadcast::broadcast_shapes;
use crate::{BuildCtx, OpError};

/// The shapes of one (batched) matrix product `[.., m, k] x [.., k, n]`.
pub(crate) struct MatMulShape {
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    /// Per output batch: element offsets into A and B.
    pub(crate) offsets: Vec<(usize, usize)>,
    /// Distinct B matrices.
    pub(crate) b_batches: usize,
    /// A's rows of all batches are one contiguous `[nb * m, k]` matrix and
    /// B is a single matrix, so one GEMM covers every batch.
    pub(crate) flat: bool,
    /// The output shape.
    pub(crate) out: Vec<usize>,
}

impl MatMulShape {
    /// Resolves MatMul's operand shapes `a` and `b`: rank-1 operands are
    /// promoted (and their unit dim dropped from the output), batch dims
    /// broadcast. `operands` names the operands in the rank error.
    pub(crate) fn resolve(
        ctx: &BuildCtx<'_>,
        a: &[usize],
        b: &[usize],
        operands: &str,
    ) -> Result<MatMulShape, OpError> {
        if a.is_empty() || b.is_empty() {
            return Err(ctx.err(format!(
                "{operands} must have rank >= 1; got A {a:?}, B {b:?}"
            )));
        }
        let a2 = if a.len() == 1 {
            vec![1, a[0]]
        } else {
            a.to_vec()
        };
        let b2 = if b.len() == 1 {
            vec![b[0], 1]
        } else {
            b.to_vec()
        };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (k2, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != k2 {
            return Err(ctx.err(format!(
                "inner dims differ: A {a:?} has K = {k}, B {b:?} has K = {k2}"
            )));
        }
        let (ba, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
        let batch = broadcast_shapes(&[ba, bb]).ok_or_else(|| {
            ctx.err(format!(
                "batch dims of A {a:?} and B {b:?} do not broadcast"
            ))
        })?;
        let nb: usize = batch.iter().product();
        let mut out = batch.clone();
        if a.len() > 1 {
            out.push(m);
        }
        if b.len() > 1 {
            out.push(n);
        }
        let b_batches: usize = bb.iter().product();
        let a_batches: usize = ba.iter().product();
        let offsets = (0..nb)
            .map(|i| {
                (
                    batch_index(&batch, ba, i) * m * k,
                    batch_index(&batch, bb, i) * k * n,
                )
            })
            .collect();
        Ok(MatMulShape {
            m,
            n,
            k,
            offsets,
            b_batches,
            flat: b_batches == 1 && a_batches == nb,
            out,
        })
    }

    /// A single unbatched `[m, k] x [k, n]` product (Gemm-style ops).
    pub(crate) fn single(m: usize, n: usize, k: usize) -> MatMulShape {
        MatMulShape {
            m,
            n,
            k,
            offsets: vec![(0, 0)],
            b_batches: 1,
            flat: true,
            out: vec![m, n],
        }
    }

    /// Output batches.
    pub(crate) fn nb(&self) -> usize {
        self.offsets.len()
    }

    /// Multiply-accumulates of the whole product.
    pub(crate) fn macs(&self) -> u64 {
        (self.nb() * self.m * self.n * self.k) as u64
    }
}

/// Linear index into a batch of shape `shape` (right-aligned against
/// `out`, broadcast dims read index 0) of the output batch index `idx`.
pub(crate) fn batch_index(out: &[usize], shape: &[usize], mut idx: usize) -> usize {
    let mut lin = 0;
    let mut stride = 1;
    for (i, &d) in out.iter().enumerate().rev() {
        let coord = idx % d.max(1);
        idx /= d.max(1);
        let j = i as isize - (out.len() - shape.len()) as isize;
        if j >= 0 {
            let sd = shape[j as usize];
            if sd != 1 {
                lin += coord * stride;
            }
            stride *= sd;
        }
    }
    lin
}

/// Gemm's operands must be matrices; checked before its attributes are read.
pub(crate) fn gemm_ranks(ctx: &BuildCtx<'_>, a: &[usize], b: &[usize]) -> Result<(), OpError> {
    if a.len() != 2 || b.len() != 2 {
        return Err(ctx.err(format!("A {a:?} and B {b:?} must both be rank 2")));
    }
    Ok(())
}

/// Gemm's `(m, n, k)` from rank-2 `a` and `b` under the transpose flags.
/// With `mark_trans` the inner-dim error marks a transposed operand `^T`.
pub(crate) fn gemm_dims(
    ctx: &BuildCtx<'_>,
    (a, trans_a): (&[usize], bool),
    (b, trans_b): (&[usize], bool),
    mark_trans: bool,
) -> Result<(usize, usize, usize), OpError> {
    let (m, k) = if trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
    let (k2, n) = if trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
    if k != k2 {
        let t = |on: bool| if on && mark_trans { "^T" } else { "" };
        return Err(ctx.err(format!(
            "inner dims differ: A{} {a:?} gives K = {k}, B{} {b:?} gives K = {k2}",
            t(trans_a),
            t(trans_b)
        )));
    }
    Ok((m, n, k))
}

/// Gemm's C shape `cs` as `[cm, cn]` (left-padded with 1s), checked to
/// broadcast to the `[m, n]` output.
pub(crate) fn gemm_c_dims(
    ctx: &BuildCtx<'_>,
    cs: &[usize],
    m: usize,
    n: usize,
) -> Result<(usize, usize), OpError> {
    if cs.len() > 2 {
        return Err(ctx.err(format!("C {cs:?} has rank > 2")));
    }
    let mut c2 = [1usize; 2];
    c2[2 - cs.len()..].copy_from_slice(cs);
    let [cm, cn] = c2;
    if (cm != 1 && cm != m) || (cn != 1 && cn != n) {
        return Err(ctx.err(format!(
            "C {cs:?} does not broadcast to the output [{m}, {n}]"
        )));
    }
    Ok((cm, cn))
}
