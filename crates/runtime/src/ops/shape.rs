//! Shape and data-movement ops. Every one works on raw bytes with the
//! element size, so each is written once for all dtypes.

use crate::ops::{concat, expand, gather, pad, shape_const, shape_view, slice, transpose};
use crate::Registry;

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
}
