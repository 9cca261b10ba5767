//! Helpers shared by several op families: numpy broadcasting, element
//! types and dtype dispatch, the strided-copy engine, axis and shape
//! utilities, MatMul shape resolution, and the size check for
//! constant-producing builders. No ops.

pub(crate) mod broadcast;
pub(crate) mod const_size;
pub(crate) mod elem;
pub(crate) mod matmul_shape;
pub(crate) mod shape_util;
pub(crate) mod strided;
