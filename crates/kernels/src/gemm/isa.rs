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
    /// AVX-512F on top of AVX2+FMA.
    #[cfg(target_arch = "x86_64")]
    Avx512,
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
                if std::is_x86_feature_detected!("avx512f") {
                    return Isa(Kind::Avx512);
                }
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
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut all = [Some(Isa::portable()), None, None];
        #[cfg(target_arch = "x86_64")]
        {
            let best = Isa::detect();
            if best.is_avx2() {
                all[1] = Some(Isa(Kind::Avx2Fma));
            }
            if best.is_avx512() {
                all[2] = Some(best);
            }
        }
        all.into_iter().flatten()
    }

    /// The best instruction set without AVX-512 (AVX2+FMA when present):
    /// for comparing, or for machines where 512-bit code lowers clocks.
    pub fn without_avx512(self) -> Isa {
        #[cfg(target_arch = "x86_64")]
        if self.0 == Kind::Avx512 {
            return Isa(Kind::Avx2Fma);
        }
        self
    }

    /// Short name for kernel reports: `portable` or `avx2`.
    pub fn name(&self) -> &'static str {
        match self.0 {
            Kind::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx2Fma => "avx2",
            #[cfg(target_arch = "x86_64")]
            Kind::Avx512 => "avx512",
        }
    }

    /// True when AVX2+FMA kernels may run (also under AVX-512).
    pub fn is_avx2(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            matches!(self.0, Kind::Avx2Fma | Kind::Avx512)
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// True when AVX-512F kernels may run.
    pub fn is_avx512(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            self.0 == Kind::Avx512
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}
