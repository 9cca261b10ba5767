//! Which instruction set the SIMD kernels may use.

/// An instruction set the kernels can run on this CPU. Only [`Isa::detect`]
/// and [`Isa::available`] hand out SIMD variants, so holding one proves the
/// CPU supports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Kind);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
}

impl Isa {
    /// Plain Rust kernels that the compiler autovectorises; runs anywhere.
    pub const fn portable() -> Isa {
        Isa(Kind::Portable)
    }

    /// The fastest instruction set this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(all(
            target_arch = "x86_64",
            target_feature = "avx2",
            target_feature = "fma"
        ))]
        {
            Isa(Kind::Avx2Fma)
        }
        #[cfg(all(
            target_arch = "x86_64",
            feature = "std",
            not(all(target_feature = "avx2", target_feature = "fma"))
        ))]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa(Kind::Avx2Fma);
            }
            Isa::portable()
        }
        #[cfg(not(any(
            all(
                target_arch = "x86_64",
                target_feature = "avx2",
                target_feature = "fma"
            ),
            all(target_arch = "x86_64", feature = "std")
        )))]
        {
            Isa::portable()
        }
    }

    /// Every instruction set usable here, portable first (for tests that
    /// check all variants against each other).
    pub fn available() -> impl Iterator<Item = Isa> {
        let best = Isa::detect();
        core::iter::once(Isa::portable()).chain((best != Isa::portable()).then_some(best))
    }

    /// Short name for kernel reports: `portable` or `avx2`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => "avx2",
        }
    }

    /// True when this is the AVX2+FMA instruction set.
    pub fn is_avx2(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.0 == Kind::Avx2Fma
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}
