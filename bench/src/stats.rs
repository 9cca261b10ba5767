//! Latency summaries computed the way numpy does (linear interpolation
//! between order statistics), so figures are comparable with `ort_bench.py`.

use serde::Serialize;

/// Summary of one runtime's timed iterations, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// 50th percentile.
    pub median_ms: f64,
    /// 10th percentile.
    pub p10_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// Fastest iteration.
    pub min_ms: f64,
    /// Number of timed iterations.
    pub iters: usize,
}

impl Summary {
    /// Summarises `samples` (milliseconds); `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Summary> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            median_ms: percentile(&sorted, 50.0),
            p10_ms: percentile(&sorted, 10.0),
            p90_ms: percentile(&sorted, 90.0),
            min_ms: sorted[0],
            iters: sorted.len(),
        })
    }
}

/// numpy's default ("linear") percentile of an ascending, non-empty slice.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_numpy_percentiles() {
        // numpy.percentile([5, 1, 4, 2, 3, 10], [50, 10, 90]) == [3.5, 1.5, 7.5]
        let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0, 10.0]).unwrap();
        assert_eq!(
            (s.median_ms, s.p10_ms, s.p90_ms, s.min_ms, s.iters),
            (3.5, 1.5, 7.5, 1.0, 6)
        );
    }

    #[test]
    fn single_sample_and_empty() {
        let s = Summary::of(&[2.0]).unwrap();
        assert_eq!((s.median_ms, s.p10_ms, s.p90_ms), (2.0, 2.0, 2.0));
        assert!(Summary::of(&[]).is_none());
    }
}
