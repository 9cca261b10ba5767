//! Sparse-weight x dense-activation products: `Y[M, N] = act(W[M, K] X[K, N]
//! + bias)` with W in [`Csr`] form, for pruned 1x1 convs (N = H*W) and
//! Gemm/MatMul layers with a constant weight.
//!
//! Two kernels, chosen by the shape:
//!
//! * [`spmm`], N wide (1x1 conv in NCHW, or a Gemm batch after a transpose):
//!   each nonzero `w` of an output row broadcasts and multiply-adds a row of
//!   X into the row's accumulators. N is cut into strips (128 floats on
//!   AVX-512) so that the strip of X every row of W reads stays in L1/L2
//!   while all rows sweep it; the accumulators stay in registers for the
//!   whole row, and two accumulator sets keep two FMA chains in flight.
//!   The work is the nonzeros times N, with no wasted lanes except the
//!   masked tail of a strip.
//! * [`spmv`], N = 1 (a batch-1 Gemm, the classifier): per output row, the
//!   inputs of sixteen nonzeros are gathered by column index. The dense
//!   GEMV streams the whole weight matrix, so the bytes saved (6 per
//!   nonzero with u16 indices instead of 4 per entry) set the speedup.
//!
//! [`linear`] serves a Gemm of any batch: [`spmv`] per row for small
//! batches, a transpose through scratch and [`spmm`] for larger ones.
//!
//! Why CSR and not blocks: pruning here is unstructured, so a block format
//! stores padding. With 4x1 blocks (four output rows sharing a column
//! index, so one X load feeds four FMAs) at density d, a fraction
//! `1 - (1 - d)^4` of blocks is nonempty: every true nonzero costs
//! `4 (1 - (1 - d)^4) / (4 d)` FMAs, 2.5x at d = 0.3, 3.4x at d = 0.1 and
//! 3.7x at d = 0.05, while the loads it saves are at most 4x. The CSR
//! kernel is FMA-bound with one load per FMA (Zen 5 issues two of each per
//! cycle), so a block format cannot win on unstructured sparsity; it pays
//! only for block-structured pruning, which the pruner does not produce.
//!
//! Every output element is accumulated in a fixed order that does not
//! depend on the thread count. The order differs from the dense GEMM's, so
//! results agree with it to rounding, not bit for bit.

mod format;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
#[cfg(test)]
mod tests;

use core::ops::Range;

pub use format::{ColIndex, Cols, Csr};

use crate::gemm::{balanced_tasks, for_each_chunk_mut, split_act, Exec, Isa, VecAct};
use crate::Activation;

/// Batches from which [`linear`] transposes to [`spmm`] instead of running
/// [`spmv`] per row (measured on the MobileNetV2 classifier, 1280 -> 1000:
/// at batch 8 the transposed form is already ahead at every density).
pub const SPMM_MIN_BATCH: usize = 8;

/// Borrowed CSR arrays with one concrete column index type.
pub(crate) struct RowsRef<'a, I> {
    pub(crate) ptr: &'a [u32],
    pub(crate) cols: &'a [I],
    pub(crate) vals: &'a [f32],
}

/// Calls `f` with the matrix's arrays at their index type.
macro_rules! with_rows {
    ($w:expr, |$r:ident| $body:expr) => {
        match $w.col_indices() {
            Cols::U16(c) => {
                let $r = RowsRef {
                    ptr: $w.row_ptr(),
                    cols: c.as_slice(),
                    vals: $w.values(),
                };
                $body
            }
            Cols::U32(c) => {
                let $r = RowsRef {
                    ptr: $w.row_ptr(),
                    cols: c.as_slice(),
                    vals: $w.values(),
                };
                $body
            }
        }
    };
}

/// Output rows per chunk handed to the task runner.
fn rows_per_chunk(exec: &dyn Exec, m: usize) -> usize {
    m.div_ceil(balanced_tasks(exec.max_tasks(), m))
}

/// `Y = act(W X + bias)`: `W` is `M x K`, `X` row-major `K x N`, `Y`
/// row-major `M x N`, `bias` one value per row of Y. Rows are spread over
/// `exec`'s tasks; results do not depend on the task count.
///
/// # Panics
/// If `x` is shorter than `K * n`, `y` than `M * n`, or `bias` than `M`.
#[allow(clippy::too_many_arguments)]
pub fn spmm(
    isa: Isa,
    w: &Csr,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    exec: &dyn Exec,
) {
    let (m, k) = (w.rows(), w.cols());
    assert!(x.len() >= k * n, "spmm: X shorter than K * N");
    assert!(y.len() >= m * n, "spmm: Y shorter than M * N");
    assert!(bias.is_none_or(|b| b.len() >= m), "spmm: bias too short");
    if m == 0 || n == 0 {
        return;
    }
    let (vact, scalar_act) = split_act(act);
    let chunk = rows_per_chunk(exec, m);
    with_rows!(w, |r| for_each_chunk_mut(
        exec,
        &mut y[..m * n],
        chunk * n,
        &|i, yc| {
            let rows = i * chunk..i * chunk + yc.len() / n;
            spmm_rows(isa, &r, rows, bias, vact, x, n, yc);
            if scalar_act {
                act.apply_slice(yc);
            }
        }
    ))
}

/// One chunk of [`spmm`] on the best kernel `isa` allows.
#[allow(clippy::too_many_arguments)]
fn spmm_rows<I: ColIndex>(
    isa: Isa,
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    n: usize,
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            // SAFETY: AVX-512F is present (`isa`); `w` comes from a `Csr`
            // (invariants hold, columns < K), and `spmm` checked that `x`
            // holds K * n floats, `bias` M values, and `y` (this chunk)
            // exactly `rows.len() * n` floats.
            unsafe { avx512::spmm(w, rows, bias, act, x, n, y) };
            return;
        }
        if isa.is_avx2() {
            // SAFETY: AVX2+FMA are present (`isa`); otherwise as above.
            unsafe { avx2::spmm(w, rows, bias, act, x, n, y) };
            return;
        }
    }
    let _ = isa;
    portable::spmm(w, rows, bias, act, x, n, y);
}

/// `y[b] = act(W x[b] + bias)` for each of `batch` rows: `x` is row-major
/// `batch x K`, `y` row-major `batch x M`. The rows of W of each batch row
/// are spread over `exec`'s tasks.
///
/// # Panics
/// If `x` is shorter than `batch * K`, `y` than `batch * M`, or `bias`
/// than `M`.
#[allow(clippy::too_many_arguments)]
pub fn spmv(
    isa: Isa,
    w: &Csr,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    batch: usize,
    y: &mut [f32],
    exec: &dyn Exec,
) {
    let (m, k) = (w.rows(), w.cols());
    assert!(x.len() >= k * batch, "spmv: X shorter than batch * K");
    assert!(y.len() >= m * batch, "spmv: Y shorter than batch * M");
    assert!(bias.is_none_or(|b| b.len() >= m), "spmv: bias too short");
    if m == 0 {
        return;
    }
    let (vact, scalar_act) = split_act(act);
    let chunk = rows_per_chunk(exec, m);
    for b in 0..batch {
        let xb = &x[b * k..][..k];
        with_rows!(w, |r| for_each_chunk_mut(
            exec,
            &mut y[b * m..][..m],
            chunk,
            &|i, yc| {
                let rows = i * chunk..i * chunk + yc.len();
                spmv_rows(isa, &r, rows, bias, vact, xb, yc);
                if scalar_act {
                    act.apply_slice(yc);
                }
            }
        ));
    }
}

/// One chunk of [`spmv`] on the best kernel `isa` allows.
fn spmv_rows<I: ColIndex>(
    isa: Isa,
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        // The gathers take i32 lane indices.
        let gather_ok = x.len() <= i32::MAX as usize;
        if isa.is_avx512() && gather_ok {
            // SAFETY: AVX-512F is present; `w` comes from a `Csr` whose
            // columns are < K = x.len() < 2^31; `y` holds `rows.len()`
            // floats and `bias` M values (checked by `spmv`).
            unsafe { avx512::spmv(w, rows, bias, act, x, y) };
            return;
        }
        if isa.is_avx2() && gather_ok {
            // SAFETY: AVX2+FMA are present; otherwise as above.
            unsafe { avx2::spmv(w, rows, bias, act, x, y) };
            return;
        }
    }
    let _ = isa;
    portable::spmv(w, rows, bias, act, x, y);
}

/// Scratch floats [`linear`] needs for `batch` rows.
pub fn linear_scratch_len(w: &Csr, batch: usize) -> usize {
    if batch >= SPMM_MIN_BATCH {
        (w.rows() + w.cols()) * batch
    } else {
        0
    }
}

/// A fully connected layer, `Y[B, M] = act(X[B, K] W^T + bias)` (Gemm with
/// `transB` and a per-output bias): [`spmv`] per row below
/// [`SPMM_MIN_BATCH`] rows, otherwise X is transposed into scratch so that
/// the batch becomes the vector dimension of [`spmm`], and the result is
/// transposed back.
///
/// # Panics
/// As [`spmv`], or if `scratch` is shorter than [`linear_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn linear(
    isa: Isa,
    w: &Csr,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    batch: usize,
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    if batch < SPMM_MIN_BATCH {
        return spmv(isa, w, bias, act, x, batch, y, exec);
    }
    let (m, k) = (w.rows(), w.cols());
    assert!(x.len() >= k * batch, "linear: X shorter than batch * K");
    assert!(y.len() >= m * batch, "linear: Y shorter than batch * M");
    assert!(
        scratch.len() >= (m + k) * batch,
        "linear: scratch too short"
    );
    let (xt, rest) = scratch.split_at_mut(k * batch);
    let yt = &mut rest[..m * batch];
    transpose(&x[..k * batch], batch, k, xt);
    spmm(isa, w, bias, act, xt, batch, yt, exec);
    transpose(yt, m, batch, &mut y[..m * batch]);
}

/// `dst[c * rows + r] = src[r * cols + c]`, in tiles so both sides stay in
/// cache.
fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const T: usize = 16;
    for r0 in (0..rows).step_by(T) {
        for c0 in (0..cols).step_by(T) {
            for r in r0..(r0 + T).min(rows) {
                for c in c0..(c0 + T).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}
