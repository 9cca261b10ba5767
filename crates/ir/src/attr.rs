use crate::Tensor;

/// A typed node attribute, as in ONNX `AttributeProto`.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Float(f32),
    Int(i64),
    String(String),
    Tensor(Tensor),
    Floats(Vec<f32>),
    Ints(Vec<i64>),
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
