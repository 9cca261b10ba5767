//! Spreading independent output planes over tasks, each with a private
//! scratch slot.

use crate::gemm::{for_each_chunk_with_slot, Exec, SlotFn};

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
    f: &SlotFn<'_, T, S>,
) {
    let plane = plane.max(1);
    for_each_chunk_with_slot(exec, out, plane, out.len() / plane, scratch, slot, f);
}
