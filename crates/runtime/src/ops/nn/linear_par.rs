//! Glue shared by the Conv/ConvTranspose/Gemm/MatMul kernels: the bridge
//! from [`Parallel`] to the kernels' task runner, scratch as f32, and
//! kernel names.

use std::sync::OnceLock;

use whittle_kernels::gemm::{Exec, Isa};
use whittle_kernels::Activation;

use crate::{Parallel, RunError};

/// Tasks a kernel sizes scratch for: the host's cores, at most 8. A run
/// with fewer threads uses fewer slots; results do not depend on it.
pub(crate) fn max_tasks() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 8)
    })
}

/// The instruction set kernels use, detected once.
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(Isa::detect)
}

/// Runs kernel tasks on a [`Parallel`], capped at the slots scratch was
/// sized for.
pub(crate) struct ParExec<'a> {
    par: &'a Parallel,
}

impl<'a> ParExec<'a> {
    pub(crate) fn new(par: &'a Parallel) -> Self {
        ParExec { par }
    }
}

// SAFETY: `Parallel::for_each` calls `f(i)` exactly once for every `i` in
// `0..n` (a rayon parallel iterator over the range, or a plain loop) and
// returns only when all calls have finished.
unsafe impl Exec for ParExec<'_> {
    fn max_tasks(&self) -> usize {
        self.par.threads().min(max_tasks())
    }

    fn run(&self, n: usize, f: &(dyn Fn(usize) + Sync)) {
        self.par.for_each(n, f)
    }
}

/// The first `floats` f32 of the scratch buffer.
pub(crate) fn scratch_f32(scratch: &mut [u8], floats: usize) -> Result<&mut [f32], RunError> {
    let bytes = scratch.get_mut(..floats * 4).ok_or(RunError::Unsupported(
        "scratch buffer smaller than requested",
    ))?;
    bytemuck::try_cast_slice_mut(bytes)
        .map_err(|_| RunError::Unsupported("scratch buffer is not 4-byte aligned"))
}

/// `base.isa` plus `+act` when an activation is fused.
pub(crate) fn kernel_name(base: &str, act: Activation) -> String {
    let mut s = format!("{base}.{}", isa().name());
    if act != Activation::None {
        s.push('+');
        s.push_str(act.name());
    }
    s
}
