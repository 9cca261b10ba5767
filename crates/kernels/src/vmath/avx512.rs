//! AVX-512F forms of the vector math, sixteen lanes at a time. The same
//! operations as [`super::avx2`], so the results are bit-identical.

use core::arch::x86_64::*;

use super::{Func, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, TANH_P, TANH_SMALL};

/// e^x; see the module docs of [`super`].
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn exp(x: __m512) -> __m512 {
    // VMAXPS/VMINPS return the second operand when either is NaN, so NaN
    // passes the clamp.
    let x = _mm512_max_ps(_mm512_set1_ps(EXP_LO), x);
    let x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), x);
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(LOG2E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HI), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LO), r);
    let mut p = _mm512_set1_ps(EXP_P[0]);
    for c in &EXP_P[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(*c));
    }
    let y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    let y = _mm512_add_ps(y, _mm512_set1_ps(1.0));
    // y * 2^n rounded once, like the two exact steps of the AVX2 form
    // (NaN n gives NaN).
    _mm512_scalef_ps(y, n)
}

/// 1 / (1 + e^-x); see [`super::avx2::sigmoid`].
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn sigmoid(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let neg_abs = _mm512_castsi512_ps(_mm512_or_si512(
        _mm512_castps_si512(x),
        _mm512_set1_epi32(i32::MIN),
    ));
    let t = exp(neg_abs);
    let pos = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(x, _mm512_setzero_ps());
    let num = _mm512_mask_blend_ps(pos, t, one);
    _mm512_div_ps(num, _mm512_add_ps(one, t))
}

/// x * sigmoid(alpha * x).
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn swish(x: __m512, alpha: __m512) -> __m512 {
    _mm512_mul_ps(x, sigmoid(_mm512_mul_ps(alpha, x)))
}

/// tanh(x); see [`super::avx2::tanh`].
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn tanh(x: __m512) -> __m512 {
    let one = _mm512_set1_ps(1.0);
    let bits = _mm512_castps_si512(x);
    let sign = _mm512_and_si512(bits, _mm512_set1_epi32(i32::MIN));
    let ax = _mm512_castsi512_ps(_mm512_andnot_si512(_mm512_set1_epi32(i32::MIN), bits));
    let z = _mm512_mul_ps(ax, ax);
    let mut p = _mm512_set1_ps(TANH_P[0]);
    for c in &TANH_P[1..] {
        p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(*c));
    }
    let small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), ax, ax);
    let t = exp(_mm512_mul_ps(ax, _mm512_set1_ps(-2.0)));
    let big = _mm512_div_ps(_mm512_sub_ps(one, t), _mm512_add_ps(one, t));
    let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(ax, _mm512_set1_ps(TANH_SMALL));
    let y = _mm512_mask_blend_ps(is_small, big, small);
    _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y), sign))
}

/// `$xs[i] = f($xs[i])` sixteen lanes at a time, `$v` naming the vector in
/// `$body`; the tail with masked loads and stores.
macro_rules! each {
    ($xs:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f32] = $xs;
        let mut chunks = xs.chunks_exact_mut(16);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly sixteen floats.
            let $v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { _mm512_storeu_ps(c.as_mut_ptr(), y) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mask: __mmask16 = (1 << tail.len()) - 1;
            // SAFETY: the mask covers the `tail.len() < 16` floats of
            // `tail`; masked-off lanes are not accessed.
            let $v = unsafe { _mm512_maskz_loadu_ps(mask, tail.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { _mm512_mask_storeu_ps(tail.as_mut_ptr(), mask, y) };
        }
    }};
}

/// Applies `f` to every element of `xs`.
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn apply(f: Func, xs: &mut [f32]) {
    match f {
        Func::Exp => each!(xs, |v| exp(v)),
        Func::Sigmoid => each!(xs, |v| sigmoid(v)),
        Func::Swish(alpha) => {
            let a = _mm512_set1_ps(alpha);
            each!(xs, |v| swish(v, a))
        }
        Func::Tanh => each!(xs, |v| tanh(v)),
    }
}
