use alloc::vec;

use super::*;
use crate::conv::tests::{check, geom, reference};
use crate::gemm::tests_support::{rand_vec, Threads, ACTS};
use crate::gemm::{Lhs, Serial, MR};

/// Runs the implicit-GEMM kernel on every group and compares with the
/// definition, serially and on two threads (bit-identical).
fn run_case(g: &ConvGeom, act: Activation, seed: u64) {
    let isa = Isa::detect();
    if !shift_supported(isa) {
        return;
    }
    let plan = ShiftPlan::new(g)
        .or_else(|| ShiftPlan::pointwise(g))
        .expect("geometry has a plan");
    // Both tile layouts, whichever the cost model picks.
    for pixels in [false, true] {
        run_layout(g, act, seed, &plan.clone().with_pixels(pixels), isa);
    }
}

fn run_layout(g: &ConvGeom, act: Activation, seed: u64, plan: &ShiftPlan, isa: Isa) {
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
        let mut s = vec![f32::NAN; shift_scratch_len(plan)];
        for b in 0..g.batch {
            for grp in 0..g.groups {
                let a = PackedRows::new(
                    &w[grp * cout_g * depth..],
                    cout_g,
                    depth,
                    plan.panel_width(),
                );
                let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
                let yg = &mut y[(b * g.cout + grp * cout_g) * osp..][..cout_g * osp];
                let bg = &bias[grp * cout_g..][..cout_g];
                conv_shift(isa, plan, &a, Some(bg), act, xg, yg, &mut s, exec);
            }
        }
        let what = alloc::format!(
            "{g:?} {act:?} tasks {tasks} pixels {}",
            plan.is_pixel_major()
        );
        check(&y, &want, &what);
        match &first {
            None => first = Some(y),
            Some(f) => assert_eq!(f, &y, "thread count changed results"),
        }
    }
}

/// 2-D geometry: `(batch, cin, cout, groups, [h, w], [kh, kw], [sy, sx],
/// [dy, dx], pads begin [t, l], pads end [b, r])`.
type G2 = (
    usize,
    usize,
    usize,
    usize,
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
    [usize; 2],
);

fn g2(c: G2) -> ConvGeom {
    let (b, ci, co, gr, hw, k, s, d, pb, pe) = c;
    let d3 = |v: [usize; 2], one: usize| [one, v[0], v[1]];
    geom(
        b,
        ci,
        co,
        gr,
        d3(hw, 1),
        d3(k, 1),
        d3(s, 1),
        d3(d, 1),
        d3(pb, 0),
        d3(pe, 0),
    )
}

#[test]
fn strides_pads_dilations_and_groups() {
    #[rustfmt::skip]
    let cases: [G2; 11] = [
        // More output channels than one 48-channel group (pixel-major
        // tiles with a 2-vector tail group, channel-major with 8-row tail).
        (1, 9, 70, 1, [6, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        // 3x3 stride 1 pad 1 (ResNet body), odd widths and channel counts.
        (1, 5, 11, 1, [9, 13], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        // 7x7 map: grid rows shorter than a vector.
        (1, 16, 20, 1, [7, 7], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        // Stride 2 (four phases), asymmetric pads.
        (2, 3, 9, 1, [17, 15], [3, 3], [2, 2], [1, 1], [1, 0], [0, 1]),
        // 7x7 stride-2 stem shape, few channels.
        (1, 3, 8, 1, [30, 28], [7, 7], [2, 2], [1, 1], [3, 3], [3, 3]),
        // 1x1 stride 2 (ResNet downsample): one phase used.
        (1, 6, 10, 1, [10, 12], [1, 1], [2, 2], [1, 1], [0, 0], [0, 0]),
        // Dilation 2, stride 3 in x only, rectangular kernel, no padding.
        (1, 4, 7, 1, [12, 20], [3, 2], [1, 3], [2, 2], [0, 0], [0, 0]),
        // Groups, and a 1x1 with padding (not pointwise).
        (1, 8, 12, 4, [6, 6], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        (1, 4, 4, 1, [5, 5], [1, 1], [1, 1], [1, 1], [1, 1], [1, 1]),
        // A wide map: many tiles, rows longer than a tile.
        (1, 3, 17, 1, [20, 70], [3, 3], [1, 1], [1, 1], [1, 1], [1, 1]),
        // A tiny output (1x1) from a large kernel.
        (1, 2, 3, 1, [4, 4], [4, 4], [1, 1], [1, 1], [0, 0], [0, 0]),
    ];
    for (i, c) in cases.iter().enumerate() {
        run_case(&g2(*c), Activation::Relu, 10 + i as u64);
    }
}

#[test]
fn pointwise_reads_the_input_in_place() {
    #[rustfmt::skip]
    let cases: [G2; 3] = [
        // 7x7: a 1-column tail tile whose loads must stay inside the input.
        (1, 20, 19, 1, [7, 7], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        // Whole tiles only, two images.
        (2, 5, 9, 1, [6, 16], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
        // Groups.
        (1, 6, 9, 3, [9, 9], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]),
    ];
    for (i, c) in cases.iter().enumerate() {
        run_case(&g2(*c), Activation::Relu, 40 + i as u64);
    }
    // 3-D pointwise is pointwise too.
    let g = geom(
        1,
        3,
        4,
        1,
        [3, 5, 7],
        [1; 3],
        [1; 3],
        [1; 3],
        [0; 3],
        [0; 3],
    );
    run_case(&g, Activation::None, 50);
}

#[test]
fn every_activation() {
    let g = g2((1, 4, 9, 1, [8, 11], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]));
    for (i, &act) in ACTS.iter().enumerate() {
        run_case(&g, act, 100 + i as u64);
    }
}

#[test]
fn plan_refuses_what_it_cannot_run() {
    // Pointwise has its own copy-free plan; 3-D convs and huge strides go
    // to im2col.
    let pw = g2((1, 4, 4, 1, [5, 5], [1, 1], [1, 1], [1, 1], [0, 0], [0, 0]));
    assert!(ShiftPlan::new(&pw).is_none());
    assert!(ShiftPlan::pointwise(&pw).is_some_and(|p| p.planes_len() == 0));
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
    let s5 = g2((1, 2, 2, 1, [20, 20], [3, 3], [5, 5], [1, 1], [0, 0], [0, 0]));
    assert!(ShiftPlan::new(&s5).is_none());
}

#[test]
fn fallback_lhs_matches_row_major() {
    // The GEMM fallback reads PackedRows through `Lhs`: every element must
    // come back where MatRef would put it.
    let (m, k) = (13, 21);
    let w = rand_vec(m * k, 7);
    let packed = PackedRows::new(&w, m, k, ROWS);
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

#[test]
fn stride2_copy_matches_a_plain_loop() {
    #[cfg(target_arch = "x86_64")]
    if Isa::detect().is_avx512() {
        let src = rand_vec(100, 9);
        for n in 0..=40 {
            // The source is exactly as long as the copy needs (masked tail).
            let need = (2 * n).max(1) - 1;
            let mut got = vec![f32::NAN; n];
            // SAFETY: AVX-512 is present (checked above).
            unsafe { avx512::copy_stride2(&src[..need], &mut got) };
            let want: vec::Vec<f32> = (0..n).map(|j| src[2 * j]).collect();
            assert_eq!(got, want, "n = {n}");
        }
    }
}
