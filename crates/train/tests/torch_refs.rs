//! Gradients of the training graph against PyTorch, on the models made by
//! scripts/make_grad_refs.py (loss and every parameter gradient for one
//! fixed batch, BatchNorm with batch statistics).

mod common;

use common::{assert_close, npy, run_training_graph};
use whittle_onnx::load_model;
use whittle_train::{build_training_graph, default_trainable, Loss, TrainSpec};

/// Tolerance relative to each tensor's largest gradient: f32 sums in a
/// different order than PyTorch's (im2col GEMM vs cuDNN-style kernels,
/// f64 statistics) differ by a few ulps per accumulation, ~1e-6 relative
/// at these depths; 1e-4 leaves room without hiding a wrong term.
const RTOL: f64 = 1e-4;

fn check_model(model: &str, mse: bool) {
    let graph = load_model(&common::data_dir(model).join("model.onnx")).unwrap();
    let trainable = default_trainable(&graph);
    let loss = if mse {
        Loss::Mse {
            output: "logits".into(),
            target: "target".into(),
        }
    } else {
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        }
    };
    let spec = TrainSpec::new(loss, trainable.clone());
    let tg = build_training_graph(&graph, &spec).unwrap_or_else(|e| panic!("{model}: {e}"));
    let label_name = if mse { "target" } else { "labels" };
    let feeds = [("x", npy(model, "x")), (label_name, npy(model, label_name))];
    let weights: Vec<_> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let out = run_training_graph(&tg, &feeds, &weights);
    // A 0-d .npy reads back as [1].
    let want_loss = npy(model, "loss").reshaped(vec![]).unwrap();
    assert_close(&format!("{model} loss"), &out[0], &want_loss, 1e-5);
    // Every parameter of the PyTorch model is trained, and nothing else.
    let mut expected: Vec<String> = std::fs::read_dir(common::data_dir(model))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_prefix("grad.")
                .and_then(|s| s.strip_suffix(".npy"))
                .map(str::to_string)
        })
        .collect();
    expected.sort();
    let mut got: Vec<String> = trainable.clone();
    got.sort();
    assert_eq!(got, expected, "{model}: trainable tensors");
    for (k, (w, gname)) in tg.grads.iter().enumerate() {
        assert_eq!(*gname, format!("{w}.grad"));
        assert_close(
            &format!("{model} d loss / d {w}"),
            &out[1 + k],
            &npy(model, &format!("grad.{w}")),
            RTOL,
        );
    }
}

#[test]
fn lenet_with_batchnorm_matches_pytorch() {
    check_model("lenet_bn", false);
}

#[test]
fn mobilenet_block_matches_pytorch() {
    check_model("mbv2", false);
}

#[test]
fn mlp_with_mse_matches_pytorch() {
    check_model("mlp", true);
}

/// Frozen BatchNorm with the convs frozen too: compile may fold a BN into
/// its conv only where no backward node reads the conv's output, so the
/// graph must compile and give gradients for exactly the trained tensors.
#[test]
fn frozen_batchnorm_fine_tuning_compiles_and_runs() {
    let model = "lenet_bn";
    let graph = load_model(&common::data_dir(model).join("model.onnx")).unwrap();
    let trainable: Vec<String> = ["bn1.weight", "bn2.bias", "fc2.weight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        trainable,
    );
    spec.batchnorm = whittle_train::BatchNormMode::Frozen;
    let tg = build_training_graph(&graph, &spec).unwrap();
    assert!(tg.batchnorm.is_empty());
    let feeds = [("x", npy(model, "x")), ("labels", npy(model, "labels"))];
    let weights: Vec<_> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let out = run_training_graph(&tg, &feeds, &weights);
    assert_eq!(out.len(), 4);
    for (t, (_, w)) in out[1..].iter().zip(&tg.initial) {
        assert_eq!(t.shape(), w.shape());
        assert!(t.as_f32().unwrap().iter().all(|v| v.is_finite()));
        assert!(t.as_f32().unwrap().iter().any(|&v| v != 0.0));
    }
}
