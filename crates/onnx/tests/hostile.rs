//! Malformed and hostile files: each must give an error (never a panic) and
//! must not make the importer allocate out of proportion to the input.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use whittle_onnx::proto::attribute_proto::AttributeType;
use whittle_onnx::proto::tensor_proto::{DataLocation, DataType, Segment};
use whittle_onnx::proto::{
    GraphProto, Message, ModelProto, SparseTensorProto, StringStringEntryProto, TensorProto,
};
use whittle_onnx::{load_model, load_model_bytes, load_model_bytes_with, ImportLimits, OnnxError};

/// Records the largest single allocation made by the current thread, so
/// each test can check that a file declaring huge sizes did not cause a
/// huge allocation.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards every call unchanged to the system allocator; the
// bookkeeping touches only a const-initialized thread-local Cell, which
// neither allocates nor can be re-entered.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(layout.size())));
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LARGEST.try_with(|m| m.set(m.get().max(new_size)));
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

/// Runs `f`, asserting that no allocation it made exceeded 16 MiB.
fn small_allocs<R>(what: &str, f: impl FnOnce() -> R) -> R {
    LARGEST.with(|m| m.set(0));
    let r = f();
    let largest = LARGEST.with(Cell::get);
    assert!(
        largest < 16 << 20,
        "{what}: allocated {largest} bytes at once"
    );
    r
}

fn import_err(what: &str, m: &ModelProto) -> String {
    let bytes = encode(m);
    small_allocs(what, || load_model_bytes(&bytes, None))
        .expect_err(what)
        .to_string()
}

fn model_with(w: TensorProto) -> ModelProto {
    let mut m = small_model(w);
    // Keep the graph valid whatever the initializer is called.
    graph_mut(&mut m).node[1].input[1] = m.graph.as_ref().unwrap().initializer[0].name().into();
    m
}

#[test]
fn every_truncation_of_a_model() {
    let full = small_model_bytes();
    // prost writes fields in tag order: everything up to and including the
    // graph (tag 7) comes before opset_import (tag 8). A cut after the
    // graph leaves a valid model that merely lacks its opsets.
    let mut no_tail = ModelProto::decode(full.as_slice()).unwrap();
    no_tail.opset_import.clear();
    let graph_end = encode(&no_tail).len();
    for len in 0..full.len() {
        let r = small_allocs("prefix", || load_model_bytes(&full[..len], None));
        if len < graph_end {
            assert!(r.is_err(), "prefix of {len} bytes imported");
        }
    }
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_bytes() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for _ in 0..3000 {
        let len = rng.below(512);
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = small_allocs("random", || load_model_bytes(&bytes, None));
        let _ = small_allocs("random tensor", || whittle_onnx::load_tensor_bytes(&bytes));
    }
}

#[test]
fn random_mutations_of_a_model() {
    let full = small_model_bytes();
    let mut rng = Rng(0x0ddb_a11c_afe0_0042);
    for _ in 0..5000 {
        let mut bytes = full.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[i] ^= 1 << rng.below(8),
                1 => bytes[i] = rng.next() as u8,
                _ => bytes[i] = 0xff,
            }
        }
        let _ = small_allocs("mutation", || load_model_bytes(&bytes, None));
    }
}

#[test]
fn negative_dims() {
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.dims = vec![-2, -3];
    let err = import_err("negative dims", &model_with(w));
    assert!(err.contains("'w'") && err.contains("negative"), "{err}");
}

#[test]
fn huge_dims() {
    for dims in [
        vec![1i64 << 40],
        vec![1 << 20, 1 << 21],
        vec![i64::MAX, i64::MAX, 2],
        vec![1 << 31, 2],
    ] {
        let mut w = raw_f32("w", &[1], &[0.0]);
        w.dims = dims.clone();
        let err = import_err("huge dims", &model_with(w));
        assert!(
            err.contains("'w'") && err.contains("limit"),
            "{dims:?}: {err}"
        );
    }
    // Within the element limit but far larger than the data present.
    let mut w = raw_f32("w", &[1], &[0.0]);
    w.dims = vec![1 << 30];
    let err = import_err("big dims, small raw_data", &model_with(w));
    assert!(err.contains("raw_data"), "{err}");
    let mut w = raw_f32("w", &[1], &[]);
    w.raw_data = None;
    w.float_data = vec![1.0, 2.0];
    w.dims = vec![1 << 30];
    let err = import_err("big dims, few float_data", &model_with(w));
    assert!(err.contains("float_data"), "{err}");
    // A zero-sized tensor may have a huge dim: it holds no data.
    let mut w = raw_f32("w", &[0], &[]);
    w.dims = vec![0, i64::MAX];
    let t = small_allocs("zero-sized", || whittle_onnx::tensor_from_proto(&w)).unwrap();
    assert_eq!(t.numel(), 0);
}

#[test]
fn raw_data_length_mismatch() {
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.raw_data.as_mut().unwrap().pop();
    let err = import_err("raw_data", &model_with(w));
    assert!(err.contains("23 bytes") && err.contains("24"), "{err}");
}

#[test]
fn typed_count_mismatch() {
    let mut w = raw_f32("w", &[2, 3], &[]);
    w.raw_data = None;
    w.float_data = vec![0.0; 5];
    let err = import_err("float_data", &model_with(w));
    assert!(err.contains("5 values"), "{err}");
}

#[test]
fn both_raw_and_typed_data() {
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.float_data = vec![0.0; 6];
    let err = import_err("raw and typed", &model_with(w));
    assert!(err.contains("both"), "{err}");
}

#[test]
fn unsupported_tensor_types() {
    let w = TensorProto {
        name: Some("w".into()),
        dims: vec![1],
        data_type: Some(DataType::String as i32),
        string_data: vec![b"x".to_vec()],
        ..TensorProto::default()
    };
    let err = import_err("string", &model_with(w));
    assert!(err.contains("'w'") && err.contains("STRING"), "{err}");
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.data_type = None;
    let err = import_err("undefined", &model_with(w));
    assert!(err.contains("UNDEFINED"), "{err}");
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.data_location = Some(7);
    let err = import_err("data_location", &model_with(w));
    assert!(err.contains("data_location"), "{err}");
    let mut w = raw_f32("w", &[2, 3], &[0.0; 6]);
    w.segment = Some(Segment {
        begin: Some(0),
        end: Some(3),
    });
    let err = import_err("segment", &model_with(w));
    assert!(err.contains("segment"), "{err}");
}

fn external(location: &str, offset: &str, length: &str) -> TensorProto {
    let kv = |k: &str, v: &str| StringStringEntryProto {
        key: Some(k.into()),
        value: Some(v.into()),
    };
    let mut entries = vec![kv("location", location)];
    if !offset.is_empty() {
        entries.push(kv("offset", offset));
    }
    if !length.is_empty() {
        entries.push(kv("length", length));
    }
    TensorProto {
        name: Some("w".into()),
        dims: vec![2, 3],
        data_type: Some(DataType::Float as i32),
        data_location: Some(DataLocation::External as i32),
        external_data: entries,
        ..TensorProto::default()
    }
}

#[test]
fn external_data_attacks() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(root.path().join("secret.bin"), [0u8; 24]).unwrap();
    std::fs::write(dir.join("w.bin"), [0u8; 24]).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(root.path().join("secret.bin"), dir.join("link.bin")).unwrap();
    let secret = root.path().join("secret.bin");
    let cases = [
        (external("../secret.bin", "", ""), "'..'"),
        (external("sub/../../secret.bin", "", ""), "'..'"),
        (external(secret.to_str().unwrap(), "", ""), "absolute"),
        (external("link.bin", "", ""), "outside"),
        (external("w.bin", "8", "24"), "past the end"),
        (external("w.bin", "25", ""), "past the end"),
        (
            external("w.bin", "18446744073709551615", "2"),
            "past the end",
        ),
        (
            external("w.bin", "0", "18446744073709551615"),
            "past the end",
        ),
        (external("w.bin", "0", "16"), "does not match"),
        (external("w.bin", "-1", ""), "not a non-negative integer"),
        (external("w.bin", "zero", ""), "not a non-negative integer"),
        (external("missing.bin", "", ""), "missing.bin"),
        (external("", "", ""), "location"),
        (external(".", "", ""), "regular file"),
    ];
    for (w, want) in cases {
        if cfg!(not(unix)) && want == "outside" {
            continue;
        }
        let path = dir.join("model.onnx");
        std::fs::write(&path, encode(&model_with(w))).unwrap();
        let err = small_allocs(want, || load_model(&path)).unwrap_err();
        assert!(matches!(err, OnnxError::InFile { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.contains(want) && err.contains("'w'"), "{want}: {err}");
    }
    // External tensors with huge declared shapes fail before reading.
    let mut w = external("w.bin", "", "");
    w.dims = vec![1 << 30];
    let path = dir.join("model.onnx");
    std::fs::write(&path, encode(&model_with(w))).unwrap();
    let err = small_allocs("huge external", || load_model(&path)).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn cyclic_graph() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).node[0].input = vec!["y".into()];
    let err = import_err("cycle", &m);
    assert!(err.contains("cycle") && err.contains("relu"), "{err}");
}

#[test]
fn dangling_values() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).node[1].input[1] = "nowhere".into();
    let err = import_err("dangling input", &m);
    assert!(err.contains("nowhere") && err.contains("add"), "{err}");
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).output[0].name = Some("ghost".into());
    let err = import_err("dangling output", &m);
    assert!(err.contains("ghost"), "{err}");
}

#[test]
fn duplicates() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    let w = graph_mut(&mut m).initializer[0].clone();
    graph_mut(&mut m).initializer.push(w);
    let err = import_err("duplicate initializer", &m);
    assert!(err.contains("'w'") && err.contains("twice"), "{err}");
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).node[1].output[0] = "r".into();
    let err = import_err("duplicate producer", &m);
    assert!(err.contains("'r'"), "{err}");
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    let mut c = node("c", "Constant", &[], &["w"]);
    let mut a = attr("value_float", AttributeType::Float);
    a.f = Some(1.0);
    c.attribute = vec![a];
    graph_mut(&mut m).node.push(c);
    let err = import_err("constant over initializer", &m);
    assert!(err.contains("'w'"), "{err}");
}

#[test]
fn bad_value_info() {
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    graph_mut(&mut m).input[0] = vi("x", DataType::Float, &[2, -2]);
    let err = import_err("dim -2", &m);
    assert!(err.contains("'x'") && err.contains("-2"), "{err}");
    graph_mut(&mut m).input[0] = vi("x", DataType::Float, &[1; 17]);
    let err = import_err("rank 17", &m);
    assert!(err.contains("'x'") && err.contains("rank"), "{err}");
    graph_mut(&mut m).input[0] = vi("x", DataType::Float, &[1 << 21, 1 << 20]);
    let err = import_err("2^41 elements", &m);
    assert!(err.contains("'x'") && err.contains("limit"), "{err}");
    graph_mut(&mut m).input[0].r#type = None;
    let err = import_err("untyped", &m);
    assert!(
        err.contains("'x'") && err.contains("no declared type"),
        "{err}"
    );
}

#[test]
fn initializer_budget() {
    let limits = ImportLimits {
        max_total_initializer_bytes: 40,
        ..ImportLimits::default()
    };
    let mut m = small_model(raw_f32("w", &[2, 3], &[0.0; 6]));
    assert!(load_model_bytes_with(&encode(&m), None, &limits).is_ok());
    graph_mut(&mut m)
        .initializer
        .push(raw_f32("w2", &[2, 3], &[0.0; 6]));
    let err = load_model_bytes_with(&encode(&m), None, &limits).unwrap_err();
    assert!(err.to_string().contains("w2"), "{err}");
    let limits = ImportLimits {
        max_file_bytes: 10,
        ..ImportLimits::default()
    };
    let err = load_model_bytes_with(&encode(&m), None, &limits).unwrap_err();
    assert!(matches!(err, OnnxError::TooLarge { .. }), "{err}");
}

#[test]
fn bad_sparse_initializers() {
    let idx = |v: Vec<i64>, dims: Vec<i64>| TensorProto {
        dims,
        data_type: Some(DataType::Int64 as i32),
        int64_data: v,
        ..TensorProto::default()
    };
    let cases = [
        (idx(vec![6], vec![1]), vec![2, 3], "out of range"),
        (idx(vec![-1], vec![1]), vec![2, 3], "out of range"),
        (idx(vec![0, 3], vec![1, 2]), vec![2, 3], "out of range"),
        (idx(vec![0, 0, 0], vec![1, 3]), vec![2, 3], "indices shape"),
        (idx(vec![0], vec![1]), vec![1 << 40], "limit"),
        (idx(vec![0], vec![1]), vec![-1, 3], "negative"),
    ];
    for (indices, dims, want) in cases {
        let mut m = small_model(raw_f32("unused", &[1], &[0.0]));
        graph_mut(&mut m).sparse_initializer = vec![SparseTensorProto {
            values: Some(raw_f32("w", &[1], &[1.0])),
            indices: Some(indices),
            dims,
        }];
        let err = import_err(want, &m);
        assert!(err.contains(want) && err.contains("'w'"), "{want}: {err}");
    }
}

#[test]
fn deeply_nested_subgraphs() {
    // Each level: graph -> node -> attribute -> graph. prost's recursion
    // limit must turn this into an error rather than a stack overflow.
    let mut g = GraphProto::default();
    for _ in 0..200 {
        let mut a = attr("body", AttributeType::Graph);
        a.g = Some(g);
        let mut n = node("loop", "Loop", &[], &[]);
        n.attribute = vec![a];
        g = GraphProto {
            node: vec![n],
            ..GraphProto::default()
        };
    }
    let m = ModelProto {
        graph: Some(g),
        ..ModelProto::default()
    };
    let err = import_err("nesting", &m);
    assert!(err.contains("ModelProto"), "{err}");
}

#[test]
fn model_without_graph() {
    let err = import_err("no graph", &ModelProto::default());
    assert!(err.contains("no graph"), "{err}");
}

#[test]
#[should_panic(expected = "allocated")]
fn the_allocation_guard_bites() {
    small_allocs("guard", || std::hint::black_box(vec![0u8; 32 << 20]).len());
}
