//! Arbitrary bytes as an ONNX model: import must return Ok or Err, never
//! panic, hang or allocate out of proportion.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = whittle_onnx::load_model_bytes(data, None);
});
