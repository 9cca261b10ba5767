//! int8 convolution: depthwise convs run a direct kernel ([`depthwise`]),
//! every other conv an im2col (padded with the input zero point) or a
//! direct 1x1 feeding the int8 GEMM. Accumulation is exact int32 and
//! requantization is the fixed-point [`crate::requant`] formula, so every
//! instruction set and thread count gives the same bits.

pub mod conv;
pub mod depthwise;
mod isa;
mod par;

#[cfg(target_arch = "aarch64")]
mod dw_neon;
#[cfg(target_arch = "x86_64")]
mod dw_x86;
#[cfg(test)]
mod tests;

pub use crate::qgemm::QIsa;

/// How an int8 activation tensor is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QInput {
    /// `true` for int8 bytes, `false` for uint8.
    pub signed: bool,
    /// Zero point: padding holds this value, and it is subtracted from every
    /// element before the multiply.
    pub zero_point: i32,
}

impl QInput {
    /// The value of byte `b` minus the zero point.
    #[inline(always)]
    pub fn centered(self, b: u8) -> i32 {
        let v = if self.signed {
            b as i8 as i32
        } else {
            b as i32
        };
        v - self.zero_point
    }
}
