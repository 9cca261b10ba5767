//! [`Patch`]: one edit of a [`Graph`], computed by looking at the graph and
//! applied in one step.
//!
//! Passes decide what to change while the graph is immutable (maps of
//! producers and consumers stay valid, a rule that gives up leaves nothing
//! half done), record it in a patch, then [`Patch::apply`] it. Applying keeps
//! the graph's invariants: new value names are fresh, node indices in the
//! patch all refer to the graph as it was, the node list stays
//! topologically sorted, domains of new nodes are declared, and (when asked)
//! initializers nothing reads any more are dropped.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{FreshNames, Graph, Node, Tensor};

/// How one value is rewired (see [`Patch::redirect`] and
/// [`Patch::rename_output`]).
#[derive(Clone, Debug)]
enum Rewire {
    /// Reads of `.0` read `.1`.
    Reads(String, String),
    /// The node writing `.0` writes `.1`.
    Writes(String, String),
}

/// A set of edits to a [`Graph`], applied together by [`Patch::apply`].
///
/// Node indices given to a patch are indices in the graph it is applied to,
/// before any of the patch's edits. New value names come from
/// [`Patch::fresh_name`] and [`Patch::add_initializer`]: with
/// [`Patch::new`] they are placeholders that `apply` replaces by fresh names
/// wherever the patch wrote them (cheap, for patches computed speculatively
/// and often thrown away); with [`Patch::for_graph`] they are final names
/// right away (for callers that derive further names from them).
///
/// `apply` works in this order: new names are chosen (against the graph as
/// it is), initializers are added or set, nodes are replaced in place,
/// redirects and output renames run over the graph's nodes (replaced ones
/// included, inserted ones not: the patch wrote those as they should be),
/// nodes are removed and inserted, unread initializers are dropped if
/// asked, and the topological order is restored if the edit broke it.
#[derive(Clone, Debug, Default)]
pub struct Patch {
    /// Final names handed out so far (`Patch::for_graph`), else `None`.
    names: Option<FreshNames>,
    /// Placeholders to resolve on apply: (placeholder, base), in call order.
    fresh: Vec<(String, String)>,
    /// Initializers to add or set: (name or placeholder, value).
    inits: Vec<(String, Tensor)>,
    /// Nodes replaced in place, by index.
    replace: BTreeMap<usize, Node>,
    /// Node indices to delete.
    remove: HashSet<usize>,
    /// Nodes inserted before / after a node index, in call order.
    before: BTreeMap<usize, Vec<Node>>,
    after: BTreeMap<usize, Vec<Node>>,
    /// Nodes appended at the end of the list, in call order.
    append: Vec<Node>,
    /// Value rewiring, in call order.
    rewires: Vec<Rewire>,
    /// Drop initializers nothing reads after applying.
    prune: bool,
}

impl Patch {
    /// An empty patch handing out placeholder names, resolved on apply.
    pub fn new() -> Patch {
        Patch::default()
    }

    /// An empty patch for `graph` handing out final names at once (this
    /// collects the graph's names, O(size of the graph)). Apply it to
    /// `graph`, not to another one: the names are fresh only there.
    pub fn for_graph(graph: &Graph) -> Patch {
        Patch {
            names: Some(FreshNames::of(graph)),
            ..Patch::default()
        }
    }

    /// True when applying the patch would change nothing.
    pub fn is_empty(&self) -> bool {
        self.inits.is_empty()
            && self.replace.is_empty()
            && self.remove.is_empty()
            && self.before.is_empty()
            && self.after.is_empty()
            && self.append.is_empty()
            && self.rewires.is_empty()
            && !self.prune
    }

    /// A new value name starting with `base` (`base`, `base_1`, ...),
    /// unused in the graph and by the patch's other new names. With
    /// [`Patch::new`], a placeholder to write in the patch's nodes and
    /// rewires; `apply` replaces it there.
    pub fn fresh_name(&mut self, base: &str) -> String {
        if let Some(names) = &mut self.names {
            return names.fresh(base);
        }
        let ph = format!("\u{0}patch{}", self.fresh.len());
        self.fresh.push((ph.clone(), base.to_string()));
        ph
    }

    /// Adds initializer `t` under a fresh name starting with `base` and
    /// returns that name (a placeholder with [`Patch::new`], see
    /// [`Patch::fresh_name`]). Initializers are appended in call order.
    pub fn add_initializer(&mut self, base: &str, t: Tensor) -> String {
        let name = self.fresh_name(base);
        self.inits.push((name.clone(), t));
        name
    }

    /// Sets initializer `name` to `t`: replaces the value of an existing
    /// one (keeping its place in file order), or adds it at the end under
    /// exactly this name (the caller makes sure it is unused).
    pub fn set_initializer(&mut self, name: &str, t: Tensor) {
        self.inits.push((name.to_string(), t));
    }

    /// Replaces node `i` by `node`, at the same place in the list. A later
    /// replacement of the same index wins.
    pub fn replace_node(&mut self, i: usize, node: Node) {
        self.replace.insert(i, node);
    }

    /// Deletes node `i` (removal wins over a replacement of the same index).
    pub fn remove_node(&mut self, i: usize) {
        self.remove.insert(i);
    }

    /// Inserts `node` right before node `i` (after earlier insertions there).
    pub fn insert_node_before(&mut self, i: usize, node: Node) {
        self.before.entry(i).or_default().push(node);
    }

    /// Inserts `node` right after node `i` (after earlier insertions there).
    pub fn insert_node_after(&mut self, i: usize, node: Node) {
        self.after.entry(i).or_default().push(node);
    }

    /// Appends `node` at the end of the node list; `apply` then moves it
    /// wherever the topological order needs it.
    pub fn add_node(&mut self, node: Node) {
        self.append.push(node);
    }

    /// Makes every node of the graph that reads `from` read `to` instead.
    /// Nodes the patch inserts are left as written; graph outputs keep
    /// their names (see [`Patch::rename_output`]).
    pub fn redirect(&mut self, from: &str, to: &str) {
        self.rewires
            .push(Rewire::Reads(from.to_string(), to.to_string()));
    }

    /// Makes the node of the graph that writes `from` write `to` instead
    /// (readers are not changed: combine with [`Patch::redirect`] to
    /// rename a value everywhere). Nodes the patch inserts are left as
    /// written.
    pub fn rename_output(&mut self, from: &str, to: &str) {
        self.rewires
            .push(Rewire::Writes(from.to_string(), to.to_string()));
    }

    /// After applying, drops every initializer that no node and no graph
    /// output reads (as [`Graph::prune_unused_initializers`]).
    pub fn prune_initializers(&mut self) {
        self.prune = true;
    }

    /// The nodes the patch writes (replacements and insertions), e.g. to
    /// check that a runtime has kernels for them. Names may be placeholders.
    pub fn new_nodes(&self) -> impl Iterator<Item = &Node> {
        self.replace
            .values()
            .chain(self.before.values().flatten())
            .chain(self.after.values().flatten())
            .chain(&self.append)
    }

    /// Applies the patch to `graph` (the graph its indices refer to).
    ///
    /// # Panics
    ///
    /// When a node index is out of range for `graph`.
    pub fn apply(self, graph: &mut Graph) {
        let Patch {
            names: _,
            fresh,
            inits,
            replace,
            remove,
            mut before,
            mut after,
            mut append,
            rewires,
            prune,
        } = self;
        let n = graph.nodes.len();
        let highest = [
            replace.keys().next_back(),
            remove.iter().max(),
            before.keys().next_back(),
            after.keys().next_back(),
        ];
        if let Some(&i) = highest.into_iter().flatten().max() {
            assert!(i < n, "patch edits node {i} of a graph with {n} nodes");
        }
        let real: HashMap<String, String> = if fresh.is_empty() {
            HashMap::new()
        } else {
            let mut taken = FreshNames::of(graph);
            fresh
                .into_iter()
                .map(|(ph, base)| {
                    let name = taken.fresh(&base);
                    (ph, name)
                })
                .collect()
        };
        let resolve = |s: &mut String| {
            if let Some(r) = real.get(s.as_str()) {
                s.clone_from(r);
            }
        };
        let resolve_node = |node: &mut Node| {
            node.inputs.iter_mut().for_each(resolve);
            node.outputs.iter_mut().for_each(resolve);
        };
        for (mut name, t) in inits {
            resolve(&mut name);
            graph.initializers.insert(name, t);
        }
        for (i, mut node) in replace {
            resolve_node(&mut node);
            declare_domain(graph, &node.domain);
            graph.nodes[i] = node;
        }
        for rw in rewires {
            match rw {
                Rewire::Reads(from, mut to) => {
                    resolve(&mut to);
                    graph.replace_uses(&from, &to);
                }
                Rewire::Writes(from, mut to) => {
                    resolve(&mut to);
                    for o in graph.nodes.iter_mut().flat_map(|n| &mut n.outputs) {
                        if *o == from {
                            o.clone_from(&to);
                        }
                    }
                }
            }
        }
        for m in before
            .values_mut()
            .chain(after.values_mut())
            .flatten()
            .chain(append.iter_mut())
        {
            resolve_node(m);
            declare_domain(graph, &m.domain);
        }
        let old = std::mem::take(&mut graph.nodes);
        let mut nodes = Vec::with_capacity(old.len() + append.len());
        for (i, node) in old.into_iter().enumerate() {
            nodes.extend(before.remove(&i).into_iter().flatten());
            if !remove.contains(&i) {
                nodes.push(node);
            }
            nodes.extend(after.remove(&i).into_iter().flatten());
        }
        nodes.extend(append);
        graph.nodes = nodes;
        if prune {
            graph.prune_unused_initializers();
        }
        graph.restore_order();
    }
}

/// Declares `domain` (version 1) if the graph does not yet.
fn declare_domain(g: &mut Graph, domain: &str) {
    if !domain.is_empty() && !g.opsets.contains_key(domain) {
        g.opsets.insert(domain.to_string(), 1);
    }
}

impl Graph {
    /// Applies `patch` to this graph: `patch.apply(self)`.
    pub fn apply(&mut self, patch: Patch) {
        patch.apply(self);
    }
}

#[cfg(test)]
#[path = "patch_tests.rs"]
mod tests;
