//! AVX-512 VBMI + VNNI kernel for 3x3 depthwise convs with strides 1 or 2,
//! reading the input plane directly (no pair buffer).
//!
//! Each 16-output step loads one 64-byte window per input row (masked, so
//! columns outside the row read as the zero point), spreads it with
//! `vpermb` into 16 lanes of `[x[c], x[c+1], x[c+2], x[c+3]]`, and one
//! `vpdpbusd` with the row's taps `[w0, w1, w2, 0]` does three MACs per
//! lane. `vpdpbusd` multiplies unsigned activations: int8 inputs are
//! flipped to `x + 128`, and `zero point * sum(w)` is folded into the bias
//! (i32 arithmetic wraps, so this is exact modulo 2^32 like the direct
//! sum). Several output rows share each loaded input row.
//!
//! Requantization has two exact forms: the general one of `dw_x86`
//! (any accumulator), and, when the channel's accumulators are provably
//! small ([`FastRq::new`]), a shorter one that skips the saturation and
//! folds the rounding and the zero point into one add before the shift.

use alloc::vec::Vec;
use core::arch::x86_64::*;

use super::LANES;
use crate::conv::ConvGeom;
use crate::requant::{QClamp, Requant};

/// `vpermb` indices per stride: lane `i` gets window bytes `SX * i + 0..4`.
static SPREAD: [[u8; 64]; 2] = [spread(1), spread(2)];

const fn spread(sx: usize) -> [u8; 64] {
    let mut t = [0u8; 64];
    let mut b = 0;
    while b < 64 {
        t[b] = ((b / 4) * sx + b % 4) as u8;
        b += 1;
    }
    t
}

/// Output rows computed per pass at stride 1 (they share input rows).
const ROWS: usize = 7;

/// Per-channel constants of the short requantization, valid only when
/// every accumulator of the channel satisfies its precondition.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FastRq {
    m: i32,
    left: u32,
    right: u32,
    /// `2^(right - 1) + zp * 2^right` (or `zp` when `right` is 0).
    add: i32,
    lo: i32,
    hi: i32,
}

impl FastRq {
    /// The short form for accumulators with `|acc| <= bound`, or `None`
    /// when it might differ from [`Requant::apply`] + [`QClamp::apply`].
    ///
    /// Proof sketch: with `|acc| << left <= i32::MAX` the saturating
    /// shift is a plain shift and `x != i32::MIN`, so
    /// `SaturatingRoundingDoublingHighMul(x, m)` is exactly
    /// `floor((x * m + 2^30) / 2^31)` =: `t`, with `|t| <= |x| + 1`.
    /// `RoundingDivideByPOT(t, e)` for `e >= 1` is `floor((t + 2^(e-1) -
    /// [t < 0]) / 2^e)` (ties away from zero), and adding `zp * 2^e`
    /// inside the floor adds exactly `zp` outside; the bound below keeps
    /// that sum inside i32, so `v + zp` needs no saturation either and the
    /// clamp is the same `max(min)` then `min(max)`.
    pub(crate) fn new(rq: Requant, clamp: QClamp, bound: i64) -> Option<FastRq> {
        let left = rq.shift.max(0) as u32;
        let right = (-rq.shift).max(0) as u32;
        if left > 30 || right > 31 || bound < 0 {
            return None;
        }
        // `2x` must fit i32.
        let x = bound.checked_shl(left)?;
        if x >= 1 << 30 {
            return None;
        }
        // The sign of `t` is read off the accumulator.
        if right > 0 && rq.multiplier <= 1 << 30 {
            return None;
        }
        let zp = clamp.zero_point as i64;
        let (half, zpe) = if right == 0 {
            (0i64, zp)
        } else {
            (1i64 << (right - 1), zp << right)
        };
        // |t + sign + add| <= x + 2 + half + |zp| 2^e.
        if x + 2 + half + zpe.abs() > i32::MAX as i64 {
            return None;
        }
        Some(FastRq {
            m: rq.multiplier,
            left,
            right,
            add: (half + zpe) as i32,
            lo: clamp.min,
            hi: clamp.max,
        })
    }
}

/// The plan of one depthwise conv for this kernel.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    sx: usize,
    pt: usize,
    pl: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Byte that padding reads (the zero point, as stored).
    pad: u8,
    /// Flip int8 inputs to `x + 128`.
    signed: bool,
    /// `[cout, 3]`: taps of each kernel row as bytes `[w0, w1, w2, 0]`.
    taps: Vec<i32>,
    /// Bias minus `zero point (as flipped) * sum(w)`, per channel.
    bias: Vec<i32>,
    /// Short requantization per channel, when provably exact.
    fast: Vec<Option<FastRq>>,
    /// For planes of at most 64 bytes: `vpermt2b` indices per 16 flat
    /// outputs and kernel row, `[ceil(oh * ow / 16), 3, 64]`; index 64
    /// reads the padding byte.
    small: Vec<u8>,
}

impl Plan {
    /// A plan when the geometry and weights fit this kernel: 3x3,
    /// dilation 1, equal strides 1 or 2, centered weights in i8, and a
    /// zero point that is a byte of the input type.
    pub(crate) fn new(
        g: &ConvGeom,
        signed: bool,
        zero_point: i32,
        weights: &[i16],
        bias: &[i32],
        requant: &[Requant],
        clamp: QClamp,
    ) -> Option<Plan> {
        let sx = g.stride[2];
        if g.kernel[1..] != [3, 3]
            || g.dilation != [1, 1, 1]
            || g.stride[1] != sx
            || !(1..=2).contains(&sx)
            || g.pad_begin[1] > 2
            || g.pad_begin[2] > 2
        {
            return None;
        }
        if weights.iter().any(|&w| !(-128..=127).contains(&w)) {
            return None;
        }
        let (pad, zpu, xa) = if signed {
            if !(-128..=127).contains(&zero_point) {
                return None;
            }
            let xa = (zero_point + 128).max(127 - zero_point) as i64;
            (zero_point as i8 as u8, zero_point + 128, xa)
        } else {
            if !(0..=255).contains(&zero_point) {
                return None;
            }
            (
                zero_point as u8,
                zero_point,
                zero_point.max(255 - zero_point) as i64,
            )
        };
        let cout = g.cout;
        let mut taps = Vec::with_capacity(cout * 3);
        let mut nb = Vec::with_capacity(cout);
        let mut fast = Vec::with_capacity(cout);
        for co in 0..cout {
            let wc = &weights[co * 9..][..9];
            for ky in 0..3 {
                let r = &wc[ky * 3..][..3];
                taps.push(i32::from_le_bytes([r[0] as u8, r[1] as u8, r[2] as u8, 0]));
            }
            let sum: i32 = wc.iter().map(|&w| w as i32).sum();
            nb.push(bias[co].wrapping_sub(zpu.wrapping_mul(sum)));
            let abs: i64 = wc.iter().map(|&w| (w as i64).abs()).sum();
            let bound = (bias[co] as i64).abs() + xa * abs;
            fast.push(FastRq::new(requant[co], clamp, bound));
        }
        let (h, w, oh, ow) = (g.input[1], g.input[2], g.output[1], g.output[2]);
        let mut small = Vec::new();
        if h * w <= 64 && oh * ow > 0 {
            let (pt, pl) = (g.pad_begin[1] as isize, g.pad_begin[2] as isize);
            for v in 0..(oh * ow).div_ceil(LANES) {
                for ky in 0..3 {
                    for b in 0..64 {
                        let (o, j) = (v * LANES + b / 4, b % 4);
                        let (oy, ox) = ((o / ow) as isize, (o % ow) as isize);
                        let iy = oy * sx as isize + ky - pt;
                        let ix = ox * sx as isize + j as isize - pl;
                        let inside = o < oh * ow
                            && j < 3
                            && (0..h as isize).contains(&iy)
                            && (0..w as isize).contains(&ix);
                        small.push(if inside {
                            (iy as usize * w + ix as usize) as u8
                        } else {
                            64
                        });
                    }
                }
            }
        }
        Some(Plan {
            small,
            sx,
            pt: g.pad_begin[1],
            pl: g.pad_begin[2],
            h: g.input[1],
            w: g.input[2],
            oh: g.output[1],
            ow: g.output[2],
            pad,
            signed,
            taps,
            bias: nb,
            fast,
        })
    }
}

/// True when this CPU can run [`plane`].
pub(crate) fn available() -> bool {
    #[cfg(feature = "std")]
    {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vl")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512vbmi")
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

/// The short requantization of 16 accumulators (see [`FastRq::new`]):
/// `t + add = floor((2x * m + 2^31 + add * 2^32) / 2^32)` is the high half
/// of one 64-bit product per lane (gathered with one `vpermt2d`), and for
/// `m > 2^30` the sign of `t` is the sign of the accumulator.
#[target_feature(enable = "avx512f,avx512bw")]
fn rq_fast(k: &FastRq, acc: __m512i) -> __m512i {
    let x2 = _mm512_sll_epi32(acc, _mm_cvtsi32_si128(k.left as i32 + 1));
    let m = _mm512_set1_epi32(k.m);
    let nudge = _mm512_set1_epi64((1i64 << 31) + ((k.add as i64) << 32));
    let even = _mm512_add_epi64(_mm512_mul_epi32(x2, m), nudge);
    let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(x2), m), nudge);
    let hi = _mm512_setr_epi32(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
    let mut t = _mm512_permutex2var_epi32(even, hi, odd);
    if k.right > 0 {
        t = _mm512_add_epi32(t, _mm512_srai_epi32::<31>(acc));
    }
    t = _mm512_sra_epi32(t, _mm_cvtsi32_si128(k.right as i32));
    _mm512_min_epi32(
        _mm512_max_epi32(t, _mm512_set1_epi32(k.lo)),
        _mm512_set1_epi32(k.hi),
    )
}

/// One output plane of channel `co` from input plane `x` (`[h, w]`).
///
/// # Safety
/// The CPU must support AVX-512 F, BW, VL, VNNI and VBMI ([`available`]).
/// `x` must hold `h * w` bytes and `out` `oh * ow` (asserted).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
pub(crate) unsafe fn plane(
    p: &Plan,
    co: usize,
    rq: Requant,
    clamp: QClamp,
    x: &[u8],
    out: &mut [u8],
) {
    // SAFETY: the caller's contract, forwarded.
    unsafe {
        if !p.small.is_empty() {
            small(p, co, rq, clamp, x, out)
        } else if p.sx == 1 {
            rows::<1>(p, co, rq, clamp, x, out)
        } else {
            rows::<2>(p, co, rq, clamp, x, out)
        }
    }
}

/// A plane of at most 64 bytes, held in one register: each 16 flat
/// outputs (contiguous in `out`) gather their windows with `vpermt2b`.
///
/// # Safety
/// As [`plane`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn small(p: &Plan, co: usize, rq: Requant, clamp: QClamp, x: &[u8], out: &mut [u8]) {
    let (n, osp) = (p.h * p.w, p.oh * p.ow);
    assert!(x.len() >= n && out.len() >= osp && n <= 64);
    assert!(p.small.len() == osp.div_ceil(LANES) * 3 * 64);
    let flip = _mm512_set1_epi8(if p.signed { -128 } else { 0 });
    let padv = _mm512_xor_si512(_mm512_set1_epi8(p.pad as i8), flip);
    let lmask = if n == 64 { u64::MAX } else { (1u64 << n) - 1 };
    // SAFETY: the mask reads bytes `0..n` of `x`.
    let plane = unsafe { _mm512_maskz_loadu_epi8(lmask, x.as_ptr() as *const i8) };
    let plane = _mm512_xor_si512(plane, flip);
    let t = &p.taps[co * 3..][..3];
    let wt = [
        _mm512_set1_epi32(t[0]),
        _mm512_set1_epi32(t[1]),
        _mm512_set1_epi32(t[2]),
    ];
    let bias = _mm512_set1_epi32(p.bias[co]);
    let fast = p.fast[co];
    let slow = super::super::dw_x86::RqConsts::new(rq, clamp);
    for (v, idx) in p.small.chunks_exact(3 * 64).enumerate() {
        let mut acc = bias;
        for (row, &w) in idx.chunks_exact(64).zip(&wt) {
            // SAFETY: `row` holds 64 bytes.
            let i = unsafe { _mm512_loadu_si512(row.as_ptr() as *const _) };
            let win = _mm512_permutex2var_epi8(plane, i, padv);
            acc = _mm512_dpbusd_epi32(acc, win, w);
        }
        let y = match &fast {
            Some(k) => rq_fast(k, acc),
            None => super::super::dw_x86::rq512(&slow, acc),
        };
        let o = v * LANES;
        let m = ((1u32 << (osp - o).min(LANES)) - 1) as u16;
        // SAFETY: the mask writes bytes `o..min(o + 16, osp)` of `out`.
        unsafe { _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(o) as *mut i8, m, y) };
    }
}

/// The plane loop for stride `SX`.
///
/// # Safety
/// As [`plane`].
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn rows<const SX: usize>(
    p: &Plan,
    co: usize,
    rq: Requant,
    clamp: QClamp,
    x: &[u8],
    out: &mut [u8],
) {
    assert!(x.len() >= p.h * p.w && out.len() >= p.oh * p.ow && p.sx == SX);
    let idx_bytes = &SPREAD[SX - 1];
    let t = &p.taps[co * 3..][..3];
    let c = Ctx {
        // SAFETY: `idx_bytes` holds 64 bytes.
        idx: unsafe { _mm512_loadu_si512(idx_bytes.as_ptr() as *const _) },
        padv: _mm512_set1_epi8(p.pad as i8),
        flip: _mm512_set1_epi8(if p.signed { -128 } else { 0 }),
        wt: [
            _mm512_set1_epi32(t[0]),
            _mm512_set1_epi32(t[1]),
            _mm512_set1_epi32(t[2]),
        ],
        bias: _mm512_set1_epi32(p.bias[co]),
        fast: p.fast[co],
        slow: super::super::dw_x86::RqConsts::new(rq, clamp),
    };
    // Stride 1 shares more input rows per pass (7 output rows read 9
    // input rows); stride 2 keeps to 4 (9 input rows) for registers.
    let rows = if SX == 1 { ROWS } else { 4 };
    let mut oy = 0;
    while oy + rows <= p.oh {
        // SAFETY: as this function's, with `oy + rows <= oh`.
        unsafe {
            if SX == 1 {
                pass::<1, ROWS>(p, &c, x, out, oy)
            } else {
                pass::<SX, 4>(p, &c, x, out, oy)
            }
        };
        oy += rows;
    }
    // SAFETY: as this function's, with `oy + rest == oh`, `rest < rows`.
    unsafe {
        match (SX, p.oh - oy) {
            (1, 6) => pass::<1, 6>(p, &c, x, out, oy),
            (1, 5) => pass::<1, 5>(p, &c, x, out, oy),
            (1, 4) => pass::<1, 4>(p, &c, x, out, oy),
            (_, 3) => pass::<SX, 3>(p, &c, x, out, oy),
            (_, 2) => pass::<SX, 2>(p, &c, x, out, oy),
            (_, 1) => pass::<SX, 1>(p, &c, x, out, oy),
            _ => {}
        }
    }
}

/// Per-plane vectors.
struct Ctx {
    idx: __m512i,
    padv: __m512i,
    flip: __m512i,
    wt: [__m512i; 3],
    bias: __m512i,
    fast: Option<FastRq>,
    slow: super::super::dw_x86::RqConsts,
}

/// Output rows `oy..oy + NR` (`NR` input-row-sharing rows, stride `SX`).
///
/// # Safety
/// As [`plane`], and `oy + NR <= oh`; lengths asserted by the caller.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
unsafe fn pass<const SX: usize, const NR: usize>(
    p: &Plan,
    c: &Ctx,
    x: &[u8],
    out: &mut [u8],
    oy: usize,
) {
    // Input rows of the largest pass: 7 rows at stride 1 or 4 at stride 2.
    const MAX_IN: usize = 9;
    assert!((NR - 1) * SX + 3 <= MAX_IN);
    let nin = (NR - 1) * SX + 3;
    let (h, w) = (p.h as isize, p.w as isize);
    let iy0 = (oy * SX) as isize - p.pt as isize;
    // Row pointers, and all-ones masks for rows inside the plane (a
    // padding row loads nothing and reads as the zero point).
    let mut ptr = [x.as_ptr(); MAX_IN];
    let mut valid = [0u64; MAX_IN];
    for i in 0..nin {
        let iy = iy0 + i as isize;
        if (0..h).contains(&iy) {
            ptr[i] = x[iy as usize * p.w..][..p.w].as_ptr();
            valid[i] = u64::MAX;
        }
    }
    let mut ox = 0;
    while ox < p.ow {
        let c0 = (ox * SX) as isize - p.pl as isize;
        // Bytes `j` of the window with `0 <= c0 + j < w`.
        let lo = (-c0).clamp(0, 64) as u32;
        let hi = (w - c0).clamp(0, 64) as u32;
        let upto = if hi >= 64 { u64::MAX } else { (1u64 << hi) - 1 };
        let from = if lo >= 64 { u64::MAX } else { (1u64 << lo) - 1 };
        let mask = upto & !from;
        let mut v = [c.padv; MAX_IN];
        for i in 0..nin {
            // SAFETY: only bytes `j` in `mask & valid[i]` are read: none
            // for a padding row, else columns `0..w` of row `ptr[i]`;
            // masked-off bytes touch no memory, so the (wrapping) base may
            // lie outside the row.
            let raw = unsafe {
                _mm512_mask_loadu_epi8(
                    c.padv,
                    mask & valid[i],
                    ptr[i].wrapping_offset(c0) as *const i8,
                )
            };
            v[i] = _mm512_permutexvar_epi8(c.idx, _mm512_xor_si512(raw, c.flip));
        }
        let n = (p.ow - ox).min(LANES);
        let smask = ((1u32 << n) - 1) as u16;
        for r in 0..NR {
            let mut acc = c.bias;
            for ky in 0..3 {
                acc = _mm512_dpbusd_epi32(acc, v[r * SX + ky], c.wt[ky]);
            }
            let y = match &c.fast {
                Some(k) => rq_fast(k, acc),
                None => super::super::dw_x86::rq512(&c.slow, acc),
            };
            // SAFETY: the mask writes bytes `ox..ox + n` of row `oy + r <
            // oh`, inside `out` (asserted by the caller).
            unsafe {
                _mm_mask_storeu_epi8(
                    out.as_mut_ptr().add((oy + r) * p.ow + ox) as *mut i8,
                    smask,
                    _mm512_cvtepi32_epi8(y),
                )
            };
        }
        ox += LANES;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_requant_matches_reference_where_allowed() {
        if !available() {
            return;
        }
        let mut s = 0x1234_5678_9abc_def1u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let mut used = 0;
        for i in 0..4000 {
            let real = libm::exp2((next() % 4000) as f64 / 100.0 - 34.0);
            let Some(rq) = Requant::from_real(real) else {
                continue;
            };
            let zp = (next() % 256) as i32 - 128;
            let (a, b) = ((next() % 256) as i32 - 128, (next() % 256) as i32 - 128);
            let clamp = QClamp {
                zero_point: zp,
                min: a.min(b),
                max: a.max(b),
            };
            let bound = (1i64 << (next() % 31)) - 1;
            let Some(k) = FastRq::new(rq, clamp, bound) else {
                continue;
            };
            used += 1;
            let accs: [i32; 16] = core::array::from_fn(|j| match (i + j) % 4 {
                0 => bound as i32,
                1 => -(bound as i32),
                _ => ((next() as i64).rem_euclid(2 * bound + 1) - bound) as i32,
            });
            // SAFETY: `available` proved AVX-512 F/BW; the arrays hold 16
            // i32 each.
            let got: [i32; 16] = unsafe {
                let r = rq_fast(&k, _mm512_loadu_si512(accs.as_ptr() as *const _));
                core::mem::transmute::<__m512i, [i32; 16]>(r)
            };
            for j in 0..16 {
                assert_eq!(
                    got[j],
                    clamp.apply(rq.apply(accs[j])),
                    "{rq:?} {clamp:?} {}",
                    accs[j]
                );
            }
        }
        assert!(used > 1000, "{used}");
    }
}
