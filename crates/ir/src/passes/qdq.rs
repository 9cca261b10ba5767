//! `fuse_qdq`: rewrites QDQ patterns (`DequantizeLinear -> float op ->
//! QuantizeLinear`) into integer QOperator nodes.
//!
//! Every rewrite checks all of its conditions first (constant scales and
//! zero points, scalar activation parameters, int8 weights, single
//! consumers, no graph output in the middle of the pattern) and leaves the
//! float path untouched when one fails, so the graph always stays valid.
//! New nodes take the float op's name and write the final Q's output, so
//! graph outputs and names survive. DQ nodes left without readers are
//! removed at the end, as are the initializers that only they read.

mod act;
mod linear;
mod other;
mod pattern;
#[cfg(test)]
mod tests;

use std::collections::HashSet;

use super::PassReport;
use crate::{Graph, Patch};
use pattern::Maps;

/// Domain of the onnxruntime contrib ops the pass emits (QGemm, QLinearAdd...).
pub const MS_DOMAIN: &str = "com.microsoft";
/// Domain of whittle's own ops (QLinearLookup, QBlockLinear).
pub const WHITTLE_DOMAIN: &str = "whittle";

/// A rule: looks at node `i` and proposes a rewrite.
type Rule = fn(&Graph, &Maps<'_>, usize) -> Option<Patch>;

/// Rules in priority order: fusing an activation into a QLinear producer
/// beats a lookup table for it, and real QOperator ops beat passing int8
/// through data-movement ops.
const RULES: &[Rule] = &[
    other::cancel_dq_q,
    act::fuse_act_into_producer,
    linear::conv,
    linear::matmul,
    linear::gemm,
    other::binary,
    other::concat,
    other::pool,
    other::passthrough,
    other::unary,
];

/// Rewrites QDQ patterns into QOperator nodes (see the module doc). Pure
/// and idempotent; graphs with a default opset below 10 (no Q/DQ) are
/// returned unchanged.
pub fn fuse_qdq(graph: Graph) -> (Graph, PassReport) {
    fuse_qdq_with(graph, &|_, _| true)
}

/// [`fuse_qdq`], emitting only ops for which `supported(domain, op_type)`
/// holds: a pattern whose integer op has no kernel stays on the float path.
pub fn fuse_qdq_with(
    mut graph: Graph,
    supported: &dyn Fn(&str, &str) -> bool,
) -> (Graph, PassReport) {
    let mut report = PassReport {
        pass: "fuse-qdq",
        removed: 0,
        rewritten: 0,
    };
    if graph.opset() < 10 {
        return (graph, report);
    }
    let original = graph.clone();
    let used_before: HashSet<String> = used_initializers(&graph);
    let before = graph.nodes.len();
    loop {
        let patch = {
            let maps = Maps::new(&graph);
            let ok = |p: &Patch| p.new_nodes().all(|n| supported(&n.domain, &n.op_type));
            (0..graph.nodes.len()).find_map(|i| {
                RULES
                    .iter()
                    .find_map(|r| r(&graph, &maps, i).filter(|p| ok(p)))
            })
        };
        let Some(patch) = patch else { break };
        graph.apply(patch);
        report.rewritten += 1;
    }
    remove_dead_dq(&mut graph);
    let used_after = used_initializers(&graph);
    graph
        .initializers
        .retain(|k, _| !used_before.contains(k) || used_after.contains(k));
    // Patches restore the topological order when a rewrite reads a value
    // produced by a node placed later (a Q's zero point from a Constant,
    // say); this also checks that the result is a valid graph.
    if graph.topo_sort().is_err() {
        // Rewrites only rewire existing values, so this is a bug; the
        // float graph is still correct.
        return (
            original,
            PassReport {
                pass: "fuse-qdq",
                removed: 0,
                rewritten: 0,
            },
        );
    }
    report.removed = before.saturating_sub(graph.nodes.len());
    (graph, report)
}

fn used_initializers(g: &Graph) -> HashSet<String> {
    let mut used: HashSet<String> = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter().cloned())
        .collect();
    used.extend(g.outputs.iter().map(|o| o.name.clone()));
    used.retain(|n| g.initializers.contains_key(n));
    used
}

/// Drops DequantizeLinear nodes whose output nothing reads any more.
fn remove_dead_dq(g: &mut Graph) {
    loop {
        let mut patch = Patch::new();
        {
            let read: HashSet<&str> = g
                .nodes
                .iter()
                .flat_map(|n| n.inputs.iter().map(String::as_str))
                .chain(g.outputs.iter().map(|o| o.name.as_str()))
                .collect();
            for (i, n) in g.nodes.iter().enumerate() {
                if n.op_type == "DequantizeLinear"
                    && n.domain.is_empty()
                    && n.outputs.iter().all(|o| !read.contains(o.as_str()))
                {
                    patch.remove_node(i);
                }
            }
        }
        if patch.is_empty() {
            break;
        }
        g.apply(patch);
    }
}
