//! Operands and their packed panel layouts.
//!
//! The micro-kernel reads A as panels of [`MR`] rows stored depth-major
//! (`panel[p * MR + r]`) and B as panels of [`NR`] columns stored
//! depth-major (`panel[p * NR + c]`). Depth is cut into blocks of [`KC`]; a
//! pre-packed operand stores every block one after the other so that any
//! block of panels is a plain sub-slice.

use alloc::vec;
use alloc::vec::Vec;

use super::{KC, MR, NR};

/// A strided, read-only f32 matrix: element `(i, j)` is
/// `data[i * rs + j * cs]`. Swapping the strides transposes it for free.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A strided view, or `None` if some element would fall outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        if rows > 0 && cols > 0 {
            let last = (rows - 1)
                .checked_mul(rs)?
                .checked_add((cols - 1).checked_mul(cs)?)?;
            if last >= data.len() {
                return None;
            }
        }
        Some(MatRef {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }

    /// A row-major `rows x cols` view of the start of `data`, or `None` if
    /// `data` is too short.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        MatRef::new(data, rows, cols, cols, 1)
    }

    /// The transposed view.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.rs + j * self.cs]
    }

    /// Packs rows `i0..i0+mc`, depth `k0..k0+kc` into MR-row panels,
    /// zero-filling rows past the end.
    fn pack_a(&self, i0: usize, mc: usize, k0: usize, kc: usize, dst: &mut [f32]) {
        if self.cs == 1 {
            pack_a_rows(mc, kc, dst, |r, out| {
                let src = &self.data[(i0 + r) * self.rs + k0..][..kc];
                for (p, &v) in src.iter().enumerate() {
                    out[p * MR] = v;
                }
            });
        } else {
            pack_a_rows(mc, kc, dst, |r, out| {
                for p in 0..kc {
                    out[p * MR] = self.at(i0 + r, k0 + p);
                }
            });
        }
    }

    /// Packs depth `k0..k0+kc`, columns `j0..j0+nc` into NR-column panels,
    /// zero-filling columns past the end.
    fn pack_b(&self, k0: usize, kc: usize, j0: usize, nc: usize, dst: &mut [f32]) {
        if kc == 0 {
            return;
        }
        let panels = nc.div_ceil(NR);
        let dst = &mut dst[..panels * NR * kc];
        // Row-outer order reads each source row sequentially, which the
        // prefetchers follow; panel-outer order would touch kc rows far
        // apart for every 16 columns.
        for p in 0..kc {
            let k = k0 + p;
            for jp in 0..panels {
                let c0 = j0 + jp * NR;
                let cols = NR.min(nc - jp * NR);
                let row = &mut dst[jp * NR * kc + p * NR..][..NR];
                if self.cs == 1 {
                    row[..cols].copy_from_slice(&self.data[k * self.rs + c0..][..cols]);
                } else {
                    for (c, v) in row[..cols].iter_mut().enumerate() {
                        *v = self.at(k, c0 + c);
                    }
                }
                row[cols..].fill(0.0);
            }
        }
    }
}

/// Packs `rows` rows of depth `kc` into the MR-row panels of `dst`
/// (`panel[p * MR + r]`): `row(r, out)` writes row `r` as `out[p * MR]`
/// for `p` in `0..kc` (`out` starts at the row's slot in its panel); rows
/// past `rows` are zero.
#[inline(always)]
pub(crate) fn pack_a_rows(
    rows: usize,
    kc: usize,
    dst: &mut [f32],
    mut row: impl FnMut(usize, &mut [f32]),
) {
    if kc == 0 {
        return;
    }
    let panels = rows.div_ceil(MR);
    let dst = &mut dst[..panels * MR * kc];
    for (ip, panel) in dst.chunks_exact_mut(MR * kc).enumerate() {
        let r0 = ip * MR;
        let n = MR.min(rows - r0);
        if n < MR {
            panel.fill(0.0);
        }
        for r in 0..n {
            row(r0 + r, &mut panel[r..]);
        }
    }
}

/// The left operand A (`m x k`) of a GEMM, as the driver consumes it.
pub trait Lhs: Sync {
    /// Rows (M).
    fn m(&self) -> usize;
    /// Depth (K).
    fn k(&self) -> usize;
    /// True when panels come ready-made and need no scratch.
    fn is_prepacked(&self) -> bool;
    /// The packed panels for rows `i0..i0+mc` (`i0` a multiple of [`MR`])
    /// and depth block `k0..k0+kc` (`k0` a multiple of [`KC`], `kc` up to
    /// [`KC`]): a slice of `buf` after packing into it, or of `self`.
    fn panels<'s>(
        &'s self,
        i0: usize,
        mc: usize,
        k0: usize,
        kc: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];
}

/// The right operand B (`k x n`) of a GEMM, as the driver consumes it.
pub trait Rhs: Sync {
    /// Depth (K).
    fn k(&self) -> usize;
    /// Columns (N).
    fn n(&self) -> usize;
    /// True when panels come ready-made and need no scratch.
    fn is_prepacked(&self) -> bool;
    /// The packed panels for depth block `k0..k0+kc` and columns
    /// `j0..j0+nc` (`j0` a multiple of [`NR`]), zero-padded to whole panels.
    fn panels<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32];
}

/// A strided matrix used as A: packed into scratch at run time.
impl Lhs for MatRef<'_> {
    fn m(&self) -> usize {
        self.rows
    }
    fn k(&self) -> usize {
        self.cols
    }
    fn is_prepacked(&self) -> bool {
        false
    }
    fn panels<'s>(
        &'s self,
        i0: usize,
        mc: usize,
        k0: usize,
        kc: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        self.pack_a(i0, mc, k0, kc, buf);
        &buf[..mc.div_ceil(MR) * MR * kc]
    }
}

/// A strided matrix used as B: packed into scratch at run time.
impl Rhs for MatRef<'_> {
    fn k(&self) -> usize {
        self.rows
    }
    fn n(&self) -> usize {
        self.cols
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
        self.pack_b(k0, kc, j0, nc, buf);
        &buf[..nc.div_ceil(NR) * NR * kc]
    }
}

/// Depth blocks of `k`: `(k0, kc)` pairs.
fn k_blocks(k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..k).step_by(KC).map(move |k0| (k0, KC.min(k - k0)))
}

/// An operand packed once, ahead of time: every depth block of `outer`
/// rows (A) or columns (B) as zero-padded panels of `P`, one block after
/// the other.
#[derive(Clone, Debug, PartialEq)]
struct Prepacked<const P: usize> {
    outer: usize,
    k: usize,
    data: Vec<f32>,
}

impl<const P: usize> Prepacked<P> {
    /// Packs depth blocks with `pack(k0, kc, dst)`.
    fn new(outer: usize, k: usize, pack: impl Fn(usize, usize, &mut [f32])) -> Self {
        let op = outer.div_ceil(P) * P;
        let mut data = vec![0.0; op * k];
        for (k0, kc) in k_blocks(k) {
            pack(k0, kc, &mut data[op * k0..]);
        }
        Prepacked { outer, k, data }
    }

    fn bytes(&self) -> usize {
        self.data.len() * core::mem::size_of::<f32>()
    }

    /// The panels of `o0..o0+len` in depth block `k0..k0+kc`.
    fn panels(&self, o0: usize, len: usize, k0: usize, kc: usize) -> &[f32] {
        debug_assert!(o0.is_multiple_of(P) && k0.is_multiple_of(KC));
        let op = self.outer.div_ceil(P) * P;
        &self.data[op * k0 + o0 * kc..][..len.div_ceil(P) * P * kc]
    }
}

/// A constant A (e.g. conv weights, `M = Cout`) packed once, ahead of time.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedA(Prepacked<MR>);

impl PackedA {
    /// Packs `a` (any strides).
    pub fn new(a: MatRef<'_>) -> PackedA {
        PackedA(Prepacked::new(a.rows, a.cols, |k0, kc, dst| {
            a.pack_a(0, a.rows, k0, kc, dst)
        }))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }
}

impl Lhs for PackedA {
    fn m(&self) -> usize {
        self.0.outer
    }
    fn k(&self) -> usize {
        self.0.k
    }
    fn is_prepacked(&self) -> bool {
        true
    }
    fn panels<'s>(
        &'s self,
        i0: usize,
        mc: usize,
        k0: usize,
        kc: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        self.0.panels(i0, mc, k0, kc)
    }
}

/// A constant B (e.g. Gemm/MatMul weights) packed once, ahead of time.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB(Prepacked<NR>);

impl PackedB {
    /// Packs `b` (any strides).
    pub fn new(b: MatRef<'_>) -> PackedB {
        PackedB(Prepacked::new(b.cols, b.rows, |k0, kc, dst| {
            b.pack_b(k0, kc, 0, b.cols, dst)
        }))
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }
}

impl Rhs for PackedB {
    fn k(&self) -> usize {
        self.0.k
    }
    fn n(&self) -> usize {
        self.0.outer
    }
    fn is_prepacked(&self) -> bool {
        true
    }
    fn panels<'s>(
        &'s self,
        k0: usize,
        kc: usize,
        j0: usize,
        nc: usize,
        _buf: &'s mut [f32],
    ) -> &'s [f32] {
        self.0.panels(j0, nc, k0, kc)
    }
}

impl<T: Lhs + ?Sized> Lhs for &T {
    fn m(&self) -> usize {
        (**self).m()
    }
    fn k(&self) -> usize {
        (**self).k()
    }
    fn is_prepacked(&self) -> bool {
        (**self).is_prepacked()
    }
    fn panels<'s>(
        &'s self,
        i0: usize,
        mc: usize,
        k0: usize,
        kc: usize,
        buf: &'s mut [f32],
    ) -> &'s [f32] {
        (**self).panels(i0, mc, k0, kc, buf)
    }
}
