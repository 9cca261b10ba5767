//! The harness the `*_bench` examples share: seeded random inputs, the
//! interleaved timing loop with its minimum and median, the command line
//! (a name filter plus flags) and fixed-width table printing.
//!
//! Each example includes it with `mod common;`. Environment:
//! `WHITTLE_BENCH_MIN=1` makes [`Stats::pick`] report minima instead of
//! medians; `WHITTLE_BENCH_BUDGET=<seconds>` overrides every timing budget
//! (e.g. `0.01` for a quick smoke run).

// Not every example uses every piece.
#![allow(dead_code)]

use std::time::Instant;

use whittle_kernels::conv::ConvGeom;
use whittle_kernels::gemm::Exec;

/// One step of the xorshift64 generator the inputs come from.
pub fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

fn seeded(seed: u64) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1
}

/// `n` values uniform in [-1, 1), the same for the same `seed`.
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seeded(seed);
    (0..n)
        .map(|_| ((xorshift(&mut s) >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0)
        .collect()
}

/// `n` random bytes, the same for the same `seed`.
pub fn rand_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seeded(seed);
    (0..n).map(|_| (xorshift(&mut s) >> 32) as u8).collect()
}

/// Seconds one closure took: the fastest and the median of all runs.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub min: f64,
    pub median: f64,
}

impl Stats {
    /// The median, or the minimum under `WHITTLE_BENCH_MIN=1` (steadier
    /// on a loaded machine).
    pub fn pick(self) -> f64 {
        if env_is("WHITTLE_BENCH_MIN", "1") {
            self.min
        } else {
            self.median
        }
    }
}

fn env_is(key: &str, value: &str) -> bool {
    std::env::var(key).is_ok_and(|v| v == value)
}

/// How long [`time`] runs: about `budget` seconds in all, at least
/// `min_reps` and at most `max_reps` rounds.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub secs: f64,
    pub min_reps: usize,
    pub max_reps: usize,
}

impl Budget {
    pub const fn new(secs: f64, min_reps: usize, max_reps: usize) -> Budget {
        Budget {
            secs,
            min_reps,
            max_reps,
        }
    }
}

/// Times the closures interleaved: one warm-up round, one round to size
/// the run, then rounds calling each closure once in turn until the
/// budget is spent. One [`Stats`] per closure, in order.
pub fn time(budget: Budget, fs: &mut [&mut dyn FnMut()]) -> Vec<Stats> {
    let secs = std::env::var("WHITTLE_BENCH_BUDGET")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(budget.secs);
    for f in fs.iter_mut() {
        f();
    }
    let t = Instant::now();
    for f in fs.iter_mut() {
        f();
    }
    let once = t.elapsed().as_secs_f64().max(1e-7);
    let reps = ((secs / once) as usize).clamp(budget.min_reps, budget.max_reps);
    let mut times = vec![Vec::with_capacity(reps); fs.len()];
    for _ in 0..reps {
        for (f, ts) in fs.iter_mut().zip(&mut times) {
            let t = Instant::now();
            f();
            ts.push(t.elapsed().as_secs_f64());
        }
    }
    times
        .into_iter()
        .map(|mut v| {
            v.sort_by(|x, y| x.total_cmp(y));
            Stats {
                min: v[0],
                median: v[v.len() / 2],
            }
        })
        .collect()
}

/// [`time`] for two closures.
pub fn time2(budget: Budget, mut a: impl FnMut(), mut b: impl FnMut()) -> [Stats; 2] {
    let s = time(budget, &mut [&mut a, &mut b]);
    [s[0], s[1]]
}

/// The command line: flags from a known set, and the first other
/// argument as a filter on row names (empty: every row).
pub struct Args {
    pub filter: String,
    flags: Vec<String>,
}

impl Args {
    /// Parses `std::env::args()`, taking the words in `flags` as flags.
    pub fn parse(flags: &[&str]) -> Args {
        let (flags, rest): (Vec<String>, Vec<String>) = std::env::args()
            .skip(1)
            .partition(|a| flags.contains(&a.as_str()));
        Args {
            filter: rest.into_iter().next().unwrap_or_default(),
            flags,
        }
    }

    /// Whether the flag was given.
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    /// Whether the row called `name` passes the filter.
    pub fn wants(&self, name: &str) -> bool {
        name.contains(&self.filter)
    }
}

/// A fixed-width text table: the first column left-aligned, the others
/// right-aligned; cells come formatted.
pub struct Table {
    widths: Vec<usize>,
}

impl Table {
    pub fn new(widths: &[usize]) -> Table {
        Table {
            widths: widths.to_vec(),
        }
    }

    /// Prints one row; cells beyond the widths given are appended after
    /// a space.
    pub fn row<S: AsRef<str>>(&self, cells: &[S]) {
        let mut line = String::new();
        for (i, c) in cells.iter().enumerate() {
            let c = c.as_ref();
            match self.widths.get(i) {
                Some(&w) if i == 0 => line.push_str(&format!("{c:<w$}")),
                Some(&w) => line.push_str(&format!(" {c:>w$}")),
                None => line.push_str(&format!(" {c}")),
            }
        }
        println!("{line}");
    }
}

/// Microseconds with one decimal.
pub fn us(secs: f64) -> String {
    format!("{:.1}", secs * 1e6)
}

/// Microseconds with one decimal and the unit.
pub fn us_unit(secs: f64) -> String {
    format!("{:.1}us", secs * 1e6)
}

/// A ratio with two decimals.
pub fn ratio(r: f64) -> String {
    format!("{r:.2}")
}

/// A ratio with two decimals and an `x`.
pub fn times_x(r: f64) -> String {
    format!("{r:.2}x")
}

/// Giga-operations per second for `ops` operations in `secs`, one decimal.
pub fn giga(ops: f64, secs: f64) -> String {
    format!("{:.1}", ops / secs / 1e9)
}

/// A single-image 2-D conv geometry on a square `hw` input with a square
/// `k` kernel, stride `s` and symmetric padding `p`.
pub fn square_geom(
    cin: usize,
    cout: usize,
    groups: usize,
    hw: usize,
    k: usize,
    s: usize,
    p: usize,
) -> ConvGeom {
    let o = ConvGeom::conv_out_dim(hw, k, s, 1, 2 * p).unwrap();
    ConvGeom {
        batch: 1,
        cin,
        cout,
        groups,
        input: [1, hw, hw],
        kernel: [1, k, k],
        stride: [1, s, s],
        dilation: [1; 3],
        pad_begin: [0, p, p],
        output: [1, o, o],
    }
}

/// Two worker threads, to show scaling.
pub struct Two;

// SAFETY: each index goes to exactly one scoped thread, all joined before
// `run` returns.
unsafe impl Exec for Two {
    fn max_tasks(&self) -> usize {
        2
    }
    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        std::thread::scope(|s| {
            for i in 0..n {
                s.spawn(move || f(i));
            }
        });
    }
}
