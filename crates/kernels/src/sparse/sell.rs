//! Sliced-ELL with in-register gathers, for the batch-1 GEMV on AVX-512.
//!
//! The CSR GEMV gathers its inputs with `vgatherdps`, which on Zen 5 costs
//! about 1.4 cycles per nonzero: at 70% sparsity that is twice the time of
//! the dense GEMV, which only streams the weights. Here sixteen consecutive
//! output rows are the sixteen lanes, and the columns are cut into blocks
//! of 32: the 32 inputs of a block sit in two registers, and one
//! `vpermt2ps` fetches each lane's input by its 5-bit in-block column.
//! Slot `s` of a (row group, column block) holds the `s`-th nonzero of each
//! of the sixteen rows in that block (value 0 where a row has fewer), so
//! the slots of a block number the largest row count in it. Per slot: one
//! byte-index load and widening, one permute, one FMA, sixteen lanes; the
//! weight stream is 5 bytes per slot lane (value + index), padding
//! included.

use alloc::vec::Vec;

use super::Csr;

/// Rows per group (vector lanes).
pub(crate) const LANES: usize = 16;
/// Columns per block (two vectors of inputs).
pub(crate) const CBLOCK: usize = 32;

/// A matrix in sliced-ELL form with 32-column blocks (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct Sell {
    rows: usize,
    cols: usize,
    /// `slot_ptr[g * cblocks + c]`: first slot of row group `g`, column
    /// block `c`; one extra entry at the end.
    pub(crate) slot_ptr: Vec<u32>,
    /// In-block column of each slot lane (`LANES` per slot).
    pub(crate) idx: Vec<u8>,
    /// Value of each slot lane (`LANES` per slot).
    pub(crate) vals: Vec<f32>,
}

impl Sell {
    /// The same nonzeros as `w`. `None` if there are 2^32 or more slots.
    pub fn from_csr(w: &Csr) -> Option<Sell> {
        let (rows, cols) = (w.rows(), w.cols());
        let groups = rows.div_ceil(LANES);
        let cblocks = cols.div_ceil(CBLOCK);
        let ptr = w.row_ptr();
        let ci: Vec<usize> = match w.col_indices() {
            super::Cols::U16(c) => c.iter().map(|&c| c as usize).collect(),
            super::Cols::U32(c) => c.iter().map(|&c| c as usize).collect(),
        };
        let vals = w.values();
        let mut slot_ptr = Vec::with_capacity(groups * cblocks + 1);
        let mut idx = Vec::new();
        let mut out = Vec::new();
        // Per lane: the next nonzero of its row not yet placed.
        let mut cur = [0usize; LANES];
        for g in 0..groups {
            let lanes = (rows - g * LANES).min(LANES);
            for (l, c) in cur.iter_mut().enumerate().take(lanes) {
                *c = ptr[g * LANES + l] as usize;
            }
            for c in 0..cblocks {
                slot_ptr.push(u32::try_from(idx.len() / LANES).ok()?);
                let end_col = (c + 1) * CBLOCK;
                // Nonzeros of each lane in this block.
                let mut ends = [0usize; LANES];
                let mut slots = 0;
                for l in 0..lanes {
                    let row_end = ptr[g * LANES + l + 1] as usize;
                    let mut e = cur[l];
                    while e < row_end && ci[e] < end_col {
                        e += 1;
                    }
                    ends[l] = e;
                    slots = slots.max(e - cur[l]);
                }
                let base = idx.len();
                idx.resize(base + slots * LANES, 0u8);
                out.resize(base + slots * LANES, 0.0f32);
                for l in 0..lanes {
                    for (s, e) in (cur[l]..ends[l]).enumerate() {
                        idx[base + s * LANES + l] = (ci[e] - c * CBLOCK) as u8;
                        out[base + s * LANES + l] = vals[e];
                    }
                    cur[l] = ends[l];
                }
            }
        }
        slot_ptr.push(u32::try_from(idx.len() / LANES).ok()?);
        Some(Sell {
            rows,
            cols,
            slot_ptr,
            idx,
            vals: out,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Column blocks.
    // Read by the AVX-512 kernel and the tests only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) fn cblocks(&self) -> usize {
        self.cols.div_ceil(CBLOCK)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.slot_ptr.len() * 4 + self.idx.len() + self.vals.len() * 4
    }

    /// Stored slot lanes over nonzeros of `w`: the padding overhead.
    pub fn fill(&self, nnz: usize) -> f64 {
        if nnz == 0 {
            0.0
        } else {
            self.vals.len() as f64 / nnz as f64
        }
    }
}

/// Portable form of the kernel, for testing the layout on any CPU:
/// `y[r] = sum` over the slots (bias and activation left to the caller).
#[cfg(test)]
pub(crate) fn reference(s: &Sell, x: &[f32]) -> Vec<f32> {
    let mut y = alloc::vec![0.0f32; s.rows.div_ceil(LANES) * LANES];
    let cb = s.cblocks();
    for g in 0..s.rows.div_ceil(LANES) {
        for c in 0..cb {
            let (a, b) = (s.slot_ptr[g * cb + c], s.slot_ptr[g * cb + c + 1]);
            for slot in a as usize..b as usize {
                for l in 0..LANES {
                    let col = c * CBLOCK + s.idx[slot * LANES + l] as usize;
                    let xv = x.get(col).copied().unwrap_or(0.0);
                    y[g * LANES + l] += s.vals[slot * LANES + l] * xv;
                }
            }
        }
    }
    y.truncate(s.rows);
    y
}
