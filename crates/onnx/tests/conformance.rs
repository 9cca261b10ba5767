//! Imports every model of the ONNX backend node conformance suite (Debian
//! package `libonnx-testdata`) and its test_data_set_0 tensors.

use std::path::Path;

use whittle_onnx::{load_model, load_tensor};

const SUITE: &str = "/usr/share/libonnx-testdata/data/node";

/// Cases whose models cannot be represented (string tensors, sequence and
/// optional values in the graph signature) fail; everything else must load.
/// 896 of the 932 ONNX 1.12 cases have only dense numeric tensors at their
/// inputs and outputs (counted independently with the onnx Python package).
const MIN_OK: usize = 896;

#[test]
fn imports_the_node_suite() {
    let dir = Path::new(SUITE);
    if !dir.is_dir() {
        println!("note: {SUITE} is absent (install libonnx-testdata); skipping");
        return;
    }
    let mut cases: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();
    let (mut ok, mut failed, mut tensors) = (0, Vec::new(), 0);
    for case in &cases {
        match load_model(&case.join("model.onnx")) {
            Ok(graph) => {
                ok += 1;
                let data = case.join("test_data_set_0");
                let files = std::fs::read_dir(&data).into_iter().flatten();
                for f in files.map(|e| e.unwrap().path()) {
                    if f.extension().is_some_and(|e| e == "pb") {
                        load_tensor(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
                        tensors += 1;
                    }
                }
                assert!(!graph.outputs.is_empty(), "{}", case.display());
            }
            Err(e) => failed.push(format!("{e}")),
        }
    }
    for f in &failed {
        println!("failed: {f}");
    }
    println!(
        "{ok} of {} models imported, {tensors} tensors loaded",
        cases.len()
    );
    assert!(ok >= MIN_OK, "only {ok} models imported");
}
