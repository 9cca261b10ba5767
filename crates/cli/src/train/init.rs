//! Fresh weights (`--reinit`) and fixed sparsity masks (`--keep-sparsity`).

use std::collections::HashMap;

use anyhow::Result;
use whittle::{Graph, Tensor};

/// SplitMix64: a tiny seeded generator; any fixed one keeps `--reinit`
/// reproducible.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // 24 random bits -> [-1, 1).
        (z >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// Replaces learned parameters with PyTorch's default initialisation:
/// Conv and Gemm weights and biases uniform in +-1/sqrt(fan_in) (what
/// `kaiming_uniform_(a=sqrt(5))` gives), BatchNormalization scale 1, bias
/// 0, running mean 0, running variance 1. Returns how many tensors changed.
pub fn reinit(graph: &mut Graph, seed: u64) -> Result<usize> {
    let mut rng = Rng(seed ^ 0x5eed_1417_c0ff_ee00);
    // (initializer, value source) in graph order, so the stream of random
    // numbers each tensor gets is fixed by the graph.
    let mut plan: Vec<(String, Option<f32>, f32)> = Vec::new();
    for n in &graph.nodes {
        let input = |k: usize| n.inputs.get(k).filter(|s| !s.is_empty()).cloned();
        match n.op_type.as_str() {
            "Conv" | "Gemm" => {
                let Some(shape) = input(1)
                    .and_then(|w| graph.initializers.get(&w))
                    .map(|t| t.shape().to_vec())
                else {
                    continue;
                };
                let fan_in = if n.op_type == "Conv" {
                    shape.iter().skip(1).product::<usize>()
                } else if n.attr_int("transB", 0)? != 0 {
                    shape.get(1).copied().unwrap_or(1)
                } else {
                    shape.first().copied().unwrap_or(1)
                };
                let bound = 1.0 / (fan_in.max(1) as f32).sqrt();
                plan.extend(
                    [1, 2]
                        .into_iter()
                        .filter_map(input)
                        .map(|w| (w, None, bound)),
                );
            }
            "BatchNormalization" => {
                for (k, v) in [(1, 1.0), (2, 0.0), (3, 0.0), (4, 1.0)] {
                    if let Some(w) = input(k) {
                        plan.push((w, Some(v), 0.0));
                    }
                }
            }
            _ => {}
        }
    }
    let mut changed = 0;
    for (name, constant, bound) in plan {
        let Some(t) = graph.initializers.get_mut(&name) else {
            continue;
        };
        let Ok(values) = t.as_f32_mut() else {
            continue;
        };
        for v in values.iter_mut() {
            *v = constant.unwrap_or_else(|| bound * rng.uniform());
        }
        changed += 1;
    }
    Ok(changed)
}

/// For each weight in `names` with exact zeros, a 0/1 mask of its nonzero
/// entries; also returns the total count of masked entries.
pub fn sparsity_masks(graph: &Graph, names: &[String]) -> Result<(HashMap<String, Tensor>, usize)> {
    let mut masks = HashMap::new();
    let mut zeros = 0;
    for name in names {
        let Some(t) = graph.initializers.get(name) else {
            continue;
        };
        let w = t.as_f32()?;
        let z = w.iter().filter(|&&v| v == 0.0).count();
        if z > 0 {
            zeros += z;
            let m = w
                .iter()
                .map(|&v| if v == 0.0 { 0.0 } else { 1.0 })
                .collect();
            masks.insert(name.clone(), Tensor::from_f32(t.shape().to_vec(), m)?);
        }
    }
    Ok((masks, zeros))
}
