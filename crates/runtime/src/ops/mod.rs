//! Operator implementations, one module per family. Each module exposes
//! `register(&mut Registry)`.

use crate::Registry;

mod argmax;
mod broadcast;
#[cfg(test)]
mod case_check;
mod cast;
mod compress;
mod concat;
mod const_size;
mod conv;
mod cumsum;
#[cfg(test)]
mod data_ops_tests;
mod depth_to_space;
mod einsum;
mod elem;
mod elementwise;
mod expand;
mod gather;
mod gather_nd;
pub mod grad;
mod grid_sample;
mod linear;
mod lrn;
mod max_unpool;
mod mvn;
mod norm;
mod onehot;
mod pad;
mod pool;
mod qblock_linear;
#[cfg(test)]
mod qint8_data_tests;
#[cfg(test)]
mod qlinear_case_types;
#[cfg(test)]
mod qlinear_cases;
mod qlinear_conv;
mod qlinear_elementwise;
mod qlinear_matmul;
mod qlinear_pool;
mod quantize;
mod reduce;
mod reduce_kernel;
mod resize;
mod reverse_sequence;
mod rnn;
mod rnn_act;
mod scatter;
mod shape;
mod shape_const;
#[cfg(test)]
mod shape_tests;
mod shape_util;
mod shape_view;
mod slice;
mod softmax;
mod sparse_linear;
mod strided;
#[cfg(test)]
mod test_conformance;
#[cfg(test)]
mod test_refs;
#[cfg(test)]
mod test_support;
mod topk;
mod transpose;
mod trilu;
mod unary;
mod windows;

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
    topk::register(r);
    scatter::register(r);
    gather_nd::register(r);
    depth_to_space::register(r);
    cumsum::register(r);
    einsum::register(r);
    grid_sample::register(r);
    windows::register(r);
    trilu::register(r);
    reverse_sequence::register(r);
    onehot::register(r);
    mvn::register(r);
    max_unpool::register(r);
    lrn::register(r);
    compress::register(r);
    qblock_linear::register(r);
    quantize::register(r);
    qlinear_elementwise::register(r);
    qlinear_pool::register(r);
    qlinear_conv::register(r);
    qlinear_matmul::register(r);
    grad::register(r);
}
