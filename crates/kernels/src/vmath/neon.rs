//! NEON forms of the vector math (aarch64 baseline), four lanes at a time.
//! The same operations as [`super::avx2`], so the results are bit-identical.

use core::arch::aarch64::*;

use super::{Func, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, TANH_P, TANH_SMALL};

/// e^x; see the module docs of [`super`].
#[inline(always)]
pub(crate) fn exp(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline; register ops only.
    unsafe {
        // FMAX/FMIN return NaN when either operand is NaN.
        let x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(EXP_LO)), vdupq_n_f32(EXP_HI));
        let n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
        let r = vfmsq_f32(x, n, vdupq_n_f32(LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(LN2_LO));
        let mut p = vdupq_n_f32(EXP_P[0]);
        for c in &EXP_P[1..] {
            p = vfmaq_f32(vdupq_n_f32(*c), p, r);
        }
        let y = vfmaq_f32(r, p, vmulq_f32(r, r));
        let y = vaddq_f32(y, vdupq_n_f32(1.0));
        // 2^n in two exact factors; see the AVX2 form. NaN converts to 0,
        // and `y` is NaN already.
        let ni = vcvtq_s32_f32(n);
        let n1 = vshrq_n_s32::<1>(ni);
        let n2 = vsubq_s32(ni, n1);
        let bias = vdupq_n_s32(127);
        let s1 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n1, bias)));
        let s2 = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n2, bias)));
        vmulq_f32(vmulq_f32(y, s1), s2)
    }
}

/// 1 / (1 + e^-x); see [`super::avx2`]'s `sigmoid`.
#[inline(always)]
pub(crate) fn sigmoid(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline; register ops only.
    unsafe {
        let one = vdupq_n_f32(1.0);
        let t = exp(vnegq_f32(vabsq_f32(x)));
        let pos = vcgeq_f32(x, vdupq_n_f32(0.0));
        let num = vbslq_f32(pos, one, t);
        vdivq_f32(num, vaddq_f32(one, t))
    }
}

/// x * sigmoid(alpha * x).
#[inline(always)]
pub(crate) fn swish(x: float32x4_t, alpha: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline; register ops only.
    unsafe { vmulq_f32(x, sigmoid(vmulq_f32(alpha, x))) }
}

/// tanh(x); see [`super::avx2`]'s `tanh`.
#[inline(always)]
pub(crate) fn tanh(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline; register ops only.
    unsafe {
        let one = vdupq_n_f32(1.0);
        let ax = vabsq_f32(x);
        let z = vmulq_f32(ax, ax);
        let mut p = vdupq_n_f32(TANH_P[0]);
        for c in &TANH_P[1..] {
            p = vfmaq_f32(vdupq_n_f32(*c), p, z);
        }
        let small = vfmaq_f32(ax, vmulq_f32(p, z), ax);
        let t = exp(vmulq_f32(ax, vdupq_n_f32(-2.0)));
        let big = vdivq_f32(vsubq_f32(one, t), vaddq_f32(one, t));
        let is_small = vcltq_f32(ax, vdupq_n_f32(TANH_SMALL));
        let y = vbslq_f32(is_small, small, big);
        let sign = vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x8000_0000));
        vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(y), sign))
    }
}

/// `$xs[i] = f($xs[i])` four lanes at a time, `$v` naming the vector in
/// `$body`; the tail goes through a zero-padded buffer so every element
/// sees the same code.
macro_rules! each {
    ($xs:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f32] = $xs;
        let mut chunks = xs.chunks_exact_mut(4);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly four floats.
            let $v = unsafe { vld1q_f32(c.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { vst1q_f32(c.as_mut_ptr(), y) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut buf = [0.0f32; 4];
            buf[..tail.len()].copy_from_slice(tail);
            // SAFETY: `buf` holds exactly four floats.
            let $v = unsafe { vld1q_f32(buf.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { vst1q_f32(buf.as_mut_ptr(), y) };
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }};
}

/// Applies `f` to every element of `xs`.
pub(crate) fn apply(f: Func, xs: &mut [f32]) {
    match f {
        Func::Exp => each!(xs, |v| exp(v)),
        Func::Sigmoid => each!(xs, |v| sigmoid(v)),
        Func::Swish(alpha) => {
            // SAFETY: NEON is part of the aarch64 baseline.
            let a = unsafe { vdupq_n_f32(alpha) };
            each!(xs, |v| swish(v, a))
        }
        Func::Tanh => each!(xs, |v| tanh(v)),
    }
}
