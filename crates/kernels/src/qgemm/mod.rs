//! int8 GEMM: `out(c, n) = requant_c(sum_k (x(k, n) - x_zp) * (w(c, k) -
//! w_zp[c]) + bias[c])`, with int32 accumulation.
//!
//! Weights (the constant operand, `channels x depth`) are packed once into
//! [`QPackedWeights`]; activations (`depth x positions`, `u8` or `i8`, either
//! layout) are packed at run time into caller-provided scratch
//! ([`qgemm_scratch_len`]) one column block at a time, so a run allocates
//! nothing. Zero points are folded out of the inner loop: the kernels compute
//! `sum x_s * w_s` on stored values (`u8` activations, `i8` weights, as
//! `vpdpbusd` wants them) and the epilogue subtracts `x_zp * sum_k w` and,
//! only when some weight zero point is non-zero, `w_zp * sum_k x`.
//!
//! Integer sums are exact (wrapping, so associative), so every ISA and every
//! task split gives the same bits.

mod epilogue;
mod isa;
mod kernel;
mod pack;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod vnni;

#[cfg(test)]
mod tests;

use core::ops::Range;

use crate::gemm::{task_range, Exec, SharedMut};
use crate::requant::{QClamp, Requant};

pub use isa::QIsa;
pub(crate) use pack::last_index;
pub use pack::{panel_bytes, QActivations, QElem, QGemmError, QLayout, QPackedWeights, QRhs};

/// Channels per packed weight panel (rows of the micro-tile).
pub const MR: usize = 8;
/// Positions per packed activation panel (columns of the micro-tile).
pub const NR: usize = 32;
/// Depth values per group: one 32-bit lane of a dot-product instruction.
pub const KG: usize = 4;

/// Target bytes of one packed activation block (an L2 share).
const BLOCK_BYTES: usize = 256 * 1024;

/// Where results go, and how: output element `(c, n)` is at
/// `data[c * cs + n * ns]` for the strides given to [`qgemm`].
#[derive(Debug)]
pub enum QOut<'a> {
    /// Requantized `u8`: `clamp.apply(requant[c].apply(acc))`; `requant` has
    /// one entry or one per channel.
    U8 {
        /// Output buffer.
        data: &'a mut [u8],
        /// Per-channel (or single) multipliers.
        requant: &'a [Requant],
        /// Zero point and bounds.
        clamp: QClamp,
    },
    /// Requantized `i8`, as [`QOut::U8`].
    I8 {
        /// Output buffer.
        data: &'a mut [i8],
        /// Per-channel (or single) multipliers.
        requant: &'a [Requant],
        /// Zero point and bounds.
        clamp: QClamp,
    },
    /// The raw int32 accumulator plus bias (MatMulInteger, ConvInteger).
    I32 {
        /// Output buffer.
        data: &'a mut [i32],
    },
}

/// Output pointer and requantization, shared by the tasks.
#[derive(Clone, Copy)]
pub(crate) enum Dst<'a> {
    U8(*mut u8, &'a [Requant], QClamp),
    I8(*mut i8, &'a [Requant], QClamp),
    I32(*mut i32),
}

/// Positions packed per block by one task.
fn block_panels(depth: usize, positions: usize) -> usize {
    (BLOCK_BYTES / panel_bytes(depth).max(1)).clamp(1, positions.div_ceil(NR).max(1))
}

/// Scratch bytes of one task: packed panels plus their column sums.
fn slot_len(depth: usize, positions: usize) -> usize {
    block_panels(depth, positions) * (panel_bytes(depth) + 4 * NR)
}

/// Scratch bytes [`qgemm`] needs for `channels x depth` weights and
/// `positions` columns, run as up to `tasks` tasks (`exec.max_tasks()`).
pub fn qgemm_scratch_len(channels: usize, depth: usize, positions: usize, tasks: usize) -> usize {
    let _ = channels;
    slot_len(depth, positions) * tasks.max(1)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Positions,
    Channels,
}

/// Whole panels per task; positions preferred (weights are shared, so
/// splitting them would pack the activations once per task).
fn plan_tasks(channels: usize, depth: usize, positions: usize, max: usize) -> (Split, usize) {
    let (np, mp) = (positions.div_ceil(NR), channels.div_ceil(MR));
    if max <= 1 || channels * positions * depth.max(1) < 1 << 16 {
        return (Split::Positions, 1);
    }
    if np >= 2 * max || np >= mp {
        (Split::Positions, max.min(np))
    } else {
        (Split::Channels, max.min(mp))
    }
}

/// Runs the int8 GEMM of `w` (`channels x depth`) and `x` (`depth x
/// positions`), adding `bias` (one int32 per channel) before requantizing
/// into `out` at `(c, n) -> c * cs + n * ns`. Work is spread over at most
/// `exec.max_tasks()` tasks; results are identical for any task count and
/// any `isa`.
///
/// # Panics
/// If depths differ, `out`, `bias` or `requant` are too short (requant: 1 or
/// `channels` entries), or `scratch` is shorter than [`qgemm_scratch_len`]
/// for `exec.max_tasks()`.
#[allow(clippy::too_many_arguments)]
pub fn qgemm<X: QRhs + ?Sized>(
    isa: QIsa,
    w: &QPackedWeights,
    x: &X,
    bias: Option<&[i32]>,
    out: QOut<'_>,
    cs: usize,
    ns: usize,
    scratch: &mut [u8],
    exec: &dyn Exec,
) {
    let (m, k, n) = (w.channels(), w.depth(), x.positions());
    assert_eq!(
        k,
        x.depth(),
        "qgemm: depth of weights and activations differ"
    );
    if m == 0 || n == 0 {
        return;
    }
    if let Some(b) = bias {
        assert!(b.len() >= m, "qgemm: bias too short");
    }
    let last = (m - 1)
        .checked_mul(cs)
        .and_then(|a| (n - 1).checked_mul(ns).and_then(|b| a.checked_add(b)))
        .expect("qgemm: output strides overflow");
    let check = |len: usize, requant: Option<&[Requant]>| {
        assert!(last < len, "qgemm: output too short");
        if let Some(r) = requant {
            assert!(r.len() == 1 || r.len() >= m, "qgemm: requant");
        }
    };
    let dst = match out {
        QOut::U8 {
            data,
            requant,
            clamp,
        } => {
            check(data.len(), Some(requant));
            Dst::U8(data.as_mut_ptr(), requant, clamp)
        }
        QOut::I8 {
            data,
            requant,
            clamp,
        } => {
            check(data.len(), Some(requant));
            Dst::I8(data.as_mut_ptr(), requant, clamp)
        }
        QOut::I32 { data } => {
            check(data.len(), None);
            Dst::I32(data.as_mut_ptr())
        }
    };
    let slot = slot_len(k, n);
    let (split, tasks) = plan_tasks(m, k, n, exec.max_tasks());
    assert!(scratch.len() >= slot * tasks, "qgemm: scratch too short");
    let job = Job {
        isa,
        w,
        bias,
        dst,
        cs,
        ns,
        x_zp: x.zero_point_storage(),
        fused: fused_epilogue(isa, &dst, ns) && !use_gemv(isa, n),
        gemv: use_gemv(isa, n),
    };
    let (mp, np) = (m.div_ceil(MR), n.div_ceil(NR));
    if tasks == 1 {
        // SAFETY: the output is exclusively borrowed and every element
        // (c, n) of it is in bounds (checked above).
        unsafe { job.block(x, 0..mp, 0..np, &mut scratch[..slot]) };
        return;
    }
    let s_ptr = SharedMut(scratch.as_mut_ptr());
    let out_ptr = SharedDst(dst);
    exec.run(tasks, &|t| {
        let (s_ptr, out_ptr) = (&s_ptr, &out_ptr);
        let (chan, pos) = match split {
            Split::Positions => (0..mp, task_range(np, tasks, t)),
            Split::Channels => (task_range(mp, tasks, t), 0..np),
        };
        let job = Job {
            dst: out_ptr.0,
            ..job
        };
        // SAFETY: task `t` owns scratch slot `t` (inside the length checked
        // above) and the outputs of its channel and position panels, which
        // are disjoint from every other task's; `Exec` runs each task once
        // while the output and scratch stay borrowed.
        unsafe {
            let buf = core::slice::from_raw_parts_mut(s_ptr.0.add(t * slot), slot);
            job.block(x, chan, pos, buf);
        }
    });
}

/// A [`Dst`] handed to tasks that write disjoint elements.
struct SharedDst<'a>(Dst<'a>);

// SAFETY: tasks write disjoint (channel, position) blocks through the
// pointer (see `qgemm`); the requant slice is only read.
unsafe impl Sync for SharedDst<'_> {}

/// Everything a task needs besides its ranges.
#[derive(Clone, Copy)]
struct Job<'a> {
    isa: QIsa,
    w: &'a QPackedWeights,
    bias: Option<&'a [i32]>,
    dst: Dst<'a>,
    cs: usize,
    ns: usize,
    x_zp: i32,
    /// Requantize inside the SIMD micro-kernel (see [`fused_epilogue`]).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fused: bool,
    /// Few positions: dot products by the matrix-vector kernel.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    gemv: bool,
}

/// True when the micro-kernel can requantize in registers: VNNI and byte
/// output with contiguous positions (channel panels whose multipliers do
/// not fit [`epilogue::RowConsts`] still take the scalar epilogue).
fn fused_epilogue(isa: QIsa, dst: &Dst<'_>, ns: usize) -> bool {
    if matches!(dst, Dst::I32(_)) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    let simd = isa.0 == isa::QKind::Vnni;
    #[cfg(not(target_arch = "x86_64"))]
    let simd = {
        let _ = isa;
        false
    };
    simd && ns == 1
}

/// Positions up to which the matrix-vector kernel beats the tile kernel
/// (which always computes [`NR`] positions).
const GEMV_MAX: usize = 8;

/// True when the matrix-vector kernel should compute the dot products.
fn use_gemv(isa: QIsa, n: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    let simd = isa.0 == isa::QKind::Vnni;
    #[cfg(not(target_arch = "x86_64"))]
    let simd = {
        let _ = isa;
        false
    };
    simd && n <= GEMV_MAX
}

impl Job<'_> {
    /// Computes channel panels `chan` x position panels `pos`.
    ///
    /// # Safety
    /// The destination must be valid for writes of every element of those
    /// panels (clipped to the real shape), with no other access meanwhile.
    unsafe fn block<X: QRhs + ?Sized>(
        &self,
        x: &X,
        chan: Range<usize>,
        pos: Range<usize>,
        buf: &mut [u8],
    ) {
        let (m, k, n) = (self.w.channels(), self.w.depth(), x.positions());
        let pb = panel_bytes(k);
        let per_block = buf.len() / (pb + 4 * NR);
        debug_assert!(per_block >= 1);
        let (panels, sums) = buf.split_at_mut(per_block * pb);
        let groups = pack::depth_padded(k) / KG;
        let need_sums = !self.w.zps_zero;
        let mut p0 = pos.start;
        while p0 < pos.end {
            let p1 = (p0 + per_block).min(pos.end);
            for p in p0..p1 {
                let (n0, nc) = (p * NR, NR.min(n - p * NR));
                let dst = &mut panels[(p - p0) * pb..][..pb];
                x.pack_panel(n0, nc, dst);
                if need_sums {
                    let s = epilogue::column_sums(dst, groups);
                    for (j, v) in s.iter().enumerate() {
                        sums[((p - p0) * NR + j) * 4..][..4].copy_from_slice(&v.to_ne_bytes());
                    }
                }
            }
            for cp in chan.clone() {
                let wp = self.w.panel(cp);
                let (c0, mr) = (cp * MR, MR.min(m - cp * MR));
                let consts = epilogue::RowConsts::new(self, c0, mr);
                #[cfg(target_arch = "x86_64")]
                if let (true, Some(o)) = (self.fused, &consts) {
                    // SAFETY (both calls): `fused` implies VNNI and byte
                    // output with ns == 1; the panels lie in `panels`, and
                    // element (c0, p0 * NR) and every element after it in
                    // these rows up to the block's last position lie in
                    // this task's block of the output.
                    let dst = unsafe { self.byte_ptr().add(c0 * self.cs + p0 * NR) };
                    let last_nc = n - (p1 - 1) * NR;
                    let last_nc = last_nc.min(NR);
                    if !need_sums {
                        unsafe {
                            vnni::panel_requant(
                                groups,
                                wp,
                                panels,
                                pb,
                                p1 - p0,
                                last_nc,
                                o,
                                dst,
                                self.cs,
                                None,
                            );
                        }
                    } else {
                        for p in p0..p1 {
                            let colsum = read_sums(sums, p - p0);
                            let nc = NR.min(n - p * NR);
                            let xp = &panels[(p - p0) * pb..][..pb];
                            unsafe {
                                vnni::panel_requant(
                                    groups,
                                    wp,
                                    xp,
                                    pb,
                                    1,
                                    nc,
                                    o,
                                    dst.add((p - p0) * NR),
                                    self.cs,
                                    Some(&colsum),
                                );
                            }
                        }
                    }
                    continue;
                }
                for p in p0..p1 {
                    let (n0, nc) = (p * NR, NR.min(n - p * NR));
                    let xp = &panels[(p - p0) * pb..][..pb];
                    let colsum = need_sums.then(|| read_sums(sums, p - p0));
                    let mut acc = [[0i32; NR]; MR];
                    let wsums = &self.w.sums[c0..c0 + MR];
                    #[cfg(target_arch = "x86_64")]
                    if self.gemv {
                        // SAFETY: `gemv` implies VNNI; the panels hold
                        // `groups` groups (checked by `kernel::tile`'s
                        // callers' layout: `pb` bytes each), nc <= NR.
                        unsafe { vnni::gemv(groups, &wp[..groups * MR * KG], xp, nc, &mut acc) };
                    } else {
                        kernel::tile(self.isa, groups, wp, xp, wsums, &mut acc);
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    kernel::tile(self.isa, groups, wp, xp, wsums, &mut acc);
                    let t = epilogue::Tile {
                        c0,
                        mr,
                        n0,
                        nc,
                        colsum: colsum.as_ref(),
                    };
                    // SAFETY: the tile lies in this task's block; forwarded
                    // contract.
                    unsafe { epilogue::store(self, &t, &acc, consts.as_ref()) };
                }
            }
            p0 = p1;
        }
    }
}

impl Job<'_> {
    /// The byte output's base pointer (only for `u8`/`i8` destinations).
    #[cfg(target_arch = "x86_64")]
    fn byte_ptr(&self) -> *mut u8 {
        match self.dst {
            Dst::U8(p, _, _) => p,
            Dst::I8(p, _, _) => p as *mut u8,
            Dst::I32(_) => unreachable!("byte pointer of an int32 output"),
        }
    }
}

/// The column sums of panel `i` of a block, stored as native-endian bytes.
fn read_sums(sums: &[u8], i: usize) -> [i32; NR] {
    core::array::from_fn(|j| {
        let b = &sums[(i * NR + j) * 4..][..4];
        i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    })
}
