//! Models that are valid protobuf but ask for absurd computations: compile
//! must refuse them with a clear error, never panic or allocate hugely.

use whittle::ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle::runtime::{compile, CompileOptions};

fn graph_with(nodes: Vec<Node>, inits: Vec<(&str, Tensor)>, out: &str) -> Graph {
    let mut g = Graph {
        inputs: vec![ValueInfo::known("x", DType::F32, &[1, 4])],
        outputs: vec![ValueInfo {
            name: out.into(),
            dtype: DType::F32,
            shape: None,
        }],
        nodes,
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 17);
    for (n, t) in inits {
        g.initializers.insert(n.into(), t);
    }
    g
}

fn expect_error(g: &Graph, needle: &str) {
    let err = compile(g, &CompileOptions::default())
        .err()
        .expect("compile must fail");
    assert!(err.to_string().contains(needle), "{err}");
}

#[test]
fn huge_constant_of_shape_is_refused() {
    let g = graph_with(
        vec![Node::new("c", "ConstantOfShape", &["s"], &["y"])],
        vec![("s", Tensor::vec_i64(vec![1 << 20, 1 << 20, 16]))],
        "y",
    );
    expect_error(&g, "limit");
}

#[test]
fn dim_product_over_2_pow_40_is_refused() {
    let g = graph_with(
        vec![Node::new("e", "Expand", &["x", "s"], &["y"])],
        vec![("s", Tensor::vec_i64(vec![1 << 21, 1 << 21, 4]))],
        "y",
    );
    expect_error(&g, "limit");
}

#[test]
fn overflowing_shape_is_refused() {
    let g = graph_with(
        vec![Node::new("c", "ConstantOfShape", &["s"], &["y"])],
        vec![("s", Tensor::vec_i64(vec![i64::MAX, i64::MAX]))],
        "y",
    );
    assert!(compile(&g, &CompileOptions::default()).is_err());
}

#[test]
fn negative_reshape_dims_are_refused() {
    let g = graph_with(
        vec![Node::new("r", "Reshape", &["x", "s"], &["y"])],
        vec![("s", Tensor::vec_i64(vec![-5, 2]))],
        "y",
    );
    assert!(compile(&g, &CompileOptions::default()).is_err());
}

#[test]
fn huge_input_shape_override_is_refused() {
    let g = graph_with(vec![Node::new("r", "Relu", &["x"], &["y"])], vec![], "y");
    let mut g = g;
    g.inputs[0].shape = Some(vec![
        whittle::ir::Dim::Symbolic("n".into()),
        whittle::ir::Dim::Known(4),
    ]);
    let mut opts = CompileOptions::default();
    opts.input_shapes.insert("x".into(), vec![1 << 40, 4]);
    let err = compile(&g, &opts).err().expect("must fail");
    assert!(err.to_string().contains("too large"), "{err}");
}

#[test]
fn bad_attribute_kinds_are_errors() {
    let g = graph_with(
        vec![Node::new("s", "Softmax", &["x"], &["y"])
            .with_attr("axis", Attr::String("last".into()))],
        vec![],
        "y",
    );
    expect_error(&g, "axis");
}

/// Found by the `compile` fuzz target: Trilu over an empty matrix divided by
/// its zero row count.
#[test]
fn trilu_on_an_empty_matrix_runs() {
    let mut g = graph_with(vec![Node::new("t", "Trilu", &["x"], &["y"])], vec![], "y");
    g.inputs[0] = ValueInfo::known("x", DType::F32, &[0, 3]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let out = plan
        .run(&[Tensor::zeros(DType::F32, vec![0, 3]).unwrap()])
        .unwrap();
    assert_eq!(out[0].shape(), &[0, 3]);
}

/// Found by the `compile` fuzz target: a reduction over an empty axis read
/// its (empty) input through an unaligned slice.
#[test]
fn reduce_over_an_empty_axis_gives_the_identity() {
    let mut g = graph_with(
        vec![Node::new("r", "ReduceL2", &["x"], &["y"])
            .with_attr("axes", Attr::Ints(vec![2]))
            .with_attr("keepdims", Attr::Int(0))],
        vec![],
        "y",
    );
    g.opsets.insert(String::new(), 13);
    g.inputs[0] = ValueInfo::known("x", DType::F32, &[3, 2, 0]);
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let out = plan
        .run(&[Tensor::zeros(DType::F32, vec![3, 2, 0]).unwrap()])
        .unwrap();
    assert_eq!(out[0].shape(), &[3, 2]);
    assert!(out[0].as_f32().unwrap().iter().all(|&v| v == 0.0));
}

/// Found by the `compile` fuzz target: tensors each under the per-tensor
/// limit can still add up to an absurd arena; compile refuses it before
/// allocating.
#[test]
fn arena_over_the_limit_is_refused() {
    let n = 1i64 << 28; // 1 GiB of f32 per tensor
    let g = graph_with(
        vec![
            Node::new("a", "Expand", &["x1", "s"], &["a"]),
            Node::new("b", "Expand", &["x1", "s"], &["b"]),
            Node::new("c", "Expand", &["x1", "s"], &["c"]),
            Node::new("d", "Expand", &["x1", "s"], &["d"]),
            Node::new("e", "Expand", &["x1", "s"], &["e"]),
            Node::new("r", "Reshape", &["x", "one"], &["x1"]),
            Node::new("sum", "Sum", &["a", "b", "c", "d", "e"], &["y"]),
        ],
        vec![
            ("s", Tensor::vec_i64(vec![4, n / 4])),
            ("one", Tensor::vec_i64(vec![4, 1])),
        ],
        "y",
    );
    expect_error(&g, "arena");
}
