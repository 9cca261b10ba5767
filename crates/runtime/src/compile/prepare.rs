//! Phase 1, prepare: the caller's graph → the graph compile lowers.

use std::collections::HashMap;

use whittle_ir::{passes, Graph, Tensor};

use super::{analyze, state, CompileError, CompileOptions, StatePair};
use crate::report::PassSummary;
use crate::Registry;

/// Takes the caller's graph, options, registry and state pairs; gives the
/// graph to lower, with its constant inputs frozen into initializers, its
/// state outputs declared, its nodes topologically sorted and every op
/// checked against `registry` (all unsupported ops are reported at once),
/// then simplified by the inference passes when `opts.simplify` is set,
/// with a summary of each pass.
pub(super) fn prepare(
    graph: &Graph,
    opts: &CompileOptions,
    registry: &Registry,
    state: &[StatePair],
) -> Result<(Graph, Vec<PassSummary>), CompileError> {
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
    let summaries = pass_reports
        .iter()
        .map(|r| PassSummary {
            pass: r.pass.to_string(),
            removed: r.removed,
        })
        .collect();
    Ok((graph, summaries))
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
