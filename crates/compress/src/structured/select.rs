//! Which classes go: a ratio per group, or the globally least important
//! ones until a MAC target is met.
//!
//! Rounding: a group of at least 32 channels whose count is a multiple of
//! 8 keeps a multiple of 8 channels (SIMD kernels work on 8/16 lanes), and
//! under a MAC target loses 8 channels at a time. Every group keeps at
//! least one channel.

use whittle_ir::Graph;

use super::macs::MacModel;
use super::trace::{Group, Trace};
use super::{ChannelPruneOptions, GroupReport};
use crate::CompressError;

/// Channels removed at a time (and kept in multiples of) for `n` channels.
fn unit(n: usize) -> usize {
    if n >= 32 && n.is_multiple_of(8) {
        8
    } else {
        1
    }
}

/// Channels kept of `n` for ratio `r`, rounded as the module doc says.
pub(crate) fn keep_count(n: usize, r: f32) -> usize {
    let raw = n
        .saturating_sub((f64::from(r) * n as f64).round() as usize)
        .max(1);
    let u = unit(n);
    // Nearest multiple of the unit, at least one unit.
    let rounded = if u > 1 {
        ((raw + u / 2) / u).max(1) * u
    } else {
        raw
    };
    rounded.clamp(1, n.max(1))
}

/// Free (unpinned) classes of a group, least important first.
fn free_sorted(tr: &Trace, g: &Group, scores: &[f64]) -> Vec<usize> {
    let mut free: Vec<usize> = g
        .classes
        .iter()
        .copied()
        .filter(|&c| tr.pinned(c).is_none())
        .collect();
    free.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    free
}

/// Returns, per element index, whether the class rooted there is kept.
pub(crate) fn select(
    g: &Graph,
    tr: &Trace,
    scores: &[f64],
    macs: &MacModel,
    opts: &ChannelPruneOptions,
    notes: &mut Vec<String>,
) -> Result<Vec<bool>, CompressError> {
    let mut kept = vec![true; tr.len()];
    match opts.target_macs {
        None => {
            for grp in &tr.groups {
                let r = grp
                    .layers
                    .iter()
                    .filter_map(|&l| opts.per_layer.get(&g.nodes[l].name))
                    .fold(None, |acc: Option<f32>, &r| {
                        Some(acc.map_or(r, |a| a.max(r)))
                    })
                    .unwrap_or(opts.ratio);
                let n = grp.classes.len();
                let free = free_sorted(tr, grp, scores);
                let remove = (n - keep_count(n, r)).min(free.len());
                for &c in &free[..remove] {
                    kept[c] = false;
                }
            }
        }
        Some(target) => global(tr, scores, macs, target, &mut kept, notes),
    }
    Ok(kept)
}

/// Greedy global pruning to a MAC target: repeatedly drops the unit (1 or
/// 8 channels) with the lowest mean importance, importances normalised by
/// the largest in their group so groups of different scale compare.
fn global(
    tr: &Trace,
    scores: &[f64],
    macs: &MacModel,
    target: f64,
    kept: &mut [bool],
    notes: &mut Vec<String>,
) {
    struct Cursor {
        free: Vec<usize>,
        norm: f64,
        next: usize,
        unit: usize,
        left: usize,
    }
    let mut cursors: Vec<Cursor> = tr
        .groups
        .iter()
        .map(|grp| {
            let free = free_sorted(tr, grp, scores);
            let max = free.iter().map(|&c| scores[c]).fold(0.0, f64::max);
            Cursor {
                norm: if max > 0.0 { max } else { 1.0 },
                next: 0,
                unit: unit(grp.classes.len()),
                left: grp.classes.len(),
                free,
            }
        })
        .collect();
    let before = macs.total(&|_| true) as f64;
    let goal = before * target;
    loop {
        let now = macs.total(&|e| kept[tr.class(e)]) as f64;
        if now <= goal {
            return;
        }
        let best = cursors
            .iter()
            .enumerate()
            .filter(|(_, c)| c.next + c.unit <= c.free.len() && c.left >= 2 * c.unit.max(1))
            .map(|(i, c)| {
                let s: f64 = c.free[c.next..c.next + c.unit]
                    .iter()
                    .map(|&k| scores[k] / c.norm)
                    .sum();
                (i, s / c.unit as f64)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        let Some((i, _)) = best else {
            notes.push(format!(
                "MAC target {target} not reached: {:.3} of the MACs remain with every prunable channel removed",
                now / before.max(1.0)
            ));
            return;
        };
        let c = &mut cursors[i];
        for &k in &c.free[c.next..c.next + c.unit] {
            kept[k] = false;
        }
        c.next += c.unit;
        c.left -= c.unit;
    }
}

/// One report per group that has a producing layer.
pub(crate) fn reports(g: &Graph, tr: &Trace, kept: &[bool]) -> Vec<GroupReport> {
    tr.groups
        .iter()
        .filter(|grp| !grp.layers.is_empty() && !grp.classes.is_empty())
        .map(|grp| {
            let pinned: Vec<usize> = grp
                .classes
                .iter()
                .copied()
                .filter(|&c| tr.pinned(c).is_some())
                .collect();
            let reason = pinned.first().and_then(|&c| tr.pinned(c)).map(|why| {
                format!(
                    "{} of {} channels pinned: {why}",
                    pinned.len(),
                    grp.classes.len()
                )
            });
            GroupReport {
                layers: grp
                    .layers
                    .iter()
                    .map(|&l| g.nodes[l].name.clone())
                    .collect(),
                channels_before: grp.classes.len(),
                channels_after: grp.classes.iter().filter(|&&c| kept[c]).count(),
                pinned: reason,
            }
        })
        .collect()
}
