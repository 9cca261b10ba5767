//! AVX-512 VNNI: `vpdpbusd` multiplies 4 unsigned activation bytes by 4
//! signed weight bytes and adds them into one int32 lane, so an 8 x 32 tile
//! is 16 zmm accumulators, two activation loads and eight weight
//! broadcasts per depth group. The epilogue requantizes in registers too.

use core::arch::x86_64::*;

use super::epilogue::RowConsts;
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

/// Requantizes 16 accumulators of row `r` (see [`RowConsts`]), offset,
/// weight-zero-point correction (`cs * wz`, when given) included; returns
/// the clamped values plus the zero point, one per 32-bit lane.
///
/// # Safety
/// The CPU must support AVX-512F; `r < MR`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[inline]
unsafe fn requant16(acc: __m512i, o: &RowConsts, r: usize, colsum: Option<__m512i>) -> __m512i {
    let mut v = _mm512_add_epi32(acc, _mm512_set1_epi32(o.off[r]));
    if let Some(cs) = colsum {
        v = _mm512_sub_epi32(v, _mm512_mullo_epi32(cs, _mm512_set1_epi32(o.wz[r])));
    }
    // `vpmuldq` reads the low 32 bits of each 64-bit lane.
    let m = _mm512_set1_epi32(o.mult[r]);
    let add = _mm512_set1_epi64(o.add[r]);
    let corr = _mm512_set1_epi64(o.corr[r]);
    let sh = _mm512_set1_epi64(o.shift[r]);
    // Even lanes in place, odd lanes moved down: exact 64-bit products.
    let te = _mm512_mul_epi32(v, m);
    let to = _mm512_mul_epi32(_mm512_srli_epi64::<32>(v), m);
    let ne = _mm512_cmplt_epi64_mask(te, _mm512_setzero_si512());
    let no = _mm512_cmplt_epi64_mask(to, _mm512_setzero_si512());
    let ue = _mm512_add_epi64(te, add);
    let uo = _mm512_add_epi64(to, add);
    let ze = _mm512_srav_epi64(_mm512_mask_sub_epi64(ue, ne, ue, corr), sh);
    let zo = _mm512_srav_epi64(_mm512_mask_sub_epi64(uo, no, uo, corr), sh);
    // Odd lanes take the low half of zo's 64-bit lanes (pairs swapped).
    let z = _mm512_mask_shuffle_epi32::<0xB1>(ze, 0xAAAA, zo);
    let z = _mm512_min_epi32(
        _mm512_max_epi32(z, _mm512_set1_epi32(o.lo)),
        _mm512_set1_epi32(o.hi),
    );
    _mm512_add_epi32(z, _mm512_set1_epi32(o.zp))
}

/// One weight panel against `count` consecutive activation panels (`pb`
/// bytes apart), requantized in registers and stored as bytes: output
/// element `(c0 + r, n0 + NR p + j)` at `dst + r * cs + NR p + j`. Every
/// panel holds [`NR`] positions except the last (`last_nc`). `colsums`
/// (`count * NR` per-position sums of stored activations) is needed when
/// some weight zero point is non-zero.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and VNNI; `w` holds `groups * MR *
/// KG` bytes and `x` `count` panels of at least `groups * NR * KG` bytes
/// each, `pb` apart; `dst` must be valid for those writes (rows `r <
/// o.mr`), with no other access during the call.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn panel_requant(
    groups: usize,
    w: &[i8],
    x: &[u8],
    pb: usize,
    count: usize,
    last_nc: usize,
    o: &RowConsts,
    dst: *mut u8,
    cs: usize,
    colsums: Option<&[i32]>,
) {
    debug_assert!(w.len() >= groups * MR * KG);
    debug_assert!(count == 0 || x.len() >= (count - 1) * pb + groups * NR * KG);
    debug_assert!(o.mr <= MR && last_nc <= NR);
    debug_assert!(colsums.is_none_or(|c| c.len() >= count * NR));
    for p in 0..count {
        let nc = if p + 1 == count { last_nc } else { NR };
        let mut a = [[_mm512_setzero_si512(); 2]; MR];
        // SAFETY: group g of panel p reads x[p*pb + g*128..+128] and
        // w[g*32..+32], inside the lengths the caller guarantees.
        unsafe {
            let (mut wp, mut xp) = (w.as_ptr(), x.as_ptr().add(p * pb));
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
        // SAFETY: panel p's NR column sums are inside `colsums`.
        let csum = colsums.map(|c| unsafe {
            let c = c.as_ptr().add(p * NR);
            [
                _mm512_loadu_si512(c as *const _),
                _mm512_loadu_si512(c.add(16) as *const _),
            ]
        });
        let masks = [
            (1u32 << nc.min(16)).wrapping_sub(1) as u16,
            (1u32 << nc.saturating_sub(16)).wrapping_sub(1) as u16,
        ];
        // Fully unrolled so the accumulators stay in registers.
        macro_rules! half {
            ($r:literal, $h:literal) => {
                // SAFETY: AVX-512 is enabled here; $r < MR.
                let q = unsafe { requant16(a[$r][$h], o, $r, csum.map(|c| c[$h])) };
                let b = _mm512_cvtepi32_epi8(q);
                // SAFETY: the (masked) store writes valid positions of
                // row $r of panel p, inside the caller's block.
                unsafe {
                    let d = dst.add($r * cs + p * NR + 16 * $h) as *mut i8;
                    if masks[$h] == u16::MAX {
                        _mm_storeu_si128(d as *mut __m128i, b);
                    } else {
                        _mm_mask_storeu_epi8(d, masks[$h], b);
                    }
                }
            };
        }
        macro_rules! row {
            ($r:literal) => {
                if $r < o.mr {
                    half!($r, 0);
                    half!($r, 1);
                }
            };
        }
        row!(0);
        row!(1);
        row!(2);
        row!(3);
        row!(4);
        row!(5);
        row!(6);
        row!(7);
    }
}

/// Requantizes a whole accumulator tile to bytes (`u8` or `i8` bits) for
/// the strided store of the scalar epilogue.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and VNNI.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn requant_tile(
    acc: &[[i32; NR]; MR],
    o: &RowConsts,
    colsum: Option<&[i32; NR]>,
    out: &mut [[u8; NR]; MR],
) {
    for r in 0..o.mr.min(MR) {
        for h in 0..NR / 16 {
            // SAFETY: 16-lane loads and stores inside rows of NR = 32.
            unsafe {
                let a = _mm512_loadu_si512(acc[r].as_ptr().add(16 * h) as *const _);
                let c = colsum.map(|c| _mm512_loadu_si512(c.as_ptr().add(16 * h) as *const _));
                let q = requant16(a, o, r, c);
                let d = out[r].as_mut_ptr().add(16 * h) as *mut __m128i;
                _mm_storeu_si128(d, _mm512_cvtepi32_epi8(q));
            }
        }
    }
}

/// Raw dot products of one weight panel with the first `n` positions of
/// one activation panel, for few positions (fully connected layers): the
/// channels of a depth group sit in the lanes of one 256-bit `vpdpbusd`
/// against that position's 4 broadcast activation bytes, so no work is
/// spent on the panel's empty positions. Writes `acc[r][j]` for `j < n`.
///
/// # Safety
/// The CPU must support AVX-512F/BW/VL and VNNI; `w` holds at least
/// `groups * MR * KG` and `x` `groups * NR * KG` bytes; `n <= NR`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(crate) unsafe fn gemv(groups: usize, w: &[i8], x: &[u8], n: usize, acc: &mut [[i32; NR]; MR]) {
    debug_assert!(w.len() >= groups * MR * KG && x.len() >= groups * NR * KG && n <= NR);
    const U: usize = 4;
    for j in 0..n {
        let mut a = [_mm256_setzero_si256(); U];
        // SAFETY: group g reads w[g*32..+32] and x[(g*NR + j)*4..+4],
        // inside the lengths the caller guarantees (j < NR).
        let sum = unsafe {
            let (wp, xp) = (w.as_ptr(), x.as_ptr().add(j * KG));
            let at = |g: usize| {
                let xb = _mm256_set1_epi32((xp.add(g * NR * KG) as *const i32).read_unaligned());
                let wv = _mm256_loadu_si256(wp.add(g * MR * KG) as *const __m256i);
                (xb, wv)
            };
            let mut g = 0;
            while g + U <= groups {
                for (u, acc) in a.iter_mut().enumerate() {
                    let (xb, wv) = at(g + u);
                    *acc = _mm256_dpbusd_epi32(*acc, xb, wv);
                }
                g += U;
            }
            while g < groups {
                let (xb, wv) = at(g);
                a[0] = _mm256_dpbusd_epi32(a[0], xb, wv);
                g += 1;
            }
            _mm256_add_epi32(_mm256_add_epi32(a[0], a[1]), _mm256_add_epi32(a[2], a[3]))
        };
        let mut lanes = [0i32; MR];
        // SAFETY: MR = 8 lanes of 32 bits: one 256-bit store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sum) };
        for (row, v) in acc.iter_mut().zip(lanes) {
            row[j] = v;
        }
    }
}
