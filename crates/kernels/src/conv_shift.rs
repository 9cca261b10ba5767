//! Implicit-GEMM ("shifted plane") convolution for 2-D convs, with no
//! im2col matrix.
//!
//! The input of a group is copied once per run into zero-padded planes, one
//! per channel and stride phase (stride `s` keeps `s * s` sub-planes, each
//! holding every `s`-th row and column), of `hq x wq` floats. Output
//! `(oy, ox)` is computed at grid position `oy * wq + ox`; for a run of
//! consecutive grid positions, every kernel tap then reads a *contiguous*
//! run of one plane, at a fixed offset per tap. So the micro-kernel loads B
//! vectors straight from the planes (offset table indexed by depth), takes
//! the weights as A in [`ROWS`]-row panels, and stores only the lanes whose
//! grid column is a real output (`ox < ow`) with masked stores; the
//! `wq - ow` columns at the end of each grid row are computed and dropped.
//! Pointwise convs skip the copy: the input's channels are the planes.
//!
//! Small maps (7x7, 14x14) waste most lanes of such grid vectors, so a cost
//! model may pick pixel-major tiles instead: up to 8 output pixels (one
//! input pointer each) by 48 output channels, vectorised over channels with
//! weights packed in 16-channel panels, results scattered to the planes.
//!
//! Each output element is one register accumulation over the whole depth in
//! a fixed order, whatever the task split, so results do not depend on the
//! thread count.

use alloc::vec;
use alloc::vec::Vec;

use crate::conv::ConvGeom;
use crate::gemm::{balanced_tasks, for_each_chunk_mut, task_range, Exec, Isa, SharedMut};
use crate::Activation;

#[cfg(target_arch = "x86_64")]
mod avx512;
mod packed;
mod pixels;
#[cfg(test)]
mod tests;

pub use packed::PackedRows;
use pixels::run_pixels;

/// Output channels per micro-tile (rows of A packed together).
pub const ROWS: usize = 8;
/// Floats per vector.
const LANES: usize = 16;
/// Most vectors per micro-tile: tiles are up to 48 grid columns wide.
const MAX_V: usize = 3;
/// Grid columns per full tile.
const TILE: usize = LANES * MAX_V;
/// Most stride phases (`sy * sx`) handled; larger strides use im2col.
const MAX_PHASES: usize = 16;
/// Bytes of A a row block keeps hot while it sweeps its column tiles.
const A_BLOCK_BYTES: usize = 192 * 1024;

/// Where a conv's taps sit in the phase planes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShiftPlan {
    cin_g: usize,
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    pt: usize,
    pl: usize,
    sy: usize,
    sx: usize,
    /// Stride phases `(py, px)` some tap reads, in plane order.
    phases: Vec<(usize, usize)>,
    hq: usize,
    wq: usize,
    /// Offset of tap `(ci, ky, kx)` (in weight order) in the plane buffer.
    koff: Vec<u32>,
    /// Pointwise: the input itself is the plane buffer (no copy).
    direct: bool,
    /// Vectorise over output channels (pixel-major tiles) instead of
    /// grid positions: for small maps, whose grids waste most lanes.
    pixels: bool,
}

impl ShiftPlan {
    /// The plan for a 2-D conv, or `None` when the geometry is not 2-D,
    /// is pointwise (see [`ShiftPlan::pointwise`]), has more than 16
    /// stride phases, or would waste more than half its grid columns.
    pub fn new(g: &ConvGeom) -> Option<ShiftPlan> {
        if !g.is_valid()
            || g.input[0] != 1
            || g.kernel[0] != 1
            || g.output[0] != 1
            || g.pad_begin[0] != 0
            || g.is_pointwise()
        {
            return None;
        }
        let [_, ih, iw] = g.input;
        let [_, oh, ow] = g.output;
        let [_, kh, kw] = g.kernel;
        let [_, sy, sx] = g.stride;
        let [_, dy, dx] = g.dilation;
        if oh == 0 || ow == 0 || sy.checked_mul(sx)? > MAX_PHASES {
            return None;
        }
        let hq = ((oh - 1) * sy + (kh - 1) * dy) / sy + 1;
        let wq = ((ow - 1) * sx + (kw - 1) * dx) / sx + 1;
        if wq > 2 * ow + 2 {
            return None;
        }
        let mut phases = Vec::new();
        for ky in 0..kh {
            for kx in 0..kw {
                let p = ((ky * dy) % sy, (kx * dx) % sx);
                if !phases.contains(&p) {
                    phases.push(p);
                }
            }
        }
        let plane = hq.checked_mul(wq)?;
        let cin_g = g.cin_g();
        let total = cin_g.checked_mul(phases.len())?.checked_mul(plane)?;
        // Offsets are u32 to halve the table's cache footprint.
        if total.checked_add(wq + 2 * TILE)? > u32::MAX as usize {
            return None;
        }
        let mut koff = Vec::with_capacity(cin_g * kh * kw);
        for ci in 0..cin_g {
            for ky in 0..kh {
                for kx in 0..kw {
                    let p = ((ky * dy) % sy, (kx * dx) % sx);
                    let ph = phases.iter().position(|&q| q == p).expect("listed above");
                    let off =
                        (ci * phases.len() + ph) * plane + (ky * dy / sy) * wq + (kx * dx / sx);
                    koff.push(off as u32);
                }
            }
        }
        Some(
            ShiftPlan {
                cin_g,
                ih,
                iw,
                oh,
                ow,
                pt: g.pad_begin[1],
                pl: g.pad_begin[2],
                sy,
                sx,
                phases,
                hq,
                wq,
                koff,
                direct: false,
                pixels: false,
            }
            .choose_layout(g.cout_g()),
        )
    }

    /// The plan of a pointwise conv ([`ConvGeom::is_pointwise`], any
    /// spatial rank): B is read straight from the input, each channel's
    /// `in_spatial` floats one grid row, so nothing is copied.
    pub fn pointwise(g: &ConvGeom) -> Option<ShiftPlan> {
        if !g.is_valid() || !g.is_pointwise() {
            return None;
        }
        let (n, cin_g) = (g.in_spatial(), g.cin_g());
        if n == 0 || cin_g.checked_mul(n)? > u32::MAX as usize {
            return None;
        }
        Some(
            ShiftPlan {
                cin_g,
                ih: 1,
                iw: n,
                oh: 1,
                ow: n,
                pt: 0,
                pl: 0,
                sy: 1,
                sx: 1,
                phases: vec![(0, 0)],
                hq: 1,
                wq: n,
                koff: (0..cin_g).map(|c| (c * n) as u32).collect(),
                direct: true,
                pixels: false,
            }
            .choose_layout(g.cout_g()),
        )
    }

    /// Picks channel- or pixel-major tiles for `m` output channels from a
    /// cost model of the micro-kernel: per depth step a tile of `r` rows
    /// and `v` vectors costs `max(r v / 2, (r + v + 1) / 3)` cycles (FMA or
    /// load bound), plus a per-vector epilogue (masked stores, or a scatter
    /// for pixel-major tiles).
    fn choose_layout(mut self, m: usize) -> ShiftPlan {
        let k = self.koff.len() as f64;
        let tc = |r: usize, v: usize| -> f64 {
            if r == 0 || v == 0 {
                return 0.0;
            }
            let (r, v) = (r as f64, v as f64);
            k * (r * v / 2.0).max((r + v + 1.0) / 3.0)
        };
        // Tiles of up to 3 vectors over `n` lanes: (full tiles, tail vectors).
        let split = |n: usize| (n / TILE, (n % TILE).div_ceil(LANES));
        let (gt, gv) = split(self.grid());
        let (fp, rp) = (m / ROWS, m % ROWS);
        let chan = |r: usize| {
            gt as f64 * (tc(r, MAX_V) + 2.0 * (r * MAX_V) as f64)
                + tc(r, gv)
                + 2.0 * (r * gv) as f64
        };
        let cost_chan = fp as f64 * chan(ROWS) + chan(rp);
        let osp = self.oh * self.ow;
        let r = osp.div_ceil(osp.div_ceil(ROWS).max(1)).max(1);
        let (ft, rt) = (osp / r, osp % r);
        let (cg, cv) = split(m);
        let pix = |r: usize| {
            cg as f64 * (tc(r, MAX_V) + 12.0 * (r * MAX_V) as f64)
                + tc(r, cv)
                + 12.0 * (r * cv) as f64
        };
        let cost_pix = ft as f64 * pix(r) + pix(rt);
        // Scatter offsets (16 channels apart) must fit an i32.
        let fits = osp
            .checked_mul(LANES)
            .is_some_and(|v| v < i32::MAX as usize);
        self.pixels = fits && cost_pix < 0.95 * cost_chan;
        self
    }

    /// The same plan with the tile layout forced (tests cover both).
    #[cfg(test)]
    pub(crate) fn with_pixels(mut self, pixels: bool) -> ShiftPlan {
        self.pixels = pixels;
        self
    }

    /// True when tiles vectorise over output channels (small maps).
    pub fn is_pixel_major(&self) -> bool {
        self.pixels
    }

    /// Rows per weight panel: [`ROWS`] for channel-major tiles, 16 (one
    /// vector of output channels) for pixel-major ones.
    pub fn panel_width(&self) -> usize {
        if self.pixels {
            LANES
        } else {
            ROWS
        }
    }

    /// Floats of one phase plane.
    fn plane(&self) -> usize {
        self.hq * self.wq
    }

    /// Floats of the plane buffer, with the slack that the last tile's
    /// dropped lanes read past the last plane.
    pub fn planes_len(&self) -> usize {
        if self.direct {
            return 0;
        }
        self.cin_g * self.phases.len() * self.plane() + self.wq + 2 * TILE
    }

    /// Grid positions computed: `oh * wq`.
    fn grid(&self) -> usize {
        self.oh * self.wq
    }

    /// Copies one group's input `[cin_g, ih, iw]` into the phase planes,
    /// writing every float of `xp` (padding and slack as zeros).
    fn fill(&self, x: &[f32], xp: &mut [f32], exec: &dyn Exec) {
        let per_ci = self.phases.len() * self.plane();
        let (planes, slack) = xp[..self.planes_len()].split_at_mut(self.cin_g * per_ci);
        slack.fill(0.0);
        let isp = self.ih * self.iw;
        for_each_chunk_mut(exec, planes, per_ci.max(1), &|ci, chunk| {
            let xc = &x[ci * isp..][..isp];
            for (&(py, px), plane) in self.phases.iter().zip(chunk.chunks_exact_mut(self.plane())) {
                self.fill_plane(xc, py, px, plane);
            }
        });
    }

    /// One phase plane of one channel.
    fn fill_plane(&self, xc: &[f32], py: usize, px: usize, plane: &mut [f32]) {
        let (sx, wq) = (self.sx, self.wq);
        // Valid plane columns j: 0 <= j*sx + px - pl < iw.
        let j_lo = self.pl.saturating_sub(px).div_ceil(sx).min(wq);
        let j_hi = if self.iw + self.pl <= px {
            j_lo
        } else {
            (self.iw + self.pl - px).div_ceil(sx).clamp(j_lo, wq)
        };
        for (i, row) in plane.chunks_exact_mut(wq).enumerate() {
            let r = i * self.sy + py;
            if r < self.pt || r - self.pt >= self.ih {
                row.fill(0.0);
                continue;
            }
            let src = &xc[(r - self.pt) * self.iw..][..self.iw];
            row[..j_lo].fill(0.0);
            row[j_hi..].fill(0.0);
            if j_hi > j_lo {
                let first = j_lo * sx + px - self.pl;
                let dst = &mut row[j_lo..j_hi];
                if sx == 1 {
                    dst.copy_from_slice(&src[first..first + dst.len()]);
                } else if sx == 2 && cfg!(target_arch = "x86_64") {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: planes are only filled by `conv_shift`, which
                    // asserts AVX-512; `copy_stride2` checks its lengths.
                    unsafe {
                        avx512::copy_stride2(&src[first..], dst)
                    };
                } else {
                    for (d, s) in dst.iter_mut().zip(src[first..].iter().step_by(sx)) {
                        *d = *s;
                    }
                }
            }
        }
    }
}

/// One masked store of a vector: lanes in `mask` go to output index
/// `dst + lane` of the tile's row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Seg {
    pub mask: u16,
    pub dst: isize,
}

/// Most segments a vector splits into (one per output row it touches).
const MAX_SEGS: usize = LANES + 1;

/// The masked stores of one column tile, per vector.
#[derive(Clone, Copy)]
pub(crate) struct TileSegs {
    pub segs: [[Seg; MAX_SEGS]; MAX_V],
    pub count: [usize; MAX_V],
    /// Set when every vector lands whole and in order at output index
    /// `start + 16 v` (the tile lies inside one output row): plain stores.
    pub contiguous: Option<isize>,
}

impl ShiftPlan {
    /// Splits the vectors of the tile at grid position `n0` into per-row
    /// masked stores.
    fn segs(&self, n0: usize, vectors: usize) -> TileSegs {
        let (wq, ow, grid) = (self.wq, self.ow, self.grid());
        let mut t = TileSegs {
            segs: [[Seg::default(); MAX_SEGS]; MAX_V],
            count: [0; MAX_V],
            contiguous: None,
        };
        for v in 0..vectors {
            let g0 = n0 + v * LANES;
            let g1 = (g0 + LANES).min(grid);
            let mut oy = g0 / wq;
            while oy * wq < g1 {
                let lo = (oy * wq).max(g0);
                let hi = (oy * wq + ow).min(g1);
                if hi > lo {
                    let bits = ((1u32 << (hi - lo)) - 1) << (lo - g0);
                    t.segs[v][t.count[v]] = Seg {
                        mask: bits as u16,
                        dst: (oy * ow) as isize + g0 as isize - (oy * wq) as isize,
                    };
                    t.count[v] += 1;
                }
                oy += 1;
            }
        }
        let start = t.segs[0][0].dst;
        let whole = (0..vectors).all(|v| {
            t.count[v] == 1
                && t.segs[v][0].mask == u16::MAX
                && t.segs[v][0].dst == start + (v * LANES) as isize
        });
        if whole {
            t.contiguous = Some(start);
        }
        t
    }
}

/// Scratch floats of [`conv_shift`].
pub fn shift_scratch_len(plan: &ShiftPlan) -> usize {
    plan.planes_len()
}

/// True when [`conv_shift`] has a kernel for this instruction set.
pub fn shift_supported(isa: Isa) -> bool {
    isa.is_avx512()
}

/// One group of one image: `y[cout_g, oh*ow] = act(W x + bias)` with the
/// weights `a` as [`PackedRows`] (`m = cout_g`, `k = cin_g * kh * kw`).
///
/// # Panics
/// If `isa` has no kernel ([`shift_supported`]), or a slice is too short.
#[allow(clippy::too_many_arguments)]
// Only AVX-512 has tile kernels (`shift_supported`); elsewhere the loops
// below compute nothing and their locals go unused.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
pub fn conv_shift(
    isa: Isa,
    plan: &ShiftPlan,
    a: &PackedRows,
    bias: Option<&[f32]>,
    act: Activation,
    x: &[f32],
    y: &mut [f32],
    scratch: &mut [f32],
    exec: &dyn Exec,
) {
    assert!(shift_supported(isa), "conv_shift: needs AVX-512");
    let (m, k) = (a.m, a.k);
    assert_eq!(k, plan.koff.len(), "conv_shift: weights depth differs");
    let osp = plan.oh * plan.ow;
    assert!(
        x.len() >= plan.cin_g * plan.ih * plan.iw,
        "conv_shift: input too short"
    );
    assert!(y.len() >= m * osp, "conv_shift: output too short");
    if let Some(b) = bias {
        assert!(b.len() >= m, "conv_shift: bias too short");
    }
    assert_eq!(
        a.width,
        plan.panel_width(),
        "conv_shift: weights packed for another layout"
    );
    let xp: &[f32] = if plan.direct {
        x
    } else {
        let xp = &mut scratch[..plan.planes_len()];
        plan.fill(x, xp, exec);
        xp
    };
    if plan.pixels {
        run_pixels(isa, plan, a, bias, act, xp, y, exec);
        return;
    }
    let (vact, scalar_act) = crate::gemm::split_act(isa, act);
    let tiles = plan.grid().div_ceil(TILE);
    let panels = m.div_ceil(ROWS);
    // Whole panels of rows or whole column tiles per task, like the GEMM.
    let max_tasks = exec.max_tasks().max(1);
    let by_cols = tiles >= 2 * max_tasks || tiles >= panels;
    let units = if by_cols { tiles } else { panels };
    let tasks = if m * osp < 4096 {
        1
    } else {
        balanced_tasks(max_tasks, units)
    };
    let y_ptr = SharedMut(y.as_mut_ptr());
    let body = |t: usize| {
        // Capture the whole wrapper (it is Sync), not its raw pointer field.
        let y_ptr = &y_ptr;
        let r = task_range(units, tasks, t);
        let (cols, rows) = if by_cols {
            (r, 0..panels)
        } else {
            (0..tiles, r)
        };
        // Row blocks keep their A panels in L2 while they sweep the tiles.
        let block = (A_BLOCK_BYTES / (ROWS * k.max(1) * 4)).max(1);
        let mut p0 = rows.start;
        while p0 < rows.end {
            let p1 = (p0 + block).min(rows.end);
            for tile in cols.clone() {
                let n0 = tile * TILE;
                let vectors = (plan.grid() - n0).div_ceil(LANES).min(MAX_V);
                let segs = plan.segs(n0, vectors);
                // Lanes past the grid are not loaded: the direct (pointwise)
                // form has no slack after the input.
                let lmask: [u16; MAX_V] = core::array::from_fn(|v| {
                    let left = plan.grid().saturating_sub(n0 + v * LANES).min(LANES);
                    ((1u32 << left) - 1) as u16
                });
                // Output index near the next tile's start: its lines are
                // requested for writing while this tile computes (the
                // output is usually cold, and partial-line stores would
                // otherwise wait on reads of it).
                let next_out = {
                    let g = (n0 + TILE).min(plan.grid() - 1);
                    (g / plan.wq) * plan.ow + (g % plan.wq).min(plan.ow - 1)
                };
                for panel in p0..p1 {
                    let r0 = panel * ROWS;
                    let rows_here = ROWS.min(m - r0);
                    #[cfg(target_arch = "x86_64")]
                    for r in 0..rows_here {
                        let row = y_ptr.0.wrapping_add((r0 + r) * osp + next_out);
                        for line in 0..4 {
                            // Prefetches never fault; the address is a hint.
                            prefetch_write(row.wrapping_add(16 * line));
                        }
                    }
                    let ap = &a.data[panel * ROWS * k..][..ROWS * k];
                    let tb = bias.map(|b| &b[r0..r0 + rows_here]);
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: AVX-512 is present (asserted via `isa`). Every
                    // B read is `xp[koff[p] + n0 + lane]` for lanes in
                    // `lmask`, so `n0 + lane < grid`: inside the planes
                    // (grid positions of a plane lie within it up to the
                    // slack, `planes_len`), or inside `x` for the direct
                    // form (`koff[p] + grid <= cin_g * n`). Stores go to rows r0..r0+rows_here of `y`
                    // at the masked lanes of `segs`, which are outputs of this
                    // tile only (each output index `oy * ow + ox` belongs to
                    // exactly one tile); tasks own disjoint tiles or panels.
                    unsafe {
                        avx512::tile(
                            rows_here,
                            vectors,
                            k,
                            ap,
                            &plan.koff,
                            xp.as_ptr().add(n0),
                            &lmask,
                            panel == p0 && tile + 1 < cols.end,
                            &avx512::Store {
                                y: y_ptr.0.add(r0 * osp),
                                ldc: osp,
                                segs: &segs,
                                bias: tb,
                                act: vact,
                            },
                        );
                    }
                }
            }
            p0 = p1;
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = vact;
    if tasks <= 1 {
        body(0);
    } else {
        exec.run(tasks, &body);
    }
    if scalar_act {
        act.apply_slice(&mut y[..m * osp]);
    }
}

/// A write-intent prefetch of the line holding `p` (a hint: never faults).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn prefetch_write(p: *const f32) {
    // SAFETY: prefetch instructions do not access memory architecturally
    // and cannot fault, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_ET0 }>(p as *const i8)
    };
}
