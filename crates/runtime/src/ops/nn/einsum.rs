//! Einsum: one general contraction loop planned at build time. The
//! equation is parsed into labels (letters, plus one label per broadcast
//! `...` dim); each operand gets a stride per label (summed when a label
//! repeats, which walks a diagonal; zero when absent or broadcast). `run`
//! walks the output labels in output order and, for each output element,
//! the summed labels, multiplying the operands. Matmul, batched matmul,
//! transposes, traces, reductions and outer products are all this loop.
//!
//! Accumulation is in the element type (integers wrap), like onnxruntime.

use whittle_ir::DType;

use crate::ops::common::elem::{input, output, with_type, Num, WIDE};
use crate::ops::common::shape_util::{numel, strides, MAX_RANK};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, Registry, RunCtx, RunError, View, ViewMut};

/// Registers Einsum.
pub fn register(r: &mut Registry) {
    r.add("Einsum", einsum);
}

/// Most operands one node may have (offsets live on the stack).
const MAX_OPERANDS: usize = 8;
/// Most distinct labels (letters and broadcast dims).
const MAX_LABELS: usize = 2 * MAX_RANK;

/// One term of the equation: letters, with the position of `...` if any.
struct Term {
    letters: Vec<u8>,
    /// Index in `letters` where the ellipsis dims go.
    ellipsis: Option<usize>,
}

fn parse_term(ctx: &BuildCtx<'_>, s: &str) -> Result<Term, OpError> {
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() {
            letters.push(b[i]);
            i += 1;
        } else if b[i..].starts_with(b"...") && ellipsis.is_none() {
            ellipsis = Some(letters.len());
            i += 3;
        } else {
            return Err(ctx.err(format!("cannot parse einsum term '{s}'")));
        }
    }
    Ok(Term { letters, ellipsis })
}

/// The label id of a letter when there are `e` broadcast dims.
fn letter_id(c: u8, e: usize) -> usize {
    e + if c.is_ascii_lowercase() {
        (c - b'a') as usize
    } else {
        26 + (c - b'A') as usize
    }
}

/// The labels of one term as ids: ellipsis dims are `0..e` (the last
/// `count` of them), letters are `e + letter index`.
fn term_ids(t: &Term, e: usize, count: usize) -> Vec<usize> {
    let mut ids: Vec<usize> = t.letters.iter().map(|&c| letter_id(c, e)).collect();
    if let Some(at) = t.ellipsis {
        let ell: Vec<usize> = (e - count..e).collect();
        ids.splice(at..at, ell);
    }
    ids
}

struct Einsum {
    dtype: DType,
    /// Sizes of the loop labels: output labels first, then summed ones.
    sizes: Vec<usize>,
    n_out: usize,
    /// `strides[op][label]`, in elements.
    strides: Vec<Vec<usize>>,
    lens: Vec<usize>,
    out_len: usize,
}

impl Einsum {
    /// Steps the odometer over labels `lo..hi`, keeping offsets in sync.
    #[inline(always)]
    fn advance(&self, pos: &mut [usize], offs: &mut [usize], lo: usize, hi: usize) {
        for l in (lo..hi).rev() {
            pos[l] += 1;
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o += s[l];
            }
            if pos[l] < self.sizes[l] {
                return;
            }
            for (o, s) in offs.iter_mut().zip(&self.strides) {
                *o -= s[l] * self.sizes[l];
            }
            pos[l] = 0;
        }
    }

    /// Sums the products along summed label `l` (size `m`) from `offs`.
    #[inline(always)]
    fn dot<T: Num>(&self, xs: &[&[T]], offs: &[usize], l: usize, m: usize, mut acc: T) -> T {
        match (xs, offs) {
            ([a], [oa]) => {
                let sa = self.strides[0][l];
                for j in 0..m {
                    acc = acc.add(a[oa + j * sa]);
                }
            }
            ([a, b], [oa, ob]) => {
                let (sa, sb) = (self.strides[0][l], self.strides[1][l]);
                for j in 0..m {
                    acc = acc.add(a[oa + j * sa].mul(b[ob + j * sb]));
                }
            }
            _ => {
                for j in 0..m {
                    let mut p = xs[0][offs[0] + j * self.strides[0][l]];
                    for (i, x) in xs.iter().enumerate().skip(1) {
                        p = p.mul(x[offs[i] + j * self.strides[i][l]]);
                    }
                    acc = acc.add(p);
                }
            }
        }
        acc
    }

    fn run_typed<T: Num>(&self, xs: &[&[T]], out: &mut [T]) {
        let n_l = self.sizes.len();
        let mut pos = [0usize; MAX_LABELS];
        let mut offs_buf = [0usize; MAX_OPERANDS];
        let offs = &mut offs_buf[..xs.len()];
        if n_l == self.n_out {
            // Nothing summed: one product per output.
            for o in out.iter_mut() {
                let mut p = xs[0][offs[0]];
                for (x, &off) in xs.iter().zip(offs.iter()).skip(1) {
                    p = p.mul(x[off]);
                }
                *o = p;
                self.advance(&mut pos, offs, 0, self.n_out);
            }
            return;
        }
        // The innermost summed label runs as a strided dot product; the
        // other summed labels step an odometer around it.
        let last = n_l - 1;
        let m = self.sizes[last];
        let rest: usize = self.sizes[self.n_out..last].iter().product();
        for o in out.iter_mut() {
            let mut acc = T::ZERO;
            for _ in 0..rest {
                acc = self.dot(xs, offs, last, m, acc);
                self.advance(&mut pos, offs, self.n_out, last);
            }
            *o = acc;
            self.advance(&mut pos, offs, 0, self.n_out);
        }
    }
}

impl Kernel for Einsum {
    fn name(&self) -> String {
        format!("einsum.{}", self.dtype)
    }

    fn macs(&self) -> u64 {
        let loops: usize = self.sizes.iter().product();
        (loops * self.lens.len().saturating_sub(1).max(1)) as u64
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        with_type!(self.dtype, [F32, F64, F16, BF16, I32, I64, U32, U64], T => {
            let mut xs: [&[T]; MAX_OPERANDS] = [&[]; MAX_OPERANDS];
            for (i, v) in inputs.iter().enumerate().take(self.lens.len()) {
                xs[i] = input::<T>(v)?;
                if xs[i].len() != self.lens[i] {
                    return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
                }
            }
            let out = output::<T>(&mut outputs[0])?;
            if out.len() != self.out_len {
                return Err(RunError::Unsupported("buffer size differs from the compiled shape"));
            }
            if self.lens.contains(&0) {
                out.fill(T::ZERO);
                return Ok(());
            }
            self.run_typed(&xs[..self.lens.len()], out);
            Ok(())
        }, _ => Err(RunError::Unsupported("Einsum dtype")))
    }
}

fn einsum(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let n = ctx.num_inputs();
    if n == 0 || n > MAX_OPERANDS {
        return Err(ctx.err(format!(
            "Einsum takes 1 to {MAX_OPERANDS} inputs, found {n}"
        )));
    }
    let dtype = ctx.expect_dtype(0, WIDE)?;
    let mut shapes = Vec::with_capacity(n);
    for i in 0..n {
        let f = ctx.fact(i)?;
        if f.dtype != dtype {
            return Err(ctx.err(format!(
                "input {i} has dtype {}, input 0 has {dtype}",
                f.dtype
            )));
        }
        shapes.push(f.shape.clone());
    }
    let eq: String = ctx
        .node
        .attr_string("equation", "")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    if eq.is_empty() {
        return Err(ctx.err("attribute 'equation' is required"));
    }
    let (lhs, rhs) = match eq.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (eq.as_str(), None),
    };
    let terms: Vec<Term> = lhs
        .split(',')
        .map(|t| parse_term(ctx, t))
        .collect::<Result<_, _>>()?;
    if terms.len() != n {
        return Err(ctx.err(format!(
            "equation '{eq}' has {} operands, the node {n} inputs",
            terms.len()
        )));
    }
    // Broadcast dims per operand, and their common count.
    let mut ell = Vec::with_capacity(n);
    for (i, (t, s)) in terms.iter().zip(&shapes).enumerate() {
        let extra = s
            .len()
            .checked_sub(t.letters.len())
            .filter(|&e| e == 0 || t.ellipsis.is_some());
        match extra {
            Some(e) => ell.push(e),
            None => {
                return Err(ctx.err(format!(
                    "operand {i} has rank {} but its term names {} dims",
                    s.len(),
                    t.letters.len()
                )))
            }
        }
    }
    let e = ell.iter().copied().max().unwrap_or(0);
    if e > MAX_RANK {
        return Err(ctx.err("too many broadcast dims"));
    }
    let n_ids = e + 52;
    let mut size: Vec<Option<usize>> = vec![None; n_ids];
    let mut count = vec![0usize; n_ids];
    let ids: Vec<Vec<usize>> = terms
        .iter()
        .zip(&ell)
        .map(|(t, &k)| term_ids(t, e, k))
        .collect();
    for (i, (id_list, s)) in ids.iter().zip(&shapes).enumerate() {
        for (&id, &d) in id_list.iter().zip(s) {
            count[id] += 1;
            size[id] = match size[id] {
                None => Some(d),
                Some(old) if old == d => Some(d),
                // Broadcast dims stretch from 1.
                Some(1) if id < e => Some(d),
                Some(old) if id < e && d == 1 => Some(old),
                Some(old) => {
                    return Err(ctx.err(format!(
                        "operand {i}: a label has size {d} here and {old} elsewhere"
                    )))
                }
            };
        }
    }
    // Output labels: explicit, or broadcast dims then letters used once,
    // in alphabetical (ASCII) order, as numpy does.
    let out_ids: Vec<usize> = match rhs {
        Some(r) => {
            let t = parse_term(ctx, r)?;
            if e > 0 && t.ellipsis.is_none() {
                return Err(ctx.err(format!(
                    "inputs have '...' dims but the output '{r}' has no '...' (as numpy and onnxruntime require)"
                )));
            }
            let ids = term_ids(&t, e, if t.ellipsis.is_some() { e } else { 0 });
            for (k, &id) in ids.iter().enumerate() {
                if size[id].is_none() && id >= e {
                    return Err(ctx.err(format!("output label in '{r}' is not in any input")));
                }
                if ids[..k].contains(&id) {
                    return Err(ctx.err(format!("output '{r}' repeats a label")));
                }
            }
            ids
        }
        None => {
            let mut ids: Vec<usize> = (0..e).collect();
            let mut letters: Vec<u8> = terms.iter().flat_map(|t| t.letters.clone()).collect();
            letters.sort_unstable();
            letters.dedup();
            ids.extend(
                letters
                    .into_iter()
                    .map(|c| letter_id(c, e))
                    .filter(|&id| count[id] == 1),
            );
            ids
        }
    };
    let mut order = out_ids.clone();
    order.extend((0..n_ids).filter(|id| size[*id].is_some() && !out_ids.contains(id)));
    if order.len() > MAX_LABELS {
        return Err(ctx.err(format!("more than {MAX_LABELS} labels")));
    }
    let sizes: Vec<usize> = order.iter().map(|&id| size[id].unwrap_or(1)).collect();
    let mut op_strides = Vec::with_capacity(n);
    for (id_list, s) in ids.iter().zip(&shapes) {
        let st = strides(s);
        let row: Vec<usize> = order
            .iter()
            .map(|&l| {
                id_list
                    .iter()
                    .zip(s.iter().zip(&st))
                    .filter(|(&id, (&d, _))| id == l && !(d == 1 && size[l] != Some(1)))
                    .map(|(_, (_, &stride))| stride)
                    .sum()
            })
            .collect();
        op_strides.push(row);
    }
    let out_shape: Vec<usize> = sizes[..out_ids.len()].to_vec();
    let out_len = numel(ctx, &out_shape)?;
    numel(ctx, &sizes)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out_shape)],
        kernel: Box::new(Einsum {
            dtype,
            n_out: out_ids.len(),
            sizes,
            strides: op_strides,
            lens: shapes.iter().map(|s| s.iter().product()).collect(),
            out_len,
        }),
    })
}

#[cfg(test)]
#[path = "einsum_tests.rs"]
mod tests;
