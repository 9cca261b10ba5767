//! Operator implementations, grouped into families. Each family is a
//! module with a `register(&mut Registry)` that registers its own ops;
//! [`register_all`] calls the families.
//!
//! * `common`: helpers shared by several families (broadcasting, element
//!   types, the strided-copy engine, axis and shape utilities).
//! * `elementwise`: unary and broadcasting binary ops, activations, Cast.
//! * `nn`: conv, Gemm/MatMul (dense and sparse), pooling, normalization,
//!   softmax, recurrent ops, Resize, GridSample, Einsum.
//! * `reduce`: Reduce*, ArgMax/ArgMin, CumSum.
//! * `shape`: shape and data movement (Reshape, Transpose, Concat, Slice,
//!   Gather, Scatter, Pad, TopK, ...) and the shape-sized generators.
//! * `quantized`: QuantizeLinear/DequantizeLinear and the integer ops
//!   (QLinear*, MatMulInteger, ConvInteger, QBlockLinear).
//! * `grad`: backward ops for training graphs (domain `whittle.grad`).
//!
//! # Tests
//!
//! One convention for the whole tree:
//!
//! * The unit tests of a file module `foo.rs` live next to it in
//!   `foo_tests.rs`, declared at the end of `foo.rs` as
//!   `#[cfg(test)] #[path = "foo_tests.rs"] mod tests;`. No inline
//!   `mod tests { ... }` blocks.
//! * A directory module (a family's `mod.rs`, or this one) keeps its tests
//!   in `tests.rs` in that directory, declared `#[cfg(test)] mod tests;`:
//!   these exercise several ops of the family (or, here, several families)
//!   through the registry.
//! * Generated case tables (`*_cases.rs`, `*_refs.rs`) are test-only Rust
//!   files next to the tests that use them; their generators live in
//!   `scripts/testgen/` (each file names its generator).
//! * Shared test helpers (tensor literals, single-node evaluation, the
//!   `Case` table runner, the onnx.reference and conformance tables of the
//!   shape/reduce ops) are in `testing/`.

use crate::Registry;

mod common;
mod elementwise;
pub mod grad;
mod nn;
mod quantized;
mod reduce;
mod shape;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;

/// Registers every op family.
pub fn register_all(r: &mut Registry) {
    elementwise::register(r);
    nn::register(r);
    reduce::register(r);
    shape::register(r);
    quantized::register(r);
    grad::register(r);
}
