//! The data-movement and misc ops (TopK, scatter/gather, Einsum,
//! GridSample, ...) run without heap allocation inside a compiled plan: a
//! counting global allocator watches `Plan::execute`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use whittle_ir::{Attr, DType, Graph, Node, Tensor, ValueInfo};
use whittle_runtime::{compile, CompileOptions};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call unchanged to the system allocator, which upholds
// the GlobalAlloc contract; the counter has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was returned by System.alloc with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        // SAFETY: ptr/layout come from this allocator, forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn node(op: &str, ins: &[&str], outs: &[&str], attrs: &[(&str, Attr)]) -> Node {
    let mut n = Node::new(format!("n_{}", outs[0]), op, ins, outs);
    for (k, v) in attrs {
        n = n.with_attr(k, v.clone());
    }
    n
}

#[test]
fn data_ops_execute_without_allocating() {
    let shape = [1usize, 4, 4, 6];
    let ints = |v: &[i64], s: &[usize]| {
        Tensor::new(s.to_vec(), whittle_ir::TensorData::I64(v.to_vec())).unwrap()
    };
    let mut g = Graph {
        inputs: vec![
            ValueInfo::known("x", DType::F32, &shape),
            ValueInfo::known("grid", DType::F32, &[1, 3, 2, 2]),
        ],
        ..Graph::default()
    };
    g.opsets.insert(String::new(), 18);
    g.initializers.insert("k".into(), ints(&[3], &[1]));
    g.initializers.insert("axis".into(), ints(&[2], &[]));
    g.initializers
        .insert("nd_idx".into(), ints(&[0, 3, 1, 2], &[1, 2, 2]));
    g.initializers
        .insert("el_idx".into(), ints(&[5, 0, 2, 5], &[1, 1, 1, 4]));
    g.initializers
        .insert("lens".into(), ints(&[1, 0, 1, 1], &[4]));
    g.initializers.insert(
        "upd".into(),
        Tensor::from_f32(vec![1, 1, 1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
    );
    let s = |v: &str| Attr::String(v.into());
    g.nodes = vec![
        node("TopK", &["x", "k"], &["tv", "ti"], &[]),
        node(
            "GridSample",
            &["x", "grid"],
            &["gs"],
            &[("mode", s("bicubic")), ("padding_mode", s("reflection"))],
        ),
        node(
            "Einsum",
            &["x", "x"],
            &["es"],
            &[("equation", s("nchw,nkhw->nck"))],
        ),
        node(
            "GatherND",
            &["x", "nd_idx"],
            &["gnd"],
            &[("batch_dims", Attr::Int(1))],
        ),
        node(
            "ScatterElements",
            &["x", "el_idx", "upd"],
            &["se"],
            &[("axis", Attr::Int(-1)), ("reduction", s("add"))],
        ),
        node(
            "CumSum",
            &["x", "axis"],
            &["cs"],
            &[("reverse", Attr::Int(1))],
        ),
        node("Trilu", &["x"], &["tr"], &[]),
        node("MeanVarianceNormalization", &["x"], &["mv"], &[]),
        node("LRN", &["x"], &["lr"], &[("size", Attr::Int(3))]),
        node(
            "DepthToSpace",
            &["x"],
            &["d2s"],
            &[("blocksize", Attr::Int(2))],
        ),
        node("ReverseSequence", &["x", "lens"], &["rs"], &[]),
    ];
    for out in [
        "tv", "ti", "gs", "es", "gnd", "se", "cs", "tr", "mv", "lr", "d2s", "rs",
    ] {
        let dtype = if out == "ti" { DType::I64 } else { DType::F32 };
        g.outputs.push(ValueInfo {
            name: out.into(),
            dtype,
            shape: None,
        });
    }
    let mut plan = compile(&g, &CompileOptions::default()).unwrap();
    let x = Tensor::from_f32(
        shape.to_vec(),
        (0..96).map(|i| (i as f32 * 0.37).sin()).collect(),
    )
    .unwrap();
    let grid = Tensor::from_f32(
        vec![1, 3, 2, 2],
        vec![
            -1.2, 0.3, 0.5, 0.9, 1.1, -0.4, 0.0, 0.0, -0.7, 1.3, 0.2, -0.9,
        ],
    )
    .unwrap();
    plan.set_input_tensor(0, &x).unwrap();
    plan.set_input_tensor(1, &grid).unwrap();
    plan.execute().unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..5 {
        plan.set_input_tensor(0, &x).unwrap();
        plan.set_input_tensor(1, &grid).unwrap();
        plan.execute().unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "execute allocated {} times",
        after - before
    );
}
