//! The float graph quantization starts from: identities removed, BatchNorm
//! folded into the Conv/Gemm before it, Gemm's alpha/beta folded into its
//! constants.

use whittle_ir::{passes, Attr, Graph, Tensor};

use crate::CompressError;

/// Simplifies a float model for quantization (see the module doc). The
/// result computes the same function as `graph`.
pub fn prepare(graph: &Graph) -> Result<Graph, CompressError> {
    let mut g = graph.clone();
    g.topo_sort()?;
    let (g, _) = passes::remove_identities(g);
    let (mut g, _) = passes::fold_batchnorm(g);
    fold_gemm_scalars(&mut g)?;
    Ok(g)
}

/// Folds Gemm `alpha` into a constant B and `beta` into a constant C, so the
/// quantized Gemm has alpha = beta = 1 (what QGemm kernels assume).
fn fold_gemm_scalars(g: &mut Graph) -> Result<(), CompressError> {
    for i in 0..g.nodes.len() {
        let n = &g.nodes[i];
        if n.op_type != "Gemm" || !n.domain.is_empty() {
            continue;
        }
        let alpha = n.attr_float("alpha", 1.0)?;
        let beta = n.attr_float("beta", 1.0)?;
        let (Some(b), c) = (
            n.input(1).map(str::to_string),
            n.input(2).map(str::to_string),
        ) else {
            continue;
        };
        if alpha != 1.0 && is_f32_const(g, &b) && unique_reader(g, &b) {
            scale_initializer(g, &b, alpha)?;
            g.nodes[i].attrs.insert("alpha".into(), Attr::Float(1.0));
        }
        if let Some(c) = c {
            if beta != 1.0 && is_f32_const(g, &c) && unique_reader(g, &c) {
                scale_initializer(g, &c, beta)?;
                g.nodes[i].attrs.insert("beta".into(), Attr::Float(1.0));
            }
        }
    }
    Ok(())
}

fn is_f32_const(g: &Graph, name: &str) -> bool {
    g.initializers
        .get(name)
        .is_some_and(|t| t.dtype() == whittle_ir::DType::F32)
}

/// True when exactly one node input slot in the graph reads `name`, so
/// rewriting the initializer cannot change another node.
pub(crate) fn unique_reader(g: &Graph, name: &str) -> bool {
    let reads = g
        .nodes
        .iter()
        .flat_map(|n| n.inputs.iter())
        .filter(|i| i.as_str() == name)
        .count();
    reads == 1 && !g.is_output(name)
}

fn scale_initializer(g: &mut Graph, name: &str, k: f32) -> Result<(), CompressError> {
    if let Some(t) = g.initializers.get_mut(name) {
        t.as_f32_mut()?.iter_mut().for_each(|v| *v *= k);
    }
    Ok(())
}

/// Errors naming `name` if the float tensor holds NaN or infinity.
pub(crate) fn check_finite(name: &str, t: &Tensor, context: &str) -> Result<(), CompressError> {
    let Ok(v) = t.as_f32() else { return Ok(()) };
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(CompressError::NonFinite {
            tensor: name.to_string(),
            what: if v[i].is_nan() { "NaN" } else { "infinity" },
            context: format!("{context} at element {i}"),
        });
    }
    Ok(())
}
