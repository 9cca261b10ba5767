//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use whittle_ir::Tensor;
use whittle_train::TrainGraph;

/// The reference data folder of a model.
pub fn data_dir(model: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(model)
}

/// Reads a .npy file of the model's reference data.
pub fn npy(model: &str, name: &str) -> Tensor {
    let p = data_dir(model).join(format!("{name}.npy"));
    whittle_data::read_npy(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Compiles `tg` and runs it once: graph inputs by name from `feeds`
/// (the trainable weights from `weights`, in spec order). Returns every
/// output.
pub fn run_training_graph(
    tg: &TrainGraph,
    feeds: &[(&str, Tensor)],
    weights: &[Tensor],
) -> Vec<Tensor> {
    let mut plan = tg.compile(1).unwrap_or_else(|e| panic!("compile: {e}"));
    let names: Vec<String> = plan.inputs().map(|i| i.name.clone()).collect();
    let inputs: Vec<Tensor> = names
        .iter()
        .map(|n| {
            if let Some((_, t)) = feeds.iter().find(|(f, _)| f == n) {
                return t.clone();
            }
            let k = tg
                .initial
                .iter()
                .position(|(w, _)| w == n)
                .unwrap_or_else(|| panic!("no feed for input '{n}'"));
            weights[k].clone()
        })
        .collect();
    plan.run(&inputs).unwrap_or_else(|e| panic!("run: {e}"))
}

/// Asserts `got` is close to `want`: every element within `rtol` of the
/// largest reference magnitude, plus an absolute 1e-6 for gradients that
/// are zero in exact arithmetic (a conv bias feeding a train-mode
/// BatchNorm), where both frameworks report rounding noise of ~1e-7.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, rtol: f64) {
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    let scale = w.iter().fold(0.0f64, |a, b| a.max(b.abs()));
    let tol = rtol * scale + 1e-6;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol,
            "{what}: element {i}: got {a}, want {b} (tolerance {tol})"
        );
    }
}
