//! IDX files, the MNIST format: a big-endian header (two zero bytes, a type
//! code, the rank, then one u32 per dim) followed by the elements, plain or
//! gzipped.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::limits::read_exact_payload;
use crate::DataError;

/// Most dims an IDX header may declare; real files use 1 to 4.
const MAX_RANK: u8 = 8;

/// An array read from an IDX file.
#[derive(Clone, Debug, PartialEq)]
pub enum IdxArray {
    /// Type code 0x08: unsigned bytes (all MNIST-style images and labels).
    U8 {
        /// Dims from the header.
        shape: Vec<usize>,
        /// Elements in row-major order.
        data: Vec<u8>,
    },
    /// Any other element type (i8, i16, i32, f32, f64), widened to f64.
    Other {
        /// Dims from the header.
        shape: Vec<usize>,
        /// Elements in row-major order.
        data: Vec<f64>,
        /// Whether the element type is an integer type.
        integer: bool,
    },
}

impl IdxArray {
    /// Dims from the header.
    pub fn shape(&self) -> &[usize] {
        match self {
            IdxArray::U8 { shape, .. } | IdxArray::Other { shape, .. } => shape,
        }
    }
}

/// Opens a file, transparently un-gzipping it when it starts with the gzip
/// magic (the extension is not trusted).
fn open_maybe_gz(path: &Path) -> Result<Box<dyn Read>, DataError> {
    let mut file = BufReader::new(File::open(path).map_err(DataError::io(path))?);
    let mut magic = [0u8; 2];
    let n = read_up_to(&mut file, &mut magic).map_err(DataError::io(path))?;
    let head = std::io::Cursor::new(magic[..n].to_vec());
    let stream = head.chain(file);
    if n == 2 && magic == [0x1f, 0x8b] {
        Ok(Box::new(MultiGzDecoder::new(stream)))
    } else {
        Ok(Box::new(stream))
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads an IDX file (plain or gzipped).
pub fn read_idx(path: &Path) -> Result<IdxArray, DataError> {
    let mut r = open_maybe_gz(path)?;
    let bad = |msg: String| DataError::format(path, msg);
    let mut head = [0u8; 4];
    let n = read_up_to(&mut r, &mut head).map_err(|e| bad(format!("cannot read: {e}")))?;
    if n < 4 || head[0] != 0 || head[1] != 0 {
        return Err(bad(
            "not an IDX file (it must start with two zero bytes, a type code and a rank)".into(),
        ));
    }
    let (elem, integer) = match head[2] {
        0x08 | 0x09 => (1u64, true),
        0x0B => (2, true),
        0x0C => (4, true),
        0x0D => (4, false),
        0x0E => (8, false),
        t => return Err(bad(format!("unknown IDX type code 0x{t:02x}"))),
    };
    let rank = head[3];
    if rank == 0 || rank > MAX_RANK {
        return Err(bad(format!(
            "IDX rank {rank} is not between 1 and {MAX_RANK}"
        )));
    }
    let mut dims_raw = vec![0u8; 4 * usize::from(rank)];
    let n = read_up_to(&mut r, &mut dims_raw).map_err(|e| bad(format!("cannot read: {e}")))?;
    if n < dims_raw.len() {
        return Err(bad("truncated IDX header".into()));
    }
    let shape: Vec<usize> = dims_raw
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let bytes = shape
        .iter()
        .try_fold(elem, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| bad(format!("shape {shape:?} is too large")))?;
    let payload = read_exact_payload(&mut r, bytes, path, &format!("data of shape {shape:?}"))?;
    Ok(match head[2] {
        0x08 => IdxArray::U8 {
            shape,
            data: payload,
        },
        code => {
            let data = match code {
                0x09 => payload.iter().map(|&b| f64::from(b as i8)).collect(),
                0x0B => payload
                    .chunks_exact(2)
                    .map(|c| f64::from(i16::from_be_bytes([c[0], c[1]])))
                    .collect(),
                0x0C => payload
                    .chunks_exact(4)
                    .map(|c| f64::from(i32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                0x0D => payload
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                    .collect(),
                _ => payload
                    .chunks_exact(8)
                    .map(|c| f64::from_be_bytes(c.try_into().unwrap_or([0; 8])))
                    .collect(),
            };
            IdxArray::Other {
                shape,
                data,
                integer,
            }
        }
    })
}

/// Whether a file name looks like an IDX images file
/// (`train-images-idx3-ubyte`, `t10k-images.idx3-ubyte.gz`, ...).
fn is_images_name(name: &str) -> bool {
    name.contains("images") && name.contains("idx")
}

fn is_labels_name(name: &str) -> bool {
    name.contains("labels") && name.contains("idx")
}

/// The file `name` turns into when `from` becomes `to` (and the rank digit
/// follows), tried with and without `.gz`, that exists beside `dir`.
fn partner(dir: &Path, name: &str, from: &str, to: &str) -> Option<PathBuf> {
    let (idx_from, idx_to) = if from == "images" {
        ("idx3", "idx1")
    } else {
        ("idx1", "idx3")
    };
    let base = name.replacen(from, to, 1).replacen(idx_from, idx_to, 1);
    let stem = base.strip_suffix(".gz").unwrap_or(&base).to_string();
    [stem.clone(), format!("{stem}.gz")]
        .into_iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// Whether `path` names IDX data: a file whose name or first bytes say
/// IDX, or a directory holding an IDX images file.
pub(crate) fn looks_like_idx(path: &Path) -> bool {
    if path.is_dir() {
        return images_in_dir(path).map(|v| !v.is_empty()).unwrap_or(false);
    }
    let name = file_name(path);
    is_images_name(&name) || is_labels_name(&name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn images_in_dir(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
        let entry = entry.map_err(DataError::io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_images_name(&name) && entry.path().is_file() {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Finds the (images, labels) IDX pair from either file of the pair or from
/// a directory holding exactly one pair.
pub fn find_idx_pair(path: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    if path.is_dir() {
        let images = images_in_dir(path)?;
        return match images.as_slice() {
            [] => Err(DataError::format(
                path,
                "holds no IDX images file (*-images-idx3-ubyte[.gz])",
            )),
            [one] => find_idx_pair(one),
            many => Err(DataError::format(
                path,
                format!(
                    "holds {} IDX image sets ({}); name the images file to use",
                    many.len(),
                    many.iter()
                        .map(|p| file_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        };
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = file_name(path);
    if is_images_name(&name) {
        let labels = partner(dir, &name, "images", "labels").ok_or_else(|| {
            DataError::format(
                path,
                "no labels file beside it (expected the same name with 'labels' and 'idx1')",
            )
        })?;
        Ok((path.to_path_buf(), labels))
    } else if is_labels_name(&name) {
        let images = partner(dir, &name, "labels", "images").ok_or_else(|| {
            DataError::format(
                path,
                "no images file beside it (expected the same name with 'images' and 'idx3')",
            )
        })?;
        Ok((images, path.to_path_buf()))
    } else {
        Err(DataError::format(
            path,
            "cannot tell which IDX file holds the labels: name the files \
             PREFIX-images-idx3-ubyte[.gz] and PREFIX-labels-idx1-ubyte[.gz]",
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Encodes a u8 IDX file.
    pub(crate) fn idx_u8(shape: &[u32], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0, 0, 0x08, shape.len() as u8];
        for d in shape {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..24).collect();
        let bytes = idx_u8(&[2, 3, 4], &data);
        let plain = dir.path().join("a-images-idx3-ubyte");
        let gz = dir.path().join("b-images-idx3-ubyte.gz");
        std::fs::write(&plain, &bytes).unwrap();
        std::fs::write(&gz, gzip(&bytes)).unwrap();
        for p in [&plain, &gz] {
            let a = read_idx(p).unwrap();
            assert_eq!(
                a,
                IdxArray::U8 {
                    shape: vec![2, 3, 4],
                    data: data.clone()
                }
            );
        }
    }

    #[test]
    fn reads_big_endian_types() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.idx");
        // i16 [2]: -2, 300; f32 [1]: 1.5 (0x3fc00000)
        std::fs::write(&p, [0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x2c]).unwrap();
        let a = read_idx(&p).unwrap();
        assert_eq!(
            a,
            IdxArray::Other {
                shape: vec![2],
                data: vec![-2.0, 300.0],
                integer: true
            }
        );
        std::fs::write(&p, [0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3f, 0xc0, 0, 0]).unwrap();
        match read_idx(&p).unwrap() {
            IdxArray::Other { data, integer, .. } => {
                assert_eq!(data, vec![1.5]);
                assert!(!integer);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_hostile_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("h-images-idx3-ubyte");
        let good = idx_u8(&[2, 2, 2], &[1; 8]);
        let overflow = idx_u8(&[u32::MAX, u32::MAX, u32::MAX], &[]);
        let huge = idx_u8(&[65536, 65536, 2], &[]);
        let big_claim = idx_u8(&[1000, 1000, 1000], &[1; 10]);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "not an IDX"),
            (b"PK\x03\x04garbage".to_vec(), "not an IDX"),
            (vec![0, 0, 0x07, 1, 0, 0, 0, 1, 0], "type code"),
            (vec![0, 0, 0x08, 0], "rank 0"),
            (vec![0, 0, 0x08, 200], "rank 200"),
            (vec![0, 0, 0x08, 3, 0, 0], "truncated IDX header"),
            (good[..good.len() - 1].to_vec(), "truncated"),
            ([good.clone(), vec![9]].concat(), "bytes after"),
            (overflow, "too large"),
            (huge, "limit"),
            (big_claim.clone(), "truncated"),
            (gzip(&big_claim), "truncated"),
            (gzip(&good)[..20].to_vec(), "cannot read"),
        ];
        for (bytes, want) in cases {
            std::fs::write(&p, &bytes).unwrap();
            let err = read_idx(&p).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted '{want}')");
            assert!(err.contains("h-images-idx3-ubyte"), "{err}");
        }
        let err = read_idx(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing"), "{err}");
    }

    /// Every single-byte corruption of a plain and a gzipped file, and every
    /// truncation, reads or errors without panicking.
    #[test]
    fn corruptions_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-images-idx3-ubyte");
        let plain = idx_u8(&[3, 4, 4], &(0..48).collect::<Vec<u8>>());
        for bytes in [plain.clone(), gzip(&plain)] {
            for i in 0..bytes.len() {
                for v in [0u8, 0x7f, 0xff] {
                    let mut b = bytes.clone();
                    b[i] = v;
                    std::fs::write(&p, &b).unwrap();
                    let _ = read_idx(&p);
                }
                std::fs::write(&p, &bytes[..i]).unwrap();
                assert!(read_idx(&p).is_err(), "truncated at {i}");
            }
        }
    }

    #[test]
    fn pairs_images_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let img = d.join("t10k-images-idx3-ubyte.gz");
        let lab = d.join("t10k-labels-idx1-ubyte.gz");
        std::fs::write(&img, b"").unwrap();
        std::fs::write(&lab, b"").unwrap();
        assert_eq!(find_idx_pair(&img).unwrap(), (img.clone(), lab.clone()));
        assert_eq!(find_idx_pair(&lab).unwrap(), (img.clone(), lab.clone()));
        assert_eq!(find_idx_pair(d).unwrap(), (img.clone(), lab.clone()));
        // Dotted MNIST-mirror names, plain next to gz.
        let img2 = d.join("train-images.idx3-ubyte");
        let lab2 = d.join("train-labels.idx1-ubyte");
        std::fs::write(&img2, b"").unwrap();
        std::fs::write(&lab2, b"").unwrap();
        assert_eq!(find_idx_pair(&img2).unwrap(), (img2.clone(), lab2));
        let err = find_idx_pair(d).unwrap_err().to_string();
        assert!(err.contains("2 IDX image sets"), "{err}");
        let lone = d.join("x-images-idx3-ubyte");
        std::fs::write(&lone, b"").unwrap();
        assert!(find_idx_pair(&lone)
            .unwrap_err()
            .to_string()
            .contains("no labels file"));
    }
}
