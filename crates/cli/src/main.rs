//! The `whittle` command line: inspect, run, benchmark, evaluate and quantize
//! ONNX models.

mod bench;
mod common;
mod eval;
mod format;
mod inspect;
mod prune;
mod quantize;
mod run;
mod train;

use clap::{Parser, Subcommand};

/// Big AI for small devices: import, compress and run ONNX models in a tiny
/// memory-planned runtime.
#[derive(Parser)]
#[command(name = "whittle", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show each node's op, kernel, output shape, params, MACs and activation
    /// bytes, and the plan's totals (arena vs its liveness lower bound).
    Inspect(inspect::Args),
    /// Run a model on .npy inputs and write one .npy per output.
    Run(run::Args),
    /// Measure latency (median and spread) and memory.
    Bench(bench::Args),
    /// Accuracy (top-1, top-5, per class, confusion matrix) on a labelled
    /// dataset: IDX, .npz (x, y) or a folder of images per class.
    Eval(eval::Args),
    /// Post-training int8/int4 quantization: calibrate on sample data and
    /// write standard QDQ ONNX, with per-layer SQNR, sizes and accuracy.
    Quantize(quantize::Args),
    /// Prune weights (magnitude, OBD, Wanda; unstructured or N:M) or channels, with sparse storage and a per-layer report.
    Prune(prune::Args),
    /// Train or fine-tune a classifier: epochs, LR schedules, checkpoints
    /// and resume, per-epoch evaluation, update schemes, fixed sparsity.
    Train(train::Args),
}

/// `whittle inspect | head` closes stdout early; `println!` then panics on
/// the broken pipe. Like other Unix tools, end quietly instead.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn main() {
    exit_quietly_on_broken_pipe();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(a) => inspect::main(a),
        Command::Run(a) => run::main(a),
        Command::Bench(a) => bench::main(a),
        Command::Eval(a) => eval::main(a),
        Command::Quantize(a) => quantize::main(a),
        Command::Prune(a) => prune::main(a),
        Command::Train(a) => train::main(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
