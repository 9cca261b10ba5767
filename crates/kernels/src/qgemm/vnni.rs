//! AVX-512 VNNI: `vpdpbusd` multiplies 4 unsigned activation bytes by 4
//! signed weight bytes and adds them into one int32 lane, so an 8 x 32 tile
//! is 16 zmm accumulators, two activation loads and eight weight
//! broadcasts per depth group. The epilogue requantizes in registers too.

use core::arch::x86_64::*;

use super::{KG, MR, NR};

/// Raw dot products of one weight panel and one activation panel.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and VNNI; `w` holds at least
/// `groups * MR * KG` and `x` `groups * NR * KG` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn tile(groups: usize, w: &[i8], x: &[u8], acc: &mut [[i32; NR]; MR]) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG);
    let mut a = [[_mm512_setzero_si512(); 2]; MR];
    // SAFETY: group g reads x[g*128..g*128+128] and w[g*32..g*32+32],
    // inside the lengths the caller guarantees; unaligned loads.
    unsafe {
        let (mut wp, mut xp) = (w.as_ptr(), x.as_ptr());
        for _ in 0..groups {
            let x0 = _mm512_loadu_si512(xp as *const _);
            let x1 = _mm512_loadu_si512(xp.add(64) as *const _);
            for (r, row) in a.iter_mut().enumerate() {
                let wb = _mm512_set1_epi32((wp.add(r * KG) as *const i32).read_unaligned());
                row[0] = _mm512_dpbusd_epi32(row[0], x0, wb);
                row[1] = _mm512_dpbusd_epi32(row[1], x1, wb);
            }
            wp = wp.add(MR * KG);
            xp = xp.add(NR * KG);
        }
        for (row, out) in a.iter().zip(acc.iter_mut()) {
            _mm512_storeu_si512(out.as_mut_ptr() as *mut _, row[0]);
            _mm512_storeu_si512(out.as_mut_ptr().add(16) as *mut _, row[1]);
        }
    }
}

/// A tile's output and requantization, for [`tile_requant`].
pub(crate) struct TileOut {
    /// Channel stride of the output.
    pub cs: usize,
    /// Valid channels (<= MR).
    pub mr: usize,
    /// Per-channel constant (bias and activation zero-point terms).
    pub off: [i32; MR],
    /// Per-channel stored weight zero points (used with `colsum`).
    pub wz: [i32; MR],
    /// Per-channel multipliers (never `i32::MIN`).
    pub mult: [i32; MR],
    /// Per-channel right shifts, in `0..=31`.
    pub right: [i32; MR],
    /// Output zero point.
    pub zp: i32,
    /// Final bounds, inside the output type's range.
    pub lo: i32,
    /// See `lo`.
    pub hi: i32,
}

/// [`tile`] followed by requantization in registers and a byte store:
/// what the scalar epilogue computes, 16 lanes at a time.
///
/// # Safety
/// As [`tile`]; `dst` (output element `(c0, n0)`) must be valid for `nc`
/// contiguous byte writes at each of the `o.mr` channel offsets
/// `r * o.cs`, with no other access during the call. `colsum` holds the
/// per-position sums of stored activations when some `o.wz` is non-zero.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn tile_requant(
    groups: usize,
    w: &[i8],
    x: &[u8],
    o: &TileOut,
    dst: *mut u8,
    nc: usize,
    colsum: Option<&[i32; NR]>,
) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG);
    debug_assert!(o.mr <= MR && nc <= NR);
    let mut a = [[_mm512_setzero_si512(); 2]; MR];
    // SAFETY: as in `tile`.
    unsafe {
        let (mut wp, mut xp) = (w.as_ptr(), x.as_ptr());
        for _ in 0..groups {
            let x0 = _mm512_loadu_si512(xp as *const _);
            let x1 = _mm512_loadu_si512(xp.add(64) as *const _);
            for (r, row) in a.iter_mut().enumerate() {
                let wb = _mm512_set1_epi32((wp.add(r * KG) as *const i32).read_unaligned());
                row[0] = _mm512_dpbusd_epi32(row[0], x0, wb);
                row[1] = _mm512_dpbusd_epi32(row[1], x1, wb);
            }
            wp = wp.add(MR * KG);
            xp = xp.add(NR * KG);
        }
    }
    let nudge = _mm512_set1_epi64(1 << 30);
    // Clamp before adding the zero point, which then cannot overflow and
    // matches the scalar saturating add.
    let lo = _mm512_set1_epi32(o.lo - o.zp);
    let hi = _mm512_set1_epi32(o.hi - o.zp);
    let zp = _mm512_set1_epi32(o.zp);
    let masks = [
        (1u32 << nc.min(16)).wrapping_sub(1) as u16,
        (1u32 << nc.saturating_sub(16)).wrapping_sub(1) as u16,
    ];
    // SAFETY: `colsum` holds NR values (two 16-lane loads).
    let cs = colsum.map(|c| unsafe {
        [
            _mm512_loadu_si512(c.as_ptr() as *const _),
            _mm512_loadu_si512(c.as_ptr().add(16) as *const _),
        ]
    });
    for (r, row) in a.iter().enumerate().take(o.mr) {
        let off = _mm512_set1_epi32(o.off[r]);
        let m = _mm512_set1_epi32(o.mult[r]);
        let e = _mm_cvtsi32_si128(o.right[r]);
        let mask = _mm512_set1_epi32(((1i64 << o.right[r]) - 1) as i32);
        let half = _mm512_srli_epi32::<1>(mask);
        let wz = _mm512_set1_epi32(o.wz[r]);
        for (h, &acc) in row.iter().enumerate() {
            let mut v = _mm512_add_epi32(acc, off);
            if let Some(cs) = &cs {
                v = _mm512_sub_epi32(v, _mm512_mullo_epi32(cs[h], wz));
            }
            // SaturatingRoundingDoublingHighMul = floor((v m + 2^30) / 2^31)
            // (the saturating case is excluded: m != i32::MIN).
            let even = _mm512_add_epi64(_mm512_mul_epi32(v, m), nudge);
            let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(v), m), nudge);
            let v = _mm512_mask_blend_epi32(
                0xAAAA,
                _mm512_srli_epi64::<31>(even),
                _mm512_slli_epi64::<1>(odd),
            );
            // RoundingDivideByPOT: ties away from zero.
            let rem = _mm512_and_si512(v, mask);
            let thr = _mm512_sub_epi32(half, _mm512_srai_epi32::<31>(v));
            let q = _mm512_sra_epi32(v, e);
            let up = _mm512_cmpgt_epi32_mask(rem, thr);
            let q = _mm512_mask_sub_epi32(q, up, q, _mm512_set1_epi32(-1));
            let q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), zp);
            // SAFETY: the masked store writes the valid positions of this
            // half of row r, inside the caller's block.
            unsafe {
                let d = dst.add(r * o.cs + 16 * h) as *mut i8;
                if masks[h] == u16::MAX {
                    _mm_storeu_si128(d as *mut __m128i, _mm512_cvtepi32_epi8(q));
                } else {
                    _mm_mask_storeu_epi8(d, masks[h], _mm512_cvtepi32_epi8(q));
                }
            }
        }
    }
}
