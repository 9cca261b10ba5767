//! The op table: one entry per op that any pass treats by kind.

use super::ChannelFlow::{Broadcast, Elementwise, Pool, Reduce, Rule as Traced};
use super::Grad::Rule as Differentiated;
use super::Int8Form::{Lookup, SameScale};
use super::{Activation, OpInfo};
use crate::Node;

/// The domain of whittle's training ops (`BatchNormTrain`, the gradients).
pub const GRAD_DOMAIN: &str = "whittle.grad";

const fn onnx(op_type: &'static str) -> OpInfo {
    OpInfo::new("", op_type)
}

/// An activation with no parameters.
macro_rules! plain {
    ($variant:expr) => {
        |_: &Node, _: &dyn Fn(usize) -> Option<f32>| Some($variant)
    };
}

fn float(n: &Node, name: &str, default: f32) -> Option<f32> {
    n.attr_float(name, default).ok()
}

fn leaky_relu(n: &Node, _: &dyn Fn(usize) -> Option<f32>) -> Option<Activation> {
    Some(Activation::LeakyRelu {
        alpha: float(n, "alpha", 0.01)?,
    })
}

fn hard_sigmoid(n: &Node, _: &dyn Fn(usize) -> Option<f32>) -> Option<Activation> {
    Some(Activation::HardSigmoid {
        alpha: float(n, "alpha", 0.2)?,
        beta: float(n, "beta", 0.5)?,
    })
}

fn swish(n: &Node, _: &dyn Fn(usize) -> Option<f32>) -> Option<Activation> {
    Some(Activation::Swish {
        alpha: float(n, "alpha", 1.0)?,
    })
}

/// Opset < 11 keeps Clip's bounds in attributes, later opsets in optional
/// inputs, which must then be constant scalars.
fn clip(n: &Node, scalar: &dyn Fn(usize) -> Option<f32>) -> Option<Activation> {
    let mut min = float(n, "min", f32::NEG_INFINITY)?;
    let mut max = float(n, "max", f32::INFINITY)?;
    for (i, slot) in [(1, &mut min), (2, &mut max)] {
        if n.input(i).is_some() {
            *slot = scalar(i)?;
        }
    }
    Some(Activation::Clip { min, max })
}

/// Unary ops without a kernel activation: elementwise, int8 by table.
const fn table(op_type: &'static str) -> OpInfo {
    onnx(op_type).int8(Lookup).channels(Elementwise)
}

/// Ops that move or select values: int8 with the input's parameters.
const fn movement(op_type: &'static str) -> OpInfo {
    onnx(op_type).int8(SameScale).channels(Traced)
}

pub(super) static OPS: &[OpInfo] = &[
    // Activations kernels apply, standalone or fused into an epilogue.
    onnx("Relu").activation(plain!(Activation::Relu)),
    onnx("Clip").activation(clip),
    onnx("LeakyRelu").activation(leaky_relu),
    onnx("Sigmoid").activation(plain!(Activation::Sigmoid)),
    onnx("HardSigmoid").activation(hard_sigmoid),
    onnx("HardSwish").activation(plain!(Activation::HardSwish)),
    onnx("Tanh").activation(plain!(Activation::Tanh)),
    onnx("Swish").activation(swish),
    // Other unary math.
    table("Elu"),
    table("Selu"),
    table("Celu"),
    table("Softplus"),
    table("Softsign"),
    table("Exp"),
    table("Log"),
    table("Sqrt"),
    table("Abs"),
    table("Neg"),
    table("Erf"),
    table("Gelu"),
    table("Mish"),
    table("ThresholdedRelu"),
    table("Sin"),
    table("Cos"),
    table("Reciprocal"),
    table("Floor"),
    table("Ceil"),
    table("Round"),
    table("Sign"),
    onnx("Identity").channels(Elementwise).grad(Differentiated),
    onnx("Dropout").channels(Elementwise).grad(Differentiated),
    onnx("Cast").channels(Elementwise),
    // Linear ops: dedicated integer kernels, an activation epilogue.
    onnx("Conv")
        .channels(Traced)
        .grad(Differentiated)
        .epilogue(),
    onnx("ConvTranspose").epilogue(),
    onnx("Gemm")
        .channels(Traced)
        .grad(Differentiated)
        .epilogue(),
    onnx("MatMul")
        .channels(Traced)
        .grad(Differentiated)
        .epilogue(),
    // Broadcasting arithmetic.
    onnx("Add").channels(Broadcast).grad(Differentiated),
    onnx("Sub").channels(Broadcast).grad(Differentiated),
    onnx("Mul").channels(Broadcast).grad(Differentiated),
    onnx("Div").channels(Broadcast),
    onnx("Max").channels(Broadcast),
    onnx("Min").channels(Broadcast),
    onnx("Sum").channels(Broadcast),
    onnx("Mean").channels(Broadcast),
    onnx("Pow").channels(Broadcast),
    onnx("PRelu").channels(Broadcast),
    // Pooling.
    onnx("MaxPool")
        .int8(SameScale)
        .channels(Pool)
        .grad(Differentiated),
    onnx("AveragePool").channels(Pool).grad(Differentiated),
    onnx("GlobalAveragePool")
        .channels(Pool)
        .grad(Differentiated),
    onnx("GlobalMaxPool").channels(Pool),
    onnx("LpPool").channels(Pool),
    onnx("GlobalLpPool").channels(Pool),
    // Reductions.
    onnx("ReduceMean").channels(Reduce),
    onnx("ReduceSum").channels(Reduce),
    onnx("ReduceMax").channels(Reduce),
    onnx("ReduceMin").channels(Reduce),
    onnx("ReduceProd").channels(Reduce),
    onnx("ReduceL1").channels(Reduce),
    onnx("ReduceL2").channels(Reduce),
    onnx("ReduceLogSumExp").channels(Reduce),
    onnx("ReduceSumSquare").channels(Reduce),
    // Shape and data movement.
    movement("Reshape").grad(Differentiated),
    movement("Flatten").grad(Differentiated),
    movement("Squeeze").grad(Differentiated),
    movement("Unsqueeze").grad(Differentiated),
    movement("Transpose"),
    movement("Slice"),
    movement("Split"),
    movement("Pad"),
    movement("Resize"),
    onnx("Concat").channels(Traced).grad(Differentiated),
    onnx("Gather").channels(Traced),
    onnx("Shape").channels(Traced),
    onnx("Size").channels(Traced),
    // Normalisation.
    onnx("BatchNormalization")
        .channels(Traced)
        .grad(Differentiated),
    OpInfo::new(GRAD_DOMAIN, "BatchNormTrain").grad(Differentiated),
    onnx("InstanceNormalization").channels(Traced),
    onnx("LayerNormalization").channels(Traced),
    onnx("Softmax").channels(Traced).grad(Differentiated),
    onnx("LogSoftmax").channels(Traced),
    onnx("Hardmax").channels(Traced),
    // Quantization (straight-through in training).
    onnx("QuantizeLinear").grad(Differentiated),
    onnx("DequantizeLinear").grad(Differentiated),
];
