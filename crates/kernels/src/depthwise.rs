//! Direct depthwise convolution over NCHW (groups == input channels, any
//! channel multiplier), 2-D (or 1-D as height 1). With AVX-512, stride-1
//! convs whose output rows are as wide as their input rows run the flat
//! masked-load plane kernel and 3x3 stride-2 convs a permute-based row
//! kernel (see `depthwise/avx512.rs`). Otherwise each output row is split
//! into border columns, computed with bounds checks, and interior columns
//! where every tap is in range, computed without branches: AVX2 kernels
//! specialised for 3x3 stride 1 and stride 2 keep the taps and up to three
//! input rows' worth of loads in registers and vectorise along the output
//! width; other shapes use a tap-by-tap row update that the compiler
//! vectorises. Bias and activation are fused.

use alloc::vec::Vec;

use crate::conv::ConvGeom;
use crate::gemm::{for_each_chunk_mut, split_act, Exec, Isa};
use crate::Activation;

/// A depthwise conv with its weights `[cout, 1, kh, kw]` copied in.
#[derive(Clone, Debug)]
pub struct Depthwise {
    geom: ConvGeom,
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Activation,
    /// The flat stride-1 AVX-512 kernel's plan, when it applies and the
    /// CPU has AVX-512.
    #[cfg(target_arch = "x86_64")]
    flat: Option<avx512::FlatPlan>,
}

/// Which inner kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DwVariant {
    /// 3x3, stride 1, dilation 1.
    K3S1,
    /// 3x3, stride 2, dilation 1.
    K3S2,
    /// Anything else.
    Generic,
}

impl DwVariant {
    /// The variant for a geometry.
    pub fn of(g: &ConvGeom) -> DwVariant {
        match (g.kernel, g.stride, g.dilation) {
            ([1, 3, 3], [1, 1, 1], [1, 1, 1]) => DwVariant::K3S1,
            ([1, 3, 3], [1, 2, 2], [1, 1, 1]) => DwVariant::K3S2,
            _ => DwVariant::Generic,
        }
    }
}

/// True when `g` is a depthwise conv this module runs: 1-D or 2-D, one
/// input channel per group.
pub fn is_depthwise(g: &ConvGeom) -> bool {
    g.is_valid()
        && g.groups == g.cin
        && g.cout.is_multiple_of(g.cin)
        && g.input[0] == 1
        && g.kernel[0] == 1
        && g.output[0] == 1
        && g.pad_begin[0] == 0
}

impl Depthwise {
    /// Copies weights `[cout, 1, kh, kw]` and an optional bias `[cout]`.
    ///
    /// # Panics
    /// If `geom` is not depthwise ([`is_depthwise`]) or a slice is short.
    pub fn new(geom: ConvGeom, weights: &[f32], bias: Option<&[f32]>, act: Activation) -> Self {
        assert!(is_depthwise(&geom), "depthwise: not a depthwise geometry");
        let n = geom.cout * geom.kernel_size();
        Depthwise {
            weights: weights[..n].to_vec(),
            bias: bias.map(|b| b[..geom.cout].to_vec()),
            #[cfg(target_arch = "x86_64")]
            flat: if Isa::detect().is_avx512() {
                avx512::FlatPlan::new(&geom)
            } else {
                None
            },
            geom,
            act,
        }
    }

    /// The geometry.
    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }

    /// Which inner kernel runs.
    pub fn variant(&self) -> DwVariant {
        DwVariant::of(&self.geom)
    }

    /// Short name of the kernel that runs with `isa`: `flat` (AVX-512
    /// stride 1), `s2` (AVX-512 3x3 stride 2), or the [`DwVariant`]'s.
    pub fn kernel_name(&self, isa: Isa) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx512() {
            if self.flat.is_some() {
                return "flat";
            }
            if avx512::s2_supported(&self.geom) {
                return "s2";
            }
        }
        let _ = isa;
        match self.variant() {
            DwVariant::Generic => "generic",
            _ => "rows",
        }
    }

    /// Bytes of weights and bias held (and the flat kernel's masks).
    pub fn weight_bytes(&self) -> usize {
        #[cfg(target_arch = "x86_64")]
        let plan = self.flat.as_ref().map_or(0, avx512::FlatPlan::bytes);
        #[cfg(not(target_arch = "x86_64"))]
        let plan = 0;
        (self.weights.len() + self.bias.as_ref().map_or(0, Vec::len)) * 4 + plan
    }

    /// `y = act(depthwise_conv(x) + bias)`, spread over channels.
    pub fn run(&self, isa: Isa, x: &[f32], y: &mut [f32], exec: &dyn Exec) {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(plan)) = (isa.is_avx512(), &self.flat) {
            let g = &self.geom;
            let (w, bias, act) = (&self.weights, self.bias.as_deref(), self.act);
            per_channel(g, x, y, exec, &|xc, co, out| {
                let (vact, scalar_act) = split_act(isa, act);
                let bv = bias.map_or(0.0, |v| v[co]);
                let ks = g.kernel_size();
                // SAFETY: AVX-512 is present (`isa`); `channel` checks
                // the lengths it relies on.
                unsafe { plan.channel(xc, &w[co * ks..][..ks], bv, vact, out) };
                if scalar_act {
                    act.apply_slice(out);
                }
            });
            return;
        }
        depthwise(
            isa,
            &self.geom,
            &self.weights,
            self.bias.as_deref(),
            self.act,
            x,
            y,
            exec,
        );
    }
}

/// Depthwise conv with weights `[cout, 1, kh, kw]` given at run time.
///
/// # Panics
/// If `g` is not depthwise or a slice is too short.
#[allow(clippy::too_many_arguments)]
pub fn depthwise(
    isa: Isa,
    g: &ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    exec: &dyn Exec,
) {
    assert!(is_depthwise(g), "depthwise: not a depthwise geometry");
    let (isp, osp, ks) = (g.in_spatial(), g.out_spatial(), g.kernel_size());
    assert!(
        x.len() >= g.batch * g.cin * isp,
        "depthwise: input too short"
    );
    assert!(weights.len() >= g.cout * ks, "depthwise: weights too short");
    if let Some(b) = bias {
        assert!(b.len() >= g.cout, "depthwise: bias too short");
    }
    let y = &mut y[..g.batch * g.cout * osp];
    if osp == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx512() && avx512::s2_supported(g) {
        per_channel(g, x, y, exec, &|xc, co, out| {
            let (vact, scalar_act) = split_act(isa, act);
            let bv = bias.map_or(0.0, |v| v[co]);
            // SAFETY: AVX-512 is present (`isa`); `s2_channel` checks the
            // lengths it relies on.
            unsafe { avx512::s2_channel(g, xc, &weights[co * 9..][..9], bv, vact, out) };
            if scalar_act {
                act.apply_slice(out);
            }
        });
        return;
    }
    let mult = g.cout / g.cin;
    // Several channels per call amortise the per-call setup on small maps.
    let per = (4096 / osp).clamp(1, 64);
    let fast = isa.is_avx2() && DwVariant::of(g) != DwVariant::Generic && ring_width(g).is_some();
    for_each_chunk_mut(exec, y, osp * per, &|ci, outs| {
        let mut ring = [0.0f32; RING_ROWS * RING_MAX];
        let mut ring = fast.then(|| Ring::new(g, &mut ring));
        for (k, out) in outs.chunks_exact_mut(osp).enumerate() {
            let idx = ci * per + k;
            let (b, co) = (idx / g.cout, idx % g.cout);
            let xc = &x[(b * g.cin + co / mult) * isp..][..isp];
            let w = &weights[co * ks..][..ks];
            let bv = bias.map_or(0.0, |v| v[co]);
            match ring.as_mut() {
                Some(r) => channel_ring(isa, g, r, xc, w, bv, act, out),
                None => channel(isa, g, xc, w, bv, act, out),
            }
        }
    });
}

/// A per-channel body: `(input_plane, output_channel, output_plane)`.
#[cfg(target_arch = "x86_64")]
type ChannelFn<'a> = dyn Fn(&[f32], usize, &mut [f32]) + Sync + 'a;

/// Runs `f(input_channel, output_channel_index, output_plane)` for every
/// output channel of every image, several channels per task, then the
/// scalar part of the activation.
#[cfg(target_arch = "x86_64")]
fn per_channel(g: &ConvGeom, x: &[f32], y: &mut [f32], exec: &dyn Exec, f: &ChannelFn<'_>) {
    let (isp, osp) = (g.in_spatial(), g.out_spatial());
    assert!(
        x.len() >= g.batch * g.cin * isp,
        "depthwise: input too short"
    );
    let y = &mut y[..g.batch * g.cout * osp];
    if osp == 0 {
        return;
    }
    let mult = g.cout / g.cin;
    let per = (4096 / osp).clamp(1, 64);
    for_each_chunk_mut(exec, y, osp * per, &|ci, outs| {
        for (k, out) in outs.chunks_exact_mut(osp).enumerate() {
            let idx = ci * per + k;
            let (b, co) = (idx / g.cout, idx % g.cout);
            f(&x[(b * g.cin + co / mult) * isp..][..isp], co, out);
        }
    });
}

/// Rows in the ring: four input rows and one row of zeros.
const RING_ROWS: usize = 5;
/// Longest padded row the ring holds.
const RING_MAX: usize = 1024;

/// Length of a padded row for the 3x3 kernels: the input with its left
/// padding, plus room for the last 8-wide chunk's reads, or `None` when it
/// exceeds [`RING_MAX`].
fn ring_width(g: &ConvGeom) -> Option<usize> {
    let (w, ow, s) = (g.input[2], g.output[2], g.stride[2]);
    let last = ow.div_ceil(8).max(1) * 8 - 8;
    let reads = if s == 1 { last + 10 } else { 2 * last + 17 };
    let need = (g.pad_begin[2] + w).max(reads);
    (need <= RING_MAX).then_some(need)
}

/// Zero-padded copies of the input rows a 3x3 kernel is reading, so that
/// every output column runs the same vector code. Slot `iy % 4` holds row
/// `iy`; the padding around each row's data stays zero.
// Only the AVX2 path reads the ring; elsewhere `fast` is always false.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Ring<'a> {
    buf: &'a mut [f32],
    width: usize,
}

impl<'a> Ring<'a> {
    fn new(g: &ConvGeom, buf: &'a mut [f32; RING_ROWS * RING_MAX]) -> Self {
        let width = ring_width(g).expect("checked by caller");
        let buf = &mut buf[..RING_ROWS * width];
        Ring { buf, width }
    }
}

/// One channel of a 3x3 depthwise conv through the ring: all columns vector.
#[allow(clippy::too_many_arguments)]
fn channel_ring(
    isa: Isa,
    g: &ConvGeom,
    ring: &mut Ring<'_>,
    x: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    let (vact, scalar_act) = split_act(isa, act);
    let taps: [[f32; 3]; 3] = core::array::from_fn(|r| [w[3 * r], w[3 * r + 1], w[3 * r + 2]]);
    #[cfg(target_arch = "x86_64")]
    {
        let plane = avx2::Plane {
            ih: g.input[1],
            iw: g.input[2],
            pt: g.pad_begin[1],
            pl: g.pad_begin[2],
            ow: g.output[2],
            s2: g.stride[1] == 2,
        };
        assert!(isa.is_avx2());
        // SAFETY: AVX2 and FMA are present (asserted); `plane3` checks
        // every length it relies on.
        unsafe { avx2::plane3(&plane, ring.buf, ring.width, x, &taps, bias, vact, out) };
        if scalar_act {
            act.apply_slice(out);
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, g, ring, x, taps, bias, vact, out, scalar_act);
        unreachable!("the ring path is only taken with AVX2");
    }
}

/// Output columns `[lo, hi)` where every tap of a row is inside the input.
fn interior(g: &ConvGeom) -> (usize, usize) {
    let (w, ow) = (g.input[2], g.output[2]);
    let (k, s, d, p) = (g.kernel[2], g.stride[2], g.dilation[2], g.pad_begin[2]);
    let lo = p.div_ceil(s).min(ow);
    // Last tap: ox*s - p + (k-1)*d <= w - 1.
    let reach = (k - 1) * d;
    let hi = if w + p < reach + 1 {
        lo
    } else {
        ((w + p - reach - 1) / s + 1).clamp(lo, ow)
    };
    (lo, hi)
}

/// One channel: `out` is `oh x ow`, `x` is `h x w`.
fn channel(
    isa: Isa,
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: f32,
    act: Activation,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    let variant = DwVariant::of(g);
    let (vact, scalar_act) = split_act(isa, act);
    let (lo, hi) = interior(g);
    let (ih, iw, ow) = (g.input[1], g.input[2], g.output[2]);
    let (kh, kw) = (g.kernel[1], g.kernel[2]);
    for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
        // Kernel rows whose input row exists.
        let iy0 = (oy * g.stride[1]) as isize - g.pad_begin[1] as isize;
        let valid = |ky: usize| {
            let iy = iy0 + (ky * g.dilation[1]) as isize;
            (iy >= 0 && iy < ih as isize).then(|| &x[iy as usize * iw..][..iw])
        };
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut done = false;
        #[cfg(target_arch = "x86_64")]
        if isa.is_avx2() && variant != DwVariant::Generic && hi > lo {
            let mut rows: [&[f32]; 3] = [&[]; 3];
            let mut taps = [[0.0f32; 3]; 3];
            let mut n = 0;
            for ky in 0..3 {
                if let Some(r) = valid(ky) {
                    rows[n] = r;
                    taps[n].copy_from_slice(&w[ky * 3..ky * 3 + 3]);
                    n += 1;
                }
            }
            let pl = g.pad_begin[2];
            if n > 0 {
                // SAFETY: AVX2 is present (`isa`); `interior` guarantees every
                // tap of outputs lo..hi reads inside rows of length iw, which
                // `avx2::row3` re-checks.
                unsafe {
                    avx2::row3(
                        variant == DwVariant::K3S2,
                        &rows[..n],
                        &taps[..n],
                        bias,
                        vact,
                        pl,
                        lo,
                        hi,
                        orow,
                    );
                }
                done = true;
            }
        }
        if !done {
            row_generic(isa, g, &valid, w, bias, lo, hi, orow);
            vact.apply_slice(&mut orow[lo..hi]);
        }
        // Border columns, tap by tap with bounds checks.
        for ox in (0..lo).chain(hi..ow) {
            let ix0 = (ox * g.stride[2]) as isize - g.pad_begin[2] as isize;
            let mut s = bias;
            for ky in 0..kh {
                if let Some(r) = valid(ky) {
                    for kx in 0..kw {
                        let ix = ix0 + (kx * g.dilation[2]) as isize;
                        if ix >= 0 && ix < iw as isize {
                            s += w[ky * kw + kx] * r[ix as usize];
                        }
                    }
                }
            }
            orow[ox] = vact.apply(s);
        }
        if scalar_act {
            act.apply_slice(orow);
        }
    }
}

/// Interior columns of one output row, tap by tap: each tap is a
/// branch-free multiply-add over a contiguous (or strided) input run.
#[allow(clippy::too_many_arguments)]
fn row_generic<'x>(
    isa: Isa,
    g: &ConvGeom,
    valid: &dyn Fn(usize) -> Option<&'x [f32]>,
    w: &[f32],
    bias: f32,
    lo: usize,
    hi: usize,
    orow: &mut [f32],
) {
    if lo >= hi {
        return;
    }
    let out = &mut orow[lo..hi];
    out.fill(bias);
    let (kh, kw, s) = (g.kernel[1], g.kernel[2], g.stride[2]);
    for ky in 0..kh {
        let Some(r) = valid(ky) else { continue };
        for kx in 0..kw {
            let start = lo * s + kx * g.dilation[2] - g.pad_begin[2];
            axpy(isa, w[ky * kw + kx], &r[start..], s, out);
        }
    }
}

/// `out[i] += a * x[i * stride]`.
fn axpy(isa: Isa, a: f32, x: &[f32], stride: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.is_avx2() {
        // SAFETY: AVX2 and FMA are present (`isa`); the body is safe code.
        unsafe { avx2::axpy(a, x, stride, out) };
        return;
    }
    let _ = isa;
    axpy_portable(a, x, stride, out);
}

#[inline(always)]
fn axpy_portable(a: f32, x: &[f32], stride: usize, out: &mut [f32]) {
    if stride == 1 {
        for (o, v) in out.iter_mut().zip(x) {
            *o += a * v;
        }
    } else {
        for (o, v) in out.iter_mut().zip(x.iter().step_by(stride)) {
            *o += a * v;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use core::arch::x86_64::*;

    use crate::gemm::VecAct;

    /// The portable row update compiled for AVX2+FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn axpy(a: f32, x: &[f32], stride: usize, out: &mut [f32]) {
        super::axpy_portable(a, x, stride, out)
    }

    /// Geometry of one 3x3 depthwise plane.
    pub(super) struct Plane {
        pub ih: usize,
        pub iw: usize,
        pub pt: usize,
        pub pl: usize,
        pub ow: usize,
        pub s2: bool,
    }

    /// One output plane (`out.len() / ow` rows) of a 3x3 depthwise conv.
    /// Input rows are copied once into zero-padded slots of `ring` (4 rows
    /// of `width` plus a zero row), then every output row runs the vector
    /// row kernel.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Lengths are checked on entry.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn plane3(
        p: &Plane,
        ring: &mut [f32],
        width: usize,
        x: &[f32],
        taps: &[[f32; 3]; 3],
        bias: f32,
        act: VecAct,
        out: &mut [f32],
    ) {
        let (ih, iw, ow) = (p.ih, p.iw, p.ow);
        let s = if p.s2 { 2 } else { 1 };
        assert!(ring.len() >= 5 * width && p.pl + iw <= width && x.len() >= ih * iw);
        if ow == 0 {
            return;
        }
        let mut tags = [usize::MAX; 4];
        let wv: [[__m256; 3]; 3] =
            core::array::from_fn(|r| core::array::from_fn(|k| _mm256_set1_ps(taps[r][k])));
        for (oy, orow) in out.chunks_exact_mut(ow).enumerate() {
            let mut slots = [4usize; 3];
            for (ky, slot) in slots.iter_mut().enumerate() {
                let iy = (oy * s + ky) as isize - p.pt as isize;
                if iy < 0 || iy as usize >= ih {
                    continue;
                }
                let iy = iy as usize;
                let k = iy % 4;
                if tags[k] != iy {
                    let dst = &mut ring[k * width + p.pl..][..iw];
                    // A plain loop: vectorised here, and no call for
                    // short rows.
                    for (d, v) in dst.iter_mut().zip(&x[iy * iw..(iy + 1) * iw]) {
                        *d = *v;
                    }
                    tags[k] = iy;
                }
                *slot = k;
            }
            let rows = slots.map(|k| &ring[k * width..(k + 1) * width]);
            // SAFETY: AVX2/FMA are enabled here; `row_vec` checks lengths.
            unsafe { row_vec(p.s2, rows, &wv, bias, act, orow) };
        }
    }

    /// A whole output row of a 3x3 depthwise conv from three zero-padded
    /// rows (padded column of output `ox`, tap `kx`: `ox * stride + kx`),
    /// with the taps already broadcast into `wv` (by [`plane3`], once per
    /// plane).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Row lengths are checked on entry.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_vec(
        s2: bool,
        rows: [&[f32]; 3],
        wv: &[[__m256; 3]; 3],
        bias: f32,
        act: VecAct,
        out: &mut [f32],
    ) {
        let ow = out.len();
        if ow == 0 {
            return;
        }
        let last = ow.div_ceil(8) * 8 - 8;
        let reads = if s2 { 2 * last + 17 } else { last + 10 };
        for r in rows {
            assert!(r.len() >= reads, "padded row too short");
        }
        let stride = if s2 { 2 } else { 1 };
        let bv = _mm256_set1_ps(bias);
        let ptr = [rows[0].as_ptr(), rows[1].as_ptr(), rows[2].as_ptr()];
        let op = out.as_mut_ptr();
        // SAFETY: chunks start at ox <= last and read at most `reads`
        // floats per row (checked); full chunks store out[ox..ox+8] with
        // ox + 8 <= ow; the tail uses a masked store of its ow - ox lanes.
        unsafe {
            let one = |ox: usize| -> __m256 {
                let mut part = [bv, _mm256_setzero_ps(), _mm256_setzero_ps()];
                for r in 0..3 {
                    let [a, b, c] = if s2 {
                        load3::<true>(ptr[r].add(ox * stride))
                    } else {
                        load3::<false>(ptr[r].add(ox * stride))
                    };
                    let mut q = part[r];
                    q = _mm256_fmadd_ps(wv[r][0], a, q);
                    q = _mm256_fmadd_ps(wv[r][1], b, q);
                    q = _mm256_fmadd_ps(wv[r][2], c, q);
                    part[r] = q;
                }
                let v = _mm256_add_ps(_mm256_add_ps(part[0], part[1]), part[2]);
                let v = if s2 { unscramble(v) } else { v };
                crate::gemm::avx2_act(act, v)
            };
            let mut ox = 0;
            while ox + 16 <= ow {
                let v0 = one(ox);
                let v1 = one(ox + 8);
                _mm256_storeu_ps(op.add(ox), v0);
                _mm256_storeu_ps(op.add(ox + 8), v1);
                ox += 16;
            }
            while ox + 8 <= ow {
                _mm256_storeu_ps(op.add(ox), one(ox));
                ox += 8;
            }
            if ox < ow {
                let n = (ow - ox) as i32;
                let mask = _mm256_cmpgt_epi32(
                    _mm256_set1_epi32(n),
                    _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                );
                _mm256_maskstore_ps(op.add(ox), mask, one(ox));
            }
        }
    }

    /// Interior outputs `lo..hi` of one row of a 3x3 depthwise conv with
    /// stride 1 (`s2 = false`) or 2, from the valid input rows `rows` (1 to
    /// 3) and their taps. Input column of output `ox`, tap `kx`:
    /// `ox * stride - pl + kx`.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Bounds are checked on entry.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row3(
        s2: bool,
        rows: &[&[f32]],
        taps: &[[f32; 3]],
        bias: f32,
        act: VecAct,
        pl: usize,
        lo: usize,
        hi: usize,
        out: &mut [f32],
    ) {
        let stride = if s2 { 2 } else { 1 };
        assert!(lo < hi && hi <= out.len() && rows.len() == taps.len() && rows.len() <= 3);
        assert!(lo * stride >= pl);
        for r in rows {
            assert!((hi - 1) * stride + 2 < r.len() + pl);
        }
        // SAFETY: the asserts above bound every read to `(ox * stride - pl
        // + kx)` for ox in lo..hi, kx <= 2, inside each row; chunks below
        // only cover such ox, and every store is to out[lo..hi].
        unsafe {
            match (s2, rows.len()) {
                (false, 1) => run::<false, 1>(rows, taps, bias, act, pl, lo, hi, out),
                (false, 2) => run::<false, 2>(rows, taps, bias, act, pl, lo, hi, out),
                (false, _) => run::<false, 3>(rows, taps, bias, act, pl, lo, hi, out),
                (true, 1) => run::<true, 1>(rows, taps, bias, act, pl, lo, hi, out),
                (true, 2) => run::<true, 2>(rows, taps, bias, act, pl, lo, hi, out),
                (true, _) => run::<true, 3>(rows, taps, bias, act, pl, lo, hi, out),
            }
        }
    }

    /// # Safety
    /// As [`row3`], whose asserts must hold, with `rows.len() == R`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run<const S2: bool, const R: usize>(
        rows: &[&[f32]],
        taps: &[[f32; 3]],
        bias: f32,
        act: VecAct,
        pl: usize,
        lo: usize,
        hi: usize,
        out: &mut [f32],
    ) {
        let stride = if S2 { 2 } else { 1 };
        let mut ptr = [core::ptr::null::<f32>(); R];
        let mut wv = [[_mm256_setzero_ps(); 3]; R];
        for r in 0..R {
            // Input of output `ox`, tap `kx`: `ptr[r] + ox * stride - pl + kx`.
            ptr[r] = rows[r].as_ptr();
            for k in 0..3 {
                wv[r][k] = _mm256_set1_ps(taps[r][k]);
            }
        }
        let bv = _mm256_set1_ps(bias);
        let op = out.as_mut_ptr();
        // SAFETY: callers guarantee reads at ptr[r] + ox*stride + kx for
        // ox in lo..hi, kx in 0..3, are in bounds; each chunk below reads
        // only those (see `load3`), and stores to out[ox..ox+8] with
        // ox + 8 <= hi.
        unsafe {
            let one = |ox: usize| -> __m256 {
                // One partial sum per input row keeps the FMA chains short.
                let mut part = [bv, _mm256_setzero_ps(), _mm256_setzero_ps()];
                for r in 0..R {
                    let [a, b, c] = load3::<S2>(ptr[r].add(ox * stride - pl));
                    let mut p = part[r];
                    p = _mm256_fmadd_ps(wv[r][0], a, p);
                    p = _mm256_fmadd_ps(wv[r][1], b, p);
                    p = _mm256_fmadd_ps(wv[r][2], c, p);
                    part[r] = p;
                }
                let s = _mm256_add_ps(_mm256_add_ps(part[0], part[1]), part[2]);
                let s = if S2 { unscramble(s) } else { s };
                crate::gemm::avx2_act(act, s)
            };
            let mut ox = lo;
            while ox + 16 <= hi {
                let v0 = one(ox);
                let v1 = one(ox + 8);
                _mm256_storeu_ps(op.add(ox), v0);
                _mm256_storeu_ps(op.add(ox + 8), v1);
                ox += 16;
            }
            if ox + 8 <= hi {
                _mm256_storeu_ps(op.add(ox), one(ox));
                ox += 8;
            }
            if ox < hi {
                if hi - lo >= 8 {
                    // Recompute the last 8 interior outputs; the overlap
                    // yields the same values.
                    _mm256_storeu_ps(op.add(hi - 8), one(hi - 8));
                } else {
                    for o in ox..hi {
                        let mut s = bias;
                        for (p, t) in ptr.iter().zip(taps) {
                            let p = p.add(o * stride - pl);
                            for (k, w) in t.iter().enumerate() {
                                s += w * *p.add(k);
                            }
                        }
                        *op.add(o) = act.apply(s);
                    }
                }
            }
        }
    }

    /// The three tap inputs of 8 outputs starting at input `p`: for stride
    /// 1 `p[i + kx]`; for stride 2 `p[2i + kx]`, in the lane order of
    /// `_mm256_shuffle_ps` (restored by [`unscramble`]). Reads `p[0..10]`
    /// (stride 1) or `p[0..17]` (stride 2).
    #[inline(always)]
    unsafe fn load3<const S2: bool>(p: *const f32) -> [__m256; 3] {
        // SAFETY: the caller guarantees the reads listed above.
        unsafe {
            if !S2 {
                return [
                    _mm256_loadu_ps(p),
                    _mm256_loadu_ps(p.add(1)),
                    _mm256_loadu_ps(p.add(2)),
                ];
            }
            let a = _mm256_loadu_ps(p);
            let b = _mm256_loadu_ps(p.add(8));
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let odd = _mm256_shuffle_ps::<0b11_01_11_01>(a, b);
            // p[2..10] and p[9..17]: evens of the first, odds of the second.
            let c = _mm256_loadu_ps(p.add(2));
            let d = _mm256_loadu_ps(p.add(9));
            let next = _mm256_shuffle_ps::<0b11_01_10_00>(c, d);
            [even, odd, next]
        }
    }

    /// Restores output order after stride-2 shuffles: 64-bit lanes
    /// `[0, 2, 1, 3]`.
    #[inline(always)]
    unsafe fn unscramble(v: __m256) -> __m256 {
        // SAFETY: register-only; AVX2 enabled in the callers.
        unsafe { _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(v))) }
    }
}

#[cfg(target_arch = "x86_64")]
#[path = "depthwise/avx512.rs"]
mod avx512;

#[cfg(test)]
#[path = "depthwise/tests.rs"]
mod tests;
