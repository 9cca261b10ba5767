//! Options and helpers shared by the subcommands.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use whittle::runtime::{CompileOptions, Plan};
use whittle::{Graph, Tensor};

/// Model and compile options every subcommand takes.
#[derive(clap::Args, Debug)]
pub struct ModelArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Static shape for a graph input with symbolic or unknown dims:
    /// NAME=1x3x224x224 (NAME= may be left out when the model has one input).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shapes: Vec<String>,
    /// Threads kernels may use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Skip graph simplification (identity removal, BatchNorm folding,
    /// activation fusion).
    #[arg(long)]
    pub no_simplify: bool,
    /// Print one JSON document instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Parses `1x3x224x224` into dims.
pub fn parse_dims(text: &str) -> Result<Vec<usize>> {
    if text.trim().is_empty() {
        return Ok(vec![]);
    }
    text.split(['x', 'X', ','])
        .map(|d| {
            d.trim()
                .parse::<usize>()
                .with_context(|| format!("bad dimension '{d}' in '{text}'"))
        })
        .collect()
}

/// The values' names, comma-separated, for messages that list inputs.
pub fn names<'a>(values: impl IntoIterator<Item = &'a whittle::ir::ValueInfo>) -> String {
    let names: Vec<&str> = values.into_iter().map(|v| v.name.as_str()).collect();
    names.join(", ")
}

/// Splits `NAME=VALUE`; a bare VALUE names the model's only input.
pub fn split_named<'a>(arg: &'a str, graph: &'a Graph, what: &str) -> Result<(String, &'a str)> {
    if let Some((name, value)) = arg.split_once('=') {
        return Ok((name.to_string(), value));
    }
    match graph.inputs.as_slice() {
        [only] => Ok((only.name.clone(), arg)),
        inputs => bail!(
            "{what} '{arg}' needs NAME= because the model has {} inputs ({})",
            inputs.len(),
            names(inputs)
        ),
    }
}

impl ModelArgs {
    /// Imports the model.
    pub fn load(&self) -> Result<Graph> {
        Ok(whittle::load(&self.model)
            .with_context(|| format!("cannot import {}", self.model.display()))?
            .graph()
            .clone())
    }

    /// Compile options from the flags plus shapes implied by given inputs.
    pub fn compile_options(
        &self,
        graph: &Graph,
        given: &HashMap<String, Tensor>,
    ) -> Result<CompileOptions> {
        if self.threads == 0 {
            bail!("--threads must be at least 1");
        }
        let mut opts = CompileOptions {
            threads: self.threads,
            simplify: !self.no_simplify,
            ..CompileOptions::default()
        };
        for (name, t) in given {
            opts.input_shapes.insert(name.clone(), t.shape().to_vec());
        }
        for arg in &self.input_shapes {
            let (name, dims) = split_named(arg, graph, "--input-shape")?;
            opts.input_shapes.insert(name, parse_dims(dims)?);
        }
        Ok(opts)
    }

    /// Loads and compiles.
    pub fn plan(&self, given: &HashMap<String, Tensor>) -> Result<(Graph, Plan)> {
        let graph = self.load()?;
        let opts = self.compile_options(&graph, given)?;
        let plan = whittle::runtime::compile(&graph, &opts)
            .with_context(|| format!("cannot compile {}", self.model.display()))?;
        Ok((graph, plan))
    }
}

/// Reads `--input NAME=FILE.npy` arguments.
pub fn read_inputs(args: &[String], graph: &Graph) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for arg in args {
        let (name, file) = split_named(arg, graph, "--input")?;
        if !graph.inputs.iter().any(|v| v.name == name) {
            bail!("the model has no input '{name}'");
        }
        let t = whittle::data::read_npy(Path::new(file))
            .with_context(|| format!("cannot read input '{name}'"))?;
        out.insert(name, t);
    }
    Ok(out)
}

/// Deterministic pseudo-random inputs in [-1, 1) (or small integers) for
/// every input the user did not give.
pub fn fill_inputs(plan: &Plan, given: &HashMap<String, Tensor>) -> Result<Vec<Tensor>> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    plan.inputs()
        .map(|io| {
            if let Some(t) = given.get(&io.name) {
                return Ok(t.clone());
            }
            let n: usize = io.fact.shape.iter().product();
            let t = match io.fact.dtype {
                whittle::DType::F32 => Tensor::from_f32(
                    io.fact.shape.clone(),
                    (0..n)
                        .map(|_| (next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
                        .collect(),
                )?,
                whittle::DType::I64 => Tensor::from_i64(
                    io.fact.shape.clone(),
                    (0..n).map(|_| (next() % 4) as i64).collect(),
                )?,
                other => Tensor::zeros(other, io.fact.shape.clone())?,
            };
            Ok(t)
        })
        .collect()
}

/// Plan inputs in order, from given tensors; errors name what is missing.
pub fn ordered_inputs(plan: &Plan, given: &HashMap<String, Tensor>) -> Result<Vec<Tensor>> {
    plan.inputs()
        .map(|io| {
            given.get(&io.name).cloned().with_context(|| {
                format!(
                    "missing --input {}=FILE.npy ({} {:?})",
                    io.name, io.fact.dtype, io.fact.shape
                )
            })
        })
        .collect()
}

/// A progress bar of `len` steps in `template` (indicatif syntax), drawn on
/// stderr only when `visible` (a terminal that wants it): piped or `--json`
/// runs stay quiet.
pub fn progress_bar(len: u64, template: &str, visible: bool) -> indicatif::ProgressBar {
    let target = if visible {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Progress of a multi-stage compression run (`quantize`, `prune`): one bar
/// per stage, replaced when the stage changes, cleared when dropped.
#[derive(Default)]
pub struct StageProgress {
    current: Option<(&'static str, indicatif::ProgressBar)>,
}

impl StageProgress {
    /// Shows `p`, starting a new bar when its stage differs from the last.
    pub fn update(&mut self, p: whittle_compress::Progress) {
        if self.current.as_ref().map(|c| c.0) != Some(p.stage) {
            self.finish();
            let bar = stage_bar(p.stage);
            bar.set_length(p.total as u64);
            self.current = Some((p.stage, bar));
        }
        if let Some((_, bar)) = &self.current {
            bar.set_position(p.done as u64);
        }
    }

    /// Clears the current bar.
    pub fn finish(&mut self) {
        if let Some((_, bar)) = self.current.take() {
            bar.finish_and_clear();
        }
    }
}

/// The progress bar of one named stage of `quantize` or `prune`
/// (calibration, evaluation, ...); its length is set as work is known.
pub fn stage_bar(stage: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = progress_bar(
        0,
        "{msg:>12} {bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}]",
        std::io::stderr().is_terminal(),
    );
    bar.set_message(stage.to_string());
    bar
}

/// How raw samples become model inputs; shared by every command that reads
/// a dataset.
#[derive(clap::Args, Clone, Debug)]
pub struct PreprocessArgs {
    /// Per-channel mean subtracted after scaling (one value, or one per
    /// channel, comma-separated).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    pub mean: Vec<f32>,
    /// Per-channel standard deviation divided by after the mean.
    #[arg(long, value_delimiter = ',')]
    pub std: Vec<f32>,
    /// Divide raw values by this first [default: 255 for 8-bit data, so
    /// pixels land in [0, 1]; 1 for float data].
    #[arg(long, value_name = "X")]
    pub divide_by: Option<f32>,
}

impl PreprocessArgs {
    /// The dataset preprocessing these flags ask for.
    pub fn preprocess(&self) -> whittle::data::Preprocess {
        whittle::data::Preprocess {
            divide_by: self.divide_by,
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }
}
