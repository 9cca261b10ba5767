//! Quantization and integer ops: QuantizeLinear/DequantizeLinear, the
//! QLinear* family (element-wise, table, pooling, concat, conv, matmul),
//! MatMulInteger, ConvInteger, QGemm and whittle's QBlockLinear.

use crate::Registry;

mod qblock_linear;
#[cfg(test)]
mod qlinear_case_types;
#[cfg(test)]
mod qlinear_cases;
mod qlinear_conv;
mod qlinear_elementwise;
mod qlinear_matmul;
mod qlinear_pool;
mod quantize;
#[cfg(test)]
mod tests;

/// Registers the quantized ops.
pub fn register(r: &mut Registry) {
    qblock_linear::register(r);
    quantize::register(r);
    qlinear_elementwise::register(r);
    qlinear_pool::register(r);
    qlinear_conv::register(r);
    qlinear_matmul::register(r);
}
