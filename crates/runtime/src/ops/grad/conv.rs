//! Conv backward: `ConvGradInput(dY, W) -> dX` and
//! `ConvGradWeight(dY, X) -> dW[, dB]`, for 1 to 3 spatial dims, any
//! groups, strides, pads and dilations.
//!
//! `ConvGradWeight` takes an optional `channels` attribute k (sparse
//! update): only the first k output channels' weight gradients are
//! computed, and dW has k output channels. The bias gradient stays full
//! (it is cheap, and bias-only layers want all of it).
//!
//! Dense and grouped convs reuse the forward GEMM: the input gradient is
//! the transposed conv of dY with the same weights (GEMM into columns, then
//! col2im), the weight gradient is `dY_g · im2col(X_g)^T` accumulated over
//! the batch. Convs with one input channel per group (depthwise, with any
//! channel multiplier) have too little depth for a GEMM to pay, so they run
//! direct loops, one channel per task.

use whittle_ir::DType;
use whittle_kernels::conv::{conv_transpose_dynamic, conv_transpose_scratch_len, ConvGeom};
use whittle_kernels::gemm::{gemm, gemm_scratch_len, Epilogue, MatRef};
use whittle_kernels::Activation;

use super::geom::{shape_attr, taps, Taps};
use super::{fit_outputs, wants, DOMAIN};
use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::nn::linear::par::{isa, kernel_name, max_tasks, scratch_f32, ParExec};
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

pub fn register(r: &mut Registry) {
    r.add_in_domain(DOMAIN, "ConvGradInput", build_grad_input);
    r.add_in_domain(DOMAIN, "ConvGradWeight", build_grad_weight);
}

/// The forward geometry from X's and W's shapes and dY's spatial dims.
fn forward_geom(
    ctx: &BuildCtx<'_>,
    x: &[usize],
    w: &[usize],
    dy: &[usize],
) -> Result<(ConvGeom, Taps), OpError> {
    if !(3..=5).contains(&x.len()) || w.len() != x.len() || dy.len() != x.len() {
        return Err(ctx.err(format!(
            "shapes X {x:?}, W {w:?}, dY {dy:?} must all have rank 3 to 5 (N, C, spatial)"
        )));
    }
    let group = ctx.node.attr_int("group", 1)?;
    if group < 1 {
        return Err(ctx.err(format!("group must be >= 1, got {group}")));
    }
    let group = group as usize;
    let (n, cin, cout) = (x[0], x[1], w[0]);
    if dy[0] != n || dy[1] != cout {
        return Err(ctx.err(format!(
            "dY has shape {dy:?}; expected batch {n} and {cout} channels"
        )));
    }
    if cout % group != 0 || w[1] * group != cin {
        return Err(ctx.err(format!(
            "X has {cin} channels and W {w:?}: inconsistent with group {group}"
        )));
    }
    if w[2..].contains(&0) {
        return Err(ctx.err(format!("W {w:?} has an empty kernel dim")));
    }
    let (t, _) = taps(ctx, &x[2..], &w[2..], &dy[2..], false)?;
    let geom = ConvGeom {
        batch: n,
        cin,
        cout,
        groups: group,
        input: t.input,
        kernel: t.kernel,
        stride: t.stride,
        dilation: t.dilation,
        pad_begin: t.pad_begin,
        output: t.output,
    };
    Ok((geom, t))
}

fn build_grad_input(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let dy = ctx.fact(0)?.shape.clone();
    let w = ctx.fact(1)?.shape.clone();
    let x = shape_attr(ctx, "input_shape")?;
    let (geom, taps) = forward_geom(ctx, &x, &w, &dy)?;
    let direct = geom.cin_g() == 1 && geom.groups > 1;
    // A 1x1 conv's input gradient is one product per image, dX = Wᵀ·dY:
    // no column buffer (which for late, deep layers is the largest
    // workspace of a training step).
    let pointwise = !direct && geom.groups == 1 && geom.is_pointwise();
    // The input gradient is the transposed conv of dY: X and Y swap roles.
    let tgeom = ConvGeom {
        cin: geom.cout,
        cout: geom.cin,
        input: geom.output,
        output: geom.input,
        ..geom.clone()
    };
    let scratch = if direct {
        0
    } else if pointwise {
        let osp = geom.out_spatial();
        gemm_scratch_len(geom.cin, osp, geom.cout, false, false, max_tasks())
    } else {
        conv_transpose_scratch_len(&tgeom, false, max_tasks())
    };
    let base = if direct {
        "conv_grad_input.direct"
    } else if pointwise {
        "conv_grad_input.gemm.pointwise"
    } else {
        "conv_grad_input.gemm.col2im"
    };
    Ok(Built::Kernel {
        outputs: vec![Fact::new(DType::F32, x)],
        kernel: Box::new(GradInput {
            name: kernel_name(base, Activation::None),
            geom,
            tgeom,
            taps,
            direct,
            pointwise,
            scratch,
        }),
    })
}

struct GradInput {
    name: String,
    geom: ConvGeom,
    tgeom: ConvGeom,
    taps: Taps,
    direct: bool,
    pointwise: bool,
    /// f32 scratch elements.
    scratch: usize,
}

impl Kernel for GradInput {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.geom.macs()
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (dy, w) = (inputs[0].f32(), inputs[1].f32());
        let dx = outputs[0].f32();
        if self.pointwise {
            let g = &self.geom;
            let osp = g.out_spatial();
            let exec = ParExec::new(ctx.par);
            let s = scratch_f32(ctx.scratch, self.scratch)?;
            let wt = MatRef::row_major(w, g.cout, g.cin)
                .ok_or(RunError::Unsupported("conv grad: W too short"))?
                .t();
            for b in 0..g.batch {
                let dyb = MatRef::row_major(&dy[b * g.cout * osp..], g.cout, osp)
                    .ok_or(RunError::Unsupported("conv grad: dY too short"))?;
                let dxb = &mut dx[b * g.cin * osp..][..g.cin * osp];
                gemm(isa(), &wt, &dyb, dxb, osp, &Epilogue::default(), s, &exec);
            }
            return Ok(());
        }
        if !self.direct {
            let exec = ParExec::new(ctx.par);
            let s = scratch_f32(ctx.scratch, self.scratch)?;
            conv_transpose_dynamic(
                isa(),
                &self.tgeom,
                w,
                None,
                Activation::None,
                dy,
                dx,
                s,
                &exec,
            );
            return Ok(());
        }
        let g = &self.geom;
        let t = &self.taps;
        let (isp, osp, ks, cout_g) = (t.input_len(), t.output_len(), t.window_len(), g.cout_g());
        // One input channel per group: channel `ci` of image `b` gathers
        // from output channels ci*cout_g .. (ci+1)*cout_g.
        ctx.par.for_each_chunk_mut(dx, isp, &|plane, dxp| {
            let (b, ci) = (plane / g.cin, plane % g.cin);
            dxp.fill(0.0);
            for co in ci * cout_g..(ci + 1) * cout_g {
                let dyp = &dy[(b * g.cout + co) * osp..][..osp];
                let wk = &w[co * ks..][..ks];
                let sx = t.stride[2];
                for (tap, &wv) in wk.iter().enumerate() {
                    t.rows(tap, |o, i, len| {
                        let src = &dyp[o..o + len];
                        if sx == 1 {
                            for (x, &d) in dxp[i..i + len].iter_mut().zip(src) {
                                *x += wv * d;
                            }
                        } else {
                            for (k, &d) in src.iter().enumerate() {
                                dxp[i + k * sx] += wv * d;
                            }
                        }
                    });
                }
            }
        });
        Ok(())
    }
}

fn build_grad_weight(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    ctx.expect_dtype(0, &[DType::F32])?;
    ctx.expect_dtype(1, &[DType::F32])?;
    let dy = ctx.fact(0)?.shape.clone();
    let x = ctx.fact(1)?.shape.clone();
    if x.len() < 3 {
        return Err(ctx.err(format!("X has shape {x:?}; expected rank 3 to 5")));
    }
    let kernel = shape_attr(ctx, "kernel_shape")?;
    if kernel.len() + 2 != x.len() {
        return Err(ctx.err(format!(
            "kernel_shape {kernel:?} needs {} values for X {x:?}",
            x.len() - 2
        )));
    }
    let group = ctx.node.attr_int("group", 1)?;
    if group < 1 || group as usize > x[1] || x[1] % group as usize != 0 {
        return Err(ctx.err(format!(
            "group {group} does not divide the {} input channels",
            x[1]
        )));
    }
    let cout = *dy
        .get(1)
        .ok_or_else(|| ctx.err(format!("dY has shape {dy:?}; expected rank >= 3")))?;
    let mut w = vec![cout, x[1] / group as usize];
    w.extend(&kernel);
    let (geom, taps) = forward_geom(ctx, &x, &w, &dy)?;
    let channels = ctx.node.attr_int("channels", cout as i64)?;
    if channels < 1 || channels as usize > cout {
        return Err(ctx.err(format!(
            "channels {channels} must be in 1..={cout} (the output channels)"
        )));
    }
    let channels = channels as usize;
    w[0] = channels;
    let direct = geom.cin_g() == 1 && geom.groups > 1;
    let depth = geom.cin_g() * geom.kernel_size();
    let osp = geom.out_spatial();
    let scratch = if direct {
        0
    } else {
        depth * osp + gemm_scratch_len(geom.cout_g(), depth, osp, false, false, max_tasks())
    };
    let with_bias = wants(ctx, 1);
    let outputs = fit_outputs(
        ctx,
        vec![Fact::new(DType::F32, w), Fact::new(DType::F32, vec![cout])],
    );
    let base = if direct {
        "conv_grad_weight.direct"
    } else {
        "conv_grad_weight.im2col.gemm"
    };
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(GradWeight {
            name: kernel_name(base, Activation::None),
            geom,
            taps,
            direct,
            scratch,
            with_bias,
            channels,
        }),
    })
}

struct GradWeight {
    name: String,
    geom: ConvGeom,
    taps: Taps,
    direct: bool,
    /// f32 scratch elements.
    scratch: usize,
    with_bias: bool,
    /// Output channels whose weight gradient is computed (the first ones).
    channels: usize,
}

/// im2col of one group of one image: row `(ci, tap)`, column = output
/// position, zero where the tap falls in the padding.
fn im2col(t: &Taps, cin_g: usize, x: &[f32], col: &mut [f32]) {
    let (isp, osp, ks) = (t.input_len(), t.output_len(), t.window_len());
    let sx = t.stride[2];
    for ci in 0..cin_g {
        let plane = &x[ci * isp..][..isp];
        for tap in 0..ks {
            let row = &mut col[(ci * ks + tap) * osp..][..osp];
            row.fill(0.0);
            t.rows(tap, |o, i, len| {
                let out = &mut row[o..o + len];
                if sx == 1 {
                    out.copy_from_slice(&plane[i..i + len]);
                } else {
                    for (k, v) in out.iter_mut().enumerate() {
                        *v = plane[i + k * sx];
                    }
                }
            });
        }
    }
}

impl Kernel for GradWeight {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn macs(&self) -> u64 {
        self.geom.macs() * self.channels as u64 / self.geom.cout.max(1) as u64
    }

    fn scratch_bytes(&self) -> usize {
        self.scratch * 4
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let (dy, x) = (inputs[0].f32(), inputs[1].f32());
        let g = &self.geom;
        let t = &self.taps;
        let (isp, osp, ks) = (t.input_len(), t.output_len(), t.window_len());
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        if self.with_bias {
            let db = outputs[1].f32();
            for (co, v) in db.iter_mut().enumerate() {
                let mut acc = 0.0f32;
                for b in 0..g.batch {
                    acc += dy[(b * g.cout + co) * osp..][..osp].iter().sum::<f32>();
                }
                *v = acc;
            }
        }
        // dW holds the first `channels` output channels only; the direct
        // path's chunks are exactly those.
        let dw = outputs[0].f32();
        if self.direct {
            ctx.par.for_each_chunk_mut(dw, ks, &|co, dwk| {
                let ci = co / cout_g;
                dwk.fill(0.0);
                for b in 0..g.batch {
                    let dyp = &dy[(b * g.cout + co) * osp..][..osp];
                    let xp = &x[(b * g.cin + ci) * isp..][..isp];
                    let sx = t.stride[2];
                    for (tap, acc) in dwk.iter_mut().enumerate() {
                        let mut s = 0.0f32;
                        t.rows(tap, |o, i, len| {
                            let d = &dyp[o..o + len];
                            if sx == 1 {
                                s += d
                                    .iter()
                                    .zip(&xp[i..i + len])
                                    .map(|(a, b)| a * b)
                                    .sum::<f32>();
                            } else {
                                s += d
                                    .iter()
                                    .enumerate()
                                    .map(|(k, a)| a * xp[i + k * sx])
                                    .sum::<f32>();
                            }
                        });
                        *acc += s;
                    }
                }
            });
            return Ok(());
        }
        let depth = cin_g * ks;
        let exec = ParExec::new(ctx.par);
        let s = scratch_f32(ctx.scratch, self.scratch)?;
        let (col, gs) = s.split_at_mut(depth * osp);
        for grp in 0..g.groups {
            let rows = self.channels.saturating_sub(grp * cout_g).min(cout_g);
            if rows == 0 {
                break;
            }
            let dwg = &mut dw[grp * cout_g * depth..][..rows * depth];
            for b in 0..g.batch {
                im2col(t, cin_g, &x[(b * g.cin + grp * cin_g) * isp..], col);
                let a = MatRef::row_major(&dy[(b * g.cout + grp * cout_g) * osp..], rows, osp)
                    .ok_or(RunError::Unsupported("conv grad: dY too short"))?;
                let bm = MatRef::row_major(col, depth, osp)
                    .ok_or(RunError::Unsupported("conv grad: scratch too short"))?
                    .t();
                let ep = Epilogue {
                    accumulate: b > 0,
                    ..Epilogue::default()
                };
                gemm(isa(), &a, &bm, dwg, depth, &ep, gs, &exec);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod channel_tests {
    use whittle_ir::{Attr, Node, Tensor};

    use super::super::tests::Rng;
    use super::DOMAIN;
    use crate::{eval_node, Registry};

    /// ConvGradWeight's dW and dB for `x` and `dy`, with an optional
    /// `channels` attribute.
    fn grad_weight(
        x: &Tensor,
        dy: &Tensor,
        kernel: &[i64],
        group: i64,
        channels: Option<i64>,
    ) -> (Tensor, Tensor) {
        let mut n = Node::new("gw", "ConvGradWeight", &["dy", "x"], &["dw", "db"]);
        n.domain = DOMAIN.to_string();
        n.attrs
            .insert("kernel_shape".into(), Attr::Ints(kernel.to_vec()));
        n.attrs
            .insert("pads".into(), Attr::Ints(vec![1; 2 * kernel.len()]));
        n.attrs.insert("group".into(), Attr::Int(group));
        if let Some(k) = channels {
            n.attrs.insert("channels".into(), Attr::Int(k));
        }
        let mut out = eval_node(
            &Registry::standard(),
            &n,
            &[Some(dy.clone()), Some(x.clone())],
            13,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let db = out.pop().unwrap();
        (out.pop().unwrap(), db)
    }

    /// The channel-subset gradient is exactly (bit for bit: the same
    /// sums in the same order) the first k output channels of the full
    /// one, for dense, grouped (k cutting a group in two) and depthwise
    /// convs; the bias gradient stays complete.
    #[test]
    fn channel_subset_is_the_prefix_of_the_full_gradient() {
        let mut rng = Rng::new(11);
        // (cin, cout, group, k)
        for (cin, cout, group, k) in [(3, 8, 1, 3), (4, 6, 2, 4), (4, 4, 4, 1), (4, 8, 4, 5)] {
            let x = rng.tensor(&[2, cin, 5, 5]);
            let dy = rng.tensor(&[2, cout, 5, 5]);
            let (full, db_full) = grad_weight(&x, &dy, &[3, 3], group, None);
            let (part, db) = grad_weight(&x, &dy, &[3, 3], group, Some(k));
            let mut want = full.shape().to_vec();
            want[0] = k as usize;
            assert_eq!(part.shape(), want.as_slice(), "cout {cout} group {group}");
            let per = full.numel() / cout;
            assert_eq!(
                part.as_f32().unwrap(),
                &full.as_f32().unwrap()[..k as usize * per],
                "cin {cin} cout {cout} group {group} k {k}"
            );
            assert_eq!(db, db_full);
        }
    }

    #[test]
    fn bad_channel_counts_are_errors() {
        let mut rng = Rng::new(12);
        let x = rng.tensor(&[1, 2, 4, 4]);
        let dy = rng.tensor(&[1, 3, 4, 4]);
        for k in [0, 4, -1] {
            let mut n = Node::new("gw", "ConvGradWeight", &["dy", "x"], &["dw"]);
            n.domain = DOMAIN.to_string();
            n.attrs
                .insert("kernel_shape".into(), Attr::Ints(vec![3, 3]));
            n.attrs.insert("pads".into(), Attr::Ints(vec![1; 4]));
            n.attrs.insert("channels".into(), Attr::Int(k));
            let err = eval_node(
                &Registry::standard(),
                &n,
                &[Some(dy.clone()), Some(x.clone())],
                13,
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("channels"), "{err}");
        }
    }
}
