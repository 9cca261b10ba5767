//! Spreading independent output planes over tasks, each with a private
//! scratch slot.

use crate::gemm::{task_range, Exec, SharedMut};

/// A per-plane body: `(plane_index, plane, scratch_slot)`.
pub(crate) type PlaneFn<'a, T, S> = dyn Fn(usize, &mut [T], &mut [S]) + Sync + 'a;

/// Splits `out` into planes of `plane` elements and calls `f(i, plane_i,
/// slot)` for each, on up to `exec.max_tasks()` tasks (never more than
/// `scratch` has slots of `slot` elements). Each task owns a contiguous run
/// of planes, so which task computes a plane never changes its value.
///
/// # Panics
/// If `scratch` is shorter than one slot.
pub(crate) fn for_each_plane<T: Send, S: Send>(
    exec: &dyn Exec,
    out: &mut [T],
    plane: usize,
    scratch: &mut [S],
    slot: usize,
    f: &PlaneFn<'_, T, S>,
) {
    let plane = plane.max(1);
    let n = out.len() / plane;
    assert!(scratch.len() >= slot, "scratch shorter than one slot");
    let slots = scratch.len().checked_div(slot).unwrap_or(n);
    let tasks = exec.max_tasks().min(slots).clamp(1, n.max(1));
    if tasks <= 1 {
        let buf = &mut scratch[..slot];
        out.chunks_exact_mut(plane)
            .enumerate()
            .for_each(|(i, c)| f(i, c, &mut *buf));
        return;
    }
    let base = SharedMut(out.as_mut_ptr());
    let sbase = SharedMut(scratch.as_mut_ptr());
    exec.run(tasks, &|t| {
        let (base, sbase) = (&base, &sbase);
        // SAFETY: slot `t` lies inside `scratch` (t < tasks <= slots) and
        // belongs to task `t` alone; `Exec` runs each task once.
        let buf = unsafe { core::slice::from_raw_parts_mut(sbase.0.add(t * slot), slot) };
        for i in task_range(n, tasks, t) {
            // SAFETY: plane `i < n` covers `i * plane..(i + 1) * plane`,
            // inside `out`; each plane index belongs to exactly one task, so
            // the slices are disjoint while `out` stays borrowed.
            let c = unsafe { core::slice::from_raw_parts_mut(base.0.add(i * plane), plane) };
            f(i, c, &mut *buf);
        }
    });
}
