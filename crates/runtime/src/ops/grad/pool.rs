//! Pooling backward: `MaxPoolGrad(dY, X)`, `AveragePoolGrad(dY)` and
//! `GlobalAveragePoolGrad(dY)`, over NC + 1 to 3 spatial dims.
//!
//! MaxPool routes each output gradient to the first maximum of its window
//! (recomputed from X, so the forward pass keeps no index tensor), the
//! element the forward kernel and PyTorch pick. AveragePool spreads it over
//! the window with the forward divisor.

use whittle_ir::DType;

use super::geom::{dims, shape_attr, taps, Taps};
use super::DOMAIN;
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "MaxPoolGrad", build_max);
    r.add_in_domain(DOMAIN, "AveragePoolGrad", build_avg);
    r.add_in_domain(DOMAIN, "GlobalAveragePoolGrad", build_global_avg);
}

/// Windows of a pooling grad node: `x` is the forward input shape.
fn windows(ctx: &BuildCtx<'_>, x: &[usize], dy: &[usize]) -> Result<(Taps, Vec<usize>), OpError> {
    if !(3..=5).contains(&x.len()) || dy.len() != x.len() || dy[..2] != x[..2] {
        return Err(ctx.err(format!(
            "dY {dy:?} and X {x:?} must be N x C x (1 to 3 spatial dims) with equal N and C"
        )));
    }
    let sr = x.len() - 2;
    let kernel = dims(ctx, "kernel_shape", sr, 1, 0)?;
    if kernel.contains(&0) {
        return Err(ctx.err("attribute 'kernel_shape' is required"));
    }
    let ceil = ctx.node.attr_int("ceil_mode", 0)? != 0;
    taps(ctx, &x[2..], &kernel, &dy[2..], ceil)
}

fn build_max(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let dy = ctx.fact(0)?.shape.clone();
    let x = ctx.fact(1)?.shape.clone();
    let (taps, _) = windows(ctx, &x, &dy)?;
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, x)],
        kernel: Box::new(MaxGrad { taps }),
    })
}

struct MaxGrad {
    taps: Taps,
}

impl Kernel for MaxGrad {
    fn name(&self) -> String {
        "maxpool_grad".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (dy, x) = (inputs[0].f32(), inputs[1].f32());
        let t = &self.taps;
        let (isp, osp) = (t.input_len(), t.output_len());
        ctx.par
            .for_each_chunk_mut(outputs[0].f32(), isp.max(1), &|p, dxp| {
                dxp.fill(0.0);
                let xp = &x[p * isp..][..isp];
                let dyp = &dy[p * osp..][..osp];
                t.for_each_window(|o, visit| {
                    let mut best: Option<(usize, f32)> = None;
                    visit(&mut |i| {
                        if best.is_none_or(|(_, m)| xp[i] > m) {
                            best = Some((i, xp[i]));
                        }
                    });
                    if let Some((i, _)) = best {
                        dxp[i] += dyp[o];
                    }
                });
            });
        Ok(())
    }
}

fn build_avg(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let dy = ctx.fact(0)?.shape.clone();
    let x = shape_attr(ctx, "input_shape")?;
    let (taps, pads) = windows(ctx, &x, &dy)?;
    let include_pad = ctx.node.attr_int("count_include_pad", 0)? != 0;
    let sr = x.len() - 2;
    let mut pad_end = [0usize; 3];
    pad_end[3 - sr..].copy_from_slice(&pads[sr..]);
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, x)],
        kernel: Box::new(AvgGrad {
            taps,
            pad_end,
            include_pad,
        }),
    })
}

struct AvgGrad {
    taps: Taps,
    pad_end: [usize; 3],
    include_pad: bool,
}

impl AvgGrad {
    /// The forward divisor of output position `o`: taps inside the input,
    /// or with `count_include_pad` inside input plus explicit padding.
    fn divisor(&self, o: usize) -> usize {
        let t = &self.taps;
        let oc = [
            o / (t.output[1] * t.output[2]),
            (o / t.output[2]) % t.output[1],
            o % t.output[2],
        ];
        let mut n = 1;
        for (d, &oc) in oc.iter().enumerate() {
            let lo = -(t.pad_begin[d] as isize);
            let hi = if self.include_pad {
                (t.input[d] + self.pad_end[d]) as isize
            } else {
                t.input[d] as isize
            };
            let lo = if self.include_pad { lo } else { 0 };
            let count = (0..t.kernel[d])
                .filter(|&k| {
                    let i =
                        (oc * t.stride[d] + k * t.dilation[d]) as isize - t.pad_begin[d] as isize;
                    i >= lo && i < hi
                })
                .count();
            n *= count;
        }
        n
    }
}

impl Kernel for AvgGrad {
    fn name(&self) -> String {
        "avgpool_grad".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let dy = inputs[0].f32();
        let t = &self.taps;
        let (isp, osp) = (t.input_len(), t.output_len());
        ctx.par
            .for_each_chunk_mut(outputs[0].f32(), isp.max(1), &|p, dxp| {
                dxp.fill(0.0);
                let dyp = &dy[p * osp..][..osp];
                t.for_each_window(|o, visit| {
                    let div = self.divisor(o);
                    if div > 0 {
                        let g = dyp[o] / div as f32;
                        visit(&mut |i| dxp[i] += g);
                    }
                });
            });
        Ok(())
    }
}

fn build_global_avg(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let dy = ctx.fact(0)?.shape.clone();
    let x = shape_attr(ctx, "input_shape")?;
    if x.len() < 3 || dy.len() != x.len() || dy[..2] != x[..2] || dy[2..].iter().any(|&d| d != 1) {
        return Err(ctx.err(format!(
            "dY {dy:?} must be [N, C, 1, ...] for an input of shape {x:?}"
        )));
    }
    let plane = x[2..].iter().product();
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, x)],
        kernel: Box::new(GlobalAvgGrad { plane }),
    })
}

struct GlobalAvgGrad {
    plane: usize,
}

impl Kernel for GlobalAvgGrad {
    fn name(&self) -> String {
        "global_avgpool_grad".into()
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let dy = inputs[0].f32();
        let inv = 1.0 / self.plane as f32;
        ctx.par
            .for_each_chunk_mut(outputs[0].f32(), self.plane.max(1), &|p, dxp| {
                dxp.fill(dy[p] * inv);
            });
        Ok(())
    }
}
