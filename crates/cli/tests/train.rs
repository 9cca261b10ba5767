//! `whittle train` end to end: learning from scratch on a Fashion-MNIST
//! subset, bit-exact resume after an interruption, fixed sparsity, the
//! memory plan, and every bad input refused with a clear error and no
//! output file.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use whittle::Tensor;

fn cnn() -> PathBuf {
    repo("tests/models/fashion_cnn.onnx")
}

fn have_data() -> bool {
    let ok = Path::new(FASHION)
        .join("train-images-idx3-ubyte.gz")
        .exists();
    if !ok {
        eprintln!("skipped: {FASHION} not found (apt-get install dataset-fashion-mnist)");
    }
    ok
}

fn train_data() -> String {
    format!("{FASHION}/train-images-idx3-ubyte.gz")
}

fn test_data() -> String {
    format!("{FASHION}/t10k-images-idx3-ubyte.gz")
}

/// Runs `whittle train` expecting failure; returns stderr.
fn fails(args: &[&str]) -> String {
    let out = whittle().arg("train").args(args).output().unwrap();
    assert!(
        !out.status.success(),
        "expected failure: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn initializers(path: &Path) -> Vec<(String, Tensor)> {
    whittle::load(path)
        .unwrap()
        .graph()
        .initializers
        .iter()
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect()
}

/// From scratch on 2048 samples for 2 epochs: the held-out accuracy is far
/// above chance (10%) and the loss falls.
#[test]
fn learns_from_scratch_on_a_subset() {
    if !have_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("trained.onnx");
    let j = json(
        &whittle()
            .args([
                "train",
                cnn().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args(["--data", &train_data(), "--limit", "2048"])
            .args(["--eval", &test_data(), "--eval-limit", "1000"])
            .args(["--reinit", "--epochs", "2", "--batch-size", "32"])
            .args(["--optimizer", "adam", "--lr", "0.003"])
            .args(["--lr-schedule", "cosine", "--warmup", "0.25"])
            .args(["--threads", "2", "--seed", "1", "--json"])
            .output()
            .unwrap(),
    );
    let epochs = j["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    let loss = |k: usize| epochs[k]["loss"].as_f64().unwrap();
    let top1 = epochs[1]["eval_top1"].as_f64().unwrap();
    eprintln!(
        "loss {:.3} -> {:.3}, eval top-1 {top1:.3}, {:.1} s",
        loss(0),
        loss(1),
        j["seconds"]
    );
    assert!(loss(1) < loss(0), "{j}");
    assert!(top1 > 0.6, "held-out top-1 {top1}");
    assert_eq!(j["steps"], 128);
    // The written model evaluates to the same accuracy.
    let e: serde_json::Value = json(
        &whittle()
            .args(["eval", out.to_str().unwrap(), "--data", &test_data()])
            .args(["--limit", "1000", "--json"])
            .output()
            .unwrap(),
    );
    assert!((e["top1"].as_f64().unwrap() - top1).abs() < 1e-9, "{e}");
}

/// Stopping mid-epoch (as if killed after a checkpoint) and resuming gives
/// a model byte-identical to an uninterrupted run: weights, Adam moments,
/// BatchNorm statistics, the shuffling position and the schedule all
/// continue where they were.
#[test]
fn resume_after_interruption_is_bit_exact() {
    if !have_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], out: &Path| {
        whittle()
            .args([
                "train",
                cnn().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args(["--data", &train_data(), "--limit", "320"])
            .args(["--reinit", "--epochs", "3", "--batch-size", "32"])
            .args(["--optimizer", "adam", "--lr", "0.002"])
            .args(["--lr-schedule", "cosine", "--warmup", "0.5"])
            .args(["--threads", "2", "--seed", "5", "--json"])
            .args(extra)
            .output()
            .unwrap()
    };
    let whole = dir.path().join("whole.onnx");
    assert_eq!(json(&run(&[], &whole))["steps"], 30);

    let ck = dir.path().join("ck");
    let ck_s = ck.to_str().unwrap();
    let resumed = dir.path().join("resumed.onnx");
    // Interrupted at step 13 (mid-epoch 2), checkpointing every 4 steps:
    // the checkpoint on disk is the one written at step 13.
    let j = json(&run(
        &[
            "--checkpoint",
            ck_s,
            "--checkpoint-every",
            "4",
            "--stop-after-steps",
            "13",
        ],
        &resumed,
    ));
    assert_eq!(j["stopped_early"], true);
    assert!(!resumed.exists(), "no output after an interruption");
    let j = json(&run(&["--resume", ck_s, "--checkpoint", ck_s], &resumed));
    assert_eq!(
        (j["resumed_from_step"].as_u64(), j["steps"].as_u64()),
        (Some(13), Some(30))
    );
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&resumed).unwrap(),
        "resumed run differs from the uninterrupted one"
    );

    // A real kill: SIGKILL once a checkpoint exists (checkpointing every
    // step), then resume. Wherever the kill lands, the checkpoint on disk
    // is whole and the resumed run ends byte-identical.
    let ck2 = dir.path().join("ck2");
    let killed = dir.path().join("killed.onnx");
    let mut child = whittle()
        .args([
            "train",
            cnn().to_str().unwrap(),
            "-o",
            killed.to_str().unwrap(),
        ])
        .args(["--data", &train_data(), "--limit", "320"])
        .args(["--reinit", "--epochs", "3", "--batch-size", "32"])
        .args(["--optimizer", "adam", "--lr", "0.002"])
        .args(["--lr-schedule", "cosine", "--warmup", "0.5"])
        .args(["--threads", "2", "--seed", "5", "--json"])
        .args([
            "--checkpoint",
            ck2.to_str().unwrap(),
            "--checkpoint-every",
            "1",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = ck2.join("checkpoint.wck");
    let t0 = std::time::Instant::now();
    while !file.exists() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    std::thread::sleep(std::time::Duration::from_millis(150));
    child.kill().unwrap();
    child.wait().unwrap();
    let ck2_s = ck2.to_str().unwrap();
    let j = json(&run(&["--resume", ck2_s], &killed));
    eprintln!("killed, resumed from step {} of 30", j["resumed_from_step"]);
    assert_eq!(
        std::fs::read(&whole).unwrap(),
        std::fs::read(&killed).unwrap(),
        "run resumed after SIGKILL differs from the uninterrupted one"
    );

    // A checkpoint of another configuration is refused.
    let e = String::from_utf8_lossy(
        &run(&["--resume", ck_s, "--weight-decay", "0.01"], &resumed).stderr,
    )
    .into_owned();
    assert!(e.contains("another model or training configuration"), "{e}");
    // A damaged checkpoint is refused.
    let file = ck.join("checkpoint.wck");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&file, bytes).unwrap();
    let e = String::from_utf8_lossy(&run(&["--resume", ck_s], &resumed).stderr).into_owned();
    assert!(e.contains("not a valid checkpoint"), "{e}");
}

/// --keep-sparsity: weights that are exactly zero stay exactly zero, the
/// others train.
#[test]
fn keep_sparsity_holds_zeros() {
    if !have_data() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut g = whittle::load(cnn()).unwrap().graph().clone();
    let mut zeroed = 0;
    for (name, t) in g.initializers.iter_mut() {
        if name.contains("weight") || name.starts_with("onnx::Conv") {
            for (i, v) in t.as_f32_mut().unwrap().iter_mut().enumerate() {
                if i % 2 == 0 {
                    *v = 0.0;
                    zeroed += 1;
                }
            }
        }
    }
    assert!(zeroed > 1000);
    let pruned = dir.path().join("pruned.onnx");
    whittle::Model::from_graph(g).save(&pruned).unwrap();
    let out = dir.path().join("recovered.onnx");
    let j = json(
        &whittle()
            .args([
                "train",
                pruned.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args([
                "--data",
                &train_data(),
                "--limit",
                "256",
                "--batch-size",
                "32",
            ])
            .args(["--keep-sparsity", "--optimizer", "sgd", "--lr", "0.05"])
            .args(["--weight-decay", "0.001", "--json"])
            .output()
            .unwrap(),
    );
    assert!(
        j["masked_weights"].as_u64().unwrap() >= zeroed as u64,
        "{j}"
    );
    let before = initializers(&pruned);
    let after = initializers(&out);
    let mut moved = 0;
    for ((n, b), (_, a)) in before.iter().zip(&after) {
        let (b, a) = (b.to_f32_vec(), a.to_f32_vec());
        for (x, y) in b.iter().zip(&a) {
            if *x == 0.0 && j["trainable"].as_array().unwrap().iter().any(|t| t == n) {
                assert_eq!(y.to_bits(), 0.0f32.to_bits(), "{n}: a zero weight moved");
            } else if x != y {
                moved += 1;
            }
        }
    }
    assert!(moved > 1000, "training changed only {moved} values");
}

/// --plan-only prints the memory plan and trains nothing.
#[test]
fn plan_only_reports_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("never.onnx");
    let j = json(
        &whittle()
            .args([
                "train",
                cnn().to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ])
            .args([
                "--plan-only",
                "--batch-size",
                "8",
                "--optimizer",
                "adam",
                "--json",
            ])
            .output()
            .unwrap(),
    );
    let f = |k: &str| j[k].as_u64().unwrap();
    // 29178 f32 parameters; Adam holds two slots per trainable value.
    assert!(f("weights") >= 29178 * 4, "{j}");
    // Adam's m and v per value (plus a step counter per tensor).
    assert!(f("optimizer_state") >= 2 * 29178 * 4, "{j}");
    // Fused updates free each gradient right after its update: the peak of
    // gradients alive at once is below the sum of all of them.
    assert!(f("gradients") > 0 && f("gradients") < 29178 * 4, "{j}");
    assert!(f("kept_activations") > 0 && f("peak") > f("weights"), "{j}");
    assert!(!out.exists());
    // Bias-only keeps less of everything.
    let b = json(
        &whittle()
            .args([
                "train",
                cnn().to_str().unwrap(),
                "--plan-only",
                "--bias-only",
            ])
            .args(["--batch-size", "8", "--json"])
            .output()
            .unwrap(),
    );
    assert!(
        b["gradients"].as_u64().unwrap() < f("gradients") / 10,
        "{b}"
    );
}

#[test]
fn bad_input_is_refused_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.onnx");
    let (m, o) = (cnn(), out.to_str().unwrap().to_string());
    let m = m.to_str().unwrap();
    // Ten samples of 28x28 with one label out of range.
    let x = vec![0.5f32; 10 * 28 * 28];
    let mut labels = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    labels[7] = 12;
    let bad_labels = write_idx_f32(&dir.path().join(""), &x, &[10, 28, 28], &labels);
    let d = bad_labels.to_str().unwrap();
    let e = fails(&[m, "-o", &o, "--data", d, "--batch-size", "2"]);
    assert!(
        e.contains("sample 7 has label 12") && e.contains("10 classes"),
        "{e}"
    );

    let sub = dir.path().join("small");
    std::fs::create_dir(&sub).unwrap();
    let small = write_idx_f32(&sub, &vec![0.5f32; 4 * 8 * 8], &[4, 8, 8], &[0, 1, 2, 3]);
    let e = fails(&[m, "-o", &o, "--data", small.to_str().unwrap()]);
    assert!(
        e.contains("[1, 8, 8]") && e.contains("[1, 28, 28]"),
        "data shape mismatch: {e}"
    );

    let e = fails(&[m, "-o", &o]);
    assert!(e.contains("no training data"), "{e}");
    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    let good = write_idx_f32(&good, &x, &[10, 28, 28], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let d = good.to_str().unwrap();
    let e = fails(&[m, "-o", &o, "--data", d, "--trainable", "conv99"]);
    assert!(e.contains("conv99"), "{e}");
    let e = fails(&[m, "-o", &o, "--data", d, "--last-k", "99"]);
    assert!(e.contains("last_k = 99") && e.contains("4 layers"), "{e}");
    let e = fails(&[m, "-o", &o, "--data", d, "--last-k", "2", "--bias-only"]);
    assert!(e.contains("exclude each other"), "{e}");
    let scheme = dir.path().join("scheme.toml");
    std::fs::write(
        &scheme,
        "mode = \"sparse\"\n[[layer]]\nname = \"classifier\"\nratio = 1.5\n",
    )
    .unwrap();
    let sc = scheme.to_str().unwrap();
    let e = fails(&[m, "-o", &o, "--data", d, "--scheme", sc]);
    assert!(e.contains("1.5"), "ratio outside (0, 1]: {e}");
    std::fs::write(
        &scheme,
        "mode = \"sparse\"\n[[layer]]\nname = \"conv77\"\nratio = 0.5\n",
    )
    .unwrap();
    let e = fails(&[m, "-o", &o, "--data", d, "--scheme", sc]);
    assert!(e.contains("conv77"), "unknown layer: {e}");
    let e = fails(&[
        m,
        "-o",
        &o,
        "--data",
        d,
        "--lr-schedule",
        "step:0:0.1",
        "--batch-size",
        "2",
    ]);
    assert!(e.contains("EVERY must be at least 1"), "{e}");
    let e = fails(&[
        m,
        "-o",
        &o,
        "--data",
        d,
        "--warmup",
        "5",
        "--batch-size",
        "2",
    ]);
    assert!(e.contains("longer than the run"), "{e}");
    let e = fails(&[m, "-o", &o, "--data", d, "--batch-size", "64"]);
    assert!(e.contains("fewer than one batch"), "{e}");
    let e = fails(&[m, "-o", &o, "--data", d, "--lr=-1", "--batch-size", "2"]);
    assert!(e.contains("positive"), "{e}");
    let e = fails(&[
        m,
        "-o",
        &o,
        "--data",
        d,
        "--resume",
        "/nonexistent/ck",
        "--batch-size",
        "2",
    ]);
    assert!(e.contains("/nonexistent/ck"), "{e}");
    assert!(!out.exists(), "a failed run left {o}");
}
