//! Test support shared by every op family: tensor literals and single-node
//! evaluation (`test_support`), the table-driven `Case` runner
//! (`case_check`), and the onnx.reference and conformance tables of the
//! shape, reduction and softmax ops (`test_refs`, `test_conformance`).

pub(crate) mod case_check;
pub(crate) mod test_conformance;
pub(crate) mod test_refs;
pub(crate) mod test_support;
