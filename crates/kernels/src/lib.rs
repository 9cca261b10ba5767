//! Compute kernels: plain functions over slices, with no knowledge of graphs,
//! so generated MCU code can reuse them. `no_std`; SIMD paths are chosen at
//! run time when the `std` feature can detect CPU features.
#![no_std]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod activation;
pub mod conv;
pub mod conv_shift;
pub mod depthwise;
pub mod gemm;
pub mod pool;
pub mod qblock;
pub mod qconv;
pub mod qelem;
pub mod qgemm;
pub mod requant;
pub mod sparse;
pub mod vmath;

pub use activation::{ActFloat, Activation, GradInput};
