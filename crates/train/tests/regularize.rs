//! Regularizers: each penalty's in-graph gradient against central
//! differences of the penalty itself, the proximal steps against their
//! closed forms, the errors, and group Lasso making whole filters of the
//! Fashion-MNIST CNN exactly zero.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::run_training_graph;
use whittle_data::{open_dataset, Dataset, Metrics, Preprocess};
use whittle_ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::{compile, CompileOptions};
use whittle_train::regularize::{resolve_terms, Term};
use whittle_train::{
    build_training_graph, zero_groups, BatchNormMode, Groups, Loss, Penalty, Regularizer, Sgd,
    TrainSpec, Trainer, TrainerOptions, UpdateScheme,
};

/// xorshift64*, values in [-1, 1) kept at least 0.05 away from 0 so the
/// L1 and Hoyer terms (kinks at 0) are smooth around every weight.
fn values(seed: &mut u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|_| {
            *seed ^= *seed >> 12;
            *seed ^= *seed << 25;
            *seed ^= *seed >> 27;
            let v =
                (seed.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            if v.abs() < 0.05 {
                0.05f32.copysign(v)
            } else {
                v
            }
        })
        .collect()
}

/// x [2,3,5,5] -> Conv wc [4,3,3,3] -> GAP -> Flatten -> Gemm wf1 [6,4]
/// (transB = 1) -> Gemm wf2 [6,5] (transB = 0) -> logits [2,5]: weights
/// whose channel axes are (0, 1), (0, 1) and (1, 0).
fn net() -> Graph {
    let mut seed = 99u64;
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, &[2, 3, 5, 5])],
        outputs: vec![ValueInfo::known("logits", DType::F32, &[2, 5])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    for (name, shape) in [
        ("wc", vec![4, 3, 3, 3]),
        ("wf1", vec![6, 4]),
        ("wf2", vec![6, 5]),
    ] {
        let n = shape.iter().product();
        let t = Tensor::from_f32(shape, values(&mut seed, n)).unwrap();
        g.initializers.insert(name.into(), t);
    }
    g.nodes = vec![
        Node::new("conv", "Conv", &["x", "wc"], &["c"]).with_attr("pads", Attr::Ints(vec![1; 4])),
        Node::new("gap", "GlobalAveragePool", &["c"], &["p"]),
        Node::new("flat", "Flatten", &["p"], &["f"]),
        Node::new("fc1", "Gemm", &["f", "wf1"], &["h"]).with_attr("transB", Attr::Int(1)),
        Node::new("fc2", "Gemm", &["h", "wf2"], &["logits"]),
    ];
    g
}

const WEIGHTS: [&str; 3] = ["wc", "wf1", "wf2"];

fn sce() -> Loss {
    Loss::SoftmaxCrossEntropy {
        logits: "logits".into(),
        labels: "labels".into(),
    }
}

/// Weight gradients of the training graph of `spec`, by weight name.
fn grads(g: &Graph, spec: &TrainSpec) -> HashMap<String, Tensor> {
    let tg = build_training_graph(g, spec).unwrap_or_else(|e| panic!("{e}"));
    let mut seed = 5u64;
    let feeds = [
        (
            "x",
            Tensor::from_f32(vec![2, 3, 5, 5], values(&mut seed, 150)).unwrap(),
        ),
        ("labels", Tensor::from_i64(vec![2], vec![1, 4]).unwrap()),
    ];
    let w: Vec<Tensor> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let out = run_training_graph(&tg, &feeds, &w);
    tg.grads
        .iter()
        .enumerate()
        .map(|(i, (w, _))| (w.clone(), out[1 + i].clone()))
        .collect()
}

/// Central difference of `term.value` at element `j`, in f64, over the
/// step actually taken in f32.
fn fd(term: &Term, w: &[f32], j: usize) -> f64 {
    let eps = 1e-3f32;
    let (mut plus, mut minus) = (w.to_vec(), w.to_vec());
    plus[j] += eps;
    minus[j] -= eps;
    let step = f64::from(plus[j]) - f64::from(minus[j]);
    (term.value(&plus) - term.value(&minus)) / step
}

/// Each penalty's gradient (training graph with the regularizer minus
/// without it) matches central differences of the penalty on every
/// element of every weight. The penalties are smooth where the weights
/// are (all |w| >= 0.05), so with eps = 1e-3 the truncation error is
/// O(eps^2 P''') ~ 1e-5 and the f32 rounding of the graph's sums ~1e-6:
/// `|fd - g| <= 1e-4 + 1e-3 |fd|` holds while a wrong factor, sign or
/// axis is off by O(λ) = 0.3.
#[test]
fn penalty_gradients_match_finite_differences() {
    let g = net();
    let trainable: Vec<String> = WEIGHTS.iter().map(|s| s.to_string()).collect();
    let base = TrainSpec::new(sce(), trainable.clone());
    let plain = grads(&g, &base);
    let penalties = [
        Penalty::L1,
        Penalty::GroupLasso(Groups::Filters),
        Penalty::GroupLasso(Groups::InputChannels),
        Penalty::Hoyer,
        Penalty::GroupHoyer(Groups::Filters),
        Penalty::GroupHoyer(Groups::InputChannels),
    ];
    for p in penalties {
        // Global: every layer weight; then only wc with a sparse update
        // of its first 2 filters.
        for sparse in [false, true] {
            let mut reg = Regularizer::new(p, 0.3).with_proximal(false);
            let mut spec = base.clone();
            if sparse {
                reg = reg.on(&["wc"]);
                spec.channel_ratio.insert("wc".into(), 0.5);
            }
            spec.regularizers = vec![reg.clone()];
            let with = grads(&g, &spec);
            let channels = HashMap::from([("wc".to_string(), 2)]);
            let none = HashMap::new();
            let terms = resolve_terms(
                &g,
                &trainable,
                &[reg],
                if sparse { &channels } else { &none },
            )
            .unwrap();
            assert_eq!(terms.len(), if sparse { 1 } else { 3 });
            for term in &terms {
                let w = g.initializers[&term.tensor].as_f32().unwrap();
                let (a, b) = (&with[&term.tensor], &plain[&term.tensor]);
                let b = if sparse {
                    // The full-update gradient's first 2 filters.
                    &b.as_f32().unwrap()[..a.numel()]
                } else {
                    b.as_f32().unwrap()
                };
                for (j, (x, y)) in a.as_f32().unwrap().iter().zip(b).enumerate() {
                    let got = f64::from(x - y);
                    let want = fd(term, w, j);
                    assert!(
                        (got - want).abs() <= 1e-4 + 1e-3 * want.abs(),
                        "{p:?} on {} (sparse {sparse}) [{j}]: graph {got}, fd {want}",
                        term.tensor
                    );
                }
            }
        }
    }
}

fn term(penalty: Penalty, shape: &[usize], axis: Option<usize>, channels: Option<usize>) -> Term {
    Term {
        tensor: "w".into(),
        shape: shape.to_vec(),
        penalty,
        strength: 0.5,
        proximal: true,
        group_axis: axis,
        channels,
    }
}

/// Closed forms, with lr 0.2 and λ 0.5 (threshold t = 0.1): L1
/// soft-thresholding `sign(w) max(|w| - t, 0)`, and block
/// soft-thresholding `w_g max(0, 1 - t / ‖w_g‖)`.
#[test]
fn proximal_steps_match_their_closed_forms() {
    let mut w = vec![0.5, -0.05, 0.25, -0.3, 0.1, 0.0];
    term(Penalty::L1, &[6], None, None).prox(&mut w, 0.2);
    let want = [0.4, 0.0, 0.15, -0.2, 0.0, 0.0];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?}");
    }

    // Filters of a [3, 2] weight: norms 0.5, 0.05, 0.1 (rows).
    let mut w = vec![0.3, 0.4, 0.03, -0.04, 0.06, 0.08];
    term(Penalty::GroupLasso(Groups::Filters), &[3, 2], Some(0), None).prox(&mut w, 0.2);
    // Row 0 scaled by 1 - 0.1 / 0.5 = 0.8; rows 1 and 2 (norm <= t) vanish.
    let want = [0.24, 0.32, 0.0, 0.0, 0.0, 0.0];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?}");
    }

    // Input channels (columns) of a [2, 3] weight: norms 0.5, 0.05, 0.2.
    let mut w = vec![0.3, 0.03, 0.0, 0.4, -0.04, 0.2];
    term(
        Penalty::GroupLasso(Groups::InputChannels),
        &[2, 3],
        Some(1),
        None,
    )
    .prox(&mut w, 0.2);
    let want = [0.24, 0.0, 0.0, 0.32, 0.0, 0.1];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?}");
    }

    // A sparse update of the first filter only: the others stay.
    let mut w = vec![0.3, 0.4, 0.03, -0.04];
    term(
        Penalty::GroupLasso(Groups::Filters),
        &[2, 2],
        Some(0),
        Some(1),
    )
    .prox(&mut w, 0.2);
    let want = [0.24, 0.32, 0.03, -0.04];
    for (a, b) in w.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{w:?}");
    }

    // The Hoyer penalties are scale invariant: H(2w) = H(w).
    let w = [0.3f32, -0.1, 0.7, 0.2];
    let w2: Vec<f32> = w.iter().map(|v| 2.0 * v).collect();
    for (p, axis) in [
        (Penalty::Hoyer, None),
        (Penalty::GroupHoyer(Groups::Filters), Some(0)),
    ] {
        let t = term(p, &[2, 2], axis, None);
        assert!((t.value(&w) - t.value(&w2)).abs() < 1e-12);
    }
    // Hoyer: λ (Σ|w|)² / Σw² = 0.5 * 1.69 / 0.63.
    let h = term(Penalty::Hoyer, &[4], None, None).value(&w);
    assert!((h - 0.5 * 1.69 / 0.63).abs() < 1e-6, "{h}");
}

#[test]
fn bad_regularizers_are_clear_errors() {
    let g = net();
    let trainable = vec!["wc".to_string(), "wf1".to_string()];
    let none = HashMap::new();
    let cases = [
        (
            Regularizer::new(Penalty::Hoyer, 0.1).with_proximal(true),
            "no proximal step",
        ),
        (
            Regularizer::new(Penalty::L1, -1.0),
            "must be finite and >= 0",
        ),
        (
            Regularizer::new(Penalty::L1, 0.1).on(&["wf2"]),
            "not trainable",
        ),
    ];
    for (r, want) in cases {
        let err = resolve_terms(&g, &trainable, &[r], &none)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "expected '{want}' in: {err}");
    }
    let channels = HashMap::from([("wc".to_string(), 2)]);
    let r = Regularizer::new(Penalty::GroupLasso(Groups::InputChannels), 0.1).on(&["wc"]);
    let err = resolve_terms(&g, &trainable, &[r], &channels)
        .unwrap_err()
        .to_string();
    assert!(err.contains("must group filters"), "{err}");
}

const DATA: &str = "/usr/share/datasets/fashion-mnist";

fn fashion_cnn() -> Graph {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/models/fashion_cnn.onnx");
    whittle_onnx::load_model(&p).unwrap()
}

fn accuracy(g: &Graph, test: &Dataset) -> f64 {
    let opts = CompileOptions {
        input_shapes: HashMap::from([("input".to_string(), vec![50, 1, 28, 28])]),
        ..CompileOptions::default()
    };
    let mut plan = compile(g, &opts).unwrap();
    let input = test
        .input_spec(&[1, 28, 28], &Preprocess::default())
        .unwrap();
    let mut m = Metrics::new(10);
    for i in (0..test.len()).step_by(50) {
        let b = test.batch(&input, i..i + 50).unwrap();
        let out = plan.run(&[b.x]).unwrap();
        for (k, row) in out[0].as_f32().unwrap().chunks_exact(10).enumerate() {
            m.add(row, b.labels[k] as usize);
        }
    }
    m.top1()
}

/// Fine-tuning the trained Fashion-MNIST CNN with proximal group Lasso
/// over the last conv's filters (frozen BatchNorm, plain SGD, 150 steps)
/// drives whole filters to exactly zero, which `zero_groups` lists for
/// structured pruning. A short recovery that trains only the BatchNorm
/// affine parameters and the classifier (conv weights frozen, so the zero
/// filters stay zero) wins most of the accuracy back.
#[test]
fn group_lasso_zeroes_whole_filters_of_the_fashion_cnn() {
    let train_path = Path::new(DATA).join("train-images-idx3-ubyte.gz");
    if !train_path.exists() {
        eprintln!("skipped: {} not found", train_path.display());
        return;
    }
    let g = fashion_cnn();
    assert!(zero_groups(&g).is_empty());
    let mut train = open_dataset(&train_path).unwrap();
    train.truncate(4800);
    let mut test = open_dataset(Path::new(DATA).join("t10k-images-idx3-ubyte.gz")).unwrap();
    test.truncate(1000);
    let input = train
        .input_spec(&[1, 28, 28], &Preprocess::default())
        .unwrap();
    let opts = TrainerOptions {
        threads: 2,
        batch_size: 32,
    };
    let lasso = r#"
        frozen_bn = true
        [[regularizer]]
        penalty = "group_lasso"
        groups = "filters"
        strength = 1.0
        tensors = ["features.4.0"]
    "#;
    let spec = UpdateScheme::from_toml(lasso)
        .unwrap()
        .train_spec(&g, sce())
        .unwrap();
    assert_eq!(spec.batchnorm, BatchNormMode::Frozen);
    let mut t = Trainer::new(&g, &spec, Box::new(Sgd::new(0.01, 0.0)), &opts).unwrap();
    let before = accuracy(&g, &test);
    let stats = t.train_epoch(&train, &input, None).unwrap();
    let sparse = t.trained_graph();
    let after = accuracy(&sparse, &test);
    let zero = zero_groups(&sparse);
    let total: usize = zero.iter().map(|(_, c)| c.len()).sum();

    let recover = r#"
        mode = "bias_only"
        bn_scale = true
        frozen_bn = true
        [[layer]]
        name = "classifier"
    "#;
    let spec = UpdateScheme::from_toml(recover)
        .unwrap()
        .train_spec(&sparse, sce())
        .unwrap();
    let mut t = Trainer::new(&sparse, &spec, Box::new(Sgd::new(0.01, 0.9)), &opts).unwrap();
    t.train_epoch(&train, &input, None).unwrap();
    let recovered = t.trained_graph();
    let final_acc = accuracy(&recovered, &test);
    eprintln!(
        "group lasso: {total} of 64 filters of features.4.0 exactly zero after 150 steps \
         (train loss {:.3}); test top-1 {before:.3} -> {after:.3}, {final_acc:.3} after \
         150 recovery steps",
        stats.loss
    );
    assert!(total >= 10, "only {total} filters reached zero");
    assert_eq!(zero_groups(&recovered), zero, "recovery keeps the zeros");
    assert!(final_acc > 0.7, "test accuracy after recovery {final_acc}");
    // Zero filters are whole groups: every element exactly 0.
    for (layer, ch) in &zero {
        assert_eq!(layer, "/features/features.4/features.4.0/Conv");
        let w = &sparse.initializers["features.4.0.weight"];
        let per = w.numel() / w.shape()[0];
        for &c in ch {
            assert!(w.as_f32().unwrap()[c * per..(c + 1) * per]
                .iter()
                .all(|&v| v == 0.0));
        }
    }
}
