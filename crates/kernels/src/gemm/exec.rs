//! Splitting kernel work into tasks that may run on other threads.

/// Runs indexed tasks, possibly concurrently. Kernels size one scratch slot
/// per task and write disjoint outputs per task index, so soundness relies on
/// the implementation's promise below.
///
/// # Safety
/// `run(n, f)` must call `f(i)` exactly once for each `i` in `0..n` and
/// return only after every call has finished.
pub unsafe trait Exec: Sync {
    /// Upper bound on tasks worth creating (usually the thread count).
    fn max_tasks(&self) -> usize;

    /// Calls `f(i)` once for each `i` in `0..n`.
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync));
}

/// Runs every task on the calling thread, in order.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serial;

// SAFETY: the loop calls each index exactly once and finishes before returning.
unsafe impl Exec for Serial {
    fn max_tasks(&self) -> usize {
        1
    }

    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        (0..n).for_each(f)
    }
}

/// A raw pointer that tasks share; each task touches a disjoint part.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);

// SAFETY: `SharedMut` is only created by kernels that hand each task a
// disjoint region of the pointee (documented at each use), so no two threads
// ever access the same element.
unsafe impl<T: Send> Sync for SharedMut<T> {}
// SAFETY: as above; moving the pointer between threads is harmless.
unsafe impl<T: Send> Send for SharedMut<T> {}

/// Task `i` of `tasks` gets the `i`-th of `tasks` near-equal ranges of
/// `0..units`.
pub(crate) fn task_range(units: usize, tasks: usize, i: usize) -> core::ops::Range<usize> {
    let base = units / tasks;
    let extra = units % tasks;
    let start = i * base + i.min(extra);
    let len = base + usize::from(i < extra);
    start..start + len
}

/// Tasks for `units` independent units of work on up to `max_tasks`
/// threads: several per thread when there are enough units, so that work
/// stealing evens out a thread that starts late (results never depend on
/// the split).
pub(crate) fn balanced_tasks(max_tasks: usize, units: usize) -> usize {
    if max_tasks <= 1 {
        1
    } else {
        (4 * max_tasks).min(units).max(1)
    }
}

/// Splits `out` into consecutive chunks of `chunk` elements (the last may be
/// shorter) and calls `f(chunk_index, chunk)` for each, spreading the chunks
/// over up to four tasks per `exec.max_tasks()` thread (several per thread
/// so that work stealing evens out a thread that starts late).
pub fn for_each_chunk_mut(
    exec: &dyn Exec,
    out: &mut [f32],
    chunk: usize,
    f: &(dyn Fn(usize, &mut [f32]) + Sync),
) {
    let chunk = chunk.max(1);
    let n = out.len().div_ceil(chunk);
    let tasks = balanced_tasks(exec.max_tasks(), n);
    if tasks <= 1 {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
        return;
    }
    let len = out.len();
    let base = SharedMut(out.as_mut_ptr());
    exec.run(tasks, &|t| {
        let base = &base;
        for i in task_range(n, tasks, t) {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: chunk `i` covers `start..end`, inside `out` (end <=
            // len); each chunk index belongs to exactly one task and `Exec`
            // runs each task once, so the slices are disjoint and `out` stays
            // mutably borrowed for the whole call.
            let c = unsafe { core::slice::from_raw_parts_mut(base.0.add(start), end - start) };
            f(i, c);
        }
    });
}

/// A per-chunk body: `(chunk_index, chunk, scratch_slot)`.
pub type ChunkFn<'a> = dyn Fn(usize, &mut [f32], &mut [f32]) + Sync + 'a;

/// Like [`for_each_chunk_mut`], and also hands each call a private slot of
/// `slot` floats from `scratch`: one slot per task, so there are at most
/// `scratch.len() / slot` tasks (at least one; a task may get several
/// chunks, which share its slot in turn).
///
/// # Panics
/// If `scratch` is shorter than one slot.
pub fn for_each_chunk_mut_with_scratch(
    exec: &dyn Exec,
    out: &mut [f32],
    chunk: usize,
    scratch: &mut [f32],
    slot: usize,
    f: &ChunkFn<'_>,
) {
    let chunk = chunk.max(1);
    let n = out.len().div_ceil(chunk);
    for_each_chunk_with_slot(exec, out, chunk, n, scratch, slot, f);
}

/// A per-chunk body with a scratch slot: `(chunk_index, chunk, slot)`.
pub(crate) type SlotFn<'a, T, S> = dyn Fn(usize, &mut [T], &mut [S]) + Sync + 'a;

/// The first `n` chunks of `chunk` elements of `out` (the last may be
/// shorter when it ends `out`), each handed to `f(chunk_index, chunk,
/// slot)` on up to `exec.max_tasks()` tasks, never more than `scratch`
/// has slots of `slot` elements. Each task owns a contiguous run of
/// chunks and one slot, so which task computes a chunk never changes its
/// value.
///
/// # Panics
/// If `scratch` is shorter than one slot, or the chunks run past `out`.
pub(crate) fn for_each_chunk_with_slot<T: Send, S: Send>(
    exec: &dyn Exec,
    out: &mut [T],
    chunk: usize,
    n: usize,
    scratch: &mut [S],
    slot: usize,
    f: &SlotFn<'_, T, S>,
) {
    assert!(
        chunk > 0 && n <= out.len().div_ceil(chunk),
        "chunks past the end"
    );
    assert!(scratch.len() >= slot, "scratch shorter than one slot");
    let slots = scratch.len().checked_div(slot).unwrap_or(n);
    let tasks = exec.max_tasks().min(slots).clamp(1, n.max(1));
    if tasks <= 1 {
        let buf = &mut scratch[..slot];
        out.chunks_mut(chunk)
            .take(n)
            .enumerate()
            .for_each(|(i, c)| f(i, c, &mut *buf));
        return;
    }
    let len = out.len();
    let base = SharedMut(out.as_mut_ptr());
    let sbase = SharedMut(scratch.as_mut_ptr());
    exec.run(tasks, &|t| {
        let (base, sbase) = (&base, &sbase);
        // SAFETY: slot `t` lies inside `scratch` (t < tasks <= slots) and
        // belongs to task `t` alone; `Exec` runs each task once.
        let buf = unsafe { core::slice::from_raw_parts_mut(sbase.0.add(t * slot), slot) };
        for i in task_range(n, tasks, t) {
            let start = i * chunk;
            let end = (start + chunk).min(len);
            // SAFETY: as in `for_each_chunk_mut`: chunk `i < n` covers
            // `start..end`, inside `out` (the caller's `n` chunks fit), and
            // is owned by this task only.
            let c = unsafe { core::slice::from_raw_parts_mut(base.0.add(start), end - start) };
            f(i, c, &mut *buf);
        }
    });
}
