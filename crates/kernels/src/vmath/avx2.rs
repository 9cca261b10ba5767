//! AVX2+FMA forms of the vector math, eight lanes at a time.

use core::arch::x86_64::*;

use super::{Func, EXP_HI, EXP_LO, EXP_P, LN2_HI, LN2_LO, LOG2E, TANH_P, TANH_SMALL};

/// e^x; see the module docs of [`super`].
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn exp(x: __m256) -> __m256 {
    // MAXPS/MINPS return the second operand when either is NaN, so NaN
    // passes the clamp.
    let x = _mm256_max_ps(_mm256_set1_ps(EXP_LO), x);
    let x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(LOG2E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
    let mut p = _mm256_set1_ps(EXP_P[0]);
    for c in &EXP_P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let y = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    let y = _mm256_add_ps(y, _mm256_set1_ps(1.0));
    // 2^n in two factors, n = n1 + n2 with both in [-75, 64], so neither
    // factor nor `y * 2^n1` leaves the normal range and the second product
    // rounds once (to a subnormal, or to infinity). A NaN `n` converts to
    // i32::MIN: the factors are garbage but `y` is NaN already.
    let ni = _mm256_cvtps_epi32(n);
    let n1 = _mm256_srai_epi32::<1>(ni);
    let n2 = _mm256_sub_epi32(ni, n1);
    let bias = _mm256_set1_epi32(127);
    let s1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
    let s2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n2, bias)));
    _mm256_mul_ps(_mm256_mul_ps(y, s1), s2)
}

/// 1 / (1 + e^-x), as the scalar formula: `t = e^-|x|`, then `1 / (1 + t)`
/// for `x >= 0` and `t / (1 + t)` otherwise.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn sigmoid(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    let t = exp(_mm256_or_ps(x, sign));
    let pos = _mm256_cmp_ps::<_CMP_GE_OQ>(x, _mm256_setzero_ps());
    let num = _mm256_blendv_ps(t, one, pos);
    _mm256_div_ps(num, _mm256_add_ps(one, t))
}

/// x * sigmoid(alpha * x).
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn swish(x: __m256, alpha: __m256) -> __m256 {
    _mm256_mul_ps(x, sigmoid(_mm256_mul_ps(alpha, x)))
}

/// tanh(x): odd polynomial below |x| = 0.625, `(1 - t) / (1 + t)` with
/// `t = e^-2|x|` above; the sign of `x` copied onto the result.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(crate) fn tanh(x: __m256) -> __m256 {
    let sign = _mm256_set1_ps(-0.0);
    let one = _mm256_set1_ps(1.0);
    let ax = _mm256_andnot_ps(sign, x);
    let z = _mm256_mul_ps(ax, ax);
    let mut p = _mm256_set1_ps(TANH_P[0]);
    for c in &TANH_P[1..] {
        p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(*c));
    }
    let small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), ax, ax);
    let t = exp(_mm256_mul_ps(ax, _mm256_set1_ps(-2.0)));
    let big = _mm256_div_ps(_mm256_sub_ps(one, t), _mm256_add_ps(one, t));
    let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(ax, _mm256_set1_ps(TANH_SMALL));
    let y = _mm256_blendv_ps(big, small, is_small);
    _mm256_or_ps(y, _mm256_and_ps(x, sign))
}

/// `$xs[i] = f($xs[i])` eight lanes at a time, `$v` naming the vector in
/// `$body`; the tail goes through a zero-padded buffer so every element
/// sees the same code.
macro_rules! each {
    ($xs:expr, |$v:ident| $body:expr) => {{
        let xs: &mut [f32] = $xs;
        let mut chunks = xs.chunks_exact_mut(8);
        for c in &mut chunks {
            // SAFETY: `c` holds exactly eight floats.
            let $v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(c.as_mut_ptr(), y) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut buf = [0.0f32; 8];
            buf[..tail.len()].copy_from_slice(tail);
            // SAFETY: `buf` holds exactly eight floats.
            let $v = unsafe { _mm256_loadu_ps(buf.as_ptr()) };
            let y = $body;
            // SAFETY: as above.
            unsafe { _mm256_storeu_ps(buf.as_mut_ptr(), y) };
            tail.copy_from_slice(&buf[..tail.len()]);
        }
    }};
}

/// Applies `f` to every element of `xs`.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn apply(f: Func, xs: &mut [f32]) {
    match f {
        Func::Exp => each!(xs, |v| exp(v)),
        Func::Sigmoid => each!(xs, |v| sigmoid(v)),
        Func::Swish(alpha) => {
            let a = _mm256_set1_ps(alpha);
            each!(xs, |v| swish(v, a))
        }
        Func::Tanh => each!(xs, |v| tanh(v)),
    }
}
