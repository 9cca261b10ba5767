//! Attribute parsing shared by the conv and pool backward ops.

use std::ops::Deref;

use whittle_kernels::pool::PoolGeom;

use crate::op::BuildCtx;
use crate::ops::common::shape_util::{dims_attr, to3};
use crate::OpError;

/// An ints attribute of exactly `len` values in `[min, MAX_ATTR]`, or
/// `default` repeated when absent.
pub(crate) fn dims(
    ctx: &BuildCtx<'_>,
    name: &str,
    len: usize,
    min: i64,
    default: usize,
) -> Result<Vec<usize>, OpError> {
    Ok(dims_attr(ctx, name, len, min)?.unwrap_or_else(|| vec![default; len]))
}

/// A required shape attribute (every dim >= 1 and the element count
/// bounded).
pub(crate) fn shape_attr(ctx: &BuildCtx<'_>, name: &str) -> Result<Vec<usize>, OpError> {
    let v = ctx
        .node
        .attr_ints(name)?
        .ok_or_else(|| ctx.err(format!("attribute '{name}' is required")))?;
    let shape: Vec<usize> = v
        .iter()
        .map(|&d| {
            if (1..=1 << 31).contains(&d) {
                Ok(d as usize)
            } else {
                Err(ctx.err(format!("attribute '{name}' has dim {d}; expected >= 1")))
            }
        })
        .collect::<Result<_, _>>()?;
    if whittle_ir::checked_numel(&shape).is_none_or(|n| n > 1 << 31) {
        return Err(ctx.err(format!("attribute '{name}' {shape:?} is too large")));
    }
    Ok(shape)
}

/// A window geometry (the forward pool kernels' [`PoolGeom`], so the
/// geometry is defined once) with the tap iteration the backward kernels
/// need: for output coordinate `o` and tap `k` a tap reads input
/// `o * stride + k * dilation - pad_begin`, or nothing in the padding.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Taps(PoolGeom);

impl Deref for Taps {
    type Target = PoolGeom;

    fn deref(&self) -> &PoolGeom {
        &self.0
    }
}

impl Taps {
    /// Input coordinate along dim `d`, if inside the input.
    #[inline]
    pub(crate) fn coord(&self, d: usize, o: usize, k: usize) -> Option<usize> {
        let i = (o * self.stride[d] + k * self.dilation[d]) as isize - self.pad_begin[d] as isize;
        (i >= 0 && (i as usize) < self.input[d]).then_some(i as usize)
    }
}

/// Parses the window attributes of a conv or pool backward op for spatial
/// rank `sr`: `strides`, `dilations`, `pads` (begins then ends), checking
/// that `input` with `kernel` gives `output`.
pub(crate) fn taps(
    ctx: &BuildCtx<'_>,
    input: &[usize],
    kernel: &[usize],
    output: &[usize],
    ceil_mode: bool,
) -> Result<(Taps, Vec<usize>), OpError> {
    let sr = input.len();
    let strides = dims(ctx, "strides", sr, 1, 1)?;
    let dilations = dims(ctx, "dilations", sr, 1, 1)?;
    let pads = dims(ctx, "pads", 2 * sr, 0, 0)?;
    for d in 0..sr {
        let span = (kernel[d] - 1) * dilations[d] + 1;
        let padded = input[d] + pads[d] + pads[sr + d];
        if padded < span {
            return Err(ctx.err(format!(
                "spatial dim {d}: window {span} is larger than the padded input {padded}"
            )));
        }
        let rem = padded - span;
        let mut want = rem / strides[d] + 1;
        if ceil_mode {
            want = rem.div_ceil(strides[d]) + 1;
            if (want - 1) * strides[d] >= input[d] + pads[d] {
                want -= 1;
            }
        }
        if want != output[d] {
            return Err(ctx.err(format!(
                "spatial dim {d}: the forward output has size {want} but the gradient has {}",
                output[d]
            )));
        }
    }
    let taps = Taps(PoolGeom {
        input: to3(input, 1),
        output: to3(output, 1),
        kernel: to3(kernel, 1),
        stride: to3(&strides, 1),
        dilation: to3(&dilations, 1),
        pad_begin: to3(&pads[..sr], 0),
        pad_end: to3(&pads[sr..], 0),
    });
    Ok((taps, pads))
}

impl Taps {
    /// Calls `f(out_offset, in_offset, len)` for every output row (fixed
    /// z, y) in which tap `tap` reads inside the input: outputs
    /// `out_offset .. out_offset + len` (contiguous) read inputs
    /// `in_offset + i * stride[2]`. Rows and columns that fall in the
    /// padding are skipped, so callers run plain strided loops.
    #[inline]
    pub(crate) fn rows(&self, tap: usize, mut f: impl FnMut(usize, usize, usize)) {
        let [od, oh, ow] = self.output;
        let [_, kh, kw] = self.kernel;
        let (kz, ky, kx) = (tap / (kh * kw), (tap / kw) % kh, tap % kw);
        // Valid columns: 0 <= ox * sx + kx * dx - px < iw.
        let sx = self.stride[2] as isize;
        let off = (kx * self.dilation[2]) as isize - self.pad_begin[2] as isize;
        let iw = self.input[2] as isize;
        let lo = if off >= 0 { 0 } else { (-off + sx - 1) / sx };
        let hi = if iw - off <= 0 {
            0
        } else {
            ((iw - off + sx - 1) / sx).min(ow as isize)
        };
        if hi <= lo {
            return;
        }
        let (lo, len) = (lo as usize, (hi - lo) as usize);
        let ix0 = (lo as isize * sx + off) as usize;
        for oz in 0..od {
            let Some(iz) = self.coord(0, oz, kz) else {
                continue;
            };
            for oy in 0..oh {
                let Some(iy) = self.coord(1, oy, ky) else {
                    continue;
                };
                let o = (oz * oh + oy) * ow + lo;
                let i = (iz * self.input[1] + iy) * self.input[2] + ix0;
                f(o, i, len);
            }
        }
    }
}

impl Taps {
    /// The taps `k` of dim `d` that read inside the input for output
    /// coordinate `o`, as a range.
    #[inline]
    pub(crate) fn valid_k(&self, d: usize, o: usize) -> std::ops::Range<usize> {
        let (s, dil, p) = (self.stride[d], self.dilation[d], self.pad_begin[d]);
        let base = (o * s) as isize - p as isize;
        let lo = if base >= 0 {
            0
        } else {
            ((-base) as usize).div_ceil(dil)
        };
        let last = self.input[d] as isize - 1 - base;
        let hi = if last < 0 {
            0
        } else {
            (last as usize / dil + 1).min(self.kernel[d])
        };
        lo..hi.max(lo)
    }

    /// Calls `f(o, visit)` for every output position `o` (flat), where
    /// `visit(g)` calls `g(i)` for the flat input index `i` of each tap
    /// inside the input, in tap order.
    #[inline]
    pub(crate) fn for_each_window(&self, mut f: impl FnMut(usize, &dyn Fn(&mut dyn FnMut(usize)))) {
        let [od, oh, ow] = self.output;
        let [_, ih, iw] = self.input;
        let mut o = 0;
        for oz in 0..od {
            let rz = self.valid_k(0, oz);
            for oy in 0..oh {
                let ry = self.valid_k(1, oy);
                for ox in 0..ow {
                    let rx = self.valid_k(2, ox);
                    let (rz, ry) = (rz.clone(), ry.clone());
                    let visit = |g: &mut dyn FnMut(usize)| {
                        for kz in rz.clone() {
                            let iz =
                                oz * self.stride[0] + kz * self.dilation[0] - self.pad_begin[0];
                            for ky in ry.clone() {
                                let iy =
                                    oy * self.stride[1] + ky * self.dilation[1] - self.pad_begin[1];
                                let row = (iz * ih + iy) * iw;
                                for kx in rx.clone() {
                                    g(row + ox * self.stride[2] + kx * self.dilation[2]
                                        - self.pad_begin[2]);
                                }
                            }
                        }
                    };
                    f(o, &visit);
                    o += 1;
                }
            }
        }
    }
}
