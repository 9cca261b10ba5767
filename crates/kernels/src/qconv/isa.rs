//! What the int8 conv kernels may use, read off the int8 GEMM's [`QIsa`]
//! (one instruction-set choice for all int8 kernels). `QIsa` only hands
//! out variants the CPU supports, so these predicates are proofs too.

use crate::qgemm::QIsa;

/// True when the AVX-512 kernels (F, BW, VL, VNNI) may run.
#[cfg(target_arch = "x86_64")]
pub(crate) fn is_avx512(isa: QIsa) -> bool {
    cfg!(target_arch = "x86_64") && isa.name() == "vnni"
}

/// True when the AVX2 kernels may run (also under AVX-512).
#[cfg(target_arch = "x86_64")]
pub(crate) fn is_avx2(isa: QIsa) -> bool {
    cfg!(target_arch = "x86_64") && matches!(isa.name(), "avx2" | "vnni")
}

/// True when the NEON kernels may run.
#[cfg(target_arch = "aarch64")]
pub(crate) fn is_neon(isa: QIsa) -> bool {
    cfg!(target_arch = "aarch64") && matches!(isa.name(), "neon" | "neon-dot")
}

/// True for any SIMD instruction set.
pub(crate) fn is_simd(isa: QIsa) -> bool {
    isa.name() != "portable"
}
