use std::collections::{BTreeMap, HashMap, HashSet};

use indexmap::IndexMap;

use crate::{Activation, Attr, DType, IrError, Result, Tensor};

/// One dimension of a declared (not yet resolved) shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Known(usize),
    /// A named symbolic size such as `batch`, resolved by `--input-shape`.
    Symbolic(String),
    /// No size given (or -1).
    Unknown,
}

/// Declared type of a graph input, output or intermediate value.
#[derive(Clone, Debug, PartialEq)]
pub struct ValueInfo {
    /// Value name.
    pub name: String,
    /// Element type.
    pub dtype: DType,
    /// Declared dims; `None` when even the rank is unknown.
    pub shape: Option<Vec<Dim>>,
}

impl ValueInfo {
    /// A value with a fully known shape.
    pub fn known(name: impl Into<String>, dtype: DType, shape: &[usize]) -> ValueInfo {
        ValueInfo {
            name: name.into(),
            dtype,
            shape: Some(shape.iter().map(|&d| Dim::Known(d)).collect()),
        }
    }

    /// The shape if every dim is known.
    pub fn static_shape(&self) -> Option<Vec<usize>> {
        self.shape
            .as_ref()?
            .iter()
            .map(|d| match d {
                Dim::Known(n) => Some(*n),
                _ => None,
            })
            .collect()
    }
}

/// One operation. Inputs and outputs name values; an empty string marks an
/// omitted optional input or output, exactly as in ONNX.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Node {
    /// Unique-ish name used in reports and errors (import fills in blanks).
    pub name: String,
    /// ONNX op type, e.g. `Conv`.
    pub op_type: String,
    /// Operator domain; empty for the default ONNX domain.
    pub domain: String,
    /// Input value names.
    pub inputs: Vec<String>,
    /// Output value names.
    pub outputs: Vec<String>,
    /// Attributes by name.
    pub attrs: BTreeMap<String, Attr>,
    /// The activation this node applies to its result, typed: for a linear
    /// op, the one `fuse_activations` moved into its epilogue; for
    /// `ActivationGrad`, the one whose derivative it applies. Internal to
    /// whittle (ONNX has no such field), so export never writes it.
    pub activation: Activation,
}

impl Node {
    /// A node in the default domain with no attributes.
    pub fn new(
        name: impl Into<String>,
        op_type: impl Into<String>,
        inputs: &[&str],
        outputs: &[&str],
    ) -> Node {
        Node {
            name: name.into(),
            op_type: op_type.into(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            attrs: BTreeMap::new(),
            activation: Activation::None,
        }
    }

    /// Builder-style attribute setter.
    pub fn with_attr(mut self, name: &str, value: Attr) -> Node {
        self.attrs.insert(name.to_string(), value);
        self
    }

    /// The `i`-th input name, or `None` when absent or empty (omitted).
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn attr_err(&self, attr: &str, reason: impl Into<String>) -> IrError {
        IrError::Attr {
            node: self.name.clone(),
            op: self.op_type.clone(),
            attr: attr.to_string(),
            reason: reason.into(),
        }
    }

    fn wrong_kind(&self, attr: &str, want: &str, got: &Attr) -> IrError {
        self.attr_err(attr, format!("expected {want}, found {}", got.kind()))
    }

    /// Builder-style setter of the fused activation.
    pub fn with_activation(mut self, act: Activation) -> Node {
        self.activation = act;
        self
    }

    /// An attribute by name.
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.get(name)
    }

    /// An int attribute, or `default` when absent.
    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64> {
        Ok(self.attr_int_opt(name)?.unwrap_or(default))
    }

    /// An int attribute if present.
    pub fn attr_int_opt(&self, name: &str) -> Result<Option<i64>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Int(v)) => Ok(Some(*v)),
            Some(other) => Err(self.wrong_kind(name, "int", other)),
        }
    }

    /// A float attribute, or `default` when absent.
    pub fn attr_float(&self, name: &str, default: f32) -> Result<f32> {
        match self.attrs.get(name) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            // Some exporters write integral floats as ints.
            Some(Attr::Int(v)) => Ok(*v as f32),
            Some(other) => Err(self.wrong_kind(name, "float", other)),
        }
    }

    /// A string attribute, or `default` when absent.
    pub fn attr_string(&self, name: &str, default: &str) -> Result<String> {
        match self.attrs.get(name) {
            None => Ok(default.to_string()),
            Some(Attr::String(v)) => Ok(v.clone()),
            Some(other) => Err(self.wrong_kind(name, "string", other)),
        }
    }

    /// An ints attribute if present.
    pub fn attr_ints(&self, name: &str) -> Result<Option<&[i64]>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_kind(name, "ints", other)),
        }
    }

    /// A floats attribute if present.
    pub fn attr_floats(&self, name: &str) -> Result<Option<&[f32]>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Floats(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_kind(name, "floats", other)),
        }
    }

    /// A strings attribute if present.
    pub fn attr_strings(&self, name: &str) -> Result<Option<&[String]>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Strings(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_kind(name, "strings", other)),
        }
    }

    /// A tensor attribute if present.
    pub fn attr_tensor(&self, name: &str) -> Result<Option<&Tensor>> {
        match self.attrs.get(name) {
            None => Ok(None),
            Some(Attr::Tensor(v)) => Ok(Some(v)),
            Some(other) => Err(self.wrong_kind(name, "tensor", other)),
        }
    }

    /// An error about attribute `attr` of this node.
    pub fn bad_attr(&self, attr: &str, reason: impl Into<String>) -> IrError {
        self.attr_err(attr, reason)
    }
}

/// A computation graph: ONNX's `GraphProto` plus the model-level opset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Runtime inputs (initializers are not listed here).
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs.
    pub outputs: Vec<ValueInfo>,
    /// Constant tensors by name, in file order.
    pub initializers: IndexMap<String, Tensor>,
    /// Nodes (topologically sorted after [`Graph::topo_sort`]).
    pub nodes: Vec<Node>,
    /// Declared types of intermediate values, when the file had them.
    pub value_info: Vec<ValueInfo>,
    /// Opset version per domain ("" is the default ONNX domain).
    pub opsets: BTreeMap<String, i64>,
    /// Name of the tool that produced the model, for reports.
    pub producer: String,
}

impl Graph {
    /// The opset version of the default ONNX domain (0 if not declared).
    pub fn opset(&self) -> i64 {
        self.opset_for("")
    }

    /// The opset version a node of `domain` is built for: the default ONNX
    /// domain (`""` or `"ai.onnx"`) falls back to 0 when not declared, any
    /// other domain to 1.
    pub fn opset_for(&self, domain: &str) -> i64 {
        if domain.is_empty() || domain == "ai.onnx" {
            self.opsets
                .get("")
                .or_else(|| self.opsets.get("ai.onnx"))
                .copied()
                .unwrap_or(0)
        } else {
            self.opsets.get(domain).copied().unwrap_or(1)
        }
    }

    /// Index of the node producing each value.
    pub fn producers(&self) -> HashMap<&str, usize> {
        let mut map = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                map.insert(o.as_str(), i);
            }
        }
        map
    }

    /// For each value, the indices of nodes reading it (once per node).
    pub fn consumers(&self) -> HashMap<&str, Vec<usize>> {
        let mut map: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut seen = HashSet::new();
            for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
                if seen.insert(inp.as_str()) {
                    map.entry(inp.as_str()).or_default().push(i);
                }
            }
        }
        map
    }

    /// True when `name` is a graph output.
    pub fn is_output(&self, name: &str) -> bool {
        self.outputs.iter().any(|o| o.name == name)
    }

    /// Checks that every value read is produced exactly once and that the
    /// graph is acyclic, then orders nodes topologically (stable: a valid
    /// order is kept as it is).
    pub fn topo_sort(&mut self) -> Result<()> {
        let mut available: HashSet<&str> = self.inputs.iter().map(|v| v.name.as_str()).collect();
        available.extend(self.initializers.keys().map(String::as_str));
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for o in n.outputs.iter().filter(|o| !o.is_empty()) {
                if producer.insert(o.as_str(), i).is_some() || available.contains(o.as_str()) {
                    return Err(IrError::DuplicateValue(o.clone()));
                }
            }
        }
        for n in &self.nodes {
            for inp in n.inputs.iter().filter(|s| !s.is_empty()) {
                if !available.contains(inp.as_str()) && !producer.contains_key(inp.as_str()) {
                    return Err(IrError::Dangling {
                        node: n.name.clone(),
                        value: inp.clone(),
                    });
                }
            }
        }
        for o in &self.outputs {
            if !available.contains(o.name.as_str()) && !producer.contains_key(o.name.as_str()) {
                return Err(IrError::DanglingOutput(o.name.clone()));
            }
        }
        let order = self.kahn_order(&producer).map_err(IrError::Cycle)?;
        self.reorder(order);
        Ok(())
    }

    /// Kahn's algorithm, always taking the lowest-index ready node so an
    /// already sorted list keeps its order. Values without a producer in
    /// `producer` are ignored. On a cycle, the names of (up to 8) stuck nodes.
    fn kahn_order(
        &self,
        producer: &HashMap<&str, usize>,
    ) -> std::result::Result<Vec<usize>, String> {
        let n = self.nodes.len();
        let mut indegree = vec![0usize; n];
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, node) in self.nodes.iter().enumerate() {
            let mut deps = HashSet::new();
            for inp in node.inputs.iter().filter(|s| !s.is_empty()) {
                if let Some(&p) = producer.get(inp.as_str()) {
                    if deps.insert(p) {
                        indegree[i] += 1;
                        users[p].push(i);
                    }
                }
            }
        }
        let mut ready: std::collections::BinaryHeap<std::cmp::Reverse<usize>> = (0..n)
            .filter(|&i| indegree[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(n);
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &u in &users[i] {
                indegree[u] -= 1;
                if indegree[u] == 0 {
                    ready.push(std::cmp::Reverse(u));
                }
            }
        }
        if order.len() != n {
            let stuck: Vec<&str> = (0..n)
                .filter(|&i| indegree[i] > 0)
                .take(8)
                .map(|i| self.nodes[i].name.as_str())
                .collect();
            return Err(stuck.join(", "));
        }
        Ok(order)
    }

    /// Puts the nodes in `order` (a permutation of their indices).
    fn reorder(&mut self, order: Vec<usize>) {
        let mut slots: Vec<Option<Node>> = std::mem::take(&mut self.nodes)
            .into_iter()
            .map(Some)
            .collect();
        self.nodes = order.into_iter().filter_map(|i| slots[i].take()).collect();
    }

    /// Restores a topological node order after an edit, if it was lost:
    /// a list in which every node already follows the producers of its
    /// inputs is left exactly as it is; otherwise the nodes are sorted as
    /// by [`Graph::topo_sort`] (stable). Nothing is validated: values with
    /// no producer are ignored, and on a cycle the order is left unchanged
    /// (the next `topo_sort` reports it).
    pub(crate) fn restore_order(&mut self) {
        let order = {
            let producer = self.producers();
            let sorted = self.nodes.iter().enumerate().all(|(i, n)| {
                n.inputs
                    .iter()
                    .all(|v| producer.get(v.as_str()).is_none_or(|&p| p < i))
            });
            if sorted {
                return;
            }
            self.kahn_order(&producer)
        };
        if let Ok(order) = order {
            self.reorder(order);
        }
    }

    /// Renames every read of `from` to `to` (in nodes and graph outputs).
    pub fn replace_uses(&mut self, from: &str, to: &str) {
        for n in &mut self.nodes {
            for inp in &mut n.inputs {
                if inp == from {
                    *inp = to.to_string();
                }
            }
        }
    }

    /// Removes initializers no node or output reads.
    pub fn prune_unused_initializers(&mut self) {
        let used: HashSet<String> = self
            .nodes
            .iter()
            .flat_map(|n| n.inputs.iter().cloned())
            .chain(self.outputs.iter().map(|o| o.name.clone()))
            .collect();
        self.initializers.retain(|k, _| used.contains(k));
    }

    /// A value name not used anywhere in the graph, starting with `base`.
    /// (To add many names, collect [`FreshNames::of`] once instead.)
    pub fn fresh_name(&self, base: &str) -> String {
        FreshNames::of(self).fresh(base)
    }
}

/// The value names a graph (or a graph being built) already uses; hands out
/// new names that collide with none of them, nor with each other.
#[derive(Clone, Debug, Default)]
pub struct FreshNames {
    taken: HashSet<String>,
}

impl FreshNames {
    /// Every name in `graph`: initializers, inputs, outputs, and each
    /// node's inputs and outputs.
    pub fn of(graph: &Graph) -> FreshNames {
        let mut taken: HashSet<String> = graph.initializers.keys().cloned().collect();
        taken.extend(graph.inputs.iter().map(|v| v.name.clone()));
        taken.extend(graph.outputs.iter().map(|v| v.name.clone()));
        for n in &graph.nodes {
            taken.extend(n.outputs.iter().cloned());
            taken.extend(n.inputs.iter().cloned());
        }
        FreshNames { taken }
    }

    /// Marks `name` as used (e.g. a name the caller will create itself).
    pub fn reserve(&mut self, name: impl Into<String>) {
        self.taken.insert(name.into());
    }

    /// `base`, or `base_1`, `base_2`, ... : the first not yet used, which
    /// is then used.
    pub fn fresh(&mut self, base: &str) -> String {
        let name = if self.taken.contains(base) {
            (1..)
                .map(|i| format!("{base}_{i}"))
                .find(|c| !self.taken.contains(c))
                .unwrap_or_else(|| base.to_string())
        } else {
            base.to_string()
        };
        self.taken.insert(name.clone());
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain() -> Graph {
        Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1])],
            outputs: vec![ValueInfo::known("z", DType::F32, &[1])],
            nodes: vec![
                Node::new("b", "Relu", &["y"], &["z"]),
                Node::new("a", "Relu", &["x"], &["y"]),
            ],
            ..Graph::default()
        }
    }

    #[test]
    fn topo_sort_orders_nodes() {
        let mut g = chain();
        g.topo_sort().unwrap();
        assert_eq!(g.nodes[0].name, "a");
        assert_eq!(g.nodes[1].name, "b");
    }

    #[test]
    fn topo_sort_finds_cycles() {
        let mut g = chain();
        g.nodes[1].inputs = vec!["z".into()];
        let err = g.topo_sort().unwrap_err();
        assert!(matches!(err, IrError::Cycle(_)), "{err}");
    }

    #[test]
    fn topo_sort_finds_dangling_inputs() {
        let mut g = chain();
        g.nodes[1].inputs = vec!["nowhere".into()];
        let err = g.topo_sort().unwrap_err();
        assert!(err.to_string().contains("nowhere"), "{err}");
    }

    #[test]
    fn attr_kinds_are_checked() {
        let n = Node::new("n", "Conv", &[], &[]).with_attr("group", Attr::Float(1.0));
        let err = n.attr_int("group", 1).unwrap_err();
        assert!(err.to_string().contains("group"), "{err}");
        assert_eq!(n.attr_int("missing", 3).unwrap(), 3);
    }
}
