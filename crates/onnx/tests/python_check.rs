//! Independent check of exported files: the `onnx` Python package's checker
//! must accept them, and onnxruntime must compute the same outputs from an
//! exported conformance model as from the original. Skipped (with a note)
//! when python3 with onnx and onnxruntime, or the suite, is missing.

use std::path::Path;
use std::process::Command;

use whittle_onnx::{load_model, save_model};

const SUITE: &str = "/usr/share/libonnx-testdata/data/node";

const SCRIPT: &str = r#"
import sys, os, glob
import numpy as np, onnx, onnxruntime as ort
from onnx import numpy_helper
out_dir, suite = sys.argv[1], sys.argv[2]
so = ort.SessionOptions(); so.log_severity_level = 3
checked = compared = 0
bad = []
for path in sorted(glob.glob(os.path.join(out_dir, "*.onnx"))):
    case = os.path.basename(path)[:-5]
    orig = os.path.join(suite, case, "model.onnx")
    try:
        onnx.checker.check_model(onnx.load(orig), full_check=True)
    except Exception:
        continue  # the checker rejects the original too
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        checked += 1
    except Exception as e:
        bad.append(f"{case}: checker: {e}".splitlines()[0]); continue
    try:
        ref = ort.InferenceSession(orig, so, providers=["CPUExecutionProvider"])
    except Exception:
        continue  # onnxruntime cannot run the original either
    feeds = {}
    for i, inp in enumerate(ref.get_inputs()):
        t = onnx.TensorProto()
        with open(os.path.join(suite, case, "test_data_set_0", f"input_{i}.pb"), "rb") as f:
            t.ParseFromString(f.read())
        feeds[inp.name] = numpy_helper.to_array(t)
    try:
        want = ref.run(None, feeds)
    except Exception:
        continue
    try:
        got = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"]).run(None, feeds)
    except Exception as e:
        bad.append(f"{case}: onnxruntime: {e}".splitlines()[0]); continue
    for w, g in zip(want, got):
        if w.shape != g.shape or not np.array_equal(w, g, equal_nan=True):
            bad.append(f"{case}: outputs differ"); break
    else:
        compared += 1
for b in bad: print(b)
print(f"{checked} passed the checker (as did their originals), {compared} matched onnxruntime, {len(bad)} bad")
sys.exit(1 if bad else 0)
"#;

#[test]
fn exported_models_pass_onnx_checker_and_onnxruntime() {
    let has_python = Command::new("python3")
        .args(["-c", "import onnx, onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python || !Path::new(SUITE).is_dir() {
        println!("note: python3 with onnx + onnxruntime or {SUITE} missing; skipping");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut exported = 0;
    for case in std::fs::read_dir(SUITE).unwrap() {
        let case = case.unwrap().path();
        let Ok(g) = load_model(&case.join("model.onnx")) else {
            continue;
        };
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if save_model(&g, &out.path().join(format!("{name}.onnx"))).is_ok() {
            exported += 1;
        }
    }
    let run = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(out.path())
        .arg(SUITE)
        .output()
        .unwrap();
    println!("{}", String::from_utf8_lossy(&run.stdout));
    println!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(exported > 800);
    assert!(run.status.success(), "exported models were rejected");
}
