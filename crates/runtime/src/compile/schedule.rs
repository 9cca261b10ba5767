//! Choosing the order of steps. Any topological order is correct; on
//! branching graphs (residuals, concats, multi-branch blocks) the order
//! decides how many activations are alive at once, so compile tries several
//! and keeps the one whose planned arena is smallest.

use std::collections::HashMap;

/// A step for scheduling purposes: which values it reads and writes.
pub(crate) struct SchedStep {
    pub reads: Vec<usize>,
    pub writes: Vec<usize>,
}

/// The steps in their given (graph) order.
pub(crate) fn graph_order(n: usize) -> Vec<usize> {
    (0..n).collect()
}

/// Depth-first order from the graph outputs: each input's producing subgraph
/// is finished before the next input's starts, so parallel branches run one
/// after another instead of interleaved.
pub(crate) fn depth_first(steps: &[SchedStep], outputs: &[usize]) -> Vec<usize> {
    let mut producer: HashMap<usize, usize> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        for &w in &s.writes {
            producer.insert(w, i);
        }
    }
    let mut emitted = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    // Iterative post-order: (step, next input to visit).
    let mut roots: Vec<usize> = outputs
        .iter()
        .filter_map(|v| producer.get(v).copied())
        .collect();
    // Steps whose outputs nobody reads still run (their side outputs may be
    // graph outputs already covered; this keeps every step scheduled).
    roots.extend(0..steps.len());
    for root in roots {
        if emitted[root] {
            continue;
        }
        let mut stack = vec![(root, 0usize)];
        let mut on_stack = vec![false; steps.len()];
        on_stack[root] = true;
        while let Some(&mut (s, ref mut next)) = stack.last_mut() {
            if let Some(&r) = steps[s].reads.get(*next) {
                *next += 1;
                if let Some(&p) = producer.get(&r) {
                    if !emitted[p] && !on_stack[p] {
                        on_stack[p] = true;
                        stack.push((p, 0));
                    }
                }
            } else {
                stack.pop();
                on_stack[s] = false;
                if !emitted[s] {
                    emitted[s] = true;
                    order.push(s);
                }
            }
        }
    }
    order
}

/// Greedy memory-aware list scheduling: among ready steps, run the one that
/// grows live memory the least (frees the most); ties go to the step that
/// became ready last, which keeps working on the current branch.
/// `sizes[v]` is the byte size of value `v`; values no step writes are
/// available from the start. `pinned[v]` values (graph outputs) never free.
/// `after[i]` lists steps that must run before step `i` besides its data
/// dependencies (in-place state updates); it may be empty.
pub(crate) fn greedy_min_memory(
    steps: &[SchedStep],
    sizes: &[usize],
    pinned: &[bool],
    after: &[Vec<usize>],
) -> Vec<usize> {
    let n = steps.len();
    let mut producer: HashMap<usize, usize> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        for &w in &s.writes {
            producer.insert(w, i);
        }
    }
    let mut remaining_readers = vec![0usize; sizes.len()];
    let mut deps = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in steps.iter().enumerate() {
        let mut seen = Vec::new();
        for &r in &s.reads {
            if seen.contains(&r) {
                continue;
            }
            seen.push(r);
            remaining_readers[r] += 1;
            if let Some(&p) = producer.get(&r) {
                deps[i] += 1;
                users[p].push(i);
            }
        }
        for &p in after.get(i).map_or(&[][..], Vec::as_slice) {
            deps[i] += 1;
            users[p].push(i);
        }
    }
    let mut ready: Vec<usize> = (0..n).filter(|&i| deps[i] == 0).collect();
    // ready_at[i]: how late step i became ready (higher = more recent).
    let mut ready_at = vec![0usize; n];
    let mut clock = 0usize;
    let mut order = Vec::with_capacity(n);
    while !ready.is_empty() {
        let (pos, _) = ready
            .iter()
            .enumerate()
            .map(|(pos, &i)| {
                let s = &steps[i];
                let grow: usize = s.writes.iter().map(|&w| sizes[w]).sum();
                let mut seen = Vec::new();
                let mut free = 0usize;
                for &r in &s.reads {
                    if !seen.contains(&r) {
                        seen.push(r);
                        if remaining_readers[r] == 1 && !pinned[r] {
                            free += sizes[r];
                        }
                    }
                }
                (
                    pos,
                    (
                        grow as i128 - free as i128,
                        std::cmp::Reverse(ready_at[i]),
                        i,
                    ),
                )
            })
            .min_by_key(|&(_, key)| key)
            .unwrap_or((0, (0, std::cmp::Reverse(0), 0)));
        let i = ready.swap_remove(pos);
        order.push(i);
        let mut seen = Vec::new();
        for &r in &steps[i].reads {
            if !seen.contains(&r) {
                seen.push(r);
                remaining_readers[r] -= 1;
            }
        }
        for &u in &users[i] {
            deps[u] -= 1;
            if deps[u] == 0 {
                clock += 1;
                ready_at[u] = clock;
                ready.push(u);
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_finishes_a_branch_before_growing_another() {
        // v0 -> s0 -> v1 (big) -> s1 -> v2 (small)
        // v0 -> s2 -> v3 (big) -> s3 -> v4 (small); s4 reads v2, v4.
        let steps = vec![
            SchedStep {
                reads: vec![0],
                writes: vec![1],
            },
            SchedStep {
                reads: vec![1],
                writes: vec![2],
            },
            SchedStep {
                reads: vec![0],
                writes: vec![3],
            },
            SchedStep {
                reads: vec![3],
                writes: vec![4],
            },
            SchedStep {
                reads: vec![2, 4],
                writes: vec![5],
            },
        ];
        let sizes = [10, 100, 1, 100, 1, 1];
        let order = greedy_min_memory(&steps, &sizes, &[false; 6], &[]);
        assert_eq!(order.len(), 5);
        // Both big values are never alive together.
        let pos = |s: usize| order.iter().position(|&x| x == s).unwrap();
        assert!(pos(1) < pos(2) || pos(3) < pos(0), "order {order:?}");
    }

    #[test]
    fn depth_first_runs_branches_one_after_another() {
        let steps = vec![
            SchedStep {
                reads: vec![0],
                writes: vec![1],
            },
            SchedStep {
                reads: vec![0],
                writes: vec![2],
            },
            SchedStep {
                reads: vec![1],
                writes: vec![3],
            },
            SchedStep {
                reads: vec![2],
                writes: vec![4],
            },
            SchedStep {
                reads: vec![3, 4],
                writes: vec![5],
            },
        ];
        assert_eq!(depth_first(&steps, &[5]), vec![0, 2, 1, 3, 4]);
    }
}
