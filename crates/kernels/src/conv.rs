//! Dense and grouped convolution over NCHW tensors (1, 2 or 3 spatial dims)
//! as GEMM. On CPUs with AVX-512, 2-D convs and every pointwise conv run the
//! implicit GEMM of [`crate::conv_shift`] (no im2col; pointwise reads the
//! input in place). Otherwise a 1x1 stride-1 unpadded conv multiplies the
//! weights straight into the input, and any other conv packs im2col columns
//! straight into the GEMM's B panels (no separate im2col buffer). Weights
//! are packed once, in the layout of the algorithm chosen at construction.
//! ConvTranspose is a GEMM into a column buffer followed by col2im. Bias
//! and activation are fused into the epilogue.

use alloc::vec::Vec;

use crate::conv_shift::{conv_shift, shift_scratch_len, shift_supported, PackedRows, ShiftPlan};
use crate::gemm::{
    for_each_chunk_mut, gemm, gemm_scratch_len, Bias, Epilogue, Exec, Isa, Lhs, MatRef, PackedA,
    Rhs, NR,
};
use crate::Activation;

/// Shape of a convolution. Spatial arrays are `[depth, height, width]`;
/// lower-rank convs use leading 1s (kernel 1, stride 1, pad 0). For a
/// ConvTranspose, `input`/`cin` describe X and `output`/`cout` describe Y.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeom {
    /// Batch size.
    pub batch: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Channel groups; divides `cin` and `cout`.
    pub groups: usize,
    /// Input spatial size.
    pub input: [usize; 3],
    /// Kernel spatial size.
    pub kernel: [usize; 3],
    /// Strides.
    pub stride: [usize; 3],
    /// Dilations.
    pub dilation: [usize; 3],
    /// Padding before each spatial dim (padding after is implied by
    /// `output`).
    pub pad_begin: [usize; 3],
    /// Output spatial size.
    pub output: [usize; 3],
}

impl ConvGeom {
    /// Input channels per group.
    pub fn cin_g(&self) -> usize {
        self.cin / self.groups.max(1)
    }
    /// Output channels per group.
    pub fn cout_g(&self) -> usize {
        self.cout / self.groups.max(1)
    }
    /// Elements per input channel.
    pub fn in_spatial(&self) -> usize {
        self.input.iter().product()
    }
    /// Elements per output channel.
    pub fn out_spatial(&self) -> usize {
        self.output.iter().product()
    }
    /// Kernel taps per channel.
    pub fn kernel_size(&self) -> usize {
        self.kernel.iter().product()
    }
    /// True when every dimension is consistent: groups divide the channels,
    /// strides and dilations are positive.
    pub fn is_valid(&self) -> bool {
        self.groups > 0
            && self.cin.is_multiple_of(self.groups)
            && self.cout.is_multiple_of(self.groups)
            && self.stride.iter().all(|&s| s > 0)
            && self.dilation.iter().all(|&d| d > 0)
            && self.kernel.iter().all(|&k| k > 0)
    }
    /// A 1x1, stride-1, unpadded conv whose output grid is its input grid:
    /// a plain GEMM on the input.
    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1; 3]
            && self.stride == [1; 3]
            && self.pad_begin == [0; 3]
            && self.input == self.output
    }
    /// Multiply-accumulates of one run of the conv (also of the transpose).
    pub fn macs(&self) -> u64 {
        let per_out = (self.cin_g() * self.kernel_size()) as u64;
        let spatial = if self.output.iter().product::<usize>() == 0 {
            0
        } else {
            self.out_spatial() as u64
        };
        self.batch as u64 * self.cout as u64 * spatial * per_out
    }
    /// The conv output size of one dim, or `None` when the kernel does not
    /// fit: `(input + pads - dilation * (kernel - 1) - 1) / stride + 1`.
    pub fn conv_out_dim(
        input: usize,
        kernel: usize,
        stride: usize,
        dilation: usize,
        pads: usize,
    ) -> Option<usize> {
        let span = dilation
            .checked_mul(kernel.checked_sub(1)?)?
            .checked_add(1)?;
        let padded = input.checked_add(pads)?;
        (stride > 0 && padded >= span).then(|| (padded - span) / stride + 1)
    }
}

/// im2col of one group of one image, as GEMM B panels: row `(ci, kz, ky,
/// kx)`, column `(oz, oy, ox)`.
struct Im2Col<'a> {
    x: &'a [f32],
    g: &'a ConvGeom,
}

/// A run of output columns in one output row and one B panel: its
/// destination in the panel layout is contiguous, its source a strided run
/// of one input row.
#[derive(Clone, Copy, Default)]
struct Seg {
    /// Offset of the first column in the packed block, excluding the row
    /// term `p * NR`.
    dst: usize,
    oz: usize,
    oy: usize,
    ox0: usize,
    len: usize,
}

/// Columns handled per segment list.
const SEG_COLS: usize = 128;

impl Im2Col<'_> {
    /// Packs rows `k0..k0+kc` of columns `j0..j0+nc` into `dst`.
    fn pack(&self, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        let g = self.g;
        let [_, oh, ow] = g.output;
        let mut segs = [Seg::default(); SEG_COLS + SEG_COLS / NR + 2];
        for c0 in (0..nc).step_by(SEG_COLS) {
            let c1 = (c0 + SEG_COLS).min(nc);
            // Split columns c0..c1 at output-row and panel boundaries.
            let mut n = 0;
            let mut jj = c0;
            let (mut line, mut ox) = ((j0 + jj) / ow, (j0 + jj) % ow);
            while jj < c1 {
                let len = (ow - ox).min(c1 - jj).min(NR - jj % NR);
                segs[n] = Seg {
                    dst: (jj / NR) * NR * kc + jj % NR,
                    oz: line / oh,
                    oy: line % oh,
                    ox0: ox,
                    len,
                };
                n += 1;
                jj += len;
                ox += len;
                if ox == ow {
                    ox = 0;
                    line += 1;
                }
            }
            for p in 0..kc {
                self.pack_row(k0 + p, p, &segs[..n], dst);
            }
        }
    }

    /// Writes row `kk` of every segment into panel row `p`.
    fn pack_row(&self, kk: usize, p: usize, segs: &[Seg], dst: &mut [f32]) {
        let g = self.g;
        let [id, ih, iw] = g.input;
        let [_, kh, kw] = g.kernel;
        let ks = g.kernel_size();
        let (ci, r) = (kk / ks, kk % ks);
        let (kz, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
        let chan = &self.x[ci * g.in_spatial()..][..g.in_spatial()];
        // Offsets from the output coordinate (times stride) to the input.
        let off = |k: usize, d: usize| (k * g.dilation[d]) as isize - g.pad_begin[d] as isize;
        let (oz_off, oy_off, ox_off) = (off(kz, 0), off(ky, 1), off(kx, 2));
        let sx = g.stride[2];
        // Valid output columns of this kernel column: 0 <= ox*sx + ox_off < iw.
        let ox_lo = if ox_off >= 0 {
            0
        } else {
            ((-ox_off) as usize).div_ceil(sx)
        };
        let ox_hi = if (iw as isize) <= ox_off {
            0
        } else {
            ((iw as isize - ox_off) as usize).div_ceil(sx)
        };
        for s in segs {
            let out = &mut dst[s.dst + p * NR..][..s.len];
            let iz = (s.oz * g.stride[0]) as isize + oz_off;
            let iy = (s.oy * g.stride[1]) as isize + oy_off;
            if iz < 0 || iz >= id as isize || iy < 0 || iy >= ih as isize {
                out.fill(0.0);
                continue;
            }
            let row = &chan[(iz as usize * ih + iy as usize) * iw..][..iw];
            if s.ox0 >= ox_lo && s.ox0 + s.len <= ox_hi {
                // Whole segment inside the row: the common case.
                let src = &row[((s.ox0 * sx) as isize + ox_off) as usize..];
                if sx == 1 {
                    if s.len == NR {
                        let out: &mut [f32; NR] = out.try_into().expect("NR long");
                        out.copy_from_slice(&src[..NR]);
                    } else {
                        out.copy_from_slice(&src[..s.len]);
                    }
                } else if s.len == NR {
                    // Fixed trip count and indexing let LLVM turn the
                    // strided gather into shuffles.
                    let src = &src[..(NR - 1) * sx + 1];
                    for (i, v) in out.iter_mut().enumerate() {
                        *v = src[i * sx];
                    }
                } else {
                    for (v, x) in out.iter_mut().zip(src.iter().step_by(sx)) {
                        *v = *x;
                    }
                }
                continue;
            }
            let lo = ox_lo.clamp(s.ox0, s.ox0 + s.len);
            let hi = ox_hi.clamp(lo, s.ox0 + s.len);
            out[..lo - s.ox0].fill(0.0);
            out[hi - s.ox0..].fill(0.0);
            let valid = &mut out[lo - s.ox0..hi - s.ox0];
            if !valid.is_empty() {
                let first = ((lo * sx) as isize + ox_off) as usize;
                for (v, x) in valid.iter_mut().zip(row[first..].iter().step_by(sx)) {
                    *v = *x;
                }
            }
        }
    }
}

impl Rhs for Im2Col<'_> {
    fn k(&self) -> usize {
        self.g.cin_g() * self.g.kernel_size()
    }
    fn n(&self) -> usize {
        self.g.out_spatial()
    }
    fn is_prepacked(&self) -> bool {
        false
    }
    fn panels<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        let len = nc.div_ceil(NR) * NR * kc;
        let dst = &mut buf[..len];
        self.pack(k0, kc, j0, nc, dst);
        let tail = nc % NR;
        if tail != 0 {
            let last = &mut dst[(nc / NR) * NR * kc..];
            for row in last.chunks_exact_mut(NR) {
                row[tail..].fill(0.0);
            }
        }
        dst
    }
}

/// Which GEMM form a conv runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvAlgo {
    /// 1x1 stride-1 unpadded: the input is B as it is.
    Pointwise,
    /// im2col packed into B panels.
    Im2col,
    /// Implicit GEMM over zero-padded phase planes (see [`crate::conv_shift`]).
    Shift,
    /// The same, with tiles vectorised over output channels (small maps).
    ShiftPixels,
}

/// A convolution with weights packed ahead of time.
#[derive(Clone, Debug)]
pub struct Conv {
    geom: ConvGeom,
    weights: ConvWeights,
    bias: Option<Vec<f32>>,
    act: Activation,
}

/// Weights in the layout of the algorithm chosen at construction.
#[derive(Clone, Debug)]
enum ConvWeights {
    /// GEMM A panels per group (pointwise and im2col).
    Gemm(Vec<PackedA>),
    /// Row panels per group for the implicit-GEMM kernel.
    Shift {
        plan: ShiftPlan,
        weights: Vec<PackedRows>,
    },
}

/// Runs one conv with any A form (packed per group, or strided).
#[allow(clippy::too_many_arguments)]
fn run_conv<A: Lhs>(
    isa: Isa,
    g: &ConvGeom,
    weight: &dyn Fn(usize) -> A,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let (isp, osp) = (g.in_spatial(), g.out_spatial());
    assert!(x.len() >= g.batch * g.cin * isp, "conv: input too short");
    assert!(y.len() >= g.batch * g.cout * osp, "conv: output too short");
    for b in 0..g.batch {
        for grp in 0..g.groups {
            let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
            let yg = &mut y[(b * g.cout + grp * cout_g) * osp..][..cout_g * osp];
            let ep = Epilogue::new(
                bias.map_or(Bias::None, |v| Bias::PerRow(&v[grp * cout_g..][..cout_g])),
                act,
            );
            let a = weight(grp);
            if g.is_pointwise() {
                let bm = MatRef::row_major(xg, cin_g, isp).expect("sized above");
                gemm(isa, &a, &bm, yg, osp, &ep, scratch, exec);
            } else {
                gemm(isa, &a, &Im2Col { x: xg, g }, yg, osp, &ep, scratch, exec);
            }
        }
    }
}

impl Conv {
    /// Packs weights `[cout, cin/groups, kernel...]` (row-major) and an
    /// optional bias `[cout]`.
    ///
    /// # Panics
    /// If the geometry is invalid or a slice is too short.
    pub fn new(geom: ConvGeom, weights: &[f32], bias: Option<&[f32]>, act: Activation) -> Conv {
        Conv::build(geom, weights, bias, act, true)
    }

    /// Like [`Conv::new`], but always packs for the GEMM forms (pointwise
    /// or im2col), never the implicit GEMM: for comparisons.
    ///
    /// # Panics
    /// As [`Conv::new`].
    pub fn new_im2col(
        geom: ConvGeom,
        weights: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
    ) -> Conv {
        Conv::build(geom, weights, bias, act, false)
    }

    fn build(
        geom: ConvGeom,
        weights: &[f32],
        bias: Option<&[f32]>,
        act: Activation,
        allow_shift: bool,
    ) -> Conv {
        assert!(geom.is_valid(), "conv: invalid geometry");
        let (cout_g, depth) = (geom.cout_g(), geom.cin_g() * geom.kernel_size());
        let group_w = |grp: usize| &weights[grp * cout_g * depth..][..cout_g * depth];
        let shift = ShiftPlan::new(&geom)
            .or_else(|| ShiftPlan::pointwise(&geom))
            .filter(|_| allow_shift && shift_supported(Isa::detect()));
        let packed = match shift {
            Some(plan) => ConvWeights::Shift {
                weights: (0..geom.groups)
                    .map(|grp| PackedRows::new(group_w(grp), cout_g, depth, plan.panel_width()))
                    .collect(),
                plan,
            },
            None => ConvWeights::Gemm(
                (0..geom.groups)
                    .map(|grp| {
                        let w = MatRef::row_major(group_w(grp), cout_g, depth);
                        PackedA::new(w.expect("sized above"))
                    })
                    .collect(),
            ),
        };
        if let Some(b) = bias {
            assert!(b.len() >= geom.cout, "conv: bias too short");
        }
        Conv {
            bias: bias.map(|b| b[..geom.cout].to_vec()),
            geom,
            weights: packed,
            act,
        }
    }

    /// The geometry.
    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }

    /// Which GEMM form runs.
    pub fn algo(&self) -> ConvAlgo {
        match &self.weights {
            ConvWeights::Shift { plan, .. } if plan.is_pixel_major() => ConvAlgo::ShiftPixels,
            ConvWeights::Shift { .. } => ConvAlgo::Shift,
            ConvWeights::Gemm(_) if self.geom.is_pointwise() => ConvAlgo::Pointwise,
            ConvWeights::Gemm(_) => ConvAlgo::Im2col,
        }
    }

    /// Bytes of packed weights and bias.
    pub fn weight_bytes(&self) -> usize {
        let w = match &self.weights {
            ConvWeights::Gemm(w) => w.iter().map(PackedA::bytes).sum::<usize>(),
            ConvWeights::Shift { weights, .. } => weights.iter().map(PackedRows::bytes).sum(),
        };
        w + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// Scratch floats for [`Conv::run`] with up to `tasks` tasks (whatever
    /// instruction set it runs with).
    pub fn scratch_len(&self, tasks: usize) -> usize {
        match &self.weights {
            ConvWeights::Gemm(_) => conv_scratch_len(&self.geom, true, tasks),
            // Without AVX-512 the im2col GEMM runs, packing A at run time.
            ConvWeights::Shift { plan, .. } => {
                shift_scratch_len(plan).max(conv_scratch_len(&self.geom, false, tasks))
            }
        }
    }

    /// `y = act(conv(x) + bias)`; `x` is `[batch, cin, input...]`, `y` is
    /// `[batch, cout, output...]`.
    pub fn run(&self, isa: Isa, x: &[f32], y: &mut [f32], scratch: &mut [f32], exec: &dyn Exec) {
        let (bias, act) = (self.bias.as_deref(), self.act);
        match &self.weights {
            ConvWeights::Gemm(w) => {
                run_conv(isa, &self.geom, &|g| &w[g], bias, act, x, y, scratch, exec)
            }
            ConvWeights::Shift { plan, weights } if shift_supported(isa) => {
                let g = &self.geom;
                let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
                let (isp, osp) = (g.in_spatial(), g.out_spatial());
                assert!(x.len() >= g.batch * g.cin * isp, "conv: input too short");
                assert!(y.len() >= g.batch * g.cout * osp, "conv: output too short");
                for b in 0..g.batch {
                    for (grp, w) in weights.iter().enumerate() {
                        let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
                        let yg = &mut y[(b * g.cout + grp * cout_g) * osp..][..cout_g * osp];
                        let bg = bias.map(|v| &v[grp * cout_g..][..cout_g]);
                        conv_shift(isa, plan, w, bg, act, xg, yg, scratch, exec);
                    }
                }
            }
            ConvWeights::Shift { weights, .. } => run_conv(
                isa,
                &self.geom,
                &|g| &weights[g],
                bias,
                act,
                x,
                y,
                scratch,
                exec,
            ),
        }
    }
}

/// Scratch floats of a conv, with weights pre-packed or packed at run time.
pub fn conv_scratch_len(g: &ConvGeom, weights_packed: bool, tasks: usize) -> usize {
    gemm_scratch_len(
        g.cout_g(),
        g.out_spatial(),
        g.cin_g() * g.kernel_size(),
        weights_packed,
        false,
        tasks,
    )
}

/// A conv whose weights are only known at run time (packed into scratch);
/// see [`conv_scratch_len`] with `weights_packed = false`.
#[allow(clippy::too_many_arguments)]
pub fn conv_dynamic(
    isa: Isa,
    geom: &ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    assert!(geom.is_valid(), "conv: invalid geometry");
    let (cout_g, depth) = (geom.cout_g(), geom.cin_g() * geom.kernel_size());
    assert!(
        weights.len() >= geom.cout * depth,
        "conv: weights too short"
    );
    let weight = |grp: usize| {
        MatRef::row_major(&weights[grp * cout_g * depth..], cout_g, depth).expect("sized above")
    };
    run_conv(isa, geom, &weight, bias, act, x, y, scratch, exec);
}

/// A transposed convolution: per group, `col = W_g^T X_g` by GEMM, then
/// col2im scatters the columns into Y.
#[derive(Clone, Debug)]
pub struct ConvTranspose {
    geom: ConvGeom,
    weights: Vec<PackedA>,
    bias: Option<Vec<f32>>,
    act: Activation,
}

impl ConvTranspose {
    /// Packs weights `[cin, cout/groups, kernel...]` and an optional bias
    /// `[cout]`. `geom.input`/`geom.output` are X's and Y's spatial sizes;
    /// `pad_begin` is the padding removed at the start of each dim.
    ///
    /// # Panics
    /// If the geometry is invalid or a slice is too short.
    pub fn new(geom: ConvGeom, weights: &[f32], bias: Option<&[f32]>, act: Activation) -> Self {
        assert!(geom.is_valid(), "conv_transpose: invalid geometry");
        let (cin_g, rows) = (geom.cin_g(), geom.cout_g() * geom.kernel_size());
        let packed = (0..geom.groups)
            .map(|grp| {
                let w = &weights[grp * cin_g * rows..][..cin_g * rows];
                PackedA::new(MatRef::row_major(w, cin_g, rows).expect("sized above").t())
            })
            .collect();
        if let Some(b) = bias {
            assert!(b.len() >= geom.cout, "conv_transpose: bias too short");
        }
        ConvTranspose {
            bias: bias.map(|b| b[..geom.cout].to_vec()),
            geom,
            weights: packed,
            act,
        }
    }

    /// The geometry.
    pub fn geom(&self) -> &ConvGeom {
        &self.geom
    }

    /// Bytes of packed weights and bias.
    pub fn weight_bytes(&self) -> usize {
        self.weights.iter().map(PackedA::bytes).sum::<usize>()
            + self.bias.as_ref().map_or(0, |b| b.len() * 4)
    }

    /// Multiply-accumulates of one run.
    pub fn macs(&self) -> u64 {
        let g = &self.geom;
        (g.batch * g.cin * g.in_spatial() * g.cout_g() * g.kernel_size()) as u64
    }

    /// Scratch floats for [`ConvTranspose::run`] with up to `tasks` tasks.
    pub fn scratch_len(&self, tasks: usize) -> usize {
        conv_transpose_scratch_len(&self.geom, true, tasks)
    }

    /// `y = act(conv_transpose(x) + bias)`.
    pub fn run(&self, isa: Isa, x: &[f32], y: &mut [f32], scratch: &mut [f32], exec: &dyn Exec) {
        run_transpose(
            isa,
            &self.geom,
            &|g| &self.weights[g],
            self.bias.as_deref(),
            self.act,
            x,
            y,
            scratch,
            exec,
        );
    }
}

/// Scratch floats of a transposed conv, with weights pre-packed or packed
/// at run time.
pub fn conv_transpose_scratch_len(g: &ConvGeom, weights_packed: bool, tasks: usize) -> usize {
    g.cout_g() * g.kernel_size() * g.in_spatial()
        + gemm_scratch_len(
            g.cout_g() * g.kernel_size(),
            g.in_spatial(),
            g.cin_g(),
            weights_packed,
            false,
            tasks,
        )
}

/// A transposed conv whose weights `[cin, cout/groups, kernel...]` are
/// only known at run time; see [`conv_transpose_scratch_len`].
#[allow(clippy::too_many_arguments)]
pub fn conv_transpose_dynamic(
    isa: Isa,
    geom: &ConvGeom,
    weights: &[f32],
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    assert!(geom.is_valid(), "conv_transpose: invalid geometry");
    let (cin_g, rows) = (geom.cin_g(), geom.cout_g() * geom.kernel_size());
    assert!(
        weights.len() >= geom.cin * rows,
        "conv_transpose: weights too short"
    );
    let weight = |grp: usize| {
        MatRef::row_major(&weights[grp * cin_g * rows..], cin_g, rows)
            .expect("sized above")
            .t()
    };
    run_transpose(isa, geom, &weight, bias, act, x, y, scratch, exec);
}

#[allow(clippy::too_many_arguments)]
fn run_transpose<A: Lhs>(
    isa: Isa,
    g: &ConvGeom,
    weight: &dyn Fn(usize) -> A,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
    let (isp, osp, ks) = (g.in_spatial(), g.out_spatial(), g.kernel_size());
    assert!(
        x.len() >= g.batch * g.cin * isp,
        "conv_transpose: input too short"
    );
    assert!(
        y.len() >= g.batch * g.cout * osp,
        "conv_transpose: output too short"
    );
    if let Some(b) = bias {
        assert!(b.len() >= g.cout, "conv_transpose: bias too short");
    }
    let (col, gscratch) = scratch.split_at_mut(cout_g * ks * isp);
    for b in 0..g.batch {
        for grp in 0..g.groups {
            let xg = &x[(b * g.cin + grp * cin_g) * isp..][..cin_g * isp];
            let bm = MatRef::row_major(xg, cin_g, isp).expect("sized above");
            let a = weight(grp);
            gemm(isa, &a, &bm, col, isp, &Epilogue::default(), gscratch, exec);
            let yg = &mut y[(b * g.cout + grp * cout_g) * osp..][..cout_g * osp];
            let col: &[f32] = col;
            for_each_chunk_mut(exec, yg, osp.max(1), &|co, ych| {
                ych.fill(bias.map_or(0.0, |v| v[grp * cout_g + co]));
                col2im(g, &col[co * ks * isp..][..ks * isp], ych);
                act.apply_slice(ych);
            });
        }
    }
}

/// Adds the columns of one output channel (`kernel_size` rows of
/// `in_spatial`) into that channel's output.
fn col2im(g: &ConvGeom, col: &[f32], y: &mut [f32]) {
    let [id, ih, iw] = g.input;
    let [od, oh, ow] = g.output;
    let [_, kh, kw] = g.kernel;
    let isp = g.in_spatial();
    for (r, crow) in col.chunks_exact(isp).enumerate() {
        let (kz, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
        let off = |k: usize, d: usize| (k * g.dilation[d]) as isize - g.pad_begin[d] as isize;
        let (oz_off, oy_off, ox_off) = (off(kz, 0), off(ky, 1), off(kx, 2));
        let sx = g.stride[2];
        for iz in 0..id {
            let oz = (iz * g.stride[0]) as isize + oz_off;
            if oz < 0 || oz >= od as isize {
                continue;
            }
            for iy in 0..ih {
                let oy = (iy * g.stride[1]) as isize + oy_off;
                if oy < 0 || oy >= oh as isize {
                    continue;
                }
                let src = &crow[(iz * ih + iy) * iw..][..iw];
                let dst = &mut y[(oz as usize * oh + oy as usize) * ow..][..ow];
                // Valid ix: 0 <= ix*sx + ox_off < ow.
                let lo = if ox_off >= 0 {
                    0
                } else {
                    ((-ox_off) as usize).div_ceil(sx)
                };
                let hi = if ow as isize <= ox_off {
                    0
                } else {
                    ((ow as isize - ox_off) as usize).div_ceil(sx).min(iw)
                };
                for ix in lo..hi.max(lo) {
                    dst[((ix * sx) as isize + ox_off) as usize] += src[ix];
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "conv/tests.rs"]
pub(crate) mod tests;
