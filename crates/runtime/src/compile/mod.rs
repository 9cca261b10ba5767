//! Graph → [`Plan`]: simplify, resolve shapes, fold constants, build kernels,
//! schedule, and place every run-time tensor in one arena.

mod analyze;
mod facts;
pub mod memory;
mod schedule;
mod state;

use std::collections::HashMap;

use smallvec::SmallVec;
use whittle_ir::{passes, Graph, IrError, Tensor};

use crate::plan::{
    ArenaBlock, InputSlot, IoInfo, LiveKind, LiveValue, MemoryStats, OutputSource, PlanStep,
    Region, EMPTY_REGION,
};
use crate::report::{NodeReport, PassSummary, PlanReport, Totals};
use crate::{Fact, OpError, Parallel, Plan, Registry};
use analyze::{Analysis, Value};
pub use facts::{infer_facts, Facts, Known};
use memory::Buffer;
use schedule::SchedStep;
pub use state::StatePair;

/// Largest element count of any tensor compile will plan (2^31).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 31;

/// Largest byte size of any tensor compile will plan or fold (2 GiB): a
/// hostile model cannot make compile allocate more than this per tensor.
pub const MAX_TENSOR_BYTES: usize = 1 << 31;

/// Largest arena compile will allocate (4 GiB), activations and kernel
/// workspaces together.
pub const MAX_ARENA_BYTES: usize = 1 << 32;

/// Options for [`compile`].
#[derive(Clone, Debug)]
pub struct CompileOptions {
    /// Static shapes for graph inputs, overriding symbolic or unknown dims.
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Threads kernels may use (1 = the calling thread only).
    pub threads: usize,
    /// Run the simplification passes (identity removal, BatchNorm folding,
    /// activation fusion) before building kernels.
    pub simplify: bool,
    /// Graph inputs frozen to a value at compile time (e.g. a shape tensor
    /// fed as an input): they become constants and fold like initializers.
    pub constant_inputs: HashMap<String, Tensor>,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            input_shapes: HashMap::new(),
            threads: 1,
            simplify: true,
            constant_inputs: HashMap::new(),
        }
    }
}

/// Why a graph could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Ops without an implementation, with the nodes using each.
    #[error("unsupported ops: {}", format_unsupported(.0))]
    Unsupported(Vec<(String, Vec<String>)>),
    /// A graph input whose shape cannot be resolved.
    #[error("graph input '{name}': {msg}")]
    Input { name: String, msg: String },
    /// A node rejected at build time.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The graph itself is invalid.
    #[error(transparent)]
    Ir(#[from] IrError),
    /// A node failed while being folded into a constant.
    #[error("node '{node}' failed while folding constants: {msg}")]
    Fold { node: String, msg: String },
    /// The thread pool could not be created.
    #[error("cannot start {threads} threads: {msg}")]
    Threads { threads: usize, msg: String },
    /// The plan would exceed a memory limit.
    #[error("{0}")]
    Limit(String),
    /// A broken invariant inside whittle.
    #[error("internal error: {0}")]
    Internal(String),
}

fn format_unsupported(ops: &[(String, Vec<String>)]) -> String {
    ops.iter()
        .map(|(op, nodes)| {
            let shown: Vec<&str> = nodes.iter().take(5).map(String::as_str).collect();
            let more = if nodes.len() > 5 {
                format!(", +{} more", nodes.len() - 5)
            } else {
                String::new()
            };
            format!("{op} (nodes: {}{more})", shown.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Compiles `graph` into a runnable [`Plan`].
pub fn compile(graph: &Graph, opts: &CompileOptions) -> Result<Plan, CompileError> {
    compile_with(graph, opts, &Registry::standard())
}

/// [`compile`] with a custom op registry.
pub fn compile_with(
    graph: &Graph,
    opts: &CompileOptions,
    registry: &Registry,
) -> Result<Plan, CompileError> {
    compile_with_state(graph, opts, registry, &[])
}

/// [`compile_with`] for a graph with persistent state (a training graph):
/// each [`StatePair`]'s input and output share one arena region that lives
/// across runs. The step writing a state output runs after every other
/// reader of the state input and updates it in place; state inputs are not
/// among [`Plan::inputs`] but are read and written with [`Plan::state`] and
/// [`Plan::set_state`]. State outputs the graph does not list as outputs
/// are added after its own outputs.
pub fn compile_with_state(
    graph: &Graph,
    opts: &CompileOptions,
    registry: &Registry,
    state: &[StatePair],
) -> Result<Plan, CompileError> {
    let mut graph = graph.clone();
    freeze_inputs(&mut graph, &opts.constant_inputs)?;
    state::prepare(&mut graph, state)?;
    graph.topo_sort()?;
    let unsupported = analyze::unsupported_ops(&graph, registry);
    if !unsupported.is_empty() {
        return Err(CompileError::Unsupported(unsupported));
    }
    let mut pass_reports = Vec::new();
    if opts.simplify {
        let supported = |domain: &str, op: &str| registry.get(domain, op).is_some();
        let (g, reports) = passes::simplify_for_inference_with(graph, &supported);
        graph = g;
        pass_reports = reports;
    }
    let overrides: HashMap<String, Vec<usize>> = opts
        .input_shapes
        .iter()
        .filter(|(k, _)| !opts.constant_inputs.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let inputs = analyze::resolve_inputs(&graph, &overrides)?;
    let live = analyze::live_nodes(&graph);
    let analysis = analyze::analyze(&graph, registry, inputs, live)?;
    let par = Parallel::new(opts.threads).map_err(|msg| CompileError::Threads {
        threads: opts.threads,
        msg,
    })?;
    let mut plan = lower(&graph, analysis, par, state)?;
    plan.report.passes = pass_reports
        .iter()
        .map(|r| PassSummary {
            pass: r.pass.to_string(),
            removed: r.removed,
        })
        .collect();
    Ok(plan)
}

/// Turns the named graph inputs into initializers holding the given values.
fn freeze_inputs(graph: &mut Graph, values: &HashMap<String, Tensor>) -> Result<(), CompileError> {
    for (name, t) in values {
        let pos = graph
            .inputs
            .iter()
            .position(|v| &v.name == name)
            .ok_or_else(|| CompileError::Input {
                name: name.clone(),
                msg: "cannot freeze: no such graph input".into(),
            })?;
        let vi = &graph.inputs[pos];
        if vi.dtype != t.dtype() {
            return Err(CompileError::Input {
                name: name.clone(),
                msg: format!(
                    "frozen value is {} but the input is {}",
                    t.dtype(),
                    vi.dtype
                ),
            });
        }
        graph.inputs.remove(pos);
        graph.initializers.insert(name.clone(), t.clone());
    }
    Ok(())
}

/// Run-time values numbered densely, with sizes.
struct ValueTable {
    index: HashMap<String, usize>,
    facts: Vec<Fact>,
}

impl ValueTable {
    fn add(&mut self, name: String, fact: Fact) -> usize {
        let id = self.facts.len();
        self.index.insert(name, id);
        self.facts.push(fact);
        id
    }
}

/// A candidate memory layout for one schedule.
struct Layout {
    order: Vec<usize>,
    /// Buffer of each run-time value.
    buffer_of: Vec<usize>,
    /// Scratch buffer of each step (by step index), if any.
    scratch_of: Vec<Option<usize>>,
    /// Whether each step (by index) runs in place.
    inplace: Vec<bool>,
    buffers: Vec<Buffer>,
    offsets: Vec<usize>,
    arena: usize,
    /// Time each value is written (0 for graph inputs) and last read.
    birth: Vec<usize>,
    last: Vec<usize>,
}

/// Computes buffers (with in-place merging) and offsets for `order`.
fn layout(
    order: Vec<usize>,
    sched: &[SchedStep],
    analysis: &Analysis,
    values: &ValueTable,
    step_inputs: &[Vec<Option<usize>>],
    pinned: &[bool],
    state_of: &[Option<usize>],
) -> Layout {
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

/// Turns an analysed graph into a plan.
fn lower(
    graph: &Graph,
    analysis: Analysis,
    par: Parallel,
    state: &[StatePair],
) -> Result<Plan, CompileError> {
    // Number the run-time values: graph inputs, then step outputs.
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
    let mut sizes: Vec<usize> = values.facts.iter().map(Fact::byte_size).collect();
    let state_pairs = state_values(state, &values, analysis.inputs.len())?;
    let mut state_of = vec![None; values.facts.len()];
    for &(vin, vout) in &state_pairs {
        pinned[vin] = true;
        pinned[vout] = true;
        state_of[vout] = Some(vin);
        // Updating in place allocates nothing.
        sizes[vout] = 0;
    }
    let after = state::order_edges(&sched, &state_pairs);
    let output_values: Vec<usize> = graph
        .outputs
        .iter()
        .filter_map(|o| values.index.get(&o.name).copied())
        .collect();
    let candidates = [
        ("graph-order", schedule::graph_order(sched.len())),
        ("depth-first", schedule::depth_first(&sched, &output_values)),
        (
            "min-memory-greedy",
            schedule::greedy_min_memory(&sched, &sizes, &pinned, &after),
        ),
    ];
    let mut laid = Vec::new();
    for (name, order) in candidates {
        let order = state::constrain(&order, &sched, &after)?;
        let l = layout(
            order,
            &sched,
            &analysis,
            &values,
            &step_inputs,
            &pinned,
            &state_of,
        );
        laid.push((name, l));
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
    let mut weight_consts: std::collections::HashSet<usize> = std::collections::HashSet::new();
    let mut counted_params: std::collections::HashSet<String> = std::collections::HashSet::new();
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
    let liveness = liveness(&best, &values, &analysis.inputs, &steps, &is_state);
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
        naive: memory::naive_total(&best.buffers) + inplace_savings(&best, &values),
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

/// Bytes that in-place merging saved, so the naive figure counts every
/// intermediate separately.
fn inplace_savings(layout: &Layout, values: &ValueTable) -> usize {
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
