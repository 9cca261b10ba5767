//! Update schemes on the Fashion-MNIST CNN (conv-BN-ReLU-pool x3, Gemm):
//! the scheme file format, what each mode trains, the errors, the sparse
//! update's gradients, and the backward pruning each scheme buys.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use common::run_training_graph;
use whittle_ir::{Graph, Tensor};
use whittle_train::{
    build_training_graph, BatchNormMode, LayerRule, LayerTraining, Loss, Sgd, TrainSpec, Trainer,
    TrainerOptions, UpdateScheme,
};

const CONV1: &str = "features.0.0.weight";
const CONV2: &str = "features.2.0.weight";
const CONV3: &str = "features.4.0.weight";
const FC: &str = "classifier.weight";

fn fashion_cnn() -> Graph {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/models/fashion_cnn.onnx");
    whittle_onnx::load_model(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn sce() -> Loss {
    Loss::SoftmaxCrossEntropy {
        logits: "logits".into(),
        labels: "labels".into(),
    }
}

fn spec_for(g: &Graph, scheme: &UpdateScheme, batch: usize) -> TrainSpec {
    let mut spec = scheme
        .train_spec(g, sce())
        .unwrap_or_else(|e| panic!("{e}"));
    spec.input_shapes
        .insert("input".into(), vec![batch, 1, 28, 28]);
    spec
}

/// Pixels in [0, 1) and labels from a fixed xorshift stream.
fn batch(n: usize, seed: u64) -> (Tensor, Tensor) {
    let mut s = seed | 1;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let x: Vec<f32> = (0..n * 784)
        .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32)
        .collect();
    let y: Vec<i64> = (0..n).map(|_| (next() % 10) as i64).collect();
    (
        Tensor::from_f32(vec![n, 1, 28, 28], x).unwrap(),
        Tensor::from_i64(vec![n], y).unwrap(),
    )
}

fn sorted(v: &[String]) -> Vec<&str> {
    let mut v: Vec<&str> = v.iter().map(String::as_str).collect();
    v.sort_unstable();
    v
}

#[test]
fn scheme_files_resolve_to_the_expected_tensors() {
    let g = fashion_cnn();
    let full = UpdateScheme::from_toml("").unwrap().resolve(&g).unwrap();
    assert_eq!(full.trainable.len(), 11, "{:?}", full.trainable);
    assert_eq!(full.batchnorm, BatchNormMode::Train);

    let last = UpdateScheme::from_toml("last_k = 2\nfrozen_bn = true")
        .unwrap()
        .resolve(&g)
        .unwrap();
    assert_eq!(
        sorted(&last.trainable),
        [
            "classifier.bias",
            FC,
            CONV3,
            "features.4.1.bias",
            "features.4.1.weight",
        ]
    );
    assert_eq!(last.batchnorm, BatchNormMode::Frozen);

    let bias = UpdateScheme::bias_only().resolve(&g).unwrap();
    assert_eq!(
        sorted(&bias.trainable),
        [
            "classifier.bias",
            "features.0.1.bias",
            "features.2.1.bias",
            "features.4.1.bias"
        ]
    );
    let with_scale = UpdateScheme::from_toml("mode = \"bias_only\"\nbn_scale = true")
        .unwrap()
        .resolve(&g)
        .unwrap();
    assert_eq!(with_scale.trainable.len(), 7);

    // The paper's sparse scheme: biases everywhere, a quarter of the last
    // conv's filters, the classifier whole; layers named three ways.
    let text = r#"
        mode = "bias_only"
        [[layer]]
        name = "features.4.0"
        ratio = 0.25
        [[layer]]
        name = "/classifier/Gemm"
        [[layer]]
        name = "features.0.0.weight"
        frozen = true
    "#;
    let sparse = UpdateScheme::from_toml(text).unwrap().resolve(&g).unwrap();
    assert_eq!(
        sorted(&sparse.trainable),
        [
            "classifier.bias",
            FC,
            "features.2.1.bias",
            CONV3,
            "features.4.1.bias",
            "features.4.1.weight",
        ]
    );
    assert_eq!(sparse.channel_ratio, HashMap::from([(CONV3.into(), 0.25)]));
    assert_eq!(sparse.layers[0].1, LayerTraining::Frozen);

    // JSON carries the same fields; `sparse` trains only what it lists.
    let json = r#"{"mode": "sparse", "layer": [{"name": "classifier", "bias_only": true}]}"#;
    let only = UpdateScheme::from_json(json).unwrap().resolve(&g).unwrap();
    assert_eq!(only.trainable, ["classifier.bias"]);

    // Flags build the same schemes as files.
    let flags = UpdateScheme::bias_only()
        .with_layer(LayerRule::ratio("features.4.0", 0.25))
        .with_layer(LayerRule {
            name: "classifier".into(),
            ..LayerRule::default()
        })
        .with_layer(LayerRule {
            name: "features.0.0".into(),
            frozen: true,
            ..LayerRule::default()
        });
    assert_eq!(flags.resolve(&g).unwrap(), sparse);
}

#[test]
fn bad_schemes_are_clear_errors() {
    let g = fashion_cnn();
    let cases = [
        (
            "[[layer]]\nname = \"features.4\"\nratio = 0.5",
            "no layer named 'features.4'; closest: features.4.0",
        ),
        (
            "[[layer]]\nname = \"classifier\"\nratio = 0.0",
            "outside (0, 1]",
        ),
        (
            "[[layer]]\nname = \"classifier\"\nratio = 1.5",
            "outside (0, 1]",
        ),
        (
            "[[layer]]\nname = \"classifier\"\nratio = nan",
            "outside (0, 1]",
        ),
        (
            "[[layer]]\nname = \"classifier\"\nratio = 0.5\nbias_only = true",
            "exclude each other",
        ),
        (
            "[[layer]]\nname = \"classifier\"\n[[layer]]\nname = \"classifier.weight\"",
            "named twice",
        ),
        ("last_k = 0", "last_k = 0"),
        ("last_k = 5", "has 4 layers"),
        ("mode = \"bias_only\"\nlast_k = 2", "drop one of them"),
        ("mode = \"last_k\"", "needs last_k"),
        ("mode = \"sparse\"", "needs [[layer]]"),
        ("mode = \"everything\"", "unknown variant"),
        ("last_kk = 2", "unknown field"),
        (
            "[[regularizer]]\npenalty = \"l2\"\nstrength = 1.0",
            "expected l1, group_lasso",
        ),
        (
            "[[regularizer]]\npenalty = \"group_lasso\"\ngroups = \"rows\"\nstrength = 1.0",
            "filters or input_channels",
        ),
        (
            "[[regularizer]]\npenalty = \"l1\"\nstrength = 1.0\ntensors = [\"conv9\"]",
            "no layer named 'conv9'",
        ),
    ];
    for (text, want) in cases {
        let err = UpdateScheme::from_toml(text)
            .and_then(|s| s.resolve(&g))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{text:?}: expected '{want}' in: {err}");
    }
    // Errors the training-graph build catches for hand-made specs.
    let mut spec = TrainSpec::new(sce(), vec![CONV1.into()]);
    spec.channel_ratio.insert(CONV2.into(), 0.5);
    let err = build_training_graph(&g, &spec).unwrap_err().to_string();
    assert!(err.contains("not trainable"), "{err}");
    spec.channel_ratio = HashMap::from([(CONV1.into(), -0.5)]);
    let err = build_training_graph(&g, &spec).unwrap_err().to_string();
    assert!(err.contains("outside (0, 1]"), "{err}");
    let err = UpdateScheme::from_file(std::path::Path::new("/nonexistent/scheme.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/scheme.toml"), "{err}");
}

/// The sparse update's gradients are the first k output channels of the
/// full update's, for conv weights (ConvGradWeight with `channels`) and a
/// Gemm weight (a sliced dY); everything else is unchanged.
#[test]
fn sparse_update_gradients_are_the_leading_channels_of_the_full_ones() {
    let g = fashion_cnn();
    let full = spec_for(&g, &UpdateScheme::full().with_frozen_bn(true), 4);
    let mut sparse = full.clone();
    // 16 -> 4, 32 -> 16, 64 -> 8, 10 -> 3 channels (0.3 * 10 = 3.0000001
    // in f32 must still mean 3).
    let ratios = [
        (CONV1, 0.25, 4),
        (CONV2, 0.5, 16),
        (CONV3, 0.125, 8),
        (FC, 0.3, 3),
    ];
    for (w, r, _) in ratios {
        sparse.channel_ratio.insert(w.into(), r);
    }
    let tf = build_training_graph(&g, &full).unwrap();
    let ts = build_training_graph(&g, &sparse).unwrap();
    assert_eq!(ts.channels.len(), 4);
    let (x, y) = batch(4, 7);
    let feeds = [("input", x), ("labels", y)];
    let weights: Vec<Tensor> = tf.initial.iter().map(|(_, t)| t.clone()).collect();
    let of = run_training_graph(&tf, &feeds, &weights);
    let os = run_training_graph(&ts, &feeds, &weights);
    assert_eq!(of[0], os[0], "loss");
    for (i, (w, _)) in tf.grads.iter().enumerate() {
        let (gf, gs) = (&of[1 + i], &os[1 + i]);
        let k = ratios
            .iter()
            .find(|(n, _, _)| n == w)
            .map_or(gf.shape()[0], |r| r.2);
        let mut want = gf.shape().to_vec();
        want[0] = k;
        assert_eq!(gs.shape(), want.as_slice(), "{w}");
        let per = gf.numel() / gf.shape()[0].max(1);
        let full = &gf.as_f32().unwrap()[..k * per];
        let scale = full.iter().fold(0.0f32, |a, b| a.max(b.abs()));
        for (j, (a, b)) in gs.as_f32().unwrap().iter().zip(full).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{w}[{j}]: sparse {a}, full {b}"
            );
        }
    }
    // Compute falls with the channels: ConvGradWeight MACs of the plan.
    let macs = |tg: &whittle_train::TrainGraph| -> u64 {
        let plan = tg.compile(1).unwrap();
        let report = plan.report();
        report
            .nodes
            .iter()
            .filter(|n| n.op == "ConvGradWeight")
            .map(|n| n.macs)
            .sum()
    };
    let (mf, ms) = (macs(&tf), macs(&ts));
    eprintln!("ConvGradWeight MACs: full {mf}, sparse {ms}");
    assert!(ms * 3 < mf, "full {mf}, sparse {ms}");
}

/// Training with a sparse update changes only the leading channels; the
/// host optimizer updates the prefix the k-channel gradient covers.
#[test]
fn sparse_update_leaves_the_other_channels_untouched() {
    let g = fashion_cnn();
    let scheme = UpdateScheme::sparse(vec![
        LayerRule::ratio("features.2.0", 0.25),
        LayerRule::ratio("classifier", 0.5),
    ])
    .with_frozen_bn(true);
    let spec = spec_for(&g, &scheme, 8);
    let opts = TrainerOptions {
        threads: 1,
        batch_size: 8,
    };
    let mut t = Trainer::new(&g, &spec, Box::new(Sgd::new(0.1, 0.9)), &opts).unwrap();
    for s in 0..3 {
        let (x, y) = batch(8, 100 + s);
        t.step(&x, &y).unwrap();
    }
    let trained = t.trained_graph();
    for (w, k) in [(CONV2, 8), (FC, 5)] {
        let (a, b) = (&g.initializers[w], &trained.initializers[w]);
        let per = a.numel() / a.shape()[0];
        let (a, b) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        assert_ne!(&a[..k * per], &b[..k * per], "{w}: trained channels moved");
        assert_eq!(&a[k * per..], &b[k * per..], "{w}: frozen channels kept");
    }
    assert_eq!(
        g.initializers[CONV1], trained.initializers[CONV1],
        "unlisted layers stay frozen"
    );
}

/// Forward nodes of `g`, by name, in order.
fn forward_index(g: &Graph) -> HashMap<String, usize> {
    g.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect()
}

/// Last-k and bias-only prune the backward pass: no backward node belongs
/// to a layer before the first trained one, no forward value before that
/// layer's input is read by the backward pass (so none is kept), and the
/// planned arena shrinks accordingly.
#[test]
fn last_k_and_bias_only_prune_the_backward_pass_and_its_memory() {
    let mut g = fashion_cnn();
    g.topo_sort().unwrap();
    let fwd = forward_index(&g);
    let producer: HashMap<String, usize> = g
        .nodes
        .iter()
        .enumerate()
        .flat_map(|(i, n)| n.outputs.iter().map(move |o| (o.clone(), i)))
        .collect();
    let conv3 = fwd["/features/features.4/features.4.0/Conv"];
    let fc = fwd["/classifier/Gemm"];
    let mut arena = Vec::new();
    for (label, scheme, first) in [
        ("full", UpdateScheme::full(), 0),
        ("last_k = 2", UpdateScheme::last_k(2), conv3),
        ("last_k = 1", UpdateScheme::last_k(1), fc),
        ("bias_only", UpdateScheme::bias_only(), 0),
    ] {
        let scheme = scheme.with_frozen_bn(true);
        let spec = spec_for(&g, &scheme, 32);
        let tg = build_training_graph(&g, &spec).unwrap();
        let forward_names: HashSet<&str> = fwd.keys().map(String::as_str).collect();
        let backward: Vec<_> = tg
            .graph
            .nodes
            .iter()
            .filter(|n| !forward_names.contains(n.name.as_str()))
            .collect();
        for n in &backward {
            // Backward nodes are named "<forward node>/<op>".
            let owner = n.name.rsplit_once('/').map_or("", |(o, _)| o);
            if let Some(&i) = fwd.get(owner) {
                assert!(
                    i >= first,
                    "{label}: {} belongs to an earlier layer",
                    n.name
                );
            }
            for v in &n.inputs {
                if let Some(&p) = producer.get(v) {
                    let input_of_first = g.nodes[first].inputs.contains(v);
                    assert!(
                        p >= first || input_of_first,
                        "{label}: {} reads '{v}' from before the first trained layer",
                        n.name
                    );
                }
            }
        }
        let ops: Vec<&str> = backward.iter().map(|n| n.op_type.as_str()).collect();
        if label == "bias_only" {
            // Biases need dY only: no weight gradient, and conv inputs
            // are not kept for one.
            assert!(!ops.contains(&"ConvGradWeight"), "{ops:?}");
        }
        if first > 0 {
            assert!(!ops.contains(&"ConvGradInput"), "{label}: {ops:?}");
        }
        let mem = tg.compile(1).unwrap().memory();
        eprintln!(
            "{label}: arena {} bytes, lower bound {}",
            mem.arena, mem.lower_bound
        );
        arena.push((label, mem.arena));
    }
    let a: HashMap<_, _> = arena.iter().cloned().collect();
    assert!(a["last_k = 2"] < a["full"], "{arena:?}");
    assert!(a["last_k = 1"] < a["last_k = 2"], "{arena:?}");
    assert!(a["bias_only"] < a["full"], "{arena:?}");
}
