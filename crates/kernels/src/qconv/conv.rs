//! Dense and grouped int8 convolution (1 to 3 spatial dims) through the
//! int8 GEMM: weights of each group packed once ([`QPackedWeights`]); a
//! 1x1 stride-1 unpadded conv hands the input planes straight to the GEMM,
//! any other conv packs im2col columns straight into the GEMM's panels
//! ([`QRhs`]), padded with the input zero point (padding in the quantized
//! domain is `x_zp`, not 0).

use alloc::vec::Vec;

use super::{QInput, QIsa};
use crate::conv::ConvGeom;
use crate::gemm::Exec;
use crate::qgemm::{
    qgemm, qgemm_scratch_len, QActivations, QElem, QGemmError, QLayout, QOut, QPackedWeights, QRhs,
    KG, NR,
};
use crate::requant::{QClamp, Requant};

/// What an int8 conv writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QConvOutput {
    /// Requantized 8-bit values (QLinearConv): per-channel (or one)
    /// multipliers, zero point and clamp; `signed` picks int8 or uint8.
    Requant {
        /// One per output channel, or one for all.
        requant: Vec<Requant>,
        /// Output zero point and bounds.
        clamp: QClamp,
        /// int8 (true) or uint8 output.
        signed: bool,
    },
    /// The raw int32 accumulators (ConvInteger).
    I32,
}

/// A dense or grouped int8 conv with packed weights.
#[derive(Clone, Debug)]
pub struct QConv {
    geom: ConvGeom,
    input: QInput,
    /// One packed `[cout_g, cin_g * k]` matrix per group.
    weights: Vec<QPackedWeights>,
    bias: Option<Vec<i32>>,
    output: QConvOutput,
}

/// im2col of one group of one image as the GEMM's activation operand: row
/// `(ci, kz, ky, kx)`, column `(oz, oy, ox)`; padding holds the zero point.
struct Im2Col<'a> {
    x: &'a [u8],
    g: &'a ConvGeom,
    /// XOR that turns a stored byte into `u8` storage (0x80 for int8).
    flip: u8,
    /// The zero point in `u8` storage.
    zp: u8,
    /// AVX2 may run (the depth interleave).
    avx2: bool,
}

impl QRhs for Im2Col<'_> {
    fn depth(&self) -> usize {
        self.g.cin_g() * self.g.kernel_size()
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
        let [_, oh, ow] = self.g.output;
        // The panel's columns as runs along output rows.
        let mut segs = [Seg::default(); NR];
        let mut ns = 0;
        let mut j = 0;
        while j < nc {
            let n = n0 + j;
            let (line, ox) = (n / ow, n % ow);
            let len = (ow - ox).min(nc - j);
            segs[ns] = Seg {
                j,
                len,
                oz: line / oh,
                oy: line % oh,
                ox,
            };
            ns += 1;
            j += len;
        }
        // Gather the im2col rows into `dst` row by row (row `kk` at `kk *
        // NR`), then interleave each group of four rows in place: a group's
        // rows and its packed form occupy the same 128 bytes.
        let g = self.g;
        let [kd, kh, kw] = g.kernel;
        let (sx, dx) = (g.stride[2], g.dilation[2]);
        let window = (NR - 1) * sx + (kw - 1) * dx + 1;
        for ci in 0..g.cin_g() {
            for kz in 0..kd {
                for ky in 0..kh {
                    let kk0 = ((ci * kd + kz) * kh + ky) * kw;
                    if window <= WINDOW {
                        self.gather_taps(
                            ci,
                            kz,
                            ky,
                            &segs[..ns],
                            &mut dst[kk0 * NR..(kk0 + kw) * NR],
                        );
                    } else {
                        for kk in kk0..kk0 + kw {
                            self.gather(kk, &segs[..ns], &mut dst[kk * NR..kk * NR + nc]);
                        }
                    }
                }
            }
        }
        for (kk, row) in dst.chunks_exact_mut(NR).enumerate() {
            if kk >= k {
                row.fill(0);
            } else {
                row[nc..].fill(0);
            }
        }
        for out in dst.chunks_exact_mut(NR * KG) {
            let mut rows = [[0u8; NR]; KG];
            for (r, src) in rows.iter_mut().zip(out.chunks_exact(NR)) {
                r.copy_from_slice(src);
            }
            interleave(self.avx2, &rows, out);
        }
    }
}

/// Longest input window [`Im2Col::gather_taps`] buffers on the stack.
const WINDOW: usize = 256;

impl Im2Col<'_> {
    /// The `kw` im2col rows of input channel `ci`, kernel plane `kz`, row
    /// `ky`, at the panel's columns, into `dst` (`kw` rows of [`NR`]): each
    /// run's input window is copied once (zero point outside the input,
    /// `u8` storage) and every tap of the row reads it.
    fn gather_taps(&self, ci: usize, kz: usize, ky: usize, segs: &[Seg], dst: &mut [u8]) {
        let g = self.g;
        let [id, ih, iw] = g.input;
        let kw = g.kernel[2];
        let (sx, dx) = (g.stride[2], g.dilation[2]);
        let isp = g.in_spatial();
        let chan = &self.x[ci * isp..][..isp];
        let iz =
            |oz: usize| (oz * g.stride[0] + kz * g.dilation[0]) as isize - g.pad_begin[0] as isize;
        let iy =
            |oy: usize| (oy * g.stride[1] + ky * g.dilation[1]) as isize - g.pad_begin[1] as isize;
        let mut win = [0u8; WINDOW];
        for s in segs {
            let (z, y) = (iz(s.oz), iy(s.oy));
            if z < 0 || y < 0 || z >= id as isize || y >= ih as isize {
                for kx in 0..kw {
                    dst[kx * NR + s.j..][..s.len].fill(self.zp);
                }
                continue;
            }
            let src = &chan[(z as usize * ih + y as usize) * iw..][..iw];
            // Window columns x0 .. x0 + wl of the input row.
            let x0 = (s.ox * sx) as isize - g.pad_begin[2] as isize;
            let wl = (s.len - 1) * sx + (kw - 1) * dx + 1;
            let win = &mut win[..wl];
            let lo = (-x0).clamp(0, wl as isize) as usize;
            let hi = (iw as isize - x0).clamp(lo as isize, wl as isize) as usize;
            win[..lo].fill(self.zp);
            win[hi..].fill(self.zp);
            let body = &src[(x0 + lo as isize) as usize..][..hi - lo];
            if self.flip == 0 {
                win[lo..hi].copy_from_slice(body);
            } else {
                for (d, &v) in win[lo..hi].iter_mut().zip(body) {
                    *d = v ^ self.flip;
                }
            }
            for kx in 0..kw {
                let row = &mut dst[kx * NR + s.j..][..s.len];
                let w = &win[kx * dx..];
                if sx == 1 {
                    row.copy_from_slice(&w[..s.len]);
                } else {
                    for (t, d) in row.iter_mut().enumerate() {
                        *d = w[t * sx];
                    }
                }
            }
        }
    }
}

/// Four depth rows of a panel into 4-byte groups, one per position:
/// `out[4j + i] = rows[i][j]`.
fn interleave(avx2: bool, rows: &[[u8; NR]; KG], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        // SAFETY: `avx2` is only set when the int8 ISA includes AVX2; the
        // function checks `out` holds NR * KG bytes.
        unsafe { interleave_avx2(rows, out) };
        return;
    }
    let _ = avx2;
    for (j, o) in out[..NR * KG].chunks_exact_mut(KG).enumerate() {
        o.copy_from_slice(&[rows[0][j], rows[1][j], rows[2][j], rows[3][j]]);
    }
}

/// [`interleave`] with AVX2 byte and word unpacks.
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn interleave_avx2(rows: &[[u8; NR]; KG], out: &mut [u8]) {
    use core::arch::x86_64::*;
    const _: () = assert!(NR == 32 && KG == 4);
    let out = &mut out[..NR * KG];
    // SAFETY: each row is 32 bytes (one unaligned load); `out` holds 128
    // bytes (four unaligned stores).
    unsafe {
        let r: [__m256i; 4] =
            core::array::from_fn(|i| _mm256_loadu_si256(rows[i].as_ptr() as *const __m256i));
        let t01l = _mm256_unpacklo_epi8(r[0], r[1]);
        let t01h = _mm256_unpackhi_epi8(r[0], r[1]);
        let t23l = _mm256_unpacklo_epi8(r[2], r[3]);
        let t23h = _mm256_unpackhi_epi8(r[2], r[3]);
        // Per 128-bit lane: positions 0-3, 4-7, 8-11, 12-15 (and 16-31).
        let q0 = _mm256_unpacklo_epi16(t01l, t23l);
        let q1 = _mm256_unpackhi_epi16(t01l, t23l);
        let q2 = _mm256_unpacklo_epi16(t01h, t23h);
        let q3 = _mm256_unpackhi_epi16(t01h, t23h);
        let p = out.as_mut_ptr() as *mut __m256i;
        _mm256_storeu_si256(p, _mm256_permute2x128_si256::<0x20>(q0, q1));
        _mm256_storeu_si256(p.add(1), _mm256_permute2x128_si256::<0x20>(q2, q3));
        _mm256_storeu_si256(p.add(2), _mm256_permute2x128_si256::<0x31>(q0, q1));
        _mm256_storeu_si256(p.add(3), _mm256_permute2x128_si256::<0x31>(q2, q3));
    }
}

/// A run of panel columns along one output row.
#[derive(Clone, Copy, Default)]
struct Seg {
    /// First column in the panel.
    j: usize,
    len: usize,
    oz: usize,
    oy: usize,
    /// First output column.
    ox: usize,
}

impl Im2Col<'_> {
    /// Row `kk` of the im2col matrix at the panel's columns, in `u8`
    /// storage, into `out` (`nc` bytes).
    fn gather(&self, kk: usize, segs: &[Seg], out: &mut [u8]) {
        let g = self.g;
        let [id, ih, iw] = g.input;
        let [_, kh, kw] = g.kernel;
        let ks = g.kernel_size();
        let (ci, r) = (kk / ks, kk % ks);
        let (kz, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
        let isp = g.in_spatial();
        let chan = &self.x[ci * isp..][..isp];
        let off = |k: usize, d: usize| (k * g.dilation[d]) as isize - g.pad_begin[d] as isize;
        let (zoff, yoff, xoff) = (off(kz, 0), off(ky, 1), off(kx, 2));
        let sx = g.stride[2];
        // Output columns whose tap is inside the row: 0 <= ox*sx + xoff < iw.
        let ox_lo = if xoff >= 0 {
            0
        } else {
            ((-xoff) as usize).div_ceil(sx)
        };
        let ox_hi = if (iw as isize) <= xoff {
            0
        } else {
            ((iw as isize - xoff) as usize).div_ceil(sx)
        };
        for s in segs {
            let dst = &mut out[s.j..s.j + s.len];
            let iz = (s.oz * g.stride[0]) as isize + zoff;
            let iy = (s.oy * g.stride[1]) as isize + yoff;
            if iz < 0 || iy < 0 || iz >= id as isize || iy >= ih as isize {
                dst.fill(self.zp);
                continue;
            }
            let src = &chan[(iz as usize * ih + iy as usize) * iw..][..iw];
            let (a, b) = (s.ox, s.ox + s.len);
            let lo = ox_lo.clamp(a, b);
            let hi = ox_hi.clamp(lo, b);
            dst[..lo - a].fill(self.zp);
            dst[hi - a..].fill(self.zp);
            let body = &mut dst[lo - a..hi - a];
            if body.is_empty() {
                continue;
            }
            let start = (lo * sx) as isize + xoff;
            let start = start as usize;
            if sx == 1 {
                let src = &src[start..start + body.len()];
                if self.flip == 0 {
                    body.copy_from_slice(src);
                } else {
                    for (d, &v) in body.iter_mut().zip(src) {
                        *d = v ^ self.flip;
                    }
                }
            } else {
                for (t, d) in body.iter_mut().enumerate() {
                    *d = src[start + t * sx] ^ self.flip;
                }
            }
        }
    }
}

/// Views int8 bytes as `i8`.
fn as_i8(x: &[u8]) -> &[i8] {
    // SAFETY: u8 and i8 have the same size and alignment and every bit
    // pattern is valid for both.
    unsafe { core::slice::from_raw_parts(x.as_ptr() as *const i8, x.len()) }
}

/// Views int8 output bytes as `i8`.
fn as_i8_mut(y: &mut [u8]) -> &mut [i8] {
    // SAFETY: as in `as_i8`; the borrow is carried over.
    unsafe { core::slice::from_raw_parts_mut(y.as_mut_ptr() as *mut i8, y.len()) }
}

impl QConv {
    /// Packs `weights` (`[cout, cin / groups, k...]`, stored values) with
    /// their zero points (one, or one per output channel), and copies the
    /// optional int32 `bias` (`[cout]`).
    ///
    /// # Errors
    /// From packing: short weights, a zero point count or value that does
    /// not fit.
    ///
    /// # Panics
    /// If `geom` is invalid, the bias or requant are short.
    pub fn new<T: QElem>(
        geom: ConvGeom,
        input: QInput,
        weights: &[T],
        w_zero_points: &[i32],
        bias: Option<&[i32]>,
        output: QConvOutput,
    ) -> Result<QConv, QGemmError> {
        assert!(geom.is_valid(), "qconv: invalid geometry");
        let (cout_g, depth) = (geom.cout_g(), geom.cin_g() * geom.kernel_size());
        if weights.len() < geom.cout * depth {
            return Err(QGemmError::TooShort { what: "weights" });
        }
        if let QConvOutput::Requant { requant, .. } = &output {
            assert!(
                requant.len() == 1 || requant.len() >= geom.cout,
                "qconv: requant"
            );
        }
        let per_channel = w_zero_points.len() != 1;
        let packed = (0..geom.groups)
            .map(|grp| {
                let zps = if per_channel {
                    w_zero_points.get(grp * cout_g..(grp + 1) * cout_g).ok_or(
                        QGemmError::ZeroPointCount {
                            got: w_zero_points.len(),
                            channels: geom.cout,
                        },
                    )?
                } else {
                    w_zero_points
                };
                QPackedWeights::new(
                    &weights[grp * cout_g * depth..][..cout_g * depth],
                    cout_g,
                    depth,
                    zps,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QConv {
            bias: bias.map(|b| b[..geom.cout].to_vec()),
            geom,
            input,
            weights: packed,
            output,
        })
    }

    /// The geometry.
    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }

    /// True when the conv runs as a plain GEMM on the input (1x1, stride
    /// 1, no padding).
    pub fn is_pointwise(&self) -> bool {
        self.geom.is_pointwise()
    }

    /// Bytes of packed weights and bias held.
    pub fn weight_bytes(&self) -> usize {
        self.weights
            .iter()
            .map(QPackedWeights::bytes)
            .sum::<usize>()
            + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// Scratch bytes for up to `tasks` tasks.
    pub fn scratch_len(&self, tasks: usize) -> usize {
        let g = &self.geom;
        qgemm_scratch_len(
            g.cout_g(),
            g.cin_g() * g.kernel_size(),
            g.out_spatial(),
            tasks,
        )
    }

    /// Requantized output: `y` holds `[batch, cout, out...]` bytes (int8 or
    /// uint8 as the [`QConvOutput`] says). With [`QConvOutput::I32`] use
    /// [`QConv::run_i32`].
    ///
    /// # Panics
    /// If a slice is too short or the output kind is I32.
    pub fn run(&self, isa: QIsa, x: &[u8], y: &mut [u8], scratch: &mut [u8], exec: &dyn Exec) {
        let QConvOutput::Requant {
            requant,
            clamp,
            signed,
        } = &self.output
        else {
            panic!("qconv: run on an int32 conv");
        };
        let (cout_g, osp) = (self.geom.cout_g(), self.geom.out_spatial());
        self.each_gemm(isa, x, &mut |grp, b, rhs| {
            let c0 = grp * cout_g;
            let off = (b * self.geom.cout + c0) * osp;
            let data = &mut y[off..off + cout_g * osp];
            let rq = if requant.len() == 1 {
                &requant[..]
            } else {
                &requant[c0..c0 + cout_g]
            };
            let out = if *signed {
                QOut::I8 {
                    data: as_i8_mut(data),
                    requant: rq,
                    clamp: *clamp,
                }
            } else {
                QOut::U8 {
                    data,
                    requant: rq,
                    clamp: *clamp,
                }
            };
            let bias = self.bias.as_ref().map(|v| &v[c0..c0 + cout_g]);
            qgemm(
                isa,
                &self.weights[grp],
                rhs,
                bias,
                out,
                osp,
                1,
                scratch,
                exec,
            );
        });
    }

    /// int32 output (ConvInteger): `y` holds `[batch, cout, out...]`.
    ///
    /// # Panics
    /// If a slice is too short.
    pub fn run_i32(&self, isa: QIsa, x: &[u8], y: &mut [i32], scratch: &mut [u8], exec: &dyn Exec) {
        let (cout_g, osp) = (self.geom.cout_g(), self.geom.out_spatial());
        self.each_gemm(isa, x, &mut |grp, b, rhs| {
            let c0 = grp * cout_g;
            let off = (b * self.geom.cout + c0) * osp;
            let bias = self.bias.as_ref().map(|v| &v[c0..c0 + cout_g]);
            qgemm(
                isa,
                &self.weights[grp],
                rhs,
                bias,
                QOut::I32 {
                    data: &mut y[off..off + cout_g * osp],
                },
                osp,
                1,
                scratch,
                exec,
            );
        });
    }

    /// Calls `f(group, image, activations)` for every GEMM of the conv.
    fn each_gemm(&self, isa: QIsa, x: &[u8], f: &mut dyn FnMut(usize, usize, &dyn QRhs)) {
        let g = &self.geom;
        let (isp, cin_g) = (g.in_spatial(), g.cin_g());
        assert!(x.len() >= g.batch * g.cin * isp, "qconv: input too short");
        if g.out_spatial() == 0 || g.cout == 0 {
            return;
        }
        let inp = self.input;
        let flip = if inp.signed { 0x80 } else { 0 };
        let zp = (inp.zero_point as u8) ^ flip;
        let avx2 = super::isa::is_simd(isa) && cfg!(target_arch = "x86_64");
        for b in 0..g.batch {
            for grp in 0..g.groups {
                let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
                if g.is_pointwise() {
                    let rhs_u8;
                    let rhs_i8;
                    let rhs: &dyn QRhs = if inp.signed {
                        rhs_i8 = QActivations::new(
                            as_i8(xg),
                            cin_g,
                            isp,
                            isp,
                            QLayout::DepthMajor,
                            inp.zero_point as i8,
                        )
                        .expect("qconv: planes checked above");
                        &rhs_i8
                    } else {
                        rhs_u8 = QActivations::new(
                            xg,
                            cin_g,
                            isp,
                            isp,
                            QLayout::DepthMajor,
                            inp.zero_point as u8,
                        )
                        .expect("qconv: planes checked above");
                        &rhs_u8
                    };
                    f(grp, b, rhs);
                } else {
                    f(
                        grp,
                        b,
                        &Im2Col {
                            x: xg,
                            g,
                            flip,
                            zp,
                            avx2,
                        },
                    );
                }
            }
        }
    }
}
