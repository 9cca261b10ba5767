//! One importance score per class, summed over the filters that produce
//! its channels.

use std::collections::HashMap;

use whittle_data::{Dataset, Preprocess};
use whittle_ir::{DType, Graph, Tensor};
use whittle_train::{build_training_graph, BatchNormMode, Loss, TrainSpec};

use super::trace::{Facts, Role, Trace};
use super::ChannelImportance;
use crate::CompressError;

/// Calibration samples used for Taylor gradients.
const TAYLOR_SAMPLES: usize = 64;

/// Calls `f(position, slice)` for each position along `axis` of `t`, with
/// the values of that slice.
fn for_each_slice(
    t: &Tensor,
    axis: usize,
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = f64>),
) {
    let dims = t.shape();
    let outer: usize = dims[..axis].iter().product();
    let len = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let v = t.to_f64_vec();
    for p in 0..len {
        let mut it = (0..outer).flat_map(|o| {
            let base = (o * len + p) * inner;
            v[base..base + inner].iter().copied()
        });
        f(p, &mut it);
    }
}

/// Scores indexed by element; only class roots are meaningful.
pub(crate) fn scores(
    g: &Graph,
    facts: &Facts,
    tr: &Trace,
    kind: ChannelImportance,
    data: Option<&Dataset>,
) -> Result<Vec<f64>, CompressError> {
    let mut score = vec![0.0f64; tr.len()];
    let value = |node: usize, input: usize| -> Option<(&str, &Tensor)> {
        let name = g.nodes[node].input(input)?;
        Some((name, facts.get(name)?.value.as_ref()?))
    };
    let filters = tr.slices.iter().filter(|s| s.role == Role::Filter);
    let grads = if kind == ChannelImportance::Taylor {
        let data = data.ok_or_else(|| {
            CompressError::Options("Taylor importance needs calibration data".into())
        })?;
        let mut names: Vec<String> = filters
            .clone()
            .filter_map(|s| value(s.node, s.input))
            .filter(|(n, t)| g.initializers.contains_key(*n) && t.dtype() == DType::F32)
            .map(|(n, _)| n.to_string())
            .collect();
        names.sort();
        names.dedup();
        taylor(g, names, data)?
    } else {
        HashMap::new()
    };
    let mut has_norm = vec![false; tr.len()];
    let mut fallback = vec![0.0f64; tr.len()];
    for s in &tr.slices {
        let Some((name, t)) = value(s.node, s.input) else {
            continue;
        };
        match (s.role, kind) {
            (Role::NormScale, _) => {
                for_each_slice(t, s.axis, |p, it| {
                    let c = tr.class(s.elems[p]);
                    has_norm[c] = true;
                    if kind == ChannelImportance::BatchNormScale {
                        score[c] += it.map(f64::abs).sum::<f64>();
                    }
                });
            }
            (Role::Filter, ChannelImportance::Taylor) => {
                let Some(gr) = grads.get(name) else { continue };
                // |w * g| accumulated per batch, then sliced like w.
                let prod =
                    Tensor::from_f32(t.shape().to_vec(), gr.iter().map(|&x| x as f32).collect())?;
                for_each_slice(&prod, s.axis, |p, it| {
                    score[tr.class(s.elems[p])] += it.sum::<f64>();
                });
            }
            (Role::Filter, _) => {
                for_each_slice(t, s.axis, |p, it| {
                    let c = tr.class(s.elems[p]);
                    let v = if kind == ChannelImportance::L2 {
                        it.map(|x| x * x).sum::<f64>().sqrt()
                    } else {
                        it.map(f64::abs).sum::<f64>()
                    };
                    if kind == ChannelImportance::BatchNormScale {
                        fallback[c] += v;
                    } else {
                        score[c] += v;
                    }
                });
            }
            _ => {}
        }
    }
    if kind == ChannelImportance::BatchNormScale {
        // Classes that meet no norm are scored by L1 instead.
        for (c, s) in score.iter_mut().enumerate() {
            if !has_norm[c] {
                *s = fallback[c];
            }
        }
    }
    Ok(score)
}

/// Sum over calibration batches of |w · dL/dw| for each of `names`, the
/// loss being softmax cross-entropy of the model's output as logits.
fn taylor(
    g: &Graph,
    names: Vec<String>,
    data: &Dataset,
) -> Result<HashMap<String, Vec<f64>>, CompressError> {
    let [out] = g.outputs.as_slice() else {
        return Err(CompressError::Options(format!(
            "Taylor importance needs a model with one output (logits), this one has {}",
            g.outputs.len()
        )));
    };
    let feeder = crate::calibrate::feeder(g, data, &Preprocess::default(), 8, &HashMap::new())?;
    let batch = feeder.shape[0].max(1);
    let labels = g.fresh_name("labels");
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: out.name.clone(),
            labels: labels.clone(),
        },
        names,
    );
    spec.batchnorm = BatchNormMode::Frozen;
    spec.input_shapes
        .insert(feeder.input.clone(), feeder.shape.clone());
    let err = |e: &dyn std::fmt::Display| CompressError::runtime("Taylor gradients", e);
    let tg = build_training_graph(g, &spec).map_err(|e| err(&e))?;
    let mut plan = tg.compile(1).map_err(|e| err(&e))?;
    let names: Vec<String> = plan.inputs().map(|i| i.name.clone()).collect();
    let slot = |name: &str| names.iter().position(|i| i == name);
    let (Some(x_slot), Some(y_slot)) = (slot(&feeder.input), slot(&tg.labels)) else {
        return Err(CompressError::runtime(
            "Taylor gradients",
            "training graph lost its inputs",
        ));
    };
    let mut weights = Vec::new();
    for (name, t) in &tg.initial {
        let s = slot(name).ok_or_else(|| {
            CompressError::runtime("Taylor gradients", format!("no input '{name}'"))
        })?;
        plan.set_input_tensor(s, t).map_err(|e| err(&e))?;
        weights.push((name.clone(), t.to_f32_vec()));
    }
    let grad_slots: Vec<usize> = tg
        .grads
        .iter()
        .map(|(_, gname)| {
            plan.outputs()
                .position(|o| &o.name == gname)
                .unwrap_or(usize::MAX)
        })
        .collect();
    let mut acc: HashMap<String, Vec<f64>> = weights
        .iter()
        .map(|(n, w)| (n.clone(), vec![0.0; w.len()]))
        .collect();
    let mut seen = 0;
    for b in data.batches(&feeder.spec, batch) {
        let b = b?;
        if b.labels.len() != batch || seen >= TAYLOR_SAMPLES {
            break;
        }
        seen += batch;
        plan.set_input_tensor(x_slot, &b.x).map_err(|e| err(&e))?;
        let y = Tensor::from_i64(
            vec![batch],
            b.labels.iter().map(|&l| i64::from(l)).collect(),
        )?;
        plan.set_input_tensor(y_slot, &y).map_err(|e| err(&e))?;
        plan.execute().map_err(|e| err(&e))?;
        for ((name, w), &gs) in weights.iter().zip(&grad_slots) {
            let Some(gv) = plan.output(gs) else { continue };
            let a = acc.get_mut(name).expect("made above");
            for ((a, &w), &g) in a.iter_mut().zip(w).zip(gv.f32()) {
                *a += f64::from((w * g).abs());
            }
        }
    }
    if seen == 0 {
        return Err(CompressError::Options(format!(
            "Taylor importance needs at least {batch} calibration samples"
        )));
    }
    Ok(acc)
}
