//! Which initializers train, from the simple flags (`--trainable`,
//! `--last-k`, `--bias-only`). A small local stand-in for
//! `whittle_train::UpdateScheme`, which replaces it when merged.

use anyhow::{bail, Result};
use whittle::Graph;
use whittle_train::default_trainable;

/// The update-scheme flags.
#[derive(Debug, Default)]
pub struct Selection<'a> {
    /// Initializer or node names (a node name means its learnable inputs).
    pub names: &'a [String],
    /// Only the last K layers with learnable weights.
    pub last_k: Option<usize>,
    /// Only biases (input 2 of Conv, Gemm and BatchNormalization).
    pub bias_only: bool,
}

/// The learnable initializers of each node that has any, in graph order.
fn layers(graph: &Graph) -> Vec<(&str, Vec<String>)> {
    let learnable = default_trainable(graph);
    graph
        .nodes
        .iter()
        .filter_map(|n| {
            let w: Vec<String> = n
                .inputs
                .iter()
                .filter(|i| learnable.contains(i))
                .cloned()
                .collect();
            (!w.is_empty()).then_some((n.name.as_str(), w))
        })
        .collect()
}

/// Is `name` a bias: input 2 of a Conv, ConvTranspose, Gemm or
/// BatchNormalization node?
fn is_bias(graph: &Graph, name: &str) -> bool {
    graph.nodes.iter().any(|n| {
        matches!(
            n.op_type.as_str(),
            "Conv" | "ConvTranspose" | "Gemm" | "BatchNormalization"
        ) && n.inputs.get(2).is_some_and(|i| i == name)
    })
}

/// Resolves the flags to trainable initializer names, in graph order.
pub fn trainable(graph: &Graph, sel: &Selection) -> Result<Vec<String>> {
    let mut graph = graph.clone();
    graph.topo_sort()?;
    let layers = layers(&graph);
    let mut chosen: Vec<String> = if sel.names.is_empty() {
        layers.iter().flat_map(|(_, w)| w.clone()).collect()
    } else {
        let mut out = Vec::new();
        let mut unknown = Vec::new();
        for name in sel.names {
            if graph.initializers.contains_key(name) {
                out.push(name.clone());
            } else if let Some((_, w)) = layers.iter().find(|(n, _)| n == name) {
                out.extend(w.iter().cloned());
            } else {
                unknown.push(name.as_str());
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = layers.iter().map(|(n, _)| *n).collect();
            bail!(
                "--trainable: no initializer or layer named {} (layers with weights: {})",
                unknown.join(", "),
                known.join(", ")
            );
        }
        out
    };
    if let Some(k) = sel.last_k {
        if k == 0 || k > layers.len() {
            bail!(
                "--last-k {k}: the model has {} layers with weights; K must be in 1..={}",
                layers.len(),
                layers.len()
            );
        }
        let last: Vec<&String> = layers[layers.len() - k..]
            .iter()
            .flat_map(|(_, w)| w)
            .collect();
        chosen.retain(|w| last.contains(&w));
    }
    if sel.bias_only {
        chosen.retain(|w| is_bias(&graph, w));
    }
    let mut seen = std::collections::HashSet::new();
    chosen.retain(|w| seen.insert(w.clone()));
    if chosen.is_empty() {
        bail!("the update scheme selects no trainable tensor");
    }
    Ok(chosen)
}
