//! The micro-kernel: one channel panel ([`NC`] channels) x one activation
//! tile ([`MP`] positions) over every block, leaving per-position float
//! accumulators `f[j][r] = sum_b ((isum_b - x_zp * wsum_b) as f32) * s_b`.

use crate::qgemm::QIsa;

use super::{QBlockWeights, KG, MP, NC};

/// Sign extension of a nibble, as a byte table (`pshufb`/`tbl` operand).
pub(crate) const NIBBLE_LUT: [i8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, -8, -7, -6, -5, -4, -3, -2, -1];

/// Runs the micro-kernel of panel `p` on tile `x` (`u8` storage, zero
/// point `x_zp`), accumulating into `f` (which starts at zero).
///
/// # Panics
/// If `x` is shorter than `w.tile_bytes()`.
#[inline]
pub(crate) fn tile(
    isa: QIsa,
    w: &QBlockWeights,
    p: usize,
    x: &[u8],
    x_zp: i32,
    f: &mut [[f32; NC]; MP],
) {
    let (nb, gpb) = (w.blocks(), w.gpb());
    let x = &x[..nb * gpb * KG * MP];
    let (wd, sums, scales) = w.panel(p);
    // `QIsa`'s kind is private to qgemm; its name identifies it, and
    // `QIsa` only hands out a kind the CPU supports.
    match isa.name() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: VNNI is supported (above); panel and tile lengths follow
        // from `nb` and `gpb` (sliced above).
        "vnni" => unsafe { super::vnni::tile(nb, gpb, wd, sums, scales, x, x_zp, f) },
        #[cfg(target_arch = "x86_64")]
        "avx2" => per_block(nb, gpb, wd, sums, scales, x, x_zp, f, |g, wb, xb, acc| {
            // SAFETY: AVX2 is supported (as above); `wb`/`xb` hold `g` groups.
            unsafe { super::avx2::block(g, wb, xb, acc) }
        }),
        #[cfg(target_arch = "aarch64")]
        "neon" | "neon-dot" => {
            per_block(nb, gpb, wd, sums, scales, x, x_zp, f, |g, wb, xb, acc| {
                // SAFETY: NEON is part of the aarch64 baseline; `wb`/`xb`
                // hold `g` groups.
                unsafe { super::neon::block(g, wb, xb, acc) }
            })
        }
        _ => per_block(nb, gpb, wd, sums, scales, x, x_zp, f, portable_block),
    }
}

/// Loops over blocks: integer sums by `int_block`, then the shared float
/// update (the same IEEE operations as the VNNI kernel's, in the same
/// order: subtract, convert, multiply, add).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn per_block(
    nb: usize,
    gpb: usize,
    wd: &[u8],
    sums: &[i32],
    scales: &[f32],
    x: &[u8],
    x_zp: i32,
    f: &mut [[f32; NC]; MP],
    int_block: impl Fn(usize, &[u8], &[u8], &mut [[i32; NC]; MP]),
) {
    let (wb, xb) = (gpb * NC * KG / 2, gpb * KG * MP);
    for b in 0..nb {
        let mut acc = [[0i32; NC]; MP];
        int_block(gpb, &wd[b * wb..][..wb], &x[b * xb..][..xb], &mut acc);
        let (s, sc) = (&sums[b * NC..][..NC], &scales[b * NC..][..NC]);
        for (fr, ar) in f.iter_mut().zip(&acc) {
            for r in 0..NC {
                let i = ar[r].wrapping_sub(x_zp.wrapping_mul(s[r]));
                fr[r] += i as f32 * sc[r];
            }
        }
    }
}

/// Plain loops: `acc[j][r] = sum_k x(k, j) * w(r, k)` over one block.
fn portable_block(gpb: usize, w: &[u8], x: &[u8], acc: &mut [[i32; NC]; MP]) {
    for g in 0..gpb {
        let wg = &w[g * NC * KG / 2..][..NC * KG / 2];
        let xg = &x[g * KG * MP..][..KG * MP];
        for (j, row) in acc.iter_mut().enumerate() {
            let x4 = &xg[j * KG..][..KG];
            for (r, a) in row.iter_mut().enumerate() {
                let shift = if r < 16 { 0 } else { 4 };
                let mut s = 0i32;
                for (i, &xv) in x4.iter().enumerate() {
                    let nib = (wg[(r % 16) * KG + i] >> shift) & 0x0F;
                    s += NIBBLE_LUT[nib as usize] as i32 * xv as i32;
                }
                *a = a.wrapping_add(s);
            }
        }
    }
}
