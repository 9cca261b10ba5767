//! Literal types of the generated `qlinear_cases.rs`.

use whittle_ir::{Attr, Tensor, TensorData};

/// An attribute literal.
pub(crate) enum A {
    I(i64),
    F(f32),
    S(&'static str),
    Is(&'static [i64]),
}

/// A tensor literal: shape and data.
pub(crate) enum T {
    F(&'static [usize], &'static [f32]),
    U(&'static [usize], &'static [u8]),
    I(&'static [usize], &'static [i8]),
}

/// One onnxruntime reference case.
pub(crate) struct QCase {
    pub name: &'static str,
    pub op: &'static str,
    pub domain: &'static str,
    pub attrs: &'static [(&'static str, A)],
    pub inputs: &'static [Option<T>],
    pub output: T,
}

impl A {
    pub(crate) fn attr(&self) -> Attr {
        match self {
            A::I(v) => Attr::Int(*v),
            A::F(v) => Attr::Float(*v),
            A::S(v) => Attr::String(v.to_string()),
            A::Is(v) => Attr::Ints(v.to_vec()),
        }
    }
}

impl T {
    pub(crate) fn tensor(&self) -> Tensor {
        let (shape, data) = match self {
            T::F(s, v) => (s, TensorData::F32(v.to_vec())),
            T::U(s, v) => (s, TensorData::U8(v.to_vec())),
            T::I(s, v) => (s, TensorData::I8(v.to_vec())),
        };
        Tensor::new(shape.to_vec(), data).expect("literal matches its shape")
    }
}
