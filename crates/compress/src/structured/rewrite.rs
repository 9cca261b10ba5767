//! Applies a selection: slices constants, rewrites channel counts, drops
//! what became dead, and checks the result by re-inferring every shape.

use std::collections::{BTreeMap, HashMap, HashSet};

use whittle_ir::{Attr, DType, Dim, Graph, Node, Patch, Tensor, TensorData};

use super::trace::{Facts, IntSrc, Trace};
use crate::CompressError;

/// Keeps the positions of `t` along `axis` where `mask` is true.
fn slice_axis(t: &Tensor, axis: usize, mask: &[bool]) -> Result<Tensor, CompressError> {
    let dims = t.shape();
    if axis >= dims.len() || dims[axis] != mask.len() {
        return Err(CompressError::Unsupported(format!(
            "internal error: slicing a {dims:?} tensor along axis {axis} with {} flags",
            mask.len()
        )));
    }
    let size = t.dtype().size();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product::<usize>() * size;
    let bytes = t.as_bytes();
    let kept = mask.iter().filter(|&&m| m).count();
    let mut out = Vec::with_capacity(outer * kept * inner);
    for o in 0..outer {
        for (p, _) in mask.iter().enumerate().filter(|(_, &m)| m) {
            let at = (o * mask.len() + p) * inner;
            out.extend_from_slice(&bytes[at..at + inner]);
        }
    }
    let mut shape = dims.to_vec();
    shape[axis] = kept;
    Ok(Tensor::new(
        shape,
        TensorData::from_le_bytes(t.dtype(), &out)?,
    )?)
}

/// Number of graph slots (node inputs, graph outputs) reading `name`.
fn reads(g: &Graph, name: &str) -> usize {
    g.nodes
        .iter()
        .flat_map(|n| &n.inputs)
        .filter(|i| *i == name)
        .count()
        + g.outputs.iter().filter(|o| o.name == name).count()
}

/// Makes input `input` of node `node` read `t`: the initializer is
/// replaced when this slot is its only reader, else a new one is added.
fn set_const_input(g: &mut Graph, node: usize, input: usize, t: Tensor) {
    let name = &g.nodes[node].inputs[input];
    let mut patch = Patch::new();
    if g.initializers.contains_key(name) && reads(g, name) == 1 {
        patch.set_initializer(name, t);
    } else {
        let mut n = g.nodes[node].clone();
        n.inputs[input] = patch.add_initializer(&format!("{name}_pruned"), t);
        patch.replace_node(node, n);
    }
    g.apply(patch);
}

/// Sets the channel count `v` named by attribute `src` of `n` (at `index`
/// for a list).
fn edit_attr(n: &mut Node, src: &IntSrc, index: usize, v: i64) {
    match src {
        IntSrc::AttrInt(a) => {
            n.attrs.insert(a.to_string(), Attr::Int(v));
        }
        IntSrc::AttrInts(a) => {
            if let Some(Attr::Ints(vals)) = n.attrs.get_mut(*a) {
                if let Some(x) = vals.get_mut(index) {
                    *x = v;
                }
            }
        }
        IntSrc::Input(_) => {}
    }
}

/// Rewrites `g` (the traced graph) keeping the classes flagged in `kept`.
pub(crate) fn rewrite(
    mut g: Graph,
    facts: &Facts,
    overrides: &HashMap<String, Vec<usize>>,
    tr: &Trace,
    kept: &[bool],
) -> Result<Graph, CompressError> {
    let mask =
        |elems: &[usize]| -> Vec<bool> { elems.iter().map(|&e| kept[tr.class(e)]).collect() };
    let count = |elems: &[usize]| elems.iter().filter(|&&e| kept[tr.class(e)]).count() as i64;

    // Constant slices, combined per (node, input) and axis.
    let mut slices: BTreeMap<(usize, usize), BTreeMap<usize, Vec<bool>>> = BTreeMap::new();
    for s in &tr.slices {
        let m = mask(&s.elems);
        let axes = slices.entry((s.node, s.input)).or_default();
        match axes.get_mut(&s.axis) {
            Some(prev) => prev.iter_mut().zip(&m).for_each(|(a, &b)| *a &= b),
            None => {
                axes.insert(s.axis, m);
            }
        }
    }
    for ((node, input), axes) in slices {
        if axes.values().all(|m| m.iter().all(|&k| k)) {
            continue;
        }
        let name = &g.nodes[node].inputs[input];
        let mut t = facts
            .get(name)
            .and_then(|k| k.value.clone())
            .ok_or_else(|| {
                CompressError::Unsupported(format!("internal error: '{name}' is not a constant"))
            })?;
        for (axis, m) in &axes {
            t = slice_axis(&t, *axis, m)?;
        }
        set_const_input(&mut g, node, input, t);
    }

    // Integers naming channel counts.
    let mut int_inputs: BTreeMap<(usize, usize), Vec<(usize, i64)>> = BTreeMap::new();
    let mut edited: BTreeMap<usize, Node> = BTreeMap::new();
    for e in &tr.edits {
        let v = count(&e.elems);
        match &e.src {
            IntSrc::Input(k) => int_inputs
                .entry((e.node, *k))
                .or_default()
                .push((e.index, v)),
            src => edit_attr(
                edited
                    .entry(e.node)
                    .or_insert_with(|| g.nodes[e.node].clone()),
                src,
                e.index,
                v,
            ),
        }
    }
    let mut patch = Patch::new();
    for (i, n) in edited {
        patch.replace_node(i, n);
    }
    g.apply(patch);
    for ((node, input), entries) in int_inputs {
        let name = &g.nodes[node].inputs[input];
        let old = facts
            .get(name)
            .and_then(|k| k.value.clone())
            .ok_or_else(|| {
                CompressError::Unsupported(format!("internal error: '{name}' is not a constant"))
            })?;
        let mut vals = old.to_i64_vec()?;
        let mut changed = false;
        for (i, v) in entries {
            if let Some(x) = vals.get_mut(i) {
                changed |= *x != v;
                *x = v;
            }
        }
        if !changed {
            continue;
        }
        let data = match old.dtype() {
            DType::I32 => TensorData::I32(vals.iter().map(|&v| v as i32).collect()),
            _ => TensorData::I64(vals),
        };
        set_const_input(
            &mut g,
            node,
            input,
            Tensor::new(old.shape().to_vec(), data)?,
        );
    }

    remove_dead_nodes(&mut g);
    g.prune_unused_initializers();
    check_and_update_shapes(&mut g, facts, overrides)?;
    Ok(g)
}

/// Drops nodes none of whose outputs is read (e.g. Constant nodes whose
/// values were replaced by sliced initializers).
fn remove_dead_nodes(g: &mut Graph) {
    loop {
        let mut patch = Patch::new();
        {
            let used: HashSet<&str> = g
                .nodes
                .iter()
                .flat_map(|n| n.inputs.iter().map(String::as_str))
                .chain(g.outputs.iter().map(|o| o.name.as_str()))
                .collect();
            for (i, n) in g.nodes.iter().enumerate() {
                if !n
                    .outputs
                    .iter()
                    .any(|o| !o.is_empty() && used.contains(o.as_str()))
                {
                    patch.remove_node(i);
                }
            }
        }
        if patch.is_empty() {
            return;
        }
        g.apply(patch);
    }
}

/// Re-infers every shape of the pruned graph (an error here is a bug in
/// the tracer, reported instead of writing a broken model), checks that
/// the outputs kept their shapes, and updates the declared value_info.
fn check_and_update_shapes(
    g: &mut Graph,
    old: &Facts,
    overrides: &HashMap<String, Vec<usize>>,
) -> Result<(), CompressError> {
    let facts = whittle_runtime::infer_facts(g, &whittle_runtime::Registry::standard(), overrides)
        .map_err(|e| {
            CompressError::Unsupported(format!(
                "internal error: the pruned graph does not check ({e}); please report this model"
            ))
        })?;
    for o in &g.outputs {
        let (a, b) = (facts.get(&o.name), old.get(&o.name));
        if a.map(|k| &k.fact.shape) != b.map(|k| &k.fact.shape) {
            return Err(CompressError::Unsupported(format!(
                "internal error: pruning changed the shape of output '{}'",
                o.name
            )));
        }
    }
    for vi in &mut g.value_info {
        let Some(k) = facts.get(&vi.name) else {
            continue;
        };
        if let Some(dims) = &mut vi.shape {
            if dims.len() != k.fact.shape.len() {
                vi.shape = None;
                continue;
            }
            for (d, &n) in dims.iter_mut().zip(&k.fact.shape) {
                if matches!(d, Dim::Known(x) if *x != n) {
                    *d = Dim::Known(n);
                }
            }
        }
    }
    Ok(())
}
