//! Dense and grouped int8 convolution (1 to 3 spatial dims) through the
//! int8 GEMM: weights of each group packed once ([`QPackedWeights`]); a
//! 1x1 stride-1 unpadded conv hands the input planes straight to the GEMM,
//! any other conv packs im2col columns straight into the GEMM's panels
//! ([`QRhs`]), padded with the input zero point (padding in the quantized
//! domain is `x_zp`, not 0).

mod padded;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;

use padded::{PadLayout, PaddedIm2Col};

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
    /// How the activations reach the GEMM.
    prep: Prep,
}

/// How a conv's activations are prepared for the GEMM.
#[derive(Clone, Debug)]
enum Prep {
    /// 1x1, stride 1, unpadded: the input planes as they are.
    Direct,
    /// 1x1, unpadded, strided: the input subsampled into scratch.
    Subsample,
    /// Anything else: a padded copy in scratch, read as im2col panels.
    Padded(PadLayout),
}

impl Prep {
    fn new(g: &ConvGeom) -> Prep {
        if g.is_pointwise() {
            return Prep::Direct;
        }
        // Every sampled input position must exist (no implied end padding).
        let inside = (0..3).all(|d| (g.output[d] - 1) * g.stride[d] < g.input[d]);
        if g.kernel == [1; 3] && g.pad_begin == [0; 3] && inside {
            return Prep::Subsample;
        }
        Prep::Padded(PadLayout::new(g))
    }

    /// Scratch bytes before the GEMM's.
    fn len(&self, g: &ConvGeom) -> usize {
        match self {
            Prep::Direct => 0,
            Prep::Subsample => g.cin_g() * g.out_spatial(),
            Prep::Padded(lay) => lay.len(g.cin_g()),
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
        let prep = if geom.out_spatial() == 0 {
            Prep::Direct
        } else {
            Prep::new(&geom)
        };
        Ok(QConv {
            prep,
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
        self.prep.len(g)
            + qgemm_scratch_len(
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
        self.each_gemm(isa, x, scratch, &mut |grp, b, rhs, scratch| {
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
        self.each_gemm(isa, x, scratch, &mut |grp, b, rhs, scratch| {
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

    /// Calls `f(group, image, activations, gemm scratch)` for every GEMM
    /// of the conv.
    #[allow(clippy::type_complexity)]
    fn each_gemm(
        &self,
        isa: QIsa,
        x: &[u8],
        scratch: &mut [u8],
        f: &mut dyn FnMut(usize, usize, &dyn QRhs, &mut [u8]),
    ) {
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
        #[cfg(target_arch = "x86_64")]
        let avx512 = super::isa::is_avx512(isa);
        #[cfg(not(target_arch = "x86_64"))]
        let avx512 = false;
        let (prep, scratch) = scratch.split_at_mut(self.prep.len(g));
        for b in 0..g.batch {
            for grp in 0..g.groups {
                let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
                let direct = match &self.prep {
                    Prep::Direct => Some(xg),
                    Prep::Subsample => {
                        subsample(g, xg, avx512, prep);
                        Some(&prep[..])
                    }
                    Prep::Padded(_) => None,
                };
                if let Some(xg) = direct {
                    let isp = g.out_spatial();
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
                    f(grp, b, rhs, scratch);
                } else if let Prep::Padded(lay) = &self.prep {
                    lay.fill(g, xg, flip, zp, avx512, prep);
                    let rhs = PaddedIm2Col {
                        pad: prep,
                        lay,
                        g,
                        zp,
                        avx2,
                        avx512,
                    };
                    f(grp, b, &rhs, scratch);
                }
            }
        }
    }
}

/// The input positions a 1x1 unpadded strided conv samples, as
/// `[cin_g, out_spatial]` planes in `dst`.
fn subsample(g: &ConvGeom, x: &[u8], avx512: bool, dst: &mut [u8]) {
    let [_, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [sz, sy, sx] = g.stride;
    let (isp, osp) = (g.in_spatial(), g.out_spatial());
    for (ci, out) in dst.chunks_exact_mut(osp).take(g.cin_g()).enumerate() {
        let chan = &x[ci * isp..][..isp];
        let mut rows = out.chunks_exact_mut(ow);
        for oz in 0..od {
            for oy in 0..oh {
                let src = &chan[(oz * sz * ih + oy * sy) * iw..];
                let row = rows.next().expect("subsample rows");
                padded::strided_copy(avx512, src, sx, 0, row);
            }
        }
    }
}
