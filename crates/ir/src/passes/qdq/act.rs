//! Relu/Clip fused into the requantizing clamp of QLinear producers.

use super::pattern::{dq_act, konst, q_out, Maps, QParam};
use super::{MS_DOMAIN, WHITTLE_DOMAIN};
use crate::{Activation, Graph, Node, Patch};

/// The activation a float linear node carries, if the integer kernels can
/// apply it in their requantizing clamp (none, Relu or Clip).
pub(super) fn carried_act(n: &Node) -> Option<Activation> {
    n.activation.as_clamp().map(|_| n.activation)
}

/// The activation of a float node (Clip bounds must be constants, from
/// initializers or Constant nodes).
pub(super) fn act_of_node(g: &Graph, maps: &Maps<'_>, n: &Node) -> Option<Activation> {
    let of = n.info().activation?;
    of(n, &|i| konst(g, maps, n.input(i)?)?.as_scalar_f32())
}

/// Input indices of (y_scale, y_zero_point) of QLinear ops that requantize
/// through a clamp, so they can apply a fused Relu or Clip.
fn y_param_slots(n: &Node) -> Option<(usize, usize)> {
    match (n.domain.as_str(), n.op_type.as_str()) {
        ("", "QLinearConv") | ("", "QLinearMatMul") => Some((6, 7)),
        (MS_DOMAIN, "QGemm") => Some((7, 8)),
        (WHITTLE_DOMAIN, "QBlockLinear") => Some((5, 6)),
        _ => None,
    }
}

/// `P -> DQ -> Relu|Clip -> Q` with P a QLinear op: P applies the
/// activation in its clamp and writes Q's output with Q's parameters.
pub(super) fn fuse_act_into_producer(g: &Graph, maps: &Maps<'_>, i: usize) -> Option<Patch> {
    let act = &g.nodes[i];
    let activation = act_of_node(g, maps, act).filter(|a| a.as_clamp().is_some())?;
    let (dq, dqp) = dq_act(g, maps, act.input(0)?)?;
    maps.sole_consumer(g, act.input(0)?).filter(|c| c.0 == i)?;
    let (pi, p) = maps.producer(g, &dqp.value)?;
    let (ys, yz) = y_param_slots(p)?;
    if p.activation != Activation::None || p.outputs.len() != 1 {
        return None;
    }
    maps.sole_consumer(g, &dqp.value).filter(|c| c.0 == dq)?;
    // The producer's own output parameters must be the DQ's.
    let py = QParam {
        scale: konst(g, maps, p.input(ys)?)?
            .to_f32_vec()
            .first()
            .copied()?,
        zp: konst(g, maps, p.input(yz)?)?
            .to_i64_vec()
            .ok()?
            .first()
            .copied()? as i32,
        dtype: konst(g, maps, p.input(yz)?)?.dtype(),
        ..dqp.clone()
    };
    if !py.same(&dqp) {
        return None;
    }
    let (qi, q) = q_out(g, maps, act.outputs.first()?)?;
    if q.dtype != dqp.dtype {
        return None;
    }
    let mut node = p.clone();
    node.inputs[ys].clone_from(&q.scale_name);
    node.inputs[yz].clone_from(&q.zp_name);
    node.outputs = vec![q.value.clone()];
    node.activation = activation;
    let mut patch = Patch::new();
    patch.replace_node(pi, node);
    for r in [dq, i, qi] {
        patch.remove_node(r);
    }
    Some(patch)
}
