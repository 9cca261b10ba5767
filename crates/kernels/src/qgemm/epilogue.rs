//! From raw dot products of stored values to outputs: zero-point
//! compensation, bias, requantization, clamp, strided store.
//!
//! With stored values `xs = x + ox`, `ws = w - ow` and stored zero points
//! `xz`, `wz` (same shifts), the product is
//! `sum xs ws - xz sum ws - wz sum xs + K xz wz`: a per-channel constant
//! plus, only when `wz != 0`, a per-position column sum.

use super::{Dst, Job, KG, MR, NR};
use crate::requant::{QClamp, Requant};

/// Requantization constants of one channel panel, in the form the SIMD
/// epilogues use: per channel `z = (v * mult + add - [v * mult < 0] *
/// corr) / 2^shift` (floor) on 64-bit products, where `shift = 31 + e`
/// for a right shift `e`, `add = 2^30 + 2^(30 + e)` (`2^30` alone when
/// `e = 0`) and `corr = 2^31` when `e > 0`. This is SaturatingRoundingDoublingHighMul (round
/// half up) then RoundingDivideByPOT (ties away from zero) in one floor
/// division: nested floors of integers collapse, and the tie correction
/// of a negative high product becomes `-2^31` before the division (a zero
/// high product, the one case where the sign of `v * mult` and of the high
/// product differ, never sits on a tie). Valid when the multiplier is not
/// `i32::MIN` (no saturating case) and there is no left shift.
#[derive(Clone, Copy, Debug)]
// Only the x86-64 SIMD epilogues read it (NEON keeps the scalar one).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) struct RowConsts {
    /// Valid channels (<= MR); later rows are zero and never stored.
    pub mr: usize,
    /// Per-channel constant (bias and activation zero-point terms).
    pub off: [i32; MR],
    /// Per-channel stored weight zero points (used with column sums).
    pub wz: [i32; MR],
    /// Per-channel multipliers.
    pub mult: [i32; MR],
    /// Per-channel rounding addends (see above).
    pub add: [i64; MR],
    /// Per-channel tie corrections for negative products.
    pub corr: [i64; MR],
    /// Per-channel total right shifts, `31 + e`.
    pub shift: [i64; MR],
    /// Output zero point.
    pub zp: i32,
    /// Lower bound minus the zero point (clamping first keeps the add exact).
    pub lo: i32,
    /// Upper bound minus the zero point.
    pub hi: i32,
}

impl RowConsts {
    /// The constants of channels `c0..c0 + mr`, or `None` for int32 output
    /// or a multiplier outside the SIMD formulation.
    pub(crate) fn new(job: &Job<'_>, c0: usize, mr: usize) -> Option<RowConsts> {
        let (rq, cl, tmin, tmax) = match job.dst {
            Dst::U8(_, rq, cl) => (rq, cl, 0, 255),
            Dst::I8(_, rq, cl) => (rq, cl, -128, 127),
            Dst::I32(_) => return None,
        };
        let (lo, hi) = (cl.min.clamp(tmin, tmax), cl.max.clamp(tmin, tmax));
        let mut o = RowConsts {
            mr,
            off: [0; MR],
            wz: [0; MR],
            mult: [0; MR],
            add: [0; MR],
            corr: [0; MR],
            shift: [31; MR],
            zp: cl.zero_point,
            lo: lo - cl.zero_point,
            hi: hi - cl.zero_point,
        };
        for r in 0..mr {
            let c = c0 + r;
            let q = pick(rq, c);
            if !simd_requant_ok(q) {
                return None;
            }
            let e = -q.shift as i64;
            o.off[r] = channel_offset(job, c);
            o.wz[r] = job.w.zps[c];
            o.mult[r] = q.multiplier;
            o.add[r] = (1 << 30) + if e > 0 { 1 << (30 + e) } else { 0 };
            o.corr[r] = if e > 0 { 1 << 31 } else { 0 };
            o.shift[r] = 31 + e;
        }
        Some(o)
    }
}

/// True when `q` fits the SIMD formulation of [`RowConsts`].
#[inline]
pub(crate) fn simd_requant_ok(q: Requant) -> bool {
    (-31..=0).contains(&q.shift) && q.multiplier != i32::MIN
}

/// The reference for [`RowConsts`]: what a SIMD lane computes, in scalar
/// code (used by tests to check the formulation against `Requant::apply`).
#[cfg(test)]
pub(crate) fn row_consts_lane(v: i32, o: &RowConsts, r: usize) -> i32 {
    let t = v as i64 * o.mult[r] as i64;
    let u = t + o.add[r] - if t < 0 { o.corr[r] } else { 0 };
    ((u >> o.shift[r]) as i32).clamp(o.lo, o.hi) + o.zp
}

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

/// Writes one micro-tile; `consts` (when the panel's multipliers allow)
/// lets SIMD ISAs requantize in vectors before the strided byte store.
///
/// # Safety
/// The job's destination must be valid for writes of elements
/// `(c0..c0+mr, n0..n0+nc)` with no other access during the call.
pub(crate) unsafe fn store(
    job: &Job<'_>,
    t: &Tile<'_>,
    acc: &[[i32; NR]; MR],
    consts: Option<&RowConsts>,
) {
    if let Some(o) = consts {
        let mut bytes = [[0u8; NR]; MR];
        if requant_tile_simd(job, acc, o, t.colsum, &mut bytes) {
            let (p, ns) = match job.dst {
                Dst::U8(p, _, _) => (p, job.ns),
                Dst::I8(p, _, _) => (p as *mut u8, job.ns),
                Dst::I32(_) => unreachable!("row constants of an int32 output"),
            };
            for (r, row) in bytes.iter().enumerate().take(t.mr) {
                let base = (t.c0 + r) * job.cs + t.n0 * ns;
                // SAFETY: element (c0 + r, n0 + j) for j < nc is in the
                // caller's block, at base + j * ns.
                unsafe {
                    let p = p.add(base);
                    if ns == 1 {
                        core::ptr::copy_nonoverlapping(row.as_ptr(), p, t.nc);
                    } else {
                        for (j, &b) in row.iter().enumerate().take(t.nc) {
                            *p.add(j * ns) = b;
                        }
                    }
                }
            }
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store_scalar(job, t, acc) }
}

/// Requantizes `acc` into `out` with the job's SIMD ISA; false when it has
/// none (the caller then takes the scalar path).
fn requant_tile_simd(
    job: &Job<'_>,
    acc: &[[i32; NR]; MR],
    o: &RowConsts,
    colsum: Option<&[i32; NR]>,
    out: &mut [[u8; NR]; MR],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use super::isa::QKind;
        match job.isa.0 {
            // SAFETY: `QIsa` only hands out kinds the CPU supports.
            QKind::Vnni => unsafe { super::vnni::requant_tile(acc, o, colsum, out) },
            // SAFETY: as above.
            QKind::Avx2 => unsafe { super::avx2::requant_tile(acc, o, colsum, out) },
            QKind::Portable => return false,
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (job, acc, o, colsum, out);
        false
    }
}

/// [`store`] without SIMD: requantize and store element by element.
///
/// # Safety
/// As [`store`].
unsafe fn store_scalar(job: &Job<'_>, t: &Tile<'_>, acc: &[[i32; NR]; MR]) {
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
