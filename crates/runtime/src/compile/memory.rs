//! Static memory planning: every run-time tensor gets an offset in one arena.
//! Buffers whose lifetimes overlap never share bytes; the rest reuse memory.

/// Every offset and size is a multiple of this, so any element type and any
/// SIMD load is aligned.
pub const ALIGN: usize = 64;

/// Rounds `n` up to a multiple of [`ALIGN`].
pub fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// One arena buffer: `size` bytes alive from time `start` to `end` inclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Bytes the buffer needs (placement rounds it up to [`ALIGN`]).
    pub size: usize,
    /// First schedule step at which the bytes are live. Times count schedule
    /// positions: 0 is before the first step (graph inputs), step `p` of the
    /// order runs at time `p + 1`.
    pub start: usize,
    /// Last schedule step at which the bytes are live, inclusive (`>= start`).
    pub end: usize,
}

impl Buffer {
    fn overlaps_in_time(&self, other: &Buffer) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

/// The largest total size of buffers alive at the same time: no placement
/// can use less memory than this for the given schedule.
pub fn lower_bound(buffers: &[Buffer]) -> usize {
    let mut events: Vec<(usize, i64)> = Vec::with_capacity(buffers.len() * 2);
    for b in buffers {
        events.push((b.start, align_up(b.size) as i64));
        events.push((b.end + 1, -(align_up(b.size) as i64)));
    }
    // Frees at a time happen before allocations at that time.
    events.sort_by_key(|&(t, d)| (t, d));
    let (mut live, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

/// Sum of all buffer sizes: the memory a runtime without reuse would need.
pub fn naive_total(buffers: &[Buffer]) -> usize {
    buffers.iter().map(|b| align_up(b.size)).sum()
}

/// Where a buffer goes among the free gaps of its lifetime.
#[derive(Clone, Copy)]
enum Fit {
    /// The lowest gap that fits.
    First,
    /// The smallest gap that fits (the top of the arena counts as unbounded).
    Best,
}

/// Places buffers in the order given by `order`, each in a free gap among
/// already placed buffers alive at the same time. Returns offsets (indexed
/// like `buffers`) and the arena size.
fn place_in_order(buffers: &[Buffer], order: &[usize], fit: Fit) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut total = 0;
    let mut busy: Vec<(usize, usize)> = Vec::new();
    for &i in order {
        let b = &buffers[i];
        let size = align_up(b.size);
        busy.clear();
        busy.extend(
            placed
                .iter()
                .filter(|&&j| buffers[j].overlaps_in_time(b))
                .map(|&j| (offsets[j], offsets[j] + align_up(buffers[j].size))),
        );
        busy.sort_unstable();
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0;
        for &(lo, hi) in &busy {
            if lo >= cursor + size {
                let gap = lo - cursor;
                match fit {
                    Fit::First => {
                        best = Some((gap, cursor));
                        break;
                    }
                    Fit::Best => {
                        if best.is_none_or(|(g, _)| gap < g) {
                            best = Some((gap, cursor));
                        }
                    }
                }
            }
            cursor = cursor.max(hi);
        }
        let offset = best.map_or(cursor, |(_, o)| o);
        offsets[i] = offset;
        total = total.max(offset + size);
        placed.push(i);
    }
    (offsets, total)
}

/// Plans offsets with several greedy orders (largest first, longest-lived
/// first, earliest first, plus seeded shuffles of ties) and both first- and
/// best-fit, keeping the smallest arena. Stops early at the lower bound.
pub fn place(buffers: &[Buffer]) -> (Vec<usize>, usize) {
    let n = buffers.len();
    let bound = lower_bound(buffers);
    let size = |i: usize| align_up(buffers[i].size);
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let mut by_size: Vec<usize> = (0..n).collect();
    by_size.sort_by_key(|&i| (std::cmp::Reverse(size(i)), buffers[i].start));
    orders.push(by_size.clone());
    let mut by_area: Vec<usize> = (0..n).collect();
    by_area.sort_by_key(|&i| {
        let b = &buffers[i];
        (
            std::cmp::Reverse(size(i) as u128 * (b.end - b.start + 1) as u128),
            b.start,
        )
    });
    orders.push(by_area);
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_by_key(|&i| (buffers[i].start, std::cmp::Reverse(size(i))));
    orders.push(by_start);
    let mut by_life: Vec<usize> = (0..n).collect();
    by_life.sort_by_key(|&i| {
        (
            std::cmp::Reverse(buffers[i].end - buffers[i].start),
            std::cmp::Reverse(size(i)),
        )
    });
    orders.push(by_life);
    // Perturbed size orders: sizes jittered by up to 25%, a few seeds. The
    // budget keeps large graphs (O(n^2) per try) fast to compile.
    let tries = (2_000_000 / (n * n).max(1)).clamp(0, 24);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..tries {
        let mut keyed: Vec<(u64, usize)> = (0..n)
            .map(|i| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let jitter = 1.0 + (seed % 1000) as f64 / 4000.0;
                ((size(i) as f64 * jitter) as u64, i)
            })
            .collect();
        keyed.sort_by_key(|&(k, i)| (std::cmp::Reverse(k), i));
        orders.push(keyed.into_iter().map(|(_, i)| i).collect());
    }
    let mut best: Option<(Vec<usize>, usize)> = None;
    for order in &orders {
        for fit in [Fit::First, Fit::Best] {
            let (offs, total) = place_in_order(buffers, order, fit);
            if best.as_ref().is_none_or(|(_, t)| total < *t) {
                best = Some((offs, total));
            }
            if total <= bound {
                return best.unwrap_or_default();
            }
        }
    }
    best.unwrap_or_default()
}

/// Checks that no two buffers alive at the same time share a byte.
pub fn verify(buffers: &[Buffer], offsets: &[usize], arena: usize) -> Result<(), String> {
    for (i, a) in buffers.iter().enumerate() {
        if !offsets[i].is_multiple_of(ALIGN) || offsets[i] + a.size > arena {
            return Err(format!("buffer {i} misplaced at {}", offsets[i]));
        }
        for (j, b) in buffers.iter().enumerate().skip(i + 1) {
            let disjoint = offsets[i] + a.size <= offsets[j] || offsets[j] + b.size <= offsets[i];
            if a.overlaps_in_time(b) && !disjoint && a.size > 0 && b.size > 0 {
                return Err(format!("buffers {i} and {j} overlap"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(size: usize, start: usize, end: usize) -> Buffer {
        Buffer { size, start, end }
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c: a and c never live together.
        let bufs = [buf(640, 0, 1), buf(128, 1, 2), buf(640, 2, 3)];
        let (offs, total) = place(&bufs);
        verify(&bufs, &offs, total).unwrap();
        assert_eq!(total, 768);
        assert_eq!(lower_bound(&bufs), 768);
        assert_eq!(naive_total(&bufs), 1408);
    }

    #[test]
    fn random_plans_are_valid_and_near_the_bound() {
        let mut seed = 42u64;
        let mut next = |m: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % m
        };
        for _ in 0..50 {
            let bufs: Vec<Buffer> = (0..40)
                .map(|_| {
                    let s = next(30);
                    buf(1 + next(5000), s, s + next(6))
                })
                .collect();
            let (offs, total) = place(&bufs);
            verify(&bufs, &offs, total).unwrap();
            let lb = lower_bound(&bufs);
            assert!(total >= lb);
            assert!(total as f64 <= lb as f64 * 1.6, "{total} vs {lb}");
        }
    }
}
