/// How a kernel may spread work over threads. Single-threaded by default;
/// with more threads, work runs on a dedicated rayon pool. Splitting is by
/// index ranges or disjoint output chunks, so results do not depend on the
/// thread count.
pub struct Parallel {
    pool: Option<rayon::ThreadPool>,
}

impl std::fmt::Debug for Parallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Parallel({} threads)", self.threads())
    }
}

impl Parallel {
    /// Runs everything on the calling thread.
    pub fn single() -> Parallel {
        Parallel { pool: None }
    }

    /// Uses `threads` threads (1 means the calling thread only).
    pub fn new(threads: usize) -> Result<Parallel, String> {
        if threads <= 1 {
            return Ok(Parallel::single());
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("whittle-{i}"))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Parallel { pool: Some(pool) })
    }

    /// Number of threads work may use.
    pub fn threads(&self) -> usize {
        self.pool.as_ref().map_or(1, |p| p.current_num_threads())
    }

    /// Runs `f` on a pool thread (inline when single-threaded). A whole
    /// graph run goes through this once, so that each kernel's parallel
    /// section forks from a pool thread (work stealing between awake
    /// workers) instead of handing work over from an outside thread and
    /// sleeping until it is done, which costs tens of microseconds per node.
    pub fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Calls `f(i)` for every `i` in `0..n`, possibly concurrently.
    pub fn for_each(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        match &self.pool {
            Some(pool) if n > 1 => pool.install(|| {
                use rayon::prelude::*;
                (0..n).into_par_iter().for_each(f)
            }),
            _ => (0..n).for_each(f),
        }
    }

    /// Splits `out` into chunks of `chunk` elements and calls
    /// `f(chunk_index, chunk)` for each, possibly concurrently.
    pub fn for_each_chunk_mut<T: Send>(
        &self,
        out: &mut [T],
        chunk: usize,
        f: &(dyn Fn(usize, &mut [T]) + Sync),
    ) {
        let chunk = chunk.max(1);
        match &self.pool {
            Some(pool) if out.len() > chunk => pool.install(|| {
                use rayon::prelude::*;
                out.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, c)| f(i, c))
            }),
            _ => out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_index_runs_once() {
        for threads in [1, 2, 3] {
            let par = Parallel::new(threads).unwrap();
            let sum = AtomicUsize::new(0);
            par.for_each(100, &|i| {
                sum.fetch_add(i, Ordering::Relaxed);
            });
            assert_eq!(sum.into_inner(), 4950);
            let mut v = vec![0usize; 10];
            par.for_each_chunk_mut(&mut v, 3, &|i, c| c.iter_mut().for_each(|x| *x = i));
            assert_eq!(v, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
        }
    }
}
