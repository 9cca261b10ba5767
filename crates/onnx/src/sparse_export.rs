//! Writing mostly-zero initializers as `sparse_initializer` (COO), so that
//! pruned models physically shrink on disk.
//!
//! The ONNX checker requires int64 indices, and the linear form (`[NNZ]`)
//! is the smaller of the two the spec allows, so a tensor costs
//! `nnz * (element size + 8)` bytes sparse against `numel * element size`
//! dense: for f32 the sparse form wins only above 2/3 sparsity. Below that
//! the tensor stays dense (2:4 sparsity, for instance, does not shrink the
//! file; the runtime's sparse kernels still profit from it).

use whittle_ir::{DType, Tensor, TensorData};

use crate::dtype::dtype_to_onnx;
use crate::proto::{SparseTensorProto, TensorProto};

/// Bytes a protobuf tensor header costs, roughly (name, dims, type): the
/// sparse form carries two of them, so it must win by at least this.
const HEADER_BYTES: usize = 32;

/// How initializers are stored on export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SparseStorage {
    /// Every initializer dense (`raw_data`).
    #[default]
    Dense,
    /// An initializer goes to `sparse_initializer` when its COO form
    /// (values + int64 linear indices) is smaller than the dense one.
    WhenSmaller,
}

/// Options of [`crate::model_proto_with`] and [`crate::save_model_with`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExportOptions {
    /// Dense or sparse initializer storage.
    pub sparse: SparseStorage,
}

/// Payload bytes of `t` stored as a COO sparse tensor with int64 linear
/// indices, or `None` for element types that are not stored sparse
/// (packed 4-bit and bool). An element is zero when all its bytes are, so
/// `-0.0` is kept as a value and the round trip is bit-exact.
pub fn sparse_coo_bytes(t: &Tensor) -> Option<usize> {
    sparsable(t.dtype()).then(|| nonzero_positions(t).len() * (t.dtype().size() + 8))
}

/// True when [`SparseStorage::WhenSmaller`] stores `t` sparse.
pub fn stores_sparse(t: &Tensor) -> bool {
    match sparse_coo_bytes(t) {
        // An empty values tensor is legal ONNX, but not every reader takes
        // it; all-zero tensors are rare enough to keep dense.
        Some(sparse) => {
            t.rank() > 0 && t.numel() > 0 && sparse > 0 && sparse + HEADER_BYTES < t.byte_size()
        }
        None => false,
    }
}

fn sparsable(dtype: DType) -> bool {
    !matches!(dtype, DType::I4 | DType::U4 | DType::Bool)
}

/// Linear positions of the elements whose bytes are not all zero, in
/// ascending order (the spec requires it).
fn nonzero_positions(t: &Tensor) -> Vec<usize> {
    let size = t.dtype().size();
    t.as_bytes()
        .chunks_exact(size)
        .enumerate()
        .filter(|(_, e)| e.iter().any(|&b| b != 0))
        .map(|(i, _)| i)
        .collect()
}

/// The COO form of `t`: `values` named `name` (as the spec wants for
/// sparse initializers), indices `[NNZ]` int64 linear.
pub(crate) fn sparse_to_proto(name: &str, t: &Tensor) -> SparseTensorProto {
    let size = t.dtype().size();
    let pos = nonzero_positions(t);
    let bytes = t.as_bytes();
    let mut values = Vec::with_capacity(pos.len() * size);
    for &i in &pos {
        values.extend_from_slice(&bytes[i * size..(i + 1) * size]);
    }
    let indices: Vec<i64> = pos.iter().map(|&i| i as i64).collect();
    let index_bytes = TensorData::I64(indices).as_bytes().to_vec();
    SparseTensorProto {
        values: Some(TensorProto {
            dims: vec![pos.len() as i64],
            data_type: Some(dtype_to_onnx(t.dtype())),
            name: Some(name.to_string()),
            raw_data: Some(values),
            ..TensorProto::default()
        }),
        indices: Some(TensorProto {
            dims: vec![pos.len() as i64],
            data_type: Some(dtype_to_onnx(DType::I64)),
            raw_data: Some(index_bytes),
            ..TensorProto::default()
        }),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(values: Vec<f32>) -> Tensor {
        let n = values.len();
        Tensor::from_f32(vec![n], values).unwrap()
    }

    #[test]
    fn bytes_and_choice() {
        let mut v = vec![0.0f32; 100];
        v[3] = 1.0;
        v[50] = -0.0;
        let x = t(v);
        // -0.0 is kept: two values of 4 + 8 bytes.
        assert_eq!(sparse_coo_bytes(&x), Some(24));
        assert!(stores_sparse(&x));
        // 50% zeros: 50 * 12 = 600 > 400 dense.
        let half = t((0..100).map(|i| (i % 2) as f32).collect());
        assert!(!stores_sparse(&half));
        // All zero stays dense.
        assert!(!stores_sparse(&t(vec![0.0; 100])));
    }

    #[test]
    fn proto_is_ascending_linear_coo() {
        let x = Tensor::from_f32(vec![2, 3], vec![0.0, 2.0, 0.0, 0.0, 0.0, -1.0]).unwrap();
        let sp = sparse_to_proto("w", &x);
        assert_eq!(sp.dims, vec![2, 3]);
        let idx = sp.indices.unwrap();
        assert_eq!(idx.dims, vec![2]);
        let raw = idx.raw_data.unwrap();
        assert_eq!(&raw[..8], &1i64.to_le_bytes());
        assert_eq!(&raw[8..], &5i64.to_le_bytes());
        let vals = sp.values.unwrap();
        assert_eq!(vals.name.as_deref(), Some("w"));
        let raw = vals.raw_data.unwrap();
        assert_eq!(&raw[..4], &2.0f32.to_le_bytes());
        assert_eq!(&raw[4..], &(-1.0f32).to_le_bytes());
    }

    #[test]
    fn round_trip_through_import() {
        use whittle_ir::{Graph, Node, ValueInfo};
        let mut w = vec![0.0f32; 64 * 8];
        for i in (0..w.len()).step_by(7) {
            w[i] = i as f32 * 0.5 - 3.0;
        }
        let mut g = Graph {
            inputs: vec![ValueInfo::known("x", DType::F32, &[1, 64])],
            outputs: vec![ValueInfo::known("y", DType::F32, &[1, 8])],
            nodes: vec![Node::new("mm", "MatMul", &["x", "w"], &["y"])],
            ..Graph::default()
        };
        g.opsets.insert(String::new(), 13);
        let wt = Tensor::from_f32(vec![64, 8], w).unwrap();
        g.initializers.insert("w".into(), wt.clone());
        let opts = ExportOptions {
            sparse: SparseStorage::WhenSmaller,
        };
        let proto = crate::model_proto_with(&g, &opts).unwrap();
        let gp = proto.graph.as_ref().unwrap();
        assert!(gp.initializer.is_empty());
        assert_eq!(gp.sparse_initializer.len(), 1);
        let sparse_len = crate::proto::Message::encode_to_vec(&proto).len();
        let dense_len = crate::model_bytes(&g).unwrap().len();
        assert!(sparse_len < dense_len, "{sparse_len} vs {dense_len}");
        let back =
            crate::load_model_bytes(&crate::proto::Message::encode_to_vec(&proto), None).unwrap();
        assert_eq!(back.initializers["w"], wt);
    }
}
