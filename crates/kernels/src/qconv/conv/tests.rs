//! The padded im2col and subsampled 1x1 paths against the naive
//! fixed-point reference, every instruction set and task count.

use alloc::vec;
use alloc::vec::Vec;

use super::{QConv, QConvOutput};
use crate::conv::tests::geom;
use crate::conv::ConvGeom;
use crate::gemm::tests_support::Threads;
use crate::qconv::tests::{Case, Rng};
use crate::qconv::QIsa;

fn check(g: ConvGeom, signed_x: bool, u8_w: bool, raw: bool, seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let case = Case::random(g, signed_x, u8_w, &mut rng);
    let x = rng.bytes(case.g.batch * case.g.cin * case.g.in_spatial());
    let output = if raw {
        QConvOutput::I32
    } else {
        QConvOutput::Requant {
            requant: case.rq.clone(),
            clamp: case.clamp,
            signed: case.clamp.min < 0,
        }
    };
    let k = if u8_w {
        let w: Vec<u8> = case.w.iter().map(|&v| v as u8).collect();
        QConv::new(
            case.g.clone(),
            case.input,
            &w,
            &case.w_zp,
            case.bias.as_deref(),
            output,
        )
    } else {
        let w: Vec<i8> = case.w.iter().map(|&v| v as i8).collect();
        QConv::new(
            case.g.clone(),
            case.input,
            &w,
            &case.w_zp,
            case.bias.as_deref(),
            output,
        )
    }
    .unwrap();
    let acc = case.reference_acc(&x);
    let want = (!raw).then(|| case.reference(&x));
    for isa in QIsa::available() {
        for tasks in [1, 2] {
            let mut scratch = vec![0x5Au8; k.scratch_len(tasks)];
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
fn padded_3x3_every_width_and_stride() {
    let mut seed = 3u64;
    for w in [1, 2, 5, 7, 14, 31, 32, 33, 40, 57, 70] {
        for s in [1, 2] {
            for (cin, cout) in [(3, 8), (9, 17)] {
                let g = geom(
                    1,
                    cin,
                    cout,
                    1,
                    [1, 6, w],
                    [1, 3, 3],
                    [1, s, s],
                    [1; 3],
                    [0, 1, 1],
                    [0, 1, 1],
                );
                seed += 1;
                check(
                    g,
                    seed.is_multiple_of(2),
                    seed.is_multiple_of(3),
                    seed.is_multiple_of(5),
                    seed,
                );
            }
        }
    }
}

#[test]
fn padded_stem_and_odd_shapes() {
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
        // ResNet stem (7x7 s2 p3) at a small size.
        (
            1,
            3,
            10,
            1,
            [1, 23, 45],
            [1, 7, 7],
            [1, 2, 2],
            [1; 3],
            [0, 3, 3],
            [0, 3, 3],
        ),
        // Stride 3, dilation 2, asymmetric pads, grouped.
        (
            2,
            6,
            6,
            2,
            [1, 17, 29],
            [1, 3, 5],
            [1, 2, 3],
            [1, 2, 2],
            [0, 2, 1],
            [0, 0, 3],
        ),
        // 3-D with strides in every dim.
        (
            1,
            2,
            5,
            1,
            [5, 7, 9],
            [3, 3, 3],
            [2, 2, 2],
            [1; 3],
            [1, 1, 1],
            [1, 1, 1],
        ),
        // 1x1 strided (subsampled), 3-D and grouped.
        (
            2,
            8,
            6,
            2,
            [1, 15, 15],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        (
            1,
            4,
            5,
            1,
            [3, 8, 11],
            [1, 1, 1],
            [2, 3, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // 1x1 stride 2 on rows longer than one 32-byte step.
        (
            1,
            3,
            4,
            1,
            [1, 5, 131],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        (
            1,
            3,
            4,
            1,
            [1, 4, 64],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // 1x1 strided reaching into end padding (padded path).
        (
            1,
            4,
            5,
            1,
            [1, 8, 8],
            [1, 1, 1],
            [1, 3, 3],
            [1; 3],
            [0; 3],
            [0, 2, 2],
        ),
        // 1x1 with begin padding.
        (
            1,
            3,
            4,
            1,
            [1, 5, 6],
            [1, 1, 1],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
    ];
    for (i, &(b, ci, co, gr, inp, k, s, d, pb, pe)) in shapes.iter().enumerate() {
        let g = geom(b, ci, co, gr, inp, k, s, d, pb, pe);
        for seed in 0..3u64 {
            let seed = 100 + 7 * i as u64 + seed;
            check(
                g.clone(),
                seed.is_multiple_of(2),
                seed % 3 == 1,
                seed % 4 == 3,
                seed,
            );
        }
    }
}
