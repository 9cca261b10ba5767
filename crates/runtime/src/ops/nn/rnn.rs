//! LSTM, GRU and RNN (opsets 7 to 22): forward, reverse and bidirectional,
//! per-batch `sequence_lens`, initial states, LSTM peepholes, custom
//! activations, `clip`, `input_forget`, GRU `linear_before_reset`, both
//! layouts, and every optional output.
//!
//! Per direction, the input projection of all time steps is one matrix
//! product (`X · Wᵀ + biases`); each step then adds `H · Rᵀ` and applies the
//! gate equations. Weights are transposed once (at build time when they are
//! constants, else into scratch), so every product streams rows of both
//! operands. The products go through [`gemm`], the seam where the shared
//! GEMM kernel plugs in.

use whittle_ir::DType;

use crate::op::{BuildCtx, Built, Kernel, RunCtx};
use crate::ops::nn::rnn_act::RnnAct;
use crate::{Fact, OpError, Registry, RunError, View, ViewMut};

/// Registers the recurrent ops.
pub fn register(r: &mut Registry) {
    r.add("LSTM", build_lstm);
    r.add("GRU", build_gru);
    r.add("RNN", build_rnn);
}

/// `c[i, j] (+)= sum_p a[i, p] * b[p, j]` for `i < m, j < n, p < k`, with
/// row strides `lda`, `ldb`, `ldc`; `accumulate` false overwrites `c`.
///
/// A plain row-streaming loop that the compiler vectorises along `j`. This is
/// the single place to switch to `whittle_kernels::gemm` once it lands.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    n: usize,
    k: usize,
    a: &[f32],
    lda: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    for i in 0..m {
        let row = &mut c[i * ldc..][..n];
        if !accumulate {
            row.fill(0.0);
        }
        for (p, &av) in a[i * lda..][..k].iter().enumerate() {
            if av == 0.0 {
                continue;
            }
            let brow = &b[p * ldb..][..n];
            row.iter_mut().zip(brow).for_each(|(c, &b)| *c += av * b);
        }
    }
}

/// Which recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Cell {
    Rnn,
    Gru { linear_before_reset: bool },
    Lstm { input_forget: bool },
}

impl Cell {
    /// Gate blocks in W and R.
    fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }

    /// Default activations of one direction.
    fn default_acts(self) -> &'static [RnnAct] {
        match self {
            Cell::Rnn => &[RnnAct::Tanh],
            Cell::Gru { .. } => &[RnnAct::Sigmoid, RnnAct::Tanh],
            Cell::Lstm { .. } => &[RnnAct::Sigmoid, RnnAct::Tanh, RnnAct::Tanh],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Cell::Rnn => "rnn",
            Cell::Gru { .. } => "gru",
            Cell::Lstm { .. } => "lstm",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

/// Sizes of one node.
#[derive(Clone, Copy, Debug)]
struct Dims {
    seq: usize,
    batch: usize,
    input: usize,
    hidden: usize,
    dirs: usize,
    /// `layout = 1`: batch-major X, Y, Y_h and Y_c.
    batch_major: bool,
}

impl Dims {
    /// Row of X (and of the input projection) for step `t` of batch `b`.
    fn x_row(&self, t: usize, b: usize) -> usize {
        if self.batch_major {
            b * self.seq + t
        } else {
            t * self.batch + b
        }
    }

    /// Offset of the state of batch `b`, direction `d` in initial_h,
    /// initial_c, Y_h and Y_c.
    fn state_at(&self, d: usize, b: usize) -> usize {
        let i = if self.batch_major {
            b * self.dirs + d
        } else {
            d * self.batch + b
        };
        i * self.hidden
    }

    /// Offset of (t, d, b) in Y.
    fn y_at(&self, t: usize, d: usize, b: usize) -> usize {
        let i = if self.batch_major {
            (b * self.seq + t) * self.dirs + d
        } else {
            (t * self.dirs + d) * self.batch + b
        };
        i * self.hidden
    }
}

/// Input positions (LSTM numbering; GRU and RNN stop at initial_h).
const X: usize = 0;
const W: usize = 1;
const R: usize = 2;
const B: usize = 3;
const SEQ_LENS: usize = 4;
const INIT_H: usize = 5;
const INIT_C: usize = 6;
const P: usize = 7;

fn build_lstm(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let input_forget = ctx.node.attr_int("input_forget", 0)? != 0;
    build(ctx, Cell::Lstm { input_forget })
}

fn build_gru(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    let linear_before_reset = ctx.node.attr_int("linear_before_reset", 0)? != 0;
    build(
        ctx,
        Cell::Gru {
            linear_before_reset,
        },
    )
}

fn build_rnn(ctx: &BuildCtx<'_>) -> Result<Built, OpError> {
    build(ctx, Cell::Rnn)
}

/// Checks an input's shape.
fn expect_shape(ctx: &BuildCtx<'_>, i: usize, name: &str, want: &[usize]) -> Result<(), OpError> {
    let f = ctx.fact(i)?;
    if f.shape != want {
        return Err(ctx.err(format!(
            "input {name} has shape {:?}; expected {want:?}",
            f.shape
        )));
    }
    Ok(())
}

fn build(ctx: &BuildCtx<'_>, cell: Cell) -> Result<Built, OpError> {
    let node = ctx.node;
    for i in [X, W, R, B, INIT_H, INIT_C, P] {
        if ctx.opt_input(i).is_some() {
            ctx.expect_dtype(i, &[DType::F32])?;
        }
    }
    let is_lstm = matches!(cell, Cell::Lstm { .. });
    if !is_lstm && ctx.num_inputs() > INIT_C {
        return Err(ctx.err(format!("{} takes at most 6 inputs", node.op_type)));
    }
    let x = ctx.fact(X)?.shape.clone();
    let w = ctx.fact(W)?.shape.clone();
    let r = ctx.fact(R)?.shape.clone();
    if x.len() != 3 || w.len() != 3 || r.len() != 3 {
        return Err(ctx.err(format!(
            "X, W and R must have rank 3; got {x:?}, {w:?}, {r:?}"
        )));
    }
    let batch_major = match node.attr_int("layout", 0)? {
        0 => false,
        1 => true,
        v => return Err(ctx.err(format!("layout must be 0 or 1, got {v}"))),
    };
    let direction = match node.attr_string("direction", "forward")?.as_str() {
        "forward" => Direction::Forward,
        "reverse" => Direction::Reverse,
        "bidirectional" => Direction::Bidirectional,
        other => return Err(ctx.err(format!("unknown direction '{other}'"))),
    };
    let dirs = if direction == Direction::Bidirectional {
        2
    } else {
        1
    };
    let hidden = r[2];
    if let Some(hs) = node.attr_int_opt("hidden_size")? {
        if hs != hidden as i64 {
            return Err(ctx.err(format!(
                "hidden_size {hs} does not match R's last dim {hidden}"
            )));
        }
    }
    let (seq, batch) = if batch_major {
        (x[1], x[0])
    } else {
        (x[0], x[1])
    };
    let d = Dims {
        seq,
        batch,
        input: x[2],
        hidden,
        dirs,
        batch_major,
    };
    let gh = cell.gates() * hidden;
    expect_shape(ctx, W, "W", &[dirs, gh, d.input])?;
    expect_shape(ctx, R, "R", &[dirs, gh, hidden])?;
    if ctx.opt_input(B).is_some() {
        expect_shape(ctx, B, "B", &[dirs, 2 * gh])?;
    }
    let state: Vec<usize> = if batch_major {
        vec![batch, dirs, hidden]
    } else {
        vec![dirs, batch, hidden]
    };
    if ctx.opt_input(INIT_H).is_some() {
        expect_shape(ctx, INIT_H, "initial_h", &state)?;
    }
    if is_lstm && ctx.opt_input(INIT_C).is_some() {
        expect_shape(ctx, INIT_C, "initial_c", &state)?;
    }
    if is_lstm && ctx.opt_input(P).is_some() {
        expect_shape(ctx, P, "P", &[dirs, 3 * hidden])?;
    }
    if ctx.opt_input(SEQ_LENS).is_some() {
        ctx.expect_dtype(SEQ_LENS, &[DType::I32, DType::I64])?;
        expect_shape(ctx, SEQ_LENS, "sequence_lens", &[batch])?;
    }

    // Activations: one list per direction.
    let per_dir = cell.default_acts().len();
    let acts = match node.attr_strings("activations")? {
        None => cell.default_acts().repeat(dirs),
        Some(names) => {
            let alphas = node.attr_floats("activation_alpha")?.unwrap_or(&[]);
            let betas = node.attr_floats("activation_beta")?.unwrap_or(&[]);
            let mut acts = RnnAct::parse_all(names, alphas, betas).map_err(|e| ctx.err(e))?;
            if acts.len() == per_dir && dirs == 2 {
                acts = acts.repeat(2);
            }
            if acts.len() != per_dir * dirs {
                return Err(ctx.err(format!(
                    "activations lists {} functions; expected {}",
                    acts.len(),
                    per_dir * dirs
                )));
            }
            acts
        }
    };
    let clip = match node.attr_float("clip", f32::INFINITY)? {
        c if c > 0.0 => (c.is_finite()).then_some(c),
        c => return Err(ctx.err(format!("clip must be positive, got {c}"))),
    };

    let mut kernel = RnnKernel {
        cell,
        d,
        direction,
        acts,
        clip,
        packed: None,
        has_bias: ctx.opt_input(B).is_some(),
        has_peepholes: is_lstm && ctx.opt_input(P).is_some(),
    };
    // Weights known now are packed now.
    let value = |i: usize| ctx.opt_input(i).and_then(|f| f.value);
    let constant = value(W).is_some()
        && value(R).is_some()
        && (!kernel.has_bias || value(B).is_some())
        && (!kernel.has_peepholes || value(P).is_some());
    if constant {
        let mut buf = vec![0.0; kernel.packed_len() * dirs];
        let get = |i: usize| -> Result<&[f32], OpError> {
            Ok(match value(i) {
                Some(t) => t.as_f32()?,
                None => &[],
            })
        };
        let (wv, rv, bv, pv) = (get(W)?, get(R)?, get(B)?, get(P)?);
        for (dir, chunk) in buf.chunks_exact_mut(kernel.packed_len()).enumerate() {
            kernel.pack(dir, wv, rv, bv, pv, chunk);
        }
        kernel.packed = Some(buf);
    }

    let mut y_shape = if batch_major {
        vec![batch, seq, dirs, hidden]
    } else {
        vec![seq, dirs, batch, hidden]
    };
    if seq == 0 {
        y_shape.fill(0);
    }
    let n_out = node.outputs.len().clamp(1, if is_lstm { 3 } else { 2 });
    let mut outputs = vec![Fact::new(DType::F32, y_shape)];
    outputs.resize(n_out, Fact::new(DType::F32, state));
    Ok(Built::Kernel {
        outputs,
        kernel: Box::new(kernel),
    })
}

/// The prepared recurrent op.
struct RnnKernel {
    cell: Cell,
    d: Dims,
    direction: Direction,
    /// `per_dir` activations for each direction.
    acts: Vec<RnnAct>,
    clip: Option<f32>,
    /// Packed weights of every direction when they were constants.
    packed: Option<Vec<f32>>,
    has_bias: bool,
    has_peepholes: bool,
}

/// Packed weights of one direction, as slices of a [`RnnKernel::packed_len`]
/// buffer.
struct DirWeights<'a> {
    /// Wᵀ: input x gates.
    wt: &'a [f32],
    /// Rᵀ: hidden x gates.
    rt: &'a [f32],
    /// Bias added to the input projection: Wb + Rb, except the GRU
    /// candidate gate with linear_before_reset, which only gets Wb.
    bias: &'a [f32],
    /// Rb of the GRU candidate gate (linear_before_reset only).
    rbh: &'a [f32],
    /// LSTM peepholes (i, o, f); zeros when absent.
    peep: &'a [f32],
}

impl RnnKernel {
    fn gh(&self) -> usize {
        self.cell.gates() * self.d.hidden
    }

    /// Floats of one direction's packed weights.
    fn packed_len(&self) -> usize {
        let (h, gh) = (self.d.hidden, self.gh());
        gh * self.d.input + gh * h + gh + h + 3 * h
    }

    fn split<'a>(&self, buf: &'a [f32]) -> DirWeights<'a> {
        let (h, gh) = (self.d.hidden, self.gh());
        let (wt, rest) = buf.split_at(gh * self.d.input);
        let (rt, rest) = rest.split_at(gh * h);
        let (bias, rest) = rest.split_at(gh);
        let (rbh, peep) = rest.split_at(h);
        DirWeights {
            wt,
            rt,
            bias,
            rbh,
            peep: &peep[..3 * h],
        }
    }

    /// Transposes direction `dir` of W and R and folds the biases into
    /// `out` (`packed_len` floats). Empty `b` / `p` mean absent.
    fn pack(&self, dir: usize, w: &[f32], r: &[f32], b: &[f32], p: &[f32], out: &mut [f32]) {
        let (h, gh, inp) = (self.d.hidden, self.gh(), self.d.input);
        let (wt, rest) = out.split_at_mut(gh * inp);
        let (rt, rest) = rest.split_at_mut(gh * h);
        let (bias, rest) = rest.split_at_mut(gh);
        let (rbh, peep) = rest.split_at_mut(h);
        let w = &w[dir * gh * inp..][..gh * inp];
        for g in 0..gh {
            for i in 0..inp {
                wt[i * gh + g] = w[g * inp + i];
            }
        }
        let r = &r[dir * gh * h..][..gh * h];
        for g in 0..gh {
            for k in 0..h {
                rt[k * gh + g] = r[g * h + k];
            }
        }
        bias.fill(0.0);
        rbh.fill(0.0);
        if !b.is_empty() {
            let b = &b[dir * 2 * gh..][..2 * gh];
            let (wb, rb) = b.split_at(gh);
            let lbr = matches!(
                self.cell,
                Cell::Gru {
                    linear_before_reset: true
                }
            );
            for g in 0..gh {
                bias[g] = wb[g];
                if lbr && g >= 2 * h {
                    rbh[g - 2 * h] = rb[g];
                } else {
                    bias[g] += rb[g];
                }
            }
        }
        peep.fill(0.0);
        if !p.is_empty() {
            peep[..3 * h].copy_from_slice(&p[dir * 3 * h..][..3 * h]);
        }
    }

    /// Scratch floats: packed weights (if not constant), the input
    /// projection, recurrent products, states and the GRU reset product.
    fn scratch_floats(&self) -> usize {
        let d = &self.d;
        let packed = if self.packed.is_some() {
            0
        } else {
            self.packed_len()
        };
        packed + d.seq * d.batch * self.gh() + d.batch * self.gh() + 3 * d.batch * d.hidden
    }

    fn clip(&self, x: f32) -> f32 {
        match self.clip {
            Some(c) => x.clamp(-c, c),
            None => x,
        }
    }

    /// Runs direction `dir`, writing its slices of Y, Y_h and Y_c.
    #[allow(clippy::too_many_arguments)]
    fn run_direction(
        &self,
        dir: usize,
        reverse: bool,
        wts: &DirWeights<'_>,
        inputs: &[View<'_>],
        lens: &Lens<'_>,
        outs: &mut [&mut [f32]; 3],
        scratch: &mut [f32],
    ) {
        let d = &self.d;
        let (h, gh, nb) = (d.hidden, self.gh(), d.batch);
        let (xw, rest) = scratch.split_at_mut(d.seq * nb * gh);
        let (rec, rest) = rest.split_at_mut(nb * gh);
        let (hs, rest) = rest.split_at_mut(nb * h);
        let (cs, rest) = rest.split_at_mut(nb * h);
        let tmp = &mut rest[..nb * h];
        let per_dir = self.cell.default_acts().len();
        let acts = &self.acts[dir * per_dir..][..per_dir];

        // Input projection of every step at once, biases folded in.
        for row in xw.chunks_exact_mut(gh) {
            row.copy_from_slice(wts.bias);
        }
        let rows = d.seq * nb;
        gemm(
            rows,
            gh,
            d.input,
            inputs[X].f32(),
            d.input,
            wts.wt,
            gh,
            xw,
            gh,
            true,
        );

        // Initial states.
        for b in 0..nb {
            let at = d.state_at(dir, b);
            let init =
                |i: usize, dst: &mut [f32]| match inputs.get(i).filter(|v| !v.bytes().is_empty()) {
                    Some(v) => dst.copy_from_slice(&v.f32()[at..][..h]),
                    None => dst.fill(0.0),
                };
            init(INIT_H, &mut hs[b * h..][..h]);
            if matches!(self.cell, Cell::Lstm { .. }) {
                init(INIT_C, &mut cs[b * h..][..h]);
            }
        }

        for s in 0..d.seq {
            let step_t = |b: usize| -> Option<usize> {
                let len = lens.get(b);
                (s < len).then(|| if reverse { len - 1 - s } else { s })
            };
            match self.cell {
                Cell::Rnn => {
                    gemm(nb, gh, h, hs, h, wts.rt, gh, rec, gh, false);
                    for b in 0..nb {
                        let Some(t) = step_t(b) else { continue };
                        let xr = &xw[d.x_row(t, b) * gh..][..gh];
                        let hb = &mut hs[b * h..][..h];
                        for j in 0..h {
                            hb[j] = acts[0].apply(self.clip(xr[j] + rec[b * gh + j]));
                        }
                    }
                }
                Cell::Lstm { input_forget } => {
                    gemm(nb, gh, h, hs, h, wts.rt, gh, rec, gh, false);
                    let (pi, po, pf) = (&wts.peep[..h], &wts.peep[h..2 * h], &wts.peep[2 * h..]);
                    let (f, g, hh) = (acts[0], acts[1], acts[2]);
                    for b in 0..nb {
                        let Some(t) = step_t(b) else { continue };
                        let xr = &xw[d.x_row(t, b) * gh..][..gh];
                        let rr = &rec[b * gh..][..gh];
                        let (hb, cb) = (&mut hs[b * h..][..h], &mut cs[b * h..][..h]);
                        for j in 0..h {
                            let c_prev = cb[j];
                            let gate = |k: usize| xr[k * h + j] + rr[k * h + j];
                            let i = f.apply(self.clip(gate(0) + pi[j] * c_prev));
                            let fg = if input_forget {
                                1.0 - i
                            } else {
                                f.apply(self.clip(gate(2) + pf[j] * c_prev))
                            };
                            let cand = g.apply(self.clip(gate(3)));
                            let c = fg * c_prev + i * cand;
                            let o = f.apply(self.clip(gate(1) + po[j] * c));
                            cb[j] = c;
                            hb[j] = o * hh.apply(c);
                        }
                    }
                }
                Cell::Gru {
                    linear_before_reset,
                } => {
                    // z and r need H·Rᵀ; the candidate needs either H·Rhᵀ
                    // (linear_before_reset) or (r ⊙ H)·Rhᵀ, known only
                    // after r.
                    let n = if linear_before_reset { gh } else { 2 * h };
                    gemm(nb, n, h, hs, h, wts.rt, gh, rec, gh, false);
                    let (f, g) = (acts[0], acts[1]);
                    for b in 0..nb {
                        let Some(t) = step_t(b) else {
                            tmp[b * h..][..h].fill(0.0);
                            continue;
                        };
                        let xr = &xw[d.x_row(t, b) * gh..][..gh];
                        let rr = &mut rec[b * gh..][..gh];
                        for j in 0..2 * h {
                            rr[j] = f.apply(self.clip(xr[j] + rr[j]));
                        }
                        for j in 0..h {
                            tmp[b * h + j] = rr[h + j] * hs[b * h + j];
                        }
                    }
                    if !linear_before_reset {
                        let (rec_h, rt_h) = (&mut rec[2 * h..], &wts.rt[2 * h..]);
                        gemm(nb, h, h, tmp, h, rt_h, gh, rec_h, gh, false);
                    }
                    for b in 0..nb {
                        let Some(t) = step_t(b) else { continue };
                        let xr = &xw[d.x_row(t, b) * gh..][..gh];
                        let rr = &rec[b * gh..][..gh];
                        let hb = &mut hs[b * h..][..h];
                        for j in 0..h {
                            let (z, r) = (rr[j], rr[h + j]);
                            let rec_h = if linear_before_reset {
                                r * (rr[2 * h + j] + wts.rbh[j])
                            } else {
                                rr[2 * h + j]
                            };
                            let cand = g.apply(self.clip(xr[2 * h + j] + rec_h));
                            hb[j] = (1.0 - z) * cand + z * hb[j];
                        }
                    }
                }
            }
            if !outs[0].is_empty() {
                for b in 0..nb {
                    if let Some(t) = step_t(b) {
                        outs[0][d.y_at(t, dir, b)..][..h].copy_from_slice(&hs[b * h..][..h]);
                    }
                }
            }
        }
        for b in 0..nb {
            let at = d.state_at(dir, b);
            if !outs[1].is_empty() {
                outs[1][at..][..h].copy_from_slice(&hs[b * h..][..h]);
            }
            if !outs[2].is_empty() {
                outs[2][at..][..h].copy_from_slice(&cs[b * h..][..h]);
            }
        }
    }
}

impl Kernel for RnnKernel {
    fn name(&self) -> String {
        let dir = match self.direction {
            Direction::Forward => "",
            Direction::Reverse => ".reverse",
            Direction::Bidirectional => ".bidirectional",
        };
        format!("{}{dir}.loops", self.cell.name())
    }

    fn macs(&self) -> u64 {
        let d = &self.d;
        (d.dirs * d.seq * d.batch * self.gh() * (d.input + d.hidden)) as u64
    }

    fn scratch_bytes(&self) -> usize {
        4 * self.scratch_floats()
    }

    fn weight_bytes(&self) -> usize {
        self.packed.as_ref().map_or(0, |p| 4 * p.len())
    }

    fn run(
        &self,
        inputs: &[View<'_>],
        outputs: &mut [ViewMut<'_>],
        ctx: &mut RunCtx<'_>,
    ) -> Result<(), RunError> {
        let d = self.d;
        let lens = match inputs.get(SEQ_LENS).filter(|v| !v.bytes().is_empty()) {
            None => Lens::Full(d.seq),
            Some(v) if v.dtype() == DType::I32 => Lens::I32(v.i32()),
            Some(v) => Lens::I64(v.i64()),
        };
        for b in 0..d.batch {
            let v = lens.raw(b);
            if !(0..=d.seq as i64).contains(&v) {
                return Err(RunError::IndexOutOfRange {
                    index: v,
                    size: d.seq + 1,
                });
            }
        }

        let scratch: &mut [f32] =
            bytemuck::cast_slice_mut(&mut ctx.scratch[..self.scratch_bytes()]);
        let (packed_buf, work) = scratch.split_at_mut(if self.packed.is_some() {
            0
        } else {
            self.packed_len()
        });
        let mut outs: [&mut [f32]; 3] = [&mut [], &mut [], &mut []];
        for (o, v) in outs.iter_mut().zip(outputs.iter_mut()) {
            // Unrequested outputs may arrive as empty (unaligned) views.
            if !v.bytes_ref().is_empty() {
                *o = v.f32();
            }
        }
        // Steps past a batch's length leave zeros in Y.
        outs[0].fill(0.0);
        for dir in 0..d.dirs {
            let reverse = match self.direction {
                Direction::Forward => false,
                Direction::Reverse => true,
                Direction::Bidirectional => dir == 1,
            };
            let wts = match &self.packed {
                Some(p) => self.split(&p[dir * self.packed_len()..][..self.packed_len()]),
                None => {
                    // Omitted inputs are empty views, possibly unaligned.
                    let get = |i: usize| match inputs.get(i) {
                        Some(v) if !v.bytes().is_empty() => v.f32(),
                        _ => &[][..],
                    };
                    self.pack(dir, get(W), get(R), get(B), get(P), packed_buf);
                    self.split(packed_buf)
                }
            };
            self.run_direction(dir, reverse, &wts, inputs, &lens, &mut outs, work);
        }
        Ok(())
    }
}

/// Per-batch sequence lengths: all `seq`, or read from sequence_lens
/// (validated before use).
enum Lens<'a> {
    Full(usize),
    I32(&'a [i32]),
    I64(&'a [i64]),
}

impl Lens<'_> {
    fn raw(&self, b: usize) -> i64 {
        match self {
            Lens::Full(n) => *n as i64,
            Lens::I32(v) => i64::from(v[b]),
            Lens::I64(v) => v[b],
        }
    }

    /// Length of batch `b`; only called after validation.
    fn get(&self, b: usize) -> usize {
        self.raw(b) as usize
    }
}

#[cfg(test)]
#[path = "rnn_tests.rs"]
mod tests;
