//! Phase 6, assemble: the chosen layout → the [`Plan`].

use std::collections::{HashMap, HashSet};

use smallvec::SmallVec;
use whittle_ir::{Graph, Tensor};

use super::analyze::{self, Analysis, Value};
use super::memory;
use super::number::{Numbered, ValueTable};
use super::place::{inplace_savings, Layout};
use super::CompileError;
use crate::plan::{
    ArenaBlock, InputSlot, IoInfo, LiveKind, LiveValue, MemoryStats, OutputSource, PlanStep,
    Region, EMPTY_REGION,
};
use crate::report::{NodeReport, PlanReport, Totals};
use crate::{Fact, Parallel, Plan};

/// Takes the graph, its analysis, the numbered values, the chosen schedule
/// (its name and layout) and the thread pool; gives the plan: its steps in
/// schedule order, each with the arena regions, constants and empty slots
/// its kernel reads and writes; the constants they read; the graph inputs,
/// outputs and state tensors with their regions; the liveness of every
/// value; and the memory statistics and per-node report (without the pass
/// summaries, which the caller adds).
pub(super) fn assemble(
    graph: &Graph,
    analysis: Analysis,
    n: &Numbered,
    schedule_name: &str,
    best: &Layout,
    par: Parallel,
) -> Result<Plan, CompileError> {
    let Numbered {
        values,
        sched,
        step_inputs,
        state_pairs,
        ..
    } = n;
    // Constants the steps or outputs read.
    let mut consts: Vec<Tensor> = Vec::new();
    let mut const_index: HashMap<String, usize> = HashMap::new();
    let mut const_id = |name: &str, consts: &mut Vec<Tensor>| -> Option<usize> {
        if let Some(&i) = const_index.get(name) {
            return Some(i);
        }
        let Some(Value::Const(t)) = analysis.values.get(name) else {
            return None;
        };
        consts.push(t.clone());
        const_index.insert(name.to_string(), consts.len() - 1);
        Some(consts.len() - 1)
    };
    let region_of = |v: usize| -> Region {
        let b = best.buffer_of[v];
        Region {
            offset: best.offsets[b],
            len: values.facts[v].byte_size(),
        }
    };

    let mut steps = Vec::with_capacity(best.order.len());
    let mut nodes = Vec::with_capacity(best.order.len());
    let mut totals = Totals {
        folded_nodes: analysis.folded,
        ..Totals::default()
    };
    let mut weight_consts: HashSet<usize> = HashSet::new();
    let mut counted_params: HashSet<String> = HashSet::new();
    let mut steps_src: Vec<Option<analyze::Step>> = analysis.steps.into_iter().map(Some).collect();
    for &s in &best.order {
        let step = steps_src[s]
            .take()
            .ok_or_else(|| CompileError::Internal("step scheduled twice".into()))?;
        let mut regions: Vec<Region> = Vec::new();
        let region_index = |r: Region, regions: &mut Vec<Region>| -> usize {
            regions.iter().position(|x| *x == r).unwrap_or_else(|| {
                regions.push(r);
                regions.len() - 1
            })
        };
        let mut inputs: SmallVec<[(InputSlot, whittle_ir::DType); 4]> = SmallVec::new();
        let mut params = 0usize;
        let aliased_k = best.inplace[s]
            .then(|| step.kernel.inplace_input())
            .flatten();
        for (k, name) in step.node.inputs.iter().enumerate() {
            if name.is_empty() {
                inputs.push((InputSlot::Empty, whittle_ir::DType::F32));
            } else if let Some(v) = step_inputs[s][k] {
                let dt = values.facts[v].dtype;
                let updated_here = state_pairs
                    .iter()
                    .any(|&(vin, vout)| vin == v && sched[s].writes.contains(&vout));
                if updated_here && step_inputs[s].iter().filter(|x| **x == Some(v)).count() > 1 {
                    return Err(CompileError::Input {
                        name: name.clone(),
                        msg: format!(
                            "node '{}' reads this state input twice while updating it",
                            step.node.name
                        ),
                    });
                }
                if aliased_k == Some(k) || updated_here {
                    inputs.push((InputSlot::Aliased, dt));
                } else if values.facts[v].byte_size() == 0 {
                    inputs.push((InputSlot::Empty, dt));
                } else {
                    inputs.push((
                        InputSlot::Region(region_index(region_of(v), &mut regions)),
                        dt,
                    ));
                }
            } else {
                let Some(Value::Const(t)) = analysis.values.get(name) else {
                    return Err(CompileError::Internal(format!(
                        "input '{name}' has no value"
                    )));
                };
                if t.dtype().is_float() {
                    params += t.numel();
                    if counted_params.insert(name.clone()) {
                        totals.params += t.numel();
                    }
                }
                if step.kernel.absorbed_inputs().contains(&k) {
                    // The kernel holds this constant in its own layout.
                    inputs.push((InputSlot::Empty, t.dtype()));
                } else {
                    let c = const_id(name, &mut consts).ok_or_else(|| {
                        CompileError::Internal(format!("input '{name}' has no value"))
                    })?;
                    if weight_consts.insert(c) {
                        totals.weight_bytes += consts[c].byte_size();
                    }
                    inputs.push((InputSlot::Const(c), consts[c].dtype()));
                }
            }
        }
        let mut outputs: SmallVec<[(usize, whittle_ir::DType); 2]> = SmallVec::new();
        let mut output_facts = Vec::new();
        for &w in &sched[s].writes {
            // Empty tensors own no bytes; they get an empty slice at run time.
            let ri = if values.facts[w].byte_size() == 0 {
                EMPTY_REGION
            } else {
                region_index(region_of(w), &mut regions)
            };
            outputs.push((ri, values.facts[w].dtype));
            output_facts.push(values.facts[w].clone());
        }
        let scratch = best.scratch_of[s].map(|b| {
            region_index(
                Region {
                    offset: best.offsets[b],
                    len: best.buffers[b].size,
                },
                &mut regions,
            )
        });
        // Sort regions by offset and remap indices.
        let mut sorted: Vec<usize> = (0..regions.len()).collect();
        sorted.sort_by_key(|&i| regions[i].offset);
        let mut remap = vec![0usize; regions.len()];
        for (new, &old) in sorted.iter().enumerate() {
            remap[old] = new;
        }
        for (slot, _) in inputs.iter_mut() {
            if let InputSlot::Region(r) = slot {
                *r = remap[*r];
            }
        }
        outputs
            .iter_mut()
            .filter(|(r, _)| *r != EMPTY_REGION)
            .for_each(|(r, _)| *r = remap[*r]);
        let scratch = scratch.map(|r| remap[r]);
        let regions: SmallVec<[Region; 8]> = sorted.iter().map(|&i| regions[i]).collect();
        for pair in regions.windows(2) {
            if pair[0].offset + pair[0].len > pair[1].offset {
                return Err(CompileError::Internal(format!(
                    "overlapping regions in step '{}'",
                    step.node.name
                )));
            }
        }
        let macs = step.kernel.macs();
        totals.macs += macs;
        totals.packed_weight_bytes += step.kernel.weight_bytes();
        nodes.push(NodeReport {
            name: step.node.name.clone(),
            op: step.node.op_type.clone(),
            kernel: step.kernel.name(),
            output_shapes: output_facts.iter().map(|f| f.shape.clone()).collect(),
            output_dtypes: output_facts
                .iter()
                .map(|f| f.dtype.name().to_string())
                .collect(),
            params,
            macs,
            activation_bytes: output_facts.iter().map(Fact::byte_size).sum(),
            in_place: best.inplace[s],
        });
        steps.push(PlanStep {
            name: step.node.name,
            kernel: step.kernel,
            regions,
            inputs,
            outputs,
            scratch,
        });
    }
    let is_state = |v: usize| state_pairs.iter().any(|&(vin, vout)| vin == v || vout == v);
    let states = analysis
        .inputs
        .iter()
        .filter(|(name, _)| is_state(values.index[name]))
        .map(|(name, fact)| {
            let info = IoInfo {
                name: name.clone(),
                fact: fact.clone(),
            };
            (info, region_of(values.index[name]))
        })
        .collect();
    let liveness = liveness(best, values, &analysis.inputs, &steps, &is_state);
    let inputs = analysis
        .inputs
        .iter()
        .filter(|(name, _)| !is_state(values.index[name]))
        .map(|(name, fact)| {
            let v = values.index[name];
            (
                IoInfo {
                    name: name.clone(),
                    fact: fact.clone(),
                },
                region_of(v),
            )
        })
        .collect();
    let mut outputs = Vec::new();
    for o in &graph.outputs {
        let (fact, src) = if let Some(&v) = values.index.get(&o.name) {
            (values.facts[v].clone(), OutputSource::Arena(region_of(v)))
        } else {
            let c = const_id(&o.name, &mut consts).ok_or_else(|| {
                CompileError::Internal(format!("output '{}' has no value", o.name))
            })?;
            (
                Fact::new(consts[c].dtype(), consts[c].shape().to_vec()),
                OutputSource::Const(c),
            )
        };
        outputs.push((
            IoInfo {
                name: o.name.clone(),
                fact,
            },
            src,
        ));
    }
    let memory = MemoryStats {
        arena: best.arena,
        lower_bound: memory::lower_bound(&best.buffers),
        naive: memory::naive_total(&best.buffers) + inplace_savings(best, values),
        weights: totals.weight_bytes,
        packed_weights: totals.packed_weight_bytes,
    };
    totals.nodes = steps.len();
    totals.arena_bytes = memory.arena;
    totals.arena_lower_bound = memory.lower_bound;
    totals.naive_activation_bytes = memory.naive;
    totals.schedule = schedule_name.to_string();
    Ok(Plan {
        steps,
        arena: vec![ArenaBlock::ZERO; best.arena.div_ceil(memory::ALIGN)],
        consts,
        inputs,
        outputs,
        states,
        liveness,
        par,
        memory,
        report: PlanReport {
            passes: Vec::new(),
            nodes,
            totals,
        },
    })
}

/// Lifetime and place of every run-time value and workspace of the chosen
/// layout, for memory reports.
fn liveness(
    best: &Layout,
    values: &ValueTable,
    inputs: &[(String, Fact)],
    steps: &[PlanStep],
    is_state: &dyn Fn(usize) -> bool,
) -> Vec<LiveValue> {
    let mut names = vec![String::new(); values.facts.len()];
    for (name, &v) in &values.index {
        names[v] = name.clone();
    }
    let mut out = Vec::new();
    let n_inputs = inputs.len();
    let end_time = best.order.len() + 1;
    for (v, name) in names.into_iter().enumerate() {
        let b = best.buffer_of[v];
        if b == usize::MAX {
            continue;
        }
        let kind = if is_state(v) && v >= n_inputs {
            // The updated value lives in its input's region: listed once.
            continue;
        } else if is_state(v) {
            LiveKind::State
        } else if v < n_inputs {
            LiveKind::Input
        } else {
            LiveKind::Value
        };
        out.push(LiveValue {
            name,
            bytes: values.facts[v].byte_size(),
            offset: best.offsets[b],
            start: best.birth[v],
            end: if kind == LiveKind::State {
                end_time
            } else {
                best.last[v].max(best.birth[v])
            },
            kind,
        });
    }
    for (p, &s) in best.order.iter().enumerate() {
        if let Some(b) = best.scratch_of[s] {
            out.push(LiveValue {
                name: format!("{} (workspace)", steps.get(p).map_or("", |x| &x.name)),
                bytes: best.buffers[b].size,
                offset: best.offsets[b],
                start: p + 1,
                end: p + 1,
                kind: LiveKind::Scratch,
            });
        }
    }
    out
}
