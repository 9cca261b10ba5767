//! AVX-512 depthwise kernels with masked loads instead of border code.
//!
//! * [`FlatPlan`] (stride 1, output rows as wide as input rows): a channel's
//!   output plane is one flat run of `oh * ow` floats, and tap `t` of output
//!   `n` reads input `n + off[t]`. Each 16-output vector runs one masked load
//!   and one FMA per tap, the masks (precomputed per vector and tap) zeroing
//!   the lanes whose tap falls in the padding. Vectors span output rows, so
//!   small planes (7x7, 14x14) pay no per-row cost.
//! * [`s2_channel`] (3x3, stride 2): per output row, 16
//!   outputs at a time from 48 input floats per input row, de-interleaved
//!   with permutes; masked loads supply the zero padding.

use alloc::vec::Vec;
use core::arch::x86_64::*;

use crate::conv::ConvGeom;
use crate::gemm::{avx512_act, VecAct};

/// Lanes per vector.
const L: usize = 16;
/// Most taps the flat kernel takes.
pub(crate) const MAX_TAPS: usize = 64;

/// Offsets and masks of the flat stride-1 kernel for one geometry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FlatPlan {
    /// Input offset of each tap relative to the output index.
    offs: Vec<isize>,
    /// `masks[v * taps + t]`: lanes of vector `v` whose tap `t` is inside
    /// the input.
    masks: Vec<u16>,
    /// Outputs per channel.
    n: usize,
    /// Floats per input channel.
    isp: usize,
}

impl FlatPlan {
    /// The plan, when the geometry is 2-D depthwise with stride 1 and
    /// output rows as wide as input rows (so that input index = output
    /// index + a per-tap constant).
    pub(crate) fn new(g: &ConvGeom) -> Option<FlatPlan> {
        let [_, ih, iw] = g.input;
        let [_, oh, ow] = g.output;
        let [_, kh, kw] = g.kernel;
        let [_, dy, dx] = g.dilation;
        let (pt, pl) = (g.pad_begin[1], g.pad_begin[2]);
        let taps = kh * kw;
        if g.stride[1] != 1 || g.stride[2] != 1 || ow != iw || taps > MAX_TAPS || oh * ow == 0 {
            return None;
        }
        let n = oh * ow;
        let mut offs = Vec::with_capacity(taps);
        for ky in 0..kh {
            for kx in 0..kw {
                let dyo = (ky * dy) as isize - pt as isize;
                let dxo = (kx * dx) as isize - pl as isize;
                offs.push(dyo * iw as isize + dxo);
            }
        }
        let vectors = n.div_ceil(L);
        let mut masks = Vec::with_capacity(vectors * taps);
        for v in 0..vectors {
            for ky in 0..kh {
                for kx in 0..kw {
                    let mut m = 0u16;
                    for i in 0..L {
                        let o = v * L + i;
                        if o >= n {
                            break;
                        }
                        let iy = (o / ow + ky * dy) as isize - pt as isize;
                        let ix = (o % ow + kx * dx) as isize - pl as isize;
                        if iy >= 0 && (iy as usize) < ih && ix >= 0 && (ix as usize) < iw {
                            m |= 1 << i;
                        }
                    }
                    masks.push(m);
                }
            }
        }
        Some(FlatPlan {
            offs,
            masks,
            n,
            isp: ih * iw,
        })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.offs.len() * 8 + self.masks.len() * 2
    }

    /// One channel: `out[n] = act(bias + sum_t w[t] * x[n + off[t]])`.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Lengths are checked on entry.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(crate) unsafe fn channel(
        &self,
        x: &[f32],
        w: &[f32],
        bias: f32,
        act: VecAct,
        out: &mut [f32],
    ) {
        let taps = self.offs.len();
        assert!(x.len() >= self.isp && w.len() >= taps && out.len() >= self.n);
        if taps == 9 {
            // SAFETY: forwarded; the lengths were checked above.
            unsafe { self.run::<9>(x, w, bias, act, out) }
        } else {
            // SAFETY: as above.
            unsafe { self.run_any(x, w, bias, act, out) }
        }
    }

    /// # Safety
    /// AVX-512F; `taps == T`; lengths as checked by [`FlatPlan::channel`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run<const T: usize>(
        &self,
        x: &[f32],
        w: &[f32],
        bias: f32,
        act: VecAct,
        out: &mut [f32],
    ) {
        let wv: [__m512; T] = core::array::from_fn(|t| _mm512_set1_ps(w[t]));
        let offs: [isize; T] = core::array::from_fn(|t| self.offs[t]);
        let bv = _mm512_set1_ps(bias);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        for (v, masks) in self.masks.chunks_exact(T).enumerate() {
            let base = (v * L) as isize;
            // Three partial sums keep the FMA chains short.
            let mut acc = [bv, _mm512_setzero_ps(), _mm512_setzero_ps()];
            for t in 0..T {
                // SAFETY: lane i is loaded only when its mask bit is set,
                // i.e. when input index base + i + offs[t] is inside the
                // channel (`FlatPlan::new`), and x holds the channel.
                let xv =
                    unsafe { _mm512_maskz_loadu_ps(masks[t], xp.wrapping_offset(base + offs[t])) };
                acc[t % 3] = _mm512_fmadd_ps(wv[t], xv, acc[t % 3]);
            }
            let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]);
            store(op, v * L, self.n, avx512_act(act, s));
        }
    }

    /// Any tap count, weights broadcast from memory.
    ///
    /// # Safety
    /// As [`FlatPlan::run`].
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn run_any(&self, x: &[f32], w: &[f32], bias: f32, act: VecAct, out: &mut [f32]) {
        let taps = self.offs.len();
        let bv = _mm512_set1_ps(bias);
        let (xp, op) = (x.as_ptr(), out.as_mut_ptr());
        for (v, masks) in self.masks.chunks_exact(taps).enumerate() {
            let base = (v * L) as isize;
            let mut acc = [bv, _mm512_setzero_ps()];
            for t in 0..taps {
                // SAFETY: as in `run`.
                let xv = unsafe {
                    _mm512_maskz_loadu_ps(masks[t], xp.wrapping_offset(base + self.offs[t]))
                };
                acc[t % 2] = _mm512_fmadd_ps(_mm512_set1_ps(w[t]), xv, acc[t % 2]);
            }
            store(
                op,
                v * L,
                self.n,
                avx512_act(act, _mm512_add_ps(acc[0], acc[1])),
            );
        }
    }
}

/// Stores outputs `at..min(at + 16, n)` of `op`.
#[inline]
#[target_feature(enable = "avx512f")]
fn store(op: *mut f32, at: usize, n: usize, v: __m512) {
    let lanes = (n - at).min(L);
    let mask = if lanes == L {
        u16::MAX
    } else {
        (1u16 << lanes) - 1
    };
    // SAFETY: callers pass `op` valid for `n` floats and `at < n`; only the
    // lanes below `n - at` are written.
    unsafe { _mm512_mask_storeu_ps(op.add(at), mask, v) };
}

/// True when [`s2_channel`] handles the geometry: 2-D depthwise 3x3,
/// stride 2, dilation 1.
pub(crate) fn s2_supported(g: &ConvGeom) -> bool {
    g.kernel == [1, 3, 3] && g.stride == [1, 2, 2] && g.dilation == [1; 3]
}

/// Lanes `j` of the 16 floats at input column `s` that lie in `0..w`.
#[inline(always)]
fn window_mask(s: isize, w: usize) -> u16 {
    let lo = (-s).clamp(0, L as isize) as u32;
    let hi = (w as isize - s).clamp(0, L as isize) as u32;
    if hi <= lo {
        0
    } else {
        (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
    }
}

/// One channel of a 3x3 stride-2 depthwise conv (`x` is `ih x iw`, `out`
/// is `oh x ow`). Per 16 outputs and input row: three masked loads of the
/// 48 floats from column `2 * ox0 - pl`, whose even lanes are tap 0, odd
/// lanes tap 1 and even lanes shifted by one tap 2.
///
/// # Safety
/// The CPU must support AVX-512F. Lengths are checked on entry.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn s2_channel(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: f32,
    act: VecAct,
    out: &mut [f32],
) {
    let [_, ih, iw] = g.input;
    let [_, oh, ow] = g.output;
    let (pt, pl) = (g.pad_begin[1] as isize, g.pad_begin[2] as isize);
    assert!(s2_supported(g) && x.len() >= ih * iw && w.len() >= 9 && out.len() >= oh * ow);
    let wv: [[__m512; 3]; 3] =
        core::array::from_fn(|r| core::array::from_fn(|k| _mm512_set1_ps(w[3 * r + k])));
    let bv = _mm512_set1_ps(bias);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let xp = x.as_ptr();
    let op = out.as_mut_ptr();
    for oy in 0..oh {
        for ox0 in (0..ow).step_by(L) {
            let s = 2 * ox0 as isize - pl;
            let m = [
                window_mask(s, iw),
                window_mask(s + 16, iw),
                window_mask(s + 32, iw),
            ];
            // The two input rows the output row after next starts on:
            // fetched ahead, as the hardware prefetcher lags on three
            // interleaved row streams.
            for ahead in [4, 5] {
                let iy = 2 * oy as isize + ahead - pt;
                if iy < ih as isize {
                    let row = xp.wrapping_offset(iy * iw as isize + s.max(0));
                    for line in 0..3 {
                        // Prefetches never fault; the address is a hint.
                        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16 * line) as *const i8);
                    }
                }
            }
            let mut acc = [bv, _mm512_setzero_ps(), _mm512_setzero_ps()];
            for (ky, part) in acc.iter_mut().enumerate() {
                let iy = 2 * oy as isize + ky as isize - pt;
                if iy < 0 || iy >= ih as isize {
                    continue;
                }
                let row = xp.wrapping_offset(iy * iw as isize + s);
                // SAFETY: each lane is loaded only when its column is in
                // 0..iw (`window_mask`), and row iy is inside `x`.
                let (a, b, c) = unsafe {
                    (
                        _mm512_maskz_loadu_ps(m[0], row),
                        _mm512_maskz_loadu_ps(m[1], row.wrapping_add(16)),
                        _mm512_maskz_loadu_ps(m[2], row.wrapping_add(32)),
                    )
                };
                let t0 = _mm512_permutex2var_ps(a, even, b);
                let t1 = _mm512_permutex2var_ps(a, odd, b);
                // Even lanes one step on: t0[1..16] then c[0].
                let t2 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
                    _mm512_castps_si512(c),
                    _mm512_castps_si512(t0),
                ));
                let mut p = *part;
                p = _mm512_fmadd_ps(wv[ky][0], t0, p);
                p = _mm512_fmadd_ps(wv[ky][1], t1, p);
                p = _mm512_fmadd_ps(wv[ky][2], t2, p);
                *part = p;
            }
            let v = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2]);
            store(op, oy * ow + ox0, oy * ow + ow, avx512_act(act, v));
        }
    }
}
