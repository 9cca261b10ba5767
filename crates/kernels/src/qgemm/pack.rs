//! Operands of the int8 GEMM and their packed layouts.
//!
//! Depth is cut into groups of [`KG`] = 4 (one `vpdpbusd`/`sdot` lane).
//! Weights are stored signed (`u8` weights shifted by -128) in panels of
//! [`MR`] channels: `panel[(g * MR + r) * 4 + i]` = weight `(c0 + r, 4g + i)`.
//! Activations are stored unsigned (`i8` activations shifted by +128, i.e.
//! the sign bit flipped) in panels of [`NR`] positions:
//! `panel[(g * NR + j) * 4 + i]` = element `(4g + i, n0 + j)`. Depth past
//! the end is zero in both, so it adds nothing to the dot products.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::{KG, MR, NR};

mod sealed {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for i8 {}
}

/// An 8-bit quantized element type: `u8` or `i8`.
pub trait QElem: Copy + Send + Sync + 'static + sealed::Sealed {
    /// True for `i8`.
    const SIGNED: bool;
    /// Smallest value, as i32.
    const MIN: i32;
    /// Largest value, as i32.
    const MAX: i32;
    /// The value as i32.
    fn to_i32(self) -> i32;
    /// The value shifted into `u8` storage (`+128` for `i8`).
    fn to_u8_storage(self) -> u8;
    /// The value shifted into `i8` storage (`-128` for `u8`).
    fn to_i8_storage(self) -> i8;
    /// `v` clamped to the type's range.
    fn saturate(v: i32) -> Self;
    /// The raw bytes of a slice.
    fn as_bytes(s: &[Self]) -> &[u8];
}

/// `QElem` for `$t`; `$flip` turns its bits into `u8` storage and back.
macro_rules! qelem {
    ($t:ty, $signed:expr, $u8_flip:expr) => {
        impl QElem for $t {
            const SIGNED: bool = $signed;
            const MIN: i32 = <$t>::MIN as i32;
            const MAX: i32 = <$t>::MAX as i32;
            #[inline(always)]
            fn to_i32(self) -> i32 {
                self as i32
            }
            #[inline(always)]
            fn to_u8_storage(self) -> u8 {
                (self as u8) ^ $u8_flip
            }
            #[inline(always)]
            fn to_i8_storage(self) -> i8 {
                ((self as u8) ^ ($u8_flip ^ 0x80)) as i8
            }
            #[inline(always)]
            fn saturate(v: i32) -> $t {
                v.clamp(<$t as QElem>::MIN, <$t as QElem>::MAX) as $t
            }
            #[inline(always)]
            fn as_bytes(s: &[$t]) -> &[u8] {
                // SAFETY: `$t` is `u8` or `i8`: the same size and alignment
                // as u8, every bit pattern valid; length and lifetime kept.
                unsafe { core::slice::from_raw_parts(s.as_ptr() as *const u8, s.len()) }
            }
        }
    };
}

qelem!(u8, false, 0);
qelem!(i8, true, 0x80);

/// Why operands cannot be packed or used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QGemmError {
    /// A buffer is too short for the shape and strides given.
    TooShort {
        /// Which operand.
        what: &'static str,
    },
    /// Zero points: wrong count (must be 1 or one per channel).
    ZeroPointCount {
        /// Count given.
        got: usize,
        /// Channels.
        channels: usize,
    },
    /// A zero point outside the element type's range.
    ZeroPointRange {
        /// The offending value.
        value: i32,
    },
    /// A size overflows `usize`.
    Overflow,
}

impl fmt::Display for QGemmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QGemmError::TooShort { what } => write!(f, "{what} is too short for its shape"),
            QGemmError::ZeroPointCount { got, channels } => write!(
                f,
                "{got} weight zero points for {channels} channels (need 1 or {channels})"
            ),
            QGemmError::ZeroPointRange { value } => {
                write!(f, "zero point {value} is outside the element type's range")
            }
            QGemmError::Overflow => write!(f, "size overflow"),
        }
    }
}

/// Index of the last element of a strided 2-D view, or `None` on overflow.
pub(crate) fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)
}

/// Depth rounded up to whole groups.
#[inline]
pub(crate) fn depth_padded(depth: usize) -> usize {
    depth.div_ceil(KG) * KG
}

/// Bytes of one packed activation panel ([`NR`] positions).
pub fn panel_bytes(depth: usize) -> usize {
    depth_padded(depth) * NR
}

/// Constant weights (`channels x depth`) packed once: signed panels of
/// [`MR`] channels, plus per-channel sums and zero points for the
/// zero-point compensation.
#[derive(Clone, Debug, PartialEq)]
pub struct QPackedWeights {
    channels: usize,
    depth: usize,
    data: Vec<i8>,
    /// Sum over depth of the stored (signed) weights, per padded channel.
    pub(crate) sums: Vec<i32>,
    /// Zero point in storage terms (`zp - 128` for `u8`), per padded channel.
    pub(crate) zps: Vec<i32>,
    /// True when every stored zero point is 0 (no activation sums needed).
    pub(crate) zps_zero: bool,
}

impl QPackedWeights {
    /// Packs row-major weights (`w[c * depth + k]`: conv `[Cout, Cin, kh,
    /// kw]`, Gemm with transB). `w_zero_points` holds one value, or one per
    /// channel.
    pub fn new<T: QElem>(
        w: &[T],
        channels: usize,
        depth: usize,
        w_zero_points: &[i32],
    ) -> Result<QPackedWeights, QGemmError> {
        QPackedWeights::new_strided(w, channels, depth, depth, 1, w_zero_points)
    }

    /// Packs weights with element `(c, k)` at `w[c * c_stride + k * k_stride]`
    /// (MatMul `B[K, N]` is `c_stride = 1, k_stride = N`).
    pub fn new_strided<T: QElem>(
        w: &[T],
        channels: usize,
        depth: usize,
        c_stride: usize,
        k_stride: usize,
        w_zero_points: &[i32],
    ) -> Result<QPackedWeights, QGemmError> {
        let last = last_index(channels, depth, c_stride, k_stride).ok_or(QGemmError::Overflow)?;
        if channels > 0 && depth > 0 && last >= w.len() {
            return Err(QGemmError::TooShort { what: "weights" });
        }
        if w_zero_points.len() != 1 && w_zero_points.len() != channels {
            return Err(QGemmError::ZeroPointCount {
                got: w_zero_points.len(),
                channels,
            });
        }
        if let Some(&bad) = w_zero_points
            .iter()
            .find(|z| !(T::MIN..=T::MAX).contains(*z))
        {
            return Err(QGemmError::ZeroPointRange { value: bad });
        }
        let kp = depth_padded(depth);
        let cp = channels.div_ceil(MR) * MR;
        let len = cp.checked_mul(kp).ok_or(QGemmError::Overflow)?;
        let mut data = vec![0i8; len];
        let mut sums = vec![0i32; cp];
        let mut zps = vec![0i32; cp];
        let offset = if T::SIGNED { 0 } else { 128 };
        for c in 0..channels {
            let (panel, r) = (c / MR, c % MR);
            let dst = &mut data[panel * MR * kp..][..MR * kp];
            let mut sum = 0i32;
            for k in 0..depth {
                let v = w[c * c_stride + k * k_stride].to_i8_storage();
                dst[(k / KG * MR + r) * KG + k % KG] = v;
                sum = sum.wrapping_add(v as i32);
            }
            sums[c] = sum;
            let zp = w_zero_points[if w_zero_points.len() == 1 { 0 } else { c }];
            zps[c] = zp - offset;
        }
        let zps_zero = zps.iter().all(|&z| z == 0);
        Ok(QPackedWeights {
            channels,
            depth,
            data,
            sums,
            zps,
            zps_zero,
        })
    }

    /// Output channels (M).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Depth (K).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * (self.sums.len() + self.zps.len())
    }

    /// The packed panel of channels `p * MR ..`.
    #[inline]
    pub(crate) fn panel(&self, p: usize) -> &[i8] {
        let kp = depth_padded(self.depth);
        &self.data[p * MR * kp..][..MR * kp]
    }
}

/// The activation operand (`depth x positions`) of [`qgemm`](super::qgemm),
/// as the driver consumes it: implement it to pack straight from another
/// layout (e.g. conv im2col) without an intermediate buffer.
pub trait QRhs: Sync {
    /// Depth (K).
    fn depth(&self) -> usize;
    /// Positions (N).
    fn positions(&self) -> usize;
    /// The zero point in `u8` storage terms (`x_zp + 128` for `i8`).
    fn zero_point_storage(&self) -> i32;
    /// Packs positions `n0..n0 + nc` (`n0` a multiple of [`NR`], `nc <= NR`)
    /// into one panel (`dst.len() == panel_bytes(depth)`) in the layout
    /// described in this module: `u8` storage values, zeros for depth past
    /// the end and for positions `nc..NR`.
    fn pack_panel(&self, n0: usize, nc: usize, dst: &mut [u8]);
}

/// Where consecutive depth or positions are adjacent in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QLayout {
    /// Element `(k, n)` at `k * ld + n`: conv im2col rows, NCHW 1x1 conv.
    DepthMajor,
    /// Element `(n, k)` at `n * ld + k`: MatMul rows.
    PositionMajor,
}

impl QLayout {
    /// Whether a `depth x positions` view with leading dimension `ld` fits
    /// in `len` elements (`None`: its size overflows).
    pub(crate) fn fits(
        self,
        len: usize,
        depth: usize,
        positions: usize,
        ld: usize,
    ) -> Option<bool> {
        let last = match self {
            QLayout::DepthMajor => last_index(depth, positions, ld, 1),
            QLayout::PositionMajor => last_index(positions, depth, ld, 1),
        }?;
        Some(depth == 0 || positions == 0 || last < len)
    }
}

/// Plain 8-bit activations in one of the two layouts, with a per-tensor
/// zero point.
#[derive(Clone, Copy, Debug)]
pub struct QActivations<'a, T: QElem> {
    data: &'a [T],
    depth: usize,
    positions: usize,
    ld: usize,
    layout: QLayout,
    zero_point: T,
}

impl<'a, T: QElem> QActivations<'a, T> {
    /// A view of `data`; fails if some element would fall outside it.
    pub fn new(
        data: &'a [T],
        depth: usize,
        positions: usize,
        ld: usize,
        layout: QLayout,
        zero_point: T,
    ) -> Result<Self, QGemmError> {
        match layout.fits(data.len(), depth, positions, ld) {
            None => return Err(QGemmError::Overflow),
            Some(false) => {
                return Err(QGemmError::TooShort {
                    what: "activations",
                })
            }
            Some(true) => {}
        }
        Ok(QActivations {
            data,
            depth,
            positions,
            ld,
            layout,
            zero_point,
        })
    }
}

impl<T: QElem> QRhs for QActivations<'_, T> {
    fn depth(&self) -> usize {
        self.depth
    }
    fn positions(&self) -> usize {
        self.positions
    }
    fn zero_point_storage(&self) -> i32 {
        self.zero_point.to_u8_storage() as i32
    }
    fn pack_panel(&self, n0: usize, nc: usize, dst: &mut [u8]) {
        let (k, ld) = (self.depth, self.ld);
        let groups = depth_padded(k) / KG;
        let dst = &mut dst[..groups * NR * KG];
        match self.layout {
            QLayout::DepthMajor => {
                let bytes = T::as_bytes(self.data);
                let flip = if T::SIGNED { 0x80 } else { 0 };
                for g in 0..groups {
                    let row = &mut dst[g * NR * KG..][..NR * KG];
                    let kk = KG.min(k - g * KG);
                    if nc == NR && kk == KG {
                        let src: [&[u8]; KG] =
                            core::array::from_fn(|i| &bytes[(g * KG + i) * ld + n0..][..NR]);
                        interleave4(src, flip, row.try_into().expect("panel row"));
                        continue;
                    }
                    row.fill(0);
                    for i in 0..kk {
                        let src = &bytes[(g * KG + i) * ld + n0..][..nc];
                        for (j, &v) in src.iter().enumerate() {
                            row[j * KG + i] = v ^ flip;
                        }
                    }
                }
            }
            QLayout::PositionMajor => {
                let bytes = T::as_bytes(self.data);
                let flip = if T::SIGNED { 0x8080_8080u32 } else { 0 };
                if nc < NR || k % KG != 0 {
                    dst.fill(0);
                }
                let full = k / KG;
                for j in 0..nc {
                    let src = &bytes[(n0 + j) * ld..][..k];
                    for (g, q) in src.chunks_exact(KG).enumerate() {
                        let v = u32::from_ne_bytes([q[0], q[1], q[2], q[3]]) ^ flip;
                        dst[(g * NR + j) * KG..][..KG].copy_from_slice(&v.to_ne_bytes());
                    }
                    for (i, &v) in src[full * KG..].iter().enumerate() {
                        dst[(full * NR + j) * KG + i] = v ^ flip as u8;
                    }
                }
            }
        }
    }
}

/// Interleaves four rows of [`NR`] bytes into `[j][i]` order (`dst[4 j +
/// i] = src[i][j] ^ flip`).
#[inline]
fn interleave4(src: [&[u8]; KG], flip: u8, dst: &mut [u8; NR * KG]) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline; each row has NR = 32
    // readable bytes (slices checked by the caller's indexing) and `dst`
    // has 128 writable bytes; all accesses are unaligned loads/stores
    // inside those bounds.
    unsafe {
        use core::arch::x86_64::*;
        let f = _mm_set1_epi8(flip as i8);
        for h in 0..NR / 16 {
            let r: [__m128i; KG] = core::array::from_fn(|i| {
                _mm_xor_si128(_mm_loadu_si128(src[i].as_ptr().add(16 * h) as *const _), f)
            });
            let t0 = _mm_unpacklo_epi8(r[0], r[1]);
            let t1 = _mm_unpackhi_epi8(r[0], r[1]);
            let t2 = _mm_unpacklo_epi8(r[2], r[3]);
            let t3 = _mm_unpackhi_epi8(r[2], r[3]);
            let d = dst.as_mut_ptr().add(64 * h) as *mut __m128i;
            _mm_storeu_si128(d, _mm_unpacklo_epi16(t0, t2));
            _mm_storeu_si128(d.add(1), _mm_unpackhi_epi16(t0, t2));
            _mm_storeu_si128(d.add(2), _mm_unpacklo_epi16(t1, t3));
            _mm_storeu_si128(d.add(3), _mm_unpackhi_epi16(t1, t3));
        }
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: NEON is part of the aarch64 baseline; each row has 32
    // readable bytes and `dst` 128 writable ones; `vst4q_u8` writes 64
    // bytes per half.
    unsafe {
        use core::arch::aarch64::*;
        let f = vdupq_n_u8(flip);
        for h in 0..NR / 16 {
            let r = uint8x16x4_t(
                veorq_u8(vld1q_u8(src[0].as_ptr().add(16 * h)), f),
                veorq_u8(vld1q_u8(src[1].as_ptr().add(16 * h)), f),
                veorq_u8(vld1q_u8(src[2].as_ptr().add(16 * h)), f),
                veorq_u8(vld1q_u8(src[3].as_ptr().add(16 * h)), f),
            );
            vst4q_u8(dst.as_mut_ptr().add(64 * h), r);
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    for (j, q) in dst.chunks_exact_mut(KG).enumerate() {
        for (i, v) in q.iter_mut().enumerate() {
            *v = src[i][j] ^ flip;
        }
    }
}
