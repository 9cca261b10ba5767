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
        let mut rows = [[0u8; NR]; KG];
        for (g, out) in dst.chunks_exact_mut(NR * KG).enumerate() {
            for (i, row) in rows.iter_mut().enumerate() {
                let kk = g * KG + i;
                if kk < k {
                    self.gather(kk, &segs[..ns], &mut row[..nc]);
                    row[nc..].fill(0);
                } else {
                    row.fill(0);
                }
            }
            // Four depth rows into 4-byte groups, one u32 per position.
            for (jj, o) in out.chunks_exact_mut(KG).enumerate() {
                o.copy_from_slice(&[rows[0][jj], rows[1][jj], rows[2][jj], rows[3][jj]]);
            }
        }
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
                for (d, &v) in body.iter_mut().zip(src) {
                    *d = v ^ self.flip;
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
        self.each_gemm(x, &mut |grp, b, rhs| {
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
        self.each_gemm(x, &mut |grp, b, rhs| {
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
    fn each_gemm(&self, x: &[u8], f: &mut dyn FnMut(usize, usize, &dyn QRhs)) {
        let g = &self.geom;
        let (isp, cin_g) = (g.in_spatial(), g.cin_g());
        assert!(x.len() >= g.batch * g.cin * isp, "qconv: input too short");
        if g.out_spatial() == 0 || g.cout == 0 {
            return;
        }
        let inp = self.input;
        let flip = if inp.signed { 0x80 } else { 0 };
        let zp = (inp.zero_point as u8) ^ flip;
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
                    f(grp, b, &Im2Col { x: xg, g, flip, zp });
                }
            }
        }
    }
}
