//! Persistent state: a weight updated in place by a node stays in the
//! arena across runs, and every reader of the old value runs first.

use whittle_ir::{DType, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::{compile_with_state, CompileOptions, LiveKind, Registry, StatePair};

/// y = x * w (read of the old w), then w' = w - lr * y, listed first so the
/// graph order would run the update before the read.
fn graph(extra_reader_of_new: bool) -> Graph {
    let mut g = Graph {
        name: "state".into(),
        inputs: vec![
            ValueInfo::known("x", DType::F32, &[4]),
            ValueInfo::known("w", DType::F32, &[4]),
            ValueInfo::known("lr", DType::F32, &[]),
        ],
        outputs: vec![ValueInfo::known("y", DType::F32, &[4])],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 13);
    g.opsets.insert("whittle.grad".into(), 1);
    let mut upd = Node::new("upd", "SgdUpdate", &["w", "y", "lr"], &["w_new"]);
    upd.domain = "whittle.grad".into();
    g.nodes = vec![upd, Node::new("mul", "Mul", &["x", "w"], &["y"])];
    if extra_reader_of_new {
        // Reads both the old and the new value: impossible in place.
        g.nodes
            .push(Node::new("both", "Add", &["w", "w_new"], &["z"]));
        g.outputs.push(ValueInfo::known("z", DType::F32, &[4]));
    }
    g
}

#[test]
fn state_stays_resident_and_updates_in_place() {
    let state = [StatePair::new("w", "w_new")];
    let mut plan = compile_with_state(
        &graph(false),
        &CompileOptions::default(),
        &Registry::standard(),
        &state,
    )
    .unwrap();
    // w is state, not an input.
    let names: Vec<&str> = plan.inputs().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["x", "lr"]);
    assert_eq!(plan.states().count(), 1);
    plan.set_state(
        "w",
        &Tensor::from_f32(vec![4], vec![1.0, 2.0, -1.0, 0.5]).unwrap(),
    )
    .unwrap();
    let x = Tensor::from_f32(vec![4], vec![0.5, 1.0, 2.0, -2.0]).unwrap();
    let lr = Tensor::from_f32(vec![], vec![0.1]).unwrap();
    // Host reference: y = x * w; w -= 0.1 * y, i.e. w *= 1 - 0.1 x.
    let mut w = [1.0f32, 2.0, -1.0, 0.5];
    for _ in 0..3 {
        let out = plan.run(&[x.clone(), lr.clone()]).unwrap();
        let y: Vec<f32> = x
            .as_f32()
            .unwrap()
            .iter()
            .zip(&w)
            .map(|(a, b)| a * b)
            .collect();
        assert_eq!(out[0].as_f32().unwrap(), &y[..], "y read the old w");
        for (w, y) in w.iter_mut().zip(&y) {
            *w -= 0.1 * y;
        }
        assert_eq!(plan.state("w").unwrap().f32(), &w[..]);
    }
    // The state region is live for the whole run and listed once.
    let live: Vec<_> = plan
        .liveness()
        .iter()
        .filter(|l| l.kind == LiveKind::State)
        .collect();
    assert_eq!(live.len(), 1);
    assert_eq!((live[0].name.as_str(), live[0].start), ("w", 0));
    assert_eq!(live[0].end, plan.num_steps() + 1);
    // Nothing else overlaps its bytes.
    let (lo, hi) = (live[0].offset, live[0].offset + live[0].bytes);
    for l in plan.liveness().iter().filter(|l| l.kind != LiveKind::State) {
        assert!(l.offset + l.bytes <= lo || l.offset >= hi, "{l:?}");
    }
    assert!(plan.set_state("nope", &lr).is_err());
    assert!(plan.set_state("w", &lr).is_err());
}

#[test]
fn reading_the_old_state_after_its_update_is_an_error() {
    let state = [StatePair::new("w", "w_new")];
    let err = compile_with_state(
        &graph(true),
        &CompileOptions::default(),
        &Registry::standard(),
        &state,
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("state input"), "{err}");
    let bad = [StatePair::new("nope", "w_new")];
    let err = compile_with_state(
        &graph(false),
        &CompileOptions::default(),
        &Registry::standard(),
        &bad,
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("not a graph input"), "{err}");
}
