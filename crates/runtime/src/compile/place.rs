//! Phase 5, place: one schedule → every buffer's place in the arena.
//! [`choose_schedule`](super::choose::choose_schedule) places each
//! candidate schedule to compare their arenas.

use super::analyze::Analysis;
use super::memory::{self, Buffer};
use super::number::{Numbered, ValueTable};

/// A candidate memory layout for one schedule.
pub(super) struct Layout {
    pub order: Vec<usize>,
    /// Buffer of each run-time value.
    pub buffer_of: Vec<usize>,
    /// Scratch buffer of each step (by step index), if any.
    pub scratch_of: Vec<Option<usize>>,
    /// Whether each step (by index) runs in place.
    pub inplace: Vec<bool>,
    pub buffers: Vec<Buffer>,
    pub offsets: Vec<usize>,
    pub arena: usize,
    /// Time each value is written (0 for graph inputs) and last read.
    pub birth: Vec<usize>,
    pub last: Vec<usize>,
}

/// Takes a step order and the numbered values; gives their layout: each
/// value's lifetime under that order, its buffer (a step's first output
/// shares its input's buffer when the kernel can run in place and nothing
/// reads the input later; a state output shares its input's), each step's
/// workspace buffer, and every buffer's offset in an arena of the size
/// [`memory::place`] finds.
pub(super) fn place(order: Vec<usize>, n: &Numbered, analysis: &Analysis) -> Layout {
    let Numbered {
        values,
        sched,
        step_inputs,
        pinned,
        state_of,
        ..
    } = n;
    let n_values = values.facts.len();
    let end_time = order.len() + 1;
    // Time of step at position p is p + 1; graph inputs are born at 0.
    let mut birth = vec![0usize; n_values];
    let mut last = vec![0usize; n_values];
    for (p, &s) in order.iter().enumerate() {
        for &w in &sched[s].writes {
            birth[w] = p + 1;
            last[w] = last[w].max(p + 1);
        }
        for &r in &sched[s].reads {
            last[r] = last[r].max(p + 1);
        }
    }
    for v in 0..n_values {
        if pinned[v] {
            last[v] = end_time;
        }
    }
    let mut buffer_of = vec![usize::MAX; n_values];
    let mut buffers: Vec<Buffer> = Vec::new();
    let mut inplace = vec![false; sched.len()];
    let mut scratch_of = vec![None; sched.len()];
    // Graph inputs first.
    for (v, b) in birth.iter().enumerate() {
        if *b == 0 {
            buffer_of[v] = buffers.len();
            buffers.push(Buffer {
                size: values.facts[v].byte_size(),
                start: 0,
                end: last[v],
            });
        }
    }
    for (p, &s) in order.iter().enumerate() {
        let t = p + 1;
        let step = &analysis.steps[s];
        let outs = &sched[s].writes;
        let mut merged_out0 = false;
        let out0_state = outs.first().is_some_and(|&o| state_of[o].is_some());
        if let (Some(k), Some(&out0), false) =
            (step.kernel.inplace_input(), outs.first(), out0_state)
        {
            if let Some(Some(v)) = step_inputs[s].get(k) {
                let v = *v;
                let used_twice = step_inputs[s].iter().filter(|x| **x == Some(v)).count() > 1;
                let out_is_first_output = sched[s].writes.first() == Some(&out0);
                if last[v] == t
                    && !pinned[v]
                    && !used_twice
                    && out_is_first_output
                    && values.facts[v].byte_size() == values.facts[out0].byte_size()
                {
                    let b = buffer_of[v];
                    buffer_of[out0] = b;
                    buffers[b].end = buffers[b].end.max(last[out0]);
                    inplace[s] = true;
                    merged_out0 = true;
                }
            }
        }
        for (i, &w) in outs.iter().enumerate() {
            if i == 0 && merged_out0 {
                continue;
            }
            if let Some(vin) = state_of[w] {
                // Written over its state input, in place.
                buffer_of[w] = buffer_of[vin];
                continue;
            }
            buffer_of[w] = buffers.len();
            buffers.push(Buffer {
                size: values.facts[w].byte_size(),
                start: t,
                end: last[w].max(t),
            });
        }
        let scratch = step.kernel.scratch_bytes();
        if scratch > 0 {
            scratch_of[s] = Some(buffers.len());
            buffers.push(Buffer {
                size: scratch,
                start: t,
                end: t,
            });
        }
    }
    let (offsets, arena) = memory::place(&buffers);
    Layout {
        order,
        buffer_of,
        scratch_of,
        inplace,
        buffers,
        offsets,
        arena,
        birth,
        last,
    }
}

/// Bytes that in-place merging saved, so the naive figure counts every
/// intermediate separately.
pub(super) fn inplace_savings(layout: &Layout, values: &ValueTable) -> usize {
    let mut seen = vec![false; layout.buffers.len()];
    let mut saved = 0;
    for (v, &b) in layout.buffer_of.iter().enumerate() {
        if b == usize::MAX {
            continue;
        }
        if seen[b] {
            saved += memory::align_up(values.facts[v].byte_size());
        }
        seen[b] = true;
    }
    saved
}
