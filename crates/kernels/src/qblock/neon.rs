//! NEON (baseline aarch64): nibbles are sign-extended by `tbl`, widened to
//! i16 and multiplied by the activations with widening multiply-accumulate;
//! each i32 lane holds one (channel, depth-in-group) product sum until the
//! end of the block, where a horizontal add joins the 4 lanes.

use core::arch::aarch64::*;

use super::kernel::NIBBLE_LUT;
use super::{KG, MP, NC};

/// `acc[j][r] = sum_k x(k, j) * w(r, k)` over one block of `gpb` groups.
///
/// # Safety
/// `w` holds `gpb * 64` and `x` `gpb * KG * MP` bytes.
pub(crate) unsafe fn block(gpb: usize, w: &[u8], x: &[u8], acc: &mut [[i32; NC]; MP]) {
    debug_assert!(w.len() >= gpb * 64 && x.len() >= gpb * KG * MP);
    // SAFETY: NEON is baseline; every load below stays inside the lengths
    // the caller guarantees (group g: w[64 g..+64], x[16 g + 4 j..+4]).
    unsafe {
        let lut = vld1q_s8(NIBBLE_LUT.as_ptr());
        let m4 = vdupq_n_u8(0x0F);
        for (j, out) in acc.iter_mut().enumerate() {
            let mut a = [vdupq_n_s32(0); NC];
            for g in 0..gpb {
                let x4 = (x.as_ptr().add(g * KG * MP + j * KG) as *const u32).read_unaligned();
                let xb = vreinterpret_u8_u32(vdup_n_u32(x4));
                let xv = vreinterpretq_s16_u16(vmovl_u8(xb));
                let (xl, xh) = (vget_low_s16(xv), vget_high_s16(xv));
                for q in 0..4 {
                    let v = vld1q_u8(w.as_ptr().add(64 * g + 16 * q));
                    let lo = vqtbl1q_s8(lut, vandq_u8(v, m4));
                    let hi = vqtbl1q_s8(lut, vshrq_n_u8::<4>(v));
                    // lo: channels 4q..4q+4; hi: channels 16 + 4q..+4.
                    for (nib, ws) in [lo, hi].into_iter().enumerate() {
                        let c = 16 * nib + 4 * q;
                        let w0 = vmovl_s8(vget_low_s8(ws));
                        let w1 = vmovl_s8(vget_high_s8(ws));
                        a[c] = vmlal_s16(a[c], vget_low_s16(w0), xl);
                        a[c + 1] = vmlal_s16(a[c + 1], vget_high_s16(w0), xh);
                        a[c + 2] = vmlal_s16(a[c + 2], vget_low_s16(w1), xl);
                        a[c + 3] = vmlal_s16(a[c + 3], vget_high_s16(w1), xh);
                    }
                }
            }
            for (o, v) in out.iter_mut().zip(&a) {
                *o = vaddvq_s32(*v);
            }
        }
    }
}
