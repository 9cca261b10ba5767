//! Numpy-style broadcasting, planned at build time so that `run` does no
//! per-element index arithmetic.
//!
//! A [`Plan`] maps N inputs onto one output. Output dims of size 1 are
//! dropped and adjacent dims are merged wherever every input walks them
//! contiguously (or not at all), so the common cases collapse to one or two
//! dims: same shape becomes one contiguous run, `[N,C,H,W] + [1,C,1,1]`
//! becomes `[N*C]` rows of `H*W` against a scalar, a row vector becomes rows
//! against one shared slice. What is left is an innermost *row* in which
//! each input is either a contiguous slice or a single repeated value
//! ([`Src`]); only the start of each row needs index math.

use crate::Parallel;

/// Output elements below which a kernel runs on the calling thread only.
const PAR_MIN: usize = 1 << 15;

/// The multidirectional (numpy) broadcast of `shapes`, or `None` when two
/// dims differ and neither is 1.
pub(crate) fn broadcast_shapes(shapes: &[&[usize]]) -> Option<Vec<usize>> {
    let rank = shapes.iter().map(|s| s.len()).max().unwrap_or(0);
    let mut out = vec![1usize; rank];
    for s in shapes {
        let pad = rank - s.len();
        for (o, &d) in out[pad..].iter_mut().zip(s.iter()) {
            if *o == 1 {
                *o = d;
            } else if d != 1 && d != *o {
                return None;
            }
        }
    }
    Some(out)
}

/// Formats shapes for error messages: `[2, 3] and [4]`.
pub(crate) fn fmt_shapes(shapes: &[&[usize]]) -> String {
    shapes
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(" and ")
}

/// The shape of `b` under the pre-opset-7 `broadcast=1, axis=k` rule: `b`
/// matches a contiguous run of `a`'s dims starting at `axis` (default:
/// aligned to the end), so it is padded with 1s to `a`'s rank.
pub(crate) fn legacy_broadcast_shape(
    a: &[usize],
    b: &[usize],
    axis: Option<i64>,
) -> Result<Vec<usize>, String> {
    let ra = a.len() as i64;
    let rb = b.len() as i64;
    let axis = match axis {
        None => ra - rb,
        Some(k) if k < 0 => k + ra,
        Some(k) => k,
    };
    if rb > ra || axis < 0 || axis + rb > ra {
        return Err(format!(
            "legacy broadcast of {b:?} into {a:?} at axis {axis} does not fit"
        ));
    }
    let axis = axis as usize;
    let mut shape = vec![1usize; a.len()];
    for (i, &d) in b.iter().enumerate() {
        if d != 1 && d != a[axis + i] {
            return Err(format!(
                "legacy broadcast: dim {i} of {b:?} does not match {a:?} at axis {axis}"
            ));
        }
        shape[axis + i] = d;
    }
    Ok(shape)
}

/// One input of a row: a contiguous slice, or one value repeated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Src<'a, T> {
    /// Element `i` of the row is `s[i]`.
    Slice(&'a [T]),
    /// Every element of the row is this value.
    Scalar(T),
}

impl<T: Copy> Src<'_, T> {
    /// Element `i` (for loops that are not worth specialising).
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> T {
        match self {
            Src::Slice(s) => s[i],
            Src::Scalar(v) => *v,
        }
    }
}

/// How N inputs map onto one output; see the module doc.
#[derive(Clone, Debug)]
pub(crate) struct Plan<const N: usize> {
    /// Output elements.
    numel: usize,
    /// Elements per innermost row.
    inner: usize,
    /// Per input: 1 when it walks the row contiguously, 0 when it repeats
    /// one value along it.
    inner_step: [usize; N],
    /// Outer dims, innermost first, with each input's element stride.
    outer: Vec<(usize, [usize; N])>,
    /// Elements each input must have.
    input_len: [usize; N],
}

impl<const N: usize> Plan<N> {
    /// Plans broadcasting `inputs` to `out`. Every input must be
    /// broadcastable to `out` (checked by the caller with
    /// [`broadcast_shapes`]); `Err` names the first that is not.
    pub(crate) fn new(inputs: [&[usize]; N], out: &[usize]) -> Result<Plan<N>, String> {
        let rank = out.len();
        // Per-dim strides of each input aligned to the output's rank, 0
        // where the input repeats along the dim.
        let mut strides = vec![[0usize; N]; rank];
        let mut input_len = [0usize; N];
        for (k, shape) in inputs.iter().enumerate() {
            if shape.len() > rank {
                return Err(format!("{shape:?} has a higher rank than {out:?}"));
            }
            let pad = rank - shape.len();
            let mut stride = 1usize;
            for d in (0..rank).rev() {
                let dim = if d >= pad { shape[d - pad] } else { 1 };
                if dim != out[d] && dim != 1 {
                    return Err(format!("{shape:?} does not broadcast to {out:?}"));
                }
                strides[d][k] = if dim == 1 { 0 } else { stride };
                stride *= dim;
            }
            input_len[k] = stride;
        }
        let numel = out.iter().product();
        // Drop size-1 output dims, then merge a dim into the one inside it
        // when every input steps across the boundary without a jump.
        let mut dims: Vec<(usize, [usize; N])> = Vec::new(); // innermost first
        for d in (0..rank).rev() {
            if out[d] == 1 {
                continue;
            }
            if let Some((inner_dim, inner_strides)) = dims.last_mut() {
                let contiguous = (0..N).all(|k| strides[d][k] == inner_strides[k] * *inner_dim);
                if contiguous {
                    *inner_dim *= out[d];
                    continue;
                }
            }
            dims.push((out[d], strides[d]));
        }
        let (inner, inner_step) = if dims.is_empty() {
            (1, [0; N])
        } else {
            dims.remove(0)
        };
        debug_assert!(inner_step.iter().all(|&s| s <= 1));
        Ok(Plan {
            numel,
            inner,
            inner_step,
            outer: dims,
            input_len,
        })
    }

    /// Output elements.
    pub(crate) fn numel(&self) -> usize {
        self.numel
    }

    /// Elements input `k` must have.
    pub(crate) fn input_len(&self, k: usize) -> usize {
        self.input_len[k]
    }

    /// True when input `k` has the output's layout (every step is 1), so it
    /// can share the output's buffer.
    pub(crate) fn is_identity(&self, k: usize) -> bool {
        self.input_len[k] == self.numel
    }

    /// The broadcast pattern, for kernel names: `same` (no broadcasting),
    /// `flat` (one run, some inputs repeated) or `bcast`.
    pub(crate) fn pattern(&self) -> &'static str {
        if (0..N).all(|k| self.is_identity(k)) {
            "same"
        } else if self.outer.is_empty() {
            "flat"
        } else {
            "bcast"
        }
    }

    /// Start offsets of row `row` in every input.
    #[inline]
    fn row_start(&self, row: usize) -> [usize; N] {
        let mut offs = [0usize; N];
        let mut r = row;
        for (dim, strides) in &self.outer {
            let i = r % dim;
            r /= dim;
            for (o, s) in offs.iter_mut().zip(strides) {
                *o += i * s;
            }
        }
        offs
    }

    /// Input `k` over the `len` row elements starting at offset `off`.
    #[inline(always)]
    pub(crate) fn src<'a, T: Copy>(
        &self,
        k: usize,
        data: &'a [T],
        off: usize,
        len: usize,
    ) -> Src<'a, T> {
        if self.inner_step[k] == 1 {
            Src::Slice(&data[off..off + len])
        } else {
            Src::Scalar(data[off])
        }
    }

    /// Splits `out` into row segments and calls `body(offsets, segment)`
    /// for each, where `offsets[k]` is input `k`'s offset for the segment's
    /// first element (use with [`Plan::src`]). Large outputs are split over
    /// `par`'s threads.
    pub(crate) fn run<O: Send>(
        &self,
        out: &mut [O],
        par: &Parallel,
        body: &(dyn Fn([usize; N], &mut [O]) + Sync),
    ) {
        debug_assert_eq!(out.len(), self.numel);
        if self.numel == 0 {
            return;
        }
        let threads = par.threads();
        let chunk = if threads <= 1 || self.numel < PAR_MIN {
            self.numel
        } else {
            let target = self.numel.div_ceil(threads * 4).max(PAR_MIN / 4);
            if self.inner <= target {
                self.inner * (target / self.inner)
            } else {
                target
            }
        };
        let segments = |ci: usize, chunk_out: &mut [O]| {
            let start = ci * chunk;
            let mut col = start % self.inner;
            let mut rows = Rows::new(self, start / self.inner);
            let mut done = 0;
            while done < chunk_out.len() {
                let len = (self.inner - col).min(chunk_out.len() - done);
                let mut offs = rows.offs;
                for (o, step) in offs.iter_mut().zip(self.inner_step) {
                    *o += col * step;
                }
                body(offs, &mut chunk_out[done..done + len]);
                done += len;
                col = 0;
                rows.advance(self);
            }
        };
        if chunk >= self.numel {
            segments(0, out);
        } else {
            par.for_each_chunk_mut(out, chunk, &segments);
        }
    }
}

/// Outer ranks up to this walk rows with an odometer; beyond it (rare after
/// merging dims) each row start is recomputed by division.
const ODOMETER_RANK: usize = 8;

/// A walk over consecutive rows that keeps each outer coordinate, so the
/// next row's offsets cost additions instead of a division per dim.
struct Rows<const N: usize> {
    row: usize,
    coords: [usize; ODOMETER_RANK],
    offs: [usize; N],
}

impl<const N: usize> Rows<N> {
    fn new(plan: &Plan<N>, row: usize) -> Rows<N> {
        let mut coords = [0usize; ODOMETER_RANK];
        let mut r = row;
        for (c, (dim, _)) in coords.iter_mut().zip(&plan.outer) {
            *c = r % dim;
            r /= dim;
        }
        Rows {
            row,
            coords,
            offs: plan.row_start(row),
        }
    }

    #[inline]
    fn advance(&mut self, plan: &Plan<N>) {
        self.row += 1;
        if plan.outer.len() > ODOMETER_RANK {
            self.offs = plan.row_start(self.row);
            return;
        }
        for (c, (dim, strides)) in self.coords.iter_mut().zip(&plan.outer) {
            *c += 1;
            if *c < *dim {
                for (o, s) in self.offs.iter_mut().zip(strides) {
                    *o += s;
                }
                return;
            }
            *c = 0;
            for (o, s) in self.offs.iter_mut().zip(strides) {
                *o -= (dim - 1) * s;
            }
        }
    }
}

#[cfg(test)]
#[path = "broadcast_tests.rs"]
mod tests;
