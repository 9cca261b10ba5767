//! BatchNormalization (inference), InstanceNormalization,
//! LayerNormalization and GroupNormalization on f32.
//!
//! Statistics accumulate in f64 (two passes: mean, then centred variance),
//! so results do not drift with large planes. BatchNormalization folds its
//! four parameter vectors into one scale and one shift per channel, at build
//! time when they are constants.

use whittle_ir::DType;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

/// Registers the normalization ops.
pub fn register(r: &mut Registry) {
    r.add("BatchNormalization", build_batch_norm);
    r.add("InstanceNormalization", build_instance_norm);
    r.add("LayerNormalization", build_layer_norm);
    r.add("GroupNormalization", build_group_norm);
}

/// True when output `i` of the node is requested.
fn wants_output(ctx: &BuildCtx<'_>, i: usize) -> bool {
    ctx.node.outputs.get(i).is_some_and(|s| !s.is_empty())
}

/// The `epsilon` attribute, which must be a non-negative finite number.
fn epsilon(ctx: &BuildCtx<'_>) -> Result<f32, OpError> {
    let eps = ctx.node.attr_float("epsilon", 1e-5)?;
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(ctx.err(format!("epsilon must be finite and >= 0, got {eps}")));
    }
    Ok(eps)
}

/// Rejects a `stash_type` other than float32 (1): whittle computes
/// statistics in f64 and stores them as f32.
fn check_stash_type(ctx: &BuildCtx<'_>) -> Result<(), OpError> {
    match ctx.node.attr_int("stash_type", 1)? {
        1 => Ok(()),
        v => Err(ctx.err(format!("stash_type {v} is not supported (only 1, float32)"))),
    }
}

/// Input 0 as N x C x ...: returns (N, C, elements per channel).
fn nc_rest(ctx: &BuildCtx<'_>, min_rank: usize) -> Result<(usize, usize, usize), OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let shape = &ctx.fact(0)?.shape;
    if shape.len() < min_rank {
        return Err(ctx.err(format!(
            "input X has shape {shape:?}; expected rank >= {min_rank} (N x C x ...)"
        )));
    }
    let c = shape.get(1).copied().unwrap_or(1);
    Ok((shape[0], c, shape.iter().skip(2).product()))
}

/// Checks input `i` is f32 with `len` elements (any shape of that size, so
/// `[C]` and `[C, 1, 1]` both pass).
fn param(ctx: &BuildCtx<'_>, i: usize, name: &str, len: usize) -> Result<(), OpError> {
    ctx.expect_dtype(i, &[DType::F32])?;
    let f = ctx.fact(i)?;
    if f.numel() != len {
        return Err(ctx.err(format!(
            "input {name} has shape {:?}; expected {len} elements",
            f.shape
        )));
    }
    Ok(())
}

/// Mean and variance (population) of `xs`, in f64.
fn moments(xs: &[f32]) -> (f64, f64) {
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let n = xs.len() as f64;
    let mean = xs.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let var = xs
        .iter()
        .map(|&x| {
            let d = f64::from(x) - mean;
            d * d
        })
        .sum::<f64>()
        / n;
    (mean, var)
}

/// Mean and 1/sqrt(var + eps) of `xs`.
fn mean_inv_std(xs: &[f32], eps: f32) -> (f32, f32) {
    let (mean, var) = moments(xs);
    (mean as f32, (1.0 / (var + f64::from(eps)).sqrt()) as f32)
}

// ---------------------------------------------------------------- BatchNorm

fn build_batch_norm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (n, c, s) = nc_rest(ctx, 2)?;
    let eps = epsilon(ctx)?;
    if ctx.node.attr_int("training_mode", 0)? != 0 {
        return Err(ctx.err(
            "training_mode=1 is not supported: whittle runs BatchNormalization in inference form",
        ));
    }
    if (1..ctx.node.outputs.len()).any(|i| wants_output(ctx, i)) {
        return Err(ctx.err(
            "outputs beyond Y (running or saved statistics) are training outputs, which are not supported",
        ));
    }
    // Opset < 9 with spatial=0 keeps one statistic per (channel, position).
    let spatial = ctx.opset >= 9 || ctx.node.attr_int("spatial", 1)? != 0;
    let params = if spatial || ctx.fact(1)?.numel() == c {
        c
    } else {
        c * s
    };
    for (i, name) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        param(ctx, i, name, params)?;
    }
    let values: Vec<_> = (1..5)
        .map(|i| ctx.input(i).map(|f| f.value))
        .collect::<Result<_, _>>()?;
    let folded = match values[..] {
        [Some(sc), Some(b), Some(m), Some(v)] => {
            let (mut a, mut sh) = (vec![0.0; params], vec![0.0; params]);
            fold_bn(
                [sc.as_f32()?, b.as_f32()?, m.as_f32()?, v.as_f32()?],
                eps,
                &mut a,
                &mut sh,
            );
            Some((a, sh))
        }
        _ => None,
    };
    Ok(Built::Kernel {
        outputs: vec![ctx.fact(0)?.clone()],
        kernel: Box::new(BatchNorm {
            folded,
            eps,
            n,
            params,
            run_len: c * s / params,
        }),
    })
}

/// Folds (scale, B, mean, var) into `y = x * a + b`.
fn fold_bn(p: [&[f32]; 4], eps: f32, a: &mut [f32], b: &mut [f32]) {
    let [sc, bias, mean, var] = p;
    for i in 0..a.len() {
        a[i] = sc[i] / (var[i] + eps).sqrt();
        b[i] = bias[i] - mean[i] * a[i];
    }
}

/// Inference BatchNormalization: `y = x * a[p] + b[p]`, where `p` indexes
/// runs of `run_len` consecutive elements (a channel plane, or a single
/// element in the non-spatial form).
struct BatchNorm {
    /// Per-parameter scale and shift when the statistics are constants.
    folded: Option<(Vec<f32>, Vec<f32>)>,
    eps: f32,
    n: usize,
    params: usize,
    run_len: usize,
}

impl Kernel for BatchNorm {
    fn name(&self) -> String {
        if self.folded.is_some() {
            "batchnorm.folded".into()
        } else {
            "batchnorm".into()
        }
    }

    fn macs(&self) -> u64 {
        (self.n * self.params * self.run_len) as u64
    }

    fn scratch_bytes(&self) -> usize {
        if self.folded.is_some() {
            0
        } else {
            2 * self.params * 4
        }
    }

    fn weight_bytes(&self) -> usize {
        self.folded.as_ref().map_or(0, |_| 2 * self.params * 4)
    }

    fn inplace_input(&self) -> Option<usize> {
        Some(0)
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (a, b): (&[f32], &[f32]) = match &self.folded {
            Some((a, b)) => (a, b),
            None => {
                let scratch: &mut [f32] =
                    bytemuck::cast_slice_mut(&mut ctx.scratch[..2 * self.params * 4]);
                let (a, b) = scratch.split_at_mut(self.params);
                let p = [1, 2, 3, 4].map(|i| inputs[i].f32());
                fold_bn(p, self.eps, a, b);
                (a, b)
            }
        };
        if self.run_len == 0 {
            return Ok(());
        }
        let (x, y) = (&inputs[0], outputs[0].f32());
        let per_sample = self.params * self.run_len;
        let apply = |src: Option<&[f32]>, y: &mut [f32]| {
            for (p, run) in y.chunks_exact_mut(self.run_len).enumerate() {
                let (a, b) = (a[p % self.params], b[p % self.params]);
                match src {
                    Some(x) => {
                        let x = &x[p * self.run_len..][..self.run_len];
                        run.iter_mut().zip(x).for_each(|(y, &x)| *y = x * a + b);
                    }
                    None => run.iter_mut().for_each(|y| *y = *y * a + b),
                }
            }
        };
        let y = &mut y[..self.n * per_sample];
        if x.is_aliased() {
            apply(None, y);
        } else {
            apply(Some(x.f32()), y);
        }
        Ok(())
    }
}

// ------------------------------------------------------------- InstanceNorm

fn build_instance_norm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (n, c, s) = nc_rest(ctx, 3)?;
    let eps = epsilon(ctx)?;
    param(ctx, 1, "scale", c)?;
    param(ctx, 2, "B", c)?;
    Ok(Built::Kernel {
        outputs: vec![ctx.fact(0)?.clone()],
        kernel: Box::new(GroupNorm {
            n,
            channels: c,
            groups: c,
            plane: s,
            eps,
            per_channel_params: true,
            name: "instancenorm",
        }),
    })
}

// ---------------------------------------------------------------- GroupNorm

fn build_group_norm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let (n, c, s) = nc_rest(ctx, 2)?;
    let eps = epsilon(ctx)?;
    check_stash_type(ctx)?;
    let groups = ctx
        .node
        .attr_int_opt("num_groups")?
        .ok_or_else(|| ctx.err("attribute 'num_groups' is required"))?;
    if groups <= 0 || c % groups as usize != 0 {
        return Err(ctx.err(format!(
            "num_groups {groups} must be positive and divide the {c} channels"
        )));
    }
    let groups = groups as usize;
    // Opset 18 scaled per group; opset 21 switched to per channel.
    let per_channel = ctx.opset >= 21;
    let len = if per_channel { c } else { groups };
    param(ctx, 1, "scale", len)?;
    param(ctx, 2, "bias", len)?;
    Ok(Built::Kernel {
        outputs: vec![ctx.fact(0)?.clone()],
        kernel: Box::new(GroupNorm {
            n,
            channels: c,
            groups,
            plane: s,
            eps,
            per_channel_params: per_channel,
            name: "groupnorm",
        }),
    })
}

/// Normalizes each (sample, group of channels) and applies a per-channel
/// or per-group affine transform. InstanceNormalization is the case of one
/// channel per group.
struct GroupNorm {
    n: usize,
    channels: usize,
    groups: usize,
    plane: usize,
    eps: f32,
    per_channel_params: bool,
    name: &'static str,
}

impl Kernel for GroupNorm {
    fn name(&self) -> String {
        self.name.into()
    }

    fn macs(&self) -> u64 {
        (3 * self.n * self.channels * self.plane) as u64
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (x, scale, bias) = (inputs[0].f32(), inputs[1].f32(), inputs[2].f32());
        let cpg = self.channels / self.groups;
        let group_len = cpg * self.plane;
        let y = &mut outputs[0].f32()[..self.n * self.channels * self.plane];
        ctx.par.for_each_chunk_mut(y, group_len.max(1), &|i, out| {
            let g = i % self.groups;
            let (mean, inv) = mean_inv_std(&x[i * group_len..][..group_len], self.eps);
            let src = &x[i * group_len..][..group_len];
            for (k, (o, s)) in out
                .chunks_exact_mut(self.plane.max(1))
                .zip(src.chunks_exact(self.plane.max(1)))
                .enumerate()
            {
                let p = if self.per_channel_params {
                    g * cpg + k
                } else {
                    g
                };
                let a = scale[p] * inv;
                let b = bias[p] - mean * a;
                o.iter_mut().zip(s).for_each(|(o, &x)| *o = x * a + b);
            }
        });
        Ok(())
    }
}

// ---------------------------------------------------------------- LayerNorm

fn build_layer_norm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    let eps = epsilon(ctx)?;
    check_stash_type(ctx)?;
    let shape = ctx.fact(0)?.shape.clone();
    let rank = shape.len() as i64;
    let axis = ctx.node.attr_int("axis", -1)?;
    if !(-rank..rank).contains(&axis) {
        return Err(ctx.err(format!("axis {axis} is out of range for rank {rank}")));
    }
    let axis = axis.rem_euclid(rank.max(1)) as usize;
    let norm_shape = &shape[axis..];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = norm_shape.iter().product();
    let scale = ParamMap::new(ctx, 1, "Scale", norm_shape)?;
    let bias = match ctx.opt_input(2) {
        Some(_) => Some(ParamMap::new(ctx, 2, "B", norm_shape)?),
        None => None,
    };
    let mut stat_shape = shape.clone();
    stat_shape[axis..].fill(1);
    // Mean and InvStdDev, when listed (even if unnamed, one fact per output).
    let mut outputs = vec![Fact::new(DType::F32, shape.clone())];
    outputs.resize(
        ctx.node.outputs.len().clamp(1, 3),
        Fact::new(DType::F32, stat_shape),
    );
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(LayerNorm {
            outer,
            inner,
            eps,
            scale,
            bias,
        }),
    })
}

/// A LayerNormalization parameter broadcast to the normalized shape:
/// expanded at build time when constant, else expanded into scratch at run
/// time through precomputed broadcast strides.
struct ParamMap {
    expanded: Option<Vec<f32>>,
    /// Normalized dims and the parameter's stride along each (0 when
    /// broadcast).
    dims: Vec<(usize, usize)>,
    len: usize,
}

impl ParamMap {
    fn new(
        ctx: &BuildCtx<'_>,
        i: usize,
        name: &str,
        target: &[usize],
    ) -> Result<ParamMap, OpError> {
        ctx.expect_dtype(i, &[DType::F32])?;
        let shape = &ctx.fact(i)?.shape;
        if shape.len() > target.len() {
            return Err(ctx.err(format!(
                "input {name} has shape {shape:?}, which does not broadcast to the normalized shape {target:?}"
            )));
        }
        // Unidirectional broadcast, aligned on the trailing dims.
        let lead = target.len() - shape.len();
        let mut dims = Vec::with_capacity(target.len());
        let mut stride = 1;
        for (k, &t) in target.iter().enumerate().rev() {
            let d = if k >= lead { shape[k - lead] } else { 1 };
            if d != t && d != 1 {
                return Err(ctx.err(format!(
                    "input {name} has shape {shape:?}, which does not broadcast to the normalized shape {target:?}"
                )));
            }
            dims.push((t, if d == 1 { 0 } else { stride }));
            stride *= d;
        }
        dims.reverse();
        let len = target.iter().product();
        let mut map = ParamMap {
            expanded: None,
            dims,
            len,
        };
        if let Some(v) = ctx.input(i)?.value {
            let mut e = vec![0.0; len];
            map.expand(v.as_f32()?, &mut e);
            map.expanded = Some(e);
        }
        Ok(map)
    }

    fn expand(&self, src: &[f32], dst: &mut [f32]) {
        for (j, d) in dst.iter_mut().enumerate() {
            let (mut rem, mut off) = (j, 0);
            for &(n, s) in self.dims.iter().rev() {
                off += (rem % n) * s;
                rem /= n;
            }
            *d = src[off];
        }
    }

    /// Scratch floats needed when not expanded at build time.
    fn scratch_len(&self) -> usize {
        if self.expanded.is_some() {
            0
        } else {
            self.len
        }
    }

    /// The expanded parameter, using `scratch` when not constant.
    fn get<'a>(&'a self, src: &[f32], scratch: &'a mut [f32]) -> &'a [f32] {
        match &self.expanded {
            Some(e) => e,
            None => {
                self.expand(src, scratch);
                scratch
            }
        }
    }
}

/// LayerNormalization over the trailing `inner` elements of each of `outer`
/// rows.
struct LayerNorm {
    outer: usize,
    inner: usize,
    eps: f32,
    scale: ParamMap,
    bias: Option<ParamMap>,
}

impl Kernel for LayerNorm {
    fn name(&self) -> String {
        "layernorm".into()
    }

    fn macs(&self) -> u64 {
        (3 * self.outer * self.inner) as u64
    }

    fn scratch_bytes(&self) -> usize {
        4 * (self.scale.scratch_len() + self.bias.as_ref().map_or(0, ParamMap::scratch_len))
    }

    fn weight_bytes(&self) -> usize {
        4 * (self.scale.len - self.scale.scratch_len()
            + self.bias.as_ref().map_or(0, |b| b.len - b.scratch_len()))
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let scratch: &mut [f32] =
            bytemuck::cast_slice_mut(&mut ctx.scratch[..self.scratch_bytes()]);
        let (s_buf, b_buf) = scratch.split_at_mut(self.scale.scratch_len());
        let scale = self.scale.get(inputs[1].f32(), s_buf);
        let bias = self.bias.as_ref().map(|b| b.get(inputs[2].f32(), b_buf));
        let x = inputs[0].f32();
        let (y, stats) = outputs
            .split_first_mut()
            .ok_or(RunError::Unsupported("missing output"))?;
        let y = y.f32();
        let n = self.inner;
        for r in 0..self.outer {
            let src = &x[r * n..][..n];
            let (mean, inv) = mean_inv_std(src, self.eps);
            let out = &mut y[r * n..][..n];
            match bias {
                Some(b) => {
                    for j in 0..n {
                        out[j] = (src[j] - mean) * inv * scale[j] + b[j];
                    }
                }
                None => {
                    for j in 0..n {
                        out[j] = (src[j] - mean) * inv * scale[j];
                    }
                }
            }
            for (k, s) in stats.iter_mut().enumerate() {
                // Unrequested outputs may arrive as empty (unaligned) views.
                if s.bytes_ref().is_empty() {
                    continue;
                }
                if let Some(v) = s.f32().get_mut(r) {
                    *v = if k == 0 { mean } else { inv };
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "norm_tests.rs"]
mod tests;
