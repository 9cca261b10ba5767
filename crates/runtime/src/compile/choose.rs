//! Phase 4, choose schedule: the numbered steps → the order they run in.

use whittle_ir::Graph;

use super::analyze::Analysis;
use super::number::Numbered;
use super::place::{place, Layout};
use super::{memory, schedule, state, CompileError, MAX_ARENA_BYTES};
use crate::Fact;

/// Takes the graph, the numbered steps and the analysis; gives the name of
/// the candidate order (graph order, depth-first, min-memory greedy, each
/// made to respect the state update constraints) whose [`place`]ment needs
/// the smallest arena, with that placement, after checking it against
/// [`MAX_ARENA_BYTES`] and verifying that no two live buffers overlap.
pub(super) fn choose_schedule(
    graph: &Graph,
    n: &Numbered,
    analysis: &Analysis,
) -> Result<(&'static str, Layout), CompileError> {
    let mut sizes: Vec<usize> = n.values.facts.iter().map(Fact::byte_size).collect();
    for &(_, vout) in &n.state_pairs {
        // Updating in place allocates nothing.
        sizes[vout] = 0;
    }
    let after = state::order_edges(&n.sched, &n.state_pairs);
    let output_values: Vec<usize> = graph
        .outputs
        .iter()
        .filter_map(|o| n.values.index.get(&o.name).copied())
        .collect();
    let candidates = [
        ("graph-order", schedule::graph_order(n.sched.len())),
        (
            "depth-first",
            schedule::depth_first(&n.sched, &output_values),
        ),
        (
            "min-memory-greedy",
            schedule::greedy_min_memory(&n.sched, &sizes, &n.pinned, &after),
        ),
    ];
    let mut laid = Vec::new();
    for (name, order) in candidates {
        let order = state::constrain(&order, &n.sched, &after)?;
        laid.push((name, place(order, n, analysis)));
    }
    let (schedule_name, best) = laid
        .into_iter()
        .min_by_key(|(_, l)| l.arena)
        .ok_or_else(|| CompileError::Internal("no schedule".into()))?;
    if best.arena > MAX_ARENA_BYTES {
        return Err(CompileError::Limit(format!(
            "the plan needs a {} byte arena, over the {MAX_ARENA_BYTES} byte limit",
            best.arena
        )));
    }
    memory::verify(&best.buffers, &best.offsets, best.arena).map_err(CompileError::Internal)?;
    Ok((schedule_name, best))
}
