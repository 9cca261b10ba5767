//! Channel dependency analysis on an ONNX graph.
//!
//! Every output channel of a Conv/Gemm/MatMul with constant weights is an
//! *element*. A value that carries channels has a [`ChanMap`]: the axis and,
//! for every position along it, the element found there (positions may
//! repeat an element: Flatten spreads one channel over H*W features, a
//! depthwise multiplier over several outputs). Ops that tie channels
//! together (residual Add, Concat along another axis) join elements into
//! *classes* with a union-find; a class is removed or kept as a whole.
//! Every constant that must shrink with a class is recorded as a [`Slice`],
//! every integer that names a channel count as an [`Edit`]. Ops the tracer
//! does not understand *pin* the classes they read, so they are never
//! pruned: the result is always a valid model computing the same function
//! on the channels that remain.

use std::collections::{HashMap, HashSet};

use whittle_ir::ops::ChannelFlow;
use whittle_ir::{Graph, Node, Tensor};
use whittle_runtime::Known;

use crate::CompressError;

/// Static facts of every value (shape; value when constant).
#[path = "trace_shape.rs"]
mod shape_ops;

pub(crate) type Facts = HashMap<String, Known>;

/// Where a value's channels are.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ChanMap {
    /// The channel axis.
    pub axis: usize,
    /// Element at each position along `axis`.
    pub elems: Vec<usize>,
}

/// What a sliced constant is to its class (for importance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// The filter producing the channel (Conv out-channel, Gemm/MatMul
    /// column, depthwise filter).
    Filter,
    /// A consumer's weights reading the channel.
    Input,
    /// BatchNorm/InstanceNorm scale.
    NormScale,
    /// Biases, running statistics, per-channel constants.
    Other,
}

/// Constant input `input` of node `node` is sliced along `axis`: position
/// `p` stays iff the class of `elems[p]` is kept.
#[derive(Clone, Debug)]
pub(crate) struct Slice {
    pub node: usize,
    pub input: usize,
    pub axis: usize,
    pub elems: Vec<usize>,
    pub role: Role,
}

/// Where an integer that must be rewritten lives.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum IntSrc {
    /// A constant input of the node.
    Input(usize),
    /// An int attribute (`group`).
    AttrInt(&'static str),
    /// An ints attribute (`split`, `starts`, `ends`).
    AttrInts(&'static str),
}

/// Entry `index` of an integer constant becomes the number of kept
/// positions among `elems`.
#[derive(Clone, Debug)]
pub(crate) struct Edit {
    pub node: usize,
    pub src: IntSrc,
    pub index: usize,
    pub elems: Vec<usize>,
}

/// A set of elements created together: one producer's output channels,
/// or placeholders for channels of a value the tracer cannot follow.
#[derive(Clone, Debug)]
pub(crate) struct Space {
    /// The producing node, if any.
    pub node: Option<usize>,
    /// First element.
    pub first: usize,
    /// Number of elements.
    pub len: usize,
}

/// Channels that shrink together: spaces joined by shared classes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Group {
    /// Producing nodes, in graph order.
    pub layers: Vec<usize>,
    /// Class roots, in element order.
    pub classes: Vec<usize>,
}

/// The result of tracing a graph.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    parent: Vec<usize>,
    pinned: Vec<Option<String>>,
    space_of: Vec<usize>,
    pub spaces: Vec<Space>,
    pub maps: HashMap<String, ChanMap>,
    pub slices: Vec<Slice>,
    pub edits: Vec<Edit>,
    pub groups: Vec<Group>,
}

impl Trace {
    fn new_space(&mut self, node: Option<usize>, len: usize) -> Vec<usize> {
        let first = self.parent.len();
        let sid = self.spaces.len();
        self.spaces.push(Space { node, first, len });
        for e in first..first + len {
            self.parent.push(e);
            self.pinned.push(None);
            self.space_of.push(sid);
        }
        (first..first + len).collect()
    }

    fn find(&mut self, mut e: usize) -> usize {
        while self.parent[e] != e {
            self.parent[e] = self.parent[self.parent[e]];
            e = self.parent[e];
        }
        e
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The lower index stays root so classes follow graph order.
            let (lo, hi) = (ra.min(rb), ra.max(rb));
            self.parent[hi] = lo;
        }
    }

    fn pin(&mut self, elems: &[usize], reason: &str) {
        for &e in elems {
            if self.pinned[e].is_none() {
                self.pinned[e] = Some(reason.to_string());
            }
        }
    }

    /// The class (root element) of `e`; valid after [`Trace::finish`].
    pub fn class(&self, e: usize) -> usize {
        self.parent[e]
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Why class `root` may not be pruned, if so.
    pub fn pinned(&self, root: usize) -> Option<&str> {
        self.pinned[root].as_deref()
    }

    /// Resolves classes, moves pin reasons to the roots and builds the
    /// groups.
    pub fn finish(&mut self) {
        for e in 0..self.parent.len() {
            let r = self.find(e);
            self.parent[e] = r;
            if self.pinned[r].is_none() {
                self.pinned[r] = self.pinned[e].clone();
            }
        }
        // Spaces sharing a class form one group.
        let mut sp: Vec<usize> = (0..self.spaces.len()).collect();
        fn root(sp: &mut [usize], mut s: usize) -> usize {
            while sp[s] != s {
                sp[s] = sp[sp[s]];
                s = sp[s];
            }
            s
        }
        for e in 0..self.parent.len() {
            let (a, b) = (
                root(&mut sp, self.space_of[e]),
                root(&mut sp, self.space_of[self.parent[e]]),
            );
            if a != b {
                let (lo, hi) = (a.min(b), a.max(b));
                sp[hi] = lo;
            }
        }
        let mut index: HashMap<usize, usize> = HashMap::new();
        let mut groups: Vec<Group> = Vec::new();
        for s in 0..self.spaces.len() {
            let r = root(&mut sp, s);
            let gi = *index.entry(r).or_insert_with(|| {
                groups.push(Group::default());
                groups.len() - 1
            });
            let space = &self.spaces[s];
            if let Some(n) = space.node {
                groups[gi].layers.push(n);
            }
            for e in space.first..space.first + space.len {
                if self.parent[e] == e {
                    groups[gi].classes.push(e);
                }
            }
        }
        for g in &mut groups {
            g.layers.sort_unstable();
            g.layers.dedup();
        }
        self.groups = groups;
    }
}

/// Traces `g` (topologically sorted) with its `facts`. `keep` names nodes
/// whose output channels are pinned.
pub(crate) fn trace(g: &Graph, facts: &Facts, keep: &[String]) -> Result<Trace, CompressError> {
    let statics: HashSet<&str> = g
        .nodes
        .iter()
        .filter(|n| n.op_type == "Constant" && n.domain.is_empty())
        .flat_map(|n| n.outputs.iter().map(String::as_str))
        .chain(g.initializers.keys().map(String::as_str))
        .collect();
    let mut t = Tracer {
        g,
        facts,
        statics,
        tr: Trace::default(),
    };
    for (i, n) in g.nodes.iter().enumerate() {
        t.node(i, n)?;
    }
    for o in &g.outputs {
        if let Some(m) = t.tr.maps.get(&o.name).cloned() {
            t.tr.pin(&m.elems, &format!("reaches graph output '{}'", o.name));
        }
    }
    for name in keep {
        let reason = format!("kept by name ('{name}')");
        for (i, n) in g.nodes.iter().enumerate().filter(|(_, n)| &n.name == name) {
            let owned: Vec<usize> =
                t.tr.spaces
                    .iter()
                    .filter(|s| s.node == Some(i))
                    .flat_map(|s| s.first..s.first + s.len)
                    .collect();
            t.tr.pin(&owned, &reason);
            for o in &n.outputs {
                if let Some(m) = t.tr.maps.get(o).cloned() {
                    t.tr.pin(&m.elems, &reason);
                }
            }
        }
    }
    Ok(t.tr)
}

struct Tracer<'a> {
    g: &'a Graph,
    facts: &'a Facts,
    statics: HashSet<&'a str>,
    tr: Trace,
}

fn norm_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    (0..rank as i64).contains(&a).then_some(a as usize)
}

impl<'a> Tracer<'a> {
    fn shape(&self, name: &str) -> Option<&'a [usize]> {
        self.facts.get(name).map(|k| k.fact.shape.as_slice())
    }

    fn value(&self, name: &str) -> Option<&'a Tensor> {
        self.facts.get(name).and_then(|k| k.value.as_ref())
    }

    fn ints(&self, name: Option<&str>) -> Option<Vec<i64>> {
        self.value(name?)?.to_i64_vec().ok()
    }

    fn map(&self, name: Option<&str>) -> Option<ChanMap> {
        self.tr.maps.get(name?).cloned()
    }

    fn set(&mut self, name: Option<&str>, map: ChanMap) {
        if let Some(n) = name {
            self.tr.maps.insert(n.to_string(), map);
        }
    }

    /// Pins the channels of every input of `n` (an op the tracer cannot
    /// follow); outputs carry no channels.
    fn opaque(&mut self, n: &Node, why: &str) {
        let reason = format!("node '{}' ({}) {why}", n.name, n.op_type);
        for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
            if let Some(m) = self.tr.maps.get(inp).cloned() {
                self.tr.pin(&m.elems, &reason);
            }
        }
    }

    /// Pins the channels of input `k` only.
    fn pin_input(&mut self, n: &Node, k: usize, why: &str) {
        if let Some(m) = self.map(n.input(k)) {
            let reason = format!("node '{}' ({}) {why}", n.name, n.op_type);
            self.tr.pin(&m.elems, &reason);
        }
    }

    fn slice(&mut self, node: usize, input: usize, axis: usize, elems: &[usize], role: Role) {
        self.tr.slices.push(Slice {
            node,
            input,
            axis,
            elems: elems.to_vec(),
            role,
        });
    }

    fn node(&mut self, i: usize, n: &'a Node) -> Result<(), CompressError> {
        if !n.domain.is_empty() && n.domain != "ai.onnx" {
            self.opaque(n, "is in a custom domain");
            return Ok(());
        }
        let op = n.op_type.as_str();
        let x = n.input(0);
        let out = n.outputs.first().map(String::as_str);
        let flow = n.info().channels;
        match op {
            _ if flow == ChannelFlow::Elementwise => {
                for k in 1..n.inputs.len() {
                    self.pin_input(n, k, "reads channels as a parameter");
                }
                if let Some(m) = self.map(x) {
                    for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                        self.set(Some(o), m.clone());
                    }
                }
            }
            _ if flow == ChannelFlow::Broadcast => self.broadcast(i, n),
            _ if flow == ChannelFlow::Pool => {
                if n.outputs.get(1).is_some_and(|o| !o.is_empty()) {
                    self.opaque(n, "outputs indices that depend on the channel count");
                } else if let Some(m) = self.map(x) {
                    if m.axis == 1 {
                        self.set(out, m);
                    } else {
                        self.opaque(n, "pools over the channel axis");
                    }
                }
            }
            _ if flow == ChannelFlow::Reduce => self.reduce(n),
            "Conv" => self.conv(i, n)?,
            "Gemm" => self.gemm(i, n),
            "MatMul" => self.matmul(i, n),
            "BatchNormalization" => self.norm(i, n, 4),
            "InstanceNormalization" => self.norm(i, n, 2),
            "Flatten" => self.flatten(n)?,
            "Reshape" => self.reshape(i, n),
            "Transpose" => {
                if let Some(m) = self.map(x) {
                    let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
                    let perm = n
                        .attr_ints("perm")?
                        .map(<[i64]>::to_vec)
                        .unwrap_or_else(|| (0..rank as i64).rev().collect());
                    match perm.iter().position(|&p| p as usize == m.axis) {
                        Some(a) => self.set(out, ChanMap { axis: a, ..m }),
                        None => self.opaque(n, "has a bad perm"),
                    }
                }
            }
            "Squeeze" | "Unsqueeze" => self.squeeze(n)?,
            "Concat" => self.concat(n)?,
            "Split" => self.split(i, n)?,
            "Slice" => self.slice_op(i, n)?,
            "Gather" => {
                if let Some(m) = self.map(x) {
                    let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
                    let axis = norm_axis(n.attr_int("axis", 0)?, rank);
                    let idx_rank = n.input(1).and_then(|s| self.shape(s)).map(<[usize]>::len);
                    match (axis, idx_rank) {
                        (Some(a), Some(r)) if a != m.axis => {
                            let na = if m.axis < a { m.axis } else { m.axis + r - 1 };
                            self.set(out, ChanMap { axis: na, ..m });
                        }
                        _ => self.opaque(n, "gathers along the channel axis"),
                    }
                }
                self.pin_input(n, 1, "uses channels as indices");
            }
            "Pad" => self.pad(n)?,
            "Resize" => {
                if let Some(m) = self.map(x) {
                    let sizes = n.input(3).is_some_and(|s| self.shape(s) != Some(&[0]));
                    let scale = self
                        .value(n.input(2).unwrap_or(""))
                        .map(|t| t.to_f32_vec())
                        .and_then(|s| s.get(m.axis).copied());
                    if !sizes && scale == Some(1.0) {
                        self.set(out, m);
                    } else {
                        self.opaque(n, "resizes the channel axis");
                    }
                }
            }
            "Softmax" | "LogSoftmax" | "Hardmax" => {
                if let Some(m) = self.map(x) {
                    let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
                    let old = self.g.opset() < 13;
                    let axis = norm_axis(n.attr_int("axis", if old { 1 } else { -1 })?, rank);
                    let mixes = axis.is_none_or(|a| m.axis == a || (old && m.axis > a));
                    if mixes {
                        self.opaque(n, "normalizes across channels");
                    } else {
                        self.set(out, m);
                    }
                }
            }
            "LayerNormalization" => {
                if let Some(m) = self.map(x) {
                    let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
                    match norm_axis(n.attr_int("axis", -1)?, rank) {
                        Some(a) if m.axis < a => self.set(out, m),
                        _ => self.opaque(n, "normalizes across channels"),
                    }
                }
                for k in 1..n.inputs.len() {
                    self.pin_input(n, k, "reads channels as a parameter");
                }
            }
            // These read only the shape; a changed shape flows on as a value
            // and is checked when the pruned graph is re-inferred.
            "Shape" | "Size" => {}
            _ => self.opaque(n, "is not understood by channel tracing"),
        }
        Ok(())
    }

    fn broadcast(&mut self, i: usize, n: &Node) {
        let Some(out_shape) = n.outputs.first().and_then(|o| self.shape(o)) else {
            return self.opaque(n, "has no known output shape");
        };
        let out_rank = out_shape.len();
        let mut first: Option<ChanMap> = None;
        let mut ok = true;
        for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
            let Some(m) = self.map(Some(inp)) else {
                continue;
            };
            let rank = self.shape(inp).map_or(0, <[usize]>::len);
            let axis = m.axis + out_rank - rank;
            match &first {
                None => first = Some(ChanMap { axis, ..m }),
                Some(f) if f.axis == axis && f.elems.len() == m.elems.len() => {
                    for (&a, &b) in f.elems.clone().iter().zip(&m.elems) {
                        self.tr.union(a, b);
                    }
                }
                Some(_) => ok = false,
            }
        }
        let Some(f) = first else { return };
        if ok {
            for (k, inp) in n.inputs.iter().enumerate() {
                if inp.is_empty() || self.tr.maps.contains_key(inp) {
                    continue;
                }
                let shape = self.shape(inp).unwrap_or(&[]);
                let lead = out_rank - shape.len();
                if f.axis < lead || shape[f.axis - lead] == 1 {
                    continue; // broadcast along the channels
                }
                if self.value(inp).is_some() {
                    self.slice(i, k, f.axis - lead, &f.elems, Role::Other);
                } else {
                    ok = false;
                }
            }
        }
        if ok {
            self.set(n.outputs.first().map(String::as_str), f);
        } else {
            self.opaque(
                n,
                "combines channels with a value channel tracing cannot follow",
            );
        }
    }

    fn conv(&mut self, i: usize, n: &Node) -> Result<(), CompressError> {
        let (x, out) = (n.input(0), n.outputs.first().map(String::as_str));
        let mut xmap = self.map(x);
        if xmap.as_ref().is_some_and(|m| m.axis != 1) {
            self.pin_input(n, 0, "reads channels on a non-channel axis");
            xmap = None;
        }
        let w = n.input(1).and_then(|w| self.value(w));
        let (Some(w), Some(xs)) = (w, self.shape(x.unwrap_or(""))) else {
            self.opaque(n, "has non-constant weights");
            return Ok(());
        };
        if w.rank() < 3 || xs.len() < 2 {
            self.opaque(n, "has an unexpected weight shape");
            return Ok(());
        }
        let group = n.attr_int("group", 1)?.max(1) as usize;
        let (c_in, c_out) = (xs[1], w.shape()[0]);
        let elems = if group == 1 {
            if let Some(m) = &xmap {
                self.slice(i, 1, 1, &m.elems, Role::Input);
            }
            self.tr.new_space(Some(i), c_out)
        } else if group == c_in && c_out.is_multiple_of(c_in) {
            let mult = c_out / c_in;
            match xmap {
                Some(m) => {
                    // Depthwise: output channel j reads input channel j / mult.
                    self.tr.edits.push(Edit {
                        node: i,
                        src: IntSrc::AttrInt("group"),
                        index: 0,
                        elems: m.elems.clone(),
                    });
                    m.elems
                        .iter()
                        .flat_map(|&e| std::iter::repeat_n(e, mult))
                        .collect()
                }
                None => {
                    let e = self.tr.new_space(Some(i), c_out);
                    let reason = format!(
                        "depthwise conv '{}' reads a value channel tracing cannot follow",
                        n.name
                    );
                    self.tr.pin(&e, &reason);
                    e
                }
            }
        } else {
            self.pin_input(n, 0, &format!("is a grouped conv (group = {group})"));
            let e = self.tr.new_space(Some(i), c_out);
            let reason = format!("grouped conv '{}' (group = {group}) is not pruned", n.name);
            self.tr.pin(&e, &reason);
            e
        };
        self.slice(i, 1, 0, &elems, Role::Filter);
        if let Some(b) = n.input(2) {
            if self.value(b).is_some() {
                self.slice(i, 2, 0, &elems, Role::Other);
            } else {
                let reason = format!("conv '{}' has a run-time bias", n.name);
                self.tr.pin(&elems, &reason);
            }
        }
        self.set(out, ChanMap { axis: 1, elems });
        Ok(())
    }

    fn gemm(&mut self, i: usize, n: &Node) {
        let trans_a = n.attr_int("transA", 0).unwrap_or(0) != 0;
        let trans_b = n.attr_int("transB", 0).unwrap_or(0) != 0;
        let b = n.input(1).and_then(|b| self.value(b));
        let Some(b) = b.filter(|b| b.rank() == 2) else {
            self.opaque(n, "has no constant 2-D weight");
            return;
        };
        if let Some(m) = self.map(n.input(0)) {
            if m.axis == usize::from(!trans_a) {
                self.slice(i, 1, usize::from(trans_b), &m.elems, Role::Input);
            } else {
                self.pin_input(n, 0, "reads channels on its M axis");
            }
        }
        let n_out = b.shape()[usize::from(!trans_b)];
        let elems = self.tr.new_space(Some(i), n_out);
        self.slice(i, 1, usize::from(!trans_b), &elems, Role::Filter);
        if let Some(c) = n.input(2) {
            match self.value(c).map(|t| t.shape().to_vec()) {
                Some(s) if s.last() == Some(&n_out) && n_out > 1 => {
                    self.slice(i, 2, s.len() - 1, &elems, Role::Other);
                }
                Some(_) => {}
                None => {
                    let reason = format!("Gemm '{}' has a run-time C", n.name);
                    self.tr.pin(&elems, &reason);
                }
            }
        }
        self.set(
            n.outputs.first().map(String::as_str),
            ChanMap { axis: 1, elems },
        );
    }

    fn matmul(&mut self, i: usize, n: &Node) {
        let b = n.input(1).and_then(|b| self.value(b));
        let a_rank = self
            .shape(n.input(0).unwrap_or(""))
            .map_or(0, <[usize]>::len);
        let Some(b) = b.filter(|b| b.rank() == 2 && a_rank >= 1) else {
            self.opaque(n, "is not a product with a constant 2-D weight");
            return;
        };
        if let Some(m) = self.map(n.input(0)) {
            if m.axis == a_rank - 1 {
                self.slice(i, 1, 0, &m.elems, Role::Input);
            } else {
                self.pin_input(n, 0, "reads channels on a row axis");
            }
        }
        let elems = self.tr.new_space(Some(i), b.shape()[1]);
        self.slice(i, 1, 1, &elems, Role::Filter);
        let out_rank = n
            .outputs
            .first()
            .and_then(|o| self.shape(o))
            .map_or(1, <[usize]>::len);
        self.set(
            n.outputs.first().map(String::as_str),
            ChanMap {
                axis: out_rank.saturating_sub(1),
                elems,
            },
        );
    }

    /// BatchNormalization (`params` = 4) and InstanceNormalization (2).
    fn norm(&mut self, i: usize, n: &Node, params: usize) {
        let Some(m) = self.map(n.input(0)) else {
            return;
        };
        let training = n.outputs.iter().skip(1).any(|o| !o.is_empty());
        let consts = (1..=params).all(|k| n.input(k).is_some_and(|s| self.value(s).is_some()));
        if m.axis != 1 || training || !consts {
            return self.opaque(n, "is not an inference-mode norm with constant parameters");
        }
        for k in 1..=params {
            let role = if k == 1 { Role::NormScale } else { Role::Other };
            self.slice(i, k, 0, &m.elems, role);
        }
        self.set(n.outputs.first().map(String::as_str), m);
    }

    fn reduce(&mut self, n: &Node) {
        let x = n.input(0);
        let Some(m) = self.map(x) else { return };
        let rank = self.shape(x.unwrap_or("")).map_or(0, <[usize]>::len);
        let axes = match n.attr_ints("axes").ok().flatten() {
            Some(a) => Some(a.to_vec()),
            None => self.ints(n.input(1)),
        };
        let Some(axes) = axes.filter(|a| !a.is_empty()) else {
            return self.opaque(n, "reduces every axis");
        };
        let axes: Vec<usize> = axes.iter().filter_map(|&a| norm_axis(a, rank)).collect();
        if axes.contains(&m.axis) {
            return self.opaque(n, "reduces over channels");
        }
        let keep = n.attr_int("keepdims", 1).unwrap_or(1) != 0;
        let axis = if keep {
            m.axis
        } else {
            m.axis - axes.iter().filter(|&&a| a < m.axis).count()
        };
        self.set(n.outputs.first().map(String::as_str), ChanMap { axis, ..m });
    }
}
