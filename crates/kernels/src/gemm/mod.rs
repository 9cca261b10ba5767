//! f32 GEMM: `C[M,N] = act(alpha * A[M,K] B[K,N] + (accumulate ? C : 0) + bias)`.
//!
//! BLIS-style: B is packed into [`NR`]-column panels and A into [`MR`]-row
//! panels, blocked by [`KC`] in depth, [`MC`] rows and [`NC`] columns, and
//! a register-blocked `MR x NR` micro-kernel (AVX2+FMA when the CPU has it,
//! portable otherwise) applies bias and activation while the tile is still in
//! registers. Constant operands are packed once ([`PackedA`], [`PackedB`]);
//! the other operand is packed at run time into caller-provided scratch
//! ([`gemm_scratch_len`]), so a run allocates nothing. Conv im2col packs
//! straight into the B panel layout through the [`Rhs`] trait.
//!
//! Work is split into tasks by whole column (or row) panels; every element
//! of C sees the same sequence of operations whatever the split, so results
//! do not depend on the number of tasks.

mod exec;
mod isa;
mod micro;
mod pack;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(test)]
mod tests;
/// Helpers shared by the kernels' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::{rand_vec, Threads, ACTS};
}

use core::ops::Range;

#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::act as avx2_act;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::act as avx512_act;
pub(crate) use exec::{balanced_tasks, for_each_chunk_with_slot, task_range, SharedMut, SlotFn};
pub use exec::{for_each_chunk_mut, for_each_chunk_mut_with_scratch, ChunkFn, Exec, Serial};
pub use isa::Isa;
pub(crate) use micro::{split_act, VecAct};
pub(crate) use pack::pack_a_rows;
pub use pack::{Lhs, MatRef, PackedA, PackedB, Rhs};

use crate::Activation;

/// Rows of the micro-kernel tile.
pub const MR: usize = 6;
/// Columns of the micro-kernel tile.
pub const NR: usize = 16;
/// Depth block: one A panel (`MR x KC`) and one B panel (`KC x NR`) stay in
/// L1 while a tile is computed.
pub const KC: usize = 256;
/// Row block: an `MC x KC` block of A stays in L2 while it meets every B
/// panel of a column block.
pub const MC: usize = 72;
/// Column block: the packed `KC x NC` slab of B, in L2.
pub const NC: usize = 512;

/// Bias added in the epilogue.
#[derive(Clone, Copy, Debug, Default)]
pub enum Bias<'a> {
    /// No bias.
    #[default]
    None,
    /// One value per row of C (`M` values): conv output channels.
    PerRow(&'a [f32]),
    /// One value per column of C (`N` values): Gemm/Linear output features.
    PerCol(&'a [f32]),
}

/// What is done to the product before it is stored.
#[derive(Clone, Copy, Debug)]
pub struct Epilogue<'a> {
    /// Scale of `A B`.
    pub alpha: f32,
    /// Add the product to what C already holds (after scaling by alpha).
    pub accumulate: bool,
    /// Bias added once.
    pub bias: Bias<'a>,
    /// Applied last.
    pub act: Activation,
}

impl Default for Epilogue<'_> {
    fn default() -> Self {
        Epilogue {
            alpha: 1.0,
            accumulate: false,
            bias: Bias::None,
            act: Activation::None,
        }
    }
}

impl<'a> Epilogue<'a> {
    /// Plain product plus bias and activation.
    pub fn new(bias: Bias<'a>, act: Activation) -> Self {
        Epilogue {
            bias,
            act,
            ..Epilogue::default()
        }
    }
}

/// Scratch floats per task.
fn slot_len(m: usize, n: usize, k: usize, a_packed: bool, b_packed: bool) -> usize {
    let kc = KC.min(k);
    let a = if a_packed {
        0
    } else {
        MC.min(m.div_ceil(MR) * MR) * kc
    };
    let b = if b_packed {
        0
    } else {
        NC.min(n.div_ceil(NR) * NR) * kc
    };
    a + b
}

/// Scratch floats [`gemm`] needs for an `m x n x k` product run as up to
/// `tasks` tasks, given which operands are pre-packed.
pub fn gemm_scratch_len(
    m: usize,
    n: usize,
    k: usize,
    a_packed: bool,
    b_packed: bool,
    tasks: usize,
) -> usize {
    slot_len(m, n, k, a_packed, b_packed) * tasks.max(1)
}

/// How a product is cut into tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Cols,
    Rows,
}

/// Chooses the split and task count: whole panels per task, at least a few
/// panels each, preferring columns (the usual wide dimension, and the one
/// whose split never duplicates packing of a pre-packed A).
fn plan_tasks(m: usize, n: usize, max_tasks: usize) -> (Split, usize) {
    let col_panels = n.div_ceil(NR);
    let row_panels = m.div_ceil(MR);
    if max_tasks <= 1 || m * n < 4096 {
        return (Split::Cols, 1);
    }
    if col_panels >= 2 * max_tasks || col_panels >= row_panels {
        (Split::Cols, max_tasks.min(col_panels.div_ceil(2)).max(1))
    } else {
        (Split::Rows, max_tasks.min(row_panels.div_ceil(2)).max(1))
    }
}

/// `C = act(alpha * A B + (accumulate ? C : 0) + bias)` with C row-major
/// (`ldc` floats per row). Work is spread over at most `exec.max_tasks()`
/// tasks; results are the same for any task count.
///
/// # Panics
/// If shapes disagree (`a.k() != b.k()`), `c` or a bias is too short, or
/// `scratch` is shorter than [`gemm_scratch_len`] for `exec.max_tasks()`.
#[allow(clippy::too_many_arguments)]
pub fn gemm<A: Lhs + ?Sized, B: Rhs + ?Sized>(
    isa: Isa,
    a: &A,
    b: &B,
    c: &mut [f32],
    ldc: usize,
    ep: &Epilogue<'_>,
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    let (m, n, k) = (a.m(), b.n(), a.k());
    assert_eq!(k, b.k(), "gemm: depth of A and B differ");
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        ldc >= n && c.len() >= (m - 1) * ldc + n,
        "gemm: C too short"
    );
    match ep.bias {
        Bias::PerRow(v) => assert!(v.len() >= m, "gemm: row bias too short"),
        Bias::PerCol(v) => assert!(v.len() >= n, "gemm: column bias too short"),
        Bias::None => {}
    }
    let slot = slot_len(m, n, k, a.is_prepacked(), b.is_prepacked());
    let (split, tasks) = plan_tasks(m, n, exec.max_tasks());
    assert!(scratch.len() >= slot * tasks, "gemm: scratch too short");
    if tasks == 1 {
        // SAFETY: `c` is exclusively borrowed and holds all rows and columns
        // (checked above).
        unsafe { gemm_block(isa, a, b, 0..m, 0..n, c.as_mut_ptr(), ldc, ep, scratch) };
        return;
    }
    let c_ptr = SharedMut(c.as_mut_ptr());
    let s_ptr = SharedMut(scratch.as_mut_ptr());
    exec.run(tasks, &|t| {
        let (rows, cols) = match split {
            Split::Cols => {
                let p = task_range(n.div_ceil(NR), tasks, t);
                (0..m, p.start * NR..(p.end * NR).min(n))
            }
            Split::Rows => {
                let p = task_range(m.div_ceil(MR), tasks, t);
                (p.start * MR..(p.end * MR).min(m), 0..n)
            }
        };
        let (c_ptr, s_ptr) = (&c_ptr, &s_ptr);
        // SAFETY: task `t` owns scratch slot `t` (within the length checked
        // above) and the C block `rows x cols`; blocks of distinct tasks are
        // disjoint, and `Exec` runs each task once while `c` and `scratch`
        // stay borrowed.
        unsafe {
            let buf = core::slice::from_raw_parts_mut(s_ptr.0.add(t * slot), slot);
            gemm_block(isa, a, b, rows, cols, c_ptr.0, ldc, ep, buf);
        }
    });
}

/// Computes the block `rows x cols` of C. `rows.start` must be a multiple of
/// [`MR`] and `cols.start` of [`NR`] (pre-packed panels start there).
///
/// # Safety
/// `c` must be valid for reads and writes of every element `(i, j)` of the
/// block at `c + i * ldc + j`, with no other access during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_block<A: Lhs + ?Sized, B: Rhs + ?Sized>(
    isa: Isa,
    a: &A,
    b: &B,
    rows: Range<usize>,
    cols: Range<usize>,
    c: *mut f32,
    ldc: usize,
    ep: &Epilogue<'_>,
    buf: &mut [f32],
) {
    debug_assert!(rows.start.is_multiple_of(MR) && cols.start.is_multiple_of(NR));
    let k = a.k();
    let (vact, scalar_act) = split_act(isa, ep.act);
    let a_len = if a.is_prepacked() {
        0
    } else {
        MC.min(rows.len().div_ceil(MR) * MR) * KC.min(k)
    };
    let (abuf, bbuf) = buf.split_at_mut(a_len);
    // Depth blocks; K = 0 still runs one empty block so the epilogue runs.
    let blocks = k.div_ceil(KC).max(1);
    for jc in cols.clone().step_by(NC) {
        let nc = NC.min(cols.end - jc);
        for blk in 0..blocks {
            let k0 = blk * KC;
            let kc = KC.min(k - k0);
            let (first, last) = (blk == 0, blk + 1 == blocks);
            let bp = b.panels(k0, kc, jc, nc, bbuf);
            for ic in rows.clone().step_by(MC) {
                let mc = MC.min(rows.end - ic);
                let ap = a.panels(ic, mc, k0, kc, abuf);
                let mut jr = 0;
                while jr < nc {
                    // Two panels at once under AVX-512.
                    let wide = isa.is_avx512() && jr + NR < nc;
                    let width = if wide { 2 * NR } else { NR };
                    let nr = width.min(nc - jr);
                    let j = jc + jr;
                    let bpan = &bp[jr * kc..];
                    let mut cb_pad = [0.0f32; 2 * NR];
                    let col_bias = match ep.bias {
                        Bias::PerCol(v) if first => {
                            cb_pad[..nr].copy_from_slice(&v[j..j + nr]);
                            Some(&cb_pad[..])
                        }
                        _ => None,
                    };
                    let mut ir = 0;
                    while ir < mc {
                        // Two A panels at once in the wide AVX-512 tile.
                        let mr = if wide && mc - ir >= 2 * MR {
                            2 * MR
                        } else {
                            MR.min(mc - ir)
                        };
                        let i = ic + ir;
                        let tep = micro::TileEp {
                            alpha: ep.alpha,
                            load_c: !first || ep.accumulate,
                            row_bias: match ep.bias {
                                Bias::PerRow(v) if first => Some(&v[i..]),
                                _ => None,
                            },
                            col_bias,
                            act: if last { vact } else { VecAct::None },
                        };
                        // SAFETY: rows i..i+mr and columns j..j+nr lie in the
                        // block the caller gave us.
                        unsafe {
                            let ct = c.add(i * ldc + j);
                            let ap = &ap[ir * kc..];
                            store_tile(isa, wide, mr, nr, kc, ap, bpan, ct, ldc, &tep);
                            if last && scalar_act {
                                for r in 0..mr {
                                    let row = core::slice::from_raw_parts_mut(ct.add(r * ldc), nr);
                                    ep.act.apply_slice(row);
                                }
                            }
                        }
                        ir += mr;
                    }
                    jr += width;
                }
            }
        }
    }
}

/// One micro-tile (NR wide, or 2 NR when `wide`), through a bounce buffer
/// when it is narrower than that.
///
/// # Safety
/// `c` must be valid for `mr` rows of `nr` floats at stride `ldc`, with no
/// other access during the call; `wide` requires AVX-512 in `isa`.
#[allow(clippy::too_many_arguments)]
#[inline]
unsafe fn store_tile(
    isa: Isa,
    wide: bool,
    mr: usize,
    nr: usize,
    kc: usize,
    a: &[f32],
    b: &[f32],
    c: *mut f32,
    ldc: usize,
    ep: &micro::TileEp<'_>,
) {
    let width = if wide { 2 * NR } else { NR };
    // SAFETY (both calls): forwarded contract, for a tile exactly `width`
    // wide, either `c` itself or the local bounce buffer.
    let run = |c: *mut f32, ldc: usize| unsafe {
        #[cfg(target_arch = "x86_64")]
        if wide {
            micro::tile_wide(isa, mr, kc, a, b, c, ldc, ep);
            return;
        }
        micro::tile(isa, mr, kc, a, b, c, ldc, ep)
    };
    if nr == width {
        run(c, ldc);
        return;
    }
    let mut tmp = [0.0f32; 2 * MR * 2 * NR];
    for r in 0..mr {
        // SAFETY: row r of the tile has nr valid floats.
        let row = unsafe { core::slice::from_raw_parts_mut(c.add(r * ldc), nr) };
        if ep.load_c {
            tmp[r * width..r * width + nr].copy_from_slice(row);
        }
    }
    run(tmp.as_mut_ptr(), width);
    for r in 0..mr {
        // SAFETY: as above.
        let row = unsafe { core::slice::from_raw_parts_mut(c.add(r * ldc), nr) };
        row.copy_from_slice(&tmp[r * width..r * width + nr]);
    }
}
