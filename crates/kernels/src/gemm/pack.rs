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
        if kc == 0 {
            return;
        }
        let panels = mc.div_ceil(MR);
        let dst = &mut dst[..panels * MR * kc];
        for (ip, panel) in dst.chunks_exact_mut(MR * kc).enumerate() {
            let r0 = ip * MR;
            let rows = MR.min(mc - r0);
            if rows < MR {
                panel.fill(0.0);
            }
            for r in 0..rows {
                let i = i0 + r0 + r;
                if self.cs == 1 {
                    let src = &self.data[i * self.rs + k0..][..kc];
                    for (p, &v) in src.iter().enumerate() {
                        panel[p * MR + r] = v;
                    }
                } else {
                    for p in 0..kc {
                        panel[p * MR + r] = self.at(i, k0 + p);
                    }
                }
            }
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

/// A constant A (e.g. conv weights, `M = Cout`) packed once, ahead of time.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedA {
    m: usize,
    k: usize,
    data: Vec<f32>,
}

impl PackedA {
    /// Packs `a` (any strides).
    pub fn new(a: MatRef<'_>) -> PackedA {
        let (m, k) = (a.rows, a.cols);
        let mp = m.div_ceil(MR) * MR;
        let mut data = vec![0.0; mp * k];
        for (k0, kc) in k_blocks(k) {
            a.pack_a(0, m, k0, kc, &mut data[mp * k0..]);
        }
        PackedA { m, k, data }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * core::mem::size_of::<f32>()
    }
}

impl Lhs for PackedA {
    fn m(&self) -> usize {
        self.m
    }
    fn k(&self) -> usize {
        self.k
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
        debug_assert!(i0.is_multiple_of(MR) && k0.is_multiple_of(KC));
        let mp = self.m.div_ceil(MR) * MR;
        &self.data[mp * k0 + i0 * kc..][..mc.div_ceil(MR) * MR * kc]
    }
}

/// A constant B (e.g. Gemm/MatMul weights) packed once, ahead of time.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedB {
    k: usize,
    n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs `b` (any strides).
    pub fn new(b: MatRef<'_>) -> PackedB {
        let (k, n) = (b.rows, b.cols);
        let np = n.div_ceil(NR) * NR;
        let mut data = vec![0.0; np * k];
        for (k0, kc) in k_blocks(k) {
            b.pack_b(k0, kc, 0, n, &mut data[np * k0..]);
        }
        PackedB { k, n, data }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * core::mem::size_of::<f32>()
    }
}

impl Rhs for PackedB {
    fn k(&self) -> usize {
        self.k
    }
    fn n(&self) -> usize {
        self.n
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
        debug_assert!(j0.is_multiple_of(NR) && k0.is_multiple_of(KC));
        let np = self.n.div_ceil(NR) * NR;
        &self.data[np * k0 + j0 * kc..][..nc.div_ceil(NR) * NR * kc]
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
