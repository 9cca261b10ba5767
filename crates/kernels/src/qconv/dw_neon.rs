//! NEON plane kernel for the int8 depthwise conv, over the pair buffer of
//! [`super::depthwise`]: `smlal` of four pairs with a broadcast tap pair,
//! then one pairwise add, gives exact int32 sums. Requantization uses
//! `sqrdmulh` (exactly `SaturatingRoundingDoublingHighMul`, saturation
//! included), `sqshl` (the saturating left shift) and gemmlowp's NEON
//! `RoundingDivideByPOT` (sign fix-up, then a rounding shift), so the bits
//! match [`crate::requant::Requant::apply`].

use core::arch::aarch64::*;

use super::depthwise::{PlaneArgs, LANES};

/// One plane with NEON.
///
/// # Safety
/// `buf` must hold the layout's `len()` elements and `out` `oh * ow` bytes
/// (asserted); NEON is baseline on aarch64.
pub(super) unsafe fn plane_neon(a: &PlaneArgs<'_>, buf: &[i32], out: &mut [u8]) {
    let l = a.l;
    assert!(buf.len() >= l.len() && out.len() >= l.oh * l.ow);
    let left = a.rq.shift.max(0);
    let right = (-a.rq.shift).max(0);
    let c = a.clamp;
    // SAFETY: NEON is baseline on aarch64; every load below reads 16
    // elements at `off <= rw - 16` of one pair row (the layout's promise),
    // and the store writes 16 bytes inside `out` or into `tmp`.
    unsafe {
        let m = vdupq_n_s32(a.rq.multiplier);
        let lsh = vdupq_n_s32(left);
        let rsh = vdupq_n_s32(-right);
        let lo = vdupq_n_s32(c.min.saturating_sub(c.zero_point));
        let hi = vdupq_n_s32(c.max.saturating_sub(c.zero_point));
        let zp = vdupq_n_s32(c.zero_point);
        let rq = |x: int32x4_t| -> int32x4_t {
            let x = if left > 0 { vqshlq_s32(x, lsh) } else { x };
            let mut r = vqrdmulhq_s32(x, m);
            if right > 0 {
                let fix = vshrq_n_s32::<31>(vandq_s32(r, rsh));
                r = vrshlq_s32(vqaddq_s32(r, fix), rsh);
            }
            vaddq_s32(vminq_s32(vmaxq_s32(r, lo), hi), zp)
        };
        for oy in 0..l.oh {
            let (j0, taps) = a.row(oy);
            let mut ox = 0;
            while ox < l.ow {
                // Products of the two rows of each pair, per output lane.
                let mut acc = [vdupq_n_s32(0); 8];
                for t in 0..l.tr {
                    let rp = &buf[(j0 + t) * l.rw..][..l.rw];
                    for kx in 0..l.kw {
                        let off = l.tap(ox, kx);
                        let w = vreinterpretq_s16_s32(vdupq_n_s32(taps[t * l.kw + kx]));
                        let p = rp.as_ptr().add(off) as *const i16;
                        for q in 0..4 {
                            let v = vld1q_s16(p.add(8 * q));
                            acc[2 * q] = vmlal_s16(acc[2 * q], vget_low_s16(v), vget_low_s16(w));
                            acc[2 * q + 1] = vmlal_high_s16(acc[2 * q + 1], v, w);
                        }
                    }
                }
                let b = vdupq_n_s32(a.bias);
                let y: [int32x4_t; 4] = core::array::from_fn(|q| {
                    rq(vaddq_s32(b, vpaddq_s32(acc[2 * q], acc[2 * q + 1])))
                });
                let h0 = vcombine_s16(vmovn_s32(y[0]), vmovn_s32(y[1]));
                let h1 = vcombine_s16(vmovn_s32(y[2]), vmovn_s32(y[3]));
                let bytes = vcombine_s8(vmovn_s16(h0), vmovn_s16(h1));
                let n = (l.ow - ox).min(LANES);
                let dst = &mut out[oy * l.ow + ox..][..n];
                if n == LANES {
                    vst1q_s8(dst.as_mut_ptr() as *mut i8, bytes);
                } else {
                    let mut tmp = [0i8; LANES];
                    vst1q_s8(tmp.as_mut_ptr(), bytes);
                    for (d, &s) in dst.iter_mut().zip(&tmp) {
                        *d = s as u8;
                    }
                }
                ox += LANES;
            }
        }
    }
}
