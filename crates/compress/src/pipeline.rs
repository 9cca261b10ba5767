//! `quantize`: prepare, calibrate, decide, write, measure.

use std::collections::HashMap;

use whittle_data::{Dataset, Preprocess};
use whittle_ir::Graph;

use crate::analyze::{analyze, Analysis};
use crate::calibrate::{compile, feeder, run_batches, run_pair, with_outputs, Feeder};
use crate::emit::{emit, Bits, Decisions, Mode};
use crate::equalize::equalize;
use crate::int4::stored_bytes;
use crate::mixed;
use crate::observer::{Method, TensorStats};
use crate::report::{NodeReport, QuantReport, Sqnr};
use crate::weights::{act_qparams, ActType};
use crate::CompressError;

/// Options of [`quantize`].
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// Calibration method for activation ranges.
    pub method: Method,
    /// Activation element type.
    pub activation_type: ActType,
    /// Calibration samples (the first N of the dataset).
    pub calib_samples: usize,
    /// Samples per run when the model's batch dim is symbolic.
    pub batch: usize,
    /// How raw samples become model inputs.
    pub preprocess: Preprocess,
    /// Static input shapes (`--input-shape`).
    pub input_shapes: HashMap<String, Vec<usize>>,
    /// Threads kernels may use.
    pub threads: usize,
    /// Cross-layer equalization.
    pub equalize: bool,
    /// With equalization, replace ReLU6 (Clip 0..6) by Relu so those pairs
    /// can be equalized too (changes the float function).
    pub equalize_relu6: bool,
    /// Bias correction (on by default: it measurably helps, see
    /// docs/QUANTIZATION.md).
    pub bias_correction: bool,
    /// Put every eligible layer (Gemm/MatMul/1x1 Conv) at int4.
    pub int4: bool,
    /// int4 block size along the reduction axis (16..=256; 32 or 64 usual).
    pub int4_group: usize,
    /// Total initializer bytes the output must fit: chooses int4/int8/float
    /// per layer by sensitivity.
    pub size_budget: Option<usize>,
    /// Measure per-layer sensitivity even without a budget.
    pub sensitivity: bool,
    /// Samples used for sensitivity runs.
    pub sensitivity_samples: usize,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            method: DEFAULT_METHOD,
            activation_type: ActType::I8,
            calib_samples: 500,
            batch: 32,
            preprocess: Preprocess::default(),
            input_shapes: HashMap::new(),
            threads: 1,
            equalize: false,
            equalize_relu6: false,
            bias_correction: true,
            int4: false,
            int4_group: 32,
            size_budget: None,
            sensitivity: false,
            sensitivity_samples: 64,
        }
    }
}

/// The default calibration method: the best measured (docs/QUANTIZATION.md).
pub const DEFAULT_METHOD: Method = Method::Mse;

/// Progress of a long stage.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Stage name: `calibrate`, `histogram`, `sensitivity`, `measure`.
    pub stage: &'static str,
    /// Units done.
    pub done: usize,
    /// Units in the stage.
    pub total: usize,
}

/// A quantized model.
#[derive(Clone, Debug)]
pub struct Quantized {
    /// Standard QDQ ONNX graph (what to save).
    pub qdq: Graph,
    /// The same computation in float ops: runs on any whittle build and is
    /// what the report's SQNR figures measure.
    pub fake_quant: Graph,
    /// The float graph the quantization started from (BatchNorm folded,
    /// equalized): the reference of the SQNR figures.
    pub reference: Graph,
    /// Figures and decisions.
    pub report: QuantReport,
}

/// Quantizes `model` with activation ranges calibrated on the first
/// `opts.calib_samples` samples of `calib`.
pub fn quantize(
    model: &Graph,
    calib: &Dataset,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Quantized, CompressError> {
    check_options(opts)?;
    let mut g = crate::prepare(model)?;
    let eq = opts.equalize.then(|| equalize(&mut g, opts.equalize_relu6));
    let a = analyze(&g)?;
    let f = feeder(&g, calib, &opts.preprocess, opts.batch, &opts.input_shapes)?;
    let n = opts.calib_samples.min(calib.len());
    let stats = calibrate(&g, &a, &f, calib, n, opts, progress)?;
    let mut warnings = Vec::new();
    let mut act = HashMap::new();
    for (t, s) in stats.iter().filter(|(t, _)| !a.shares.contains_key(*t)) {
        let (lo, hi) = s.range(opts.method, 256);
        act.insert(t.clone(), act_qparams(lo, hi, opts.activation_type));
    }
    let mut d = Decisions {
        act,
        act_type: opts.activation_type,
        bits: vec![Bits::Int8; a.layers.len()],
        block: opts.int4_group,
        biases: HashMap::new(),
        quantize_acts: true,
    };
    if opts.int4 {
        for (b, l) in d.bits.iter_mut().zip(&a.layers) {
            if l.int4_ok {
                *b = Bits::Int4;
            }
        }
    }
    let sens = if opts.size_budget.is_some() || opts.sensitivity {
        Some(mixed::sensitivity(&g, &a, &d, &f, calib, opts, progress)?)
    } else {
        None
    };
    if let (Some(budget), Some(s)) = (opts.size_budget, &sens) {
        d.bits = mixed::choose(&g, &a, &d, s, budget)?;
    }
    let mut bias_corrected = Vec::new();
    if opts.bias_correction {
        for (li, l) in a.layers.iter().enumerate() {
            let means = stats.get(&l.input).and_then(|s| s.channel_means());
            if let Some(b) =
                crate::mixed::corrected_bias(&g, l, d.bits[li], d.block, means.as_deref())?
            {
                d.biases.insert(li, b);
                bias_corrected.push(g.nodes[l.node].name.clone());
            }
        }
    }
    let qdq = emit(&g, &a, &d, Mode::Qdq)?;
    let fake = emit(&g, &a, &d, Mode::FakeQuant)?;
    let weight_bytes_before: usize = model.initializers.values().map(stored_bytes).sum();
    let weight_bytes_after: usize = qdq.graph.initializers.values().map(stored_bytes).sum();
    if let Some(b) = opts.size_budget {
        if weight_bytes_after > b {
            warnings.push(format!(
                "the written model holds {weight_bytes_after} bytes of initializers, over the budget of {b}"
            ));
        }
    }
    let (node_sqnr, out_sqnr) = measure(&g, &a, &fake, &f, calib, n.min(1000), opts, progress)?;
    let nodes = node_reports(model, &g, &a, &d, &qdq.graph, &node_sqnr, sens.as_ref());
    for nr in &nodes {
        if let Some(db) = nr.sqnr_db {
            if db < 15.0 {
                warnings.push(format!(
                    "node '{}' ({}): SQNR {db:.1} dB is low; try another --method or leave it float",
                    nr.name, nr.op
                ));
            }
        }
    }
    let report = QuantReport {
        method: opts.method.name(),
        activation_type: opts.activation_type.name(),
        calibration_samples: n,
        opset: qdq.graph.opset(),
        int4_group: d.bits.contains(&Bits::Int4).then_some(d.block),
        equalization: eq,
        bias_corrected,
        nodes,
        float_nodes: a.float_nodes.clone(),
        weight_bytes_before,
        weight_bytes_after,
        output_sqnr_db: out_sqnr,
        size_budget: opts.size_budget,
        warnings,
    };
    Ok(Quantized {
        qdq: qdq.graph,
        fake_quant: fake.graph,
        reference: g,
        report,
    })
}

fn check_options(o: &QuantizeOptions) -> Result<(), CompressError> {
    if o.calib_samples == 0 {
        return Err(CompressError::Options(
            "--calib-samples must be at least 1".into(),
        ));
    }
    if !(16..=4096).contains(&o.int4_group) {
        return Err(CompressError::Options(format!(
            "--int4-group {} must be between 16 and 4096 (32 or 64 are usual)",
            o.int4_group
        )));
    }
    if o.threads == 0 || o.batch == 0 {
        return Err(CompressError::Options(
            "--threads and --batch must be at least 1".into(),
        ));
    }
    Ok(())
}

/// The tensor's channel axis for per-channel means, when it feeds a layer.
fn channel_axes(a: &Analysis) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for l in &a.layers {
        m.entry(l.input.clone()).or_insert(l.in_channel_axis);
    }
    m
}

/// `(channels, inner)` of `shape` at `axis` (`usize::MAX` = last).
fn channel_layout(shape: &[usize], axis: usize) -> (usize, usize) {
    if shape.is_empty() {
        return (0, 0);
    }
    let axis = if axis == usize::MAX {
        shape.len() - 1
    } else {
        axis.min(shape.len() - 1)
    };
    (shape[axis], shape[axis + 1..].iter().product())
}

/// Pass 1 (min/max, channel means, NaN/Inf) and, for histogram methods,
/// pass 2, over the calibrated root tensors.
fn calibrate(
    g: &Graph,
    a: &Analysis,
    f: &Feeder,
    ds: &Dataset,
    n: usize,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<HashMap<String, TensorStats>, CompressError> {
    let mut roots: Vec<String> = a
        .tensors
        .iter()
        .filter(|t| !a.shares.contains_key(*t))
        .cloned()
        .collect();
    let calibrated = roots.len();
    // Layer inputs that reuse another tensor's parameters (a Gemm after
    // Flatten) are still probed: bias correction needs their own
    // per-channel means.
    let axes = channel_axes(a);
    for l in &a.layers {
        if !roots.contains(&l.input) {
            roots.push(l.input.clone());
        }
    }
    let probe = with_outputs(g, &roots);
    let mut plan = compile(&probe, f, opts.threads, "float model for calibration")?;
    let producers = g.producers();
    let mut stats: Vec<TensorStats> = roots.iter().map(|_| TensorStats::new(0)).collect();
    let mut report = |stage, done| {
        progress(Progress {
            stage,
            done,
            total: n,
        })
    };
    run_batches(&mut plan, f, ds, n, &mut |d| report("calibrate", d), |b| {
        for (i, v) in b.outputs.iter().enumerate() {
            if let Some(k) = v.iter().position(|x| !x.is_finite()) {
                let per = (v.len() / b.shapes[i].first().copied().unwrap_or(1).max(1)).max(1);
                let node = producers
                    .get(roots[i].as_str())
                    .map(|&p| format!(", output of node '{}'", g.nodes[p].name))
                    .unwrap_or_else(|| " (graph input)".into());
                return Err(CompressError::NonFinite {
                    tensor: roots[i].clone(),
                    what: if v[k].is_nan() { "NaN" } else { "infinity" },
                    context: format!("{node}, on calibration sample {}", b.start + k / per),
                });
            }
            stats[i].observe_range(v);
            if let Some(&axis) = axes.get(&roots[i]) {
                let (c, inner) = channel_layout(b.shapes[i], axis);
                if stats[i].channel_sum.len() != c {
                    stats[i].channel_sum = vec![0.0; c];
                }
                stats[i].observe_channels(v, c, inner);
            }
        }
        Ok(())
    })?;
    if opts.method.needs_histogram() {
        run_batches(&mut plan, f, ds, n, &mut |d| report("histogram", d), |b| {
            for (i, v) in b.outputs.iter().enumerate().take(calibrated) {
                stats[i].observe_hist(v);
            }
            Ok(())
        })?;
    }
    Ok(roots.into_iter().zip(stats).collect())
}

/// Per-tensor SQNR and per-graph-output SQNR (dB).
type Measured = (HashMap<String, Option<f64>>, Vec<(String, Option<f64>)>);

/// SQNR of every quantized node's output and of the graph outputs:
/// reference float graph vs the fake-quant graph on the same samples.
#[allow(clippy::too_many_arguments)]
fn measure(
    g: &Graph,
    a: &Analysis,
    fake: &crate::emit::Emitted,
    f: &Feeder,
    ds: &Dataset,
    n: usize,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Measured, CompressError> {
    let outs: Vec<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let mut tensors: Vec<String> = a
        .tensors
        .iter()
        .filter(|t| fake.dq_name.contains_key(*t) && !outs.contains(t))
        .cloned()
        .collect();
    let k = tensors.len();
    let fake_names: Vec<String> = tensors
        .iter()
        .map(|t| fake.dq_name[t].clone())
        .chain(outs.iter().cloned())
        .collect();
    tensors.extend(outs.iter().cloned());
    let mut p_ref = compile(&with_outputs(g, &tensors), f, opts.threads, "float model")?;
    let mut p_q = compile(
        &with_outputs(&fake.graph, &fake_names),
        f,
        opts.threads,
        "fake-quantized model",
    )?;
    let mut acc = vec![Sqnr::default(); tensors.len()];
    let mut cb = |d: usize| {
        progress(Progress {
            stage: "measure",
            done: d,
            total: n,
        })
    };
    run_pair(&mut p_ref, &mut p_q, f, ds, n, &mut cb, |r, q| {
        for (i, s) in acc.iter_mut().enumerate() {
            s.add(r.outputs[i], q.outputs[i]);
        }
        Ok(())
    })?;
    let per_node: HashMap<String, Option<f64>> = tensors
        .iter()
        .zip(&acc)
        .map(|(t, s)| (t.clone(), s.db()))
        .collect();
    let out_sqnr = outs
        .iter()
        .enumerate()
        .map(|(i, o)| (o.clone(), acc[k + i].db()))
        .collect();
    Ok((per_node, out_sqnr))
}

/// Report rows for every quantized node, in graph order.
fn node_reports(
    model: &Graph,
    g: &Graph,
    a: &Analysis,
    d: &Decisions,
    qdq: &Graph,
    sqnr: &HashMap<String, Option<f64>>,
    sens: Option<&mixed::Sensitivity>,
) -> Vec<NodeReport> {
    let mut rows = Vec::new();
    let mut idx: Vec<&usize> = a.quantized.keys().collect();
    idx.sort();
    for &i in idx {
        let n = &g.nodes[i];
        let layer = a.layers.iter().position(|l| l.node == i);
        let output = match layer {
            Some(li) => a.layers[li].qoutput.clone(),
            None => n.outputs.first().cloned().unwrap_or_default(),
        };
        let bytes = |graph: &Graph, names: &[&str]| -> usize {
            names
                .iter()
                .filter_map(|k| graph.initializers.get(*k))
                .map(stored_bytes)
                .sum()
        };
        let (before, after) = match layer {
            Some(li) => {
                let l = &a.layers[li];
                let mut names = vec![l.weight.as_str()];
                if let Some(b) = &l.bias {
                    names.push(b);
                }
                let before = bytes(model, &names).max(bytes(g, &names));
                let after = qdq
                    .initializers
                    .iter()
                    .filter(|(k, _)| {
                        k.starts_with(&l.weight)
                            || l.bias.as_ref().is_some_and(|b| k.starts_with(b.as_str()))
                    })
                    .map(|(_, t)| stored_bytes(t))
                    .sum();
                (Some(before), Some(after))
            }
            None => (None, None),
        };
        let (s8, s4) = match (layer, sens) {
            (Some(li), Some(s)) => (
                s.int8.get(li).copied().flatten(),
                s.int4.get(li).copied().flatten(),
            ),
            _ => (None, None),
        };
        let int_op = a.quantized[&i];
        let bits = layer.map(|li| d.bits[li]);
        rows.push(NodeReport {
            name: n.name.clone(),
            op: n.op_type.clone(),
            int_op: match bits {
                Some(Bits::Int4) => "whittle::QBlockLinear".to_string(),
                Some(Bits::Float) => "float (DQ -> op -> Q)".to_string(),
                _ => int_op.to_string(),
            },
            weight_bits: bits,
            sqnr_db: sqnr.get(&output).copied().flatten(),
            output,
            weight_bytes_before: before,
            weight_bytes_after: after,
            sensitivity_int8_db: s8,
            sensitivity_int4_db: s4,
        });
    }
    rows
}
