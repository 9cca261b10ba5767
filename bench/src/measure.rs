//! One case (model x thread count): prepare each runtime, time them in
//! alternating rounds, compare their outputs.

use std::time::Instant;

use serde::Serialize;

use crate::ort_rt::OrtCommand;
use crate::stats::Summary;
use crate::tract_rt::TractRunner;
use crate::whittle_rt::{Memory, WhittleRunner};
use crate::{npy, Cli, Model, Runner};

/// Latency of one runtime in one case, or why there is none.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Timing summary over every round.
    pub summary: Option<Summary>,
    /// Load/compile time, milliseconds (in-process runtimes only).
    pub prepare_ms: Option<f64>,
    /// Why the runtime did not produce figures.
    pub error: Option<String>,
    /// Set when the runtime was not asked to run.
    pub skipped: bool,
}

impl Latency {
    fn skipped() -> Latency {
        Latency {
            skipped: true,
            ..Latency::default()
        }
    }

    fn failed(error: String) -> Latency {
        Latency {
            error: Some(error),
            ..Latency::default()
        }
    }

    /// Median in ms, when measured.
    pub fn median(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.median_ms)
    }
}

/// Largest absolute difference between pairs of outputs (first output).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Agreement {
    /// whittle vs tract.
    pub whittle_tract: Option<f64>,
    /// whittle vs onnxruntime.
    pub whittle_ort: Option<f64>,
    /// tract vs onnxruntime.
    pub tract_ort: Option<f64>,
    /// Largest |value| of the onnxruntime output, for scale.
    pub ort_max_abs: Option<f64>,
    /// Outputs that could not be compared, and why.
    pub problems: Vec<String>,
}

/// Everything measured for one model at one thread count.
#[derive(Clone, Debug, Serialize)]
pub struct CaseResult {
    /// Model name.
    pub model: String,
    /// Threads each runtime was allowed.
    pub threads: usize,
    /// whittle latency.
    pub whittle: Latency,
    /// tract latency.
    pub tract: Latency,
    /// onnxruntime latency.
    pub ort: Latency,
    /// onnxruntime version reported by the script.
    pub ort_version: Option<String>,
    /// whittle's memory plan.
    pub whittle_memory: Option<Memory>,
    /// whittle median / tract median.
    pub whittle_over_tract: Option<f64>,
    /// whittle median / onnxruntime median.
    pub whittle_over_ort: Option<f64>,
    /// Output agreement.
    pub max_abs_diff: Agreement,
}

/// The three contenders, in the order of round 0.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Whittle,
    Tract,
    Ort,
}

/// Measures `model` on `threads` threads with every runtime the CLI allows.
pub fn case(cli: &Cli, model: &Model, threads: usize) -> CaseResult {
    let t0 = Instant::now();
    let mut whittle = WhittleRunner::new(&model.onnx, &model.input, threads);
    let whittle_prepare = elapsed_ms(t0);
    let t0 = Instant::now();
    let mut tract = if cli.no_tract {
        None
    } else {
        Some(TractRunner::new(&model.onnx, &model.input, threads))
    };
    let tract_prepare = elapsed_ms(t0);
    let ort_cmd = OrtCommand {
        python: cli.python.clone(),
        script: cli.ort_script.clone(),
    };
    let ort_out = std::env::temp_dir().join(format!(
        "whittle-bench-{}-{}-{threads}.npy",
        std::process::id(),
        model.name
    ));

    let mut times: [Vec<f64>; 3] = Default::default();
    let mut errors: [Option<String>; 3] = Default::default();
    let mut ort_version = None;
    let per_round = cli.iters.div_ceil(cli.rounds);
    let order = [Which::Whittle, Which::Tract, Which::Ort];
    for round in 0..cli.rounds {
        let want = (cli.iters - (round * per_round).min(cli.iters)).min(per_round);
        if want == 0 {
            break;
        }
        for k in 0..order.len() {
            let which = order[(round + k) % order.len()];
            let slot = which as usize;
            if errors[slot].is_some() {
                continue;
            }
            let result = match which {
                Which::Whittle => match whittle.as_mut() {
                    Ok(w) => time_runner(w, cli.warmup, want),
                    Err(_) => continue,
                },
                Which::Tract => match tract.as_mut() {
                    Some(Ok(t)) => time_runner(t, cli.warmup, want),
                    _ => continue,
                },
                Which::Ort if cli.no_ort => continue,
                Which::Ort => {
                    let save = (round == 0).then_some(ort_out.as_path());
                    ort_cmd
                        .run(
                            &model.onnx,
                            &model.input_path,
                            threads,
                            want,
                            cli.warmup,
                            save,
                        )
                        .map(|run| {
                            ort_version = Some(run.version);
                            run.times_ms
                        })
                }
            };
            match result {
                Ok(t) => times[slot].extend(t),
                Err(e) => errors[slot] = Some(e),
            }
        }
    }

    let latency = |slot: usize, prepare: Option<f64>| match &errors[slot] {
        Some(e) => Latency::failed(e.clone()),
        None => Latency {
            summary: Summary::of(&times[slot]),
            prepare_ms: prepare,
            ..Latency::default()
        },
    };
    let whittle_lat = match &whittle {
        Err(e) => Latency::failed(e.clone()),
        Ok(_) => latency(Which::Whittle as usize, Some(whittle_prepare)),
    };
    let tract_lat = match &tract {
        None => Latency::skipped(),
        Some(Err(e)) => Latency::failed(e.clone()),
        Some(Ok(_)) => latency(Which::Tract as usize, Some(tract_prepare)),
    };
    let ort_lat = if cli.no_ort {
        Latency::skipped()
    } else {
        latency(Which::Ort as usize, None)
    };

    let whittle_output = match (&mut whittle, &whittle_lat.error) {
        (Ok(w), None) => Some(w.output()),
        _ => None,
    };
    let tract_output = match (&mut tract, &tract_lat.error) {
        (Some(Ok(t)), None) => Some(t.output()),
        _ => None,
    };
    let ort_output = (!cli.no_ort && ort_lat.error.is_none()).then(|| {
        npy::read_f32(&ort_out)
            .map(|a| a.data)
            .map_err(|e| format!("{e:#}"))
    });
    let _ = std::fs::remove_file(&ort_out);
    let max_abs_diff = agreement(whittle_output, tract_output, ort_output);

    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    CaseResult {
        model: model.name.clone(),
        threads,
        whittle_over_tract: ratio(whittle_lat.median(), tract_lat.median()),
        whittle_over_ort: ratio(whittle_lat.median(), ort_lat.median()),
        whittle_memory: whittle.as_ref().ok().map(WhittleRunner::memory),
        whittle: whittle_lat,
        tract: tract_lat,
        ort: ort_lat,
        ort_version,
        max_abs_diff,
    }
}

fn elapsed_ms(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1e3
}

/// `warmup` untimed runs, then `iters` timed ones (milliseconds each).
fn time_runner(r: &mut dyn Runner, warmup: usize, iters: usize) -> Result<Vec<f64>, String> {
    for _ in 0..warmup {
        r.run_once()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t0 = Instant::now();
        r.run_once()?;
        times.push(elapsed_ms(t0));
    }
    Ok(times)
}

type Output = Option<Result<Vec<f32>, String>>;

fn agreement(whittle: Output, tract: Output, ort: Output) -> Agreement {
    let mut problems = Vec::new();
    let mut keep = |name: &str, o: Output| match o {
        Some(Ok(v)) => Some(v),
        Some(Err(e)) => {
            problems.push(format!("{name} output: {e}"));
            None
        }
        None => None,
    };
    let (w, t, o) = (
        keep("whittle", whittle),
        keep("tract", tract),
        keep("onnxruntime", ort),
    );
    let mut diff = |a: &Option<Vec<f32>>, b: &Option<Vec<f32>>, what: &str| {
        let (a, b) = (a.as_ref()?, b.as_ref()?);
        if a.len() != b.len() {
            problems.push(format!("{what}: {} vs {} elements", a.len(), b.len()));
            return None;
        }
        Some(max_abs_diff(a, b))
    };
    Agreement {
        whittle_tract: diff(&w, &t, "whittle vs tract"),
        whittle_ort: diff(&w, &o, "whittle vs onnxruntime"),
        tract_ort: diff(&t, &o, "tract vs onnxruntime"),
        ort_max_abs: o
            .as_ref()
            .map(|v| v.iter().fold(0.0f64, |m, x| m.max(f64::from(x.abs())))),
        problems,
    }
}

/// Largest |a - b|; NaN anywhere makes the result NaN (a disagreement).
fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| {
        let d = (f64::from(*x) - f64::from(*y)).abs();
        if d.is_nan() || m.is_nan() {
            f64::NAN
        } else {
            m.max(d)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_diff_finds_largest_and_propagates_nan() {
        assert_eq!(max_abs_diff(&[1.0, -2.0, 3.0], &[1.5, -2.0, 0.0]), 3.0);
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 0.0]).is_nan());
        assert_eq!(max_abs_diff(&[], &[]), 0.0);
    }

    #[test]
    fn agreement_reports_length_mismatch_and_errors() {
        let a = agreement(
            Some(Ok(vec![1.0, 2.0])),
            Some(Ok(vec![1.0])),
            Some(Err("boom".into())),
        );
        assert!(a.whittle_tract.is_none() && a.whittle_ort.is_none() && a.tract_ort.is_none());
        assert_eq!(a.problems.len(), 2, "{:?}", a.problems);
    }
}
