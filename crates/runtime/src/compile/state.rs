//! Persistent state: graph inputs whose value a step updates in place and
//! which stay in the arena from one run to the next (trainable weights,
//! optimizer slots, running statistics).
//!
//! A [`StatePair`] names a graph input and the value that replaces it. Both
//! share one arena buffer that is live for the whole run, so nothing else is
//! ever placed there and the updated value is the next run's input without
//! a copy. The writer must run after every other reader of the old value;
//! [`order_edges`] states these constraints and [`constrain`] makes any
//! candidate schedule respect them.

use std::collections::{BinaryHeap, HashMap, HashSet};

use whittle_ir::{Graph, ValueInfo};

use super::schedule::SchedStep;
use super::CompileError;

/// A graph input and the value written over it in place each run.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StatePair {
    /// The graph input holding the state before a run.
    pub input: String,
    /// The value (a node output) holding it after the run.
    pub output: String,
}

impl StatePair {
    /// The pair `input -> output`.
    pub fn new(input: impl Into<String>, output: impl Into<String>) -> StatePair {
        StatePair {
            input: input.into(),
            output: output.into(),
        }
    }
}

fn bad(name: &str, msg: impl Into<String>) -> CompileError {
    CompileError::Input {
        name: name.to_string(),
        msg: msg.into(),
    }
}

/// Checks the pairs against the graph and adds each state output to the
/// graph outputs (so every pass keeps the node writing it).
pub(crate) fn prepare(graph: &mut Graph, pairs: &[StatePair]) -> Result<(), CompileError> {
    let mut seen_in = HashSet::new();
    let mut seen_out = HashSet::new();
    for p in pairs {
        let Some(vi) = graph.inputs.iter().find(|v| v.name == p.input) else {
            return Err(bad(&p.input, "state input is not a graph input"));
        };
        if graph.initializers.contains_key(&p.input) {
            return Err(bad(&p.input, "state input has an initializer"));
        }
        if !seen_in.insert(p.input.clone()) || !seen_out.insert(p.output.clone()) {
            return Err(bad(&p.input, "named in two state pairs"));
        }
        if graph.inputs.iter().any(|v| v.name == p.output) || p.output == p.input {
            return Err(bad(&p.output, "state output must be a node output"));
        }
        if !graph.outputs.iter().any(|o| o.name == p.output) {
            let info = ValueInfo {
                name: p.output.clone(),
                dtype: vi.dtype,
                shape: vi.shape.clone(),
            };
            graph.outputs.push(info);
        }
    }
    Ok(())
}

/// For each step, the steps that must run before it: the writer of a state
/// output comes after every other step reading the state input.
pub(crate) fn order_edges(sched: &[SchedStep], pairs: &[(usize, usize)]) -> Vec<Vec<usize>> {
    let mut after = vec![Vec::new(); sched.len()];
    let producer: HashMap<usize, usize> = sched
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.writes.iter().map(move |&w| (w, i)))
        .collect();
    for &(vin, vout) in pairs {
        let Some(&writer) = producer.get(&vout) else {
            continue;
        };
        for (r, s) in sched.iter().enumerate() {
            if r != writer && s.reads.contains(&vin) && !after[writer].contains(&r) {
                after[writer].push(r);
            }
        }
    }
    after
}

/// The schedule closest to `order` that respects data dependencies and the
/// `after` edges: list scheduling that always runs the ready step coming
/// first in `order`. An order that already satisfies them is unchanged.
/// Fails when the constraints form a cycle (a state input read after its
/// own update).
pub(crate) fn constrain(
    order: &[usize],
    sched: &[SchedStep],
    after: &[Vec<usize>],
) -> Result<Vec<usize>, CompileError> {
    let n = sched.len();
    let mut rank = vec![0usize; n];
    for (p, &s) in order.iter().enumerate() {
        rank[s] = p;
    }
    let producer: HashMap<usize, usize> = sched
        .iter()
        .enumerate()
        .flat_map(|(i, s)| s.writes.iter().map(move |&w| (w, i)))
        .collect();
    let mut deps = vec![0usize; n];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, s) in sched.iter().enumerate() {
        let mut pre: Vec<usize> = s
            .reads
            .iter()
            .filter_map(|r| producer.get(r).copied())
            .chain(after[i].iter().copied())
            .filter(|&p| p != i)
            .collect();
        pre.sort_unstable();
        pre.dedup();
        deps[i] = pre.len();
        for p in pre {
            users[p].push(i);
        }
    }
    let mut ready: BinaryHeap<std::cmp::Reverse<(usize, usize)>> = (0..n)
        .filter(|&i| deps[i] == 0)
        .map(|i| std::cmp::Reverse((rank[i], i)))
        .collect();
    let mut out = Vec::with_capacity(n);
    while let Some(std::cmp::Reverse((_, i))) = ready.pop() {
        out.push(i);
        for &u in &users[i] {
            deps[u] -= 1;
            if deps[u] == 0 {
                ready.push(std::cmp::Reverse((rank[u], u)));
            }
        }
    }
    if out.len() != n {
        return Err(CompileError::Limit(
            "a state input is read after the step that updates it in place \
             (no schedule can keep the old value)"
                .into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(reads: &[usize], writes: &[usize]) -> SchedStep {
        SchedStep {
            reads: reads.to_vec(),
            writes: writes.to_vec(),
        }
    }

    #[test]
    fn writer_waits_for_every_reader_of_the_old_value() {
        // v0 = state in, v1 = state out. s0 writes v1 reading v0; s1 reads
        // v0 (a forward use). s1 must come first though it is listed last.
        let sched = vec![step(&[0], &[1]), step(&[0], &[2])];
        let after = order_edges(&sched, &[(0, 1)]);
        assert_eq!(after, vec![vec![1], vec![]]);
        assert_eq!(constrain(&[0, 1], &sched, &after).unwrap(), vec![1, 0]);
        // An order that already fits is kept.
        assert_eq!(constrain(&[1, 0], &sched, &after).unwrap(), vec![1, 0]);
    }

    #[test]
    fn reading_the_old_value_after_its_update_is_an_error() {
        // s1 reads both the new value (v1) and the old one (v0).
        let sched = vec![step(&[0], &[1]), step(&[0, 1], &[2])];
        let after = order_edges(&sched, &[(0, 1)]);
        assert!(constrain(&[0, 1], &sched, &after).is_err());
    }
}
