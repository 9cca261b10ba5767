//! Backward operators for training graphs, in the domain [`DOMAIN`]. The
//! autodiff pass (crate `whittle-train`) emits them; they follow the same
//! contract as the forward ops (builders validate and size everything, run
//! allocates nothing), so a training graph compiles and plans like any
//! other graph.
//!
//! Attribute conventions: geometry attributes are explicit (the autodiff
//! pass resolves `auto_pad` into `pads`), and shapes a kernel cannot read
//! from its inputs (the forward input shape of a conv or pool) are given as
//! ints attributes.

use crate::Registry;

mod act;
mod batchnorm;
mod conv;
mod geom;
mod loss;
mod pool;
mod qas_update;
mod sum_to;
#[cfg(test)]
mod tests;
mod update;

pub use qas_update::{rounding_key, rounding_uniform};

/// Operator domain of the backward ops.
pub const DOMAIN: &str = "whittle.grad";

/// Registers every backward op in [`DOMAIN`].
pub fn register(r: &mut Registry) {
    act::register(r);
    batchnorm::register(r);
    conv::register(r);
    loss::register(r);
    pool::register(r);
    qas_update::register(r);
    sum_to::register(r);
    update::register(r);
}

/// Output facts for the node's declared outputs: `full[k]` for a named
/// output, an empty tensor for an omitted one (so it costs no memory).
pub(crate) fn fit_outputs(
    ctx: &crate::op::BuildCtx<'_>,
    full: Vec<crate::Fact>,
) -> Vec<crate::Fact> {
    let declared = ctx.node.outputs.len().clamp(1, full.len());
    full.into_iter()
        .take(declared)
        .enumerate()
        .map(|(k, f)| {
            if k > 0 && ctx.node.outputs.get(k).is_none_or(|s| s.is_empty()) {
                crate::Fact::new(f.dtype, vec![0])
            } else {
                f
            }
        })
        .collect()
}

/// True when output `k` is declared with a name.
pub(crate) fn wants(ctx: &crate::op::BuildCtx<'_>, k: usize) -> bool {
    ctx.node.outputs.get(k).is_some_and(|s| !s.is_empty())
}
