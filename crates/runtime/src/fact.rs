use whittle_ir::DType;

/// What compile time knows about a value: its element type and static shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fact {
    /// Element type.
    pub dtype: DType,
    /// Static shape.
    pub shape: Vec<usize>,
}

impl Fact {
    /// A fact from a dtype and shape.
    pub fn new(dtype: DType, shape: Vec<usize>) -> Fact {
        Fact { dtype, shape }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Bytes needed to hold the value.
    pub fn byte_size(&self) -> usize {
        self.numel() * self.dtype.size()
    }

    /// Rank.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}
