//! Classification metrics from model scores.

/// Accumulates top-1/top-5 accuracy and a confusion matrix over samples.
///
/// Ties are broken toward the lower class index, as `numpy.argmax` does, so
/// predictions match onnxruntime + numpy exactly on identical scores; NaN
/// scores never win.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    outputs: usize,
    count: u64,
    top1: u64,
    top5: u64,
    /// Row = true label, column = predicted class, `outputs` x `outputs`.
    confusion: Vec<u64>,
}

/// Whether class `j` ranks above class `l` (strictly greater score, or an
/// equal score at a lower index).
fn ranks_above(scores: &[f32], j: usize, l: usize) -> bool {
    scores[j] > scores[l] || (scores[j] == scores[l] && j < l)
}

/// Index of the best score (first on ties; 0 if every score is NaN).
pub(crate) fn argmax(scores: &[f32]) -> usize {
    let mut best = 0;
    for (j, &s) in scores.iter().enumerate().skip(1) {
        if s > scores[best] || (scores[best].is_nan() && !s.is_nan()) {
            best = j;
        }
    }
    best
}

impl Metrics {
    /// Metrics over a model with `outputs` classes.
    pub fn new(outputs: usize) -> Metrics {
        Metrics {
            outputs,
            count: 0,
            top1: 0,
            top5: 0,
            confusion: vec![0; outputs * outputs],
        }
    }

    /// Adds one sample's scores (one per class) and true label; returns the
    /// predicted class. Scores of the wrong length or labels out of range are
    /// a caller bug: they are checked and counted as misses rather than panic.
    pub fn add(&mut self, scores: &[f32], label: usize) -> usize {
        let pred = argmax(scores);
        self.count += 1;
        if scores.len() != self.outputs || label >= self.outputs {
            return pred;
        }
        self.confusion[label * self.outputs + pred] += 1;
        let nan_label = scores[label].is_nan();
        let rank = (0..self.outputs)
            .filter(|&j| j != label && (nan_label || ranks_above(scores, j, label)))
            .count();
        if rank == 0 {
            self.top1 += 1;
        }
        if rank < 5 {
            self.top5 += 1;
        }
        pred
    }

    /// Number of classes (model outputs).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Samples whose best score was their label.
    pub fn top1_correct(&self) -> u64 {
        self.top1
    }

    /// Fraction of samples whose best score was their label (0 if none).
    pub fn top1(&self) -> f64 {
        self.top1 as f64 / self.count.max(1) as f64
    }

    /// Fraction of samples whose label was among the five best scores.
    pub fn top5(&self) -> f64 {
        self.top5 as f64 / self.count.max(1) as f64
    }

    /// Confusion matrix: `rows[true][predicted]` counts.
    pub fn confusion(&self) -> Vec<Vec<u64>> {
        self.confusion
            .chunks(self.outputs.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// Recall per class (correct / samples of that class; `None` if the
    /// class has no samples).
    pub fn per_class_accuracy(&self) -> Vec<Option<f64>> {
        self.confusion()
            .iter()
            .enumerate()
            .map(|(i, row)| {
                let n: u64 = row.iter().sum();
                (n > 0).then(|| row[i] as f64 / n as f64)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_first_of_ties_and_skips_nan() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0, 0.5]), 1);
        assert_eq!(argmax(&[0.0, f32::NAN, 0.5]), 2);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn top1_top5_and_confusion_by_hand() {
        let mut m = Metrics::new(6);
        // label 0 is best: top-1 and top-5 hit
        assert_eq!(m.add(&[9.0, 1.0, 2.0, 3.0, 4.0, 5.0], 0), 0);
        // label 1 is worst of six: miss both
        assert_eq!(m.add(&[9.0, 0.0, 2.0, 3.0, 4.0, 5.0], 1), 0);
        // label 2 is 5th best: top-5 hit only
        assert_eq!(m.add(&[9.0, 0.0, 1.0, 3.0, 4.0, 5.0], 2), 0);
        // tie at the top between 3 and 4: the lower index wins
        assert_eq!(m.add(&[0.0, 0.0, 0.0, 7.0, 7.0, 0.0], 4), 3);
        assert_eq!(m.count(), 4);
        assert_eq!(m.top1_correct(), 1);
        assert!((m.top1() - 0.25).abs() < 1e-12);
        assert!((m.top5() - 0.75).abs() < 1e-12);
        let c = m.confusion();
        assert_eq!(c[0][0], 1);
        assert_eq!(c[1][0], 1);
        assert_eq!(c[2][0], 1);
        assert_eq!(c[4][3], 1);
        assert_eq!(c.iter().flatten().sum::<u64>(), 4);
        let per = m.per_class_accuracy();
        assert_eq!(per[0], Some(1.0));
        assert_eq!(per[1], Some(0.0));
        assert_eq!(per[5], None);
    }

    #[test]
    fn bad_calls_do_not_panic() {
        let mut m = Metrics::new(3);
        m.add(&[1.0, 2.0], 0);
        m.add(&[1.0, 2.0, 3.0], 7);
        m.add(&[f32::NAN; 3], 1);
        assert_eq!(m.count(), 3);
        assert_eq!(m.top1_correct(), 0);
    }
}
