//! Executing a compiled plan performs no heap allocation: a counting global
//! allocator watches `Plan::execute`.

mod common_ops;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common_ops::{graph, test_registry};
use whittle_ir::{Node, Tensor};
use whittle_runtime::{compile_with, CompileOptions};

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

#[test]
fn execute_allocates_nothing() {
    let n = 4096;
    let g = graph(
        &[n],
        vec![
            Node::new("d1", "Double", &["x"], &["a"]),
            Node::new("d2", "Double", &["a"], &["b"]),
            Node::new("s1", "Add", &["x", "b"], &["c"]),
            Node::new("c1", "Cat", &["c", "a"], &["y"]),
        ],
        &[("y", &[2 * n])],
    );
    let mut plan = compile_with(&g, &CompileOptions::default(), &test_registry()).unwrap();
    let x = Tensor::from_f32(vec![n], vec![1.0; n]).unwrap();
    plan.set_input_tensor(0, &x).unwrap();
    plan.execute().unwrap();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..10 {
        plan.set_input_tensor(0, &x).unwrap();
        plan.execute().unwrap();
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "execute allocated {} times",
        after - before
    );
    let y = plan.output(0).unwrap().f32();
    assert_eq!(y[0], 5.0);
    assert_eq!(y[n], 2.0);
}
