//! Transfer learning on Fashion-MNIST with the MobileNetV2 0.35 backbone of
//! tests/fixtures/transfer (pretrained on classes 0-4): data, head
//! re-initialisation, update schemes as trainable lists, training and
//! evaluation. Shared by tests/transfer.rs and examples/transfer.rs.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use whittle_ir::{Graph, Tensor};
use whittle_runtime::{compile, CompileOptions};
use whittle_train::{BatchNormMode, Loss, Optimizer, TrainSpec, Trainer, TrainerOptions};

/// Fashion-MNIST from the Debian package.
pub const DATA: &str = "/usr/share/datasets/fashion-mnist";
/// Side of the padded images the backbone takes.
pub const SIDE: usize = 32;

/// The pretrained backbone.
pub fn model_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/transfer/model.onnx")
}

/// Images `[n, 1, 32, 32]` (u8 / 255, zero-padded 2 px) and labels shifted
/// to start at 0.
#[derive(Clone)]
pub struct Split {
    pub x: Vec<f32>,
    pub y: Vec<i64>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// The samples `idx` as a batch.
    pub fn batch(&self, idx: &[usize]) -> (Tensor, Tensor) {
        let n = SIDE * SIDE;
        let mut x = Vec::with_capacity(idx.len() * n);
        for &i in idx {
            x.extend_from_slice(&self.x[i * n..(i + 1) * n]);
        }
        (
            Tensor::from_f32(vec![idx.len(), 1, SIDE, SIDE], x).unwrap(),
            Tensor::from_i64(vec![idx.len()], idx.iter().map(|&i| self.y[i]).collect()).unwrap(),
        )
    }
}

/// The first `per_class` samples of each class in `classes` of `split`
/// ("train" or "t10k"), in file order; `None` when the data is missing.
pub fn load(split: &str, classes: Range<u8>, per_class: usize) -> Option<Split> {
    let dir = Path::new(DATA);
    let images = dir.join(format!("{split}-images-idx3-ubyte.gz"));
    if !images.exists() {
        return None;
    }
    let xs = whittle_data::read_idx(&images).unwrap();
    let ys = whittle_data::read_idx(&dir.join(format!("{split}-labels-idx1-ubyte.gz"))).unwrap();
    let bytes = |a: whittle_data::IdxArray| match a {
        whittle_data::IdxArray::U8 { data, .. } => data,
        _ => panic!("Fashion-MNIST is u8"),
    };
    let (xs, ys) = (bytes(xs), bytes(ys));
    let mut count = HashMap::new();
    let mut out = Split {
        x: Vec::new(),
        y: Vec::new(),
    };
    let pad = (SIDE - 28) / 2;
    for (k, &label) in ys.iter().enumerate() {
        if !classes.contains(&label) {
            continue;
        }
        let c = count.entry(label).or_insert(0usize);
        if *c >= per_class {
            continue;
        }
        *c += 1;
        let mut img = vec![0f32; SIDE * SIDE];
        for r in 0..28 {
            for col in 0..28 {
                img[(r + pad) * SIDE + col + pad] = f32::from(xs[k * 784 + r * 28 + col]) / 255.0;
            }
        }
        out.x.extend(img);
        out.y.push(i64::from(label - classes.start));
    }
    Some(out)
}

/// Writes `data` as an .npz (`x`, `y`) that `whittle_data::open_dataset`
/// reads, for calibration.
pub fn write_npz(data: &Split, path: &Path) {
    let x = Tensor::from_f32(vec![data.len(), 1, SIDE, SIDE], data.x.clone()).unwrap();
    let y = Tensor::from_i64(vec![data.len()], data.y.clone()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, t) in [("x.npy", &x), ("y.npy", &y)] {
        zip.start_file(name, opts).unwrap();
        zip.write_all(&whittle_data::npy_bytes(t).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

/// Re-initialises the classifier (the last Gemm) for `classes` outputs
/// with PyTorch's Linear init, uniform in +-1/sqrt(fan_in).
pub fn reinit_head(g: &mut Graph, classes: usize, seed: u64) {
    let node = g.nodes.iter().rev().find(|n| n.op_type == "Gemm").unwrap();
    let (w, b) = (node.inputs[1].clone(), node.inputs[2].clone());
    let fan_in = g.initializers[&w].shape()[1];
    let mut s = seed | 1;
    let mut uniform = |n: usize| -> Vec<f32> {
        let bound = 1.0 / (fan_in as f32).sqrt();
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
            })
            .collect()
    };
    let wt = Tensor::from_f32(vec![classes, fan_in], uniform(classes * fan_in)).unwrap();
    let bt = Tensor::from_f32(vec![classes], uniform(classes)).unwrap();
    g.initializers.insert(w, wt);
    g.initializers.insert(b, bt);
}

/// A Conv/Gemm layer's trainable tensors: weight-like (the kernel, a
/// following BatchNorm's scale) and bias-like (its bias, the BatchNorm's
/// bias). In a QDQ graph these are the integer initializers.
#[derive(Clone, Debug)]
pub struct Layer {
    pub node: String,
    pub block: Option<usize>,
    pub weights: Vec<String>,
    pub biases: Vec<String>,
}

/// The layers of `g` in graph order.
pub fn layers(g: &Graph) -> Vec<Layer> {
    let producer: HashMap<&str, &whittle_ir::Node> = g
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), n)))
        .collect();
    let resolve = |v: &str| -> Option<String> {
        if g.initializers.contains_key(v) {
            return Some(v.to_string());
        }
        let p = producer.get(v)?;
        (p.op_type == "DequantizeLinear" && g.initializers.contains_key(&p.inputs[0]))
            .then(|| p.inputs[0].clone())
    };
    let mut out = Vec::new();
    for n in g
        .nodes
        .iter()
        .filter(|n| n.op_type == "Conv" || n.op_type == "Gemm")
    {
        let mut l = Layer {
            node: n.name.clone(),
            block: n
                .name
                .split("/features.")
                .nth(1)
                .and_then(|s| s.split(['/', '.']).next())
                .and_then(|s| s.parse().ok()),
            weights: resolve(&n.inputs[1]).into_iter().collect(),
            biases: n
                .inputs
                .get(2)
                .and_then(|b| resolve(b))
                .into_iter()
                .collect(),
        };
        let readers: Vec<_> = g
            .nodes
            .iter()
            .filter(|m| m.inputs.contains(&n.outputs[0]))
            .collect();
        if let [bn] = readers.as_slice() {
            if bn.op_type == "BatchNormalization" {
                l.weights.push(bn.inputs[1].clone());
                l.biases.push(bn.inputs[2].clone());
            }
        }
        out.push(l);
    }
    out
}

/// Update schemes (written as trainable lists until the scheme engine
/// lands).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scheme {
    /// Every layer.
    Full,
    /// The last k layers (the classifier is one).
    LastK(usize),
    /// Every bias, plus the classifier.
    BiasOnly,
    /// The classifier, biases of blocks >= 12, and the weights of the
    /// first 1x1 conv of blocks 15, 16 and 17 (TinyTL/paper-style sparse
    /// update, without channel ratios).
    Sparse,
}

impl Scheme {
    pub fn name(self) -> String {
        match self {
            Scheme::Full => "full".into(),
            Scheme::LastK(k) => format!("last-{k}"),
            Scheme::BiasOnly => "bias-only".into(),
            Scheme::Sparse => "sparse".into(),
        }
    }
}

/// The trainable tensors of `scheme` on `g`.
pub fn scheme_tensors(g: &Graph, scheme: Scheme) -> Vec<String> {
    let ls = layers(g);
    let last = ls.len() - 1;
    let mut out = Vec::new();
    for (i, l) in ls.iter().enumerate() {
        let head = i == last;
        let (w, b) = match scheme {
            Scheme::Full => (true, true),
            Scheme::LastK(k) => (i + k > last, i + k > last),
            Scheme::BiasOnly => (head, true),
            Scheme::Sparse => {
                let blk = l.block.unwrap_or(0);
                let first_pw = l.node.contains("conv.0.0") && (15..=17).contains(&blk);
                (head || first_pw, head || blk >= 12)
            }
        };
        if w {
            out.extend(l.weights.iter().cloned());
        }
        if b {
            out.extend(l.biases.iter().cloned());
        }
    }
    out
}

/// Elements of the named initializers.
pub fn numel(g: &Graph, names: &[String]) -> usize {
    names.iter().map(|n| g.initializers[n].numel()).sum()
}

/// Result of one fine-tuning run.
pub struct Run {
    pub trained: Graph,
    pub seconds: f64,
    pub last_loss: f32,
    pub steps: usize,
}

/// `steps` SGD steps of `batch` samples, in a seeded shuffled order,
/// BatchNorm frozen.
pub fn train(
    g: &Graph,
    trainable: Vec<String>,
    optimizer: Box<dyn Optimizer>,
    data: &Split,
    steps: usize,
    batch: usize,
    seed: u64,
) -> Run {
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        trainable,
    );
    spec.batchnorm = BatchNormMode::Frozen;
    let opts = TrainerOptions {
        threads: 1,
        batch_size: batch,
    };
    let mut t = Trainer::new(g, &spec, optimizer, &opts).unwrap_or_else(|e| panic!("{e}"));
    let mut order: Vec<usize> = (0..data.len()).collect();
    let mut s = seed | 1;
    let mut pos = order.len();
    let mut loss_sum = 0.0;
    let t0 = Instant::now();
    for step in 0..steps {
        if pos + batch > order.len() {
            // Fisher-Yates with xorshift: a new epoch order.
            for i in (1..order.len()).rev() {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                order.swap(i, (s % (i as u64 + 1)) as usize);
            }
            pos = 0;
        }
        let (x, y) = data.batch(&order[pos..pos + batch]);
        pos += batch;
        let st = t.step(&x, &y).unwrap();
        if step + 20 >= steps {
            loss_sum += st.loss;
        }
    }
    Run {
        trained: t.trained_graph(),
        seconds: t0.elapsed().as_secs_f64(),
        last_loss: loss_sum / steps.min(20) as f32,
        steps,
    }
}

/// Top-1 accuracy of `g` on `data`.
pub fn accuracy(g: &Graph, data: &Split) -> f64 {
    let b = 50;
    let mut opts = CompileOptions::default();
    opts.input_shapes
        .insert("input".into(), vec![b, 1, SIDE, SIDE]);
    let mut plan = compile(g, &opts).unwrap_or_else(|e| panic!("{e}"));
    let mut correct = 0;
    let n = data.len() / b * b;
    for start in (0..n).step_by(b) {
        let idx: Vec<usize> = (start..start + b).collect();
        let (x, _) = data.batch(&idx);
        let out = plan.run(&[x]).unwrap();
        let logits = out[0].as_f32().unwrap();
        let c = logits.len() / b;
        for (k, row) in logits.chunks_exact(c).enumerate() {
            let arg = row
                .iter()
                .enumerate()
                .fold(0, |a, (i, v)| if *v > row[a] { i } else { a });
            correct += usize::from(arg as i64 == data.y[start + k]);
        }
    }
    correct as f64 / n as f64
}

/// The backbone with a fresh 5-class head.
pub fn backbone(seed: u64) -> Graph {
    let mut g = whittle_onnx::load_model(&model_path()).unwrap();
    reinit_head(&mut g, 5, seed);
    g
}

/// `g` post-training quantized (whittle's PTQ, QDQ, per-channel int8
/// weights, int32 biases), calibrated on `calib`.
pub fn quantize(g: &Graph, calib: &Split, samples: usize) -> Graph {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calib.npz");
    write_npz(calib, &path);
    let ds = whittle_data::open_dataset(&path).unwrap();
    let opts = whittle_compress::QuantizeOptions {
        calib_samples: samples,
        ..Default::default()
    };
    let q = whittle_compress::quantize(g, &ds, &opts, &mut |_| {}).unwrap();
    q.qdq
}
