//! Structured channel pruning.
//!
//! * Per group kind, a tiny hand-built graph: the channels that must go
//!   (known L1 norms) are the ones removed, and the physically pruned
//!   model computes exactly what the original computes with those
//!   channels zeroed (filters, biases and BatchNorm gamma/beta set to 0,
//!   so the removed channels are 0 downstream): an independent check of
//!   every slice the rewrite makes.
//! * The fixture zoo at 30% and 50%: the pruned models shrink, pass the
//!   ONNX checker and give the same outputs in whittle and onnxruntime
//!   (skipped with a note when python3 with onnx/onnxruntime is missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use whittle_compress::structured::{
    prune_channels, ChannelImportance, ChannelPruneOptions, ChannelPruned,
};
use whittle_ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::{compile, CompileOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Deterministic values in [-1, 1).
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

fn t(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_f32(shape.to_vec(), noise(shape.iter().product(), seed)).unwrap()
}

/// A conv weight whose filter `c` is all `scales[c]` (so its L1 norm is
/// `|scales[c]| * numel`).
fn scaled_filters(scales: &[f32], rest: &[usize]) -> Tensor {
    let per: usize = rest.iter().product();
    let v = scales
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, per))
        .collect();
    let mut shape = vec![scales.len()];
    shape.extend_from_slice(rest);
    Tensor::from_f32(shape, v).unwrap()
}

struct Builder {
    g: Graph,
    seed: u64,
}

impl Builder {
    fn new(input: &[usize]) -> Builder {
        let mut g = Graph {
            name: "hand".into(),
            inputs: vec![ValueInfo::known("x", DType::F32, input)],
            ..Graph::default()
        };
        g.opsets.insert(String::new(), 13);
        Builder { g, seed: 1 }
    }

    fn init(&mut self, name: &str, t: Tensor) -> String {
        self.g.initializers.insert(name.to_string(), t);
        name.to_string()
    }

    fn rand(&mut self, name: &str, shape: &[usize]) -> String {
        self.seed += 1;
        let v = t(shape, self.seed);
        self.init(name, v)
    }

    fn node(&mut self, name: &str, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = format!("{name}_out");
        let mut n = Node::new(name, op, inputs, &[&out]);
        for (k, v) in attrs {
            n = n.with_attr(k, v.clone());
        }
        self.g.nodes.push(n);
        out
    }

    fn conv(&mut self, name: &str, x: &str, w: Tensor, bias: bool, group: i64) -> String {
        let c_out = w.shape()[0];
        let k = w.shape()[2];
        let w = self.init(&format!("{name}.w"), w);
        let mut inputs = vec![x.to_string(), w];
        if bias {
            inputs.push(self.rand(&format!("{name}.b"), &[c_out]));
        }
        let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let pad = (k / 2) as i64;
        self.node(
            name,
            "Conv",
            &refs,
            &[
                ("group", Attr::Int(group)),
                ("pads", Attr::Ints(vec![pad; 4])),
            ],
        )
    }

    fn batchnorm(&mut self, name: &str, x: &str, c: usize) -> String {
        let scale = self.rand(&format!("{name}.gamma"), &[c]);
        let bias = self.rand(&format!("{name}.beta"), &[c]);
        let mean = self.rand(&format!("{name}.mean"), &[c]);
        let var: Vec<f32> = noise(c, 99).iter().map(|v| v.abs() + 0.5).collect();
        let var = self.init(
            &format!("{name}.var"),
            Tensor::from_f32(vec![c], var).unwrap(),
        );
        self.node(
            name,
            "BatchNormalization",
            &[x, &scale, &bias, &mean, &var],
            &[],
        )
    }

    fn finish(mut self, out: &str, shape: &[usize]) -> Graph {
        self.g.outputs = vec![ValueInfo::known(out, DType::F32, shape)];
        self.g
    }
}

fn run(g: &Graph, x: &Tensor) -> Vec<f32> {
    let mut plan = compile(g, &CompileOptions::default()).expect("compiles");
    plan.run(std::slice::from_ref(x)).expect("runs")[0].to_f32_vec()
}

fn close(a: &[f32], b: &[f32], tol: f32) -> Result<(), String> {
    if a.len() != b.len() {
        return Err(format!("lengths {} vs {}", a.len(), b.len()));
    }
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if (x - y).abs() > tol * (1.0 + y.abs()) {
            return Err(format!("element {i}: {x} vs {y}"));
        }
    }
    Ok(())
}

/// Sets to 0 the listed positions along `axis` of initializer `name`.
fn zero(g: &mut Graph, name: &str, axis: usize, positions: &[usize]) {
    let t = g
        .initializers
        .get_mut(name)
        .unwrap_or_else(|| panic!("no {name}"));
    let dims = t.shape().to_vec();
    let outer: usize = dims[..axis].iter().product();
    let inner: usize = dims[axis + 1..].iter().product();
    let v = t.as_f32_mut().unwrap();
    for o in 0..outer {
        for &p in positions {
            let at = (o * dims[axis] + p) * inner;
            v[at..at + inner].fill(0.0);
        }
    }
}

fn opts(ratio: f32) -> ChannelPruneOptions {
    ChannelPruneOptions {
        ratio,
        ..ChannelPruneOptions::default()
    }
}

/// The pruned model equals the original with `zeros` applied.
fn assert_equivalent(orig: &Graph, pruned: &ChannelPruned, zeros: &[(&str, usize, &[usize])]) {
    let mut z = orig.clone();
    for (name, axis, pos) in zeros {
        zero(&mut z, name, *axis, pos);
    }
    let shape = orig.inputs[0].static_shape().unwrap();
    let x = t(&shape, 7);
    let want = run(&z, &x);
    let got = run(&pruned.graph, &x);
    close(&got, &want, 1e-4).unwrap_or_else(|e| panic!("pruned != zeroed original: {e}"));
    // And pruning did change the function (the check is not vacuous).
    assert!(
        close(&run(orig, &x), &want, 1e-6).is_err(),
        "zeroing changed nothing"
    );
}

fn shape_of(g: &Graph, name: &str) -> Vec<usize> {
    g.initializers[name].shape().to_vec()
}

#[test]
fn plain_conv_chain_removes_lowest_l1_filters() {
    let mut b = Builder::new(&[1, 2, 6, 6]);
    // L1 order: c3 (0.1) < c5 (0.2) < c0 (0.5) < c2 < c4 < c1.
    let scales = [0.5, -3.0, 1.0, 0.1, 2.0, -0.2];
    let c1 = b.conv("c1", "x", scaled_filters(&scales, &[2, 3, 3]), true, 1);
    let r = b.node("r", "Relu", &[&c1], &[]);
    let w2 = t(&[4, 6, 1, 1], 3);
    let c2 = b.conv("c2", &r, w2, true, 1);
    let g = b.finish(&c2, &[1, 4, 6, 6]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    assert_eq!(shape_of(&p.graph, "c1.w"), vec![3, 2, 3, 3]);
    assert_eq!(shape_of(&p.graph, "c1.b"), vec![3]);
    assert_eq!(shape_of(&p.graph, "c2.w"), vec![4, 3, 1, 1]);
    let kept: Vec<f32> = p.graph.initializers["c1.w"]
        .as_f32()
        .unwrap()
        .chunks(18)
        .map(|c| c[0])
        .collect();
    assert_eq!(
        kept,
        vec![-3.0, 1.0, 2.0],
        "the three largest-L1 filters stay, in order"
    );
    assert_equivalent(&g, &p, &[("c1.w", 0, &[0, 3, 5]), ("c1.b", 0, &[0, 3, 5])]);
    let grp = &p.groups[0];
    assert_eq!((grp.channels_before, grp.channels_after), (6, 3));
    assert!(p.groups[1]
        .pinned
        .as_deref()
        .unwrap()
        .contains("graph output"));
    assert!(p.macs_after < p.macs_before);
}

#[test]
fn batchnorm_params_shrink_with_their_channels() {
    let mut b = Builder::new(&[1, 2, 5, 5]);
    let scales = [1.0, 0.1, 2.0, 0.2];
    let c1 = b.conv("c1", "x", scaled_filters(&scales, &[2, 3, 3]), false, 1);
    let bn = b.batchnorm("bn", &c1, 4);
    let r = b.node("r", "Relu", &[&bn], &[]);
    let c2 = b.conv("c2", &r, t(&[3, 4, 3, 3], 4), false, 1);
    let g = b.finish(&c2, &[1, 3, 5, 5]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    for n in ["bn.gamma", "bn.beta", "bn.mean", "bn.var"] {
        assert_eq!(shape_of(&p.graph, n), vec![2], "{n}");
    }
    let z: &[usize] = &[1, 3];
    assert_equivalent(
        &g,
        &p,
        &[("c1.w", 0, z), ("bn.gamma", 0, z), ("bn.beta", 0, z)],
    );
    // BatchNorm-scale importance ranks by |gamma| instead.
    let mut o = opts(0.5);
    o.importance = ChannelImportance::BatchNormScale;
    let q = prune_channels(&g, &o, None).unwrap();
    let gamma = g.initializers["bn.gamma"].as_f32().unwrap();
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|&a, &b| gamma[a].abs().total_cmp(&gamma[b].abs()));
    let mut removed = order[..2].to_vec();
    removed.sort();
    let kept_gamma: Vec<f32> = (0..4)
        .filter(|c| !removed.contains(c))
        .map(|c| gamma[c])
        .collect();
    assert_eq!(
        q.graph.initializers["bn.gamma"].as_f32().unwrap(),
        &kept_gamma[..]
    );
}

#[test]
fn residual_add_joins_producers_into_one_group() {
    let mut b = Builder::new(&[1, 3, 5, 5]);
    // The class score is the sum over both producers: c1 + c2 scales.
    let c1 = b.conv(
        "c1",
        "x",
        scaled_filters(&[1.0, 0.1, 1.0, 0.1], &[3, 1, 1]),
        true,
        1,
    );
    let r1 = b.node("r1", "Relu", &[&c1], &[]);
    let c2 = b.conv(
        "c2",
        &r1,
        scaled_filters(&[0.2, 0.05, 0.01, 2.0], &[4, 3, 3]),
        true,
        1,
    );
    let add = b.node("add", "Add", &[&c2, &r1], &[]);
    let r2 = b.node("r2", "Relu", &[&add], &[]);
    let c3 = b.conv("c3", &r2, t(&[2, 4, 1, 1], 5), false, 1);
    let g = b.finish(&c3, &[1, 2, 5, 5]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    let grp = p
        .groups
        .iter()
        .find(|g| g.layers.len() == 2)
        .expect("one joined group");
    assert_eq!(grp.layers, vec!["c1".to_string(), "c2".to_string()]);
    // Scores: c0 = 3*1 + 12*.2 = 5.4, c1 = .3 + .6 = .9, c2 = 3 + .12, c3 = .3 + 24.
    let z: &[usize] = &[1, 2];
    assert_eq!(shape_of(&p.graph, "c2.w"), vec![2, 2, 3, 3]);
    assert_equivalent(
        &g,
        &p,
        &[
            ("c1.w", 0, z),
            ("c1.b", 0, z),
            ("c2.w", 0, z),
            ("c2.b", 0, z),
        ],
    );
}

#[test]
fn concat_maps_channels_to_each_producer() {
    let mut b = Builder::new(&[1, 2, 4, 4]);
    let a = b.conv(
        "a",
        "x",
        scaled_filters(&[1.0, 0.1, 2.0, 0.2], &[2, 1, 1]),
        true,
        1,
    );
    let bb = b.conv("b", "x", scaled_filters(&[0.3, 3.0], &[2, 1, 1]), true, 1);
    let ra = b.node("ra", "Relu", &[&a], &[]);
    let rb = b.node("rb", "Relu", &[&bb], &[]);
    let cat = b.node("cat", "Concat", &[&ra, &rb], &[("axis", Attr::Int(1))]);
    let mp = b.node(
        "pool",
        "MaxPool",
        &[&cat],
        &[
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    );
    let c = b.conv("c", &mp, t(&[3, 6, 1, 1], 6), false, 1);
    let g = b.finish(&c, &[1, 3, 2, 2]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    assert_eq!(shape_of(&p.graph, "a.w"), vec![2, 2, 1, 1]);
    assert_eq!(shape_of(&p.graph, "b.w"), vec![1, 2, 1, 1]);
    assert_eq!(shape_of(&p.graph, "c.w"), vec![3, 3, 1, 1]);
    assert_equivalent(
        &g,
        &p,
        &[
            ("a.w", 0, &[1, 3]),
            ("a.b", 0, &[1, 3]),
            ("b.w", 0, &[0]),
            ("b.b", 0, &[0]),
        ],
    );
}

#[test]
fn depthwise_conv_follows_its_input_channels() {
    let mut b = Builder::new(&[1, 2, 5, 5]);
    let c1 = b.conv(
        "c1",
        "x",
        scaled_filters(&[0.1, 1.0, 0.2, 2.0], &[2, 1, 1]),
        true,
        1,
    );
    let r = b.node("r", "Relu", &[&c1], &[]);
    let dw = b.conv("dw", &r, t(&[4, 1, 3, 3], 8), true, 4);
    let r2 = b.node("r2", "Clip", &[&dw], &[]);
    let c2 = b.conv("c2", &r2, t(&[3, 4, 1, 1], 9), false, 1);
    let g = b.finish(&c2, &[1, 3, 5, 5]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    let dwn = p.graph.nodes.iter().find(|n| n.name == "dw").unwrap();
    assert_eq!(dwn.attr_int("group", 0).unwrap(), 2);
    assert_eq!(shape_of(&p.graph, "dw.w"), vec![2, 1, 3, 3]);
    let z: &[usize] = &[0, 2];
    assert_equivalent(
        &g,
        &p,
        &[
            ("c1.w", 0, z),
            ("c1.b", 0, z),
            ("dw.w", 0, z),
            ("dw.b", 0, z),
        ],
    );
}

#[test]
fn grouped_conv_is_refused_with_a_reason() {
    let mut b = Builder::new(&[1, 4, 5, 5]);
    let c1 = b.conv("c1", "x", t(&[4, 4, 1, 1], 10), false, 1);
    let gc = b.conv("gc", &c1, t(&[4, 2, 3, 3], 11), false, 2);
    let c2 = b.conv("c2", &gc, t(&[2, 4, 1, 1], 12), false, 1);
    let g = b.finish(&c2, &[1, 2, 5, 5]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    for grp in p.groups.iter().filter(|g| g.layers[0] != "c2") {
        assert_eq!(grp.channels_after, grp.channels_before, "{grp:?}");
        assert!(grp.pinned.as_deref().unwrap().contains("group"), "{grp:?}");
    }
    assert_eq!(p.graph, {
        let mut g2 = g.clone();
        g2.topo_sort().unwrap();
        g2
    });
}

#[test]
fn flatten_to_gemm_drops_each_channels_features() {
    let mut b = Builder::new(&[1, 1, 4, 4]);
    let c1 = b.conv(
        "c1",
        "x",
        scaled_filters(&[0.1, 1.0, 0.2, 2.0], &[1, 3, 3]),
        true,
        1,
    );
    let r = b.node("r", "Relu", &[&c1], &[]);
    let pool = b.node(
        "pool",
        "AveragePool",
        &[&r],
        &[
            ("kernel_shape", Attr::Ints(vec![2, 2])),
            ("strides", Attr::Ints(vec![2, 2])),
        ],
    );
    let f = b.node("flat", "Flatten", &[&pool], &[("axis", Attr::Int(1))]);
    let w = b.rand("fc.w", &[5, 16]);
    let bias = b.rand("fc.b", &[5]);
    let fc = b.node("fc", "Gemm", &[&f, &w, &bias], &[("transB", Attr::Int(1))]);
    let r2 = b.node("r2", "Relu", &[&fc], &[]);
    let w2 = b.rand("fc2.w", &[5, 3]);
    let out = b.node("fc2", "MatMul", &[&r2, &w2], &[]);
    let g = b.finish(&out, &[1, 3]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    // Channels 0 and 2 go: their 4 features each leave the Gemm.
    assert_eq!(shape_of(&p.graph, "fc.w"), vec![2, 8]);
    assert_eq!(shape_of(&p.graph, "fc2.w"), vec![2, 3]);
    let fcw = g.initializers["fc.w"].as_f32().unwrap();
    let gemm_rows = p.graph.initializers["fc.w"].as_f32().unwrap();
    // The fc's own kept rows (by L1) and channel 1, 3 features (4..8, 12..16).
    let fc_l1: Vec<f32> = fcw
        .chunks(16)
        .map(|r| r.iter().map(|v| v.abs()).sum())
        .collect();
    let mut rows: Vec<usize> = (0..5).collect();
    rows.sort_by(|&a, &b| fc_l1[b].total_cmp(&fc_l1[a]));
    let mut keep_rows = rows[..2].to_vec();
    keep_rows.sort();
    let want: Vec<f32> = keep_rows
        .iter()
        .flat_map(|&r| (4..8).chain(12..16).map(move |k| fcw[r * 16 + k]))
        .collect();
    assert_eq!(gemm_rows, &want[..]);
    let dropped_rows: Vec<usize> = (0..5).filter(|r| !keep_rows.contains(r)).collect();
    assert_equivalent(
        &g,
        &p,
        &[
            ("c1.w", 0, &[0, 2]),
            ("c1.b", 0, &[0, 2]),
            ("fc.w", 0, &dropped_rows),
            ("fc.b", 0, &dropped_rows),
        ],
    );
}

#[test]
fn split_on_channels_rewrites_the_sizes() {
    let mut b = Builder::new(&[1, 2, 4, 4]);
    let c1 = b.conv(
        "c1",
        "x",
        scaled_filters(&[0.1, 1.0, 2.0, 0.2, 3.0, 0.3, 0.4, 4.0], &[2, 1, 1]),
        true,
        1,
    );
    let split = b.init("split", Tensor::from_i64(vec![2], vec![4, 4]).unwrap());
    b.g.nodes.push(
        Node::new("sp", "Split", &[&c1, &split], &["s0", "s1"]).with_attr("axis", Attr::Int(1)),
    );
    let a = b.conv("ca", "s0", t(&[2, 4, 1, 1], 13), false, 1);
    let c = b.conv("cb", "s1", t(&[2, 4, 1, 1], 14), false, 1);
    let add = b.node("add", "Add", &[&a, &c], &[]);
    let g = b.finish(&add, &[1, 2, 4, 4]);
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    // Removed: 0 (0.1), 3 (0.2), 5 (0.3), 6 (0.4): two from each half.
    assert_eq!(
        p.graph.initializers["split"].to_i64_vec().unwrap(),
        vec![2, 2]
    );
    let z: &[usize] = &[0, 3, 5, 6];
    assert_equivalent(&g, &p, &[("c1.w", 0, z), ("c1.b", 0, z)]);
}

#[test]
fn options_are_checked() {
    let mut b = Builder::new(&[1, 2, 4, 4]);
    let c1 = b.conv("c1", "x", t(&[4, 2, 1, 1], 1), false, 1);
    let c2 = b.conv("c2", &c1, t(&[2, 4, 1, 1], 2), false, 1);
    let g = b.finish(&c2, &[1, 2, 4, 4]);
    for r in [-0.1, 1.0, f32::NAN] {
        let e = prune_channels(&g, &opts(r), None).unwrap_err().to_string();
        assert!(e.contains("outside [0, 1)"), "{e}");
    }
    let mut o = opts(0.5);
    o.keep = vec!["nope".into()];
    let e = prune_channels(&g, &o, None).unwrap_err().to_string();
    assert!(e.contains("'nope' does not exist"), "{e}");
    let mut o = opts(0.5);
    o.per_layer.insert("missing".into(), 0.2);
    let e = prune_channels(&g, &o, None).unwrap_err().to_string();
    assert!(e.contains("'missing' does not exist"), "{e}");
    let mut o = opts(0.5);
    o.importance = ChannelImportance::Taylor;
    let e = prune_channels(&g, &o, None).unwrap_err().to_string();
    assert!(e.contains("calibration data"), "{e}");
    // keep pins c1; per_layer overrides the ratio.
    let mut o = opts(0.5);
    o.keep = vec!["c1".into()];
    let p = prune_channels(&g, &o, None).unwrap();
    assert_eq!(p.groups[0].channels_after, 4);
    let mut o = opts(0.0);
    o.per_layer = HashMap::from([("c1".to_string(), 0.75)]);
    let p = prune_channels(&g, &o, None).unwrap();
    assert_eq!(p.groups[0].channels_after, 1);
}

/// The fixture models, their inputs, and whether channels can go.
const ZOO: &[(&str, bool)] = &[
    ("lenet", true),
    ("mlp", true),
    ("mlp_dynamic", true),
    ("resnet_small", true),
    ("mobilenetv2_035_96", true),
    ("concat_branches", true),
    ("dscnn_kws", true),
    ("keras_cnn_tf2onnx", true),
    ("paddle_net_paddle2onnx", true),
    ("transformer_encoder", true),
    // The recurrent weights are opaque to tracing: only the head remains,
    // and it feeds the output.
    ("lstm_model", false),
    ("gru_model", false),
];

/// Weight elements read per use (an exporter's Identity of a shared
/// initializer counts again), so untying shared weights is not a gain.
fn params_per_use(g: &Graph) -> usize {
    let alias: HashMap<&str, &str> = g
        .nodes
        .iter()
        .filter(|n| n.op_type == "Identity")
        .map(|n| (n.outputs[0].as_str(), n.inputs[0].as_str()))
        .collect();
    g.nodes
        .iter()
        .filter(|n| n.op_type != "Identity")
        .flat_map(|n| &n.inputs)
        .filter_map(|i| {
            g.initializers
                .get(*alias.get(i.as_str()).unwrap_or(&i.as_str()))
        })
        .map(Tensor::numel)
        .sum()
}

fn have_python() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

const ORT_CHECK: &str = r#"
import sys, numpy as np, onnx, onnxruntime as ort
so = ort.SessionOptions(); so.log_severity_level = 3
bad = []
for line in open(sys.argv[1]):
    model, inp, want = line.split()
    try:
        onnx.checker.check_model(onnx.load(model), full_check=True)
        s = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        got = s.run(None, {s.get_inputs()[0].name: np.load(inp)})[0]
        w = np.load(want)
        if got.shape != w.shape or not np.allclose(got, w, atol=1e-4, rtol=1e-4):
            bad.append(f"{model}: outputs differ, max {np.abs(got - w).max()}")
    except Exception as e:
        bad.append(f"{model}: {e}".splitlines()[0])
for b in bad: print(b)
sys.exit(1 if bad else 0)
"#;

#[test]
fn fixture_zoo_prunes_and_matches_onnxruntime() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = String::new();
    for &(name, prunable) in ZOO {
        let fx = fixtures().join(name);
        let g = whittle_onnx::load_model(&fx.join("model.onnx")).unwrap();
        let x = whittle_data::read_npy(&fx.join("input_0.npy")).unwrap();
        for ratio in [0.3f32, 0.5] {
            let p = prune_channels(&g, &opts(ratio), None)
                .unwrap_or_else(|e| panic!("{name} at {ratio}: {e}"));
            let (before, after) = (params_per_use(&g), params_per_use(&p.graph));
            if prunable {
                assert!(
                    after < before,
                    "{name} at {ratio}: params {before} -> {after}"
                );
                assert!(p.macs_after < p.macs_before, "{name} at {ratio}");
            } else {
                assert_eq!(after, before, "{name}");
                assert!(
                    p.groups.iter().all(|g| g.pinned.is_some()),
                    "{name}: {:?}",
                    p.groups
                );
            }
            let opts = CompileOptions {
                input_shapes: HashMap::from([(g.inputs[0].name.clone(), x.shape().to_vec())]),
                ..CompileOptions::default()
            };
            let mut plan = compile(&p.graph, &opts)
                .unwrap_or_else(|e| panic!("{name} at {ratio}: pruned model compiles: {e}"));
            let out = plan.run(std::slice::from_ref(&x)).unwrap().remove(0);
            let pct = (ratio * 100.0) as u32;
            let model = dir.path().join(format!("{name}_{pct}.onnx"));
            whittle_onnx::save_model(&p.graph, &model).unwrap();
            // The file reloads to the same graph.
            let back = whittle_onnx::load_model(&model).unwrap();
            assert_eq!(back.nodes.len(), p.graph.nodes.len());
            let want = dir.path().join(format!("{name}_{pct}_whittle.npy"));
            whittle_data::write_npy(&want, &out).unwrap();
            let inp = fx.join("input_0.npy");
            cases.push_str(&format!(
                "{} {} {}\n",
                model.display(),
                inp.display(),
                want.display()
            ));
        }
    }
    if !have_python() {
        println!(
            "note: python3 with onnx + onnxruntime missing; skipping the onnxruntime comparison"
        );
        return;
    }
    let list = dir.path().join("cases.txt");
    std::fs::write(&list, cases).unwrap();
    let out = Command::new("python3")
        .args(["-c", ORT_CHECK])
        .arg(&list)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "onnxruntime disagrees:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn transformer_attention_is_reported_and_ffn_pruned() {
    let g = whittle_onnx::load_model(&fixtures().join("transformer_encoder/model.onnx")).unwrap();
    let p = prune_channels(&g, &opts(0.5), None).unwrap();
    let attn = p
        .groups
        .iter()
        .find(|g| g.layers.iter().any(|l| l.contains("self_attn/MatMul")))
        .unwrap();
    assert!(
        attn.pinned.as_deref().unwrap().contains("Reshape"),
        "{attn:?}"
    );
    let ffn = p
        .groups
        .iter()
        .find(|g| g.layers.iter().any(|l| l.contains("linear1")))
        .unwrap();
    assert_eq!((ffn.channels_before, ffn.channels_after), (128, 64));
}

#[test]
fn mac_target_is_met_with_multiples_of_eight() {
    let g = whittle_onnx::load_model(&fixtures().join("resnet_small/model.onnx")).unwrap();
    let o = ChannelPruneOptions {
        target_macs: Some(0.4),
        ..ChannelPruneOptions::default()
    };
    let p = prune_channels(&g, &o, None).unwrap();
    let frac = p.macs_after as f64 / p.macs_before as f64;
    assert!(frac <= 0.4 && frac > 0.3, "{frac}");
    for grp in &p.groups {
        if grp.channels_before >= 32 && grp.pinned.is_none() {
            assert_eq!(grp.channels_after % 8, 0, "{grp:?}");
        }
    }
    // The MAC figures are the plan's: compile both and compare.
    let macs = |g: &Graph| {
        compile(g, &CompileOptions::default())
            .unwrap()
            .report()
            .totals
            .macs
    };
    let (a, b) = (macs(&g), macs(&p.graph));
    let plan_frac = b as f64 / a as f64;
    assert!(
        (plan_frac - frac).abs() < 0.02,
        "plan {plan_frac} vs {frac}"
    );
}

/// Writes an IDX pair of `n` images (28x28) with labels in 0..10.
fn idx_dataset(dir: &Path, n: usize) -> PathBuf {
    let mut img = vec![0, 0, 8, 3];
    for d in [n as u32, 28, 28] {
        img.extend_from_slice(&d.to_be_bytes());
    }
    img.extend(noise(n * 784, 5).iter().map(|v| ((v + 1.0) * 127.0) as u8));
    let mut lab = vec![0, 0, 8, 1];
    lab.extend_from_slice(&(n as u32).to_be_bytes());
    lab.extend((0..n).map(|i| (i % 10) as u8));
    let p = dir.join("t-images-idx3-ubyte");
    std::fs::write(&p, img).unwrap();
    std::fs::write(dir.join("t-labels-idx1-ubyte"), lab).unwrap();
    p
}

#[test]
fn taylor_importance_uses_gradients() {
    let dir = tempfile::tempdir().unwrap();
    let data = whittle_data::open_dataset(idx_dataset(dir.path(), 16)).unwrap();
    let g = whittle_onnx::load_model(&fixtures().join("lenet/model.onnx")).unwrap();
    let mut o = opts(0.5);
    o.importance = ChannelImportance::Taylor;
    let p = prune_channels(&g, &o, Some(&data)).unwrap();
    let l1 = prune_channels(&g, &opts(0.5), None).unwrap();
    assert_eq!(
        p.groups
            .iter()
            .map(|g| g.channels_after)
            .collect::<Vec<_>>(),
        l1.groups
            .iter()
            .map(|g| g.channels_after)
            .collect::<Vec<_>>()
    );
    // A different criterion picks (at least partly) different channels.
    assert_ne!(p.graph.initializers, l1.graph.initializers);
    let x = whittle_data::read_npy(&fixtures().join("lenet/input_0.npy")).unwrap();
    assert_eq!(run(&p.graph, &x).len(), 10);
}
