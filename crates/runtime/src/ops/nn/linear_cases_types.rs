//! Test harness for the reference cases in `linear_cases.rs`: builds the
//! node, runs it with inputs constant (pre-packed weights) and non-constant
//! (run-time packing), on one and two threads, with and without a fused
//! activation, and compares against the reference outputs.

use smallvec::SmallVec;
use whittle_ir::{Attr, DType, Node, Tensor};

use crate::op::{BuildCtx, Built, InputFact, RunCtx};
use crate::{Fact, Parallel, Registry, View, ViewMut};

/// An attribute value.
pub(crate) enum A {
    I(i64),
    F(f32),
    S(&'static str),
    Is(&'static [i64]),
}

type T = (&'static [usize], &'static [f32]);

/// One reference case.
pub(crate) struct Case {
    pub name: &'static str,
    pub op: &'static str,
    pub opset: i64,
    pub attrs: &'static [(&'static str, A)],
    pub inputs: &'static [Option<T>],
    pub outputs: &'static [T],
}

impl Case {
    pub fn node(&self) -> Node {
        let names: Vec<String> = (0..self.inputs.len())
            .map(|i| {
                if self.inputs[i].is_some() {
                    format!("in{i}")
                } else {
                    String::new()
                }
            })
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut n = Node::new(self.name, self.op, &names, &["y"]);
        for (k, v) in self.attrs {
            let a = match v {
                A::I(i) => Attr::Int(*i),
                A::F(f) => Attr::Float(*f),
                A::S(s) => Attr::String(s.to_string()),
                A::Is(v) => Attr::Ints(v.to_vec()),
            };
            n = n.with_attr(k, a);
        }
        crate::ops::testing::test_support::typed_activation(n)
    }

    pub fn tensors(&self) -> Vec<Option<Tensor>> {
        self.inputs
            .iter()
            .map(|t| t.map(|(s, d)| Tensor::from_f32(s.to_vec(), d.to_vec()).unwrap()))
            .collect()
    }
}

/// Builds and runs `node`; inputs whose `constant` flag is false are only
/// known by their fact at build time.
pub(crate) fn eval_with(
    node: &Node,
    inputs: &[Option<Tensor>],
    constant: &[bool],
    opset: i64,
    threads: usize,
) -> Result<(Vec<Tensor>, String), String> {
    let reg = Registry::standard();
    let build = reg.get("", &node.op_type).ok_or("unregistered")?;
    let ctx = BuildCtx {
        node,
        inputs: inputs
            .iter()
            .zip(constant)
            .map(|(t, &c)| {
                t.as_ref().map(|t| InputFact {
                    fact: Fact::new(t.dtype(), t.shape().to_vec()),
                    value: c.then_some(t),
                })
            })
            .collect(),
        opset,
    };
    let (facts, kernel) = match build(&ctx).map_err(|e| e.to_string())? {
        Built::Kernel { outputs, kernel } => (outputs, kernel),
        Built::Constant(_) => return Err("unexpected constant".into()),
    };
    let mut outs: Vec<Tensor> = facts
        .iter()
        .map(|f| Tensor::zeros(f.dtype, f.shape.clone()).unwrap())
        .collect();
    // Poison outputs so that unwritten elements show up.
    for o in &mut outs {
        o.as_f32_mut().unwrap().fill(f32::NAN);
    }
    let views: SmallVec<[View<'_>; 4]> = inputs
        .iter()
        .map(|t| match t {
            Some(t) => View::of(t),
            None => View::new(DType::F32, &[]),
        })
        .collect();
    let mut out_views: SmallVec<[ViewMut<'_>; 1]> = outs.iter_mut().map(ViewMut::of).collect();
    let mut scratch = vec![0u64; kernel.scratch_bytes().div_ceil(8)];
    let par = Parallel::new(threads)?;
    let mut rc = RunCtx {
        scratch: bytemuck::cast_slice_mut(&mut scratch),
        par: &par,
    };
    kernel
        .run(&views, &mut out_views, &mut rc)
        .map_err(|e| e.to_string())?;
    drop(out_views);
    Ok((outs, kernel.name()))
}

pub(crate) fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4 * (1.0 + w.abs()),
            "{what}: element {i}: got {g}, want {w}"
        );
    }
}

/// Runs every case of the given ops in every mode.
pub(crate) fn check_cases(ops: &[&str]) {
    let mut ran = 0;
    for case in super::linear_cases::CASES
        .iter()
        .filter(|c| ops.contains(&c.op))
    {
        let node = case.node();
        let inputs = case.tensors();
        let n = inputs.len();
        let (oshape, odata) = case.outputs[0];
        let relu_node = node.clone().with_activation(whittle_ir::Activation::Relu);
        let relu_want: Vec<f32> = odata.iter().map(|v| v.max(0.0)).collect();
        // All constant; only input 0 dynamic; everything dynamic.
        let masks: [Vec<bool>; 3] = [
            vec![true; n],
            (0..n).map(|i| i != 0).collect(),
            vec![false; n],
        ];
        for mask in &masks {
            for threads in [1, 2] {
                for (nd, want) in [(&node, odata), (&relu_node, &relu_want[..])] {
                    let (outs, name) = eval_with(nd, &inputs, mask, case.opset, threads)
                        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
                    let what = format!("{} [{name}] const={mask:?} threads={threads}", case.name);
                    assert_eq!(outs[0].shape(), oshape, "{what}: shape");
                    assert_close(outs[0].as_f32().unwrap(), want, &what);
                }
            }
        }
        ran += 1;
    }
    assert!(ran > 0, "no cases for {ops:?}");
}
