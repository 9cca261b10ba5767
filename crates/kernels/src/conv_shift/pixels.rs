//! The pixel-major driver: tiles of output pixels by output channels.

#[cfg(target_arch = "x86_64")]
use super::avx512;
use super::{PackedRows, ShiftPlan, LANES, ROWS, TILE};
use crate::gemm::{balanced_tasks, task_range, Exec, Isa, SharedMut};
use crate::Activation;

/// The pixel-major form of [`super::conv_shift`] (planes already filled).
// Only AVX-512 has tile kernels; elsewhere the locals go unused.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
#[allow(clippy::too_many_arguments)]
pub(super) fn run_pixels(
    isa: Isa,
    plan: &ShiftPlan,
    a: &PackedRows,
    bias: Option<&[f32]>,
    act: Activation,
    xp: &[f32],
    y: &mut [f32],
    exec: &dyn Exec,
) {
    let (m, k) = (a.m, a.k);
    let osp = plan.oh * plan.ow;
    let (vact, scalar_act) = crate::gemm::split_act(isa, act);
    // Pixel tiles of near-equal size, at most ROWS pixels.
    let r = osp.div_ceil(osp.div_ceil(ROWS).max(1)).max(1);
    let ptiles = osp.div_ceil(r);
    let groups = m.div_ceil(TILE);
    // Units of work are (channel group, pixel tile) pairs, group-major, so
    // a task's consecutive units share a group's weights (kept in L2 while
    // its pixel tiles pass) and tasks can be many and even.
    let units = groups * ptiles;
    let tasks = if m * osp < 4096 {
        1
    } else {
        balanced_tasks(exec.max_tasks().max(1), units)
    };
    let y_ptr = SharedMut(y.as_mut_ptr());
    let wstride = LANES * k;
    let body = |t: usize| {
        let y_ptr = &y_ptr;
        for unit in task_range(units, tasks, t) {
            let (grp, tile) = (unit / ptiles, unit % ptiles);
            let c0 = grp * TILE;
            let couts = TILE.min(m - c0);
            let vectors = couts.div_ceil(LANES);
            let w = &a.data[(c0 / LANES) * wstride..][..vectors * wstride];
            let p0 = tile * r;
            let rows = r.min(osp - p0);
            let bases: [*const f32; ROWS] = core::array::from_fn(|i| {
                let p = p0 + i.min(rows - 1);
                let g = (p / plan.ow) * plan.wq + p % plan.ow;
                xp.as_ptr().wrapping_add(g)
            });
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512 is present (checked by `conv_shift`).
            // Weight reads stay in `w` (vectors panels of 16 k).
            // Input reads are xp[g + koff[p]] for a real output's grid
            // position g, inside the planes (or `x` when direct). Stores
            // go to y[c * osp + p0 + i] for c < m and i < rows: this
            // task's channel group and pixel tile only.
            unsafe {
                avx512::tile_px(
                    rows,
                    vectors,
                    k,
                    w.as_ptr(),
                    wstride,
                    &plan.koff,
                    &bases,
                    &avx512::StorePx {
                        y: y_ptr.0.add(c0 * osp + p0),
                        osp,
                        couts,
                        bias: bias.map(|b| &b[c0..c0 + couts]),
                        act: vact,
                    },
                );
            }
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (vact, wstride);
    if tasks <= 1 {
        body(0);
    } else {
        exec.run(tasks, &body);
    }
    if scalar_act {
        act.apply_slice(&mut y[..m * osp]);
    }
}
