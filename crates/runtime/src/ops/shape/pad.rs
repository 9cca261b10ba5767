//! Pad: constant, reflect, edge and wrap modes, negative pads (cropping),
//! and opset 18's `axes`. Build time turns every padded axis into a table
//! from output position to input position (or "constant"); trailing axes
//! without padding are merged into one contiguous block copied whole.

use bytemuck::Pod;

use crate::ops::common::shape_util::{
    check_rank, const_ints, norm_axes, numel, opt_const_ints, scalar_bytes, MAX_RANK,
};
use crate::{BuildCtx, Built, Fact, Kernel, OpError, RunCtx, RunError, View, ViewMut};

/// Marks an output position that takes the constant.
const CONST: isize = -1;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

struct PadKernel {
    mode: Mode,
    elem: usize,
    value: [u8; 8],
    /// Output sizes of the padded (outer) axes.
    dims: Vec<usize>,
    /// Per outer axis, `tables[start[k]..start[k]+dims[k]]` gives the input
    /// offset (in elements) of each output position, or [`CONST`].
    tables: Vec<isize>,
    starts: Vec<usize>,
    /// Elements in the merged, unpadded trailing block.
    block: usize,
    /// Output positions of the last padded axis that map one-to-one onto
    /// consecutive input positions: copied with one memcpy per row.
    interior: std::ops::Range<usize>,
}

impl PadKernel {
    fn run_typed<T: Pod>(&self, src: &[u8], dst: &mut [u8]) {
        let src: &[T] = bytemuck::cast_slice(src);
        let dst: &mut [T] = bytemuck::cast_slice_mut(dst);
        let value: T = bytemuck::pod_read_unaligned(&self.value[..self.elem]);
        let k = self.dims.len();
        let b = self.block;
        if k == 0 {
            dst.copy_from_slice(src);
            return;
        }
        let last = &self.tables[self.starts[k - 1]..self.starts[k - 1] + self.dims[k - 1]];
        let row = self.dims[k - 1] * b;
        let mut pos = [0usize; MAX_RANK];
        for out in dst.chunks_exact_mut(row) {
            // Input offset of this row, or None when an outer axis is in
            // the constant border.
            let mut base = Some(0isize);
            for (d, &p) in pos[..k - 1].iter().enumerate() {
                let t = self.tables[self.starts[d] + p];
                base = base.filter(|_| t != CONST).map(|x| x + t);
            }
            match base {
                None => out.fill(value),
                Some(base) => {
                    let (lo, hi) = (self.interior.start, self.interior.end);
                    if lo < hi {
                        let s = (base + last[lo]) as usize;
                        out[lo * b..hi * b].copy_from_slice(&src[s..s + (hi - lo) * b]);
                    }
                    let edges = (0..lo).chain(hi..last.len());
                    for j in edges {
                        let o = &mut out[j * b..(j + 1) * b];
                        let t = last[j];
                        if t == CONST {
                            o.fill(value);
                        } else {
                            let s = (base + t) as usize;
                            o.copy_from_slice(&src[s..s + b]);
                        }
                    }
                }
            }
            for d in (0..k - 1).rev() {
                pos[d] += 1;
                if pos[d] < self.dims[d] {
                    break;
                }
                pos[d] = 0;
            }
        }
    }
}

impl Kernel for PadKernel {
    fn name(&self) -> String {
        format!("pad.{:?}", self.mode).to_lowercase()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        _ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (src, dst) = (inputs[0].bytes(), outputs[0].bytes());
        if dst.is_empty() {
            return Ok(());
        }
        match self.elem {
            1 => self.run_typed::<u8>(src, dst),
            2 => self.run_typed::<u16>(src, dst),
            4 => self.run_typed::<u32>(src, dst),
            _ => self.run_typed::<u64>(src, dst),
        }
        Ok(())
    }
}

/// Input position for output position `j` of an axis of input size `d`
/// padded by `before`, or `None` for the constant.
fn source(mode: Mode, j: i64, before: i64, d: i64) -> Option<i64> {
    let i = j - before;
    match mode {
        _ if (0..d).contains(&i) => Some(i),
        Mode::Constant => None,
        Mode::Edge => Some(i.clamp(0, d - 1)),
        Mode::Wrap => Some(i.rem_euclid(d)),
        Mode::Reflect if d == 1 => Some(0),
        Mode::Reflect => {
            let t = i.rem_euclid(2 * (d - 1));
            Some(if t >= d { 2 * (d - 1) - t } else { t })
        }
    }
}

/// Pad (pads attribute before opset 11, inputs after; axes from 18).
pub(crate) fn pad(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let fact = ctx.fact(0)?.clone();
    let r = fact.rank();
    check_rank(ctx, r)?;
    let mode = match ctx.node.attr_string("mode", "constant")?.as_str() {
        "constant" => Mode::Constant,
        "reflect" => Mode::Reflect,
        "edge" => Mode::Edge,
        "wrap" if ctx.opset >= 19 => Mode::Wrap,
        other => return Err(ctx.err(format!("unsupported pad mode '{other}'"))),
    };
    let es = fact.dtype.size();
    let (raw, value, axes) = if ctx.opset >= 11 {
        let value = match ctx.opt_const_value(2)? {
            None => [0u8; 8],
            Some(v) if v.dtype() != fact.dtype || v.numel() != 1 => {
                return Err(ctx.err(format!(
                    "constant_value must be one {} element, found {} {:?}",
                    fact.dtype,
                    v.dtype(),
                    v.shape()
                )))
            }
            Some(v) => {
                let mut b = [0u8; 8];
                b[..es].copy_from_slice(v.as_bytes());
                b
            }
        };
        let axes = if ctx.opset >= 18 {
            opt_const_ints(ctx, 3)?
        } else {
            None
        };
        (const_ints(ctx, 1)?, value, axes)
    } else {
        let pads = ctx
            .node
            .attr_ints("pads")?
            .ok_or_else(|| ctx.err("attribute 'pads' is required"))?
            .to_vec();
        let v = f64::from(ctx.node.attr_float("value", 0.0)?);
        (pads, scalar_bytes(fact.dtype, v), None)
    };
    let axes = match axes {
        Some(a) => norm_axes(ctx, &a, r)?,
        None => (0..r).collect(),
    };
    if raw.len() != 2 * axes.len() {
        return Err(ctx.err(format!(
            "pads has {} entries; expected 2 × {} axes",
            raw.len(),
            axes.len()
        )));
    }
    let mut before = vec![0i64; r];
    let mut after = vec![0i64; r];
    for (i, &a) in axes.iter().enumerate() {
        before[a] = raw[i];
        after[a] = raw[axes.len() + i];
    }
    let mut out_shape = Vec::with_capacity(r);
    for k in 0..r {
        let n = fact.shape[k] as i64 + before[k] + after[k];
        if n < 0 {
            return Err(ctx.err(format!(
                "pads {:?} make axis {k} (size {}) negative",
                raw, fact.shape[k]
            )));
        }
        out_shape.push(n as usize);
    }
    let out_n = numel(ctx, &out_shape)?;
    if out_n > 0 && fact.numel() == 0 && mode != Mode::Constant {
        return Err(ctx.err(format!("{mode:?} padding of an empty tensor")));
    }
    // Trailing axes without padding form one contiguous block.
    let p = (0..r)
        .rposition(|k| before[k] != 0 || after[k] != 0)
        .map_or(0, |k| k + 1);
    let block = numel(ctx, &fact.shape[p..])?;
    let in_strides = crate::ops::common::shape_util::strides(&fact.shape);
    let mut tables = Vec::new();
    let mut starts = Vec::with_capacity(p);
    for k in 0..p {
        starts.push(tables.len());
        let d = fact.shape[k] as i64;
        for j in 0..out_shape[k] as i64 {
            tables.push(match source(mode, j, before[k], d) {
                Some(i) => i as isize * in_strides[k] as isize,
                None => CONST,
            });
        }
    }
    // On the last padded axis, output j reads input j - before when that is
    // inside the input; the last axis has stride `block`, so these are
    // consecutive.
    let interior = if p == 0 {
        0..0
    } else {
        let (bf, d, n) = (
            before[p - 1],
            fact.shape[p - 1] as i64,
            out_shape[p - 1] as i64,
        );
        let lo = bf.clamp(0, n);
        let hi = (bf + d).clamp(lo, n);
        lo as usize..hi as usize
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(fact.dtype, out_shape.clone())],
        kernel: Box::new(PadKernel {
            mode,
            elem: es,
            value,
            dims: out_shape[..p].to_vec(),
            tables,
            starts,
            block,
            interior,
        }),
    })
}
