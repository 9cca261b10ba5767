//! Per-tensor activation statistics and the calibration methods that turn
//! them into a quantization range.
//!
//! Calibration makes up to two passes over the data: the first records
//! min/max (and per-channel means for bias correction); methods that need a
//! distribution then fill a fixed 2048-bin histogram over that range in a
//! second pass, so no activation is ever stored.

use serde::Serialize;

/// Histogram resolution used by percentile, entropy and MSE calibration.
pub const HIST_BINS: usize = 2048;

/// How an activation's quantization range is chosen from calibration data.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "method", rename_all = "lowercase")]
pub enum Method {
    /// The observed minimum and maximum.
    MinMax,
    /// The given percentile (e.g. 99.99) of the values at the top, and
    /// 100 - p at the bottom.
    Percentile {
        /// Percentile in (50, 100].
        percentile: f64,
    },
    /// The clipping threshold minimizing the KL divergence between the
    /// value histogram and its quantized version (TensorRT's entropy
    /// calibration).
    Entropy,
    /// The clipping range minimizing the expected squared quantization
    /// error (rounding plus clipping) over the value histogram.
    Mse,
}

impl Method {
    /// Whether the method needs the histogram pass.
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Method::MinMax)
    }

    /// Parses `minmax`, `percentile`, `percentile:99.9`, `entropy`, `mse`.
    pub fn parse(text: &str) -> Result<Method, String> {
        let t = text.trim().to_ascii_lowercase();
        let (name, arg) = match t.split_once([':', '=']) {
            Some((n, a)) => (n.to_string(), Some(a.to_string())),
            None => (t.clone(), None),
        };
        let m = match name.as_str() {
            "minmax" | "min-max" => Method::MinMax,
            "entropy" | "kl" => Method::Entropy,
            "mse" => Method::Mse,
            "percentile" => {
                let p = match &arg {
                    None => 99.99,
                    Some(a) => a
                        .parse::<f64>()
                        .map_err(|_| format!("bad percentile '{a}' in '{text}'"))?,
                };
                if !(p > 50.0 && p <= 100.0) {
                    return Err(format!("percentile {p} must be in (50, 100]"));
                }
                Method::Percentile { percentile: p }
            }
            _ => {
                return Err(format!(
                    "unknown calibration method '{text}' (minmax, percentile[:P], entropy, mse)"
                ))
            }
        };
        if arg.is_some() && !matches!(m, Method::Percentile { .. }) {
            return Err(format!("'{text}': only percentile takes a parameter"));
        }
        Ok(m)
    }

    /// Short name for reports.
    pub fn name(self) -> String {
        match self {
            Method::MinMax => "minmax".into(),
            Method::Percentile { percentile } => format!("percentile:{percentile}"),
            Method::Entropy => "entropy".into(),
            Method::Mse => "mse".into(),
        }
    }
}

/// A fixed-range histogram.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    lo: f32,
    hi: f32,
    bins: Vec<u64>,
}

impl Histogram {
    fn new(lo: f32, hi: f32) -> Histogram {
        Histogram {
            lo,
            hi,
            bins: vec![0; HIST_BINS],
        }
    }

    fn width(&self) -> f64 {
        (f64::from(self.hi) - f64::from(self.lo)) / HIST_BINS as f64
    }

    fn add(&mut self, values: impl Iterator<Item = f32>) {
        let w = self.width();
        if w <= 0.0 {
            self.bins[0] += values.count() as u64;
            return;
        }
        let inv = 1.0 / w;
        let last = HIST_BINS - 1;
        for v in values {
            let b = ((f64::from(v) - f64::from(self.lo)) * inv) as isize;
            self.bins[b.clamp(0, last as isize) as usize] += 1;
        }
    }

    fn center(&self, i: usize) -> f64 {
        f64::from(self.lo) + (i as f64 + 0.5) * self.width()
    }

    fn total(&self) -> u64 {
        self.bins.iter().sum()
    }

    /// The value below which `q` (0..1) of the mass lies (bin edges).
    fn quantile(&self, q: f64) -> f64 {
        let total = self.total() as f64;
        let target = q * total;
        let mut acc = 0.0;
        for (i, &c) in self.bins.iter().enumerate() {
            acc += c as f64;
            if acc >= target {
                return f64::from(self.lo) + (i + 1) as f64 * self.width();
            }
        }
        f64::from(self.hi)
    }
}

/// Statistics of one tensor over the calibration data.
#[derive(Clone, Debug)]
pub(crate) struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub count: u64,
    /// Per-channel sums (for bias correction), when requested.
    pub channel_sum: Vec<f64>,
    pub channel_count: u64,
    full: Option<Histogram>,
    abs: Option<Histogram>,
    /// Exact zeros seen in the histogram pass (Relu outputs are mostly
    /// zeros, which quantize exactly whatever the range).
    zeros: u64,
}

impl TensorStats {
    pub fn new(channels: usize) -> TensorStats {
        TensorStats {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            count: 0,
            channel_sum: vec![0.0; channels],
            channel_count: 0,
            full: None,
            abs: None,
            zeros: 0,
        }
    }

    /// First pass: min/max. Values are known to be finite.
    pub fn observe_range(&mut self, values: &[f32]) {
        let (mut lo, mut hi) = (self.min, self.max);
        for &v in values {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        self.min = lo;
        self.max = hi;
        self.count += values.len() as u64;
    }

    /// First pass: per-channel sums over `[outer, channels, inner]`.
    pub fn observe_channels(&mut self, values: &[f32], channels: usize, inner: usize) {
        if channels != self.channel_sum.len() || channels == 0 || inner == 0 {
            return;
        }
        for (i, &v) in values.iter().enumerate() {
            self.channel_sum[(i / inner) % channels] += f64::from(v);
        }
        self.channel_count += (values.len() / channels) as u64;
    }

    /// Per-channel means, if collected.
    pub fn channel_means(&self) -> Option<Vec<f64>> {
        (self.channel_count > 0 && !self.channel_sum.is_empty()).then(|| {
            self.channel_sum
                .iter()
                .map(|s| s / self.channel_count as f64)
                .collect()
        })
    }

    /// Second pass: histograms over the range found by the first.
    pub fn observe_hist(&mut self, values: &[f32]) {
        let (min, max) = (self.min.min(0.0), self.max.max(0.0));
        self.full
            .get_or_insert_with(|| Histogram::new(min, max))
            .add(values.iter().copied());
        let a = (-min).max(max);
        self.abs
            .get_or_insert_with(|| Histogram::new(0.0, a))
            .add(values.iter().map(|v| v.abs()));
        self.zeros += values.iter().filter(|&&v| v == 0.0).count() as u64;
    }

    /// The range chosen by `method` for `levels` quantization levels,
    /// always containing 0.
    pub fn range(&self, method: Method, levels: usize) -> (f32, f32) {
        let (min, max) = (self.min.min(0.0), self.max.max(0.0));
        if self.count == 0 || max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
            return (min, max);
        }
        let (lo, hi) = match (method, &self.full, &self.abs) {
            (Method::MinMax, _, _) | (_, None, _) | (_, _, None) => {
                (f64::from(min), f64::from(max))
            }
            (Method::Percentile { percentile }, Some(h), _) => {
                let p = percentile / 100.0;
                let lo = if self.min >= 0.0 {
                    0.0
                } else {
                    h.quantile(1.0 - p)
                };
                (lo.min(0.0), h.quantile(p).max(0.0))
            }
            (Method::Entropy, _, Some(a)) => {
                let target = if self.min >= 0.0 {
                    levels - 1
                } else {
                    levels / 2
                };
                // Exact zeros are represented exactly by the zero point:
                // leaving their spike in would make the KL search favour
                // ranges that keep bin 0 unmerged, i.e. clip hard.
                let mut bins = a.bins.clone();
                bins[0] = bins[0].saturating_sub(self.zeros);
                let t = entropy_threshold(&bins, target.max(2)) * a.width();
                (f64::from(min).max(-t), f64::from(max).min(t))
            }
            (Method::Mse, Some(h), _) => mse_range(h, f64::from(min), f64::from(max), levels),
        };
        (lo.min(0.0) as f32, hi.max(0.0) as f32)
    }
}

/// Mean squared quantize-dequantize error of the histogram's mass for the
/// range `[lo, hi]` with `levels` steps.
fn hist_mse(h: &Histogram, lo: f64, hi: f64, levels: usize) -> f64 {
    let scale = (hi - lo) / (levels - 1) as f64;
    if scale <= 0.0 {
        return f64::INFINITY;
    }
    let zp = (-lo / scale).round();
    let qmax = (levels - 1) as f64;
    let mut err = 0.0;
    for (i, &c) in h.bins.iter().enumerate() {
        if c == 0 {
            continue;
        }
        let x = h.center(i);
        let q = ((x / scale).round() + zp).clamp(0.0, qmax);
        let d = x - (q - zp) * scale;
        err += d * d * c as f64;
    }
    err
}

/// The range `[a*min, a*max]` (a in (0, 1]) minimizing [`hist_mse`], refined
/// by shrinking each end alone.
fn mse_range(h: &Histogram, min: f64, max: f64, levels: usize) -> (f64, f64) {
    let steps = 200;
    let mut best = (min, max, hist_mse(h, min, max, levels));
    for s in 1..steps {
        let a = 1.0 - s as f64 / steps as f64 * 0.95;
        let e = hist_mse(h, a * min, a * max, levels);
        if e < best.2 {
            best = (a * min, a * max, e);
        }
    }
    // Asymmetric tensors: try moving each end on its own around the optimum.
    let (blo, bhi) = (best.0, best.1);
    for s in 0..=100 {
        let a = 0.5 + s as f64 / 100.0;
        let hi = (bhi * a).min(max);
        let e = hist_mse(h, best.0, hi, levels);
        if e < best.2 {
            best = (best.0, hi, e);
        }
        let lo = (blo * a).max(min);
        let e = hist_mse(h, lo, best.1, levels);
        if e < best.2 {
            best = (lo, best.1, e);
        }
    }
    (best.0, best.1)
}

/// TensorRT's entropy calibration on a histogram of |x|: the number of bins
/// (a clipping threshold) whose distribution, squeezed into `target` levels
/// and expanded back, loses the least information (KL divergence). Returns
/// the threshold in bins (a fractional edge).
fn entropy_threshold(hist: &[u64], target: usize) -> f64 {
    let n = hist.len();
    if n <= target {
        return n as f64;
    }
    let mut best = (f64::INFINITY, n);
    let mut p = vec![0.0f64; n];
    let mut q = vec![0.0f64; n];
    let total_tail: Vec<u64> = {
        let mut t = vec![0u64; n + 1];
        for i in (0..n).rev() {
            t[i] = t[i + 1] + hist[i];
        }
        t
    };
    for i in target..=n {
        // Reference: the first i bins, outliers folded into the last one.
        for (k, pk) in p.iter_mut().enumerate().take(i) {
            *pk = hist[k] as f64;
        }
        p[i - 1] += total_tail[i] as f64;
        // Candidate: i bins merged into `target` levels, spread back evenly
        // over the bins that were non-empty.
        let merged = i as f64 / target as f64;
        for j in 0..target {
            let start = (j as f64 * merged) as usize;
            let end = if j + 1 == target {
                i
            } else {
                ((j + 1) as f64 * merged) as usize
            };
            let sum: f64 = hist[start..end].iter().map(|&c| c as f64).sum();
            let nonzero = hist[start..end].iter().filter(|&&c| c > 0).count();
            for k in start..end {
                q[k] = if hist[k] > 0 && nonzero > 0 {
                    sum / nonzero as f64
                } else {
                    0.0
                };
            }
        }
        let kl = kl_divergence(&p[..i], &q[..i]);
        if kl < best.0 {
            best = (kl, i);
        }
    }
    best.1 as f64
}

/// KL(p || q) of two unnormalized histograms; bins where q is zero but p is
/// not get a small epsilon, as TensorRT does.
fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let ps: f64 = p.iter().sum();
    let qs: f64 = q.iter().sum();
    if ps <= 0.0 || qs <= 0.0 {
        return f64::INFINITY;
    }
    let eps = 1e-10;
    p.iter()
        .zip(q)
        .filter(|(&a, _)| a > 0.0)
        .map(|(&a, &b)| {
            let a = a / ps;
            let b = (b / qs).max(eps);
            a * (a / b).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::new(0);
        s.observe_range(values);
        s.observe_hist(values);
        s
    }

    #[test]
    fn parse_methods() {
        assert_eq!(Method::parse("minmax").unwrap(), Method::MinMax);
        assert_eq!(
            Method::parse("percentile:99.9").unwrap(),
            Method::Percentile { percentile: 99.9 }
        );
        assert_eq!(
            Method::parse("percentile").unwrap(),
            Method::Percentile { percentile: 99.99 }
        );
        assert!(Method::parse("percentile:20").is_err());
        assert!(Method::parse("mse:3").is_err());
        assert!(Method::parse("bogus").unwrap_err().contains("entropy"));
    }

    #[test]
    fn minmax_includes_zero() {
        let s = stats(&[1.0, 2.0, 3.0]);
        assert_eq!(s.range(Method::MinMax, 256), (0.0, 3.0));
    }

    /// 10000 values uniform in [0, 1) and one outlier at 100: percentile,
    /// entropy and MSE must all clip the outlier; min-max cannot. Entropy
    /// cannot clip below `target` of the 2048 bins (TensorRT's search
    /// starts there): 255/2048 of the range here.
    #[test]
    fn clipping_methods_ignore_an_outlier() {
        let mut v: Vec<f32> = (0..10000).map(|i| i as f32 / 10000.0).collect();
        v.push(100.0);
        let s = stats(&v);
        assert_eq!(s.range(Method::MinMax, 256).1, 100.0);
        for m in [Method::Percentile { percentile: 99.9 }, Method::Entropy] {
            let (lo, hi) = s.range(m, 256);
            assert_eq!(lo, 0.0);
            let limit = if m == Method::Entropy { 12.5 } else { 5.0 };
            assert!(hi > 0.9 && hi < limit, "{m:?}: {hi}");
        }
        // MSE weighs the outlier's squared clipping error (100 - h)^2
        // against the rounding error of the others, n (h/255)^2 / 12: with
        // n = 10^4 the optimum keeps the outlier (h ~ 99); with n = 10^6 it
        // is h = 100 / (1 + 10^6 / (255^2 * 12)) = 43.8.
        assert!(s.range(Method::Mse, 256).1 > 90.0);
        let mut v: Vec<f32> = (0..1_000_000).map(|i| i as f32 / 1e6).collect();
        v.push(100.0);
        let (_, hi) = stats(&v).range(Method::Mse, 256);
        assert!((hi - 43.8).abs() < 8.0, "{hi}");
    }

    /// Quantile of a uniform histogram: the 50% point of [0, 1) is 0.5
    /// within one bin.
    #[test]
    fn quantile_of_uniform() {
        let v: Vec<f32> = (0..100000).map(|i| i as f32 / 100000.0).collect();
        let s = stats(&v);
        let q = s.full.as_ref().unwrap().quantile(0.5);
        assert!((q - 0.5).abs() < 1.0 / HIST_BINS as f64 + 1e-9, "{q}");
    }

    /// For a uniform distribution the MSE-optimal range is the full range
    /// (clipping only adds error), within a couple of percent.
    #[test]
    fn mse_keeps_uniform_range() {
        let v: Vec<f32> = (0..100000)
            .map(|i| -1.0 + 2.0 * i as f32 / 100000.0)
            .collect();
        let s = stats(&v);
        let (lo, hi) = s.range(Method::Mse, 256);
        assert!(lo < -0.97 && hi > 0.97, "{lo} {hi}");
    }

    #[test]
    fn kl_of_identical_is_zero() {
        let p = [1.0, 2.0, 3.0];
        assert!(kl_divergence(&p, &p).abs() < 1e-12);
        assert!(kl_divergence(&p, &[3.0, 2.0, 1.0]) > 0.0);
    }
}
