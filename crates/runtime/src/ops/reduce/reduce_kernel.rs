//! The Reduce* kernels. Build time merges neighbouring axes that are both
//! reduced or both kept, so any axis set becomes alternating runs; `run`
//! walks the input rows once in memory order, folding each row into one
//! output (reduced innermost run) or combining it elementwise into a row of
//! outputs (kept innermost run). No index tables, no allocation.

use bytemuck::Pod;

use crate::ops::common::shape_util::MAX_RANK;

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    Prod,
    L1,
    L2,
    SumSquare,
    LogSum,
    LogSumExp,
}

impl ReduceOp {
    /// True for reductions that need a floating-point type.
    pub(crate) fn float_only(self) -> bool {
        matches!(
            self,
            ReduceOp::Mean | ReduceOp::L2 | ReduceOp::LogSum | ReduceOp::LogSumExp
        )
    }
}

/// Element types the reductions compute on.
pub(crate) trait Num: Pod + PartialOrd + Send + Sync {
    const ZERO: Self;
    const ONE: Self;
    const LOWEST: Self;
    const HIGHEST: Self;
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn abs(self) -> Self;
    /// max, propagating NaN like numpy.
    fn max_of(self, o: Self) -> Self;
    /// min, propagating NaN like numpy.
    fn min_of(self, o: Self) -> Self;
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
}

macro_rules! float_num {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn max_of(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if o > self {
                    o
                } else {
                    self
                }
            }
            #[inline(always)]
            fn min_of(self, o: Self) -> Self {
                if self.is_nan() || o.is_nan() {
                    <$t>::NAN
                } else if o < self {
                    o
                } else {
                    self
                }
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

macro_rules! int_num {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0;
            const ONE: Self = 1;
            const LOWEST: Self = <$t>::MIN;
            const HIGHEST: Self = <$t>::MAX;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self.wrapping_add(o)
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self.wrapping_mul(o)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                self.wrapping_abs()
            }
            #[inline(always)]
            fn max_of(self, o: Self) -> Self {
                Ord::max(self, o)
            }
            #[inline(always)]
            fn min_of(self, o: Self) -> Self {
                Ord::min(self, o)
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    };
}

float_num!(f32);
float_num!(f64);
int_num!(i32);
int_num!(i64);

/// The merged walk over the input.
#[derive(Clone, Debug)]
pub(crate) struct ReducePlan {
    /// Merged input dims, outermost first.
    dims: Vec<usize>,
    /// Output stride of each merged dim (0 for reduced runs).
    out_strides: Vec<usize>,
    /// True when the innermost merged run is reduced.
    inner_reduced: bool,
    in_len: usize,
    out_len: usize,
    /// Input elements folded into each output.
    count: usize,
}

impl ReducePlan {
    /// A plan for reducing `shape` over the axes flagged in `reduced`.
    pub(crate) fn new(shape: &[usize], reduced: &[bool]) -> Result<ReducePlan, String> {
        let in_len: usize = shape.iter().product();
        let mut dims: Vec<usize> = Vec::new();
        let mut red: Vec<bool> = Vec::new();
        for (&d, &r) in shape.iter().zip(reduced) {
            if d == 1 {
                continue;
            }
            if red.last() == Some(&r) {
                *dims.last_mut().expect("non-empty") *= d;
            } else {
                dims.push(d);
                red.push(r);
            }
        }
        if dims.len() > MAX_RANK {
            return Err(format!("reduction walk of rank {} is too deep", dims.len()));
        }
        let mut out_strides = vec![0; dims.len()];
        let mut s = 1;
        for k in (0..dims.len()).rev() {
            if !red[k] {
                out_strides[k] = s;
                s *= dims[k];
            }
        }
        let count = shape
            .iter()
            .zip(reduced)
            .filter(|(_, &r)| r)
            .map(|(&d, _)| d)
            .product();
        Ok(ReducePlan {
            inner_reduced: red.last().copied().unwrap_or(true),
            dims,
            out_strides,
            in_len,
            out_len: s,
            count,
        })
    }

    /// Calls `row(out_index, input_row)` for every innermost input run.
    #[inline]
    fn walk<T>(&self, x: &[T], mut row: impl FnMut(usize, &[T])) {
        if self.in_len == 0 {
            return;
        }
        let k = self.dims.len();
        if k == 0 {
            return row(0, &x[..1]);
        }
        let inner = self.dims[k - 1];
        let mut idx = [0usize; MAX_RANK];
        let mut o = 0usize;
        for r in x.chunks_exact(inner) {
            row(o, r);
            for d in (0..k - 1).rev() {
                idx[d] += 1;
                o += self.out_strides[d];
                if idx[d] < self.dims[d] {
                    break;
                }
                o -= self.out_strides[d] * self.dims[d];
                idx[d] = 0;
            }
        }
    }

    /// Folds every input element, mapped by `map`, into its output with the
    /// associative `f` (identity `id`).
    #[inline]
    fn fold<T: Num>(
        &self,
        x: &[T],
        out: &mut [T],
        id: T,
        map: impl Fn(T, usize) -> T,
        f: impl Fn(T, T) -> T,
    ) {
        out.fill(id);
        let inner_reduced = self.inner_reduced || self.dims.is_empty();
        self.walk(x, |o, r| {
            if inner_reduced {
                out[o] = f(out[o], fold_lanes(r, id, |v| map(v, o), &f));
            } else {
                for (acc, (j, &v)) in out[o..o + r.len()].iter_mut().zip(r.iter().enumerate()) {
                    *acc = f(*acc, map(v, o + j));
                }
            }
        });
    }

    /// Scratch elements `run` needs (LogSumExp keeps per-output maxima).
    pub(crate) fn scratch_elems(&self, op: ReduceOp) -> usize {
        if op == ReduceOp::LogSumExp {
            self.out_len
        } else {
            0
        }
    }

    /// Computes `out = op(x)`; `scratch` holds at least
    /// [`scratch_elems`](Self::scratch_elems) elements.
    pub(crate) fn run<T: Num>(&self, op: ReduceOp, x: &[T], out: &mut [T], scratch: &mut [T]) {
        let id = |v: T, _| v;
        match op {
            ReduceOp::Sum | ReduceOp::Mean | ReduceOp::LogSum => {
                self.fold(x, out, T::ZERO, id, T::add)
            }
            ReduceOp::Prod => self.fold(x, out, T::ONE, id, T::mul),
            ReduceOp::Max => self.fold(x, out, T::LOWEST, id, T::max_of),
            ReduceOp::Min => self.fold(x, out, T::HIGHEST, id, T::min_of),
            ReduceOp::L1 => self.fold(x, out, T::ZERO, |v: T, _| v.abs(), T::add),
            ReduceOp::L2 | ReduceOp::SumSquare => {
                self.fold(x, out, T::ZERO, |v: T, _| v.mul(v), T::add)
            }
            ReduceOp::LogSumExp => {
                let m = &mut scratch[..self.out_len];
                self.fold(x, m, T::LOWEST, id, T::max_of);
                let m: &[T] = m;
                self.fold(
                    x,
                    out,
                    T::ZERO,
                    |v: T, o| {
                        let mo = m[o].to_f64();
                        if mo.is_infinite() {
                            T::ZERO
                        } else {
                            T::from_f64((v.to_f64() - mo).exp())
                        }
                    },
                    T::add,
                );
                for (y, &mo) in out.iter_mut().zip(m) {
                    let mo = mo.to_f64();
                    // An infinite max is the answer itself (empty → -inf).
                    *y = T::from_f64(if mo.is_infinite() {
                        mo
                    } else {
                        mo + y.to_f64().ln()
                    });
                }
            }
        }
        match op {
            ReduceOp::Mean => {
                let n = self.count as f64;
                out.iter_mut()
                    .for_each(|y| *y = T::from_f64(y.to_f64() / n));
            }
            ReduceOp::L2 => out
                .iter_mut()
                .for_each(|y| *y = T::from_f64(y.to_f64().sqrt())),
            ReduceOp::LogSum => out
                .iter_mut()
                .for_each(|y| *y = T::from_f64(y.to_f64().ln())),
            _ => {}
        }
    }
}

/// Folds a row with eight independent accumulators, so the loop vectorises
/// even for floats (whose addition the compiler may not reassociate).
#[inline(always)]
fn fold_lanes<T: Num>(r: &[T], id: T, map: impl Fn(T) -> T, f: impl Fn(T, T) -> T) -> T {
    let mut acc = [id; 8];
    let chunks = r.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] = f(acc[l], map(c[l]));
        }
    }
    let mut a = tail.iter().fold(id, |a, &v| f(a, map(v)));
    for v in acc {
        a = f(a, v);
    }
    a
}
