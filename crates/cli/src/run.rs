//! `whittle run`: run a model on .npy inputs, write .npy outputs.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::common::{ordered_inputs, read_inputs, ModelArgs};
use crate::format::shape;

/// Arguments of `whittle run`.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Input as NAME=FILE.npy (NAME= may be left out for a one-input model).
    /// Shapes of symbolic inputs are taken from the arrays.
    #[arg(long = "input", value_name = "NAME=FILE.npy", required = true)]
    inputs: Vec<String>,
    /// Where to write one NAME.npy per output.
    #[arg(long, default_value = ".")]
    output_dir: PathBuf,
}

#[derive(Serialize)]
struct Written {
    name: String,
    file: String,
    dtype: String,
    shape: Vec<usize>,
}

/// A file name for an output value: path separators and odd characters
/// become `_`.
fn file_name(value: &str) -> String {
    let s: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        "output".into()
    } else {
        s
    }
}

/// Runs the subcommand.
pub fn main(args: Args) -> Result<()> {
    let graph = args.model.load()?;
    let given = read_inputs(&args.inputs, &graph)?;
    let opts = args.model.compile_options(&graph, &given)?;
    let mut plan = whittle::runtime::compile(&graph, &opts).context("cannot compile the model")?;
    let inputs = ordered_inputs(&plan, &given)?;
    let outputs = plan.run(&inputs)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    // Compute every file before writing any, so a failure leaves nothing half done.
    let mut files = Vec::new();
    for (io, t) in plan.outputs().zip(&outputs) {
        let mut name = file_name(&io.name);
        while files
            .iter()
            .any(|(f, _, _): &(PathBuf, _, _)| f.file_stem().is_some_and(|s| s == name.as_str()))
        {
            name.push('_');
        }
        let bytes = whittle::data::npy_bytes(t)?;
        files.push((
            args.output_dir.join(format!("{name}.npy")),
            bytes,
            (io.name.clone(), t),
        ));
    }
    let mut written = Vec::new();
    for (path, bytes, (name, t)) in &files {
        whittle::data::atomic_write(path, bytes)?;
        written.push(Written {
            name: name.clone(),
            file: path.display().to_string(),
            dtype: t.dtype().name().into(),
            shape: t.shape().to_vec(),
        });
    }
    if args.model.json {
        println!("{}", serde_json::to_string_pretty(&written)?);
    } else {
        for (w, t) in written.iter().zip(&outputs) {
            let v = t.to_f64_vec();
            let preview: Vec<String> = v.iter().take(6).map(|x| format!("{x:.5}")).collect();
            println!(
                "{} {} {} -> {}  [{}{}]",
                w.name,
                w.dtype,
                shape(&w.shape),
                w.file,
                preview.join(", "),
                if v.len() > 6 { ", ..." } else { "" }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn output_file_names_are_safe() {
        assert_eq!(file_name("logits"), "logits");
        assert_eq!(file_name("/head/Gemm_output_0"), "head_Gemm_output_0");
        assert_eq!(file_name("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(file_name("///"), "output");
    }
}
