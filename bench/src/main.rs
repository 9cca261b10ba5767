//! `whittle-bench`: latency of whittle, tract and onnxruntime on the same
//! ONNX files and inputs, measured in one run, plus whittle's memory figures
//! and the agreement of the three outputs. See bench/README.md.

mod machine;
mod measure;
mod npy;
mod ort_rt;
mod report;
mod stats;
mod tract_rt;
mod whittle_rt;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;

/// A runtime the harness drives in-process.
pub trait Runner {
    /// One inference on the prepared input.
    fn run_once(&mut self) -> Result<(), String>;
    /// Runs once more and returns the first output as f32s.
    fn output(&mut self) -> Result<Vec<f32>, String>;
}

/// Compare whittle with tract and onnxruntime on bench/models.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Folder holding NAME.onnx and NAME.input.npy (made by export_models.py).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/models"))]
    pub models_dir: PathBuf,
    /// Only these models (names without .onnx); default: every model found.
    #[arg(long = "model", value_name = "NAME")]
    pub models: Vec<String>,
    /// Thread counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Timed iterations per runtime and case (split over the rounds).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Untimed iterations before each round's timed ones.
    #[arg(long, default_value_t = 5)]
    pub warmup: usize,
    /// Rounds: the runtimes take turns, in rotating order, this many times
    /// per case, so that noise from other work on the machine is shared out.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Python interpreter with onnxruntime and numpy.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Path of ort_bench.py.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/ort_bench.py"))]
    pub ort_script: PathBuf,
    /// Skip onnxruntime.
    #[arg(long)]
    pub no_ort: bool,
    /// Skip tract.
    #[arg(long)]
    pub no_tract: bool,
    /// Print one JSON document instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write the JSON document to this file.
    #[arg(long, value_name = "PATH")]
    pub save_json: Option<PathBuf>,
}

/// A model file with its input.
pub struct Model {
    /// File stem.
    pub name: String,
    /// The .onnx file.
    pub onnx: PathBuf,
    /// The .npy input file.
    pub input_path: PathBuf,
    /// The input, loaded.
    pub input: npy::Array,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    if cli.iters == 0 || cli.rounds == 0 || cli.threads.contains(&0) {
        bail!("--iters, --rounds and every --threads value must be at least 1");
    }
    let models = find_models(&cli.models_dir, &cli.models)?;
    let mut results = Vec::new();
    for model in &models {
        for &threads in &cli.threads {
            if !cli.json {
                eprintln!("measuring {} on {threads} thread(s)...", model.name);
            }
            results.push(measure::case(&cli, model, threads));
        }
    }
    let doc = report::Document::new(&cli, results);
    let json = serde_json::to_string_pretty(&doc)?;
    if let Some(path) = &cli.save_json {
        std::fs::write(path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    if cli.json {
        println!("{json}");
    } else {
        print!("{}", report::table(&doc));
    }
    Ok(())
}

/// Every `NAME.onnx` in `dir` that has a `NAME.input.npy`, sorted by name,
/// restricted to `only` when it is not empty.
fn find_models(dir: &Path, only: &[String]) -> Result<Vec<Model>> {
    let hint = "run `python3 bench/export_models.py` first";
    let entries = std::fs::read_dir(dir).with_context(|| format!("{}: {hint}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "onnx") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                names.push(stem.to_string());
            }
        }
    }
    names.sort();
    for want in only {
        if !names.contains(want) {
            bail!(
                "model '{want}' is not in {} (found: {})",
                dir.display(),
                names.join(", ")
            );
        }
    }
    let mut models = Vec::new();
    for name in names {
        if !only.is_empty() && !only.contains(&name) {
            continue;
        }
        let onnx = dir.join(format!("{name}.onnx"));
        let input_path = dir.join(format!("{name}.input.npy"));
        if !input_path.exists() {
            eprintln!("skipping {name}: no {}", input_path.display());
            continue;
        }
        let input = npy::read_f32(&input_path)?;
        models.push(Model {
            name,
            onnx,
            input_path,
            input,
        });
    }
    if models.is_empty() {
        bail!("no models with inputs in {}: {hint}", dir.display());
    }
    Ok(models)
}
