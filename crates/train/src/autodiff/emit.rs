//! The state of the backward pass: emitted nodes and constants, and the
//! gradient contributions collected for each forward value.

use std::collections::HashMap;

use whittle_ir::{Activation, Attr, FreshNames, Node, Tensor};
use whittle_runtime::ops::grad::DOMAIN;
use whittle_runtime::Known;

use crate::TrainError;

/// Collects backward nodes.
pub(crate) struct Emit<'a> {
    pub known: &'a HashMap<String, Known>,
    pub nodes: Vec<Node>,
    pub inits: Vec<(String, Tensor)>,
    contribs: HashMap<String, Vec<String>>,
    /// Gradient values created by emitted nodes, with the forward value
    /// whose gradient (or part of it) each holds.
    owner: HashMap<String, String>,
    names: FreshNames,
}

impl<'a> Emit<'a> {
    pub fn new(known: &'a HashMap<String, Known>, names: FreshNames) -> Emit<'a> {
        Emit {
            known,
            nodes: Vec::new(),
            inits: Vec::new(),
            contribs: HashMap::new(),
            owner: HashMap::new(),
            names,
        }
    }

    /// A value name not used yet, starting with `base`.
    pub fn fresh(&mut self, base: &str) -> String {
        self.names.fresh(base)
    }

    /// Static shape of a forward value.
    pub fn shape(&self, v: &str) -> Result<&[usize], TrainError> {
        self.known
            .get(v)
            .map(|k| k.fact.shape.as_slice())
            .ok_or_else(|| TrainError::Spec(format!("no shape known for value '{v}'")))
    }

    /// The constant value of a forward value, if it has one.
    pub fn value(&self, v: &str) -> Option<&Tensor> {
        self.known.get(v).and_then(|k| k.value.as_ref())
    }

    /// Appends a node (default domain when `grad` is false, else
    /// `whittle.grad`) named after `owner`.
    pub fn node(
        &mut self,
        owner: &str,
        op: &str,
        grad: bool,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<(&str, Attr)>,
    ) {
        let name = self.fresh(&format!("{owner}/{op}"));
        let mut n = Node::new(name, op, inputs, outputs);
        if grad {
            n.domain = DOMAIN.to_string();
        }
        for (k, v) in attrs {
            n.attrs.insert(k.to_string(), v);
        }
        self.nodes.push(n);
    }

    /// Appends a `whittle.grad` node that applies the derivative of `act`.
    pub fn node_with_activation(
        &mut self,
        owner: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        act: Activation,
    ) {
        self.node(owner, op, true, inputs, outputs, vec![]);
        if let Some(n) = self.nodes.last_mut() {
            n.activation = act;
        }
    }

    /// A new value name that will hold a contribution to `v`'s gradient.
    pub fn grad_out(&mut self, v: &str) -> String {
        let name = self.fresh(&format!("{v}.grad"));
        self.owner.insert(name.clone(), v.to_string());
        self.contribs
            .entry(v.to_string())
            .or_default()
            .push(name.clone());
        name
    }

    /// Records an existing value as a contribution to `v`'s gradient.
    pub fn pass(&mut self, v: &str, existing: &str) {
        self.contribs
            .entry(v.to_string())
            .or_default()
            .push(existing.to_string());
    }

    /// Records `created`, a value this pass just computed for `v` alone, as
    /// a contribution to `v`'s gradient.
    pub fn pass_owned(&mut self, v: &str, created: &str) {
        self.owner.insert(created.to_string(), v.to_string());
        self.pass(v, created);
    }

    /// An i64 constant.
    pub fn const_i64(&mut self, base: &str, values: Vec<i64>) -> String {
        let name = self.fresh(base);
        self.inits.push((name.clone(), Tensor::vec_i64(values)));
        name
    }

    /// An f32 constant.
    pub fn const_f32(&mut self, base: &str, shape: Vec<usize>, values: Vec<f32>) -> String {
        let name = self.fresh(base);
        let t = Tensor::from_f32(shape, values).expect("values match the shape");
        self.inits.push((name.clone(), t));
        name
    }

    /// The summed gradient of `v` (emitting Add nodes when it has several
    /// contributions), or `None` when nothing flows into it.
    pub fn total(&mut self, v: &str) -> Option<String> {
        let parts = self.contribs.remove(v)?;
        let mut acc = parts[0].clone();
        for p in &parts[1..] {
            let out = self.fresh(&format!("{v}.grad_sum"));
            self.node(v, "Add", false, &[&acc, p], &[&out], vec![]);
            self.owner.insert(out.clone(), v.to_string());
            acc = out;
        }
        Some(acc)
    }

    /// Makes the gradient of trainable `w` available as `target`: renames
    /// the producing node's output when the gradient is a value this pass
    /// created and nothing else reads, copies it otherwise.
    pub fn finish_weight(&mut self, w: &str, target: &str) -> bool {
        let Some(total) = self.total(w) else {
            return false;
        };
        let read = self.nodes.iter().any(|n| n.inputs.contains(&total));
        let produced = self.owner.get(&total).is_some_and(|o| o == w);
        if produced && !read {
            for n in &mut self.nodes {
                for o in &mut n.outputs {
                    if *o == total {
                        *o = target.to_string();
                    }
                }
            }
        } else {
            self.node(w, "Identity", false, &[&total], &[target], vec![]);
        }
        true
    }
}
