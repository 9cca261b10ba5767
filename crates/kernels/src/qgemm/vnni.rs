//! AVX-512 VNNI: `vpdpbusd` multiplies 4 unsigned activation bytes by 4
//! signed weight bytes and adds them into one int32 lane, so an 8 x 32 tile
//! is 16 zmm accumulators, two activation loads and eight weight
//! broadcasts per depth group. The epilogue requantizes in registers too.

use core::arch::x86_64::*;

use super::{KG, MR, NR};
use crate::requant::Requant;

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

/// One output row, requantized: what the scalar epilogue computes, 16
/// lanes at a time.
pub(crate) struct Row<'a> {
    /// Raw dot products.
    pub acc: &'a [i32; NR],
    /// Per-channel constant (bias and activation zero-point terms).
    pub off: i32,
    /// Stored weight zero point and column sums, when non-zero.
    pub colsum: Option<(i32, &'a [i32; NR])>,
    /// Multiplier; must have `shift <= 0` and `multiplier != i32::MIN`.
    pub rq: Requant,
    /// Output zero point.
    pub zp: i32,
    /// Final bounds, inside the output type's range.
    pub lo: i32,
    /// See `lo`.
    pub hi: i32,
}

/// Requantizes a row and stores its first `nc` values as bytes at `dst`
/// (contiguous).
///
/// # Safety
/// AVX-512F/BW/VL; `dst` valid for `nc <= NR` byte writes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) unsafe fn store_row_bytes(row: &Row<'_>, nc: usize, dst: *mut u8) {
    debug_assert!(row.rq.shift <= 0 && row.rq.multiplier != i32::MIN && nc <= NR);
    let off = _mm512_set1_epi32(row.off);
    let m = _mm512_set1_epi32(row.rq.multiplier);
    let nudge = _mm512_set1_epi64(1 << 30);
    let e = _mm_cvtsi32_si128(-row.rq.shift);
    let mask = _mm512_set1_epi32(((1i64 << -row.rq.shift) - 1) as i32);
    let half = _mm512_srli_epi32::<1>(mask);
    // Clamp before adding the zero point, which then cannot overflow and
    // matches the scalar saturating add.
    let lo = _mm512_set1_epi32(row.lo - row.zp);
    let hi = _mm512_set1_epi32(row.hi - row.zp);
    let zp = _mm512_set1_epi32(row.zp);
    for h in 0..2 {
        let n = nc.saturating_sub(16 * h).min(16);
        if n == 0 {
            break;
        }
        // SAFETY: lanes 16h..16h+16 of the NR-long arrays; `dst` writes
        // are masked to the first `n` bytes of this half.
        unsafe {
            let mut v = _mm512_loadu_si512(row.acc.as_ptr().add(16 * h) as *const _);
            v = _mm512_add_epi32(v, off);
            if let Some((wz, cs)) = row.colsum {
                let s = _mm512_loadu_si512(cs.as_ptr().add(16 * h) as *const _);
                v = _mm512_sub_epi32(v, _mm512_mullo_epi32(s, _mm512_set1_epi32(wz)));
            }
            // SaturatingRoundingDoublingHighMul = floor((v m + 2^30) / 2^31)
            // (the saturating case is excluded by the contract).
            let even = _mm512_add_epi64(_mm512_mul_epi32(v, m), nudge);
            let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(v), m), nudge);
            let even = _mm512_srli_epi64::<31>(even);
            let odd = _mm512_slli_epi64::<1>(odd);
            let v = _mm512_mask_blend_epi32(0xAAAA, even, odd);
            // RoundingDivideByPOT: ties away from zero.
            let rem = _mm512_and_si512(v, mask);
            let thr = _mm512_sub_epi32(half, _mm512_srai_epi32::<31>(v));
            let q = _mm512_sra_epi32(v, e);
            let up = _mm512_cmpgt_epi32_mask(rem, thr);
            let q = _mm512_mask_sub_epi32(q, up, q, _mm512_set1_epi32(-1));
            let q = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), zp);
            let bytes = _mm512_cvtepi32_epi8(q);
            _mm_mask_storeu_epi8(
                dst.add(16 * h) as *mut i8,
                (1u32 << n).wrapping_sub(1) as u16,
                bytes,
            );
        }
    }
}
