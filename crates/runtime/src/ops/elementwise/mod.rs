//! Elementwise ops: unary math and activations, broadcasting binary and
//! variadic ops (and Where), and Cast/CastLike.

use crate::Registry;

mod binary;
pub(crate) mod cast;
mod unary;

/// Registers the elementwise ops.
pub fn register(r: &mut Registry) {
    cast::register(r);
    binary::register(r);
    unary::register(r);
}
