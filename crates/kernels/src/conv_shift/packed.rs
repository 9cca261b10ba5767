//! Weights in row panels over the whole depth, for both tile layouts.

use alloc::vec;
use alloc::vec::Vec;

use crate::gemm::{pack_a_rows, Lhs, MR};

/// Weights of one group as panels of `width` rows over the whole depth:
/// `data[panel * width * k + p * width + r]` is row `panel * width + r`,
/// column `p`; rows past `m` are zero.
#[derive(Clone, Debug, PartialEq)]
pub struct PackedRows {
    pub(super) m: usize,
    pub(super) k: usize,
    /// Rows per panel.
    pub(super) width: usize,
    pub(super) data: Vec<f32>,
}

impl PackedRows {
    /// Packs a row-major `m x k` matrix into panels of `width` rows
    /// ([`super::ShiftPlan::panel_width`]).
    ///
    /// # Panics
    /// If `w` is shorter than `m * k` or `width` is 0.
    pub fn new(w: &[f32], m: usize, k: usize, width: usize) -> PackedRows {
        assert!(w.len() >= m * k, "packed rows: weights too short");
        assert!(width > 0, "packed rows: zero panel width");
        let panels = m.div_ceil(width);
        let mut data = vec![0.0; panels * width * k];
        for (i, row) in w[..m * k].chunks_exact(k.max(1)).enumerate().take(m) {
            let panel = &mut data[(i / width) * width * k..][..width * k];
            for (p, &v) in row.iter().enumerate() {
                panel[p * width + i % width] = v;
            }
        }
        PackedRows { m, k, width, data }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }

    fn at(&self, i: usize, p: usize) -> f32 {
        let w = self.width;
        self.data[(i / w) * w * self.k + p * w + i % w]
    }
}

/// Lets the GEMM fallback (CPUs without AVX-512) read these weights,
/// repacking them into its panels at run time.
impl Lhs for PackedRows {
    fn m(&self) -> usize {
        self.m
    }
    fn k(&self) -> usize {
        self.k
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
        pack_a_rows(mc, kc, buf, |r, out| {
            let i = i0 + r;
            for p in 0..kc {
                out[p * MR] = if i < self.m { self.at(i, k0 + p) } else { 0.0 };
            }
        });
        &buf[..mc.div_ceil(MR) * MR * kc]
    }
}
