//! One engine for every affine data movement: `out[i] = in[offset + Σ i_k·s_k]`
//! over a row-major output. Transpose (permuted strides), Slice (offset and
//! possibly negative strides), Expand and Tile (zero strides) all lower to it.
//! Build time merges dimensions that are contiguous in both tensors, so the
//! run loop is as flat as the data allows, and picks a cache-blocked order
//! when the output's innermost dimension is strided in the input (transposes).

use bytemuck::Pod;
use whittle_ir::DType;

use crate::ops::common::shape_util::MAX_RANK;
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// A kernel that is one [`StridedCopy`] from input 0 to output 0.
struct StridedKernel {
    op: &'static str,
    copy: StridedCopy,
}

impl Kernel for StridedKernel {
    fn name(&self) -> String {
        format!("{}.{}", self.op, self.copy.kind())
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        self.copy.run(inputs[0].bytes(), outputs[0].bytes());
        Ok(())
    }
}

/// Builds a kernel writing output `out_shape` of `dtype` from input 0 at
/// `offset + Σ idx_k·in_strides[k]` (elements).
pub(crate) fn strided_kernel(
    ctx: &BuildCtx<'_>,
    op: &'static str,
    dtype: DType,
    out_shape: Vec<usize>,
    in_strides: &[isize],
    offset: usize,
) -> Result<Built, OpError> {
    let in_len = ctx.fact(0)?.numel();
    let copy = StridedCopy::new(dtype.size(), &out_shape, in_strides, offset, in_len)
        .map_err(|e| ctx.err(e))?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(dtype, out_shape)],
        kernel: Box::new(StridedKernel { op, copy }),
    })
}

/// A prepared strided gather from one tensor into a contiguous output.
#[derive(Clone, Debug)]
pub(crate) struct StridedCopy {
    elem: usize,
    dims: Vec<usize>,
    strides: Vec<isize>,
    offset: usize,
    total: usize,
}

/// Tile edge for the blocked transpose path: an 8×8 tile of up to 8-byte
/// elements is 512 bytes, so input and output tiles stay in L1.
const BLOCK: usize = 8;

/// Edge of the outer blocks of the transpose path.
const OUTER: usize = 64;

impl StridedCopy {
    /// Output of shape `out_shape` (row-major) reading input element
    /// `offset + Σ idx_k·in_strides[k]`. The caller guarantees every such
    /// index is inside the input; `in_len` (elements) is checked here.
    pub(crate) fn new(
        elem: usize,
        out_shape: &[usize],
        in_strides: &[isize],
        offset: usize,
        in_len: usize,
    ) -> Result<StridedCopy, String> {
        debug_assert_eq!(out_shape.len(), in_strides.len());
        let total: usize = out_shape.iter().product();
        // Drop unit dims, then merge a dim into its outer neighbour when the
        // outer stride is exactly inner stride × inner size.
        let mut dims: Vec<usize> = Vec::new();
        let mut strides: Vec<isize> = Vec::new();
        for (&d, &s) in out_shape.iter().zip(in_strides) {
            if d == 1 {
                continue;
            }
            if let (Some(&ld), Some(&ls)) = (dims.last(), strides.last()) {
                if ls == s * d as isize {
                    *dims.last_mut().unwrap() = ld * d;
                    *strides.last_mut().unwrap() = s;
                    continue;
                }
            }
            dims.push(d);
            strides.push(s);
        }
        if dims.len() > MAX_RANK {
            return Err(format!(
                "strided copy of rank {} exceeds the maximum {MAX_RANK}",
                dims.len()
            ));
        }
        if total > 0 {
            let (mut lo, mut hi) = (offset as isize, offset as isize);
            for (&d, &s) in dims.iter().zip(&strides) {
                let span = s * (d as isize - 1);
                if span < 0 {
                    lo += span;
                } else {
                    hi += span;
                }
            }
            if lo < 0 || hi as usize >= in_len {
                return Err(format!(
                    "strided read range {lo}..={hi} outside input of {in_len} elements"
                ));
            }
        }
        Ok(StridedCopy {
            elem,
            dims,
            strides,
            offset,
            total,
        })
    }

    /// Short description for kernel names: `copy`, `fill`, `gather`, `tiled`.
    pub(crate) fn kind(&self) -> &'static str {
        match self.strides.last() {
            None | Some(1) if self.dims.len() <= 1 => "copy",
            Some(0) => "broadcast",
            _ if self.blocked() => "tiled",
            _ => "strided",
        }
    }

    fn blocked(&self) -> bool {
        let k = self.dims.len();
        k >= 2 && self.strides[k - 2] == 1 && self.strides[k - 1] != 1
    }

    /// Copies from `src` into `dst` (both raw bytes of the element size).
    pub(crate) fn run(&self, src: &[u8], dst: &mut [u8]) {
        if self.total == 0 {
            return;
        }
        match self.elem {
            1 => self.run_typed::<u8>(src, dst),
            2 => self.run_typed::<u16>(src, dst),
            4 => self.run_typed::<u32>(src, dst),
            8 => self.run_typed::<u64>(src, dst),
            _ => unreachable!("element sizes are 1, 2, 4 or 8"),
        }
    }

    fn run_typed<T: Pod>(&self, src: &[u8], dst: &mut [u8]) {
        let src: &[T] = bytemuck::cast_slice(src);
        let dst: &mut [T] = bytemuck::cast_slice_mut(dst);
        let k = self.dims.len();
        if k == 0 {
            dst[0] = src[self.offset];
            return;
        }
        if self.blocked() {
            return self.run_blocked(src, dst);
        }
        let inner = self.dims[k - 1];
        let s = self.strides[k - 1];
        let mut idx = [0usize; MAX_RANK];
        let mut base = self.offset as isize;
        for row in dst.chunks_exact_mut(inner) {
            let b = base as usize;
            match s {
                1 => row.copy_from_slice(&src[b..b + inner]),
                0 => row.fill(src[b]),
                _ => {
                    for (j, o) in row.iter_mut().enumerate() {
                        *o = src[(base + j as isize * s) as usize];
                    }
                }
            }
            base = self.advance(&mut idx, k - 1, base);
        }
    }

    /// Steps the odometer over the first `outer` dims; returns the new base.
    #[inline]
    fn advance(&self, idx: &mut [usize; MAX_RANK], outer: usize, mut base: isize) -> isize {
        for d in (0..outer).rev() {
            idx[d] += 1;
            base += self.strides[d];
            if idx[d] < self.dims[d] {
                return base;
            }
            base -= self.strides[d] * self.dims[d] as isize;
            idx[d] = 0;
        }
        base
    }

    /// The last two output dims read the input transposed (the outer of the
    /// two is contiguous in the input): walk both in square tiles so reads
    /// and writes each stay within a few cache lines.
    fn run_blocked<T: Pod>(&self, src: &[T], dst: &mut [T]) {
        let k = self.dims.len();
        let (rows, cols) = (self.dims[k - 2], self.dims[k - 1]);
        let cs = self.strides[k - 1];
        let mut idx = [0usize; MAX_RANK];
        let mut base = self.offset as isize;
        for plane in dst.chunks_exact_mut(rows * cols) {
            // Outer OUTER × OUTER blocks keep the pages and cache lines one
            // sweep touches few enough to stay resident; inner tiles are
            // BLOCK × BLOCK.
            for rb in (0..rows).step_by(OUTER) {
                for cb in (0..cols).step_by(OUTER) {
                    let (re, ce) = ((rb + OUTER).min(rows), (cb + OUTER).min(cols));
                    for r0 in (rb..re).step_by(BLOCK) {
                        let r1 = (r0 + BLOCK).min(re);
                        for c0 in (cb..ce).step_by(BLOCK) {
                            let c1 = (c0 + BLOCK).min(ce);
                            if r1 - r0 == BLOCK && c1 - c0 == BLOCK && cs > 0 {
                                let from = (base + r0 as isize + c0 as isize * cs) as usize;
                                tile::<T>(src, from, cs as usize, plane, r0 * cols + c0, cols);
                                continue;
                            }
                            for r in r0..r1 {
                                let out = &mut plane[r * cols + c0..r * cols + c1];
                                let from = base + r as isize;
                                for (j, o) in out.iter_mut().enumerate() {
                                    *o = src[(from + (c0 + j) as isize * cs) as usize];
                                }
                            }
                        }
                    }
                }
            }
            base = self.advance(&mut idx, k - 2, base);
        }
    }
}

/// Transposes one full BLOCK × BLOCK tile: input columns `src[from + c·cs..]`
/// are contiguous runs of BLOCK elements, output rows `dst[to + r·cols..]`
/// too. Fixed-size arrays let the compiler drop the bounds checks and keep
/// the tile in registers.
#[inline(always)]
fn tile<T: Pod>(src: &[T], from: usize, cs: usize, dst: &mut [T], to: usize, cols: usize) {
    let mut m = [[T::zeroed(); BLOCK]; BLOCK];
    for (c, col) in m.iter_mut().enumerate() {
        let at = from + c * cs;
        *col = src[at..at + BLOCK].try_into().expect("BLOCK elements");
    }
    for r in 0..BLOCK {
        let at = to + r * cols;
        let row: &mut [T; BLOCK] = (&mut dst[at..at + BLOCK])
            .try_into()
            .expect("BLOCK elements");
        for (o, col) in row.iter_mut().zip(&m) {
            *o = col[r];
        }
    }
}

#[cfg(test)]
#[path = "strided_tests.rs"]
mod tests;
