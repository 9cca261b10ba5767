//! From raw dot products of stored values to outputs: zero-point
//! compensation, bias, requantization, clamp, strided store.
//!
//! With stored values `xs = x + ox`, `ws = w - ow` and stored zero points
//! `xz`, `wz` (same shifts), the product is
//! `sum xs ws - xz sum ws - wz sum xs + K xz wz`: a per-channel constant
//! plus, only when `wz != 0`, a per-position column sum.

use super::{Dst, Job, KG, MR, NR};
use crate::requant::{QClamp, Requant};

/// The part of the output one micro-tile covers.
pub(crate) struct Tile<'a> {
    /// First channel.
    pub c0: usize,
    /// Valid channels (<= MR).
    pub mr: usize,
    /// First position.
    pub n0: usize,
    /// Valid positions (<= NR).
    pub nc: usize,
    /// Per-position sums of stored activations, when weight zero points
    /// are not all zero.
    pub colsum: Option<&'a [i32; NR]>,
}

/// Per-position sums of the stored values of a packed panel.
pub(crate) fn column_sums(panel: &[u8], groups: usize) -> [i32; NR] {
    let mut s = [0i32; NR];
    for g in panel.chunks_exact(NR * KG).take(groups) {
        for (j, q) in g.chunks_exact(KG).enumerate() {
            s[j] += q.iter().map(|&v| v as i32).sum::<i32>();
        }
    }
    s
}

/// Writes one micro-tile.
///
/// # Safety
/// The job's destination must be valid for writes of elements
/// `(c0..c0+mr, n0..n0+nc)` with no other access during the call.
pub(crate) unsafe fn store(job: &Job<'_>, t: &Tile<'_>, acc: &[[i32; NR]; MR]) {
    let w = job.w;
    for (r, row) in acc.iter().enumerate().take(t.mr) {
        let c = t.c0 + r;
        let wz = w.zps[c];
        let off = channel_offset(job, c);
        let mut v = [0i32; NR];
        for (j, o) in v.iter_mut().enumerate().take(t.nc) {
            *o = row[j].wrapping_add(off);
        }
        if let Some(cs) = t.colsum {
            for (o, s) in v.iter_mut().zip(cs).take(t.nc) {
                *o = o.wrapping_sub(wz.wrapping_mul(*s));
            }
        }
        let base = c * job.cs + t.n0 * job.ns;
        let ns = job.ns;
        // SAFETY (all arms): element (c, n0 + j) for j < nc is in the
        // caller's block, at base + j * ns.
        unsafe {
            match job.dst {
                Dst::U8(p, rq, cl) => {
                    let (rq, p) = (pick(rq, c), p.add(base));
                    for (j, &a) in v.iter().enumerate().take(t.nc) {
                        *p.add(j * ns) = requant_one(a, rq, cl).clamp(0, 255) as u8;
                    }
                }
                Dst::I8(p, rq, cl) => {
                    let (rq, p) = (pick(rq, c), p.add(base));
                    for (j, &a) in v.iter().enumerate().take(t.nc) {
                        *p.add(j * ns) = requant_one(a, rq, cl).clamp(-128, 127) as i8;
                    }
                }
                Dst::I32(p) => {
                    let p = p.add(base);
                    for (j, &a) in v.iter().enumerate().take(t.nc) {
                        *p.add(j * ns) = a;
                    }
                }
            }
        }
    }
}

/// The per-channel constant: `bias - xz sum ws + K xz wz`.
#[inline(always)]
pub(crate) fn channel_offset(job: &Job<'_>, c: usize) -> i32 {
    let w = job.w;
    let k = w.depth() as i32;
    job.bias
        .map_or(0, |b| b[c])
        .wrapping_sub(job.x_zp.wrapping_mul(w.sums[c]))
        .wrapping_add(k.wrapping_mul(job.x_zp).wrapping_mul(w.zps[c]))
}

/// The multiplier of channel `c` (a single one serves all).
#[inline(always)]
pub(crate) fn pick(rq: &[Requant], c: usize) -> Requant {
    if rq.len() == 1 {
        rq[0]
    } else {
        rq[c]
    }
}

/// Requantize and clamp one accumulator.
#[inline(always)]
fn requant_one(a: i32, rq: Requant, cl: QClamp) -> i32 {
    cl.apply(rq.apply(a))
}
