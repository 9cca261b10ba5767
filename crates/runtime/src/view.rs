use whittle_ir::{DType, Tensor};

/// A read-only view of one kernel input: element type plus raw bytes.
///
/// Buffers handed to kernels are always aligned to at least 64 bytes (arena
/// offsets and constant storage guarantee it), so the typed accessors can
/// reinterpret without copying. An *aliased* view stands for an input that
/// shares its buffer with output 0 (in-place execution): its data is read
/// from the output. Only kernels that report
/// [`Kernel::inplace_input`](crate::Kernel::inplace_input) ever receive one.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    dtype: DType,
    bytes: &'a [u8],
    aliased: bool,
}

impl<'a> View<'a> {
    /// A view over `bytes` holding elements of `dtype`.
    pub fn new(dtype: DType, bytes: &'a [u8]) -> View<'a> {
        View {
            dtype,
            bytes,
            aliased: false,
        }
    }

    /// A view of a host tensor.
    pub fn of(t: &'a Tensor) -> View<'a> {
        View::new(t.dtype(), t.as_bytes())
    }

    /// The marker for an input that lives in output 0's buffer.
    pub fn aliased(dtype: DType) -> View<'static> {
        View {
            dtype,
            bytes: empty(),
            aliased: true,
        }
    }

    /// True when this input's data is in output 0 (in-place).
    pub fn is_aliased(&self) -> bool {
        self.aliased
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Raw bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// As f32 elements.
    pub fn f32(&self) -> &'a [f32] {
        cast(self.bytes)
    }

    /// As i64 elements.
    pub fn i64(&self) -> &'a [i64] {
        cast(self.bytes)
    }

    /// As i32 elements.
    pub fn i32(&self) -> &'a [i32] {
        cast(self.bytes)
    }

    /// As i8 elements.
    pub fn i8(&self) -> &'a [i8] {
        cast(self.bytes)
    }

    /// As u8 elements (also bool, stored as 0/1).
    pub fn u8(&self) -> &'a [u8] {
        self.bytes
    }
}

/// A writable view of one kernel output.
#[derive(Debug)]
pub struct ViewMut<'a> {
    dtype: DType,
    bytes: &'a mut [u8],
}

impl<'a> ViewMut<'a> {
    /// A view over `bytes` holding elements of `dtype`.
    pub fn new(dtype: DType, bytes: &'a mut [u8]) -> ViewMut<'a> {
        ViewMut { dtype, bytes }
    }

    /// A view of a host tensor.
    pub fn of(t: &'a mut Tensor) -> ViewMut<'a> {
        ViewMut::new(t.dtype(), t.data_mut().as_bytes_mut())
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Raw bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        self.bytes
    }

    /// Read-only raw bytes.
    pub fn bytes_ref(&self) -> &[u8] {
        self.bytes
    }

    /// As f32 elements.
    pub fn f32(&mut self) -> &mut [f32] {
        cast_mut(self.bytes)
    }

    /// As i64 elements.
    pub fn i64(&mut self) -> &mut [i64] {
        cast_mut(self.bytes)
    }

    /// As i32 elements.
    pub fn i32(&mut self) -> &mut [i32] {
        cast_mut(self.bytes)
    }

    /// As i8 elements.
    pub fn i8(&mut self) -> &mut [i8] {
        cast_mut(self.bytes)
    }

    /// As u8 elements (also bool, stored as 0/1).
    pub fn u8(&mut self) -> &mut [u8] {
        self.bytes
    }
}

/// A zero-length byte slice at a 64-byte aligned address: what omitted
/// inputs and empty tensors are viewed as, so a kernel may cast it to any
/// element type.
pub(crate) fn empty() -> &'static [u8] {
    #[repr(C, align(64))]
    struct Aligned([u8; 0]);
    static EMPTY: Aligned = Aligned([]);
    &EMPTY.0
}

/// Reinterprets bytes as elements. Empty slices (whose dangling pointer may
/// not be aligned) map to an empty slice instead of failing the alignment
/// check; non-empty buffers are aligned by construction (arena offsets and
/// typed constant storage).
pub(crate) fn cast<T: bytemuck::Pod>(bytes: &[u8]) -> &[T] {
    if bytes.is_empty() {
        &[]
    } else {
        bytemuck::cast_slice(bytes)
    }
}

/// Mutable form of [`cast`].
pub(crate) fn cast_mut<T: bytemuck::Pod>(bytes: &mut [u8]) -> &mut [T] {
    if bytes.is_empty() {
        &mut []
    } else {
        bytemuck::cast_slice_mut(bytes)
    }
}
