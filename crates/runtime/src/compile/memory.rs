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
    pub size: usize,
    pub start: usize,
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

/// Places buffers in the order given by `order`, each at the lowest offset
/// that does not collide with an already placed buffer alive at the same
/// time. Returns offsets (indexed like `buffers`) and the arena size.
fn place_in_order(buffers: &[Buffer], order: &[usize]) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut total = 0;
    for &i in order {
        let b = &buffers[i];
        let size = align_up(b.size);
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].overlaps_in_time(b))
            .map(|&j| (offsets[j], offsets[j] + align_up(buffers[j].size)))
            .collect();
        busy.sort_unstable();
        let mut candidate = 0;
        for (lo, hi) in busy {
            if lo >= candidate + size {
                break;
            }
            candidate = candidate.max(hi);
        }
        offsets[i] = candidate;
        total = total.max(candidate + size);
        placed.push(i);
    }
    (offsets, total)
}

/// Plans offsets with several greedy orders (largest first, longest-lived
/// first, earliest first) and keeps the smallest arena.
pub fn place(buffers: &[Buffer]) -> (Vec<usize>, usize) {
    let n = buffers.len();
    let mut by_size: Vec<usize> = (0..n).collect();
    by_size.sort_by_key(|&i| (std::cmp::Reverse(align_up(buffers[i].size)), buffers[i].start));
    let mut by_area: Vec<usize> = (0..n).collect();
    by_area.sort_by_key(|&i| {
        let b = &buffers[i];
        (std::cmp::Reverse(align_up(b.size) as u128 * (b.end - b.start + 1) as u128), b.start)
    });
    let mut by_start: Vec<usize> = (0..n).collect();
    by_start.sort_by_key(|&i| (buffers[i].start, std::cmp::Reverse(buffers[i].size)));
    [by_size, by_area, by_start]
        .iter()
        .map(|order| place_in_order(buffers, order))
        .min_by_key(|(_, total)| *total)
        .unwrap_or_default()
}

/// Checks that no two buffers alive at the same time share a byte.
pub fn verify(buffers: &[Buffer], offsets: &[usize], arena: usize) -> Result<(), String> {
    for (i, a) in buffers.iter().enumerate() {
        if offsets[i] % ALIGN != 0 || offsets[i] + a.size > arena {
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
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
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
