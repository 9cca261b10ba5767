//! Trains an MLP on a slice of Fashion-MNIST with the compiled training
//! graph and checks that it learns: the loss falls and test accuracy is far
//! above chance (10%).

use std::path::Path;
use std::time::Instant;

use whittle_data::{open_dataset, Metrics, Preprocess};
use whittle_ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::{compile, CompileOptions};
use whittle_train::{default_trainable, Loss, Sgd, TrainSpec, Trainer, TrainerOptions};

const DATA: &str = "/usr/share/datasets/fashion-mnist";

/// PyTorch's default Linear init: uniform in +-1/sqrt(fan_in).
fn uniform(seed: &mut u64, shape: &[usize], fan_in: usize) -> Tensor {
    let bound = 1.0 / (fan_in as f32).sqrt();
    let n = shape.iter().product();
    let v = (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            ((*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        })
        .collect();
    Tensor::from_f32(shape.to_vec(), v).unwrap()
}

/// 784 -> 64 -> ReLU -> 10, as ONNX exports a torch MLP (Gemm, transB).
fn mlp() -> Graph {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut g = Graph {
        name: "mlp".into(),
        inputs: vec![ValueInfo::known("x", DType::F32, &[1, 784])],
        outputs: vec![ValueInfo::known("logits", DType::F32, &[1, 10])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    g.initializers
        .insert("fc1.weight".into(), uniform(&mut seed, &[64, 784], 784));
    g.initializers
        .insert("fc1.bias".into(), uniform(&mut seed, &[64], 784));
    g.initializers
        .insert("fc2.weight".into(), uniform(&mut seed, &[10, 64], 64));
    g.initializers
        .insert("fc2.bias".into(), uniform(&mut seed, &[10], 64));
    let t = |n: Node| n.with_attr("transB", Attr::Int(1));
    g.nodes = vec![
        t(Node::new(
            "fc1",
            "Gemm",
            &["x", "fc1.weight", "fc1.bias"],
            &["h"],
        )),
        Node::new("relu", "Relu", &["h"], &["a"]),
        t(Node::new(
            "fc2",
            "Gemm",
            &["a", "fc2.weight", "fc2.bias"],
            &["logits"],
        )),
    ];
    g
}

#[test]
fn mlp_learns_fashion_mnist() {
    let train_path = Path::new(DATA).join("train-images-idx3-ubyte.gz");
    let test_path = Path::new(DATA).join("t10k-images-idx3-ubyte.gz");
    if !train_path.exists() {
        eprintln!(
            "skipped: {} not found (apt-get install dataset-fashion-mnist)",
            train_path.display()
        );
        return;
    }
    let mut train = open_dataset(&train_path).unwrap();
    train.truncate(6400);
    let mut test = open_dataset(&test_path).unwrap();
    test.truncate(1000);
    let forward = mlp();
    let spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        default_trainable(&forward),
    );
    let opts = TrainerOptions {
        threads: 1,
        batch_size: 32,
    };
    let mut trainer = Trainer::new(&forward, &spec, Box::new(Sgd::new(0.05, 0.9)), &opts).unwrap();
    let input = train.input_spec(&[784], &Preprocess::default()).unwrap();

    // Loss of the untrained model on the first batches, then 2 epochs
    // (400 steps).
    let t0 = Instant::now();
    let mut epochs = Vec::new();
    for _ in 0..2 {
        epochs.push(trainer.train_epoch(&train, &input, None).unwrap());
    }
    let per_step = t0.elapsed().as_secs_f64() / 400.0;
    eprintln!(
        "epoch 1: loss {:.3} acc {:.3}; epoch 2: loss {:.3} acc {:.3}; {:.2} ms/step (batch 32)",
        epochs[0].loss,
        epochs[0].accuracy(),
        epochs[1].loss,
        epochs[1].accuracy(),
        per_step * 1e3
    );
    // ln(10) = 2.30 at chance; a learning MLP ends well below.
    assert!(epochs[1].loss < 0.75 * epochs[0].loss, "{epochs:?}");
    assert!(epochs[1].loss < 0.8, "{epochs:?}");

    // Test accuracy of the trained forward graph, compiled for inference.
    let trained = trainer.trained_graph();
    let mut plan = compile(&trained, &CompileOptions::default()).unwrap();
    let test_input = test.input_spec(&[784], &Preprocess::default()).unwrap();
    let mut metrics = Metrics::new(10);
    for i in 0..test.len() {
        let b = test.batch(&test_input, i..i + 1).unwrap();
        let out = plan.run(&[b.x]).unwrap();
        metrics.add(out[0].as_f32().unwrap(), b.labels[0] as usize);
    }
    eprintln!("test accuracy {:.3}", metrics.top1());
    assert!(metrics.top1() > 0.7, "test accuracy {}", metrics.top1());
}

/// The LeNet-like CNN with BatchNorm of the PyTorch fixtures, trained with
/// Adam in train-mode BatchNorm, then evaluated in inference mode: this
/// also checks that the running statistics the trainer accumulates are
/// right (with wrong ones, inference accuracy collapses).
#[test]
fn lenet_with_batchnorm_learns_fashion_mnist() {
    let train_path = Path::new(DATA).join("train-images-idx3-ubyte.gz");
    let test_path = Path::new(DATA).join("t10k-images-idx3-ubyte.gz");
    if !train_path.exists() {
        eprintln!("skipped: {} not found", train_path.display());
        return;
    }
    let mut train = open_dataset(&train_path).unwrap();
    train.truncate(6400);
    let mut test = open_dataset(&test_path).unwrap();
    test.truncate(1000);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lenet_bn");
    let forward = whittle_onnx::load_model(&dir.join("model.onnx")).unwrap();
    let spec = TrainSpec::new(
        Loss::SoftmaxCrossEntropy {
            logits: "logits".into(),
            labels: "labels".into(),
        },
        default_trainable(&forward),
    );
    let opts = TrainerOptions {
        threads: 1,
        batch_size: 32,
    };
    let mut trainer = Trainer::new(
        &forward,
        &spec,
        Box::new(whittle_train::Adam::new(2e-3)),
        &opts,
    )
    .unwrap();
    let input = train
        .input_spec(&[1, 28, 28], &Preprocess::default())
        .unwrap();
    let t0 = Instant::now();
    let first = trainer.train_epoch(&train, &input, None).unwrap();
    let second = trainer.train_epoch(&train, &input, None).unwrap();
    eprintln!(
        "lenet: epoch 1 loss {:.3} acc {:.3}; epoch 2 loss {:.3} acc {:.3}; {:.2} ms/step",
        first.loss,
        first.accuracy(),
        second.loss,
        second.accuracy(),
        t0.elapsed().as_secs_f64() / 400.0 * 1e3
    );
    assert!(
        second.loss < first.loss && second.loss < 0.8,
        "{first:?} {second:?}"
    );

    // Inference: the model as exported (static batch 4), BatchNorm with
    // the updated running statistics.
    let trained = trainer.trained_graph();
    let mut plan = compile(&trained, &CompileOptions::default()).unwrap();
    let test_input = test
        .input_spec(&[1, 28, 28], &Preprocess::default())
        .unwrap();
    let mut metrics = Metrics::new(10);
    for i in (0..test.len()).step_by(4) {
        let b = test.batch(&test_input, i..i + 4).unwrap();
        let out = plan.run(&[b.x]).unwrap();
        for (k, row) in out[0].as_f32().unwrap().chunks_exact(10).enumerate() {
            metrics.add(row, b.labels[k] as usize);
        }
    }
    eprintln!("lenet test accuracy {:.3}", metrics.top1());
    assert!(metrics.top1() > 0.7, "test accuracy {}", metrics.top1());
}
