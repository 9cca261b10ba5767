//! Shape and data-movement ops, and the generators sized at build time.
//! Every data-movement op works on raw bytes with the element size, so
//! each is written once for all dtypes.

use crate::Registry;

mod compress;
mod concat;
mod depth_to_space;
mod expand;
mod gather;
mod gather_nd;
mod onehot;
mod pad;
mod reverse_sequence;
mod scatter;
mod shape_const;
mod shape_view;
mod slice;
#[cfg(test)]
mod tests;
mod topk;
mod transpose;
mod trilu;
mod windows;

/// Registers the shape and data-movement ops.
pub fn register(r: &mut Registry) {
    r.add("Identity", shape_view::identity);
    r.add("Reshape", shape_view::reshape);
    r.add("Flatten", shape_view::flatten);
    r.add("Squeeze", shape_view::squeeze);
    r.add("Unsqueeze", shape_view::unsqueeze);
    r.add("Dropout", shape_view::dropout);
    r.add("Transpose", transpose::transpose);
    r.add("Slice", slice::slice);
    r.add("Expand", expand::expand);
    r.add("Tile", expand::tile);
    r.add("Concat", concat::concat);
    r.add("Split", concat::split);
    r.add("Gather", gather::gather);
    r.add("GatherElements", gather::gather_elements);
    r.add("Pad", pad::pad);
    r.add("Shape", shape_const::shape);
    r.add("Size", shape_const::size);
    r.add("Constant", shape_const::constant);
    r.add("ConstantOfShape", shape_const::constant_of_shape);
    r.add("Range", shape_const::range);
    topk::register(r);
    scatter::register(r);
    gather_nd::register(r);
    depth_to_space::register(r);
    windows::register(r);
    trilu::register(r);
    reverse_sequence::register(r);
    onehot::register(r);
    compress::register(r);
}
