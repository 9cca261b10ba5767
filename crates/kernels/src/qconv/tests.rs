//! int8 conv tests: every instruction set and thread count against a naive
//! fixed-point reference written from the definition (raw bytes, padding
//! by the zero point, wide accumulation).

use alloc::vec;
use alloc::vec::Vec;

use super::depthwise::QDepthwise;
use super::{QInput, QIsa};
use crate::conv::tests::geom;
use crate::conv::ConvGeom;
use crate::gemm::tests_support::Threads;
use crate::requant::{QClamp, Requant};

/// A small xorshift generator.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + (self.next() % (hi - lo + 1) as u64) as i32
    }
    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Quantization parameters of one test conv.
pub(crate) struct Case {
    pub g: ConvGeom,
    pub input: QInput,
    /// Raw weight values (as stored: i8 or u8 range) and per-channel zero
    /// points.
    pub w: Vec<i32>,
    pub w_zp: Vec<i32>,
    pub bias: Option<Vec<i32>>,
    pub rq: Vec<Requant>,
    pub clamp: QClamp,
}

impl Case {
    pub(crate) fn random(g: ConvGeom, signed_x: bool, u8_weights: bool, rng: &mut Rng) -> Case {
        let n = g.cout * g.cin_g() * g.kernel_size();
        let (wlo, whi) = if u8_weights { (0, 255) } else { (-128, 127) };
        let mut w: Vec<i32> = (0..n).map(|_| rng.range(wlo, whi)).collect();
        // Extremes, so the pair products reach their largest magnitudes.
        if let Some(v) = w.first_mut() {
            *v = wlo;
        }
        if let Some(v) = w.last_mut() {
            *v = whi;
        }
        let w_zp = (0..g.cout)
            .map(|_| if u8_weights { rng.range(0, 255) } else { 0 })
            .collect();
        let x_zp = if signed_x {
            rng.range(-128, 127)
        } else {
            rng.range(0, 255)
        };
        let ks = (g.cin_g() * g.kernel_size()) as f64;
        let rq = (0..g.cout)
            .map(|c| {
                // Around 1 / (typical accumulator spread), varied per
                // channel; every 7th channel gets a multiplier > 1 (left
                // shift).
                let real = if c % 7 == 3 {
                    1.5 + c as f64
                } else {
                    (0.5 + rng.range(0, 1000) as f64 / 500.0) / (ks.sqrt() * 200.0)
                };
                Requant::from_real(real).unwrap()
            })
            .collect();
        let bias = (!rng.next().is_multiple_of(4)).then(|| {
            (0..g.cout)
                .map(|_| rng.range(-20000, 20000))
                .collect::<Vec<_>>()
        });
        let signed_y = rng.next().is_multiple_of(2);
        let (qmin, qmax) = if signed_y { (-128, 127) } else { (0, 255) };
        let y_zp = rng.range(qmin, qmax);
        let clamp = match rng.next() % 3 {
            0 => QClamp::range(y_zp, qmin, qmax),
            1 => QClamp {
                zero_point: y_zp,
                min: y_zp,
                max: qmax,
            },
            _ => QClamp {
                zero_point: y_zp,
                min: (y_zp - 20).max(qmin),
                max: (y_zp + 60).min(qmax),
            },
        };
        Case {
            g,
            input: QInput {
                signed: signed_x,
                zero_point: x_zp,
            },
            w,
            w_zp,
            bias,
            rq,
            clamp,
        }
    }

    /// `w - w_zp` as the kernels take it.
    pub(crate) fn centered_w(&self) -> Vec<i16> {
        let per = self.w.len() / self.g.cout;
        self.w
            .iter()
            .enumerate()
            .map(|(i, &v)| (v - self.w_zp[i / per]) as i16)
            .collect()
    }

    /// Raw input value of a byte.
    fn xval(&self, b: u8) -> i64 {
        if self.input.signed {
            b as i8 as i64
        } else {
            b as i64
        }
    }

    /// The accumulators straight from the definition: padded positions
    /// hold the zero point, sums in i64.
    pub(crate) fn reference_acc(&self, x: &[u8]) -> Vec<i64> {
        let g = &self.g;
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let [id, ih, iw] = g.input;
        let [od, oh, ow] = g.output;
        let [kd, kh, kw] = g.kernel;
        let zp = self.input.zero_point as i64;
        let mut acc = vec![0i64; g.batch * g.cout * g.out_spatial()];
        for b in 0..g.batch {
            for co in 0..g.cout {
                let grp = co / cout_g;
                let wzp = self.w_zp[co] as i64;
                for oz in 0..od {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut s = self.bias.as_ref().map_or(0, |v| v[co] as i64);
                            for ci in 0..cin_g {
                                for z in 0..kd {
                                    for yy in 0..kh {
                                        for xx in 0..kw {
                                            let at = |o: usize, k: usize, d: usize, n: usize| {
                                                let i = (o * g.stride[d] + k * g.dilation[d])
                                                    as isize
                                                    - g.pad_begin[d] as isize;
                                                (i >= 0 && i < n as isize).then_some(i as usize)
                                            };
                                            let xv = match (
                                                at(oz, z, 0, id),
                                                at(oy, yy, 1, ih),
                                                at(ox, xx, 2, iw),
                                            ) {
                                                (Some(iz), Some(iy), Some(ix)) => self.xval(
                                                    x[(((b * g.cin + grp * cin_g + ci) * id + iz)
                                                        * ih
                                                        + iy)
                                                        * iw
                                                        + ix],
                                                ),
                                                _ => zp,
                                            };
                                            let wi =
                                                (((co * cin_g + ci) * kd + z) * kh + yy) * kw + xx;
                                            s += (xv - zp) * (self.w[wi] as i64 - wzp);
                                        }
                                    }
                                }
                            }
                            acc[(((b * g.cout + co) * od + oz) * oh + oy) * ow + ox] = s;
                        }
                    }
                }
            }
        }
        acc
    }

    /// Requantized, clamped output bytes of the reference.
    pub(crate) fn reference(&self, x: &[u8]) -> Vec<u8> {
        let osp = self.g.out_spatial();
        self.reference_acc(x)
            .iter()
            .enumerate()
            .map(|(i, &a)| {
                let co = (i / osp) % self.g.cout;
                let a = i32::try_from(a).expect("test accumulators fit i32");
                self.clamp.apply(self.rq[co].apply(a)) as u8
            })
            .collect()
    }
}

#[allow(clippy::too_many_arguments)]
fn dw(
    c: usize,
    mult: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: [usize; 2],
    d: usize,
    pb: [usize; 2],
    pe: [usize; 2],
) -> ConvGeom {
    geom(
        2,
        c,
        c * mult,
        c,
        [1, h, w],
        [1, k[0], k[1]],
        [1, s[0], s[1]],
        [1, d, d],
        [0, pb[0], pb[1]],
        [0, pe[0], pe[1]],
    )
}

fn check_dw(g: ConvGeom, signed_x: bool, u8_w: bool, seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let case = Case::random(g, signed_x, u8_w, &mut rng);
    let x = rng.bytes(case.g.batch * case.g.cin * case.g.in_spatial());
    let want = case.reference(&x);
    let k = QDepthwise::new(
        case.g.clone(),
        case.input,
        &case.centered_w(),
        case.bias.as_deref(),
        &case.rq,
        case.clamp,
    );
    for isa in QIsa::available() {
        for tasks in [1, 3] {
            let mut scratch = vec![0i32; k.scratch_len(tasks)];
            let mut y = vec![0xA5u8; want.len()];
            k.run(isa, &x, &mut y, &mut scratch, &Threads(tasks));
            if let Some(i) = (0..want.len()).find(|&i| y[i] != want[i]) {
                panic!(
                    "{:?} {} tasks {tasks} {}: first mismatch at {i}: {} vs {}",
                    case.g,
                    isa.name(),
                    k.kernel_name(isa),
                    y[i],
                    want[i]
                );
            }
        }
    }
}

#[test]
fn depthwise_3x3_and_5x5_every_width() {
    let mut seed = 1;
    for k in [3, 5] {
        for w in [1, 2, 3, 5, 7, 8, 14, 15, 16, 17, 18, 31, 33, 40] {
            for h in [1, 2, 5] {
                for s in [1, 2] {
                    seed += 1;
                    let p = k / 2;
                    check_dw(
                        dw(3, 1, h, w, [k, k], [s, s], 1, [p, p], [p, p]),
                        seed % 2 == 0,
                        false,
                        seed,
                    );
                    // SAME_UPPER-style asymmetric pads and no pads.
                    if w >= k && h >= k {
                        check_dw(
                            dw(2, 1, h, w, [k, k], [s, s], 1, [p - 1, p - 1], [p, p]),
                            seed % 2 == 1,
                            true,
                            seed + 1000,
                        );
                        check_dw(
                            dw(2, 1, h, w, [k, k], [s, s], 1, [0, 0], [0, 0]),
                            seed % 3 == 0,
                            false,
                            seed + 2000,
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn depthwise_other_shapes() {
    type S = (
        usize,
        usize,
        [usize; 2],
        [usize; 2],
        usize,
        [usize; 2],
        [usize; 2],
    );
    let shapes: &[S] = &[
        // (mult, h x w, kernel, stride, dilation, pad begin, pad end)
        (1, 9, [1, 1], [1, 1], 1, [0, 0], [0, 0]),
        (2, 9, [3, 3], [1, 1], 1, [1, 1], [1, 1]),
        (3, 11, [2, 2], [1, 1], 1, [0, 1], [1, 0]),
        (1, 12, [7, 7], [2, 2], 1, [3, 3], [3, 3]),
        (1, 10, [3, 1], [1, 2], 1, [1, 0], [1, 0]),
        (1, 10, [1, 4], [2, 1], 1, [0, 2], [0, 1]),
        (1, 13, [3, 3], [3, 3], 1, [1, 1], [1, 1]),
        (1, 13, [3, 3], [1, 1], 2, [2, 2], [2, 2]),
        (2, 8, [5, 5], [2, 2], 1, [4, 4], [4, 4]),
        (1, 6, [3, 3], [1, 1], 1, [3, 3], [0, 3]),
    ];
    for (i, &(mult, hw, k, s, d, pb, pe)) in shapes.iter().enumerate() {
        for signed in [false, true] {
            for u8w in [false, true] {
                let seed = (i * 4 + signed as usize * 2 + u8w as usize) as u64 + 7;
                check_dw(dw(3, mult, hw, hw + 3, k, s, d, pb, pe), signed, u8w, seed);
            }
        }
    }
    // 1-D: height 1.
    check_dw(
        dw(4, 1, 1, 30, [1, 3], [1, 1], 1, [0, 1], [0, 1]),
        true,
        false,
        99,
    );
}

#[test]
fn depthwise_requant_extremes() {
    // Large biases and multipliers > 1 reach the saturating left shift and
    // the clamp; a zero multiplier gives the zero point.
    let g = dw(8, 1, 4, 19, [3, 3], [1, 1], 1, [1, 1], [1, 1]);
    let mut rng = Rng(5);
    let mut case = Case::random(g, false, false, &mut rng);
    case.bias = Some(vec![
        i32::MAX - 1_000_000,
        i32::MIN + 1_000_000,
        1 << 28,
        -(1 << 28),
        0,
        17,
        -17,
        3,
    ]);
    case.rq = vec![
        Requant::from_real(3.0).unwrap(),
        Requant::from_real(1000.0).unwrap(),
        Requant::from_real(1e-7).unwrap(),
        Requant::from_real(1e-7).unwrap(),
        Requant {
            multiplier: 0,
            shift: 0,
        },
        Requant::from_real(0.5).unwrap(),
        Requant::from_real(0.25).unwrap(),
        Requant {
            multiplier: i32::MIN,
            shift: 0,
        },
    ];
    let x = rng.bytes(g_len(&case.g));
    let want = case.reference(&x);
    let k = QDepthwise::new(
        case.g.clone(),
        case.input,
        &case.centered_w(),
        case.bias.as_deref(),
        &case.rq,
        case.clamp,
    );
    for isa in QIsa::available() {
        let mut scratch = vec![0i32; k.scratch_len(1)];
        let mut y = vec![0u8; want.len()];
        k.run(isa, &x, &mut y, &mut scratch, &Threads(1));
        assert_eq!(y, want, "{}", isa.name());
    }
}

fn g_len(g: &ConvGeom) -> usize {
    g.batch * g.cin * g.in_spatial()
}

fn check_conv(g: ConvGeom, signed_x: bool, u8_w: bool, raw: bool, seed: u64) {
    use super::conv::{QConv, QConvOutput};
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let case = Case::random(g, signed_x, u8_w, &mut rng);
    let x = rng.bytes(g_len(&case.g));
    let output = if raw {
        QConvOutput::I32
    } else {
        QConvOutput::Requant {
            requant: case.rq.clone(),
            clamp: case.clamp,
            signed: case.clamp.min < 0,
        }
    };
    // Per-tensor weight zero point when all agree (exercises both forms).
    let zps: Vec<i32> = if case.w_zp.iter().all(|&z| z == case.w_zp[0]) {
        vec![case.w_zp[0]]
    } else {
        case.w_zp.clone()
    };
    let k = if u8_w {
        let w: Vec<u8> = case.w.iter().map(|&v| v as u8).collect();
        QConv::new(
            case.g.clone(),
            case.input,
            &w,
            &zps,
            case.bias.as_deref(),
            output,
        )
    } else {
        let w: Vec<i8> = case.w.iter().map(|&v| v as i8).collect();
        QConv::new(
            case.g.clone(),
            case.input,
            &w,
            &zps,
            case.bias.as_deref(),
            output,
        )
    }
    .unwrap();
    let acc = case.reference_acc(&x);
    let want = (!raw).then(|| case.reference(&x));
    for isa in QIsa::available() {
        for tasks in [1, 3] {
            let mut scratch = vec![0u8; k.scratch_len(tasks)];
            let ctx = alloc::format!("{:?} {} tasks {tasks}", case.g, isa.name());
            if let Some(want) = &want {
                let mut y = vec![0xA5u8; want.len()];
                k.run(isa, &x, &mut y, &mut scratch, &Threads(tasks));
                assert_eq!(&y, want, "{ctx}");
            } else {
                let mut y = vec![7i32; acc.len()];
                k.run_i32(isa, &x, &mut y, &mut scratch, &Threads(tasks));
                let want: Vec<i32> = acc.iter().map(|&a| a as i32).collect();
                assert_eq!(y, want, "{ctx}");
            }
        }
    }
}

#[test]
fn conv_matches_reference() {
    // (batch, cin, cout, groups, input, kernel, stride, dilation, pb, pe)
    type G = (
        usize,
        usize,
        usize,
        usize,
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
        [usize; 3],
    );
    let shapes: &[G] = &[
        // 1x1 pointwise (straight GEMM), and with a stride (im2col).
        (
            2,
            5,
            7,
            1,
            [1, 6, 7],
            [1, 1, 1],
            [1; 3],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        (
            1,
            40,
            33,
            1,
            [1, 9, 9],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // 3x3 padded, strided, dilated.
        (
            1,
            3,
            16,
            1,
            [1, 11, 10],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        (
            2,
            6,
            9,
            1,
            [1, 13, 12],
            [1, 3, 3],
            [1, 2, 2],
            [1; 3],
            [0, 1, 1],
            [0, 0, 0],
        ),
        (
            1,
            4,
            5,
            1,
            [1, 12, 12],
            [1, 3, 3],
            [1; 3],
            [1, 2, 2],
            [0, 2, 2],
            [0, 2, 2],
        ),
        (
            1,
            3,
            8,
            1,
            [1, 20, 20],
            [1, 7, 7],
            [1, 2, 2],
            [1; 3],
            [0, 3, 3],
            [0, 3, 3],
        ),
        // Grouped (and grouped pointwise), channel multiplier.
        (
            1,
            8,
            12,
            4,
            [1, 7, 9],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        (
            2,
            6,
            6,
            3,
            [1, 5, 5],
            [1, 1, 1],
            [1; 3],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        (
            1,
            4,
            8,
            4,
            [1, 6, 6],
            [1, 3, 3],
            [1, 2, 2],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // 1-D and 3-D.
        (
            2,
            3,
            4,
            1,
            [1, 1, 17],
            [1, 1, 4],
            [1, 1, 3],
            [1, 1, 2],
            [0, 0, 2],
            [0, 0, 1],
        ),
        (
            1,
            2,
            3,
            1,
            [4, 5, 5],
            [2, 3, 3],
            [1, 1, 1],
            [1; 3],
            [1, 1, 1],
            [0, 1, 1],
        ),
        // A stride whose panel window exceeds the stack window (per-tap
        // gather).
        (
            1,
            2,
            3,
            1,
            [1, 2, 40],
            [1, 1, 2],
            [1, 1, 9],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // Padding larger than the kernel reach.
        (
            1,
            2,
            3,
            1,
            [1, 3, 3],
            [1, 2, 2],
            [1; 3],
            [1; 3],
            [0, 3, 3],
            [0, 2, 2],
        ),
    ];
    let mut seed = 11;
    for &(b, ci, co, grp, i, k, s, d, pb, pe) in shapes {
        for (signed, u8w, raw) in [
            (false, false, false),
            (true, false, false),
            (false, true, false),
            (true, true, true),
            (false, false, true),
        ] {
            seed += 1;
            check_conv(
                geom(b, ci, co, grp, i, k, s, d, pb, pe),
                signed,
                u8w,
                raw,
                seed,
            );
        }
    }
}

#[test]
fn depthwise_3x3_direct_kernel_wide_and_tall() {
    // The VBMI kernel: several 16-wide steps per row (the last one past the
    // 64-byte window of the first), 7-row (stride 1) and 4-row (stride 2)
    // passes plus every tail, planes of at most 64 bytes held in one
    // register (8x8, 8x9 with pad 0), pads 0..2, both strides, input
    // signedness and (u8 weights) the fallback; compared with the naive
    // reference.
    let mut seed = 500;
    for (h, w) in [
        (9, 100),
        (10, 67),
        (11, 33),
        (4, 130),
        (13, 20),
        (14, 21),
        (8, 9),
        (8, 8),
        (3, 5),
    ] {
        for s in [1, 2] {
            for p in [0, 1, 2] {
                seed += 1;
                check_dw(
                    dw(3, 1, h, w, [3, 3], [s, s], 1, [p, p], [p, p]),
                    seed % 2 == 0,
                    seed % 3 == 0,
                    seed,
                );
            }
        }
    }
}
