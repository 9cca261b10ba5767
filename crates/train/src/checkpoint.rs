//! Training checkpoints: a [`TrainState`] plus where the run is, in a
//! small binary file written atomically.
//!
//! # Format (version 1, all integers little-endian)
//!
//! ```text
//! magic        8 bytes  "WHTLCKPT"
//! version      u32      1
//! fingerprint  u64      hash of the model and training spec (see [`fingerprint`])
//! seed         u64      the run's shuffling seed
//! epoch        u64      epoch in progress (0-based)
//! batch        u64      batches of that epoch already done
//! step         u64      global steps done (TrainState::step)
//! lr           f32      learning rate of the last step (informational)
//! count        u32      number of tensors
//! count times:
//!   name_len   u32, name (UTF-8)
//!   dtype      u8       1 = f32, 7 = int64 (ONNX codes)
//!   rank       u32, dims u64 x rank
//!   data       numel x element size bytes, little-endian
//! checksum     u64      FNV-1a 64 of every byte before it
//! ```
//!
//! The order of samples in epoch `e` is a pure function of `(seed, e)`
//! ([`epoch_order`]), so `(seed, epoch, batch)` is the whole position of the
//! data stream, and the learning rate is a function of `step`: nothing else
//! is needed to continue bit-exactly. Reading treats the file as untrusted:
//! every length is checked against the bytes that remain before anything
//! is allocated, and the checksum catches truncation and corruption.

use std::io::Write;
use std::path::{Path, PathBuf};

use whittle_ir::{DType, Graph, Tensor, TensorData};

use crate::{TrainSpec, TrainState};

const MAGIC: &[u8; 8] = b"WHTLCKPT";
const VERSION: u32 = 1;
/// Largest checkpoint file read (weights of models whittle targets are far
/// smaller).
pub const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
const MAX_NAME: usize = 4096;
const MAX_RANK: usize = 8;
/// File name of the checkpoint inside a `--checkpoint` directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.wck";

/// Why a checkpoint could not be written, read or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a valid checkpoint.
    #[error("{path}: not a valid checkpoint: {msg}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
    /// The checkpoint belongs to another model, spec or configuration.
    #[error(
        "{path}: the checkpoint was made for another model or training configuration \
         (fingerprint {found:016x}, this run {expected:016x}); resume with the same \
         model, data shape, trainable set and optimizer settings"
    )]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// The file's fingerprint.
        found: u64,
        /// This run's.
        expected: u64,
    },
}

/// A saved training run: the trainer's state and the run's position.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// [`fingerprint`] of the model, spec and run configuration.
    pub fingerprint: u64,
    /// Shuffling seed.
    pub seed: u64,
    /// Epoch in progress (0-based).
    pub epoch: u64,
    /// Batches of `epoch` already done.
    pub batch: u64,
    /// Learning rate of the last step.
    pub lr: f32,
    /// Weights, optimizer slots, BatchNorm statistics and step count.
    pub state: TrainState,
}

/// FNV-1a 64: small, stable across Rust versions and platforms (unlike
/// `std`'s hasher), and enough to tell configurations apart.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Fnv {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Length-prefixed, so ("ab","c") and ("a","bc") differ.
    fn str(&mut self, s: &str) -> &mut Fnv {
        self.bytes(&(s.len() as u64).to_le_bytes())
            .bytes(s.as_bytes())
    }

    fn tensor(&mut self, t: &Tensor) -> &mut Fnv {
        self.str(t.dtype().name());
        for &d in t.shape() {
            self.bytes(&(d as u64).to_le_bytes());
        }
        self.bytes(t.as_bytes())
    }
}

/// Hash of everything a checkpoint must agree with: the forward graph
/// (nodes, attributes, initial initializer values), the spec (loss,
/// trainable set, BatchNorm mode, input shapes, channel ratios,
/// regularizers, masks) and `config`, a
/// caller's description of settings that change the trajectory (optimizer,
/// batch size, seed...).
pub fn fingerprint(forward: &Graph, spec: &TrainSpec, config: &str) -> u64 {
    let mut h = Fnv::new();
    for n in &forward.nodes {
        h.str(&n.op_type).str(&n.domain);
        for v in n.inputs.iter().chain(&n.outputs) {
            h.str(v);
        }
        // BTreeMap: a stable order.
        h.str(&format!("{:?}", n.attrs));
    }
    let mut inits: Vec<_> = forward.initializers.iter().collect();
    inits.sort_by(|a, b| a.0.cmp(b.0));
    for (name, t) in inits {
        h.str(name).tensor(t);
    }
    h.str(&format!("{:?}|{:?}", spec.loss, spec.batchnorm));
    for w in &spec.trainable {
        h.str(w);
    }
    let mut shapes: Vec<_> = spec.input_shapes.iter().collect();
    shapes.sort();
    h.str(&format!("{shapes:?}|{:?}", spec.keep_outputs));
    let mut ratios: Vec<_> = spec.channel_ratio.iter().collect();
    ratios.sort_by(|a, b| a.0.cmp(b.0));
    h.str(&format!("{ratios:?}|{:?}", spec.regularizers));
    let mut masks: Vec<_> = spec.masks.iter().collect();
    masks.sort_by(|a, b| a.0.cmp(b.0));
    for (name, m) in masks {
        h.str(name).tensor(m);
    }
    h.str(config);
    h.0
}

/// The order of sample indices `0..n` in epoch `epoch` of a run seeded
/// with `seed`: a Fisher-Yates shuffle driven by SplitMix64 seeded from
/// both, so any epoch's order can be recomputed on resume.
pub fn epoch_order(seed: u64, epoch: u64, n: usize) -> Vec<usize> {
    let mut state = seed ^ epoch.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        // Multiply-shift maps 64 random bits onto 0..=i without modulo bias
        // worth caring about at dataset sizes.
        let j = ((u128::from(next()) * (i as u128 + 1)) >> 64) as usize;
        order.swap(i, j);
    }
    order
}

fn dtype_code(d: DType) -> Option<u8> {
    match d {
        DType::F32 => Some(1),
        DType::I64 => Some(7),
        _ => None,
    }
}

impl Checkpoint {
    /// The file's bytes (see the module docs).
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut b = Vec::new();
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&VERSION.to_le_bytes());
        for v in [
            self.fingerprint,
            self.seed,
            self.epoch,
            self.batch,
            self.state.step,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(&self.lr.to_le_bytes());
        let count = u32::try_from(self.state.tensors.len()).map_err(|_| "too many tensors")?;
        b.extend_from_slice(&count.to_le_bytes());
        for (name, t) in &self.state.tensors {
            let code = dtype_code(t.dtype())
                .ok_or_else(|| format!("tensor '{name}' is {}; only f32/int64", t.dtype()))?;
            if name.len() > MAX_NAME || t.rank() > MAX_RANK {
                return Err(format!("tensor '{name}': name or rank too long"));
            }
            b.extend_from_slice(&(name.len() as u32).to_le_bytes());
            b.extend_from_slice(name.as_bytes());
            b.push(code);
            b.extend_from_slice(&(t.rank() as u32).to_le_bytes());
            for &d in t.shape() {
                b.extend_from_slice(&(d as u64).to_le_bytes());
            }
            match t.data() {
                TensorData::F32(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
                TensorData::I64(v) => v.iter().for_each(|x| b.extend(x.to_le_bytes())),
                _ => unreachable!("dtype checked above"),
            }
        }
        let sum = Fnv::new().bytes(&b).0;
        b.extend_from_slice(&sum.to_le_bytes());
        Ok(b)
    }

    /// Parses a checkpoint; `path` names the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint, CheckpointError> {
        let bad = |msg: &str| CheckpointError::Format {
            path: path.to_path_buf(),
            msg: msg.to_string(),
        };
        if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            return Err(bad("wrong magic bytes"));
        }
        let (body, sum) = bytes.split_at(bytes.len().saturating_sub(8).max(MAGIC.len()));
        let sum = <[u8; 8]>::try_from(sum).map_err(|_| bad("truncated"))?;
        if Fnv::new().bytes(body).0 != u64::from_le_bytes(sum) {
            return Err(bad("checksum mismatch (truncated or corrupted file)"));
        }
        let mut r = Reader {
            b: &body[MAGIC.len()..],
        };
        let version = r.u32().ok_or_else(|| bad("truncated header"))?;
        if version != VERSION {
            return Err(bad(&format!(
                "version {version}; this whittle reads {VERSION}"
            )));
        }
        let head = (|| Some((r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.u64()?, r.f32()?)))();
        let (fingerprint, seed, epoch, batch, step, lr) =
            head.ok_or_else(|| bad("truncated header"))?;
        let count = r.u32().ok_or_else(|| bad("truncated header"))? as usize;
        let mut tensors = Vec::new();
        for i in 0..count {
            let t = r
                .tensor()
                .map_err(|m| bad(&format!("tensor {i} of {count}: {m}")))?;
            tensors.push(t);
        }
        if !r.b.is_empty() {
            return Err(bad("trailing bytes after the last tensor"));
        }
        Ok(Checkpoint {
            fingerprint,
            seed,
            epoch,
            batch,
            lr,
            state: TrainState { step, tensors },
        })
    }

    /// Writes the checkpoint to `dir`/[`CHECKPOINT_FILE`] atomically: a
    /// temporary file in `dir`, flushed to disk, renamed over the old one,
    /// then the directory synced, so a kill at any moment leaves either the
    /// old checkpoint or the new one.
    pub fn save(&self, dir: &Path) -> Result<PathBuf, CheckpointError> {
        let path = dir.join(CHECKPOINT_FILE);
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let bytes = self.to_bytes().map_err(|msg| CheckpointError::Format {
            path: path.clone(),
            msg,
        })?;
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        tmp.write_all(&bytes).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        // Make the rename itself durable (best effort where directories
        // cannot be opened).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(path)
    }

    /// Reads `dir`/[`CHECKPOINT_FILE`] (or `dir` itself if it is a file)
    /// and checks its fingerprint against `expected`.
    pub fn load(dir: &Path, expected: u64) -> Result<Checkpoint, CheckpointError> {
        let path = if dir.is_dir() {
            dir.join(CHECKPOINT_FILE)
        } else {
            dir.to_path_buf()
        };
        let io = |source| CheckpointError::Io {
            path: path.clone(),
            source,
        };
        let len = std::fs::metadata(&path).map_err(io)?.len();
        if len > MAX_CHECKPOINT_BYTES {
            return Err(CheckpointError::Format {
                path,
                msg: format!("{len} bytes is over the {MAX_CHECKPOINT_BYTES}-byte limit"),
            });
        }
        let bytes = std::fs::read(&path).map_err(io)?;
        let c = Checkpoint::from_bytes(&bytes, &path)?;
        if c.fingerprint != expected {
            return Err(CheckpointError::Mismatch {
                path,
                found: c.fingerprint,
                expected,
            });
        }
        Ok(c)
    }
}

/// A cursor over untrusted bytes: every read checks what remains.
struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn f32(&mut self) -> Option<f32> {
        Some(f32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn tensor(&mut self) -> Result<(String, Tensor), String> {
        let short = || "truncated".to_string();
        let len = self.u32().ok_or_else(short)? as usize;
        if len > MAX_NAME {
            return Err(format!("name of {len} bytes is over the {MAX_NAME} limit"));
        }
        let name = std::str::from_utf8(self.take(len).ok_or_else(short)?)
            .map_err(|_| "name is not UTF-8".to_string())?
            .to_string();
        let code = *self.take(1).ok_or_else(short)?.first().ok_or_else(short)?;
        let dtype = match code {
            1 => DType::F32,
            7 => DType::I64,
            c => return Err(format!("'{name}': unknown dtype code {c}")),
        };
        let rank = self.u32().ok_or_else(short)? as usize;
        if rank > MAX_RANK {
            return Err(format!("'{name}': rank {rank} is over {MAX_RANK}"));
        }
        let mut shape = Vec::with_capacity(rank);
        for _ in 0..rank {
            let d = self.u64().ok_or_else(short)?;
            shape.push(usize::try_from(d).map_err(|_| format!("'{name}': dim {d} too large"))?);
        }
        // Sized from what remains, never from the header alone.
        let nbytes = shape
            .iter()
            .try_fold(dtype.size(), |a, &d| a.checked_mul(d))
            .filter(|&n| n <= self.b.len())
            .ok_or_else(|| format!("'{name}': shape {shape:?} is larger than the file"))?;
        let raw = self.take(nbytes).ok_or_else(short)?;
        let data = TensorData::from_le_bytes(dtype, raw).map_err(|e| format!("'{name}': {e}"))?;
        let t = Tensor::new(shape, data).map_err(|e| format!("'{name}': {e}"))?;
        Ok((name, t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            fingerprint: 0x1234_5678_9abc_def0,
            seed: 7,
            epoch: 2,
            batch: 13,
            lr: 0.05,
            state: TrainState {
                step: 113,
                tensors: vec![
                    (
                        "conv.weight".into(),
                        Tensor::from_f32(vec![2, 1, 2], vec![1.0, -0.0, f32::MIN, 3.5]).unwrap(),
                    ),
                    (
                        "conv.weight.momentum".into(),
                        Tensor::from_f32(vec![2, 1, 2], vec![0.25; 4]).unwrap(),
                    ),
                    ("count".into(), Tensor::from_i64(vec![1], vec![-9]).unwrap()),
                    ("scalar".into(), Tensor::scalar_f32(2.0)),
                ],
            },
        }
    }

    #[test]
    fn round_trips_bit_exactly() {
        let c = sample();
        let b = c.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&b, Path::new("x")).unwrap();
        assert_eq!(back, c);
        // -0.0 == 0.0 under PartialEq: compare the bits too.
        assert_eq!(
            back.state.tensors[0].1.as_bytes(),
            c.state.tensors[0].1.as_bytes()
        );
    }

    #[test]
    fn save_and_load_check_the_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let c = sample();
        let path = c.save(dir.path()).unwrap();
        assert_eq!(path, dir.path().join(CHECKPOINT_FILE));
        assert_eq!(Checkpoint::load(dir.path(), c.fingerprint).unwrap(), c);
        assert_eq!(Checkpoint::load(&path, c.fingerprint).unwrap(), c);
        let e = Checkpoint::load(dir.path(), 1).unwrap_err();
        assert!(e.to_string().contains("another model"), "{e}");
        // Only the checkpoint is left: the temporary file was renamed.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// Every truncation and every single-byte corruption is an error,
    /// never a panic or a huge allocation.
    #[test]
    fn rejects_damaged_files() {
        let b = sample().to_bytes().unwrap();
        for n in 0..b.len() {
            assert!(
                Checkpoint::from_bytes(&b[..n], Path::new("x")).is_err(),
                "{n}"
            );
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            assert!(Checkpoint::from_bytes(&c, Path::new("x")).is_err(), "{i}");
        }
    }

    /// A header claiming a huge tensor, with a valid checksum, is refused
    /// before allocating.
    #[test]
    fn huge_claims_are_refused() {
        let mut c = sample();
        c.state.tensors.truncate(1);
        let mut b = c.to_bytes().unwrap();
        b.truncate(b.len() - 8);
        // The first dim of the first tensor sits after the fixed header
        // (8 + 4 + 5*8 + 4 + 4), the name and its length, the dtype, rank.
        let at = 8 + 4 + 40 + 4 + 4 + 4 + "conv.weight".len() + 1 + 4;
        b[at..at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        let sum = Fnv::new().bytes(&b).0;
        b.extend_from_slice(&sum.to_le_bytes());
        let e = Checkpoint::from_bytes(&b, Path::new("f.wck")).unwrap_err();
        assert!(e.to_string().contains("larger than the file"), "{e}");
    }

    #[test]
    fn epoch_orders_are_permutations_that_differ() {
        let a = epoch_order(42, 0, 1000);
        let mut s = a.clone();
        s.sort_unstable();
        assert_eq!(s, (0..1000).collect::<Vec<_>>());
        assert_eq!(a, epoch_order(42, 0, 1000));
        assert_ne!(a, epoch_order(42, 1, 1000));
        assert_ne!(a, epoch_order(43, 0, 1000));
        assert!(epoch_order(1, 0, 0).is_empty());
    }

    #[test]
    fn fingerprint_sees_spec_and_config() {
        use crate::Loss;
        let g = Graph::default();
        let spec = TrainSpec::new(
            Loss::Mse {
                output: "y".into(),
                target: "t".into(),
            },
            vec!["w".into()],
        );
        let f = fingerprint(&g, &spec, "sgd");
        assert_eq!(f, fingerprint(&g, &spec, "sgd"));
        assert_ne!(f, fingerprint(&g, &spec, "adam"));
        let mut other = spec.clone();
        other.trainable.push("b".into());
        assert_ne!(f, fingerprint(&g, &other, "sgd"));
    }
}
