//! Neural-network layers: Conv/ConvTranspose, Gemm/MatMul (dense and
//! sparse), pooling, normalization, softmax, recurrent ops, LRN, Resize,
//! GridSample, MaxUnpool and Einsum.

use crate::Registry;

pub(crate) mod conv;
mod einsum;
mod grid_sample;
pub(crate) mod linear;
mod lrn;
mod max_unpool;
mod mvn;
mod norm;
pub(crate) mod pool;
mod resize;
mod rnn;
mod rnn_act;
mod softmax;
mod sparse_linear;

/// Registers the neural-network ops.
pub fn register(r: &mut Registry) {
    conv::register(r);
    linear::register(r);
    norm::register(r);
    pool::register(r);
    resize::register(r);
    rnn::register(r);
    softmax::register(r);
    einsum::register(r);
    grid_sample::register(r);
    mvn::register(r);
    max_unpool::register(r);
    lrn::register(r);
}
