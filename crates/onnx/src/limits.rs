use crate::OnnxError;

/// Bounds on sizes read from untrusted model and tensor files.
///
/// Every size declared in a file (dims, lengths, offsets) is checked against
/// these bounds and against the bytes actually present *before* anything is
/// allocated from it, so a hostile file cannot make the importer reserve
/// memory out of proportion to its own size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportLimits {
    /// Largest model (or tensor) file accepted, in bytes. Default 4 GiB.
    pub max_file_bytes: u64,
    /// Most elements in one tensor. Default 2^31.
    pub max_tensor_elements: u64,
    /// Most bytes over all initializers (including Constant nodes and
    /// densified sparse initializers). Default 8 GiB.
    pub max_total_initializer_bytes: u64,
    /// Highest rank of a tensor or declared value shape. Default 16.
    pub max_rank: usize,
    /// Largest element count of a declared value shape (graph inputs,
    /// outputs, value_info), counting known dims only: the runtime sizes
    /// buffers from these. Default 2^40.
    pub max_value_elements: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_file_bytes: 4 << 30,
            max_tensor_elements: 1 << 31,
            max_total_initializer_bytes: 8 << 30,
            max_rank: 16,
            max_value_elements: 1 << 40,
        }
    }
}

impl ImportLimits {
    /// Checks a rank against [`ImportLimits::max_rank`].
    pub(crate) fn check_rank(
        &self,
        what: impl FnOnce() -> String,
        rank: usize,
    ) -> Result<(), OnnxError> {
        if rank > self.max_rank {
            return Err(OnnxError::TooLarge {
                what: format!("rank of {}", what()),
                size: rank as u64,
                limit: self.max_rank as u64,
            });
        }
        Ok(())
    }

    /// Validates tensor dims (non-negative, rank and element count within
    /// limits) and returns them as `usize` with their element count.
    pub(crate) fn tensor_shape(
        &self,
        name: &str,
        dims: &[i64],
    ) -> Result<(Vec<usize>, usize), OnnxError> {
        self.check_rank(|| format!("tensor '{name}'"), dims.len())?;
        let mut numel: u64 = 1;
        for &d in dims {
            let d = u64::try_from(d).map_err(|_| {
                OnnxError::tensor(name, format!("negative dim {d} in shape {dims:?}"))
            })?;
            // Saturate: any product past the limit is rejected the same way.
            numel = numel.saturating_mul(d);
        }
        if numel > self.max_tensor_elements {
            return Err(OnnxError::TooLarge {
                what: format!("element count of tensor '{name}' (shape {dims:?})"),
                size: numel,
                limit: self.max_tensor_elements,
            });
        }
        let numel = usize::try_from(numel)
            .map_err(|_| OnnxError::tensor(name, "too many elements for this platform"))?;
        // Each dim is at most numel unless another dim is 0; a zero-sized
        // tensor may still have huge dims, which must fit in usize.
        let shape = dims
            .iter()
            .map(|&d| {
                usize::try_from(d)
                    .map_err(|_| OnnxError::tensor(name, format!("dim {d} too large")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((shape, numel))
    }
}

/// Running total of initializer bytes against
/// [`ImportLimits::max_total_initializer_bytes`].
#[derive(Debug)]
pub(crate) struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    pub(crate) fn new(limits: &ImportLimits) -> Budget {
        Budget {
            used: 0,
            limit: limits.max_total_initializer_bytes,
        }
    }

    /// Reserves `bytes` for tensor `name`, failing once the total passes the
    /// limit. Called before the tensor's data is allocated.
    pub(crate) fn take(&mut self, name: &str, bytes: u64) -> Result<(), OnnxError> {
        let used = self.used.saturating_add(bytes);
        if used > self.limit {
            return Err(OnnxError::TooLarge {
                what: format!("total initializer size (reached at tensor '{name}')"),
                size: used,
                limit: self.limit,
            });
        }
        self.used = used;
        Ok(())
    }
}
