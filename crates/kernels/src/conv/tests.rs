use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::gemm::tests_support::{rand_vec, Threads, ACTS};
use crate::gemm::Serial;

/// Direct-definition conv in f64.
pub(crate) fn reference(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    let mut y = vec![0.0; g.batch * g.cout * g.out_spatial()];
    for b in 0..g.batch {
        for co in 0..g.cout {
            let grp = co / cout_g;
            for oz in 0..od {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = bias.map_or(0.0, |v| v[co] as f64);
                        for ci in 0..cin_g {
                            for z in 0..kd {
                                for yy in 0..kh {
                                    for xx in 0..kw {
                                        let iz = (oz * g.stride[0] + z * g.dilation[0]) as isize
                                            - g.pad_begin[0] as isize;
                                        let iy = (oy * g.stride[1] + yy * g.dilation[1]) as isize
                                            - g.pad_begin[1] as isize;
                                        let ix = (ox * g.stride[2] + xx * g.dilation[2]) as isize
                                            - g.pad_begin[2] as isize;
                                        if iz < 0
                                            || iy < 0
                                            || ix < 0
                                            || iz >= id as isize
                                            || iy >= ih as isize
                                            || ix >= iw as isize
                                        {
                                            continue;
                                        }
                                        let xi = (((b * g.cin + grp * cin_g + ci) * id
                                            + iz as usize)
                                            * ih
                                            + iy as usize)
                                            * iw
                                            + ix as usize;
                                        let wi = (((co * cin_g + ci) * kd + z) * kh + yy) * kw + xx;
                                        s += x[xi] as f64 * w[wi] as f64;
                                    }
                                }
                            }
                        }
                        y[(((b * g.cout + co) * od + oz) * oh + oy) * ow + ox] =
                            act.apply(s as f32);
                    }
                }
            }
        }
    }
    y
}

/// Geometry with output sizes derived from pads (begin, end).
#[allow(clippy::too_many_arguments)]
pub(crate) fn geom(
    batch: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    input: [usize; 3],
    kernel: [usize; 3],
    stride: [usize; 3],
    dilation: [usize; 3],
    pb: [usize; 3],
    pe: [usize; 3],
) -> ConvGeom {
    let mut output = [0; 3];
    for d in 0..3 {
        output[d] =
            ConvGeom::conv_out_dim(input[d], kernel[d], stride[d], dilation[d], pb[d] + pe[d])
                .unwrap();
    }
    ConvGeom {
        batch,
        cin,
        cout,
        groups,
        input,
        kernel,
        stride,
        dilation,
        pad_begin: pb,
        output,
    }
}

pub(crate) fn check(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: [{i}] got {g} want {w}"
        );
    }
}

fn run_case(g: &ConvGeom, act: Activation, seed: u64) {
    let x = rand_vec(g.batch * g.cin * g.in_spatial(), seed);
    let w = rand_vec(g.cout * g.cin_g() * g.kernel_size(), seed + 1);
    let bias = rand_vec(g.cout, seed + 2);
    let want = reference(g, &x, &w, Some(&bias), act);
    let conv = Conv::new(g.clone(), &w, Some(&bias), act);
    for isa in Isa::available() {
        for tasks in [1, 2] {
            let threads = Threads(tasks);
            let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
            let mut y = vec![f32::NAN; want.len()];
            let mut s = vec![0.0; conv.scratch_len(tasks)];
            conv.run(isa, &x, &mut y, &mut s, exec);
            check(&y, &want, &alloc::format!("{g:?} {act:?} {}", isa.name()));
            let mut y2 = vec![f32::NAN; want.len()];
            let mut s2 = vec![0.0; conv_scratch_len(g, false, tasks)];
            conv_dynamic(isa, g, &w, Some(&bias), act, &x, &mut y2, &mut s2, exec);
            if matches!(conv.algo(), ConvAlgo::Shift | ConvAlgo::ShiftPixels)
                && shift_supported(isa)
            {
                // Another summation order than the im2col GEMM.
                check(&y2, &y, "dynamic weights differ");
            } else {
                assert_eq!(y, y2, "dynamic weights differ");
            }
        }
    }
}

#[test]
fn pointwise_and_general_2d() {
    let cases = [
        // 1x1 pointwise (GEMM on the input).
        geom(
            2,
            5,
            7,
            1,
            [1, 6, 9],
            [1, 1, 1],
            [1; 3],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // 1x1 strided: im2col subsamples.
        geom(
            1,
            4,
            9,
            1,
            [1, 7, 8],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // 3x3 pad 1 stride 1 and 2.
        geom(
            1,
            3,
            17,
            1,
            [1, 11, 13],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        geom(
            2,
            6,
            8,
            1,
            [1, 12, 9],
            [1, 3, 3],
            [1, 2, 2],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // Asymmetric pads, dilation, rectangular kernel.
        geom(
            1,
            4,
            5,
            1,
            [1, 10, 12],
            [1, 2, 3],
            [1, 1, 2],
            [1, 2, 3],
            [0, 2, 0],
            [0, 1, 3],
        ),
        // Groups.
        geom(
            1,
            6,
            9,
            3,
            [1, 7, 7],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // Large width crossing several NR panels per row, big K.
        geom(
            1,
            40,
            8,
            1,
            [1, 5, 37],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // Kernel bigger than the input, pads only.
        geom(
            1,
            2,
            3,
            1,
            [1, 2, 2],
            [1, 5, 5],
            [1; 3],
            [1; 3],
            [0, 2, 2],
            [0, 2, 2],
        ),
    ];
    for (i, g) in cases.iter().enumerate() {
        run_case(g, ACTS[i % ACTS.len()], i as u64 * 10);
    }
}

#[test]
fn conv_1d_and_3d() {
    let g1 = geom(
        2,
        3,
        4,
        1,
        [1, 1, 20],
        [1, 1, 4],
        [1, 1, 3],
        [1, 1, 2],
        [0, 0, 2],
        [0, 0, 1],
    );
    run_case(&g1, Activation::Relu, 1);
    let g3 = geom(
        1,
        2,
        3,
        1,
        [5, 6, 7],
        [2, 3, 3],
        [2, 1, 2],
        [1, 2, 1],
        [1, 1, 0],
        [0, 2, 1],
    );
    run_case(&g3, Activation::None, 2);
}

#[test]
fn every_activation() {
    for (i, act) in ACTS.iter().enumerate() {
        let g = geom(
            1,
            3,
            7,
            1,
            [1, 6, 6],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        );
        run_case(&g, *act, 50 + i as u64);
    }
}

/// Transposed conv by its definition: scatter each input into the output.
fn reference_t(
    g: &ConvGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
) -> Vec<f32> {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [kd, kh, kw] = g.kernel;
    let mut y = vec![0.0f64; g.batch * g.cout * g.out_spatial()];
    for b in 0..g.batch {
        for ci in 0..g.cin {
            let grp = ci / cin_g;
            for iz in 0..id {
                for iy in 0..ih {
                    for ix in 0..iw {
                        let xv = x[(((b * g.cin + ci) * id + iz) * ih + iy) * iw + ix] as f64;
                        for c in 0..cout_g {
                            for z in 0..kd {
                                for yy in 0..kh {
                                    for xx in 0..kw {
                                        let oz = (iz * g.stride[0] + z * g.dilation[0]) as isize
                                            - g.pad_begin[0] as isize;
                                        let oy = (iy * g.stride[1] + yy * g.dilation[1]) as isize
                                            - g.pad_begin[1] as isize;
                                        let ox = (ix * g.stride[2] + xx * g.dilation[2]) as isize
                                            - g.pad_begin[2] as isize;
                                        if oz < 0
                                            || oy < 0
                                            || ox < 0
                                            || oz >= od as isize
                                            || oy >= oh as isize
                                            || ox >= ow as isize
                                        {
                                            continue;
                                        }
                                        let co = grp * cout_g + c;
                                        let wi = (((ci * cout_g + c) * kd + z) * kh + yy) * kw + xx;
                                        y[(((b * g.cout + co) * od + oz as usize) * oh
                                            + oy as usize)
                                            * ow
                                            + ox as usize] += xv * w[wi] as f64;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let sp = g.out_spatial();
    y.iter()
        .enumerate()
        .map(|(i, v)| {
            let co = (i / sp) % g.cout;
            act.apply((v + bias.map_or(0.0, |b| b[co] as f64)) as f32)
        })
        .collect()
}

#[test]
fn conv_transpose_matches_definition() {
    // (geom with input = X spatial, output = Y spatial).
    let mk = |cin,
              cout,
              groups,
              input: [usize; 3],
              kernel: [usize; 3],
              stride: [usize; 3],
              dil: [usize; 3],
              pb: [usize; 3],
              output: [usize; 3]| ConvGeom {
        batch: 2,
        cin,
        cout,
        groups,
        input,
        kernel,
        stride,
        dilation: dil,
        pad_begin: pb,
        output,
    };
    let cases = [
        mk(
            3,
            2,
            1,
            [1, 3, 3],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0; 3],
            [1, 5, 5],
        ),
        mk(
            2,
            4,
            2,
            [1, 4, 5],
            [1, 3, 2],
            [1, 2, 3],
            [1, 1, 2],
            [0, 1, 0],
            [1, 9, 15],
        ),
        mk(
            1,
            2,
            1,
            [1, 1, 5],
            [1, 1, 3],
            [1, 1, 2],
            [1; 3],
            [0; 3],
            [1, 1, 11],
        ),
        mk(
            2,
            3,
            1,
            [2, 3, 3],
            [2, 2, 2],
            [2, 2, 2],
            [1; 3],
            [1, 1, 0],
            [3, 5, 6],
        ),
    ];
    for (i, g) in cases.iter().enumerate() {
        let x = rand_vec(g.batch * g.cin * g.in_spatial(), i as u64);
        let w = rand_vec(g.cin * g.cout_g() * g.kernel_size(), 7 + i as u64);
        let bias = rand_vec(g.cout, 3);
        let act = ACTS[(i * 3) % ACTS.len()];
        let want = reference_t(g, &x, &w, Some(&bias), act);
        let ct = ConvTranspose::new(g.clone(), &w, Some(&bias), act);
        for isa in Isa::available() {
            for tasks in [1, 3] {
                let mut y = vec![f32::NAN; want.len()];
                let mut s = vec![0.0; ct.scratch_len(tasks)];
                ct.run(isa, &x, &mut y, &mut s, &Threads(tasks));
                check(&y, &want, &alloc::format!("transpose {g:?}"));
                let mut y2 = vec![f32::NAN; want.len()];
                let mut s2 = vec![0.0; conv_transpose_scratch_len(g, false, tasks)];
                let threads = Threads(tasks);
                conv_transpose_dynamic(
                    isa,
                    g,
                    &w,
                    Some(&bias),
                    act,
                    &x,
                    &mut y2,
                    &mut s2,
                    &threads,
                );
                assert_eq!(y, y2, "dynamic weights differ");
            }
        }
    }
}
