//! aarch64 NEON path for quantized Add: `vqrdmulhq_s32` is gemmlowp's
//! `SaturatingRoundingDoublingHighMul`, and a sign fix-up before the
//! rounding shift gives `RoundingDivideByPOT`'s ties away from zero, so
//! results equal the portable path bit for bit.

use core::arch::aarch64::*;

use super::{QAdd, Q8};
use crate::requant::Requant;

/// [`Requant::apply`] on four lanes, for `shift <= 0`.
#[inline(always)]
fn requant4(x: int32x4_t, r: Requant) -> int32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline; these are register ops.
    unsafe {
        let hi = vqrdmulhq_s32(x, vdupq_n_s32(r.multiplier));
        let shift = vdupq_n_s32(r.shift);
        // -1 for negative lanes when shifting (sign bit of x & shift), so the
        // round-half-up shift rounds ties away from zero.
        let fixup = vshrq_n_s32::<31>(vandq_s32(hi, shift));
        vrshlq_s32(vqaddq_s32(hi, fixup), shift)
    }
}

/// Eight values widened to two i32x4.
///
/// # Safety
/// `p` must be valid for reading 8 bytes.
#[inline(always)]
unsafe fn load8<T: Q8>(p: *const T) -> (int32x4_t, int32x4_t) {
    // SAFETY: the caller guarantees 8 readable bytes.
    unsafe {
        let w = if T::SIGNED {
            vmovl_s8(vld1_s8(p as *const i8))
        } else {
            vreinterpretq_s16_u16(vmovl_u8(vld1_u8(p as *const u8)))
        };
        (vmovl_s16(vget_low_s16(w)), vmovl_s16(vget_high_s16(w)))
    }
}

/// Stores eight i32 lanes, already in `T`'s range, as bytes.
///
/// # Safety
/// `p` must be valid for writing 8 bytes.
#[inline(always)]
unsafe fn store8<T: Q8>(p: *mut T, lo: int32x4_t, hi: int32x4_t) {
    // SAFETY: the caller guarantees 8 writable bytes.
    unsafe {
        let w = vcombine_s16(vqmovn_s32(lo), vqmovn_s32(hi));
        if T::SIGNED {
            vst1_s8(p as *mut i8, vqmovn_s16(w));
        } else {
            vst1_u8(p as *mut u8, vqmovun_s16(w));
        }
    }
}

/// [`super::qadd`] on two slices, eight lanes at a time. Requires every
/// shift of `p` to be `<= 0`; `a` and `b` at least as long as `y`.
pub(super) fn qadd_neon<T: Q8>(p: &QAdd, a: &[T], b: &[T], y: &mut [T]) {
    let n = y.len().min(a.len()).min(b.len());
    let mut i = 0;
    // SAFETY: register ops on the aarch64 baseline; loads and stores stay
    // within i + 8 <= n for all three slices.
    unsafe {
        let (azp, bzp) = (vdupq_n_s32(p.a_zp), vdupq_n_s32(p.b_zp));
        let yzp = vdupq_n_s32(p.clamp.zero_point);
        let (lo, hi) = (vdupq_n_s32(p.clamp.min), vdupq_n_s32(p.clamp.max));
        let one = |va: int32x4_t, vb: int32x4_t| {
            let sa = requant4(vshlq_n_s32::<20>(vsubq_s32(va, azp)), p.a);
            let sb = requant4(vshlq_n_s32::<20>(vsubq_s32(vb, bzp)), p.b);
            let s = vaddq_s32(requant4(vaddq_s32(sa, sb), p.out), yzp);
            vminq_s32(vmaxq_s32(s, lo), hi)
        };
        while i + 8 <= n {
            let (a0, a1) = load8(a.as_ptr().add(i));
            let (b0, b1) = load8(b.as_ptr().add(i));
            store8(y.as_mut_ptr().add(i), one(a0, b0), one(a1, b1));
            i += 8;
        }
    }
    for k in i..n {
        y[k] = T::put(p.one(a[k].get(), b[k].get()));
    }
}
