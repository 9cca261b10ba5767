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
