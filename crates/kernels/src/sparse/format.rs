//! The compressed sparse row (CSR) weight format.

use alloc::vec::Vec;

/// A column index type of [`Csr`]: `u16` when the matrix has at most 65536
/// columns (6 bytes per nonzero with its value instead of 8, which matters
/// where the weight stream is the bottleneck: the batch-1 GEMV), `u32`
/// otherwise.
pub trait ColIndex: Copy + Send + Sync + 'static {
    /// The index as a `usize`.
    fn get(self) -> usize;
}

impl ColIndex for u16 {
    #[inline(always)]
    fn get(self) -> usize {
        self as usize
    }
}

impl ColIndex for u32 {
    #[inline(always)]
    fn get(self) -> usize {
        self as usize
    }
}

/// Column indices of a [`Csr`], narrow when the column count allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cols {
    /// At most 65536 columns.
    U16(Vec<u16>),
    /// More columns.
    U32(Vec<u32>),
}

/// A sparse `rows x cols` f32 matrix in CSR form: the nonzeros of row `r`
/// are `vals[ptr[r]..ptr[r + 1]]` at columns `cols[ptr[r]..ptr[r + 1]]`,
/// in increasing column order.
///
/// Invariants (established by the constructors, relied on by the SIMD
/// kernels): `ptr` has `rows + 1` non-decreasing entries from 0 to the
/// number of nonzeros, which is the length of `vals` and of the column
/// indices, and every column index is `< cols`.
#[derive(Clone, Debug, PartialEq)]
pub struct Csr {
    rows: usize,
    ncols: usize,
    ptr: Vec<u32>,
    cols: Cols,
    vals: Vec<f32>,
    /// `kptr[r * (kblocks + 1) + b]`: the first nonzero of row `r` at a
    /// column `>= b * KBLOCK` (the last entry is the row's end).
    kptr: Vec<u32>,
}

/// Columns per depth block of [`Csr::kblock_ptr`]. The wide kernel runs
/// one depth block of a group of rows before the next, so that the rows
/// of X it reads stay in cache while every row of the group passes over
/// them. Measured on MobileNetV2's deep 1x1 convs (Zen 5): no blocks (a
/// 960-deep strip of X read from L2 for every nonzero) 0.73x of dense at
/// 70% sparsity on 960->320 @7x7; blocks of 128, 0.92x; 256, about 1.1x
/// and also better at 80% (1.50x -> 1.64x), since shorter blocks multiply
/// the per-row costs (loop exits, reloading partial sums).
pub const KBLOCK: usize = 256;

impl Csr {
    /// The nonzeros of a row-major `rows x cols` matrix (`w[r * cols + c]`).
    /// Exact zeros (and negative zeros) are dropped; NaN is kept. `None`
    /// when `w` is shorter than `rows * cols` or there are 2^32 or more
    /// nonzeros.
    pub fn from_dense(w: &[f32], rows: usize, cols: usize) -> Option<Csr> {
        let len = rows.checked_mul(cols)?;
        if w.len() < len {
            return None;
        }
        Csr::from_fn(rows, cols, |r, c| w[r * cols + c])
    }

    /// The nonzeros of the transpose of a row-major `cols x rows` matrix:
    /// entry `(r, c)` is `w[c * rows + r]` (a Gemm `B` stored `[K, N]`
    /// whose rows of the product are its columns).
    pub fn from_dense_t(w: &[f32], rows: usize, cols: usize) -> Option<Csr> {
        let len = rows.checked_mul(cols)?;
        if w.len() < len {
            return None;
        }
        Csr::from_fn(rows, cols, |r, c| w[c * rows + r])
    }

    /// Builds from an element function, row by row.
    fn from_fn(rows: usize, cols: usize, at: impl Fn(usize, usize) -> f32) -> Option<Csr> {
        let mut ptr = Vec::with_capacity(rows + 1);
        let mut idx: Vec<u32> = Vec::new();
        let mut vals = Vec::new();
        let kblocks = cols.div_ceil(KBLOCK);
        let mut kptr = Vec::with_capacity(rows * (kblocks + 1));
        ptr.push(0u32);
        for r in 0..rows {
            for c in 0..cols {
                if c % KBLOCK == 0 {
                    kptr.push(u32::try_from(vals.len()).ok()?);
                }
                let v = at(r, c);
                if v != 0.0 {
                    idx.push(u32::try_from(c).ok()?);
                    vals.push(v);
                }
            }
            ptr.push(u32::try_from(vals.len()).ok()?);
            kptr.push(u32::try_from(vals.len()).ok()?);
        }
        let cols_idx = if cols <= 1 << 16 {
            Cols::U16(idx.iter().map(|&c| c as u16).collect())
        } else {
            Cols::U32(idx)
        };
        Some(Csr {
            rows,
            ncols: cols,
            ptr,
            cols: cols_idx,
            vals,
            kptr,
        })
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns (the reduction depth).
    pub fn cols(&self) -> usize {
        self.ncols
    }

    /// Stored nonzeros.
    pub fn nnz(&self) -> usize {
        self.vals.len()
    }

    /// Fraction of entries stored: `nnz / (rows * cols)` (0 for an empty
    /// matrix).
    pub fn density(&self) -> f64 {
        let all = self.rows * self.ncols;
        if all == 0 {
            0.0
        } else {
            self.nnz() as f64 / all as f64
        }
    }

    /// Bytes held: values, column indices and row pointers.
    pub fn bytes(&self) -> usize {
        let idx = match &self.cols {
            Cols::U16(v) => v.len() * 2,
            Cols::U32(v) => v.len() * 4,
        };
        self.vals.len() * 4 + idx + (self.ptr.len() + self.kptr.len()) * 4
    }

    /// Row pointers (`rows + 1` entries).
    pub fn row_ptr(&self) -> &[u32] {
        &self.ptr
    }

    /// Depth blocks: `cols / KBLOCK` rounded up.
    pub fn kblocks(&self) -> usize {
        self.ncols.div_ceil(KBLOCK)
    }

    /// Row pointers per depth block: row `r`'s nonzeros in columns
    /// `b * KBLOCK..(b + 1) * KBLOCK` are `kptr[r * (kblocks + 1) + b]..`
    /// `kptr[r * (kblocks + 1) + b + 1]`.
    pub fn kblock_ptr(&self) -> &[u32] {
        &self.kptr
    }

    /// Column indices.
    pub fn col_indices(&self) -> &Cols {
        &self.cols
    }

    /// Values.
    pub fn values(&self) -> &[f32] {
        &self.vals
    }

    /// Multiplies every value by `s` (Gemm's alpha, folded in at build
    /// time). A value that becomes zero stays stored, harmlessly.
    pub fn scale(&mut self, s: f32) {
        self.vals.iter_mut().for_each(|v| *v *= s);
    }
}
