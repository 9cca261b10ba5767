//! Running a graph over calibration samples and handing chosen intermediate
//! tensors to a callback, batch by batch.

use std::collections::HashMap;

use whittle_data::{Dataset, InputSpec, Preprocess};
use whittle_ir::{DType, Dim, Graph, Tensor, ValueInfo};
use whittle_runtime::{CompileOptions, Plan};

use crate::CompressError;

/// How samples are fed to the model's one input.
#[derive(Clone, Debug)]
pub(crate) struct Feeder {
    pub input: String,
    /// Full input shape `[batch, ...sample]`.
    pub shape: Vec<usize>,
    pub spec: InputSpec,
}

fn shape_text(dtype: DType, shape: &[usize]) -> String {
    format!("{dtype} {shape:?}")
}

/// Checks that `ds` fits the model's single float input and resolves the
/// batch shape: declared dims win, a symbolic batch dim becomes `batch`.
pub(crate) fn feeder(
    g: &Graph,
    ds: &Dataset,
    pre: &Preprocess,
    batch: usize,
    shapes: &HashMap<String, Vec<usize>>,
) -> Result<Feeder, CompressError> {
    let input = match g.inputs.as_slice() {
        [one] => one,
        many => {
            return Err(CompressError::Unsupported(format!(
                "calibration feeds one input, but the model has {} ({})",
                many.len(),
                many.iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let data_shape = ds.sample_shape().to_vec();
    let mut shape: Vec<usize> = match (shapes.get(&input.name), input.shape.as_deref()) {
        (Some(s), _) => s.clone(),
        (None, Some(dims)) if !dims.is_empty() => {
            let rest = &dims[1..];
            let mut s = vec![match dims[0] {
                Dim::Known(k) => k,
                _ => batch.max(1),
            }];
            for (i, d) in rest.iter().enumerate() {
                s.push(match d {
                    Dim::Known(k) => *k,
                    _ if rest.len() == data_shape.len() => data_shape[i],
                    _ => 0,
                });
            }
            s
        }
        _ => std::iter::once(batch.max(1))
            .chain(data_shape.clone())
            .collect(),
    };
    if shape.is_empty() {
        shape.push(1);
    }
    let mismatch = |want: String| CompressError::CalibrationMismatch {
        source_path: ds.source().to_path_buf(),
        input: input.name.clone(),
        want,
        got: format!("f32 {data_shape:?} per sample"),
    };
    if input.dtype != DType::F32 {
        return Err(mismatch(format!(
            "{} per sample",
            shape_text(input.dtype, &shape[1..])
        )));
    }
    let spec = ds
        .input_spec(&shape[1..], pre)
        .map_err(|_| mismatch(format!("f32 {:?} per sample", &shape[1..])))?;
    Ok(Feeder {
        input: input.name.clone(),
        shape,
        spec,
    })
}

/// `g` with its outputs replaced by `tensors` (all f32).
pub(crate) fn with_outputs(g: &Graph, tensors: &[String]) -> Graph {
    let mut g = g.clone();
    g.outputs = tensors
        .iter()
        .map(|t| ValueInfo {
            name: t.clone(),
            dtype: DType::F32,
            shape: None,
        })
        .collect();
    g
}

/// Compiles `g` for the feeder's input shape.
pub(crate) fn compile(
    g: &Graph,
    f: &Feeder,
    threads: usize,
    what: &str,
) -> Result<Plan, CompressError> {
    let mut opts = CompileOptions {
        threads: threads.max(1),
        ..CompileOptions::default()
    };
    opts.input_shapes.insert(f.input.clone(), f.shape.clone());
    whittle_runtime::compile(g, &opts)
        .map_err(|e| CompressError::runtime(format!("cannot compile the {what}"), e))
}

/// One batch's outputs: `outputs[i]` is the i-th requested tensor as f32,
/// restricted to the `valid` real samples when its first dim is the batch.
pub(crate) struct BatchOut<'a> {
    pub outputs: Vec<&'a [f32]>,
    pub shapes: Vec<&'a [usize]>,
    /// First sample index of the batch.
    pub start: usize,
}

/// Runs `plan` over the first `n` samples, calling `f` per batch and
/// `progress(done)` after each.
pub(crate) fn run_batches(
    plan: &mut Plan,
    f: &Feeder,
    ds: &Dataset,
    n: usize,
    progress: &mut dyn FnMut(usize),
    mut each: impl FnMut(&BatchOut<'_>) -> Result<(), CompressError>,
) -> Result<(), CompressError> {
    let mut plans = [plan];
    run_many(&mut plans, f, ds, n, progress, |outs| each(&outs[0]))
}

/// Runs two plans (same input) in lockstep, so their outputs for the same
/// batch can be compared without storing either.
pub(crate) fn run_pair(
    a: &mut Plan,
    b: &mut Plan,
    f: &Feeder,
    ds: &Dataset,
    n: usize,
    progress: &mut dyn FnMut(usize),
    mut each: impl FnMut(&BatchOut<'_>, &BatchOut<'_>) -> Result<(), CompressError>,
) -> Result<(), CompressError> {
    let mut plans = [a, b];
    run_many(&mut plans, f, ds, n, progress, |outs| {
        each(&outs[0], &outs[1])
    })
}

fn float_outputs(plan: &Plan) -> Result<Vec<Vec<usize>>, CompressError> {
    let mut shapes = Vec::new();
    for o in plan.outputs() {
        if o.fact.dtype != DType::F32 {
            return Err(CompressError::Unsupported(format!(
                "tensor '{}' is {}, not float: it cannot be calibrated",
                o.name, o.fact.dtype
            )));
        }
        shapes.push(o.fact.shape.clone());
    }
    Ok(shapes)
}

fn run_many(
    plans: &mut [&mut Plan],
    f: &Feeder,
    ds: &Dataset,
    n: usize,
    progress: &mut dyn FnMut(usize),
    mut each: impl FnMut(&[BatchOut<'_>]) -> Result<(), CompressError>,
) -> Result<(), CompressError> {
    let batch = f.shape[0].max(1);
    let mut x = Tensor::zeros(DType::F32, f.shape.clone())?;
    let shapes: Vec<Vec<Vec<usize>>> = plans
        .iter()
        .map(|p| float_outputs(p))
        .collect::<Result<_, _>>()?;
    let mut start = 0;
    let n = n.min(ds.len());
    while start < n {
        let got = ds.fill(&f.spec, start, x.as_f32_mut()?)?;
        let valid = got.min(n - start);
        if valid == 0 {
            break;
        }
        for p in plans.iter_mut() {
            p.set_input_tensor(0, &x)
                .map_err(|e| CompressError::runtime("calibration input", e))?;
            p.execute()
                .map_err(|e| CompressError::runtime("running the model on calibration data", e))?;
        }
        let mut outs = Vec::with_capacity(plans.len());
        for (p, shapes) in plans.iter().zip(&shapes) {
            let mut outputs = Vec::with_capacity(shapes.len());
            for (i, shape) in shapes.iter().enumerate() {
                let all = p
                    .output(i)
                    .ok_or_else(|| CompressError::runtime("calibration", "missing output"))?
                    .f32();
                let per_batch = shape.first() == Some(&batch) && batch > 1;
                outputs.push(if per_batch && valid < batch {
                    &all[..all.len() / batch * valid]
                } else {
                    all
                });
            }
            outs.push(BatchOut {
                outputs,
                shapes: shapes.iter().map(Vec::as_slice).collect(),
                start,
            });
        }
        each(&outs)?;
        start += valid;
        progress(start);
    }
    Ok(())
}
