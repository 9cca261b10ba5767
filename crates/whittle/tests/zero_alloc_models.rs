//! Real models from the fixture zoo execute without a single heap allocation
//! once compiled (single-threaded): a counting global allocator watches
//! `Plan::execute` with the real kernels (GEMM, conv, depthwise, LSTM,
//! attention, pooling, normalization...).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use whittle::runtime::{compile, CompileOptions};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator, which
// upholds the GlobalAlloc contract; counting has no effect on the memory.
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

#[test]
fn fixture_models_execute_without_allocating() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let models = [
        "mobilenetv2_035_96",
        "resnet_small",
        "transformer_encoder",
        "lstm_model",
        "gru_model",
        "concat_branches",
        "dscnn_kws",
    ];
    for name in models {
        let dir = root.join(name);
        let graph = whittle::onnx::load_model(&dir.join("model.onnx")).unwrap();
        let x = whittle::data::read_npy(&dir.join("input_0.npy")).unwrap();
        let mut plan = compile(&graph, &CompileOptions::default()).unwrap();
        plan.set_input_tensor(0, &x).unwrap();
        plan.execute().unwrap();
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for _ in 0..3 {
            plan.set_input_tensor(0, &x).unwrap();
            plan.execute().unwrap();
        }
        let n = ALLOCATIONS.load(Ordering::SeqCst) - before;
        assert_eq!(n, 0, "{name}: execute allocated {n} times");
        assert!(plan.output(0).unwrap().f32().iter().all(|v| v.is_finite()));
    }
}
