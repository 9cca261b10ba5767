//! Turning scores into masks: the lowest-scoring fraction of a pool
//! (a layer, an output row, or every layer at once), or the lowest M - N
//! of every group of M along the input dimension.

use std::cmp::Ordering;

use super::layers::Layout;

/// One layer's scores and its own target, if it has one.
pub(crate) struct Scored<'a> {
    pub layout: &'a Layout,
    /// One score per weight element; lower is pruned first.
    pub scores: Vec<f64>,
    /// Per-layer sparsity (`--layer`); `None` takes the default target.
    pub sparsity: Option<f32>,
}

/// How unstructured pools are formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pools {
    /// One pool per layer.
    Layer,
    /// One pool per output row of each layer (Wanda's comparison group).
    Row,
    /// Layers without their own target share one pool.
    Global,
}

fn by_score(scores: &[f64]) -> impl Fn(&usize, &usize) -> Ordering + '_ {
    move |&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b))
}

fn count(sparsity: f32, len: usize) -> usize {
    ((f64::from(sparsity) * len as f64).round() as usize).min(len)
}

/// Marks in `prune` the `count` lowest of `idx` (by `key`).
fn lowest<T: Copy>(
    mut idx: Vec<T>,
    n: usize,
    cmp: impl Fn(&T, &T) -> Ordering,
    mut mark: impl FnMut(T),
) {
    if n == 0 || idx.is_empty() {
        return;
    }
    if n < idx.len() {
        idx.select_nth_unstable_by(n - 1, &cmp);
    }
    idx.into_iter().take(n).for_each(&mut mark);
}

/// Per layer, `true` for every element to zero.
pub(crate) fn unstructured(layers: &[Scored<'_>], pools: Pools, default: f32) -> Vec<Vec<bool>> {
    let mut masks: Vec<Vec<bool>> = layers.iter().map(|l| vec![false; l.scores.len()]).collect();
    let mut global: Vec<(usize, usize)> = Vec::new();
    for (li, l) in layers.iter().enumerate() {
        let s = l.sparsity.unwrap_or(default);
        let mask = &mut masks[li];
        match (pools, l.sparsity) {
            (Pools::Global, None) => global.extend((0..l.scores.len()).map(|i| (li, i))),
            (Pools::Row, _) => {
                let lay = l.layout;
                for row in 0..lay.rows {
                    let idx: Vec<usize> = (0..lay.k)
                        .flat_map(|k| (0..lay.taps).map(move |t| lay.index(row, k, t)))
                        .collect();
                    let n = count(s, idx.len());
                    lowest(idx, n, by_score(&l.scores), |i| mask[i] = true);
                }
            }
            _ => {
                let n = count(s, l.scores.len());
                lowest((0..l.scores.len()).collect(), n, by_score(&l.scores), |i| {
                    mask[i] = true
                });
            }
        }
    }
    let n = count(default, global.len());
    lowest(
        global,
        n,
        |&(la, a), &(lb, b)| {
            layers[la].scores[a]
                .total_cmp(&layers[lb].scores[b])
                .then((la, a).cmp(&(lb, b)))
        },
        |(l, i)| masks[l][i] = true,
    );
    masks
}

/// N:M: in every group of `m` consecutive input positions (same output row,
/// same kernel tap) keep the `n` highest scores. `layout.k` must be a
/// multiple of `m`.
pub(crate) fn n_of_m(layout: &Layout, scores: &[f64], n: usize, m: usize) -> Vec<bool> {
    let mut mask = vec![false; scores.len()];
    for row in 0..layout.rows {
        for tap in 0..layout.taps {
            for k0 in (0..layout.k).step_by(m) {
                let idx: Vec<usize> = (k0..k0 + m).map(|k| layout.index(row, k, tap)).collect();
                lowest(idx, m - n, by_score(scores), |i| mask[i] = true);
            }
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::super::layers::{ActAxis, Kind};
    use super::*;

    fn rowk(rows: usize, k: usize) -> Layout {
        Layout {
            kind: Kind::RowK,
            rows,
            k,
            taps: 1,
            act_axis: ActAxis::One,
        }
    }

    #[test]
    fn layer_row_and_global_pools() {
        let lay = rowk(2, 4);
        // Row 0 holds the four smallest scores.
        let scores = vec![1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        let one = |s| Scored {
            layout: &lay,
            scores: scores.clone(),
            sparsity: s,
        };
        let m = unstructured(&[one(None)], Pools::Layer, 0.5);
        assert_eq!(m[0], [true, true, true, true, false, false, false, false]);
        let m = unstructured(&[one(None)], Pools::Row, 0.5);
        assert_eq!(m[0], [true, true, false, false, true, true, false, false]);
        // Global: layer b's scores are all smaller, so it goes first;
        // layer a has its own 25% target.
        let small = Scored {
            layout: &lay,
            scores: scores.iter().map(|s| s / 100.0).collect(),
            sparsity: None,
        };
        let m = unstructured(&[one(Some(0.25)), small, one(None)], Pools::Global, 0.5);
        assert_eq!(m[0].iter().filter(|&&p| p).count(), 2);
        assert!(m[1].iter().all(|&p| p));
        assert!(m[2].iter().all(|&p| !p));
    }

    #[test]
    fn two_of_four_per_tap() {
        // Conv [1 row, k 4, 2 taps]: index (k * 2 + tap).
        let lay = Layout {
            kind: Kind::Conv { per_group: 1 },
            rows: 1,
            k: 4,
            taps: 2,
            act_axis: ActAxis::One,
        };
        // tap 0 scores by k: 5, 1, 7, 3 -> keep k 0, 2; tap 1: 0, 9, 8, 1 -> keep k 1, 2.
        let scores = vec![5.0, 0.0, 1.0, 9.0, 7.0, 8.0, 3.0, 1.0];
        let m = n_of_m(&lay, &scores, 2, 4);
        assert_eq!(m, [false, true, true, false, false, false, true, true]);
    }
}
