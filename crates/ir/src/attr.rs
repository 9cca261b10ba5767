use crate::Tensor;

/// A typed node attribute, as in ONNX `AttributeProto`.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// A single float (ONNX `FLOAT`), e.g. `epsilon` or `alpha`.
    Float(f32),
    /// A single integer (ONNX `INT`), e.g. `axis` or `group`; also used for
    /// flags, which ONNX encodes as 0/1 integers.
    Int(i64),
    /// A single string (ONNX `STRING`), e.g. `auto_pad` or `mode`. ONNX
    /// stores bytes; non-UTF-8 values are rejected on import.
    String(String),
    /// A constant tensor (ONNX `TENSOR`), e.g. the `value` of a `Constant`
    /// node.
    Tensor(Tensor),
    /// A list of floats (ONNX `FLOATS`), e.g. `scales`.
    Floats(Vec<f32>),
    /// A list of integers (ONNX `INTS`), e.g. `kernel_shape`, `strides`,
    /// `pads` or `perm`.
    Ints(Vec<i64>),
    /// A list of strings (ONNX `STRINGS`).
    Strings(Vec<String>),
    /// An attribute kind whittle does not model (subgraphs, sparse tensors,
    /// type protos). It is kept by name so that the op using it can be
    /// reported as unsupported instead of silently misread.
    Unsupported(String),
}

impl Attr {
    /// Name of the attribute kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Attr::Float(_) => "float",
            Attr::Int(_) => "int",
            Attr::String(_) => "string",
            Attr::Tensor(_) => "tensor",
            Attr::Floats(_) => "floats",
            Attr::Ints(_) => "ints",
            Attr::Strings(_) => "strings",
            Attr::Unsupported(_) => "unsupported",
        }
    }
}
