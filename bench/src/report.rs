//! The output: one JSON document, or a human table with footnotes.

use std::fmt::Write;

use serde::Serialize;

use crate::machine::Machine;
use crate::measure::{CaseResult, Latency};
use crate::{tract_rt, Cli};

/// Settings the figures were taken with.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    /// Timed iterations per runtime and case.
    pub iters: usize,
    /// Untimed iterations before each round.
    pub warmup: usize,
    /// Alternating rounds per case.
    pub rounds: usize,
}

/// Runtime versions.
#[derive(Clone, Debug, Serialize)]
pub struct Versions {
    /// whittle crates: version and git commit of the checkout.
    pub whittle: String,
    /// tract-onnx.
    pub tract: &'static str,
    /// onnxruntime (from the Python wheel), when it ran.
    pub onnxruntime: Option<String>,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Document {
    /// Where it ran.
    pub machine: Machine,
    /// How it ran.
    pub settings: Settings,
    /// What ran.
    pub versions: Versions,
    /// One entry per model and thread count.
    pub results: Vec<CaseResult>,
}

impl Document {
    /// Gathers the results with the run's context.
    pub fn new(cli: &Cli, results: Vec<CaseResult>) -> Document {
        let onnxruntime = results.iter().find_map(|r| r.ort_version.clone());
        Document {
            machine: Machine::detect(),
            settings: Settings {
                iters: cli.iters,
                warmup: cli.warmup,
                rounds: cli.rounds,
            },
            versions: Versions {
                whittle: whittle_version(),
                tract: tract_rt::VERSION,
                onnxruntime,
            },
            results,
        }
    }
}

/// The whittle crates' version plus the commit of this checkout, when git
/// can tell (benchmarks are compared across commits).
fn whittle_version() -> String {
    let commit = std::process::Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match commit {
        Some(c) => format!("{} ({c})", env!("CARGO_PKG_VERSION")),
        None => env!("CARGO_PKG_VERSION").to_string(),
    }
}

/// Footnotes for errors, numbered in order of first appearance and shared
/// by identical messages.
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn mark(&mut self, msg: &str) -> usize {
        match self.0.iter().position(|m| m == msg) {
            Some(i) => i + 1,
            None => {
                self.0.push(msg.to_string());
                self.0.len()
            }
        }
    }
}

fn latency_cell(l: &Latency, runtime: &str, notes: &mut Notes) -> String {
    match (&l.summary, &l.error) {
        (_, Some(e)) => format!("error[{}]", notes.mark(&format!("{runtime}: {e}"))),
        (Some(s), None) => format!("{:.2}", s.median_ms),
        (None, None) if l.skipped => "skipped".into(),
        (None, None) => "-".into(),
    }
}

fn spread_cell(l: &Latency) -> String {
    l.summary.as_ref().map_or("-".into(), |s| {
        format!("{:.2} {:.2}-{:.2}", s.min_ms, s.p10_ms, s.p90_ms)
    })
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("-".into(), f)
}

fn mb(bytes: usize) -> String {
    format!("{:.2}", bytes as f64 / 1e6)
}

fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            // First column left-aligned (names), the rest right-aligned (numbers).
            if i == 0 {
                let _ = write!(s, "{c:<w$}");
            } else {
                let _ = write!(s, "  {c:>w$}");
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    out += &line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// The human-readable report.
pub fn table(doc: &Document) -> String {
    let mut notes = Notes::default();
    let mut main = Vec::new();
    let mut spread = Vec::new();
    for r in &doc.results {
        let mem = r.whittle_memory.as_ref();
        let d = &r.max_abs_diff;
        // Relative to the output's scale: randomly initialised networks can
        // have tiny outputs, where absolute differences say nothing.
        let diff = |v: Option<f64>| match (v, d.ort_max_abs) {
            (Some(x), Some(scale)) if scale > 0.0 => format!("{:.1e}", x / scale),
            (Some(x), _) => format!("{x:.1e} abs"),
            (None, _) => "-".into(),
        };
        main.push(vec![
            r.model.clone(),
            r.threads.to_string(),
            latency_cell(&r.whittle, "whittle", &mut notes),
            latency_cell(&r.tract, "tract", &mut notes),
            latency_cell(&r.ort, "onnxruntime", &mut notes),
            opt(r.whittle_over_tract, |x| format!("{x:.2}")),
            opt(r.whittle_over_ort, |x| format!("{x:.2}")),
            mem.map_or("-".into(), |m| mb(m.arena)),
            mem.map_or("-".into(), |m| mb(m.lower_bound)),
            mem.map_or("-".into(), |m| {
                if m.lower_bound == 0 {
                    "-".into()
                } else {
                    format!("{:.2}", m.arena as f64 / m.lower_bound as f64)
                }
            }),
            mem.map_or("-".into(), |m| mb(m.weights)),
            mem.map_or("-".into(), |m| mb(m.packed_weights)),
            diff(d.whittle_tract),
            diff(d.whittle_ort),
            diff(d.tract_ort),
            opt(d.ort_max_abs, |x| format!("{x:.1e}")),
        ]);
        for p in &d.problems {
            notes.mark(&format!("{} t={}: {p}", r.model, r.threads));
        }
        spread.push(vec![
            r.model.clone(),
            r.threads.to_string(),
            spread_cell(&r.whittle),
            spread_cell(&r.tract),
            spread_cell(&r.ort),
            opt(r.whittle.prepare_ms, |x| format!("{x:.0}")),
            opt(r.tract.prepare_ms, |x| format!("{x:.0}")),
        ]);
    }
    let m = &doc.machine;
    let s = &doc.settings;
    let v = &doc.versions;
    let mut out = format!(
        "{} ({} logical CPUs; {}; load average {})\nwhittle {}, tract {}, onnxruntime {}; {} timed iterations per cell in {} alternating rounds, {} warm-up per round\n\n",
        m.cpu,
        m.logical_cpus,
        m.simd.join(" "),
        m.load_average.map_or("unknown".into(), |l| format!("{l:.1}")),
        v.whittle,
        v.tract,
        v.onnxruntime.as_deref().unwrap_or("-"),
        s.iters,
        s.rounds,
        s.warmup,
    );
    out += "Median latency (ms); whittle's memory plan (MB); max |output difference| divided by max |ort output|:\n";
    out += &render(
        &[
            "model", "thr", "whittle", "tract", "ort", "w/tract", "w/ort", "arena", "lower bd",
            "arena/lb", "weights", "packed", "|w-t|", "|w-o|", "|t-o|", "max|ort|",
        ],
        &main,
    );
    out += "\nFastest and p10-p90 (ms); load+compile time (ms):\n";
    out += &render(
        &[
            "model",
            "thr",
            "whittle min p10-p90",
            "tract min p10-p90",
            "ort min p10-p90",
            "whittle load",
            "tract load",
        ],
        &spread,
    );
    if !notes.0.is_empty() {
        out += "\n";
        for (i, n) in notes.0.iter().enumerate() {
            let _ = writeln!(out, "[{}] {n}", i + 1);
        }
    }
    out
}
