//! The micro-kernel: raw dot products of one weight panel ([`MR`] channels)
//! and one activation panel ([`NR`] positions) over the whole depth.

use super::isa::QKind;
use super::{QIsa, KG, MR, NR};

/// `acc[r][j] = sum_k ws(r, k) * xs(k, j)` over `groups` depth groups, on
/// stored values (signed weights, unsigned activations). `wsums` holds the
/// panel's per-channel weight sums (for kernels that compute on shifted
/// values and correct afterwards).
///
/// # Panics
/// If a panel is shorter than `groups` groups or `wsums` than [`MR`].
#[inline]
pub(crate) fn tile(
    isa: QIsa,
    groups: usize,
    w: &[i8],
    x: &[u8],
    wsums: &[i32],
    acc: &mut [[i32; NR]; MR],
) {
    let (w, x) = (&w[..groups * MR * KG], &x[..groups * NR * KG]);
    assert!(wsums.len() >= MR);
    match isa.0 {
        QKind::Portable => portable(groups, w, x, acc),
        // SAFETY (all SIMD arms): `QIsa` only hands out a kind the CPU
        // supports; panel lengths were checked above.
        #[cfg(target_arch = "x86_64")]
        QKind::Avx2 => unsafe { super::avx2::tile(groups, w, x, acc) },
        #[cfg(target_arch = "x86_64")]
        QKind::Vnni => unsafe { super::vnni::tile(groups, w, x, acc) },
        #[cfg(target_arch = "aarch64")]
        QKind::Neon => unsafe { super::neon::tile(groups, w, x, acc) },
        #[cfg(target_arch = "aarch64")]
        QKind::NeonDot => unsafe { super::neon::tile_dot(groups, w, x, wsums, acc) },
    }
}

/// Plain loops over fixed-size groups.
fn portable(groups: usize, w: &[i8], x: &[u8], acc: &mut [[i32; NR]; MR]) {
    for (wg, xg) in w
        .chunks_exact(MR * KG)
        .zip(x.chunks_exact(NR * KG))
        .take(groups)
    {
        for (r, row) in acc.iter_mut().enumerate() {
            let w4: [i32; KG] = core::array::from_fn(|i| wg[r * KG + i] as i32);
            for (a, x4) in row.iter_mut().zip(xg.chunks_exact(KG)) {
                let mut s = 0i32;
                for i in 0..KG {
                    s += w4[i] * x4[i] as i32;
                }
                *a = a.wrapping_add(s);
            }
        }
    }
}
