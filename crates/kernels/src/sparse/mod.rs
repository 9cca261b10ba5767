//! Sparse-weight x dense-activation products, `Y[M, N] = act(W[M, K]
//! X[K, N] + bias)` with W in [`Csr`] form, for pruned 1x1 convs (N = H*W)
//! and Gemm/MatMul layers with a constant weight.
//!
//! Two kernels, chosen by the shape:
//!
//! * [`spmm`], N wide (1x1 conv in NCHW, or a Gemm batch after a transpose):
//!   each nonzero `w` of an output row broadcasts and multiply-adds a row of
//!   X into the row's accumulators. N is cut into strips (128 floats on
//!   AVX-512) and K into depth blocks of [`KBLOCK`], so that the block of
//!   X every row of W reads stays in L1/L2 while all rows sweep it; the
//!   accumulators stay in registers for a row's whole depth block, and two
//!   accumulator sets keep two FMA chains in flight. When N is not a
//!   multiple of the vector width, X is first copied into aligned strips.
//!   The work is the nonzeros times N, with no wasted lanes except the
//!   masked tail of a strip.
//! * [`spmv`], N = 1 (a batch-1 Gemm, the classifier): per output row, the
//!   inputs of its nonzeros are gathered by column index (`vgatherdps`).
//!   On AVX-512, [`SparseLinear`] runs the GEMV from a sliced-ELL copy
//!   instead ([`Sell`]: sixteen rows as lanes, inputs fetched from two
//!   registers by `vpermt2ps`), 3.6x faster than the gathers at 70%
//!   sparsity on Zen 5, which is what makes the GEMV beat the dense one.
//!
//! [`SparseLinear`] serves a Gemm of any batch: the GEMV per row for small
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
//! Instruction sets: AVX-512 and AVX2+FMA chosen at run time, NEON on
//! aarch64 (the wide kernel; the GEMV runs the portable code there), and
//! portable Rust elsewhere.
//!
//! Every output element is accumulated in a fixed order that does not
//! depend on the thread count. The order differs from the dense GEMM's, so
//! results agree with it to rounding, not bit for bit.

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod format;
#[cfg(target_arch = "aarch64")]
mod neon;
mod portable;
mod sell;
#[cfg(test)]
mod tests;

use core::ops::Range;

pub use format::{ColIndex, Cols, Csr, KBLOCK};
pub use sell::Sell;

use crate::gemm::{balanced_tasks, for_each_chunk_mut, split_act, Exec, Isa, VecAct};
use crate::Activation;

/// Batches from which [`SparseLinear::run`] transposes to [`spmm`] instead
/// of running the GEMV per row. Measured on the MobileNetV2 classifier
/// (1280 -> 1000, Zen 5, AVX-512), GEMV per row vs [`spmm`] with N =
/// batch, in us: at 70% sparsity batch 8 248 vs 292, batch 16 499 vs 291;
/// at 95% batch 8 55 vs 104, batch 16 111 vs 54 (narrow N wastes most of
/// the strip's lanes).
pub const SPMM_MIN_BATCH: usize = 16;

/// Borrowed CSR arrays with one concrete column index type.
pub(crate) struct RowsRef<'a, I> {
    pub(crate) ptr: &'a [u32],
    /// Row pointers per depth block ([`Csr::kblock_ptr`]).
    pub(crate) kptr: &'a [u32],
    /// Depth blocks.
    pub(crate) kblocks: usize,
    /// Columns (K).
    pub(crate) ncols: usize,
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
                    kptr: $w.kblock_ptr(),
                    kblocks: $w.kblocks(),
                    ncols: $w.cols(),
                    cols: c.as_slice(),
                    vals: $w.values(),
                };
                $body
            }
            Cols::U32(c) => {
                let $r = RowsRef {
                    ptr: $w.row_ptr(),
                    kptr: $w.kblock_ptr(),
                    kblocks: $w.kblocks(),
                    ncols: $w.cols(),
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

/// How the SIMD kernels cut N: floats per strip and per vector, or `None`
/// for the portable kernel.
fn strips(isa: Isa, w: &Csr) -> Option<(usize, usize)> {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            return Some((avx512::strip_floats(), 16));
        }
        if isa.is_avx2() {
            return Some((avx2::strip_floats(), 8));
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // NEON is the aarch64 baseline.
        let _ = (isa, w);
        Some((neon::strip_floats(), 4))
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (isa, w);
        None
    }
}

/// Floats of X repacked for the SIMD kernels when N is not a whole number
/// of vectors, or `None` when they read X in place.
fn packed_len(isa: Isa, w: &Csr, n: usize) -> Option<usize> {
    let (sw, lanes) = strips(isa, w)?;
    if n.is_multiple_of(lanes) || w.cols() == 0 {
        return None;
    }
    Some(w.cols() * (n / sw * sw + (n % sw).div_ceil(lanes) * lanes))
}

/// Scratch floats [`spmm`] needs for N = `n` on `isa`: when N is not a
/// multiple of the vector width (14x14 and 7x7 maps), every row of X
/// would start mid-cache-line and each vector load would touch two lines,
/// so X is first copied into 64-byte aligned strips padded to whole
/// vectors (which also makes a depth block of a strip one contiguous,
/// L1-sized tile). The copy costs one read of X; each element of X is then
/// read once per nonzero of its column.
pub fn spmm_scratch_len(isa: Isa, w: &Csr, n: usize) -> usize {
    packed_len(isa, w, n).map_or(0, |l| l + 16)
}

/// `Y = act(W X + bias)`: `W` is `M x K`, `X` row-major `K x N`, `Y`
/// row-major `M x N`, `bias` one value per row of Y. Rows are spread over
/// `exec`'s tasks; results do not depend on the task count.
///
/// # Panics
/// If `x` is shorter than `K * n`, `y` than `M * n`, `bias` than `M`, or
/// `scratch` than [`spmm_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn spmm(
    isa: Isa,
    w: &Csr,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    n: usize,
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    let (m, k) = (w.rows(), w.cols());
    assert!(x.len() >= k * n, "spmm: X shorter than K * N");
    assert!(y.len() >= m * n, "spmm: Y shorter than M * N");
    assert!(bias.is_none_or(|b| b.len() >= m), "spmm: bias too short");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        // Nothing to multiply: every row is its activated bias.
        for (i, row) in y[..m * n].chunks_exact_mut(n).enumerate() {
            row.fill(act.apply(bias.map_or(0.0, |b| b[i])));
        }
        return;
    }
    let (xp, packed) = match (packed_len(isa, w, n), strips(isa, w)) {
        (Some(len), Some((sw, lanes))) => {
            assert!(
                scratch.len() >= len + 16,
                "spmm: scratch shorter than spmm_scratch_len"
            );
            let off = scratch.as_ptr().align_offset(64).min(16);
            let dst = &mut scratch[off..off + len];
            pack_strips(&x[..k * n], k, n, sw, lanes, dst);
            (dst.as_ptr(), true)
        }
        _ => (x.as_ptr(), false),
    };
    let xsrc = XSrc(xp);
    let (vact, scalar_act) = split_act(isa, act);
    let chunk = rows_per_chunk(exec, m);
    with_rows!(w, |r| for_each_chunk_mut(
        exec,
        &mut y[..m * n],
        chunk * n,
        &|i, yc| {
            let rows = i * chunk..i * chunk + yc.len() / n;
            let xsrc = &xsrc;
            spmm_rows(isa, &r, rows, bias, vact, x, xsrc.0, packed, n, yc);
            if scalar_act {
                act.apply_slice(yc);
            }
        }
    ))
}

/// X (or its packed strips) as shared by the row tasks, read only.
struct XSrc(*const f32);

// SAFETY: the pointee is only read, and outlives every task (`spmm` holds
// the borrow of `x`/`scratch` until `for_each_chunk_mut` returns).
unsafe impl Sync for XSrc {}

/// Copies X into strips of `sw` columns, each a `k x vpad` block (its
/// width rounded up to `lanes`, zero-padded) at `dst[k * j0..]`.
fn pack_strips(x: &[f32], k: usize, n: usize, sw: usize, lanes: usize, dst: &mut [f32]) {
    let mut j0 = 0;
    while j0 < n {
        let wd = sw.min(n - j0);
        let vp = wd.div_ceil(lanes) * lanes;
        let tile = &mut dst[k * j0..][..k * vp];
        for (r, row) in tile.chunks_exact_mut(vp).enumerate() {
            row[..wd].copy_from_slice(&x[r * n + j0..][..wd]);
            row[wd..].fill(0.0);
        }
        j0 += wd;
    }
}

/// One chunk of [`spmm`] on the best kernel `isa` allows; `xp` is X or
/// its packed strips (`packed`).
#[allow(clippy::too_many_arguments)]
fn spmm_rows<I: ColIndex>(
    isa: Isa,
    w: &RowsRef<'_, I>,
    rows: Range<usize>,
    bias: Option<&[f32]>,
    act: VecAct,
    x: &[f32],
    xp: *const f32,
    packed: bool,
    n: usize,
    y: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if isa.is_avx512() {
            // SAFETY: AVX-512F is present (`isa`); `w` comes from a `Csr`
            // (invariants hold, columns < K, K >= 1); `spmm` checked that
            // `x` holds K * n floats (or packed them for this `isa` into
            // `xp`), `bias` M values, and `y` (this chunk) is exactly
            // `rows.len() * n` floats.
            unsafe { avx512::spmm(w, rows, bias, act, xp, packed, n, y) };
            return;
        }
        if isa.is_avx2() {
            // SAFETY: AVX2+FMA are present (`isa`); otherwise as above.
            unsafe { avx2::spmm(w, rows, bias, act, xp, packed, n, y) };
            return;
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is the aarch64 baseline; `w` comes from a `Csr`
        // (columns < K, K >= 1); `xp` is X with N a multiple of 4 or its
        // strips packed for 4 lanes by `spmm` (see `packed_len`), so whole
        // vectors are readable; `bias` holds M values and `y` this chunk's
        // `rows.len() * n` floats.
        unsafe { neon::spmm(w, rows, bias, act, xp, packed, n, y) };
        let _ = (isa, x);
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (isa, xp, packed);
        portable::spmm(w, rows, bias, act, x, n, y);
    }
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
    let (vact, scalar_act) = split_act(isa, act);
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

/// A constant fully connected weight `W[M, K]` prepared for every batch
/// size: `Y[B, M] = act(X[B, K] W^T + bias)` (Gemm with `transB` and a
/// per-output bias, or MatMul with the weight transposed).
///
/// Below [`SPMM_MIN_BATCH`] rows each row is a GEMV: on AVX-512 from the
/// sliced-ELL copy ([`Sell`], in-register gathers), elsewhere [`spmv`].
/// From [`SPMM_MIN_BATCH`] rows, X is transposed into scratch so that the
/// batch becomes the vector dimension of [`spmm`], and the result is
/// transposed back.
#[derive(Clone, Debug)]
pub struct SparseLinear {
    csr: Csr,
    sell: Option<Sell>,
}

impl SparseLinear {
    /// Prepares `w` for `isa` (the sliced-ELL copy only where AVX-512 can
    /// run it).
    pub fn new(isa: Isa, w: Csr) -> SparseLinear {
        let sell = if isa.is_avx512() {
            Sell::from_csr(&w)
        } else {
            None
        };
        SparseLinear { csr: w, sell }
    }

    /// The weight.
    pub fn csr(&self) -> &Csr {
        &self.csr
    }

    /// Bytes held (both forms).
    pub fn bytes(&self) -> usize {
        self.csr.bytes() + self.sell.as_ref().map_or(0, Sell::bytes)
    }

    /// Scratch floats [`SparseLinear::run`] needs for `batch` rows on `isa`.
    pub fn scratch_len(&self, isa: Isa, batch: usize) -> usize {
        let w = &self.csr;
        if batch >= SPMM_MIN_BATCH {
            (w.rows() + w.cols()) * batch + spmm_scratch_len(isa, w, batch)
        } else {
            0
        }
    }

    /// `y = act(x W^T + bias)` for `batch` rows: `x` row-major `batch x
    /// K`, `y` row-major `batch x M`, `bias` `M` values.
    ///
    /// # Panics
    /// If `x`, `y` or `bias` are too short, or `scratch` is shorter than
    /// [`SparseLinear::scratch_len`].
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        isa: Isa,
        bias: Option<&[f32]>,
        act: Activation,
        x: &[f32],
        batch: usize,
        y: &mut [f32],
        scratch: &mut [f32],
        exec: &dyn Exec,
    ) {
        let w = &self.csr;
        let (m, k) = (w.rows(), w.cols());
        assert!(x.len() >= k * batch, "linear: X shorter than batch * K");
        assert!(y.len() >= m * batch, "linear: Y shorter than batch * M");
        assert!(bias.is_none_or(|b| b.len() >= m), "linear: bias too short");
        if batch < SPMM_MIN_BATCH {
            #[cfg(target_arch = "x86_64")]
            if let (true, Some(sell)) = (isa.is_avx512(), &self.sell) {
                let (vact, scalar_act) = split_act(isa, act);
                let groups = m.div_ceil(sell::LANES);
                let chunk = rows_per_chunk(exec, groups);
                for b in 0..batch {
                    let xb = &x[b * k..][..k];
                    for_each_chunk_mut(
                        exec,
                        &mut y[b * m..][..m],
                        chunk * sell::LANES,
                        &|i, yc| {
                            let g0 = i * chunk;
                            let gs = g0..g0 + yc.len().div_ceil(sell::LANES);
                            // SAFETY: AVX-512F is present (`isa`); `sell`
                            // was built from `w` by `Sell::from_csr`; `xb`
                            // holds K floats, `yc` the rows of groups `gs`
                            // (chunks are whole groups but the last), and
                            // `bias` M values (checked above).
                            unsafe { avx512::sell_gemv(sell, gs, bias, vact, xb, yc) };
                            if scalar_act {
                                act.apply_slice(yc);
                            }
                        },
                    );
                }
                return;
            }
            return spmv(isa, w, bias, act, x, batch, y, exec);
        }
        assert!(
            scratch.len() >= self.scratch_len(isa, batch),
            "linear: scratch too short"
        );
        let (xt, rest) = scratch.split_at_mut(k * batch);
        let (yt, rest) = rest.split_at_mut(m * batch);
        transpose(&x[..k * batch], batch, k, xt);
        spmm(isa, w, bias, act, xt, batch, yt, rest, exec);
        transpose(yt, m, batch, &mut y[..m * batch]);
    }
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
