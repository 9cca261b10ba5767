//! int8 depthwise convolution over NCHW planes (groups == input channels,
//! any channel multiplier, 1-D or 2-D).
//!
//! The SIMD paths (dilation 1, strides 1 or 2, any kernel size) first copy
//! each input plane, minus its zero point and with zero padding, into a
//! *pair buffer*: every i32 lane holds two vertically adjacent pixels as
//! i16, so one `pmaddwd`-style multiply with a pair of taps does two MACs
//! exactly. For stride 2 the columns are split into even and odd halves so
//! the loads stay contiguous. Rows whose first input row is odd use the
//! taps shifted by one (`(0, w0), (w1, w2)`), so every output row reads the
//! same pairs. Accumulation is int32 (exact for any realistic kernel), then
//! [`Requant`] and [`QClamp`] run on the vector; the portable path computes
//! the same integers directly, so all paths give identical bits.

use alloc::vec::Vec;

#[cfg(target_arch = "x86_64")]
mod vbmi;

#[cfg(target_arch = "aarch64")]
use super::isa::is_neon;
use super::isa::is_simd;
#[cfg(target_arch = "x86_64")]
use super::isa::{is_avx2, is_avx512};
use super::par::for_each_plane;
use super::{QInput, QIsa};
use crate::conv::ConvGeom;
use crate::depthwise::is_depthwise;
use crate::gemm::Exec;
use crate::requant::{QClamp, Requant};

/// Output lanes per vector step of the SIMD kernels (the AVX2 and NEON
/// kernels do 16 as several narrower vectors).
pub(super) const LANES: usize = 16;

/// A depthwise int8 conv with its weights and requantization copied in.
#[derive(Clone, Debug)]
pub struct QDepthwise {
    geom: ConvGeom,
    input: QInput,
    /// `w - w_zero_point`, `[cout, kh * kw]`.
    weights: Vec<i16>,
    bias: Vec<i32>,
    requant: Vec<Requant>,
    clamp: QClamp,
    /// The pair-buffer plan, when the SIMD kernels support the geometry.
    layout: Option<PairLayout>,
    /// Tap pairs per channel: `[cout, 2 (row parity), tr, kw]`, each i32
    /// holding `(upper tap as low i16, lower tap as high i16)`.
    pairs: Vec<i32>,
    /// The direct VBMI/VNNI 3x3 plan, when the geometry and weights fit.
    #[cfg(target_arch = "x86_64")]
    vbmi: Option<vbmi::Plan>,
}

/// Shape of the pair buffer of one plane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct PairLayout {
    /// Horizontal and vertical stride (1 or 2).
    pub sx: usize,
    pub sy: usize,
    /// Kernel width.
    pub kw: usize,
    /// Pair rows per output row: `(kh + 2) / 2` (covers both parities).
    pub tr: usize,
    /// Pair rows in the buffer.
    pub rows: usize,
    /// i32 elements per pair row.
    pub rw: usize,
    /// Offset of the odd columns in a row (stride 2 only).
    pub half: usize,
    /// Output size.
    pub oh: usize,
    pub ow: usize,
}

impl PairLayout {
    fn new(g: &ConvGeom) -> Option<PairLayout> {
        let (sy, sx) = (g.stride[1], g.stride[2]);
        if g.dilation != [1, 1, 1] || !(1..=2).contains(&sy) || !(1..=2).contains(&sx) {
            return None;
        }
        let (kh, kw) = (g.kernel[1], g.kernel[2]);
        let (oh, ow) = (g.output[1], g.output[2]);
        let tr = (kh + 2) / 2;
        let ow_vec = ow.div_ceil(LANES) * LANES;
        let data = g.pad_begin[2] + g.input[2];
        let (rw, half) = if sx == 1 {
            (data.max(ow_vec + kw - 1), 0)
        } else {
            let half = data.div_ceil(2).max(ow_vec + (kw - 1) / 2);
            (2 * half, half)
        };
        let rows = ((oh.max(1) - 1) * sy) / 2 + tr;
        Some(PairLayout {
            sx,
            sy,
            kw,
            tr,
            rows,
            rw,
            half,
            oh,
            ow,
        })
    }

    /// i32 elements of one plane's buffer.
    pub fn len(&self) -> usize {
        self.rows * self.rw
    }

    /// Offset in a pair row of tap `kx` for output column `ox`.
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    #[inline(always)]
    pub fn tap(&self, ox: usize, kx: usize) -> usize {
        if self.sx == 1 {
            ox + kx
        } else {
            (kx & 1) * self.half + ox + (kx >> 1)
        }
    }

    /// i32 elements of one task's scratch: the buffer, plus (stride 2) a
    /// contiguous row that is split into even and odd columns.
    pub fn slot(&self) -> usize {
        self.len() + if self.sx == 2 { self.rw + 2 * LANES } else { 0 }
    }

    /// Fills `buf` with plane `x` (`[h, w]`) minus its zero point, padded
    /// with zeros (the zero point, centered).
    fn fill(&self, g: &ConvGeom, inp: QInput, x: &[u8], buf: &mut [i32], isa: QIsa) {
        let (h, w) = (g.input[1], g.input[2]);
        let (pt, pl) = (g.pad_begin[1], g.pad_begin[2]);
        let (rows, tmp) = buf[..self.slot()].split_at_mut(self.len());
        let row_of = |r: usize| {
            r.checked_sub(pt)
                .filter(|&y| y < h)
                .map(|y| &x[y * w..][..w])
        };
        for (j, row) in rows.chunks_exact_mut(self.rw).enumerate() {
            let (a, b) = (row_of(2 * j), row_of(2 * j + 1));
            if a.is_none() && b.is_none() {
                row.fill(0);
                continue;
            }
            if self.sx == 1 {
                contiguous(isa, inp, a, b, pl, w, row);
            } else {
                // Whole 32-column blocks, so the split reads full vectors.
                let n = self.rw.div_ceil(2 * LANES) * 2 * LANES;
                let tmp = &mut tmp[..n];
                contiguous(isa, inp, a, b, pl, w, tmp);
                split(isa, tmp, row, self.half);
            }
        }
    }
}

/// `dst[c] = pair(a[c - pl], b[c - pl])` centered, zero outside the rows
/// (a missing row is zeros).
fn contiguous(
    isa: QIsa,
    inp: QInput,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    pl: usize,
    w: usize,
    dst: &mut [i32],
) {
    #[cfg(target_arch = "x86_64")]
    if is_avx512(isa) {
        // SAFETY: `isa` proves AVX-512 F/BW/VL; the function bounds every
        // access by the slices' lengths.
        unsafe { super::dw_x86::contiguous_avx512(inp, a, b, pl, w, dst) };
        return;
    }
    let _ = isa;
    let end = (pl + w).min(dst.len());
    dst[..pl.min(end)].fill(0);
    dst[end..].fill(0);
    let body = &mut dst[pl.min(end)..end];
    match (a, b) {
        (Some(a), Some(b)) => pack2(inp, a, b, body),
        (Some(a), None) => pack1(inp, a, body, 0),
        (None, Some(b)) => pack1(inp, b, body, 16),
        (None, None) => body.fill(0),
    }
}

/// `row[i] = tmp[2i]`, `row[half + i] = tmp[2i + 1]` for `i < half`.
fn split(isa: QIsa, tmp: &[i32], row: &mut [i32], half: usize) {
    #[cfg(target_arch = "x86_64")]
    if is_avx512(isa) {
        // SAFETY: `isa` proves AVX-512 F; the function bounds every access
        // by the slices' lengths.
        unsafe { super::dw_x86::split_avx512(tmp, row, half) };
        return;
    }
    let _ = isa;
    let (even, odd) = row.split_at_mut(half);
    for (i, (e, o)) in even.iter_mut().zip(odd.iter_mut()).enumerate() {
        *e = tmp[2 * i];
        *o = tmp[2 * i + 1];
    }
}

/// Two i16 values in one i32: `lo` in the low half.
#[inline(always)]
fn pair(lo: i32, hi: i32) -> i32 {
    ((lo as u16 as u32) | ((hi as u16 as u32) << 16)) as i32
}

/// `dst[i] = pair(a[i], b[i])`, centered; split by signedness so the
/// compiler vectorises each loop.
fn pack2(inp: QInput, a: &[u8], b: &[u8], dst: &mut [i32]) {
    let zp = inp.zero_point;
    if inp.signed {
        for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
            *d = pair(a as i8 as i32 - zp, b as i8 as i32 - zp);
        }
    } else {
        for ((d, &a), &b) in dst.iter_mut().zip(a).zip(b) {
            *d = pair(a as i32 - zp, b as i32 - zp);
        }
    }
}

/// `dst[i] = a[i]` centered, in the low (`shift` 0) or high (16) half.
fn pack1(inp: QInput, a: &[u8], dst: &mut [i32], shift: u32) {
    let zp = inp.zero_point;
    if inp.signed {
        for (d, &a) in dst.iter_mut().zip(a) {
            *d = (((a as i8 as i32 - zp) as u16 as u32) << shift) as i32;
        }
    } else {
        for (d, &a) in dst.iter_mut().zip(a) {
            *d = (((a as i32 - zp) as u16 as u32) << shift) as i32;
        }
    }
}

/// What the SIMD plane kernels need besides the buffer and the output.
pub(super) struct PlaneArgs<'a> {
    pub l: &'a PairLayout,
    /// Tap pairs of this channel: `[2, tr, kw]`.
    pub pairs: &'a [i32],
    pub bias: i32,
    pub rq: Requant,
    pub clamp: QClamp,
}

impl PlaneArgs<'_> {
    /// Tap pairs for output row `oy`: `(first pair row, [tr, kw] taps)`.
    #[inline(always)]
    pub fn row(&self, oy: usize) -> (usize, &[i32]) {
        let r0 = oy * self.l.sy;
        let n = self.l.tr * self.l.kw;
        (r0 >> 1, &self.pairs[(r0 & 1) * n..][..n])
    }
}

/// True when the vector requantization matches [`Requant::apply`] for
/// `rq`: the one case it does not handle is the saturating
/// `i32::MIN * i32::MIN` product, impossible unless the multiplier is
/// `i32::MIN`.
pub(super) fn simd_requant_ok(rq: Requant) -> bool {
    rq.multiplier != i32::MIN && (-31..=30).contains(&rq.shift)
}

impl QDepthwise {
    /// Copies `weights` (`w - w_zero_point`, `[cout, 1, kh, kw]`), `bias`
    /// (`[cout]`, or none), one [`Requant`] per output channel, and the
    /// output clamp.
    ///
    /// # Panics
    /// If `geom` is not depthwise ([`is_depthwise`]) or a slice is short.
    pub fn new(
        geom: ConvGeom,
        input: QInput,
        weights: &[i16],
        bias: Option<&[i32]>,
        requant: &[Requant],
        clamp: QClamp,
    ) -> QDepthwise {
        assert!(is_depthwise(&geom), "qdepthwise: not a depthwise geometry");
        let (cout, ks) = (geom.cout, geom.kernel_size());
        let weights = weights[..cout * ks].to_vec();
        let layout = PairLayout::new(&geom);
        let mut pairs = Vec::new();
        if let Some(l) = &layout {
            let (kh, kw, tr) = (geom.kernel[1], l.kw, l.tr);
            let tap = |co: usize, ky: isize, kx: usize| -> i32 {
                if ky < 0 || ky as usize >= kh {
                    0
                } else {
                    weights[co * ks + ky as usize * kw + kx] as i32
                }
            };
            pairs.reserve(cout * 2 * tr * kw);
            for co in 0..cout {
                for parity in 0..2isize {
                    for t in 0..tr as isize {
                        for kx in 0..kw {
                            let ky = 2 * t - parity;
                            pairs.push(pair(tap(co, ky, kx), tap(co, ky + 1, kx)));
                        }
                    }
                }
            }
        }
        let bias = bias.map_or_else(|| alloc::vec![0; cout], |b| b[..cout].to_vec());
        let requant = requant[..cout].to_vec();
        #[cfg(target_arch = "x86_64")]
        let vbmi = vbmi::Plan::new(
            &geom,
            input.signed,
            input.zero_point,
            &weights,
            &bias,
            &requant,
            clamp,
        );
        QDepthwise {
            input,
            weights,
            bias,
            requant,
            #[cfg(target_arch = "x86_64")]
            vbmi,
            clamp,
            layout,
            pairs,
            geom,
        }
    }

    /// The geometry.
    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }

    /// Short name of what runs with `isa`: `depthwise3x3.vbmi` for the
    /// direct AVX-512 VBMI kernel, `depthwise3x3` etc. for the pair-buffer
    /// vector kernels, `depthwise.direct` for the portable loop.
    pub fn kernel_name(&self, isa: QIsa) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if self.vbmi.is_some() && is_avx512(isa) && vbmi::available() {
            return "depthwise3x3.vbmi";
        }
        match (&self.layout, is_simd(isa)) {
            (Some(l), true) => match (self.geom.kernel[1], l.kw) {
                (3, 3) => "depthwise3x3",
                (5, 5) => "depthwise5x5",
                _ => "depthwise",
            },
            _ => "depthwise.direct",
        }
    }

    /// Bytes of weights, bias and requantization held.
    pub fn weight_bytes(&self) -> usize {
        self.weights.len() * 2 + self.bias.len() * 4 + self.requant.len() * 8 + self.pairs.len() * 4
    }

    /// i32 scratch elements one task needs.
    pub fn scratch_slot(&self) -> usize {
        self.layout.as_ref().map_or(1, PairLayout::slot)
    }

    /// i32 scratch elements for up to `tasks` tasks.
    pub fn scratch_len(&self, tasks: usize) -> usize {
        self.scratch_slot() * tasks.max(1)
    }

    /// `y = clamp(requant(depthwise(x - x_zp) + bias) + y_zp)`, bytes in
    /// and out (int8 or uint8 as the [`QInput`] and [`QClamp`] say), spread
    /// over planes. `scratch` needs [`QDepthwise::scratch_len`] elements for
    /// one task, more for more.
    ///
    /// # Panics
    /// If a slice is too short.
    pub fn run(&self, isa: QIsa, x: &[u8], y: &mut [u8], scratch: &mut [i32], exec: &dyn Exec) {
        let g = &self.geom;
        let (isp, osp) = (g.in_spatial(), g.out_spatial());
        assert!(
            x.len() >= g.batch * g.cin * isp,
            "qdepthwise: input too short"
        );
        let y = &mut y[..g.batch * g.cout * osp];
        if osp == 0 {
            return;
        }
        let mult = g.cout / g.cin;
        let slot = self.scratch_slot();
        #[cfg(target_arch = "x86_64")]
        if let (Some(p), true) = (&self.vbmi, is_avx512(isa) && vbmi::available()) {
            // The direct kernel needs no scratch; the CPU checks are done
            // once here rather than per plane.
            for_each_plane(exec, y, osp, scratch, slot, &|idx, out, _| {
                let (b, co) = (idx / g.cout, idx % g.cout);
                let xc = &x[(b * g.cin + co / mult) * isp..][..isp];
                // SAFETY: `vbmi::available` proves AVX-512 F/BW/VL/VNNI/VBMI;
                // `xc` is the input plane and `out` the output plane, the
                // lengths the kernel asserts.
                unsafe { vbmi::plane(p, co, self.requant[co], self.clamp, xc, out) };
            });
            return;
        }
        for_each_plane(exec, y, osp, scratch, slot, &|idx, out, buf| {
            let (b, co) = (idx / g.cout, idx % g.cout);
            let xc = &x[(b * g.cin + co / mult) * isp..][..isp];
            self.plane(isa, co, xc, out, buf);
        });
    }

    /// One output plane.
    fn plane(&self, isa: QIsa, co: usize, x: &[u8], out: &mut [u8], buf: &mut [i32]) {
        let rq = self.requant[co];
        if let (Some(l), true) = (&self.layout, is_simd(isa) && simd_requant_ok(rq)) {
            l.fill(&self.geom, self.input, x, buf, isa);
            let n = 2 * l.tr * l.kw;
            let args = PlaneArgs {
                l,
                pairs: &self.pairs[co * n..][..n],
                bias: self.bias[co],
                rq,
                clamp: self.clamp,
            };
            let buf = &buf[..l.len()];
            let out = &mut out[..l.oh * l.ow];
            #[cfg(target_arch = "x86_64")]
            {
                if is_avx512(isa) {
                    // SAFETY: `isa` proves AVX-512 F, BW and VNNI; `buf` is the
                    // layout's length and `out` the plane's, which is what
                    // the kernel's loads and stores stay within.
                    unsafe { super::dw_x86::plane_avx512(&args, buf, out) };
                    return;
                }
                if is_avx2(isa) {
                    // SAFETY: `isa` proves AVX2; lengths as above.
                    unsafe { super::dw_x86::plane_avx2(&args, buf, out) };
                    return;
                }
            }
            #[cfg(target_arch = "aarch64")]
            if is_neon(isa) {
                // SAFETY: NEON is baseline on aarch64; lengths as above.
                unsafe { super::dw_neon::plane_neon(&args, buf, out) };
                return;
            }
        }
        self.plane_portable(co, x, out);
    }

    /// The direct definition, skipping padded taps (they contribute
    /// `(x_zp - x_zp) * w = 0`).
    fn plane_portable(&self, co: usize, x: &[u8], out: &mut [u8]) {
        let g = &self.geom;
        let (h, w) = (g.input[1] as isize, g.input[2] as isize);
        let (oh, ow) = (g.output[1], g.output[2]);
        let (kh, kw) = (g.kernel[1], g.kernel[2]);
        let ks = kh * kw;
        let taps = &self.weights[co * ks..][..ks];
        let (rq, clamp, bias) = (self.requant[co], self.clamp, self.bias[co]);
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = bias;
                for ky in 0..kh {
                    let iy =
                        (oy * g.stride[1] + ky * g.dilation[1]) as isize - g.pad_begin[1] as isize;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    let row = &x[iy as usize * w as usize..][..w as usize];
                    for kx in 0..kw {
                        let ix = (ox * g.stride[2] + kx * g.dilation[2]) as isize
                            - g.pad_begin[2] as isize;
                        if ix < 0 || ix >= w {
                            continue;
                        }
                        let v = self.input.centered(row[ix as usize]);
                        acc = acc.wrapping_add(v.wrapping_mul(taps[ky * kw + kx] as i32));
                    }
                }
                out[oy * ow + ox] = clamp.apply(rq.apply(acc)) as u8;
            }
        }
    }
}
