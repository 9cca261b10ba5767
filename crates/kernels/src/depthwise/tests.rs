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
