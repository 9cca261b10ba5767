//! Gemm and MatMul (f32).

use crate::Registry;

#[path = "linear_par.rs"]
pub(crate) mod par;

pub fn register(_r: &mut Registry) {}

#[cfg(test)]
#[path = "linear_cases_types.rs"]
pub(crate) mod linear_cases_types;
#[cfg(test)]
#[path = "linear_cases.rs"]
#[rustfmt::skip]
pub(crate) mod linear_cases;
