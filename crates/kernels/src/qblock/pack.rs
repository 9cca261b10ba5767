//! Packed layouts of the block GEMM.
//!
//! Depth is cut into blocks of `block_size` (the last may be short); each
//! block is padded to whole groups of [`KG`], so groups never straddle
//! blocks. Weights: panels of [`NC`] channels; per (panel, block, group) 64
//! bytes where byte `4 r + i` holds weight `(c0 + r, k)` in its low nibble
//! and `(c0 + 16 + r, k)` in its high nibble (`k` = group's depth + `i`,
//! two's complement int4, zero past the end). Activations: tiles of [`MP`]
//! positions; per group `MP x 4` bytes, `tile[(g * MP + j) * 4 + i]` = `u8`
//! storage of element `(k, n0 + j)`, zero past the end.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use super::{KG, MP, NC};
use crate::qgemm::{last_index, QElem, QLayout};

/// Why operands cannot be packed or used.
#[derive(Clone, Debug, PartialEq)]
pub enum QBlockError {
    /// A buffer is too short for the shape and strides given.
    TooShort {
        /// Which operand.
        what: &'static str,
    },
    /// A weight outside the int4 range `[-8, 7]`.
    WeightRange {
        /// The offending value.
        value: i8,
    },
    /// A block scale that is not finite.
    Scale {
        /// The offending value.
        value: f32,
    },
    /// `block_size` is zero.
    BlockSize,
    /// A size overflows `usize`.
    Overflow,
}

impl fmt::Display for QBlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QBlockError::TooShort { what } => write!(f, "{what} is too short for its shape"),
            QBlockError::WeightRange { value } => {
                write!(f, "weight {value} is outside the int4 range [-8, 7]")
            }
            QBlockError::Scale { value } => write!(f, "block scale {value} is not finite"),
            QBlockError::BlockSize => write!(f, "block_size must be positive"),
            QBlockError::Overflow => write!(f, "size overflow"),
        }
    }
}

/// Constant int4 weights (`channels x depth`) with per-block scales, packed
/// once, two weights per byte.
#[derive(Clone, Debug, PartialEq)]
pub struct QBlockWeights {
    channels: usize,
    depth: usize,
    block_size: usize,
    blocks: usize,
    /// Groups per (padded) block.
    gpb: usize,
    pub(crate) data: Vec<u8>,
    /// Sum of the weights of each (panel, block, channel-in-panel).
    pub(crate) sums: Vec<i32>,
    /// Scale of each (panel, block, channel-in-panel); 0 for padding.
    pub(crate) scales: Vec<f32>,
}

impl QBlockWeights {
    /// Packs weights with element `(c, k)` at `w[c * c_stride + k *
    /// k_stride]` (values in `[-8, 7]`) and the scale of channel `c`, block
    /// `b` at `scales[c * sc_stride + b * sb_stride]`. MatMul `w[K, N]`,
    /// `scale[nb, N]`: strides `(1, N)` and `(1, N)`; 1x1 conv `w[N, K]`,
    /// `scale[N, nb]`: `(K, 1)` and `(nb, 1)`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        w: &[i8],
        channels: usize,
        depth: usize,
        c_stride: usize,
        k_stride: usize,
        block_size: usize,
        scales: &[f32],
        sc_stride: usize,
        sb_stride: usize,
    ) -> Result<QBlockWeights, QBlockError> {
        if block_size == 0 {
            return Err(QBlockError::BlockSize);
        }
        let blocks = depth.div_ceil(block_size);
        let last = last_index(channels, depth, c_stride, k_stride).ok_or(QBlockError::Overflow)?;
        if channels > 0 && depth > 0 && last >= w.len() {
            return Err(QBlockError::TooShort { what: "weights" });
        }
        let slast =
            last_index(channels, blocks, sc_stride, sb_stride).ok_or(QBlockError::Overflow)?;
        if channels > 0 && blocks > 0 && slast >= scales.len() {
            return Err(QBlockError::TooShort { what: "scales" });
        }
        let gpb = block_size.min(depth.max(1)).div_ceil(KG);
        let panels = channels.div_ceil(NC);
        let len = panels
            .checked_mul(blocks)
            .and_then(|v| v.checked_mul(gpb))
            .and_then(|v| v.checked_mul(NC * KG / 2))
            .ok_or(QBlockError::Overflow)?;
        let mut data = vec![0u8; len];
        let mut sums = vec![0i32; panels * blocks * NC];
        let mut sc = vec![0f32; panels * blocks * NC];
        for c in 0..channels {
            let (p, r) = (c / NC, c % NC);
            let (byte_r, shift) = (r % 16, if r < 16 { 0 } else { 4 });
            for b in 0..blocks {
                let s = scales[c * sc_stride + b * sb_stride];
                if !s.is_finite() {
                    return Err(QBlockError::Scale { value: s });
                }
                let pb = p * blocks + b;
                sc[pb * NC + r] = s;
                let (k0, k1) = (b * block_size, ((b + 1) * block_size).min(depth));
                let mut sum = 0i32;
                for k in k0..k1 {
                    let v = w[c * c_stride + k * k_stride];
                    if !(-8..=7).contains(&v) {
                        return Err(QBlockError::WeightRange { value: v });
                    }
                    sum += v as i32;
                    let (g, i) = ((k - k0) / KG, (k - k0) % KG);
                    let at = (pb * gpb + g) * (NC * KG / 2) + byte_r * KG + i;
                    data[at] |= ((v as u8) & 0x0F) << shift;
                }
                sums[pb * NC + r] = sum;
            }
        }
        Ok(QBlockWeights {
            channels,
            depth,
            block_size,
            blocks,
            gpb,
            data,
            sums,
            scales: sc,
        })
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Depth (K).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Depth values per block (the last block may be shorter).
    pub fn block_size(&self) -> usize {
        self.block_size
    }

    /// Blocks along the depth.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Groups of [`KG`] per padded block.
    pub(crate) fn gpb(&self) -> usize {
        self.gpb
    }

    /// Channel panels.
    pub(crate) fn panels(&self) -> usize {
        self.channels.div_ceil(NC)
    }

    /// The 4-bit size: half a byte per weight plus one f32 scale per
    /// (channel, block), as stored in a model.
    pub fn int4_bytes(&self) -> usize {
        (self.channels * self.depth).div_ceil(2) + 4 * self.channels * self.blocks
    }

    /// Bytes held in memory: packed weights (channels padded to panels) plus
    /// per-block scales and sums.
    pub fn bytes(&self) -> usize {
        self.data.len() + 4 * (self.sums.len() + self.scales.len())
    }

    /// Bytes of one packed activation tile ([`MP`] positions).
    pub(crate) fn tile_bytes(&self) -> usize {
        self.blocks * self.gpb * KG * MP
    }

    /// Packed nibbles, block sums and scales of channel panel `p`.
    pub(crate) fn panel(&self, p: usize) -> (&[u8], &[i32], &[f32]) {
        let (nb, gb) = (self.blocks, self.gpb * NC * KG / 2);
        (
            &self.data[p * nb * gb..][..nb * gb],
            &self.sums[p * nb * NC..][..nb * NC],
            &self.scales[p * nb * NC..][..nb * NC],
        )
    }
}

/// 8-bit activations (`depth x positions`) in one of the two layouts.
#[derive(Clone, Copy, Debug)]
pub struct QBlockInput<'a, T: QElem> {
    data: &'a [T],
    depth: usize,
    positions: usize,
    ld: usize,
    layout: QLayout,
}

impl<'a, T: QElem> QBlockInput<'a, T> {
    /// A view of `data` (element `(k, n)` at `k * ld + n` when
    /// `DepthMajor`, `n * ld + k` when `PositionMajor`); fails if some
    /// element would fall outside it.
    pub fn new(
        data: &'a [T],
        depth: usize,
        positions: usize,
        ld: usize,
        layout: QLayout,
    ) -> Result<Self, QBlockError> {
        match layout.fits(data.len(), depth, positions, ld) {
            None => return Err(QBlockError::Overflow),
            Some(false) => {
                return Err(QBlockError::TooShort {
                    what: "activations",
                })
            }
            Some(true) => {}
        }
        Ok(QBlockInput {
            data,
            depth,
            positions,
            ld,
            layout,
        })
    }

    /// Depth (K).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Positions (N).
    pub fn positions(&self) -> usize {
        self.positions
    }

    /// `zp` in `u8` storage terms.
    pub(crate) fn zero_point_storage(&self, zp: i32) -> i32 {
        if T::SIGNED {
            zp + 128
        } else {
            zp
        }
    }

    /// Packs positions `n0..n0 + nc` into one tile (`dst.len() ==
    /// w.tile_bytes()`).
    pub(crate) fn pack_tile(&self, w: &QBlockWeights, n0: usize, nc: usize, dst: &mut [u8]) {
        dst.fill(0);
        let (bs, gpb) = (w.block_size(), w.gpb());
        let bytes = T::as_bytes(self.data);
        let flip = if T::SIGNED { 0x80 } else { 0 };
        for k in 0..self.depth {
            let (b, kk) = (k / bs, k % bs);
            let g = b * gpb + kk / KG;
            let row = &mut dst[g * MP * KG..][..MP * KG];
            for j in 0..nc {
                let at = match self.layout {
                    QLayout::DepthMajor => k * self.ld + n0 + j,
                    QLayout::PositionMajor => (n0 + j) * self.ld + k,
                };
                row[j * KG + kk % KG] = bytes[at] ^ flip;
            }
        }
    }
}
