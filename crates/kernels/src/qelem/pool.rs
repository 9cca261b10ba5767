//! Quantized average pooling: int32 sums of `x - x_zp` over each window,
//! requantized by `x_scale / (count * y_scale)` with one [`Requant`] per
//! possible count.

use super::Q8;
use crate::pool::PoolGeom;
use crate::requant::{QClamp, Requant};

/// Taps `[lo, hi)` of a window starting at padded coordinate `start` with
/// `k` taps `dil` apart that land inside an input of extent `n` padded by
/// `pad` in front.
#[inline(always)]
fn taps(start: usize, pad: usize, dil: usize, k: usize, n: usize) -> (usize, usize) {
    let lo = if start >= pad {
        0
    } else {
        (pad - start).div_ceil(dil)
    };
    let end = n + pad;
    let hi = if start >= end {
        0
    } else {
        (end - start).div_ceil(dil).min(k)
    };
    (lo.min(k), hi)
}

/// Average pooling of one plane. `rq[n]` requantizes a window sum over
/// `n` counted taps (`rq.len()` must exceed the window size); with
/// `count_include_pad` taps in the explicit padding count (as zeros).
pub fn qavg_pool<T: Q8>(
    input: &[T],
    output: &mut [T],
    g: &PoolGeom,
    count_include_pad: bool,
    x_zp: i32,
    rq: &[Requant],
    clamp: QClamp,
) {
    let [_, ih, iw] = g.input;
    let mut o = 0;
    for od in 0..g.output[0] {
        let sd = od * g.stride[0];
        let rd = taps(sd, g.pad_begin[0], g.dilation[0], g.kernel[0], g.input[0]);
        for oh in 0..g.output[1] {
            let sh = oh * g.stride[1];
            let rh = taps(sh, g.pad_begin[1], g.dilation[1], g.kernel[1], g.input[1]);
            for ow in 0..g.output[2] {
                let sw = ow * g.stride[2];
                let rw = taps(sw, g.pad_begin[2], g.dilation[2], g.kernel[2], g.input[2]);
                let mut sum = 0i32;
                let mut valid = 0usize;
                for kd in rd.0..rd.1 {
                    let d = sd + kd * g.dilation[0] - g.pad_begin[0];
                    for kh in rh.0..rh.1 {
                        let h = sh + kh * g.dilation[1] - g.pad_begin[1];
                        let row = &input[(d * ih + h) * iw..][..iw];
                        for kw in rw.0..rw.1 {
                            sum += row[sw + kw * g.dilation[2] - g.pad_begin[2]].get();
                            valid += 1;
                        }
                    }
                }
                let count = if count_include_pad {
                    let padded = |dim: usize, s: usize| {
                        let ext = g.input[dim] + g.pad_begin[dim] + g.pad_end[dim];
                        taps(s, 0, g.dilation[dim], g.kernel[dim], ext).1
                    };
                    padded(0, sd) * padded(1, sh) * padded(2, sw)
                } else {
                    valid
                };
                let centered = sum - valid as i32 * x_zp;
                output[o] = T::put(match rq.get(count) {
                    Some(r) if count > 0 => clamp.apply(r.apply(centered)),
                    _ => clamp.apply(0),
                });
                o += 1;
            }
        }
    }
}

/// The requantized mean of one plane: `sum(x - x_zp)` times `rq`
/// (`x_scale / (len * y_scale)`).
pub fn qglobal_avg<T: Q8>(plane: &[T], x_zp: i32, rq: Requant, clamp: QClamp) -> T {
    // Eight partial sums keep the loop vectorisable; 2^23 elements of at
    // most 255 fit each i32 lane, and the caller bounds plane sizes.
    let mut acc = [0i32; 8];
    let mut chunks = plane.chunks_exact(8);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v.get();
        }
    }
    let tail: i32 = chunks.remainder().iter().map(|v| v.get()).sum();
    let sum = acc.iter().sum::<i32>() + tail;
    T::put(clamp.apply(rq.apply(sum - plane.len() as i32 * x_zp)))
}
