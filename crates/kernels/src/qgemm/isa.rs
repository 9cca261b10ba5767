//! Which instruction set the int8 kernels may use. Separate from the f32
//! [`Isa`](crate::gemm::Isa) because the int8 choices differ (VNNI dot
//! products, NEON dot products).

/// An instruction set for the int8 kernels. Only [`QIsa::detect`] and
/// [`QIsa::available`] hand out SIMD variants, so holding one proves the CPU
/// supports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QIsa(pub(crate) QKind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QKind {
    Portable,
    /// AVX2: exact widening to i16 and `vpmaddwd`.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// AVX-512F/BW/VL with VNNI (`vpdpbusd`).
    #[cfg(target_arch = "x86_64")]
    Vnni,
    /// NEON widening multiply-accumulate.
    #[cfg(target_arch = "aarch64")]
    Neon,
    /// NEON with the dot-product extension (`sdot`).
    #[cfg(target_arch = "aarch64")]
    NeonDot,
}

impl QIsa {
    /// Plain Rust kernels; run anywhere.
    pub const fn portable() -> QIsa {
        QIsa(QKind::Portable)
    }

    /// The fastest int8 instruction set this CPU supports.
    pub fn detect() -> QIsa {
        QIsa::available().last().unwrap_or(QIsa::portable())
    }

    /// Every instruction set usable here, portable first, fastest last (for
    /// tests that check all variants against each other).
    pub fn available() -> impl Iterator<Item = QIsa> {
        let mut all = [Some(QIsa::portable()), None, None];
        #[cfg(all(target_arch = "x86_64", feature = "std"))]
        {
            if std::is_x86_feature_detected!("avx2") {
                all[1] = Some(QIsa(QKind::Avx2));
                if std::is_x86_feature_detected!("avx512f")
                    && std::is_x86_feature_detected!("avx512bw")
                    && std::is_x86_feature_detected!("avx512vl")
                    && std::is_x86_feature_detected!("avx512vnni")
                {
                    all[2] = Some(QIsa(QKind::Vnni));
                }
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            // NEON is part of the aarch64 baseline.
            all[1] = Some(QIsa(QKind::Neon));
            #[cfg(feature = "std")]
            if std::arch::is_aarch64_feature_detected!("dotprod") {
                all[2] = Some(QIsa(QKind::NeonDot));
            }
        }
        all.into_iter().flatten()
    }

    /// Short name for kernel reports: `portable`, `avx2`, `vnni`, `neon`
    /// or `neon-dot`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            QKind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            QKind::Avx2 => "avx2",
            #[cfg(target_arch = "x86_64")]
            QKind::Vnni => "vnni",
            #[cfg(target_arch = "aarch64")]
            QKind::Neon => "neon",
            #[cfg(target_arch = "aarch64")]
            QKind::NeonDot => "neon-dot",
        }
    }

    /// The best instruction set without AVX-512 (for comparisons).
    pub fn without_avx512(self) -> QIsa {
        #[cfg(target_arch = "x86_64")]
        if self.0 == QKind::Vnni {
            return QIsa(QKind::Avx2);
        }
        self
    }
}
