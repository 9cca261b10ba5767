//! Operator implementations, one module per family. Each module exposes
//! `register(&mut Registry)`.

use crate::Registry;

#[cfg(test)]
mod case_check;
mod conv;
mod elementwise;
mod linear;
mod norm;
mod pool;
mod reduce;
mod resize;
mod rnn;
mod rnn_act;
mod shape;
mod unary;

/// Registers every op family.
pub fn register_all(r: &mut Registry) {
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
