//! Transfer learning on a small budget: the MobileNetV2 0.35 backbone
//! pretrained on Fashion-MNIST classes 0-4 (tests/fixtures/transfer),
//! fine-tuned by whittle on classes 5-9 with a new head. The full tables
//! come from `cargo run --release -p whittle-train --example transfer`
//! (docs/BENCHMARKS.md).

#[path = "support/transfer.rs"]
mod transfer;

use transfer::{accuracy, backbone, load, quantize, scheme_tensors, train, Scheme, Split};
use whittle_train::{QasSgd, Sgd};

const STEPS: usize = 120;
const BATCH: usize = 16;
const LR: f32 = 0.02;

fn data() -> Option<(Split, Split)> {
    let found = load("train", 5..10, 60).zip(load("t10k", 5..10, 200));
    if found.is_none() {
        eprintln!("skipped: Fashion-MNIST not found under {}", transfer::DATA);
    }
    found
}

/// Chance is 20%; each scheme must land far above it (measured here:
/// last-3 51.5%, sparse 54.0%, bias-only 70.0%).
#[test]
fn update_schemes_learn_new_classes() {
    let Some((train_set, test_set)) = data() else {
        return;
    };
    let g = backbone(7);
    for scheme in [Scheme::LastK(3), Scheme::Sparse, Scheme::BiasOnly] {
        let names = scheme_tensors(&g, scheme);
        let run = train(
            &g,
            names,
            Box::new(Sgd::new(LR, 0.9)),
            &train_set,
            STEPS,
            BATCH,
            1,
        );
        let acc = accuracy(&run.trained, &test_set);
        eprintln!(
            "{}: test accuracy {acc:.3}, loss {:.3}, {:.1} s",
            scheme.name(),
            run.last_loss,
            run.seconds
        );
        assert!(acc > 0.4, "{}: test accuracy {acc}", scheme.name());
    }
}

/// int8 fine-tuning of the PTQ model with QAS gets close to float on the
/// same budget; plain SGD on the int8 values barely moves them (measured
/// here: float 48.4%, int8 with QAS 48.4%, without 15.7%).
#[test]
fn int8_with_qas_fine_tunes_like_float() {
    let Some((train_set, test_set)) = data() else {
        return;
    };
    let g = backbone(7);
    let folded = whittle_compress::prepare(&g).unwrap();
    let q = quantize(&g, &train_set, 100);
    let scheme = Scheme::LastK(3);
    let names = scheme_tensors(&folded, scheme);
    let float = train(
        &folded,
        names,
        Box::new(Sgd::new(LR, 0.9)),
        &train_set,
        STEPS,
        BATCH,
        1,
    );
    let float_acc = accuracy(&float.trained, &test_set);
    let qnames = scheme_tensors(&q, scheme);
    assert!(qnames
        .iter()
        .all(|n| q.initializers[n].dtype() != whittle_ir::DType::F32));
    let mut acc = Vec::new();
    for on in [false, true] {
        let opt = QasSgd::new(&q, &qnames, LR, 0.9).unwrap().with_qas(on);
        let run = train(
            &q,
            qnames.clone(),
            Box::new(opt),
            &train_set,
            STEPS,
            BATCH,
            1,
        );
        // The trained graph is still QDQ with integer weights.
        assert!(qnames
            .iter()
            .all(|n| run.trained.initializers[n].dtype() == q.initializers[n].dtype()));
        acc.push(accuracy(&run.trained, &test_set));
    }
    eprintln!(
        "float {float_acc:.3}, int8 without QAS {:.3}, int8 with QAS {:.3}",
        acc[0], acc[1]
    );
    assert!(
        acc[1] > float_acc - 0.08,
        "QAS {} vs float {float_acc}",
        acc[1]
    );
    assert!(
        acc[1] > acc[0] + 0.15,
        "QAS {} vs no QAS {}",
        acc[1],
        acc[0]
    );
}
