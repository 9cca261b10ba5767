use whittle_ir::{Attr, DType, Node, Tensor};

use super::linear_cases_types::{assert_close, check_cases, eval_with};
use crate::{eval_node, Registry};

#[test]
fn gemm_reference_cases() {
    check_cases(&["Gemm"]);
}

#[test]
fn matmul_reference_cases() {
    check_cases(&["MatMul"]);
}

fn zeros(s: &[usize]) -> Option<Tensor> {
    Some(Tensor::zeros(DType::F32, s.to_vec()).unwrap())
}

#[test]
fn bad_shapes_are_errors() {
    let reg = Registry::standard();
    let mm = Node::new("m", "MatMul", &["a", "b"], &["y"]);
    let e = eval_node(&reg, &mm, &[zeros(&[2, 3]), zeros(&[4, 5])], 13).unwrap_err();
    assert!(e.to_string().contains("inner dims"), "{e}");
    let e = eval_node(&reg, &mm, &[zeros(&[2, 2, 3]), zeros(&[3, 3, 5])], 13).unwrap_err();
    assert!(e.to_string().contains("broadcast"), "{e}");
    let e = eval_node(&reg, &mm, &[zeros(&[]), zeros(&[3])], 13).unwrap_err();
    assert!(e.to_string().contains("rank"), "{e}");
    let g = Node::new("g", "Gemm", &["a", "b", "c"], &["y"]);
    let e = eval_node(
        &reg,
        &g,
        &[zeros(&[2, 3]), zeros(&[3, 4]), zeros(&[3, 4])],
        13,
    )
    .unwrap_err();
    assert!(e.to_string().contains("broadcast"), "{e}");
    let e = eval_node(&reg, &g, &[zeros(&[2, 3, 1]), zeros(&[3, 4]), None], 13).unwrap_err();
    assert!(e.to_string().contains("rank 2"), "{e}");
    let ints = Some(Tensor::from_i64(vec![1, 1], vec![1]).unwrap());
    let e = eval_node(&reg, &mm, &[ints, zeros(&[1, 1])], 13).unwrap_err();
    assert!(e.to_string().contains("dtype"), "{e}");
}

/// Deterministic values.
fn ramp(shape: &[usize], f: f32) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_f32(
        shape.to_vec(),
        (0..n).map(|i| ((i as f32 + 1.0) * f).sin()).collect(),
    )
    .unwrap()
}

#[test]
fn larger_products_match_naive() {
    // Shapes that cross the GEMM's blocking and split over threads, against
    // a naive triple loop.
    for (m, k, n) in [(1, 1280, 1000), (37, 300, 70), (128, 64, 600)] {
        let a = ramp(&[m, k], 0.37);
        let b = ramp(&[k, n], 0.11);
        let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
        let mut want = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let s: f64 = (0..k)
                    .map(|p| av[i * k + p] as f64 * bv[p * n + j] as f64)
                    .sum();
                want[i * n + j] = s as f32;
            }
        }
        let mm = Node::new("m", "MatMul", &["a", "b"], &["y"]);
        for constant_b in [true, false] {
            for threads in [1, 2] {
                let (out, name) = eval_with(
                    &mm,
                    &[Some(a.clone()), Some(b.clone())],
                    &[false, constant_b],
                    13,
                    threads,
                )
                .unwrap();
                assert_close(
                    out[0].as_f32().unwrap(),
                    &want,
                    &format!("{m}x{k}x{n} {name}"),
                );
            }
        }
        let g = Node::new("g", "Gemm", &["a", "b"], &["y"]).with_attr("transB", Attr::Int(1));
        let bt: Vec<f32> = (0..n * k).map(|i| bv[(i % k) * n + i / k]).collect();
        let bt = Tensor::from_f32(vec![n, k], bt).unwrap();
        let out = eval_node(&Registry::standard(), &g, &[Some(a.clone()), Some(bt)], 13).unwrap();
        assert_close(out[0].as_f32().unwrap(), &want, "gemm transB");
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    let a = ramp(&[4, 33, 70], 0.3);
    let b = ramp(&[4, 70, 45], 0.7);
    let mm = Node::new("m", "MatMul", &["a", "b"], &["y"]);
    let inputs = [Some(a), Some(b)];
    let (one, _) = eval_with(&mm, &inputs, &[false, false], 13, 1).unwrap();
    let (two, name) = eval_with(&mm, &inputs, &[false, false], 13, 2).unwrap();
    assert!(name.starts_with("matmul.batched.dynamic"), "{name}");
    assert_eq!(one[0], two[0]);
}

#[test]
fn names_and_figures() {
    let reg = Registry::standard();
    let mm = Node::new("m", "MatMul", &["a", "b"], &["y"]);
    let (_, name) = eval_with(
        &mm,
        &[zeros(&[2, 5, 8]), zeros(&[8, 3])],
        &[false, true],
        13,
        1,
    )
    .unwrap();
    assert!(
        name.starts_with("matmul.") && !name.contains("batched") && !name.contains("dynamic"),
        "{name}"
    );
    let (_, name) = eval_with(
        &mm,
        &[zeros(&[2, 5, 8]), zeros(&[2, 8, 3])],
        &[false, true],
        13,
        1,
    )
    .unwrap();
    assert!(name.starts_with("matmul.batched."), "{name}");
    let g =
        Node::new("g", "Gemm", &["a", "b"], &["y"]).with_activation(whittle_ir::Activation::Relu);
    let (_, name) =
        eval_with(&g, &[zeros(&[2, 8]), zeros(&[8, 3])], &[false, true], 13, 1).unwrap();
    assert!(
        name.starts_with("gemm.") && name.ends_with("+relu"),
        "{name}"
    );
    let _ = reg;
}
