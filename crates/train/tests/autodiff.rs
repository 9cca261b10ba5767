//! The autodiff pass on hand-built graphs: gradients against central
//! differences of the training graph's own loss, pruning, and errors.

mod common;

use common::run_training_graph;
use whittle_ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle_train::{build_training_graph, BatchNormMode, Loss, TrainError, TrainSpec};

/// xorshift64*, reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (v >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_f32(shape.to_vec(), (0..n).map(|_| self.f32() * scale).collect()).unwrap()
    }
}

fn ints(v: &[i64]) -> Attr {
    Attr::Ints(v.to_vec())
}

/// A smooth network exercising the rules the PyTorch fixtures do not:
/// strided depthwise conv, AveragePool with padding, broadcast Mul and
/// Sub, a value read twice (Sub and Concat), frozen BatchNorm, Reshape,
/// batched MatMul against a 2-D weight, Flatten, Softmax, Identity and a
/// Gemm with alpha, beta and transB.
fn smooth_net(rng: &mut Rng) -> Graph {
    let mut g = Graph {
        name: "smooth".into(),
        inputs: vec![ValueInfo::known("x", DType::F32, &[2, 3, 6, 6])],
        outputs: vec![ValueInfo::known("logits", DType::F32, &[2, 3])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    let mut init = |name: &str, t: Tensor| {
        g.initializers.insert(name.into(), t);
    };
    init("w1", rng.tensor(&[4, 3, 3, 3], 0.5));
    init("b1", rng.tensor(&[4], 0.5));
    init("wd", rng.tensor(&[4, 1, 3, 3], 0.5));
    init("scale", rng.tensor(&[1, 4, 1, 1], 1.0));
    init("bn_g", rng.tensor(&[8], 1.0));
    init("bn_b", rng.tensor(&[8], 0.5));
    init("bn_m", rng.tensor(&[8], 0.2));
    let var = rng.tensor(&[8], 0.5);
    let var: Vec<f32> = var
        .as_f32()
        .unwrap()
        .iter()
        .map(|v| v.abs() + 0.5)
        .collect();
    init("bn_v", Tensor::from_f32(vec![8], var).unwrap());
    init("wm", rng.tensor(&[9, 5], 0.5));
    init("wfc", rng.tensor(&[3, 40], 2.0));
    init("bfc", rng.tensor(&[3], 0.5));
    init("shape", Tensor::vec_i64(vec![2, 8, 9]));
    g.nodes = vec![
        Node::new("c1", "Conv", &["x", "w1", "b1"], &["c1"]).with_attr("pads", ints(&[1, 1, 1, 1])),
        Node::new("sig", "Sigmoid", &["c1"], &["s"]),
        Node::new("dw", "Conv", &["s", "wd"], &["d"])
            .with_attr("group", Attr::Int(4))
            .with_attr("strides", ints(&[2, 2]))
            .with_attr("pads", ints(&[1, 1, 1, 1])),
        Node::new("ap", "AveragePool", &["s"], &["p"])
            .with_attr("kernel_shape", ints(&[3, 3]))
            .with_attr("strides", ints(&[2, 2]))
            .with_attr("pads", ints(&[1, 1, 1, 1]))
            .with_attr("count_include_pad", Attr::Int(1)),
        Node::new("mul", "Mul", &["d", "scale"], &["m"]),
        Node::new("sub", "Sub", &["m", "p"], &["sub"]),
        Node::new("cat", "Concat", &["sub", "p"], &["cat"]).with_attr("axis", Attr::Int(1)),
        Node::new(
            "bn",
            "BatchNormalization",
            &["cat", "bn_g", "bn_b", "bn_m", "bn_v"],
            &["bn"],
        ),
        Node::new("rs", "Reshape", &["bn", "shape"], &["r"]),
        Node::new("mm", "MatMul", &["r", "wm"], &["mm"]),
        Node::new("fl", "Flatten", &["mm"], &["f"]),
        Node::new("sm", "Softmax", &["f"], &["sm"]).with_attr("axis", Attr::Int(1)),
        Node::new("id", "Identity", &["sm"], &["id"]),
        Node::new("fc", "Gemm", &["id", "wfc", "bfc"], &["logits"])
            .with_attr("transB", Attr::Int(1))
            .with_attr("alpha", Attr::Float(0.5))
            .with_attr("beta", Attr::Float(2.0)),
    ];
    g
}

const SMOOTH_WEIGHTS: [&str; 9] = [
    "w1", "b1", "wd", "scale", "bn_g", "bn_b", "wm", "wfc", "bfc",
];

fn sce() -> Loss {
    Loss::SoftmaxCrossEntropy {
        logits: "logits".into(),
        labels: "labels".into(),
    }
}

/// Central differences of the training graph's loss for up to 12 elements
/// of every trainable tensor. The loss is a smooth function here (no
/// kinks); with eps = 1e-2 the truncation error is O(eps^2) ~ 1e-4 and f32
/// rounding of the loss (~1e-7) divided by 2 eps is ~1e-5, so
/// `|fd - g| <= 1e-3 + 1e-2 |fd|` holds with margin while any wrong rule
/// (a missing term, a transposed weight) is off by far more.
fn check_fd(graph: &Graph, spec: &TrainSpec, feeds: &[(&str, Tensor)]) {
    let tg = build_training_graph(graph, spec).unwrap_or_else(|e| panic!("{e}"));
    let weights: Vec<Tensor> = tg.initial.iter().map(|(_, t)| t.clone()).collect();
    let out = run_training_graph(&tg, feeds, &weights);
    let loss_at =
        |w: &[Tensor]| f64::from(run_training_graph(&tg, feeds, w)[0].as_f32().unwrap()[0]);
    let eps = 1e-2f32;
    for (k, (name, _)) in tg.grads.iter().enumerate() {
        let g = out[1 + k].as_f32().unwrap();
        let n = g.len();
        for j in (0..n).step_by((n / 12).max(1)) {
            let mut plus = weights.clone();
            plus[k].as_f32_mut().unwrap()[j] += eps;
            let mut minus = weights.clone();
            minus[k].as_f32_mut().unwrap()[j] -= eps;
            let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(eps));
            let err = (fd - f64::from(g[j])).abs();
            assert!(
                err <= 1e-3 + 1e-2 * fd.abs(),
                "d loss / d {name}[{j}]: finite difference {fd}, autodiff {}",
                g[j]
            );
        }
    }
}

#[test]
fn smooth_net_gradients_match_finite_differences() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let g = smooth_net(&mut rng);
    let mut spec = TrainSpec::new(
        sce(),
        SMOOTH_WEIGHTS.iter().map(|s| s.to_string()).collect(),
    );
    spec.batchnorm = BatchNormMode::Frozen;
    let feeds = [
        ("x", rng.tensor(&[2, 3, 6, 6], 1.0)),
        ("labels", Tensor::from_i64(vec![2], vec![2, 0]).unwrap()),
    ];
    check_fd(&g, &spec, &feeds);
    // Train-mode BatchNorm over the same graph.
    spec.batchnorm = BatchNormMode::Train;
    check_fd(&g, &spec, &feeds);
}

#[test]
fn mse_with_broadcast_add_and_shared_values() {
    // y = sigmoid(x W + b); z = y * y + y (y read three times); MSE(z, t).
    let mut rng = Rng(77);
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, &[4, 6])],
        outputs: vec![ValueInfo::known("z", DType::F32, &[4, 5])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    g.initializers.insert("W".into(), rng.tensor(&[6, 5], 1.0));
    g.initializers.insert("b".into(), rng.tensor(&[5], 1.0));
    g.nodes = vec![
        Node::new("mm", "MatMul", &["x", "W"], &["xw"]),
        Node::new("add", "Add", &["xw", "b"], &["h"]),
        Node::new("sig", "Sigmoid", &["h"], &["y"]),
        Node::new("sq", "Mul", &["y", "y"], &["yy"]),
        Node::new("add2", "Add", &["yy", "y"], &["z"]),
    ];
    let spec = TrainSpec::new(
        Loss::Mse {
            output: "z".into(),
            target: "t".into(),
        },
        vec!["W".into(), "b".into()],
    );
    let feeds = [
        ("x", rng.tensor(&[4, 6], 1.0)),
        ("t", rng.tensor(&[4, 5], 1.0)),
    ];
    check_fd(&g, &spec, &feeds);
}

fn ops(g: &Graph) -> Vec<&str> {
    g.nodes.iter().map(|n| n.op_type.as_str()).collect()
}

#[test]
fn gradient_work_no_trainable_tensor_needs_is_pruned() {
    let mut rng = Rng(5);
    let g = smooth_net(&mut rng);
    // Only the classifier trains: nothing flows past it.
    let mut spec = TrainSpec::new(sce(), vec!["wfc".into(), "bfc".into()]);
    spec.batchnorm = BatchNormMode::Frozen;
    let tg = build_training_graph(&g, &spec).unwrap();
    let names = ops(&tg.graph);
    for op in [
        "ConvGradInput",
        "ConvGradWeight",
        "BatchNormGrad",
        "SoftmaxGrad",
        "AveragePoolGrad",
    ] {
        assert!(!names.contains(&op), "{op} emitted: {names:?}");
    }
    // The backward pass: the loss, dW and dC (sum, times beta) of the
    // Gemm, and no dA.
    let backward: Vec<&Node> = tg
        .graph
        .nodes
        .iter()
        .filter(|n| n.name.starts_with("fc/") || n.name.starts_with("loss"))
        .collect();
    assert_eq!(backward.len(), 4, "{:?}", ops(&tg.graph));

    // Everything trains, yet the first conv's input gets no gradient.
    let mut spec = TrainSpec::new(
        sce(),
        SMOOTH_WEIGHTS.iter().map(|s| s.to_string()).collect(),
    );
    spec.batchnorm = BatchNormMode::Frozen;
    let tg = build_training_graph(&g, &spec).unwrap();
    let grad_inputs = tg
        .graph
        .nodes
        .iter()
        .filter(|n| n.op_type == "ConvGradInput")
        .count();
    assert_eq!(
        grad_inputs, 1,
        "only the depthwise conv passes a gradient down"
    );
    assert!(!tg
        .graph
        .nodes
        .iter()
        .any(|n| n.outputs.iter().any(|o| o == "x.grad")));
    // The forward activations stay internal: outputs are the loss and the
    // gradients only.
    let outs: Vec<&str> = tg.graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let mut want = vec!["loss".to_string()];
    want.extend(SMOOTH_WEIGHTS.iter().map(|w| format!("{w}.grad")));
    assert_eq!(outs, want);
    assert!(tg
        .graph
        .initializers
        .keys()
        .all(|k| !SMOOTH_WEIGHTS.contains(&k.as_str())));
}

#[test]
fn bias_only_conv_training_skips_the_weight_gradient() {
    let mut rng = Rng(9);
    let g = smooth_net(&mut rng);
    let mut spec = TrainSpec::new(sce(), vec!["b1".into(), "bfc".into()]);
    spec.batchnorm = BatchNormMode::Frozen;
    let tg = build_training_graph(&g, &spec).unwrap();
    assert!(
        !ops(&tg.graph).contains(&"ConvGradWeight"),
        "{:?}",
        ops(&tg.graph)
    );
    let feeds = [
        ("x", rng.tensor(&[2, 3, 6, 6], 1.0)),
        ("labels", Tensor::from_i64(vec![2], vec![1, 1]).unwrap()),
    ];
    check_fd(&g, &spec, &feeds);
}

#[test]
fn unsupported_ops_are_listed_together() {
    let mut rng = Rng(3);
    let mut g = smooth_net(&mut rng);
    // Replace the Sigmoid with Exp and the Identity with Erf (neither has a
    // gradient); an Exp off the trained path (on the input only) is fine.
    g.nodes[1].op_type = "Exp".into();
    g.nodes[12].op_type = "Erf".into();
    g.nodes
        .insert(0, Node::new("side", "Exp", &["x"], &["side"]));
    let spec = TrainSpec::new(
        sce(),
        SMOOTH_WEIGHTS.iter().map(|s| s.to_string()).collect(),
    );
    let err = build_training_graph(&g, &spec).unwrap_err();
    assert!(matches!(err, TrainError::Unsupported(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("Exp (nodes: sig)") && msg.contains("Erf (nodes: id)"),
        "{msg}"
    );
    assert!(!msg.contains("side"), "{msg}");
}

#[test]
fn bad_specs_are_clear_errors() {
    let mut rng = Rng(4);
    let g = smooth_net(&mut rng);
    let cases: Vec<(TrainSpec, &str)> = vec![
        (
            TrainSpec::new(sce(), vec!["nope".into(), "w1".into()]),
            "not found among the initializers: nope",
        ),
        (
            TrainSpec::new(sce(), vec!["w1".into(), "w1".into()]),
            "listed twice",
        ),
        (TrainSpec::new(sce(), vec![]), "no trainable"),
        (
            TrainSpec::new(
                Loss::SoftmaxCrossEntropy {
                    logits: "missing".into(),
                    labels: "labels".into(),
                },
                vec!["w1".into()],
            ),
            "'missing'",
        ),
        (
            TrainSpec::new(
                Loss::SoftmaxCrossEntropy {
                    logits: "logits".into(),
                    labels: "x".into(),
                },
                vec!["w1".into()],
            ),
            "already a value",
        ),
        (TrainSpec::new(sce(), vec!["shape".into()]), "not f32"),
    ];
    for (spec, want) in cases {
        let err = build_training_graph(&g, &spec).unwrap_err().to_string();
        assert!(err.contains(want), "expected '{want}' in: {err}");
    }
}

#[test]
fn labels_out_of_range_fail_at_run_time() {
    let mut rng = Rng(6);
    let g = smooth_net(&mut rng);
    let mut spec = TrainSpec::new(sce(), vec!["bfc".into()]);
    spec.batchnorm = BatchNormMode::Frozen;
    let tg = build_training_graph(&g, &spec).unwrap();
    let mut plan = tg.compile(1).unwrap();
    let inputs: Vec<Tensor> = plan
        .inputs()
        .map(|i| match i.name.as_str() {
            "x" => rng.tensor(&[2, 3, 6, 6], 1.0),
            "labels" => Tensor::from_i64(vec![2], vec![0, 3]).unwrap(),
            _ => tg.initial[0].1.clone(),
        })
        .collect();
    let err = plan.run(&inputs).unwrap_err().to_string();
    assert!(err.contains("out of range"), "{err}");
}
