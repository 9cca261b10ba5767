//! Planner and executor behaviour on small graphs of test ops.

mod common_ops;

use common_ops::{graph, test_registry};
use whittle_ir::{Node, Tensor};
use whittle_runtime::{compile_with, CompileError, CompileOptions};

fn opts() -> CompileOptions {
    CompileOptions::default()
}

#[test]
fn chain_runs_in_place_in_one_buffer() {
    let n = 1024;
    let g = graph(
        &[n],
        vec![
            Node::new("d1", "Double", &["x"], &["a"]),
            Node::new("d2", "Double", &["a"], &["b"]),
            Node::new("d3", "Double", &["b"], &["y"]),
        ],
        &[("y", &[n])],
    );
    let mut plan = compile_with(&g, &opts(), &test_registry()).unwrap();
    let x: Vec<f32> = (0..n).map(|i| i as f32).collect();
    let out = plan
        .run(&[Tensor::from_f32(vec![n], x.clone()).unwrap()])
        .unwrap();
    let want: Vec<f32> = x.iter().map(|v| v * 8.0).collect();
    assert_eq!(out[0].as_f32().unwrap(), &want[..]);
    // Input, a, b and y all share one buffer.
    let mem = plan.memory();
    assert_eq!(mem.arena, n * 4);
    assert_eq!(mem.naive, 4 * n * 4);
    assert!(plan.report().nodes.iter().all(|r| r.in_place));
}

#[test]
fn graph_outputs_are_not_overwritten_in_place() {
    let g = graph(
        &[4],
        vec![
            Node::new("d1", "Double", &["x"], &["a"]),
            Node::new("d2", "Double", &["a"], &["y"]),
        ],
        &[("a", &[4]), ("y", &[4])],
    );
    let mut plan = compile_with(&g, &opts(), &test_registry()).unwrap();
    let out = plan
        .run(&[Tensor::from_f32(vec![4], vec![1.0, 2.0, 3.0, 4.0]).unwrap()])
        .unwrap();
    assert_eq!(out[0].as_f32().unwrap(), &[2.0, 4.0, 6.0, 8.0]);
    assert_eq!(out[1].as_f32().unwrap(), &[4.0, 8.0, 12.0, 16.0]);
}

#[test]
fn residual_block_is_correct_and_near_the_lower_bound() {
    // x -> d1 -> d2 -> add(x, .) -> d3 -> add(., d1out) : two skip connections.
    let n = 256;
    let g = graph(
        &[n],
        vec![
            Node::new("d1", "Double", &["x"], &["a"]),
            Node::new("d2", "Double", &["a"], &["b"]),
            Node::new("s1", "Add", &["x", "b"], &["c"]),
            Node::new("d3", "Double", &["c"], &["d"]),
            Node::new("s2", "Add", &["d", "a"], &["y"]),
        ],
        &[("y", &[n])],
    );
    let mut plan = compile_with(&g, &opts(), &test_registry()).unwrap();
    let out = plan
        .run(&[Tensor::from_f32(vec![n], vec![1.0; n]).unwrap()])
        .unwrap();
    // a = 2, b = 4, c = 5, d = 10, y = 12
    assert!(out[0].as_f32().unwrap().iter().all(|&v| v == 12.0));
    let mem = plan.memory();
    assert!(mem.arena >= mem.lower_bound);
    assert!(mem.arena as f64 <= mem.lower_bound as f64 * 1.05, "{mem:?}");
    assert!(mem.arena < mem.naive);
}

#[test]
fn branch_order_lowers_peak_memory() {
    // Two branches from x, listed interleaved; each grows 4x then shrinks
    // back. Finishing one branch before starting the other keeps only one
    // big value alive at a time: peak 7n instead of 10n floats.
    let n = 1000;
    let mut nodes = Vec::new();
    for p in ["a", "b"] {
        nodes.push(Node::new(
            format!("{p}1"),
            "Cat",
            &["x", "x"],
            &[&format!("{p}1")],
        ));
    }
    for (i, op) in [(2, "Cat"), (3, "Head"), (4, "Head")] {
        for p in ["a", "b"] {
            let prev = format!("{p}{}", i - 1);
            let inputs: Vec<&str> = if op == "Cat" {
                vec![&prev, &prev]
            } else {
                vec![&prev]
            };
            nodes.push(Node::new(
                format!("{p}{i}"),
                op,
                &inputs,
                &[&format!("{p}{i}")],
            ));
        }
    }
    nodes.push(Node::new("j", "Add", &["a4", "b4"], &["y"]));
    let g = graph(&[n], nodes, &[("y", &[n])]);
    let mut plan = compile_with(&g, &opts(), &test_registry()).unwrap();
    let report = plan.report().clone();
    assert_ne!(report.totals.schedule, "graph-order");
    let mem = plan.memory();
    assert!(mem.arena as f64 <= mem.lower_bound as f64 * 1.05, "{mem:?}");
    // x (n) + a4 (n) + b1 (2n) + b2 (4n) at the peak, plus scratch-free ops.
    assert!(mem.arena <= 8 * n * 4 + 256, "{mem:?}");
    let out = plan
        .run(&[Tensor::from_f32(vec![n], vec![1.5; n]).unwrap()])
        .unwrap();
    assert!(out[0].as_f32().unwrap().iter().all(|&v| v == 3.0));
}

#[test]
fn unsupported_ops_are_all_listed_before_anything_runs() {
    let g = graph(
        &[4],
        vec![
            Node::new("f1", "Frobnicate", &["x"], &["a"]),
            Node::new("d", "Double", &["a"], &["b"]),
            Node::new("f2", "Frobnicate", &["b"], &["c"]),
            Node::new("w", "Wibble", &["c"], &["y"]),
        ],
        &[("y", &[4])],
    );
    let err = compile_with(&g, &opts(), &test_registry())
        .err()
        .expect("must fail");
    let CompileError::Unsupported(list) = &err else {
        panic!("{err}")
    };
    assert_eq!(list.len(), 2);
    let msg = err.to_string();
    for needle in ["Frobnicate", "f1", "f2", "Wibble", "w"] {
        assert!(msg.contains(needle), "{msg}");
    }
}

#[test]
fn symbolic_input_dims_need_an_override() {
    let mut g = graph(
        &[4],
        vec![Node::new("d", "Double", &["x"], &["y"])],
        &[("y", &[4])],
    );
    g.inputs[0].shape = Some(vec![
        whittle_ir::Dim::Symbolic("batch".into()),
        whittle_ir::Dim::Known(4),
    ]);
    let err = compile_with(&g, &opts(), &test_registry())
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("batch") && err.to_string().contains("--input-shape"),
        "{err}"
    );
    let mut o = opts();
    o.input_shapes.insert("x".into(), vec![3, 4]);
    let mut plan = compile_with(&g, &o, &test_registry()).unwrap();
    let out = plan
        .run(&[Tensor::from_f32(vec![3, 4], vec![1.0; 12]).unwrap()])
        .unwrap();
    assert_eq!(out[0].shape(), &[3, 4]);
    o.input_shapes.insert("x".into(), vec![3, 5]);
    assert!(compile_with(&g, &o, &test_registry()).is_err());
}

#[test]
fn wrong_input_shape_is_an_error_not_a_panic() {
    let g = graph(
        &[4],
        vec![Node::new("d", "Double", &["x"], &["y"])],
        &[("y", &[4])],
    );
    let mut plan = compile_with(&g, &opts(), &test_registry()).unwrap();
    assert!(plan
        .run(&[Tensor::from_f32(vec![5], vec![1.0; 5]).unwrap()])
        .is_err());
    assert!(plan.run(&[]).is_err());
}

#[test]
fn results_do_not_depend_on_thread_count() {
    let g = graph(
        &[64],
        vec![
            Node::new("d1", "Double", &["x"], &["a"]),
            Node::new("s", "Add", &["a", "x"], &["y"]),
        ],
        &[("y", &[64])],
    );
    let x = Tensor::from_f32(vec![64], (0..64).map(|i| i as f32 * 0.5).collect()).unwrap();
    let mut outs = Vec::new();
    for threads in [1, 2] {
        let mut o = opts();
        o.threads = threads;
        let mut plan = compile_with(&g, &o, &test_registry()).unwrap();
        outs.push(plan.run(std::slice::from_ref(&x)).unwrap());
    }
    assert_eq!(outs[0], outs[1]);
}
