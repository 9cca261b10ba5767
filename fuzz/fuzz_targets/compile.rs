//! Arbitrary bytes as an ONNX model, imported, compiled and (when it compiles)
//! executed on zero inputs: every stage must return Ok or Err, never panic.
//! Compile bounds each tensor at 2 GiB, so this target runs with a larger
//! allocation limit than the parsers (see scripts/fuzz.sh).
#![no_main]

use libfuzzer_sys::fuzz_target;
use whittle_runtime::{compile, CompileOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = whittle_onnx::load_model_bytes(data, None) else { return };
    let Ok(mut plan) = compile(&graph, &CompileOptions::default()) else { return };
    let _ = plan.execute();
});
