//! Arbitrary bytes as a serialized TensorProto (the format of the
//! conformance suite's input_N.pb files).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = whittle_onnx::load_tensor_bytes(data) {
        // What was accepted must export and re-import to the same tensor.
        let back = whittle_onnx::tensor_to_proto("t", &t);
        let again = whittle_onnx::tensor_from_proto(&back).expect("re-import");
        assert!(same_bits(&t, &again));
    }
});

/// Tensor equality by bytes, so NaN payloads compare equal.
fn same_bits(a: &whittle_ir::Tensor, b: &whittle_ir::Tensor) -> bool {
    a.shape() == b.shape() && a.dtype() == b.dtype() && a.as_bytes() == b.as_bytes()
}
