//! NEON kernels (aarch64). With the dot-product extension, `sdot` by lane
//! multiplies 4 activation bytes by one channel's 4 weight bytes; it is
//! signed x signed, so activations are shifted back to signed (`xs - 128`)
//! and `128 * sum_k w` is added at the end. Without it, bytes are widened
//! to i16, multiplied exactly (|u8 x i8| < 2^15) and pairwise accumulated
//! into i32 (`sadalp`).

use core::arch::aarch64::*;

use super::{KG, MR, NR};

/// Raw dot products, widening path: sub-tiles of 4 channels x 8 positions.
///
/// # Safety
/// NEON (aarch64 baseline); `w` holds at least `groups * MR * KG` and `x`
/// `groups * NR * KG` bytes.
#[target_feature(enable = "neon")]
pub(crate) unsafe fn tile(groups: usize, w: &[i8], x: &[u8], acc: &mut [[i32; NR]; MR]) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG);
    for half in 0..MR / 4 {
        for sub in 0..NR / 8 {
            let mut a = [[vdupq_n_s32(0); 4]; 4];
            // SAFETY: group g reads x[g*128 + 32 sub..+32] and
            // w[g*32 + 16 half..+16], inside the caller's lengths.
            unsafe {
                let mut wp = w.as_ptr().add(16 * half);
                let mut xp = x.as_ptr().add(32 * sub);
                for _ in 0..groups {
                    let xa = vld1q_u8(xp);
                    let xb = vld1q_u8(xp.add(16));
                    // Two positions (4 depth values each) per vector.
                    let xs = [
                        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(xa))),
                        vreinterpretq_s16_u16(vmovl_high_u8(xa)),
                        vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(xb))),
                        vreinterpretq_s16_u16(vmovl_high_u8(xb)),
                    ];
                    for (r, row) in a.iter_mut().enumerate() {
                        let w4 = (wp.add(r * KG) as *const u32).read_unaligned();
                        let wv = vmovl_s8(vreinterpret_s8_u32(vdup_n_u32(w4)));
                        for (acc, &xv) in row.iter_mut().zip(&xs) {
                            *acc = vpadalq_s16(*acc, vmulq_s16(xv, wv));
                        }
                    }
                    wp = wp.add(MR * KG);
                    xp = xp.add(NR * KG);
                }
                for (r, row) in a.iter().enumerate() {
                    let out = acc[4 * half + r].as_mut_ptr().add(8 * sub);
                    vst1q_s32(out, vpaddq_s32(row[0], row[1]));
                    vst1q_s32(out.add(4), vpaddq_s32(row[2], row[3]));
                }
            }
        }
    }
}

/// Raw dot products with `sdot`: sub-tiles of 8 channels x 8 positions.
/// `wsums` are the panel's stored weight sums (at least [`MR`]).
///
/// # Safety
/// The CPU must support the dot-product extension; lengths as [`tile`].
#[target_feature(enable = "neon,dotprod")]
pub(crate) unsafe fn tile_dot(
    groups: usize,
    w: &[i8],
    x: &[u8],
    wsums: &[i32],
    acc: &mut [[i32; NR]; MR],
) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG);
    debug_assert!(wsums.len() >= MR);
    let flip = vdupq_n_u8(0x80);
    // SAFETY (asm below): `sdot` only reads and writes the named vector
    // registers; the caller guarantees the dot-product extension.
    for sub in 0..NR / 8 {
        let mut a = [[vdupq_n_s32(0); 2]; MR];
        // SAFETY: group g reads x[g*128 + 32 sub..+32] and w[g*32..+32],
        // inside the caller's lengths.
        unsafe {
            let mut wp = w.as_ptr();
            let mut xp = x.as_ptr().add(32 * sub);
            for _ in 0..groups {
                let x0 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(xp), flip));
                let x1 = vreinterpretq_s8_u8(veorq_u8(vld1q_u8(xp.add(16)), flip));
                let w0 = vld1q_s8(wp);
                let w1 = vld1q_s8(wp.add(16));
                // `sdot` by lane, through asm: its intrinsic is unstable.
                macro_rules! lane {
                    ($r:expr, $w:expr, $l:literal) => {
                        core::arch::asm!(
                            concat!("sdot {a:v}.4s, {x:v}.16b, {w:v}.4b[", $l, "]"),
                            concat!("sdot {b:v}.4s, {y:v}.16b, {w:v}.4b[", $l, "]"),
                            a = inout(vreg) a[$r][0],
                            b = inout(vreg) a[$r][1],
                            x = in(vreg) x0,
                            y = in(vreg) x1,
                            w = in(vreg) $w,
                            options(pure, nomem, nostack),
                        );
                    };
                }
                lane!(0, w0, 0);
                lane!(1, w0, 1);
                lane!(2, w0, 2);
                lane!(3, w0, 3);
                lane!(4, w1, 0);
                lane!(5, w1, 1);
                lane!(6, w1, 2);
                lane!(7, w1, 3);
                wp = wp.add(MR * KG);
                xp = xp.add(NR * KG);
            }
            for (r, row) in a.iter().enumerate() {
                let fix = vdupq_n_s32(wsums[r].wrapping_mul(128));
                let out = acc[r].as_mut_ptr().add(8 * sub);
                vst1q_s32(out, vaddq_s32(row[0], fix));
                vst1q_s32(out.add(4), vaddq_s32(row[1], fix));
            }
        }
    }
}
