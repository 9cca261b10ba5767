use whittle_ir::{Activation, Attr, Node, Tensor};

use crate::ops::nn::linear::linear_cases_types::{assert_close, check_cases, eval_with};
use crate::{eval_node, Registry};

#[test]
fn conv_reference_cases() {
    check_cases(&["Conv"]);
}

#[test]
fn conv_transpose_reference_cases() {
    check_cases(&["ConvTranspose"]);
}

fn conv_node(attrs: &[(&str, Attr)]) -> Node {
    let mut n = Node::new("c", "Conv", &["x", "w"], &["y"]);
    for (k, v) in attrs {
        n = n.with_attr(k, v.clone());
    }
    n
}

fn err_of(node: &Node, x: &[usize], w: &[usize]) -> String {
    let t = |s: &[usize]| Some(Tensor::zeros(whittle_ir::DType::F32, s.to_vec()).unwrap());
    match eval_node(&Registry::standard(), node, &[t(x), t(w)], 13) {
        Ok(_) => panic!("expected an error for x {x:?} w {w:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_convs_are_errors() {
    let n = conv_node(&[]);
    assert!(err_of(&n, &[1, 3, 5, 5], &[2, 4, 3, 3]).contains("channels"));
    assert!(err_of(&n, &[1, 3, 5], &[2, 3, 3, 3]).contains("rank"));
    assert!(err_of(&n, &[1, 3, 2, 2], &[2, 3, 3, 3]).contains("larger than the padded input"));
    assert!(err_of(&n, &[3, 5], &[2, 3]).contains("rank"));
    let g = conv_node(&[("group", Attr::Int(2))]);
    assert!(err_of(&g, &[1, 4, 5, 5], &[3, 2, 3, 3]).contains("divisible"));
    let p = conv_node(&[("pads", Attr::Ints(vec![1, 1]))]);
    assert!(err_of(&p, &[1, 3, 5, 5], &[2, 3, 3, 3]).contains("pads"));
    let s = conv_node(&[("strides", Attr::Ints(vec![0, 1]))]);
    assert!(err_of(&s, &[1, 3, 5, 5], &[2, 3, 3, 3]).contains("strides"));
    let a = conv_node(&[("auto_pad", Attr::String("SAME".into()))]);
    assert!(err_of(&a, &[1, 3, 5, 5], &[2, 3, 3, 3]).contains("auto_pad"));
    let k = conv_node(&[("kernel_shape", Attr::Ints(vec![2, 2]))]);
    assert!(err_of(&k, &[1, 3, 5, 5], &[2, 3, 3, 3]).contains("kernel_shape"));
}

#[test]
fn kernel_names_say_what_ran() {
    let t = |s: &[usize]| Some(Tensor::zeros(whittle_ir::DType::F32, s.to_vec()).unwrap());
    let cases: [(Node, [usize; 4], [usize; 4], &str); 4] = [
        (
            conv_node(&[("group", Attr::Int(8)), ("pads", Attr::Ints(vec![1; 4]))])
                .with_activation(Activation::Relu),
            [1, 8, 10, 10],
            [8, 1, 3, 3],
            "conv.dw3x3s1.",
        ),
        (
            conv_node(&[("group", Attr::Int(8)), ("strides", Attr::Ints(vec![2, 2]))]),
            [1, 8, 10, 10],
            [8, 1, 3, 3],
            "conv.dw3x3s2.",
        ),
        (
            conv_node(&[]),
            [1, 8, 10, 10],
            [4, 8, 1, 1],
            "conv.1x1.gemm.",
        ),
        (
            conv_node(&[]),
            [1, 8, 10, 10],
            [4, 8, 3, 3],
            "conv.im2col.gemm.",
        ),
    ];
    for (node, x, w, prefix) in cases {
        let (_, name) = eval_with(&node, &[t(&x), t(&w)], &[false, true], 13, 1).unwrap();
        // Dense convs run the implicit GEMM where the CPU has AVX-512.
        let alt = prefix
            .replace("im2col", "implicit")
            .replace("1x1.gemm", "1x1.direct");
        assert!(
            name.starts_with(prefix) || name.starts_with(&alt),
            "{name} should start with {prefix}"
        );
        if node.activation == Activation::Relu {
            assert!(name.ends_with("+relu"), "{name}");
        }
    }
}

#[test]
fn every_fused_activation_in_conv() {
    // A depthwise and a GEMM conv, each with every fused activation kind;
    // expected = the unfused conv's output passed through the activation.
    let x = Tensor::from_f32(
        vec![1, 2, 5, 6],
        (0..60).map(|i| (i as f32 * 0.37).sin() * 3.0).collect(),
    )
    .unwrap();
    let w_dw = Tensor::from_f32(
        vec![2, 1, 3, 3],
        (0..18).map(|i| (i as f32 * 0.7).cos()).collect(),
    )
    .unwrap();
    let w_full = Tensor::from_f32(
        vec![3, 2, 3, 3],
        (0..54).map(|i| (i as f32 * 0.3).cos()).collect(),
    )
    .unwrap();
    let acts = [
        Activation::Relu,
        Activation::Clip {
            min: -0.5,
            max: 1.5,
        },
        Activation::LeakyRelu { alpha: 0.2 },
        Activation::Sigmoid,
        Activation::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        Activation::HardSwish,
        Activation::Tanh,
        Activation::Swish { alpha: 1.0 },
    ];
    for (w, group) in [(&w_dw, 2), (&w_full, 1)] {
        let base = conv_node(&[
            ("group", Attr::Int(group)),
            ("pads", Attr::Ints(vec![1; 4])),
        ]);
        let inputs = [Some(x.clone()), Some(w.clone())];
        let plain = eval_node(&Registry::standard(), &base, &inputs, 13).unwrap();
        for act in acts {
            let node = base.clone().with_activation(act);
            let want: Vec<f32> = plain[0]
                .as_f32()
                .unwrap()
                .iter()
                .map(|&v| act.apply(v))
                .collect();
            let got = eval_node(&Registry::standard(), &node, &inputs, 13).unwrap();
            assert_close(got[0].as_f32().unwrap(), &want, act.name());
        }
    }
}
