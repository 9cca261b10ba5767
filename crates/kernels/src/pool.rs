//! Pooling over one spatial plane (a single `(n, c)` slice of an NCHW or
//! NCDHW tensor). Callers loop over planes, which is also where threads split.
//!
//! Every function takes a [`PoolGeom`] describing up to three spatial dims;
//! 1-D and 2-D pooling use leading dims of size 1. Padding never touches the
//! data: each output computes the range of kernel taps that land inside the
//! input once, so the inner loops carry no per-tap bounds checks.

/// Geometry of a pooling sweep over one plane, up to three spatial dims
/// ordered outermost first (`[d, h, w]`). Unused leading dims have input,
/// output, kernel, stride and dilation 1 and no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    /// Input extent per dim.
    pub input: [usize; 3],
    /// Output extent per dim.
    pub output: [usize; 3],
    /// Window size per dim.
    pub kernel: [usize; 3],
    /// Step between windows per dim.
    pub stride: [usize; 3],
    /// Step between taps of a window per dim.
    pub dilation: [usize; 3],
    /// Implicit padding before the first element per dim.
    pub pad_begin: [usize; 3],
    /// Implicit padding after the last element per dim (only matters for
    /// averages that count padding).
    pub pad_end: [usize; 3],
}

impl PoolGeom {
    /// Elements of one input plane.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Elements of one output plane.
    pub fn output_len(&self) -> usize {
        self.output.iter().product()
    }

    /// Taps in one full window.
    pub fn window_len(&self) -> usize {
        self.kernel.iter().product()
    }

    /// True for dense 2-D windows of size `k`x`k`, stride `s`, no padding,
    /// and every window inside the input: the shape the fast paths handle.
    fn is_plain_2d(&self, k: usize, s: usize) -> bool {
        self.input[0] == 1
            && self.output[0] == 1
            && self.kernel == [1, k, k]
            && self.stride[1] == s
            && self.stride[2] == s
            && self.dilation[1] == 1
            && self.dilation[2] == 1
            && self.pad_begin == [0; 3]
            && self.output[1] > 0
            && self.output[2] > 0
            && (self.output[1] - 1) * s + k <= self.input[1]
            && (self.output[2] - 1) * s + k <= self.input[2]
    }

    /// Taps `[lo, hi)` of output position `o` along `dim` that fall inside
    /// the input; `hi <= lo` means none do.
    #[inline(always)]
    fn taps(&self, dim: usize, o: usize) -> (usize, usize) {
        tap_range(
            o * self.stride[dim],
            self.pad_begin[dim],
            self.dilation[dim],
            self.kernel[dim],
            self.input[dim],
        )
    }

    /// Number of taps of output `o` along `dim` inside the padded extent.
    #[inline(always)]
    fn padded_taps(&self, dim: usize, o: usize) -> usize {
        tap_range(
            o * self.stride[dim],
            0,
            self.dilation[dim],
            self.kernel[dim],
            self.input[dim] + self.pad_begin[dim] + self.pad_end[dim],
        )
        .1
    }
}

/// Tap range `[lo, hi)` for a window starting at `start - pad` (in input
/// coordinates) with `k` taps `dil` apart, against an extent `n`.
#[inline(always)]
fn tap_range(start: usize, pad: usize, dil: usize, k: usize, n: usize) -> (usize, usize) {
    let lo = if start >= pad {
        0
    } else {
        (pad - start).div_ceil(dil)
    };
    let end = n + pad; // first padded coordinate past the input
    let hi = if start >= end {
        0
    } else {
        ((end - start).div_ceil(dil)).min(k)
    };
    (lo.min(k), hi)
}

/// Element types max pooling works on.
pub trait PoolElem: Copy + PartialOrd + Send + Sync {
    /// The value an empty window yields; below every other value.
    const LOWEST: Self;

    /// `x` when it is greater than `acc`, else `acc` (so a NaN `x` never
    /// wins). Integers override it with a branch-free `max`: on quantized
    /// activations the branchy form mispredicts and ran 4x slower.
    #[inline(always)]
    fn keep_max(acc: Self, x: Self) -> Self {
        if x > acc {
            x
        } else {
            acc
        }
    }
}

impl PoolElem for f32 {
    const LOWEST: f32 = f32::NEG_INFINITY;
}
impl PoolElem for i8 {
    const LOWEST: i8 = i8::MIN;
    #[inline(always)]
    fn keep_max(acc: i8, x: i8) -> i8 {
        acc.max(x)
    }
}
impl PoolElem for u8 {
    const LOWEST: u8 = u8::MIN;
    #[inline(always)]
    fn keep_max(acc: u8, x: u8) -> u8 {
        acc.max(x)
    }
}

/// Visits every output of a plane: `f(out_index, taps, starts, outs)` with,
/// per dim, the in-bounds tap range, the window start in padded
/// coordinates, and the output coordinate.
#[inline(always)]
fn for_each_window(
    g: &PoolGeom,
    mut f: impl FnMut(usize, [(usize, usize); 3], [usize; 3], [usize; 3]),
) {
    let mut o = 0;
    for od in 0..g.output[0] {
        let rd = g.taps(0, od);
        let sd = od * g.stride[0];
        for oh in 0..g.output[1] {
            let rh = g.taps(1, oh);
            let sh = oh * g.stride[1];
            for ow in 0..g.output[2] {
                let rw = g.taps(2, ow);
                f(o, [rd, rh, rw], [sd, sh, ow * g.stride[2]], [od, oh, ow]);
                o += 1;
            }
        }
    }
}

/// Input coordinate of tap `k` of a window starting at `start` along `dim`.
#[inline(always)]
fn coord(g: &PoolGeom, dim: usize, start: usize, k: usize) -> usize {
    start + k * g.dilation[dim] - g.pad_begin[dim]
}

/// How a pooling window folds its taps into one output.
trait Reducer<T: Copy>: Sync {
    /// Whether [`Reducer::finish`] needs the padded-extent tap count.
    const NEEDS_PADDED: bool;
    /// Whether taps may be combined in any order with the same result
    /// (max: yes; float sums: no, they would round differently).
    const REORDERABLE: bool = false;
    fn init(&self) -> T;
    fn add(&self, acc: T, x: T) -> T;
    /// The output from the state, the count of taps inside the input and
    /// (when [`Reducer::NEEDS_PADDED`]) the count inside the padded extent.
    fn finish(&self, acc: T, valid: usize, padded: usize) -> T;
}

struct MaxR;
impl<T: PoolElem> Reducer<T> for MaxR {
    const NEEDS_PADDED: bool = false;
    const REORDERABLE: bool = true;
    #[inline(always)]
    fn init(&self) -> T {
        T::LOWEST
    }
    #[inline(always)]
    fn add(&self, acc: T, x: T) -> T {
        T::keep_max(acc, x)
    }
    #[inline(always)]
    fn finish(&self, acc: T, _: usize, _: usize) -> T {
        acc
    }
}

struct AvgR<const INCLUDE_PAD: bool>;
impl<const INCLUDE_PAD: bool> Reducer<f32> for AvgR<INCLUDE_PAD> {
    const NEEDS_PADDED: bool = INCLUDE_PAD;
    #[inline(always)]
    fn init(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn add(&self, acc: f32, x: f32) -> f32 {
        acc + x
    }
    #[inline(always)]
    fn finish(&self, acc: f32, valid: usize, padded: usize) -> f32 {
        let n = if INCLUDE_PAD { padded } else { valid };
        if n == 0 {
            0.0
        } else {
            acc / n as f32
        }
    }
}

struct LpR(f32);
impl Reducer<f32> for LpR {
    const NEEDS_PADDED: bool = false;
    #[inline(always)]
    fn init(&self) -> f32 {
        0.0
    }
    #[inline(always)]
    fn add(&self, acc: f32, x: f32) -> f32 {
        acc + lp_term(x, self.0)
    }
    #[inline(always)]
    fn finish(&self, acc: f32, _: usize, _: usize) -> f32 {
        lp_root(acc, self.0)
    }
}

/// Any geometry: per output, loops over the in-bounds tap ranges.
fn pool_nd<T: Copy, R: Reducer<T>>(input: &[T], output: &mut [T], g: &PoolGeom, r: &R) {
    let [_, ih, iw] = g.input;
    for_each_window(g, |o, rg, s, out_at| {
        let mut acc = r.init();
        for kd in rg[0].0..rg[0].1 {
            let d = coord(g, 0, s[0], kd);
            for kh in rg[1].0..rg[1].1 {
                let row = &input[(d * ih + coord(g, 1, s[1], kh)) * iw..][..iw];
                for kw in rg[2].0..rg[2].1 {
                    acc = r.add(acc, row[coord(g, 2, s[2], kw)]);
                }
            }
        }
        let padded = if R::NEEDS_PADDED {
            (0..3).map(|dim| g.padded_taps(dim, out_at[dim])).product()
        } else {
            0
        };
        output[o] = r.finish(acc, span(rg[0]) * span(rg[1]) * span(rg[2]), padded);
    });
}

/// 1-D and 2-D geometry (leading dim unused). Columns whose windows lie
/// wholly inside the row (the interior) run a fixed-length tap loop with
/// no range arithmetic; only the border columns compute tap ranges.
fn pool_2d<T: Copy, R: Reducer<T>>(input: &[T], output: &mut [T], g: &PoolGeom, r: &R) {
    let iw = g.input[2];
    let [_, oh_n, ow_n] = g.output;
    let (kw, sw, dw, pw) = (g.kernel[2], g.stride[2], g.dilation[2], g.pad_begin[2]);
    let (sh, dh, ph) = (g.stride[1], g.dilation[1], g.pad_begin[1]);
    let ext_w = (kw - 1) * dw + 1;
    let ow_lo = pw.div_ceil(sw).min(ow_n);
    let ow_hi = if iw + pw >= ext_w {
        ((iw + pw - ext_w) / sw + 1).min(ow_n)
    } else {
        0
    }
    .max(ow_lo);
    for oh in 0..oh_n {
        let (kh0, kh1) = g.taps(1, oh);
        let rows = kh0..kh1;
        let row_at = |k: usize| (oh * sh + k * dh - ph) * iw;
        let pad_h = if R::NEEDS_PADDED {
            g.padded_taps(1, oh)
        } else {
            0
        };
        let n_rows = kh1.saturating_sub(kh0);
        let out = &mut output[oh * ow_n..][..ow_n];
        for ow in (0..ow_lo).chain(ow_hi..ow_n) {
            let (k0, k1) = g.taps(2, ow);
            let mut acc = r.init();
            for k in rows.clone() {
                let row = &input[row_at(k)..][..iw];
                for kk in k0..k1 {
                    acc = r.add(acc, row[ow * sw + kk * dw - pw]);
                }
            }
            let padded = if R::NEEDS_PADDED {
                pad_h * g.padded_taps(2, ow)
            } else {
                0
            };
            out[ow] = r.finish(acc, n_rows * span((k0, k1)), padded);
        }
        let interior = &mut out[ow_lo..ow_hi];
        let first = ow_lo * sw - pw.min(ow_lo * sw);
        let rows_at = |k: usize| &input[row_at(k)..][..iw];
        match (kw, dw) {
            (1, _) => interior_rows::<T, R, 1>(interior, rows.clone(), &rows_at, first, sw, r),
            (2, 1) => interior_rows::<T, R, 2>(interior, rows.clone(), &rows_at, first, sw, r),
            (3, 1) => interior_rows::<T, R, 3>(interior, rows.clone(), &rows_at, first, sw, r),
            _ => {
                for (i, o) in interior.iter_mut().enumerate() {
                    let base = first + i * sw;
                    let mut acc = r.init();
                    for k in rows.clone() {
                        for &v in rows_at(k)[base..][..ext_w].iter().step_by(dw) {
                            acc = r.add(acc, v);
                        }
                    }
                    *o = acc;
                }
            }
        }
        for o in interior.iter_mut() {
            *o = r.finish(*o, n_rows * kw, pad_h * kw);
        }
    }
}

/// Interior windows of `K` contiguous taps per row, accumulated straight
/// into the output row one input row at a time (`K` known at compile time
/// unrolls the tap loop).
#[inline(always)]
fn interior_rows<'a, T: Copy + 'a, R: Reducer<T>, const K: usize>(
    out: &mut [T],
    rows: core::ops::Range<usize>,
    row: &impl Fn(usize) -> &'a [T],
    first: usize,
    stride: usize,
    r: &R,
) {
    if R::REORDERABLE && stride > 1 {
        return interior_rows_columns_first::<T, R, K>(out, rows, row, first, stride, r);
    }
    interior_rows_plain::<T, R, K>(out, rows, row, first, stride, r)
}

/// [`interior_rows`] tap by tap, in the order the taps come.
#[inline(always)]
fn interior_rows_plain<'a, T: Copy + 'a, R: Reducer<T>, const K: usize>(
    out: &mut [T],
    rows: core::ops::Range<usize>,
    row: &impl Fn(usize) -> &'a [T],
    first: usize,
    stride: usize,
    r: &R,
) {
    out.fill(r.init());
    if out.is_empty() {
        return;
    }
    let need = (out.len() - 1) * stride + K;
    for k in rows {
        let src = &row(k)[first..][..need];
        for (i, o) in out.iter_mut().enumerate() {
            let taps: &[T; K] = src[i * stride..][..K].try_into().expect("K taps");
            let mut acc = *o;
            for &v in taps {
                acc = r.add(acc, v);
            }
            *o = acc;
        }
    }
}

/// [`interior_rows`] for strided windows of an order-free reducer: first
/// combine the window's rows column by column (contiguous, so it
/// vectorises), then the `K` columns of each window. On a stride-2 window
/// the strided gather otherwise runs one byte at a time.
#[inline(always)]
fn interior_rows_columns_first<'a, T: Copy + 'a, R: Reducer<T>, const K: usize>(
    out: &mut [T],
    rows: core::ops::Range<usize>,
    row: &impl Fn(usize) -> &'a [T],
    first: usize,
    stride: usize,
    r: &R,
) {
    const CHUNK: usize = 128;
    let mut cols = [r.init(); 4 * CHUNK + 8];
    let mut start = 0;
    while start < out.len() {
        let n = (out.len() - start).min(CHUNK);
        let need = (n - 1) * stride + K;
        let Some(cols) = cols.get_mut(..need) else {
            // Strides above 4 do not fit the column buffer: plain loop.
            return interior_rows_plain::<T, R, K>(out, rows, row, first, stride, r);
        };
        cols.fill(r.init());
        for k in rows.clone() {
            let src = &row(k)[first + start * stride..][..need];
            for (c, &v) in cols.iter_mut().zip(src) {
                *c = r.add(*c, v);
            }
        }
        for (i, o) in out[start..start + n].iter_mut().enumerate() {
            let taps: &[T; K] = cols[i * stride..][..K].try_into().expect("K taps");
            let mut acc = r.init();
            for &v in taps {
                acc = r.add(acc, v);
            }
            *o = acc;
        }
        start += n;
    }
}

/// Picks the 2-D or general loop.
fn pool_any<T: Copy, R: Reducer<T>>(input: &[T], output: &mut [T], g: &PoolGeom, r: &R) {
    if g.input[0] == 1 && g.output[0] == 1 && g.kernel[0] == 1 && g.pad_begin[0] == 0 {
        pool_2d(input, output, g, r)
    } else {
        pool_nd(input, output, g, r)
    }
}

/// Max pooling of one plane: `output[i]` is the largest input under window
/// `i`, or [`PoolElem::LOWEST`] for a window entirely in padding.
pub fn max_pool<T: PoolElem>(input: &[T], output: &mut [T], g: &PoolGeom) {
    let (input, output) = (&input[..g.input_len()], &mut output[..g.output_len()]);
    if g.is_plain_2d(2, 2) {
        return max_2x2s2(input, output, g.input[2], g.output[1], g.output[2]);
    }
    if g.is_plain_2d(3, 2) {
        return max_3x3s2(input, output, g.input[2], g.output[1], g.output[2]);
    }
    pool_any(input, output, g, &MaxR);
}

/// Max pooling that also reports, per output, the row-major offset within
/// the plane of the (first) maximum; -1 for a window entirely in padding.
pub fn max_pool_indices<T: PoolElem>(
    input: &[T],
    output: &mut [T],
    indices: &mut [i64],
    g: &PoolGeom,
) {
    let [_, ih, iw] = g.input;
    let (output, indices) = (
        &mut output[..g.output_len()],
        &mut indices[..g.output_len()],
    );
    for_each_window(g, |o, r, s, _| {
        let mut m = T::LOWEST;
        let mut at = -1i64;
        for kd in r[0].0..r[0].1 {
            let d = coord(g, 0, s[0], kd);
            for kh in r[1].0..r[1].1 {
                let base = (d * ih + coord(g, 1, s[1], kh)) * iw;
                for kw in r[2].0..r[2].1 {
                    let i = base + coord(g, 2, s[2], kw);
                    let v = input[i];
                    if at < 0 || v > m {
                        m = v;
                        at = i as i64;
                    }
                }
            }
        }
        output[o] = m;
        indices[o] = at;
    });
}

/// Average pooling of one plane. With `count_include_pad` the divisor counts
/// taps that fall in the explicit padding (but not taps past it, which only
/// ceil mode creates); otherwise only taps inside the input count.
pub fn avg_pool(input: &[f32], output: &mut [f32], g: &PoolGeom, count_include_pad: bool) {
    let (input, output) = (&input[..g.input_len()], &mut output[..g.output_len()]);
    if g.is_plain_2d(2, 2) {
        return avg_2x2s2(input, output, g.input[2], g.output[1], g.output[2]);
    }
    if count_include_pad {
        pool_any(input, output, g, &AvgR::<true>)
    } else {
        pool_any(input, output, g, &AvgR::<false>)
    }
}

/// Lp pooling of one plane: `(sum |x|^p)^(1/p)` over the taps inside the
/// input (padding contributes zeros).
pub fn lp_pool(input: &[f32], output: &mut [f32], g: &PoolGeom, p: f32) {
    let (input, output) = (&input[..g.input_len()], &mut output[..g.output_len()]);
    pool_any(input, output, g, &LpR(p));
}

#[inline(always)]
fn lp_term(x: f32, p: f32) -> f32 {
    if p == 2.0 {
        x * x
    } else if p == 1.0 {
        x.abs()
    } else {
        libm::powf(x.abs(), p)
    }
}

#[inline(always)]
fn lp_root(sum: f32, p: f32) -> f32 {
    if p == 2.0 {
        libm::sqrtf(sum)
    } else if p == 1.0 {
        sum
    } else {
        libm::powf(sum, 1.0 / p)
    }
}

#[inline(always)]
fn span(r: (usize, usize)) -> usize {
    r.1.saturating_sub(r.0)
}

/// Largest element of a plane ([`PoolElem::LOWEST`] when empty).
pub fn global_max<T: PoolElem>(plane: &[T]) -> T {
    plane.iter().fold(T::LOWEST, |m, &v| T::keep_max(m, v))
}

/// Mean of a plane (0 when empty). Eight partial sums keep the loop
/// vectorisable and the rounding error lower than one running sum.
pub fn global_avg(plane: &[f32]) -> f32 {
    if plane.is_empty() {
        return 0.0;
    }
    sum8(plane) / plane.len() as f32
}

/// `(sum |x|^p)^(1/p)` over a plane.
pub fn global_lp(plane: &[f32], p: f32) -> f32 {
    lp_root(plane.iter().map(|&x| lp_term(x, p)).sum(), p)
}

fn sum8(xs: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = xs.chunks_exact(8);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let tail: f32 = chunks.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

fn max_2x2s2<T: PoolElem>(input: &[T], output: &mut [T], iw: usize, oh: usize, ow: usize) {
    let m = T::keep_max;
    for y in 0..oh {
        let r0 = &input[2 * y * iw..][..2 * ow];
        let r1 = &input[(2 * y + 1) * iw..][..2 * ow];
        let out = &mut output[y * ow..][..ow];
        for ((o, a), b) in out
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            *o = m(m(a[0], a[1]), m(b[0], b[1]));
        }
    }
}

fn max_3x3s2<T: PoolElem>(input: &[T], output: &mut [T], iw: usize, oh: usize, ow: usize) {
    let m = T::keep_max;
    let need = 2 * ow + 1;
    for y in 0..oh {
        let rows = [0, 1, 2].map(|k| &input[(2 * y + k) * iw..][..need]);
        let out = &mut output[y * ow..][..ow];
        for (x, o) in out.iter_mut().enumerate() {
            let mut v = T::LOWEST;
            for r in &rows {
                v = m(m(v, r[2 * x]), m(r[2 * x + 1], r[2 * x + 2]));
            }
            *o = v;
        }
    }
}

fn avg_2x2s2(input: &[f32], output: &mut [f32], iw: usize, oh: usize, ow: usize) {
    for y in 0..oh {
        let r0 = &input[2 * y * iw..][..2 * ow];
        let r1 = &input[(2 * y + 1) * iw..][..2 * ow];
        let out = &mut output[y * ow..][..ow];
        for ((o, a), b) in out
            .iter_mut()
            .zip(r0.chunks_exact(2))
            .zip(r1.chunks_exact(2))
        {
            *o = (a[0] + a[1] + b[0] + b[1]) * 0.25;
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Naive reference: materialise the padded plane with `fill` and visit
    /// every tap, including padded ones.
    fn naive(input: &[f32], g: &PoolGeom, op: &str, include_pad: bool) -> Vec<f32> {
        let mut out = vec![];
        for od in 0..g.output[0] {
            for oh in 0..g.output[1] {
                for ow in 0..g.output[2] {
                    let (mut m, mut s, mut n, mut np) = (f32::NEG_INFINITY, 0.0, 0, 0);
                    for kd in 0..g.kernel[0] {
                        for kh in 0..g.kernel[1] {
                            for kw in 0..g.kernel[2] {
                                let p = [
                                    (od * g.stride[0] + kd * g.dilation[0]) as isize
                                        - g.pad_begin[0] as isize,
                                    (oh * g.stride[1] + kh * g.dilation[1]) as isize
                                        - g.pad_begin[1] as isize,
                                    (ow * g.stride[2] + kw * g.dilation[2]) as isize
                                        - g.pad_begin[2] as isize,
                                ];
                                let inside_pad =
                                    (0..3).all(|i| p[i] < (g.input[i] + g.pad_end[i]) as isize);
                                if inside_pad {
                                    np += 1;
                                }
                                if (0..3).all(|i| p[i] >= 0 && p[i] < g.input[i] as isize) {
                                    let v = input[(p[0] as usize * g.input[1] + p[1] as usize)
                                        * g.input[2]
                                        + p[2] as usize];
                                    m = m.max(v);
                                    s += v;
                                    n += 1;
                                }
                            }
                        }
                    }
                    out.push(match op {
                        "max" => m,
                        _ => s / if include_pad { np } else { n } as f32,
                    });
                }
            }
        }
        out
    }

    /// Input, kernel, stride, dilation, begin and end padding, ceil mode.
    type Case = (
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        bool,
    );

    fn geom((input, k, s, d, pb, pe, ceil): Case) -> PoolGeom {
        let mut output = [0; 3];
        for i in 0..3 {
            let ext = (k[i] - 1) * d[i] + 1;
            let span = input[i] + pb[i] + pe[i] - ext;
            let mut o = if ceil {
                span.div_ceil(s[i])
            } else {
                span / s[i]
            } + 1;
            if ceil && (o - 1) * s[i] >= input[i] + pb[i] {
                o -= 1;
            }
            output[i] = o;
        }
        PoolGeom {
            input,
            output,
            kernel: k,
            stride: s,
            dilation: d,
            pad_begin: pb,
            pad_end: pe,
        }
    }

    fn data(n: usize) -> Vec<f32> {
        // Deterministic values with ties and negatives.
        (0..n)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.5)
            .collect()
    }

    #[test]
    fn matches_naive_reference() {
        #[rustfmt::skip]
        let cases: [Case; 9] = [
            ([1, 7, 9], [1, 3, 3], [1, 2, 2], [1; 3], [0, 1, 1], [0, 1, 1], false),
            ([1, 8, 8], [1, 2, 2], [1, 2, 2], [1; 3], [0; 3], [0; 3], false),
            ([1, 9, 9], [1, 3, 3], [1, 2, 2], [1; 3], [0; 3], [0; 3], false),
            ([1, 7, 8], [1, 3, 2], [1, 2, 3], [1, 2, 2], [0, 2, 1], [0, 0, 1], true),
            ([1, 5, 5], [1, 2, 2], [1, 2, 2], [1; 3], [0; 3], [0; 3], true),
            ([4, 5, 6], [2, 3, 2], [2, 1, 2], [1, 1, 2], [1, 1, 0], [0, 1, 1], true),
            ([1, 1, 10], [1, 1, 4], [1, 1, 3], [1; 3], [0, 0, 2], [0, 0, 1], false),
            ([1, 6, 7], [1, 3, 1], [1, 1, 2], [1; 3], [0, 1, 0], [0, 1, 0], false),
            ([1, 6, 7], [1, 2, 3], [1, 1, 1], [1, 2, 1], [0, 1, 1], [0, 0, 1], true),
        ];
        for g in cases.map(geom) {
            let x = data(g.input_len());
            let mut y = vec![0.0; g.output_len()];
            max_pool(&x, &mut y, &g);
            assert_eq!(y, naive(&x, &g, "max", false), "{g:?}");
            let mut idx = vec![0; g.output_len()];
            let mut y2 = vec![0.0; g.output_len()];
            max_pool_indices(&x, &mut y2, &mut idx, &g);
            assert_eq!(y2, y);
            for (i, v) in idx.iter().zip(&y) {
                assert_eq!(x[*i as usize], *v);
            }
            for include in [false, true] {
                avg_pool(&x, &mut y, &g, include);
                let want = naive(&x, &g, "avg", include);
                for (a, b) in y.iter().zip(&want) {
                    assert!((a - b).abs() < 1e-5, "{g:?} {include}: {a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn integer_max_and_globals() {
        #[rustfmt::skip]
        let g = geom(([1, 4, 4], [1, 2, 2], [1, 2, 2], [1; 3], [0; 3], [0; 3], false));
        let x: Vec<u8> = (0..16).map(|i| (i * 7 % 16) as u8).collect();
        let mut y = [0u8; 4];
        max_pool(&x, &mut y, &g);
        // Rows: [0 7 14 5] [12 3 10 1] [8 15 6 13] [4 11 2 9].
        assert_eq!(y, [12, 14, 15, 13]);
        let xs: Vec<f32> = (1..=20).map(|i| i as f32).collect();
        assert_eq!(global_avg(&xs), 10.5);
        assert_eq!(global_max(&xs), 20.0);
        assert!((global_lp(&[3.0, -4.0], 2.0) - 5.0).abs() < 1e-6);
        assert!((global_lp(&[1.0, 1.0], 3.0) - libm::powf(2.0, 1.0 / 3.0)).abs() < 1e-6);
    }

    #[test]
    fn lp_pool_matches_definition() {
        #[rustfmt::skip]
        let g = geom(([1, 3, 3], [1, 2, 2], [1, 1, 1], [1; 3], [0, 1, 0], [0; 3], false));
        let x = data(9);
        let mut y = vec![0.0; g.output_len()];
        lp_pool(&x, &mut y, &g, 2.0);
        // Output (0, 0): rows -1..=0 (row -1 is padding), cols 0..=1.
        let want = libm::sqrtf(x[0] * x[0] + x[1] * x[1]);
        assert!((y[0] - want).abs() < 1e-6);
        assert_eq!(g.output, [1, 3, 2]);
    }
}
