use alloc::vec;

use super::*;
use crate::conv::tests::{check, geom, reference};
use crate::gemm::tests_support::{rand_vec, Threads, ACTS};
use crate::gemm::Serial;

/// Runs the implicit-GEMM kernel on every group and compares with the
/// definition, serially and on two threads (bit-identical).
fn run_case(g: &ConvGeom, act: Activation, seed: u64) {
    let isa = Isa::detect();
    if !shift_supported(isa) {
        return;
    }
    let plan = ShiftPlan::new(g).expect("geometry has a plan");
    let x = rand_vec(g.batch * g.cin * g.in_spatial(), seed);
    let w = rand_vec(g.cout * g.cin_g() * g.kernel_size(), seed + 1);
    let bias = rand_vec(g.cout, seed + 2);
    let want = reference(g, &x, &w, Some(&bias), act);
    let (cin_g, cout_g, depth) = (g.cin_g(), g.cout_g(), g.cin_g() * g.kernel_size());
    let (isp, osp) = (g.in_spatial(), g.out_spatial());
    let mut first: Option<vec::Vec<f32>> = None;
    for tasks in [1, 2] {
        let threads = Threads(tasks);
        let exec: &dyn Exec = if tasks == 1 { &Serial } else { &threads };
        let mut y = vec![f32::NAN; want.len()];
        // Stale NaNs in scratch must not leak into results.
        let mut s = vec![f32::NAN; shift_scratch_len(&plan)];
        for b in 0..g.batch {
            for grp in 0..g.groups {
                let a = PackedRows::new(&w[grp * cout_g * depth..], cout_g, depth);
                let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
                let yg = &mut y[(b * g.cout + grp * cout_g) * osp..][..cout_g * osp];
                let bg = &bias[grp * cout_g..][..cout_g];
                conv_shift(isa, &plan, &a, Some(bg), act, xg, yg, &mut s, exec);
            }
        }
        check(&y, &want, &alloc::format!("{g:?} {act:?} tasks {tasks}"));
        match &first {
            None => first = Some(y),
            Some(f) => assert_eq!(f, &y, "thread count changed results"),
        }
    }
}

#[test]
fn strides_pads_dilations_and_groups() {
    let cases = [
        // 3x3 stride 1 pad 1 (ResNet body), odd widths and channel counts.
        geom(
            1,
            5,
            11,
            1,
            [1, 9, 13],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // 7x7 map: grid rows shorter than a vector.
        geom(
            1,
            16,
            20,
            1,
            [1, 7, 7],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // Stride 2 (four phases), asymmetric pads.
        geom(
            2,
            3,
            9,
            1,
            [1, 17, 15],
            [1, 3, 3],
            [1, 2, 2],
            [1; 3],
            [0, 1, 0],
            [0, 0, 1],
        ),
        // 7x7 stride-2 stem shape, few channels.
        geom(
            1,
            3,
            8,
            1,
            [1, 30, 28],
            [1, 7, 7],
            [1, 2, 2],
            [1; 3],
            [0, 3, 3],
            [0, 3, 3],
        ),
        // 1x1 stride 2 (ResNet downsample): one phase used.
        geom(
            1,
            6,
            10,
            1,
            [1, 10, 12],
            [1, 1, 1],
            [1, 2, 2],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
        // Dilation 2, stride 3 in x only, rectangular kernel, no padding.
        geom(
            1,
            4,
            7,
            1,
            [1, 12, 20],
            [1, 3, 2],
            [1, 1, 3],
            [1, 2, 2],
            [0; 3],
            [0; 3],
        ),
        // Groups, and a 1x1 with padding (not pointwise).
        geom(
            1,
            8,
            12,
            4,
            [1, 6, 6],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        geom(
            1,
            4,
            4,
            1,
            [1, 5, 5],
            [1, 1, 1],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // A wide map: many tiles, rows longer than a tile.
        geom(
            1,
            3,
            17,
            1,
            [1, 20, 70],
            [1, 3, 3],
            [1; 3],
            [1; 3],
            [0, 1, 1],
            [0, 1, 1],
        ),
        // A tiny output (1x1) from a large kernel.
        geom(
            1,
            2,
            3,
            1,
            [1, 4, 4],
            [1, 4, 4],
            [1; 3],
            [1; 3],
            [0; 3],
            [0; 3],
        ),
    ];
    for (i, g) in cases.iter().enumerate() {
        run_case(g, Activation::Relu, 10 + i as u64);
    }
}

#[test]
fn every_activation() {
    let g = geom(
        1,
        4,
        9,
        1,
        [1, 8, 11],
        [1, 3, 3],
        [1, 2, 2],
        [1; 3],
        [0, 1, 1],
        [0, 1, 1],
    );
    for (i, &act) in ACTS.iter().enumerate() {
        run_case(&g, act, 100 + i as u64);
    }
}

#[test]
fn plan_refuses_what_it_cannot_run() {
    // Pointwise is a plain GEMM; 3-D convs and huge strides go to im2col.
    let pw = geom(
        1,
        4,
        4,
        1,
        [1, 5, 5],
        [1; 3],
        [1; 3],
        [1; 3],
        [0; 3],
        [0; 3],
    );
    assert!(ShiftPlan::new(&pw).is_none());
    let d3 = geom(
        1,
        2,
        2,
        1,
        [3, 5, 5],
        [2, 3, 3],
        [1; 3],
        [1; 3],
        [0; 3],
        [0; 3],
    );
    assert!(ShiftPlan::new(&d3).is_none());
    let s5 = geom(
        1,
        2,
        2,
        1,
        [1, 20, 20],
        [1, 3, 3],
        [1, 5, 5],
        [1; 3],
        [0; 3],
        [0; 3],
    );
    assert!(ShiftPlan::new(&s5).is_none());
}

#[test]
fn fallback_lhs_matches_row_major() {
    // The GEMM fallback reads PackedRows through `Lhs`: every element must
    // come back where MatRef would put it.
    let (m, k) = (13, 21);
    let w = rand_vec(m * k, 7);
    let packed = PackedRows::new(&w, m, k);
    let mut buf = vec![f32::NAN; 3 * MR * k];
    for (i0, mc) in [(0, 13), (6, 7), (12, 1)] {
        let p = packed.panels(i0, mc, 0, k, &mut buf);
        for (ip, panel) in p.chunks_exact(MR * k).enumerate() {
            for r in 0..MR {
                let i = i0 + ip * MR + r;
                for q in 0..k {
                    let want = if i < i0 + mc { w[i * k + q] } else { 0.0 };
                    assert_eq!(panel[q * MR + r], want, "row {i} col {q}");
                }
            }
        }
    }
}
