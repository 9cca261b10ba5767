//! Transfer-learning tables of issue 5: the MobileNetV2 0.35 backbone of
//! tests/fixtures/transfer (pretrained on Fashion-MNIST classes 0-4) is
//! fine-tuned by whittle on classes 5-9 with several update schemes, and
//! int8 (PTQ, QDQ) fine-tuning without and with quantization-aware scaling
//! is compared with float.
//!
//! ```sh
//! cargo run --release -p whittle-train --example transfer -- \
//!     [--per-class 1000] [--steps 300] [--batch 32] [--lr 0.02] [--full-lr 0.005] \
//!     [--only schemes|full|qas] [--qas-last-k 3]
//! ```

#[path = "../tests/support/transfer.rs"]
mod transfer;

use transfer::{accuracy, backbone, load, numel, quantize, scheme_tensors, train, Scheme};
use whittle_train::{QasSgd, Rounding, Sgd};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let per_class: usize = arg(&args, "--per-class", "1000").parse().unwrap();
    let steps: usize = arg(&args, "--steps", "300").parse().unwrap();
    let batch: usize = arg(&args, "--batch", "32").parse().unwrap();
    let lr: f32 = arg(&args, "--lr", "0.02").parse().unwrap();
    // Updating every layer from a random head diverges at the partial
    // schemes' rate; full fine-tuning gets its own.
    let full_lr: f32 = arg(&args, "--full-lr", "0.005").parse().unwrap();
    let only = arg(&args, "--only", "");
    let k: usize = arg(&args, "--qas-last-k", "3").parse().unwrap();
    let (Some(train_set), Some(test_set)) =
        (load("train", 5..10, per_class), load("t10k", 5..10, 1000))
    else {
        eprintln!("Fashion-MNIST not found under {}", transfer::DATA);
        return;
    };
    println!(
        "classes 5-9: {} training samples, {} test samples; {steps} steps of batch {batch}, SGD lr {lr} momentum 0.9, BatchNorm frozen",
        train_set.len(),
        test_set.len()
    );
    let g = backbone(7);
    println!(
        "new head, before fine-tuning: {:.2}%",
        100.0 * accuracy(&g, &test_set)
    );

    if only.is_empty() || only == "schemes" || only == "full" {
        println!("\n| scheme | trainable params | test accuracy (classes 5-9) | train loss (last 20 steps) | training time | ms/step |");
        println!("| --- | ---: | ---: | ---: | ---: | ---: |");
        let schemes: &[Scheme] = if only == "full" {
            &[Scheme::Full]
        } else {
            &[
                Scheme::Full,
                Scheme::LastK(3),
                Scheme::Sparse,
                Scheme::BiasOnly,
            ]
        };
        for &scheme in schemes {
            let names = scheme_tensors(&g, scheme);
            let params = numel(&g, &names);
            let rate = if scheme == Scheme::Full { full_lr } else { lr };
            let run = train(
                &g,
                names,
                Box::new(Sgd::new(rate, 0.9)),
                &train_set,
                steps,
                batch,
                1,
            );
            println!(
                "| {} (lr {rate}) | {params} | {:.2}% | {:.3} | {:.1} s | {:.1} |",
                scheme.name(),
                100.0 * accuracy(&run.trained, &test_set),
                run.last_loss,
                run.seconds,
                1e3 * run.seconds / run.steps as f64
            );
        }
    }

    if only.is_empty() || only == "qas" {
        // Float twin with BatchNorm folded: the same function the QDQ graph
        // quantizes, so float and int8 train the same parameters.
        let folded = whittle_compress::prepare(&g).unwrap();
        let calib = load("train", 5..10, 100).unwrap();
        let q = quantize(&g, &calib, 500);
        let scheme = Scheme::LastK(k);
        println!(
            "\nint8 fine-tuning, scheme {} (weights and biases of the last {k} layers); PTQ int8 before fine-tuning: {:.2}%",
            scheme.name(),
            100.0 * accuracy(&q, &test_set)
        );
        println!("\n| model | update | test accuracy (classes 5-9) | training time |");
        println!("| --- | --- | ---: | ---: |");
        let names = scheme_tensors(&folded, scheme);
        let run = train(
            &folded,
            names,
            Box::new(Sgd::new(lr, 0.9)),
            &train_set,
            steps,
            batch,
            1,
        );
        println!(
            "| float (BN folded) | SGD | {:.2}% | {:.1} s |",
            100.0 * accuracy(&run.trained, &test_set),
            run.seconds
        );
        let qnames = scheme_tensors(&q, scheme);
        let variants = [
            (
                "SGD on int8, no QAS",
                false,
                Rounding::Stochastic { seed: 3 },
            ),
            (
                "QAS, stochastic rounding",
                true,
                Rounding::Stochastic { seed: 3 },
            ),
            ("QAS, round to nearest", true, Rounding::Nearest),
        ];
        for (what, on, rounding) in variants {
            let opt = QasSgd::new(&q, &qnames, lr, 0.9)
                .unwrap()
                .with_qas(on)
                .with_rounding(rounding);
            let run = train(
                &q,
                qnames.clone(),
                Box::new(opt),
                &train_set,
                steps,
                batch,
                1,
            );
            println!(
                "| int8 (QDQ) | {what} | {:.2}% | {:.1} s |",
                100.0 * accuracy(&run.trained, &test_set),
                run.seconds
            );
        }
    }
}
