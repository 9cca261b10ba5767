//! Elementwise ops: unary math and activations, broadcasting binary and
//! variadic ops, Where, and Cast/CastLike.

use crate::Registry;

mod binary;
pub(crate) mod cast;
mod select;
mod unary;

/// Registers the elementwise ops.
pub fn register(r: &mut Registry) {
    cast::register(r);
    binary::register(r);
    select::register(r);
    unary::register(r);
}
