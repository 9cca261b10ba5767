//! int4 x int8 block GEMM: `out(c, n) = q(act(x_scale * sum_b s(c, b) *
//! sum_{k in b} (x(k, n) - x_zp) * w(c, k) + bias[c]))`, where `w` holds
//! int4 values in `[-8, 7]`, `s` one scale per (channel, depth block) and
//! `q(v) = clamp(round_half_even(v / y_scale) + y_zp)`.
//!
//! Weights are packed once into [`QBlockWeights`], two per byte, in panels
//! of [`NC`] channels; the micro-kernels unpack nibbles in registers. Each
//! block's int32 partial sums are exact; the float epilogue (`f += (isum as
//! f32) * s` per block, in block order, then `* x_scale + bias`, `/ y_scale`,
//! round half to even) is the same sequence of IEEE operations on every ISA
//! (no FMA anywhere), so every path and every task split gives the same bits.
//! int4 blocks are therefore not integer-only: the epilogue is float.

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
use crate::qgemm::{QElem, QIsa};
use crate::requant::QClamp;

pub use pack::{QBlockError, QBlockInput, QBlockWeights};

/// Channels per packed weight panel: one 64-byte load holds 32 channels x
/// 4 depth values as nibbles.
pub const NC: usize = 32;
/// Positions per micro-tile.
pub const MP: usize = 4;
/// Depth values per group (one 32-bit dot-product lane).
pub const KG: usize = 4;

/// Target bytes of the activations one task packs at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// Output quantization and the float factors of the epilogue.
#[derive(Clone, Copy, Debug)]
pub struct QBlockOut<'a> {
    /// Activation scale.
    pub x_scale: f32,
    /// Activation zero point (in the activation type's range).
    pub x_zero_point: i32,
    /// Output scale (positive).
    pub y_scale: f32,
    /// Output zero point and bounds (fused Relu/Clip folded in).
    pub clamp: QClamp,
    /// One f32 per channel, added after scaling.
    pub bias: Option<&'a [f32]>,
}

/// Position tiles packed per chunk by one task.
fn chunk_tiles(w: &QBlockWeights, positions: usize) -> usize {
    (CHUNK_BYTES / w.tile_bytes().max(1)).clamp(1, positions.div_ceil(MP).max(1))
}

/// Scratch bytes [`qblock`] needs for `positions` columns, run as up to
/// `tasks` tasks (`exec.max_tasks()`).
pub fn qblock_scratch_len(w: &QBlockWeights, positions: usize, tasks: usize) -> usize {
    chunk_tiles(w, positions) * w.tile_bytes() * tasks.max(1)
}

/// Tasks and whether they split positions (else channel panels).
fn plan_tasks(w: &QBlockWeights, positions: usize, max: usize) -> (bool, usize) {
    let (np, cp) = (positions.div_ceil(MP), w.panels());
    let work = w.channels() * positions * w.depth().max(1);
    if max <= 1 || work < 1 << 16 {
        return (true, 1);
    }
    if np >= 2 * max || np >= cp {
        (true, max.min(np))
    } else {
        (false, max.min(cp))
    }
}

/// Runs the block GEMM of `w` (`channels x depth`) and `x` (`depth x
/// positions`) into `out` at `(c, n) -> c * cs + n * ns`, on at most
/// `exec.max_tasks()` tasks. Results are identical for any task count and
/// any `isa`.
///
/// # Panics
/// If depths differ, `out` or `o.bias` are too short, or `scratch` is
/// shorter than [`qblock_scratch_len`] for `exec.max_tasks()`.
#[allow(clippy::too_many_arguments)]
pub fn qblock<T: QElem>(
    isa: QIsa,
    w: &QBlockWeights,
    x: &QBlockInput<'_, T>,
    o: &QBlockOut<'_>,
    out: &mut [T],
    cs: usize,
    ns: usize,
    scratch: &mut [u8],
    exec: &dyn Exec,
) {
    let (m, n) = (w.channels(), x.positions());
    assert_eq!(w.depth(), x.depth(), "qblock: depths differ");
    if m == 0 || n == 0 {
        return;
    }
    if let Some(b) = o.bias {
        assert!(b.len() >= m, "qblock: bias too short");
    }
    let last = (m - 1)
        .checked_mul(cs)
        .and_then(|a| (n - 1).checked_mul(ns).and_then(|b| a.checked_add(b)))
        .expect("qblock: output strides overflow");
    assert!(last < out.len(), "qblock: output too short");
    let slot = chunk_tiles(w, n) * w.tile_bytes();
    let (by_pos, tasks) = plan_tasks(w, n, exec.max_tasks());
    assert!(scratch.len() >= slot * tasks, "qblock: scratch too short");
    let job = Job {
        isa,
        w,
        o,
        out: out.as_mut_ptr(),
        cs,
        ns,
        x_zp: x.zero_point_storage(o.x_zero_point),
    };
    let (np, cp) = (n.div_ceil(MP), w.panels());
    if tasks == 1 {
        // SAFETY: `out` is exclusively borrowed and every (c, n) is in
        // bounds (checked above).
        unsafe { job.block(x, 0..cp, 0..np, &mut scratch[..slot]) };
        return;
    }
    let s_ptr = SharedMut(scratch.as_mut_ptr());
    let o_ptr = SharedMut(out.as_mut_ptr());
    exec.run(tasks, &|t| {
        let (s_ptr, o_ptr) = (&s_ptr, &o_ptr);
        let (chan, pos) = if by_pos {
            (0..cp, task_range(np, tasks, t))
        } else {
            (task_range(cp, tasks, t), 0..np)
        };
        let job = Job {
            out: o_ptr.0,
            ..job
        };
        // SAFETY: task `t` owns scratch slot `t` (inside the checked length)
        // and the outputs of its channel/position panels, disjoint from the
        // other tasks'; `Exec` runs each task once while both stay borrowed.
        unsafe {
            let buf = core::slice::from_raw_parts_mut(s_ptr.0.add(t * slot), slot);
            job.block(x, chan, pos, buf);
        }
    });
}

/// Everything a task needs besides its ranges.
struct Job<'a, T> {
    isa: QIsa,
    w: &'a QBlockWeights,
    o: &'a QBlockOut<'a>,
    out: *mut T,
    cs: usize,
    ns: usize,
    /// Activation zero point in `u8` storage terms.
    x_zp: i32,
}

impl<T> Clone for Job<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Job<'_, T> {}

impl<T: QElem> Job<'_, T> {
    /// Computes channel panels `chan` x position tiles `pos`.
    ///
    /// # Safety
    /// `self.out` must be valid for writes of every element of those
    /// panels (clipped to the real shape), with no other access meanwhile.
    unsafe fn block(
        &self,
        x: &QBlockInput<'_, T>,
        chan: Range<usize>,
        pos: Range<usize>,
        buf: &mut [u8],
    ) {
        let (m, n) = (self.w.channels(), x.positions());
        let tb = self.w.tile_bytes();
        let per = buf.len() / tb;
        let mut p0 = pos.start;
        while p0 < pos.end {
            let p1 = (p0 + per).min(pos.end);
            for p in p0..p1 {
                let nc = MP.min(n - p * MP);
                x.pack_tile(self.w, p * MP, nc, &mut buf[(p - p0) * tb..][..tb]);
            }
            for cp in chan.clone() {
                let c0 = cp * NC;
                let mc = NC.min(m - c0);
                for p in p0..p1 {
                    let (n0, nc) = (p * MP, MP.min(n - p * MP));
                    let mut f = [[0f32; NC]; MP];
                    kernel::tile(
                        self.isa,
                        self.w,
                        cp,
                        &buf[(p - p0) * tb..][..tb],
                        self.x_zp,
                        &mut f,
                    );
                    // SAFETY: forwarded contract; (c0.., n0..) lies in this
                    // task's panels.
                    unsafe { self.store(&f, c0, mc, n0, nc) };
                }
            }
            p0 = p1;
        }
    }

    /// The final epilogue of one tile: `* x_scale`, `+ bias`, `/ y_scale`,
    /// clamp, round half to even, `+ y_zp`. Written as straight-line f32
    /// arithmetic over whole rows so the compiler vectorizes it; IEEE
    /// operations give the same bits scalar or vector.
    ///
    /// # Safety
    /// As [`Job::block`], for the `mc x nc` elements at `(c0, n0)`.
    unsafe fn store(&self, f: &[[f32; NC]; MP], c0: usize, mc: usize, n0: usize, nc: usize) {
        let o = self.o;
        let zp = o.clamp.zero_point;
        // Integer bounds: clamping before rounding equals clamping after.
        let lo = (o.clamp.min.max(T::MIN) - zp) as f32;
        let hi = (o.clamp.max.min(T::MAX) - zp) as f32;
        let mut bias = [0f32; NC];
        if let Some(b) = o.bias {
            bias[..mc].copy_from_slice(&b[c0..c0 + mc]);
        }
        let (xs, ys) = (o.x_scale, o.y_scale);
        for (j, row) in f.iter().enumerate().take(nc) {
            let mut q = [0i32; NC];
            for r in 0..NC {
                let v = row[r] * xs + bias[r];
                let v = v / ys;
                let v = if v < lo { lo } else { v };
                let v = if v > hi { hi } else { v };
                q[r] = round_even(v) as i32 + zp;
            }
            for (r, &v) in q.iter().enumerate().take(mc) {
                // SAFETY: (c0 + r, n0 + j) is inside the caller's block;
                // `v` is within the type's range (clamped above).
                unsafe { *self.out.add((c0 + r) * self.cs + (n0 + j) * self.ns) = T::saturate(v) };
            }
        }
    }
}

/// Rounds half to even (as QuantizeLinear) for `|v| <= 2^22`: adding and
/// subtracting 1.5 * 2^23 leaves no fraction bits, and IEEE addition rounds
/// ties to even. Callers clamp `v` to the 8-bit range first.
#[inline(always)]
fn round_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    (v + MAGIC) - MAGIC
}
