//! Data-dependent statistics for the pruning criteria: input-channel
//! activation norms (Wanda) and the empirical Fisher diagonal (OBD).

use std::collections::HashMap;

use whittle_data::Dataset;
use whittle_ir::{DType, Graph, Tensor, TensorData};
use whittle_train::{build_training_graph, BatchNormMode, Loss, TrainSpec};

use super::layers::{ActAxis, Layer};
use super::UnstructuredOptions;
use crate::calibrate::{compile, feeder, run_batches, with_outputs};
use crate::pipeline::Progress;
use crate::CompressError;

/// `‖X_j‖₂` for every input channel `j` of each layer's activation input,
/// over the first `opts.calib_samples` samples (all positions and samples
/// pooled, as Wanda does). Keyed by the activation tensor name.
pub(crate) fn activation_norms(
    g: &Graph,
    layers: &[&Layer],
    ds: &Dataset,
    opts: &UnstructuredOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<HashMap<String, Vec<f64>>, CompressError> {
    let mut tensors: Vec<String> = Vec::new();
    let mut axis: Vec<(ActAxis, usize)> = Vec::new();
    for l in layers {
        if !tensors.contains(&l.input) {
            tensors.push(l.input.clone());
            axis.push((l.layout.act_axis, l.layout.act_channels()));
        }
    }
    let f = feeder(g, ds, &opts.preprocess, opts.batch, &opts.input_shapes)?;
    let mut plan = compile(&with_outputs(g, &tensors), &f, opts.threads, "model")?;
    let n = opts.calib_samples.min(ds.len());
    let mut sums: Vec<Vec<f64>> = axis.iter().map(|(_, c)| vec![0.0; *c]).collect();
    let mut report = |done| {
        progress(Progress {
            stage: "activations",
            done,
            total: n,
        })
    };
    run_batches(&mut plan, &f, ds, n, &mut report, |out| {
        for (i, (data, shape)) in out.outputs.iter().zip(&out.shapes).enumerate() {
            let (ax, channels) = axis[i];
            let a = match ax {
                ActAxis::Zero => 0,
                ActAxis::One => 1,
                ActAxis::Last => shape.len().saturating_sub(1),
            };
            let c = shape.get(a).copied().unwrap_or(0);
            if c != channels {
                return Err(CompressError::Unsupported(format!(
                    "activation '{}' has shape {shape:?}: {c} channels on axis {a}, but its layer reads {channels}",
                    tensors[i]
                )));
            }
            let inner: usize = shape[a + 1..].iter().product();
            let acc = &mut sums[i];
            // `data` may hold fewer samples than `shape` says (last batch).
            for (p, &x) in data.iter().enumerate() {
                acc[(p / inner) % c] += f64::from(x) * f64::from(x);
            }
            if let Some(bad) = data.iter().find(|x| !x.is_finite()) {
                return Err(CompressError::NonFinite {
                    tensor: tensors[i].clone(),
                    what: if bad.is_nan() { "NaN" } else { "infinity" },
                    context: format!(" (calibration batch at sample {})", out.start),
                });
            }
        }
        Ok(())
    })?;
    Ok(tensors
        .into_iter()
        .zip(sums)
        .map(|(t, s)| (t, s.into_iter().map(f64::sqrt).collect()))
        .collect())
}

/// The value the loss reads as logits: the model's first output, or the
/// input of the (Log)Softmax producing it.
fn logits_of(g: &Graph) -> Result<String, CompressError> {
    let out = g
        .outputs
        .first()
        .ok_or_else(|| CompressError::Unsupported("the model has no outputs".into()))?;
    let producer = g.nodes.iter().find(|n| n.outputs.contains(&out.name));
    Ok(match producer {
        Some(n) if matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax") => n
            .inputs
            .first()
            .cloned()
            .unwrap_or_else(|| out.name.clone()),
        _ => out.name.clone(),
    })
}

/// The empirical Fisher diagonal `mean_i (∂L_i/∂w)²` of every layer's
/// weight, from per-sample gradients of the softmax cross-entropy of the
/// model's logits against the dataset's labels (batch 1, BatchNorm frozen
/// as at inference). Keyed by weight name.
pub(crate) fn fisher_diagonal(
    g: &Graph,
    layers: &[&Layer],
    ds: &Dataset,
    opts: &UnstructuredOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<HashMap<String, Vec<f64>>, CompressError> {
    let f = feeder(g, ds, &opts.preprocess, 1, &opts.input_shapes)?;
    let mut shape = f.shape.clone();
    shape[0] = 1;
    let mut labels_name = "labels".to_string();
    while g.initializers.contains_key(&labels_name)
        || g.inputs.iter().any(|i| i.name == labels_name)
        || g.nodes.iter().any(|n| n.outputs.contains(&labels_name))
    {
        labels_name.push('_');
    }
    let weights: Vec<String> = layers.iter().map(|l| l.weight.clone()).collect();
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: logits_of(g)?,
            labels: labels_name,
        },
        weights.clone(),
    );
    spec.batchnorm = BatchNormMode::Frozen;
    spec.input_shapes.insert(f.input.clone(), shape.clone());
    let ctx = "cannot compute gradients for OBD";
    let train = build_training_graph(g, &spec).map_err(|e| CompressError::runtime(ctx, e))?;
    let mut plan = train
        .compile(opts.threads.max(1))
        .map_err(|e| CompressError::runtime(ctx, e))?;
    let slot = |name: &str| {
        plan.inputs()
            .position(|i| i.name == name)
            .ok_or_else(|| CompressError::runtime(ctx, format!("no input '{name}'")))
    };
    let data_slot = slot(&f.input)?;
    let label_slot = slot(&train.labels)?;
    let weight_slots: Vec<(usize, &Tensor)> = train
        .initial
        .iter()
        .map(|(w, t)| Ok((slot(w)?, t)))
        .collect::<Result<_, CompressError>>()?;
    let grad_slots: Vec<usize> = train
        .grads
        .iter()
        .map(|(_, out)| {
            plan.outputs()
                .position(|o| o.name == *out)
                .ok_or_else(|| CompressError::runtime(ctx, format!("no output '{out}'")))
        })
        .collect::<Result<_, _>>()?;
    let mut x = Tensor::zeros(DType::F32, shape)?;
    let mut sums: Vec<Vec<f64>> = train
        .initial
        .iter()
        .map(|(_, t)| vec![0.0; t.numel()])
        .collect();
    let n = opts.calib_samples.min(ds.len());
    for i in 0..n {
        ds.fill(&f.spec, i, x.as_f32_mut()?)?;
        let y = Tensor::new(vec![1], TensorData::I64(vec![i64::from(ds.labels()[i])]))?;
        let run = |e| CompressError::runtime(format!("{ctx} (sample {i})"), e);
        plan.set_input_tensor(data_slot, &x).map_err(run)?;
        plan.set_input_tensor(label_slot, &y).map_err(run)?;
        // Input buffers live in the arena and are reused once read, so the
        // weights are fed again every run (as the trainer does).
        for (s, t) in &weight_slots {
            plan.set_input_tensor(*s, t).map_err(run)?;
        }
        plan.execute().map_err(run)?;
        for (acc, &o) in sums.iter_mut().zip(&grad_slots) {
            let grad = plan
                .output(o)
                .ok_or_else(|| CompressError::runtime(ctx, "missing gradient output"))?
                .f32();
            for (a, &gv) in acc.iter_mut().zip(grad) {
                *a += f64::from(gv) * f64::from(gv);
            }
        }
        progress(Progress {
            stage: "gradients",
            done: i + 1,
            total: n,
        });
    }
    let scale = 1.0 / n.max(1) as f64;

    Ok(train
        .initial
        .iter()
        .map(|(w, _)| w.clone())
        .zip(sums)
        .map(|(w, s)| (w, s.into_iter().map(|v| v * scale).collect()))
        .collect())
}
