use alloc::vec;

use super::*;
use crate::conv::tests::{check, geom, reference};
use crate::gemm::tests_support::{rand_vec, Threads, ACTS};

fn run_case(g: &ConvGeom, act: Activation, seed: u64) {
    assert!(is_depthwise(g));
    let x = rand_vec(g.batch * g.cin * g.in_spatial(), seed);
    let w = rand_vec(g.cout * g.kernel_size(), seed + 1);
    let bias = rand_vec(g.cout, seed + 2);
    let want = reference(g, &x, &w, Some(&bias), act);
    let dw = Depthwise::new(g.clone(), &w, Some(&bias), act);
    for isa in Isa::available() {
        for tasks in [1, 3] {
            let mut y = vec![f32::NAN; want.len()];
            dw.run(isa, &x, &mut y, &Threads(tasks));
            check(&y, &want, &alloc::format!("{g:?} {act:?} {}", isa.name()));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn dw(
    c: usize,
    mult: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: usize,
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
        [1, s, s],
        [1, d, d],
        [0, pb[0], pb[1]],
        [0, pe[0], pe[1]],
    )
}

#[test]
fn k3_every_width() {
    // Widths around the 8/16-wide chunks and their tails.
    let mut seed = 0;
    for w in [1, 2, 3, 5, 8, 9, 10, 17, 18, 19, 25, 33, 40] {
        for h in [1, 2, 4] {
            for s in [1, 2] {
                seed += 3;
                run_case(
                    &dw(3, 1, h, w, [3, 3], s, 1, [1, 1], [1, 1]),
                    Activation::None,
                    seed,
                );
                // SAME_UPPER-style asymmetric pads and no pads.
                if w >= 3 && h >= 3 {
                    run_case(
                        &dw(2, 1, h, w, [3, 3], s, 1, [0, 0], [1, 1]),
                        Activation::Relu,
                        seed,
                    );
                    run_case(
                        &dw(2, 1, h, w, [3, 3], s, 1, [0, 0], [0, 0]),
                        Activation::Relu,
                        seed,
                    );
                }
            }
        }
    }
}

#[test]
fn generic_shapes() {
    let cases = [
        dw(4, 1, 12, 13, [5, 5], 1, 1, [2, 2], [2, 2]),
        dw(3, 1, 15, 20, [5, 5], 2, 1, [1, 2], [2, 1]),
        dw(2, 1, 16, 23, [7, 7], 1, 1, [3, 3], [3, 3]),
        dw(2, 2, 9, 11, [3, 3], 1, 2, [2, 2], [2, 2]),
        dw(3, 3, 8, 30, [3, 3], 2, 1, [1, 1], [1, 1]),
        dw(2, 1, 6, 30, [3, 3], 3, 1, [1, 1], [1, 1]),
        dw(2, 1, 1, 30, [1, 5], 1, 1, [0, 2], [0, 2]),
        dw(2, 1, 3, 4, [3, 3], 1, 1, [4, 4], [4, 4]),
    ];
    for (i, g) in cases.iter().enumerate() {
        run_case(g, ACTS[i % ACTS.len()], 100 + i as u64);
    }
}

#[test]
fn every_activation() {
    for (i, act) in ACTS.iter().enumerate() {
        run_case(
            &dw(3, 1, 7, 21, [3, 3], 1, 1, [1, 1], [1, 1]),
            *act,
            i as u64,
        );
        run_case(
            &dw(3, 1, 7, 21, [3, 3], 2, 1, [1, 1], [1, 1]),
            *act,
            i as u64,
        );
    }
}

#[test]
fn rows_too_wide_for_the_ring() {
    // Past the ring's width the AVX2 path falls back to interior/border
    // splitting; both strides and asymmetric pads.
    for s in [1, 2] {
        let g = dw(2, 1, 3, 1100, [3, 3], s, 1, [1, 0], [1, 1]);
        assert!(ring_width(&g).is_none());
        run_case(&g, Activation::Relu, 9 + s as u64);
    }
}

#[test]
fn avx512_kernels_cover_their_shapes() {
    // Which kernel each geometry gets, and that results are bit-identical
    // across task counts (channels are whole units of work).
    let isa = Isa::detect();
    let cases = [
        // Flat: 7x7, 14x14-like, a plane spanning many vectors, 5x5, and
        // dilation with a channel multiplier.
        (dw(5, 1, 7, 7, [3, 3], 1, 1, [1, 1], [1, 1]), "flat"),
        (dw(3, 1, 14, 14, [3, 3], 1, 1, [1, 1], [1, 1]), "flat"),
        (dw(2, 1, 37, 29, [3, 3], 1, 1, [1, 1], [1, 1]), "flat"),
        (dw(2, 2, 9, 11, [5, 5], 1, 1, [2, 2], [2, 2]), "flat"),
        (dw(2, 2, 9, 11, [3, 3], 1, 2, [2, 2], [2, 2]), "flat"),
        // Stride 2: widths over several 16-output chunks, both paddings.
        (dw(3, 1, 6, 70, [3, 3], 2, 1, [1, 1], [1, 1]), "s2"),
        (dw(3, 1, 7, 33, [3, 3], 2, 1, [0, 0], [1, 1]), "s2"),
        (dw(2, 3, 5, 15, [3, 3], 2, 1, [1, 0], [0, 1]), "s2"),
        // Valid (unpadded) stride 1: rows shrink, so not flat.
        (dw(2, 1, 6, 9, [3, 3], 1, 1, [0, 0], [0, 0]), "rows"),
    ];
    for (i, (g, want)) in cases.iter().enumerate() {
        run_case(
            g,
            Activation::Clip {
                min: -0.3,
                max: 0.6,
            },
            300 + i as u64,
        );
        let w = rand_vec(g.cout * g.kernel_size(), 1);
        let x = rand_vec(g.batch * g.cin * g.in_spatial(), 2);
        let k = Depthwise::new(g.clone(), &w, None, Activation::None);
        if isa.is_avx512() {
            assert_eq!(k.kernel_name(isa), *want, "{g:?}");
        }
        let mut y1 = vec![0.0; g.batch * g.cout * g.out_spatial()];
        let mut y3 = vec![1.0; y1.len()];
        k.run(isa, &x, &mut y1, &Threads(1));
        k.run(isa, &x, &mut y3, &Threads(3));
        assert_eq!(y1, y3, "task count changed results for {g:?}");
    }
}
