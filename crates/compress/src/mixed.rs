//! Mixed precision (per-layer sensitivity, size budget) and bias
//! correction.

use whittle_data::Dataset;
use whittle_ir::Graph;

use crate::analyze::{Analysis, Layer};
use crate::calibrate::{compile, run_pair, with_outputs, Feeder};
use crate::emit::{emit, Bits, Decisions, Mode};
use crate::pipeline::{Progress, QuantizeOptions};
use crate::report::Sqnr;
use crate::weights::{
    block_scale_shape, dequantize_blocked, dequantize_per_channel, quantize_blocked,
    quantize_per_channel, split_axis,
};
use crate::CompressError;

/// Model-output SQNR (dB) with only one layer's weights quantized, per
/// layer (`None`: not measured or not eligible).
#[derive(Clone, Debug, Default)]
pub(crate) struct Sensitivity {
    pub int8: Vec<Option<f64>>,
    pub int4: Vec<Option<f64>>,
}

/// Measures each layer alone at int8 and (if eligible) int4, activations
/// float, on the first `sensitivity_samples` calibration samples.
pub(crate) fn sensitivity(
    g: &Graph,
    a: &Analysis,
    d: &Decisions,
    f: &Feeder,
    ds: &Dataset,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<Sensitivity, CompressError> {
    let outs: Vec<String> = g.outputs.iter().map(|o| o.name.clone()).collect();
    let n = opts.sensitivity_samples.clamp(1, ds.len().max(1));
    let mut p_ref = compile(&with_outputs(g, &outs), f, opts.threads, "float model")?;
    let runs: Vec<(usize, Bits)> = a
        .layers
        .iter()
        .enumerate()
        .flat_map(|(li, l)| {
            let mut v = vec![(li, Bits::Int8)];
            if l.int4_ok {
                v.push((li, Bits::Int4));
            }
            v
        })
        .collect();
    let mut s = Sensitivity {
        int8: vec![None; a.layers.len()],
        int4: vec![None; a.layers.len()],
    };
    for (k, &(li, bits)) in runs.iter().enumerate() {
        let mut one = d.clone();
        one.quantize_acts = false;
        one.biases.clear();
        one.bits = vec![Bits::Float; a.layers.len()];
        one.bits[li] = bits;
        let e = emit(g, a, &one, Mode::FakeQuant)?;
        let mut p = compile(
            &with_outputs(&e.graph, &outs),
            f,
            opts.threads,
            "sensitivity model",
        )?;
        let mut acc = Sqnr::default();
        run_pair(&mut p_ref, &mut p, f, ds, n, &mut |_| {}, |r, q| {
            for (x, y) in r.outputs.iter().zip(&q.outputs) {
                acc.add(x, y);
            }
            Ok(())
        })?;
        let slot = if bits == Bits::Int4 {
            &mut s.int4
        } else {
            &mut s.int8
        };
        slot[li] = acc.db();
        progress(Progress {
            stage: "sensitivity",
            done: k + 1,
            total: runs.len(),
        });
    }
    Ok(s)
}

/// Bytes a layer's weight and bias take at `bits`, as [`emit`] writes them.
fn layer_bytes(g: &Graph, l: &Layer, bits: Bits, block: usize) -> usize {
    let w = &g.initializers[&l.weight];
    let c = w.shape()[l.out_axis];
    let has_bias = l.bias.is_some();
    match bits {
        Bits::Float => w.byte_size() + if has_bias { 4 * c } else { 0 },
        Bits::Int8 => w.numel() + 5 * c + if has_bias { 12 * c } else { 0 },
        Bits::Int4 => {
            let scales: usize = block_scale_shape(w.shape(), l.k_axis, block)
                .iter()
                .product();
            w.numel().div_ceil(2) + 4 * scales + if has_bias { 4 * c } else { 0 }
        }
    }
}

/// Relative output noise power at a given SQNR.
fn noise(db: Option<f64>) -> f64 {
    db.map_or(0.0, |d| 10f64.powf(-d / 10.0))
}

/// Chooses int4 / int8 / float per layer so the model's initializers fit
/// `budget` bytes with the least added output noise: starting from int8
/// everywhere, layers move to int4 in order of least noise added per byte
/// saved until the model fits; spare room then lifts layers to float in
/// order of most noise removed per byte spent.
pub(crate) fn choose(
    g: &Graph,
    a: &Analysis,
    d: &Decisions,
    s: &Sensitivity,
    budget: usize,
) -> Result<Vec<Bits>, CompressError> {
    // Everything that is not a layer weight (activation scales, other
    // constants) is fixed: measure it from an all-int8 emission.
    let mut all8 = d.clone();
    all8.bits = vec![Bits::Int8; a.layers.len()];
    all8.biases.clear();
    let e = emit(g, a, &all8, Mode::Qdq)?;
    let total8: usize = e
        .graph
        .initializers
        .values()
        .map(crate::int4::stored_bytes)
        .sum();
    let sizes = |b: Bits| -> Vec<usize> {
        a.layers
            .iter()
            .map(|l| layer_bytes(g, l, b, d.block))
            .collect()
    };
    let (s8, s4, sf) = (sizes(Bits::Int8), sizes(Bits::Int4), sizes(Bits::Float));
    let fixed = total8.saturating_sub(s8.iter().sum::<usize>());
    let mut bits = vec![Bits::Int8; a.layers.len()];
    let size_of = |bits: &[Bits]| -> usize {
        fixed
            + bits
                .iter()
                .enumerate()
                .map(|(i, b)| match b {
                    Bits::Int8 => s8[i],
                    Bits::Int4 => s4[i],
                    Bits::Float => sf[i],
                })
                .sum::<usize>()
    };
    while size_of(&bits) > budget {
        let best = (0..bits.len())
            .filter(|&i| bits[i] == Bits::Int8 && a.layers[i].int4_ok && s8[i] > s4[i])
            .min_by(|&i, &j| {
                let cost = |k: usize| {
                    (noise(s.int4[k]) - noise(s.int8[k])).max(0.0) / (s8[k] - s4[k]) as f64
                };
                cost(i).total_cmp(&cost(j))
            });
        match best {
            Some(i) => bits[i] = Bits::Int4,
            None => {
                return Err(CompressError::Budget {
                    budget,
                    detail: format!(
                        "the smallest reachable size is {} bytes (every eligible Gemm/MatMul/1x1 Conv at int4, \
                         the rest at int8); raise the budget or use a larger --int4-group \
                         (fewer scales)",
                        size_of(&bits)
                    ),
                });
            }
        }
    }
    // Spend what is left lifting the most sensitive layers to float.
    loop {
        let room = budget - size_of(&bits);
        let cur = |k: usize| match bits[k] {
            Bits::Int8 => (noise(s.int8[k]), s8[k]),
            Bits::Int4 => (noise(s.int4[k]), s4[k]),
            Bits::Float => (0.0, sf[k]),
        };
        let best = (0..bits.len())
            .filter(|&k| bits[k] != Bits::Float && sf[k] - cur(k).1 <= room && cur(k).0 > 0.0)
            .max_by(|&i, &j| {
                let gain = |k: usize| cur(k).0 / (sf[k] - cur(k).1).max(1) as f64;
                gain(i).total_cmp(&gain(j))
            });
        match best {
            Some(k) => bits[k] = Bits::Float,
            None => break,
        }
    }
    Ok(bits)
}

/// Bias correction: the quantized layer computes `Wq x + b`; its expected
/// output differs from the float layer's by `(W - Wq) E[x]` per output
/// channel, which is added to the bias. `E[x]` is the per-channel mean of
/// the layer's input over the calibration data (exact for Gemm/MatMul; for
/// Conv it ignores zero padding at the borders). Returns `None` when the
/// layer has no bias, stays float, or means are missing.
pub(crate) fn corrected_bias(
    g: &Graph,
    l: &Layer,
    bits: Bits,
    block: usize,
    means: Option<&[f64]>,
) -> Result<Option<Vec<f32>>, CompressError> {
    let (Some(bname), Some(means)) = (&l.bias, means) else {
        return Ok(None);
    };
    if bits == Bits::Float {
        return Ok(None);
    }
    let w = &g.initializers[&l.weight];
    let shape = w.shape().to_vec();
    let wv = w.as_f32()?;
    let wq = match bits {
        Bits::Int8 => {
            let (q, s) = quantize_per_channel(wv, &shape, l.out_axis, 127);
            dequantize_per_channel(&q, &s, &shape, l.out_axis)
        }
        _ => {
            let (q, s) = quantize_blocked(wv, &shape, l.k_axis, block);
            dequantize_blocked(&q, &s, &shape, l.k_axis, block)
        }
    };
    let mut b = g.initializers[bname].as_f32()?.to_vec();
    let node = &g.nodes[l.node];
    let c_out = shape[l.out_axis];
    if node.op_type == "Conv" {
        // W [O, I/g, k...]: input channel of element (o, i) is
        // (o / (O/g)) * (I/g) + i.
        let group = node.attr_int("group", 1)?.max(1) as usize;
        let (_, ipg, inner) = split_axis(&shape, 1);
        let opg = c_out / group;
        if means.len() != ipg * group {
            return Ok(None);
        }
        for (idx, (&x, &y)) in wv.iter().zip(&wq).enumerate() {
            let o = idx / (ipg * inner);
            let i = (idx / inner) % ipg;
            let ch = (o / opg.max(1)) * ipg + i;
            b[o] += ((f64::from(x) - f64::from(y)) * means[ch]) as f32;
        }
    } else {
        // Matrix [K, N] (k_axis 0) or [N, K] (k_axis 1).
        let k_len = shape[l.k_axis];
        if means.len() != k_len {
            return Ok(None);
        }
        for (idx, (&x, &y)) in wv.iter().zip(&wq).enumerate() {
            let (k, o) = if l.k_axis == 0 {
                (idx / c_out, idx % c_out)
            } else {
                (idx % k_len, idx / k_len)
            };
            b[o] += ((f64::from(x) - f64::from(y)) * means[k]) as f32;
        }
    }
    Ok(Some(b))
}
