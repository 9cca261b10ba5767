//! SiLU as a full citizen, end to end against onnxruntime: f32 with the
//! `x * Sigmoid(x)` pattern and opset 24's `Swish` fused into Conv/Gemm,
//! int8 by lookup table, structured pruning through it, and training through
//! it. The checks live in `tests/python/silu_end_to_end.py`, which builds the
//! model with onnx.helper and runs onnxruntime beside this `whittle` binary.

mod common;

use std::process::Command;

use common::repo;

fn have_python() -> bool {
    Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn silu_matches_onnxruntime_fused_int8_pruned_and_trained() {
    if !have_python() {
        eprintln!(
            "note: python3 with onnx + onnxruntime missing; skipping the SiLU end-to-end test"
        );
        return;
    }
    let out = Command::new("python3")
        .arg(repo("tests/python/silu_end_to_end.py"))
        .args(["--whittle", env!("CARGO_BIN_EXE_whittle")])
        .output()
        .expect("python3 runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "SiLU end-to-end checks failed:\n{text}"
    );
    assert!(text.contains("silu: all checks passed"), "{text}");
}
