//! Operator implementations, one module per family. Each module exposes
//! `register(&mut Registry)`.

use crate::Registry;

mod argmax;
mod broadcast;
#[cfg(test)]
mod case_check;
mod cast;
mod concat;
mod conv;
mod elem;
mod elementwise;
mod expand;
mod gather;
mod linear;
mod norm;
mod pad;
mod pool;
mod reduce;
mod reduce_kernel;
mod resize;
mod rnn;
mod rnn_act;
mod shape;
mod shape_const;
#[cfg(test)]
mod shape_tests;
mod shape_util;
mod shape_view;
mod slice;
mod softmax;
mod strided;
#[cfg(test)]
mod test_conformance;
#[cfg(test)]
mod test_refs;
#[cfg(test)]
mod test_support;
mod transpose;
mod unary;

/// Registers every op family.
pub fn register_all(r: &mut Registry) {
    cast::register(r);
    conv::register(r);
    elementwise::register(r);
    linear::register(r);
    norm::register(r);
    pool::register(r);
    reduce::register(r);
    resize::register(r);
    rnn::register(r);
    shape::register(r);
    unary::register(r);
}
