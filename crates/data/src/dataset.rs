//! Labelled datasets and their batching into model inputs.

use std::ops::Range;
use std::path::{Path, PathBuf};

use whittle_ir::{Tensor, TensorData};

use crate::folder::{decode_chw, scan};
use crate::idx::{find_idx_pair, looks_like_idx, read_idx, IdxArray};
use crate::npz::{labels_from_i64, read_npz};
use crate::DataError;

/// Which reader a dataset came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetFormat {
    /// IDX images + labels files (the MNIST format).
    Idx,
    /// A `.npz` with arrays `x` and `y`.
    Npz,
    /// `DIR/<class>/*.png|jpg`.
    ImageFolder,
}

impl DatasetFormat {
    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            DatasetFormat::Idx => "idx",
            DatasetFormat::Npz => "npz",
            DatasetFormat::ImageFolder => "image-folder",
        }
    }
}

/// Sample storage: in memory for IDX/npz, file paths (decoded per batch)
/// for image folders.
#[derive(Clone)]
enum Store {
    U8(Vec<u8>),
    F32(Vec<f32>),
    Files(Vec<PathBuf>),
}

/// A labelled dataset: samples (each of [`Dataset::sample_shape`]) and one
/// class index per sample.
#[derive(Clone)]
pub struct Dataset {
    source: PathBuf,
    format: DatasetFormat,
    store: Store,
    sample_shape: Vec<usize>,
    labels: Vec<u32>,
    class_names: Vec<String>,
}

/// How raw sample values become model inputs:
/// `(x / divide_by - mean[c]) / std[c]` for channel `c`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Preprocess {
    /// Divisor applied first; `None` means 255 for u8 data (images, IDX and
    /// u8 `.npz`), giving [0, 1], and 1 for other data.
    pub divide_by: Option<f32>,
    /// Per-channel mean (one value, or one per channel); empty means 0.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation (one value, or one per channel);
    /// empty means 1.
    pub std: Vec<f32>,
}

/// A validated mapping from a dataset's samples to one model input: the
/// per-sample shape the model wants and the resolved preprocessing.
#[derive(Clone, Debug)]
pub struct InputSpec {
    shape: Vec<usize>,
    numel: usize,
    channels: usize,
    divide_by: f32,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl InputSpec {
    /// Per-sample shape (the model input's shape without the batch dim).
    pub fn sample_shape(&self) -> &[usize] {
        &self.shape
    }

    /// Elements per sample.
    pub fn sample_numel(&self) -> usize {
        self.numel
    }

    /// Channels the preprocessing sees (1 for non-image samples).
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// A batch of model inputs with their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Index of the first sample in the dataset.
    pub start: usize,
    /// Inputs, f32 `[n, ...sample_shape]`.
    pub x: Tensor,
    /// One class index per sample.
    pub labels: Vec<u32>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("source", &self.source)
            .field("format", &self.format)
            .field("len", &self.len())
            .field("sample_shape", &self.sample_shape)
            .field("num_classes", &self.num_classes())
            .finish()
    }
}

fn squeeze(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

/// Per-channel values from a flag: empty -> `default`, one value -> all
/// channels, else exactly one per channel.
fn per_channel(
    values: &[f32],
    channels: usize,
    default: f32,
    what: &str,
    source: &Path,
) -> Result<Vec<f32>, DataError> {
    match values.len() {
        0 => Ok(vec![default; channels]),
        1 => Ok(vec![values[0]; channels]),
        n if n == channels => Ok(values.to_vec()),
        n => Err(DataError::mismatch(
            source,
            format!("{what} has {n} values but the samples have {channels} channels"),
        )),
    }
}

impl Dataset {
    /// The file or directory it was read from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Which reader produced it.
    pub fn format(&self) -> DatasetFormat {
        self.format
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Number of classes: the class folders of an image folder, else the
    /// largest label + 1.
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// Class names: folder names for image folders, else `"0"`, `"1"`, ...
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// One class index per sample.
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// Shape of one sample as stored: `[C, H, W]` for images (C = 1 for
    /// IDX images, the first image's channels for image folders), else the
    /// array's dims after the sample dim.
    pub fn sample_shape(&self) -> &[usize] {
        &self.sample_shape
    }

    /// Keeps only the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n >= self.len() {
            return;
        }
        let numel: usize = self.sample_shape.iter().product();
        self.labels.truncate(n);
        match &mut self.store {
            Store::U8(v) => v.truncate(n * numel),
            Store::F32(v) => v.truncate(n * numel),
            Store::Files(v) => v.truncate(n),
        }
    }

    /// Checks that samples fit a model input whose per-sample shape is
    /// `model_sample` (its shape without the batch dim), and resolves the
    /// preprocessing. Samples fit when the shapes are equal, equal but for
    /// size-1 dims, or when one side is a flat vector of the other's
    /// length (flat `[N, 784]` data into a `[1, 28, 28]` input, or images
    /// into a `[784]` input). Image folders are decoded to the model's channel count (1 or
    /// 3); no format is resized.
    pub fn input_spec(
        &self,
        model_sample: &[usize],
        pre: &Preprocess,
    ) -> Result<InputSpec, DataError> {
        let data_shape = match (&self.store, model_sample) {
            (Store::Files(_), [c @ (1 | 3), _, _]) => {
                vec![*c, self.sample_shape[1], self.sample_shape[2]]
            }
            _ => self.sample_shape.clone(),
        };
        let numel: usize = data_shape.iter().product();
        let fits = data_shape == model_sample
            || squeeze(&data_shape) == squeeze(model_sample)
            || (model_sample.len() == 1 && model_sample[0] == numel)
            || (data_shape.len() == 1 && model_sample.iter().product::<usize>() == numel);
        if !fits {
            return Err(DataError::mismatch(
                &self.source,
                format!(
                    "samples have shape {data_shape:?} but the model input wants {model_sample:?} per sample"
                ),
            ));
        }
        let channels = if data_shape.len() == 3 {
            data_shape[0]
        } else {
            1
        };
        let mean = per_channel(&pre.mean, channels, 0.0, "--mean", &self.source)?;
        let std = per_channel(&pre.std, channels, 1.0, "--std", &self.source)?;
        if let Some(s) = std.iter().find(|s| !s.is_finite() || **s == 0.0) {
            return Err(DataError::mismatch(
                &self.source,
                format!("--std {s} must be finite and non-zero"),
            ));
        }
        let u8_data = matches!(self.store, Store::U8(_) | Store::Files(_));
        let divide_by = pre.divide_by.unwrap_or(if u8_data { 255.0 } else { 1.0 });
        if !divide_by.is_finite() || divide_by == 0.0 {
            return Err(DataError::mismatch(
                &self.source,
                format!("the divisor {divide_by} must be finite and non-zero"),
            ));
        }
        Ok(InputSpec {
            shape: model_sample.to_vec(),
            numel,
            channels,
            divide_by,
            mean,
            std,
        })
    }

    /// Writes preprocessed samples from `start` into `out` (whole samples of
    /// `spec.sample_numel()` each, as many as fit or remain), zero-fills the
    /// rest of `out`, and returns how many samples were written. In-memory
    /// formats allocate nothing here.
    pub fn fill(
        &self,
        spec: &InputSpec,
        start: usize,
        out: &mut [f32],
    ) -> Result<usize, DataError> {
        let n = spec.numel;
        if n == 0 || !out.len().is_multiple_of(n) {
            return Err(DataError::mismatch(
                &self.source,
                format!(
                    "a batch buffer of {} values does not hold whole samples of {n}",
                    out.len()
                ),
            ));
        }
        let count = (out.len() / n).min(self.len().saturating_sub(start));
        let plane = n / spec.channels;
        let norm = |c: usize, v: f32| (v / spec.divide_by - spec.mean[c]) / spec.std[c];
        let mut decoded = Vec::new();
        for (i, dst) in out.chunks_exact_mut(n).take(count).enumerate() {
            let s = start + i;
            match &self.store {
                Store::U8(v) => {
                    for (k, (d, &x)) in dst.iter_mut().zip(&v[s * n..(s + 1) * n]).enumerate() {
                        *d = norm(k / plane, f32::from(x));
                    }
                }
                Store::F32(v) => {
                    for (k, (d, &x)) in dst.iter_mut().zip(&v[s * n..(s + 1) * n]).enumerate() {
                        *d = norm(k / plane, x);
                    }
                }
                Store::Files(files) => {
                    let (h, w) = (self.sample_shape[1], self.sample_shape[2]);
                    decode_chw(&files[s], spec.channels, h, w, &mut decoded)?;
                    if decoded.len() != n {
                        return Err(DataError::mismatch(
                            &files[s],
                            format!("image has {} values, the model wants {n}", decoded.len()),
                        ));
                    }
                    for (k, (d, &x)) in dst.iter_mut().zip(&decoded).enumerate() {
                        *d = norm(k / plane, f32::from(x));
                    }
                }
            }
        }
        out[count * n..].fill(0.0);
        Ok(count)
    }

    /// The samples in `range` as one f32 tensor `[n, ...spec.sample_shape()]`
    /// with their labels.
    pub fn batch(&self, spec: &InputSpec, range: Range<usize>) -> Result<Batch, DataError> {
        let range = range.start.min(self.len())..range.end.min(self.len());
        let count = range.len();
        let mut x = vec![0.0f32; count * spec.numel];
        self.fill(spec, range.start, &mut x)?;
        let mut shape = vec![count];
        shape.extend_from_slice(&spec.shape);
        let x = Tensor::from_f32(shape, x)
            .map_err(|e| DataError::mismatch(&self.source, e.to_string()))?;
        Ok(Batch {
            start: range.start,
            x,
            labels: self.labels[range].to_vec(),
        })
    }

    /// Batches of up to `size` samples in order (the last may be smaller).
    pub fn batches<'a>(
        &'a self,
        spec: &'a InputSpec,
        size: usize,
    ) -> impl Iterator<Item = Result<Batch, DataError>> + 'a {
        let size = size.max(1);
        (0..self.len())
            .step_by(size)
            .map(move |s| self.batch(spec, s..s + size))
    }
}

/// Opens a labelled dataset, detecting its format:
/// * a directory holding `*-images-idx3-ubyte[.gz]` (one pair), or either
///   file of an IDX pair: IDX;
/// * a zip archive (`.npz`): arrays `x` and `y`;
/// * any other directory: an image folder, one sub-folder per class.
pub fn open_dataset(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let meta = std::fs::metadata(path).map_err(DataError::io(path))?;
    if meta.is_dir() {
        return if looks_like_idx(path) {
            open_idx(path)
        } else {
            open_folder(path)
        };
    }
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(path).map_err(DataError::io(path))?;
        let mut n = 0;
        while n < 4 {
            match f.read(&mut magic[n..]).map_err(DataError::io(path))? {
                0 => break,
                k => n += k,
            }
        }
    }
    let is_npz_ext = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if &magic[..2] == b"PK" || is_npz_ext {
        open_npz(path)
    } else if looks_like_idx(path) {
        open_idx(path)
    } else {
        Err(DataError::format(
            path,
            "unknown dataset format: expected IDX files (PREFIX-images-idx3-ubyte[.gz] with \
             PREFIX-labels-idx1-ubyte[.gz]), a .npz with arrays x and y, or a folder with one \
             sub-folder of images per class",
        ))
    }
}

fn numbered_classes(labels: &[u32]) -> Vec<String> {
    let n = labels.iter().max().map_or(0, |&m| m as usize + 1);
    (0..n).map(|i| i.to_string()).collect()
}

/// Sample shape from an array's dims after the sample dim: rank-2 samples
/// (`[N, H, W]` arrays) are single-channel images.
fn image_sample_shape(rest: &[usize]) -> Vec<usize> {
    if rest.len() == 2 {
        vec![1, rest[0], rest[1]]
    } else {
        rest.to_vec()
    }
}

fn check_samples(path: &Path, n: usize, sample: &[usize]) -> Result<(), DataError> {
    if n == 0 {
        return Err(DataError::format(path, "holds no samples"));
    }
    if sample.iter().product::<usize>() == 0 {
        return Err(DataError::format(
            path,
            format!("samples of shape {sample:?} are empty"),
        ));
    }
    Ok(())
}

fn open_idx(path: &Path) -> Result<Dataset, DataError> {
    let (images_path, labels_path) = find_idx_pair(path)?;
    let images = read_idx(&images_path)?;
    let labels = read_idx(&labels_path)?;
    let shape = images.shape().to_vec();
    if shape.len() < 2 {
        return Err(DataError::format(
            &images_path,
            format!("images have shape {shape:?}: expected [N, H, W]"),
        ));
    }
    let n = shape[0];
    let raw_labels: Vec<i64> = match labels {
        IdxArray::U8 { shape, data } if shape.len() == 1 => {
            data.into_iter().map(i64::from).collect()
        }
        IdxArray::Other {
            shape,
            data,
            integer: true,
        } if shape.len() == 1 => data.into_iter().map(|v| v as i64).collect(),
        other => {
            return Err(DataError::format(
                &labels_path,
                format!(
                    "labels must be a 1-D integer array, got shape {:?}{}",
                    other.shape(),
                    if matches!(other, IdxArray::Other { integer: false, .. }) {
                        " of floats"
                    } else {
                        ""
                    }
                ),
            ))
        }
    };
    if raw_labels.len() != n {
        return Err(DataError::format(
            &labels_path,
            format!(
                "has {} labels but {} has {n} images",
                raw_labels.len(),
                images_path.display()
            ),
        ));
    }
    let labels = labels_from_i64(&raw_labels, &labels_path, "label")?;
    let sample_shape = image_sample_shape(&shape[1..]);
    check_samples(&images_path, n, &sample_shape)?;
    let store = match images {
        IdxArray::U8 { data, .. } => Store::U8(data),
        IdxArray::Other { data, .. } => Store::F32(data.into_iter().map(|v| v as f32).collect()),
    };
    Ok(Dataset {
        source: images_path,
        format: DatasetFormat::Idx,
        store,
        sample_shape,
        class_names: numbered_classes(&labels),
        labels,
    })
}

/// Rank-4 arrays are NCHW unless they are clearly NHWC (last dim 1, 3 or 4
/// channels and dim 1 not): then they are transposed to NCHW.
fn is_nhwc(shape: &[usize]) -> bool {
    shape.len() == 4 && matches!(shape[3], 1 | 3 | 4) && !matches!(shape[1], 1 | 3 | 4)
}

fn nhwc_to_nchw<T: Copy + Default>(v: &[T], shape: &[usize]) -> Vec<T> {
    let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![T::default(); v.len()];
    for b in 0..n {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((b * c + ch) * h + y) * w + x] = v[((b * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

fn open_npz(path: &Path) -> Result<Dataset, DataError> {
    let npz = read_npz(path)?;
    let (shape, data) = npz.x.into_parts();
    let nhwc = is_nhwc(&shape);
    let store = match data {
        TensorData::U8(v) if nhwc => Store::U8(nhwc_to_nchw(&v, &shape)),
        TensorData::U8(v) => Store::U8(v),
        TensorData::F32(v) if nhwc => Store::F32(nhwc_to_nchw(&v, &shape)),
        TensorData::F32(v) => Store::F32(v),
        other => {
            let t = Tensor::new(shape.clone(), other)
                .map_err(|e| DataError::format(path, format!("x: {e}")))?;
            let v = t.to_f32_vec();
            Store::F32(if nhwc { nhwc_to_nchw(&v, &shape) } else { v })
        }
    };
    let sample_shape = if nhwc {
        vec![shape[3], shape[1], shape[2]]
    } else {
        image_sample_shape(&shape[1..])
    };
    check_samples(path, shape[0], &sample_shape)?;
    Ok(Dataset {
        source: path.to_path_buf(),
        format: DatasetFormat::Npz,
        store,
        sample_shape,
        class_names: numbered_classes(&npz.labels),
        labels: npz.labels,
    })
}

fn open_folder(path: &Path) -> Result<Dataset, DataError> {
    let f = scan(path)?;
    Ok(Dataset {
        source: path.to_path_buf(),
        format: DatasetFormat::ImageFolder,
        store: Store::Files(f.files),
        sample_shape: f.first_shape.to_vec(),
        labels: f.labels,
        class_names: f.class_names,
    })
}
