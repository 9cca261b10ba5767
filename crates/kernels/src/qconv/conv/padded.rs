//! im2col panels read from a padded, stride-phase-split copy of the input.
//!
//! Once per (image, group) the input is copied into scratch with its
//! padding materialized (zero point, `u8` storage) and each row split into
//! `stride_x` phases (`phase r` holds padded columns `r, r + s, r + 2s,
//! ...`). Then for any tap `(ci, kz, ky, kx)` the positions of one output
//! row are contiguous bytes, at `tap offset + position offset`: a panel row
//! is one to a few plain copies with no bounds or padding logic, and the
//! whole input-sized copy (cheap) replaces nine per-tap gathers.

use alloc::vec::Vec;

use crate::conv::ConvGeom;
use crate::qgemm::{QRhs, KG, NR};

/// Sizes of the padded, phase-split input of one group.
#[derive(Clone, Debug)]
pub(super) struct PadLayout {
    /// Padded depth and height (rows actually reachable by some tap).
    pd: usize,
    ph: usize,
    /// Stride along x (the number of phases).
    sx: usize,
    /// Bytes of one phase row: `ceil(padded width / sx)`.
    pws: usize,
    /// Offset of each im2col row `(ci, kz, ky, kx)` relative to a position.
    taps: Vec<usize>,
}

impl PadLayout {
    /// The layout for `g` (one group's input channels).
    pub(super) fn new(g: &ConvGeom) -> PadLayout {
        let span =
            |d: usize| (g.output[d] - 1) * g.stride[d] + (g.kernel[d] - 1) * g.dilation[d] + 1;
        let (pd, ph, pw) = (span(0), span(1), span(2));
        let sx = g.stride[2];
        let pws = pw.div_ceil(sx);
        let [kd, kh, kw] = g.kernel;
        let mut taps = Vec::with_capacity(g.cin_g() * g.kernel_size());
        for ci in 0..g.cin_g() {
            for kz in 0..kd {
                for ky in 0..kh {
                    for kx in 0..kw {
                        let (z, y, c) =
                            (kz * g.dilation[0], ky * g.dilation[1], kx * g.dilation[2]);
                        let row = ((ci * pd + z) * ph + y) * sx + c % sx;
                        taps.push(row * pws + c / sx);
                    }
                }
            }
        }
        PadLayout {
            pd,
            ph,
            sx,
            pws,
            taps,
        }
    }

    /// Bytes of the padded copy of one group.
    pub(super) fn len(&self, cin_g: usize) -> usize {
        cin_g * self.pd * self.ph * self.sx * self.pws
    }

    /// Fills `dst` (at least [`PadLayout::len`] bytes) from one group's
    /// input planes `x`: stored bytes XOR `flip` into `u8` storage, `zp`
    /// outside the input.
    pub(super) fn fill(
        &self,
        g: &ConvGeom,
        x: &[u8],
        flip: u8,
        zp: u8,
        avx512: bool,
        dst: &mut [u8],
    ) {
        let [id, ih, iw] = g.input;
        let [pz, py, px] = g.pad_begin;
        let isp = g.in_spatial();
        let (sx, pws) = (self.sx, self.pws);
        let dst = &mut dst[..self.len(g.cin_g())];
        let mut rows = dst.chunks_exact_mut(sx * pws);
        for ci in 0..g.cin_g() {
            let chan = &x[ci * isp..][..isp];
            for z in 0..self.pd {
                for y in 0..self.ph {
                    let out = rows.next().expect("padded rows");
                    let (iz, iy) = (z as isize - pz as isize, y as isize - py as isize);
                    if iz < 0 || iy < 0 || iz >= id as isize || iy >= ih as isize {
                        out.fill(zp);
                        continue;
                    }
                    let src = &chan[(iz as usize * ih + iy as usize) * iw..][..iw];
                    if sx == 1 {
                        // Columns px .. px + iw hold the input row.
                        let lo = px.min(pws);
                        let hi = (px + iw).min(pws);
                        out[..lo].fill(zp);
                        out[hi..].fill(zp);
                        for (d, &v) in out[lo..hi].iter_mut().zip(src) {
                            *d = v ^ flip;
                        }
                        continue;
                    }
                    #[cfg(target_arch = "x86_64")]
                    if avx512 && sx == 2 {
                        // SAFETY: `avx512` is only set when the int8 ISA
                        // includes AVX-512 F/BW/VL; `out` is 2 * pws bytes.
                        unsafe { row_s2_avx512(src, px, flip, zp, out) };
                        continue;
                    }
                    for (r, phase) in out.chunks_exact_mut(pws).enumerate() {
                        // Phase column t is input column t * sx + r - px.
                        let lo = px.saturating_sub(r).div_ceil(sx).min(pws);
                        let hi = (iw + px).saturating_sub(r).div_ceil(sx).clamp(lo, pws);
                        phase[..lo].fill(zp);
                        phase[hi..].fill(zp);
                        if hi > lo {
                            let start = lo * sx + r - px;
                            strided_copy(avx512, &src[start..], sx, flip, &mut phase[lo..hi]);
                        }
                    }
                }
            }
        }
    }
}

/// `dst[t] = src[t * sx] ^ flip`, with the common strides specialized so
/// the compiler vectorizes them.
pub(super) fn strided_copy(avx512: bool, src: &[u8], sx: usize, flip: u8, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if avx512 && sx == 2 && !dst.is_empty() {
        // SAFETY: `avx512` is only set when the int8 ISA includes AVX-512
        // F/BW/VL; the function checks the slice lengths.
        unsafe { stride2_avx512(src, flip, dst) };
        return;
    }
    let _ = avx512;
    match sx {
        2 => {
            let src = &src[..2 * dst.len() - 1];
            for (d, pair) in dst.iter_mut().zip(src.chunks(2)) {
                *d = pair[0] ^ flip;
            }
        }
        _ => {
            for (d, v) in dst.iter_mut().zip(src.iter().step_by(sx)) {
                *d = v ^ flip;
            }
        }
    }
}

/// [`strided_copy`] for stride 2: 64 source bytes as 32 words narrowed
/// to their low bytes (`vpmovwb`), 32 outputs per step.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn stride2_avx512(src: &[u8], flip: u8, dst: &mut [u8]) {
    use core::arch::x86_64::*;
    let n = dst.len();
    let src = &src[..2 * n - 1];
    let fl = _mm256_set1_epi8(flip as i8);
    let mut t = 0;
    // Full steps read src[2t .. 2t + 64], inside `src` while 2t + 64 <=
    // 2n - 1.
    while 2 * t + 64 < 2 * n {
        // SAFETY: the 64-byte load is in bounds (loop condition), the
        // 32-byte store writes dst[t .. t + 32] with t + 32 <= n.
        unsafe {
            let v = _mm512_loadu_si512(src.as_ptr().add(2 * t) as *const __m512i);
            let e = _mm256_xor_si256(_mm512_cvtepi16_epi8(v), fl);
            _mm256_storeu_si256(dst.as_mut_ptr().add(t) as *mut __m256i, e);
        }
        t += 32;
    }
    let rem = n - t;
    if rem > 0 {
        // The last rem outputs read src[2t .. 2t + 2 rem - 1]: masked to
        // exactly those bytes (disabled lanes are not accessed).
        let lmask = (1u64 << (2 * rem - 1)) - 1;
        let smask = ((1u64 << rem) - 1) as u32;
        // SAFETY: the enabled load lanes are src[2t .. 2n - 1] and the
        // enabled store lanes dst[t .. n], all in bounds.
        unsafe {
            let v = _mm512_maskz_loadu_epi8(lmask, src.as_ptr().add(2 * t) as *const i8);
            let e = _mm256_xor_si256(_mm512_cvtepi16_epi8(v), fl);
            _mm256_mask_storeu_epi8(dst.as_mut_ptr().add(t) as *mut i8, smask, e);
        }
    }
}

/// One padded row split into its two stride phases: padded column `c` is
/// `src[c - px] ^ flip` inside the input and `zp` outside; even columns go
/// to the first half of `out`, odd ones to the second. 64 padded columns
/// per step, split by narrowing words to their low and high bytes.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL; `out.len()` must be even.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
unsafe fn row_s2_avx512(src: &[u8], px: usize, flip: u8, zp: u8, out: &mut [u8]) {
    use core::arch::x86_64::*;
    let pws = out.len() / 2;
    let (even, odd) = out.split_at_mut(pws);
    let (zv, fl) = (_mm512_set1_epi8(zp as i8), _mm512_set1_epi8(flip as i8));
    let iw = src.len();
    let mut c0 = 0;
    while c0 < 2 * pws {
        // Lanes lo .. hi of this step lie inside the input.
        let lo = px.saturating_sub(c0).min(64);
        let hi = (px + iw).saturating_sub(c0).clamp(lo, 64);
        let m = if hi == 64 { !0u64 } else { (1u64 << hi) - 1 } & !((1u64 << lo) - 1);
        let t = c0 / 2;
        let n = (pws - t).min(32);
        let sm = if n == 32 { !0u32 } else { (1u32 << n) - 1 };
        // SAFETY: lane l reads src[c0 + l - px] only for l in lo .. hi,
        // i.e. src indices c0 + lo - px .. c0 + hi - px within 0 .. iw
        // (disabled lanes are not accessed); the stores write even[t .. t
        // + n] and odd[t .. t + n], with t + n <= pws.
        unsafe {
            let p = src.as_ptr().wrapping_add(c0).wrapping_sub(px) as *const i8;
            let v = _mm512_mask_loadu_epi8(zv, m, p);
            let v = _mm512_mask_xor_epi32(v, !0, v, _mm512_maskz_mov_epi8(m, fl));
            let e = _mm512_cvtepi16_epi8(v);
            let o = _mm512_cvtepi16_epi8(_mm512_srli_epi16::<8>(v));
            _mm256_mask_storeu_epi8(even.as_mut_ptr().add(t) as *mut i8, sm, e);
            _mm256_mask_storeu_epi8(odd.as_mut_ptr().add(t) as *mut i8, sm, o);
        }
        c0 += 64;
    }
}

/// A run of panel columns along one output row: panel column `j`, `len`
/// positions, reading at `off` past each tap's offset.
#[derive(Clone, Copy, Default)]
struct Run {
    j: usize,
    len: usize,
    off: usize,
}

/// The im2col matrix of one group of one image, read from its padded copy.
pub(super) struct PaddedIm2Col<'a> {
    pub(super) pad: &'a [u8],
    pub(super) lay: &'a PadLayout,
    pub(super) g: &'a ConvGeom,
    /// The zero point in `u8` storage.
    pub(super) zp: u8,
    /// AVX2 may run.
    pub(super) avx2: bool,
    /// AVX-512 (BW, VL) may run.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(super) avx512: bool,
}

impl PaddedIm2Col<'_> {
    /// The panel's columns as runs along output rows; returns their count.
    fn runs(&self, n0: usize, nc: usize, runs: &mut [Run; NR]) -> usize {
        let g = self.g;
        let [_, oh, ow] = g.output;
        let lay = self.lay;
        let mut ns = 0;
        let mut j = 0;
        while j < nc {
            let n = n0 + j;
            let (line, ox) = (n / ow, n % ow);
            let (oz, oy) = (line / oh, line % oh);
            let len = (ow - ox).min(nc - j);
            let row = (oz * g.stride[0] * lay.ph + oy * g.stride[1]) * lay.sx;
            runs[ns] = Run {
                j,
                len,
                off: row * lay.pws + ox,
            };
            ns += 1;
            j += len;
        }
        ns
    }
}

impl QRhs for PaddedIm2Col<'_> {
    fn depth(&self) -> usize {
        self.lay.taps.len()
    }

    fn positions(&self) -> usize {
        self.g.out_spatial()
    }

    fn zero_point_storage(&self) -> i32 {
        self.zp as i32
    }

    fn pack_panel(&self, n0: usize, nc: usize, dst: &mut [u8]) {
        let k = self.depth();
        let groups = k.div_ceil(KG);
        let dst = &mut dst[..groups * NR * KG];
        let mut runs = [Run::default(); NR];
        let ns = self.runs(n0, nc, &mut runs);
        let runs = &runs[..ns];
        // Every read `tap + off .. + len` lies in `pad`: the largest tap
        // plus the farthest run end (checked once here, so the SIMD path's
        // unchecked loads stay in bounds).
        let max_tap = self.lay.taps.iter().copied().max().unwrap_or(0);
        let max_end = runs.iter().map(|r| r.off + r.len).max().unwrap_or(0);
        assert!(max_tap + max_end <= self.pad.len(), "qconv: padded input");
        #[cfg(target_arch = "x86_64")]
        if self.avx512 {
            // SAFETY: `avx512` is only set when the int8 ISA includes
            // AVX-512 F/BW/VL; reads are in bounds (asserted above), `dst`
            // holds `groups` groups of NR * KG bytes.
            unsafe { pack_avx512(self.pad, &self.lay.taps, runs, nc, dst) };
            return;
        }
        let mut rows = [[0u8; NR]; KG];
        for (gi, out) in dst.chunks_exact_mut(NR * KG).enumerate() {
            for (i, row) in rows.iter_mut().enumerate() {
                match self.lay.taps.get(gi * KG + i) {
                    Some(&tap) => {
                        for r in runs {
                            row[r.j..r.j + r.len]
                                .copy_from_slice(&self.pad[tap + r.off..][..r.len]);
                        }
                    }
                    None => row.fill(0),
                }
            }
            super::interleave(self.avx2, &rows, out);
        }
        let _ = nc;
    }
}

/// [`PaddedIm2Col::pack_panel`] with masked AVX-512 byte loads: each depth
/// row is assembled in a register from its runs, then four rows are
/// interleaved in registers and stored.
///
/// # Safety
/// The CPU must support AVX-512 F/BW/VL; for every tap and run, `tap +
/// off + len <= pad.len()`; `dst` holds `taps.len().div_ceil(4)` groups of
/// `NR * KG` bytes; runs cover columns `0..nc` with `nc <= NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn pack_avx512(pad: &[u8], taps: &[usize], runs: &[Run], nc: usize, dst: &mut [u8]) {
    use core::arch::x86_64::*;
    const _: () = assert!(NR == 32 && KG == 4);
    let _ = nc;
    let base = pad.as_ptr();
    let single = runs.len() == 1 && runs[0].len == NR;
    let masks: [u32; NR] = core::array::from_fn(|i| {
        runs.get(i)
            .map_or(0, |r| (((1u64 << r.len) - 1) << r.j) as u32)
    });
    let groups = taps.len().div_ceil(KG);
    let p = dst.as_mut_ptr() as *mut __m256i;
    for gi in 0..groups {
        let mut r = [_mm256_setzero_si256(); KG];
        for (i, reg) in r.iter_mut().enumerate() {
            let Some(&tap) = taps.get(gi * KG + i) else {
                continue;
            };
            if single {
                // SAFETY: 32 bytes at tap + off, in bounds by the contract.
                *reg = unsafe { _mm256_loadu_si256(base.add(tap + runs[0].off) as *const __m256i) };
                continue;
            }
            for (ri, run) in runs.iter().enumerate() {
                // Lane `l` of the load reads `tap + off - j + l`; only lanes
                // j .. j + len are enabled, so the bytes read are exactly
                // tap + off .. tap + off + len (in bounds by the contract);
                // disabled lanes are not accessed and cannot fault.
                let ptr = base.wrapping_add(tap + run.off).wrapping_sub(run.j) as *const i8;
                *reg = unsafe { _mm256_mask_loadu_epi8(*reg, masks[ri], ptr) };
            }
        }
        let t01l = _mm256_unpacklo_epi8(r[0], r[1]);
        let t01h = _mm256_unpackhi_epi8(r[0], r[1]);
        let t23l = _mm256_unpacklo_epi8(r[2], r[3]);
        let t23h = _mm256_unpackhi_epi8(r[2], r[3]);
        let q0 = _mm256_unpacklo_epi16(t01l, t23l);
        let q1 = _mm256_unpackhi_epi16(t01l, t23l);
        let q2 = _mm256_unpacklo_epi16(t01h, t23h);
        let q3 = _mm256_unpackhi_epi16(t01h, t23h);
        // SAFETY: group `gi` is the 128 bytes at gi * 128 of `dst`.
        unsafe {
            let o = p.add(gi * 4);
            _mm256_storeu_si256(o, _mm256_permute2x128_si256::<0x20>(q0, q1));
            _mm256_storeu_si256(o.add(1), _mm256_permute2x128_si256::<0x20>(q2, q3));
            _mm256_storeu_si256(o.add(2), _mm256_permute2x128_si256::<0x31>(q0, q1));
            _mm256_storeu_si256(o.add(3), _mm256_permute2x128_si256::<0x31>(q2, q3));
        }
    }
}
