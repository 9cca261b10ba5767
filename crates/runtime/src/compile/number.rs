//! Phase 3, number values: the analysed steps → dense value ids.

use std::collections::HashMap;

use whittle_ir::Graph;

use super::analyze::Analysis;
use super::schedule::SchedStep;
use super::{CompileError, StatePair};
use crate::Fact;

/// Run-time values numbered densely, with sizes.
pub(super) struct ValueTable {
    pub index: HashMap<String, usize>,
    pub facts: Vec<Fact>,
}

impl ValueTable {
    fn add(&mut self, name: String, fact: Fact) -> usize {
        let id = self.facts.len();
        self.index.insert(name, id);
        self.facts.push(fact);
        id
    }
}

/// The run-time values and what each step does with them, by id.
pub(super) struct Numbered {
    /// Graph inputs first (ids `0..analysis.inputs.len()`), then every
    /// output of every step, in step order.
    pub values: ValueTable,
    /// The ids each step (by index into `analysis.steps`) reads and writes.
    pub sched: Vec<SchedStep>,
    /// Each step's inputs by position: the run-time value read there, or
    /// `None` for a constant or an omitted optional input.
    pub step_inputs: Vec<Vec<Option<usize>>>,
    /// Values that must live until the end of the run: graph outputs and
    /// both sides of every state pair.
    pub pinned: Vec<bool>,
    /// `(input, output)` ids of each state pair.
    pub state_pairs: Vec<(usize, usize)>,
    /// For a state output, its state input.
    pub state_of: Vec<Option<usize>>,
}

/// Takes the graph, its analysis and the state pairs; gives every run-time
/// value an id (graph inputs, then step outputs, including omitted optional
/// ones, which still need somewhere to be written), the reads and writes of
/// every step in those ids, the pinned values and the state pairs, checking
/// each state output is computed at run time with its input's type and shape.
pub(super) fn number_values(
    graph: &Graph,
    analysis: &Analysis,
    state: &[StatePair],
) -> Result<Numbered, CompileError> {
    let mut values = ValueTable {
        index: HashMap::new(),
        facts: Vec::new(),
    };
    for (name, fact) in &analysis.inputs {
        values.add(name.clone(), fact.clone());
    }
    let mut sched = Vec::with_capacity(analysis.steps.len());
    let mut step_inputs: Vec<Vec<Option<usize>>> = Vec::with_capacity(analysis.steps.len());
    for (si, step) in analysis.steps.iter().enumerate() {
        let reads: Vec<Option<usize>> = step
            .node
            .inputs
            .iter()
            .map(|n| values.index.get(n).copied())
            .collect();
        let mut writes = Vec::new();
        if step.output_facts.len() < step.node.outputs.len() {
            return Err(CompileError::Internal(format!(
                "node '{}' has fewer built outputs than declared",
                step.node.name
            )));
        }
        for (k, name) in step.node.outputs.iter().enumerate() {
            let fact = step.output_facts[k].clone();
            // Omitted optional outputs still need somewhere to be written.
            let key = if name.is_empty() {
                format!("\u{0}{si}:{k}")
            } else {
                name.clone()
            };
            writes.push(values.add(key, fact));
        }
        sched.push(SchedStep {
            reads: reads.iter().flatten().copied().collect(),
            writes,
        });
        step_inputs.push(reads);
    }
    let mut pinned = vec![false; values.facts.len()];
    for o in &graph.outputs {
        if let Some(&v) = values.index.get(&o.name) {
            pinned[v] = true;
        }
    }
    let state_pairs = state_values(state, &values, analysis.inputs.len())?;
    let mut state_of = vec![None; values.facts.len()];
    for &(vin, vout) in &state_pairs {
        pinned[vin] = true;
        pinned[vout] = true;
        state_of[vout] = Some(vin);
    }
    Ok(Numbered {
        values,
        sched,
        step_inputs,
        pinned,
        state_pairs,
        state_of,
    })
}

/// Value ids of the state pairs, checking each output is computed at run
/// time with exactly its input's type and shape.
fn state_values(
    state: &[StatePair],
    values: &ValueTable,
    n_inputs: usize,
) -> Result<Vec<(usize, usize)>, CompileError> {
    state
        .iter()
        .map(|p| {
            let vin = *values
                .index
                .get(&p.input)
                .ok_or_else(|| CompileError::Input {
                    name: p.input.clone(),
                    msg: "state input is not a run-time graph input".into(),
                })?;
            let vout = *values
                .index
                .get(&p.output)
                .filter(|&&v| v >= n_inputs)
                .ok_or_else(|| CompileError::Input {
                    name: p.output.clone(),
                    msg: "state output is not computed by a node at run time".into(),
                })?;
            if values.facts[vin] != values.facts[vout] {
                return Err(CompileError::Input {
                    name: p.output.clone(),
                    msg: format!(
                        "state output is {:?} but its input '{}' is {:?}",
                        values.facts[vout], p.input, values.facts[vin]
                    ),
                });
            }
            Ok((vin, vout))
        })
        .collect()
}
