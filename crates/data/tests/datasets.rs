//! Datasets made here in a temp dir (IDX, .npz, image folders), read back and
//! batched; hostile and mismatched inputs give errors, not panics.

use std::io::Write;
use std::path::{Path, PathBuf};

use whittle_data::{npy_bytes, open_dataset, DataError, DatasetFormat, Preprocess};
use whittle_ir::{Tensor, TensorData};

fn idx_u8(shape: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, shape.len() as u8];
    for d in shape {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Writes a 3-image 2x2 IDX pair (gzipped) and returns the images path.
fn write_idx(dir: &Path) -> PathBuf {
    let images: Vec<u8> = vec![0, 51, 102, 255, 10, 20, 30, 40, 255, 255, 0, 0];
    let img = dir.join("tiny-images-idx3-ubyte.gz");
    std::fs::write(&img, gzip(&idx_u8(&[3, 2, 2], &images))).unwrap();
    std::fs::write(
        dir.join("tiny-labels-idx1-ubyte.gz"),
        gzip(&idx_u8(&[3], &[2, 0, 4])),
    )
    .unwrap();
    img
}

fn write_npz(path: &Path, arrays: &[(&str, &Tensor)], deflate: bool) {
    let file = std::fs::File::create(path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let opts = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, t) in arrays {
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(&npy_bytes(t).unwrap()).unwrap();
    }
    zip.finish().unwrap();
}

fn err_text(r: Result<impl std::fmt::Debug, DataError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn idx_reads_scales_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let img = write_idx(dir.path());
    for p in [
        img.clone(),
        dir.path().join("tiny-labels-idx1-ubyte.gz"),
        dir.path().to_path_buf(),
    ] {
        let ds = open_dataset(&p).unwrap();
        assert_eq!(ds.format(), DatasetFormat::Idx);
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.sample_shape(), &[1, 2, 2]);
        assert_eq!(ds.labels(), &[2, 0, 4]);
        assert_eq!(ds.num_classes(), 5);
        assert_eq!(ds.class_names()[4], "4");
    }
    let ds = open_dataset(&img).unwrap();
    let spec = ds.input_spec(&[1, 2, 2], &Preprocess::default()).unwrap();
    let b = ds.batch(&spec, 0..2).unwrap();
    assert_eq!(b.x.shape(), &[2, 1, 2, 2]);
    assert_eq!(b.labels, vec![2, 0]);
    // Default: u8 / 255 (computed as a division, like numpy's x / 255).
    let want: Vec<f32> = [0u8, 51, 102, 255, 10, 20, 30, 40]
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect();
    assert_eq!(b.x.as_f32().unwrap(), want.as_slice());
    // Mean/std: (x/255 - 0.5) / 0.25.
    let pre = Preprocess {
        mean: vec![0.5],
        std: vec![0.25],
        ..Preprocess::default()
    };
    let spec = ds.input_spec(&[1, 2, 2], &pre).unwrap();
    let b = ds.batch(&spec, 2..3).unwrap();
    assert_eq!(b.x.as_f32().unwrap(), &[2.0, 2.0, -2.0, -2.0]);
    // Batching: sizes 2 then 1; a padded fill zeroes the tail.
    let sizes: Vec<usize> = ds
        .batches(&spec, 2)
        .map(|b| b.unwrap().labels.len())
        .collect();
    assert_eq!(sizes, vec![2, 1]);
    let mut buf = vec![7.0f32; 8];
    assert_eq!(ds.fill(&spec, 2, &mut buf).unwrap(), 1);
    assert_eq!(&buf[4..], &[0.0; 4]);
    // Flat model input and squeezed shapes are accepted; others are not.
    assert!(ds.input_spec(&[4], &Preprocess::default()).is_ok());
    assert!(ds.input_spec(&[2, 2], &Preprocess::default()).is_ok());
    let e = err_text(ds.input_spec(&[3, 2, 2], &Preprocess::default()));
    assert!(e.contains("[1, 2, 2]") && e.contains("[3, 2, 2]"), "{e}");
    assert!(e.contains("tiny-images-idx3-ubyte.gz"), "{e}");
    let bad_mean = Preprocess {
        mean: vec![0.1, 0.2],
        ..Preprocess::default()
    };
    assert!(err_text(ds.input_spec(&[1, 2, 2], &bad_mean)).contains("--mean has 2 values"));
    let zero_std = Preprocess {
        std: vec![0.0],
        ..Preprocess::default()
    };
    assert!(ds.input_spec(&[1, 2, 2], &zero_std).is_err());
    let mut ds = ds;
    ds.truncate(1);
    assert_eq!(ds.len(), 1);
    assert_eq!(ds.batches(&spec, 8).count(), 1);
}

#[test]
fn idx_mismatched_pairs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let img = d.join("a-images-idx3-ubyte");
    std::fs::write(&img, idx_u8(&[2, 1, 1], &[1, 2])).unwrap();
    let lab = d.join("a-labels-idx1-ubyte");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (idx_u8(&[3], &[0, 1, 2]), "has 3 labels but"),
        (idx_u8(&[2, 1], &[0, 1]), "1-D integer"),
        (
            vec![0, 0, 0x0D, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0],
            "floats",
        ),
        (
            vec![0, 0, 0x09, 1, 0, 0, 0, 2, 0xff, 0],
            "not a class index",
        ),
        (vec![1, 2, 3], "not an IDX"),
    ];
    for (bytes, want) in cases {
        std::fs::write(&lab, bytes).unwrap();
        let e = err_text(open_dataset(&img));
        assert!(e.contains(want), "{e} (wanted {want})");
        assert!(e.contains("a-"), "{e}");
    }
    std::fs::write(&lab, idx_u8(&[0], &[])).unwrap();
    std::fs::write(&img, idx_u8(&[0, 1, 1], &[])).unwrap();
    assert!(err_text(open_dataset(&img)).contains("no samples"));
    std::fs::write(&img, idx_u8(&[2], &[1, 2])).unwrap();
    std::fs::write(&lab, idx_u8(&[2], &[1, 2])).unwrap();
    assert!(err_text(open_dataset(&img)).contains("expected [N, H, W]"));
}

#[test]
fn npz_any_dtype_nhwc_and_labels() {
    let dir = tempfile::tempdir().unwrap();
    // f64 x [2, 3] with i32 labels: flat samples, no scaling.
    let p = dir.path().join("flat.npz");
    let x = Tensor::new(
        vec![2, 3],
        TensorData::F64(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    )
    .unwrap();
    let y = Tensor::new(vec![2], TensorData::I32(vec![1, 0])).unwrap();
    write_npz(&p, &[("x", &x), ("y", &y)], true);
    let ds = open_dataset(&p).unwrap();
    assert_eq!(ds.format(), DatasetFormat::Npz);
    assert_eq!(ds.sample_shape(), &[3]);
    let spec = ds.input_spec(&[3], &Preprocess::default()).unwrap();
    let b = ds.batch(&spec, 0..2).unwrap();
    assert_eq!(b.x.as_f32().unwrap(), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(b.labels, vec![1, 0]);

    // u8 NHWC [1, 2, 2, 3] becomes NCHW with per-channel mean/std.
    let p = dir.path().join("rgb.npz");
    let px: Vec<u8> = (0..12).map(|v| v * 20).collect();
    let x = Tensor::new(vec![1, 2, 2, 3], TensorData::U8(px.clone())).unwrap();
    let y = Tensor::from_i64(vec![1, 1], vec![3]).unwrap();
    write_npz(&p, &[("x", &x), ("y", &y)], false);
    let ds = open_dataset(&p).unwrap();
    assert_eq!(ds.sample_shape(), &[3, 2, 2]);
    assert_eq!(ds.num_classes(), 4);
    let pre = Preprocess {
        divide_by: Some(1.0),
        mean: vec![0.0, 100.0, 200.0],
        std: vec![1.0, 2.0, 4.0],
    };
    let spec = ds.input_spec(&[3, 2, 2], &pre).unwrap();
    let got = ds.batch(&spec, 0..1).unwrap().x.as_f32().unwrap().to_vec();
    let mut want = Vec::new();
    for (c, (m, s)) in [(0.0f32, 1.0f32), (100.0, 2.0), (200.0, 4.0)]
        .iter()
        .enumerate()
    {
        for i in 0..4 {
            want.push((f32::from(px[i * 3 + c]) - m) / s);
        }
    }
    assert_eq!(got, want);
}

#[test]
fn npz_errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npz");
    let x = Tensor::from_f32(vec![2, 2], vec![0.0; 4]).unwrap();
    let y_float = Tensor::from_f32(vec![2], vec![0.0, 1.0]).unwrap();
    let y_neg = Tensor::from_i64(vec![2], vec![0, -3]).unwrap();
    let y_short = Tensor::from_i64(vec![1], vec![0]).unwrap();
    let x_1d = Tensor::from_f32(vec![2], vec![0.0; 2]).unwrap();
    let y = Tensor::from_i64(vec![2], vec![0, 1]).unwrap();
    let cases: Vec<(Vec<(&str, &Tensor)>, &str)> = vec![
        (vec![("x", &x)], "no array 'y'"),
        (vec![("y", &y)], "no array 'x'"),
        (vec![("x", &x), ("y", &y_float)], "integer class labels"),
        (vec![("x", &x), ("y", &y_neg)], "y[1] = -3"),
        (vec![("x", &x), ("y", &y_short)], "y has shape [1]"),
        (vec![("x", &x_1d), ("y", &y)], "x has shape [2]"),
    ];
    for (arrays, want) in cases {
        write_npz(&p, &arrays, true);
        let e = err_text(open_dataset(&p));
        assert!(
            e.contains(want) && e.contains("bad.npz"),
            "{e} (wanted {want})"
        );
    }
    // Truncated and garbage archives.
    write_npz(&p, &[("x", &x), ("y", &y)], true);
    let bytes = std::fs::read(&p).unwrap();
    for cut in [3, 10, bytes.len() / 2, bytes.len() - 5] {
        std::fs::write(&p, &bytes[..cut]).unwrap();
        assert!(open_dataset(&p).is_err(), "cut {cut}");
    }
    std::fs::write(&p, b"PK\x03\x04 not really a zip").unwrap();
    assert!(open_dataset(&p).is_err());
    // A corrupt array inside a valid archive.
    let file = std::fs::File::create(&p).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file("x.npy", opts).unwrap();
    zip.write_all(&npy_bytes(&x).unwrap()[..70]).unwrap();
    zip.start_file("y.npy", opts).unwrap();
    zip.write_all(&npy_bytes(&y).unwrap()).unwrap();
    zip.finish().unwrap();
    let e = err_text(open_dataset(&p));
    assert!(e.contains("array 'x'"), "{e}");
}

fn write_png_gray(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> u8) {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
        .save(path)
        .unwrap();
}

#[test]
fn image_folder_classes_channels_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for class in ["cat", "ant", "bee"] {
        std::fs::create_dir(root.join(class)).unwrap();
    }
    write_png_gray(&root.join("ant/b.png"), 3, 2, |x, y| (x + 10 * y) as u8);
    write_png_gray(&root.join("ant/a.PNG"), 3, 2, |_, _| 255);
    image::RgbImage::from_fn(3, 2, |x, _| image::Rgb([x as u8, 100, 200]))
        .save(root.join("cat/c.png"))
        .unwrap();
    std::fs::write(root.join("bee/notes.txt"), "ignored").unwrap();
    std::fs::create_dir(root.join(".hidden")).unwrap();

    let ds = open_dataset(root).unwrap();
    assert_eq!(ds.format(), DatasetFormat::ImageFolder);
    assert_eq!(ds.class_names(), &["ant", "bee", "cat"]);
    assert_eq!(ds.num_classes(), 3);
    assert_eq!(ds.labels(), &[0, 0, 2]);
    assert_eq!(ds.sample_shape(), &[1, 2, 3]);

    // Grayscale model: RGB images become luma.
    let pre = Preprocess {
        divide_by: Some(1.0),
        ..Preprocess::default()
    };
    let spec = ds.input_spec(&[1, 2, 3], &pre).unwrap();
    let b = ds.batch(&spec, 0..3).unwrap();
    let x = b.x.as_f32().unwrap();
    assert_eq!(&x[..6], &[255.0; 6]);
    assert_eq!(&x[6..12], &[0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
    // RGB model: gray images are replicated, RGB ones split into planes.
    let spec = ds.input_spec(&[3, 2, 3], &pre).unwrap();
    let b = ds.batch(&spec, 1..3).unwrap();
    let x = b.x.as_f32().unwrap();
    assert_eq!(&x[..6], &x[6..12]);
    assert_eq!(&x[18..24], &[0.0, 1.0, 2.0, 0.0, 1.0, 2.0]);
    assert_eq!(&x[24..30], &[100.0; 6]);
    assert_eq!(&x[30..36], &[200.0; 6]);

    // A model of another size: error names both sizes.
    let e = err_text(ds.input_spec(&[1, 4, 4], &pre));
    assert!(e.contains("[1, 2, 3]") && e.contains("[1, 4, 4]"), "{e}");
    // An image of another size than the first: error names the file.
    write_png_gray(&root.join("cat/d.png"), 5, 5, |_, _| 0);
    let ds = open_dataset(root).unwrap();
    let spec = ds.input_spec(&[1, 2, 3], &pre).unwrap();
    let e = err_text(ds.batch(&spec, 0..4));
    assert!(
        e.contains("d.png") && e.contains("5x5") && e.contains("2x3"),
        "{e}"
    );
    // A corrupt image: error names the file.
    std::fs::write(root.join("cat/d.png"), b"\x89PNG\r\n\x1a\n broken").unwrap();
    let ds = open_dataset(root).unwrap();
    let e = err_text(ds.batch(&spec, 0..4));
    assert!(e.contains("d.png"), "{e}");
}

#[test]
fn unknown_and_empty_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert!(err_text(open_dataset(d.join("nope"))).contains("nope"));
    assert!(err_text(open_dataset(d)).contains("no class sub-folders"));
    std::fs::create_dir(d.join("empty_class")).unwrap();
    assert!(err_text(open_dataset(d)).contains("no .png/.jpg images"));
    let f = d.join("random.bin");
    std::fs::write(&f, b"hello").unwrap();
    assert!(err_text(open_dataset(&f)).contains("unknown dataset format"));
}

/// The real Fashion-MNIST test set, when the Debian package is installed.
#[test]
fn fashion_mnist_test_set_if_present() {
    let p = Path::new("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
    if !p.exists() {
        eprintln!(
            "skipped: {} not found (apt-get install dataset-fashion-mnist)",
            p.display()
        );
        return;
    }
    let ds = open_dataset(p).unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.sample_shape(), &[1, 28, 28]);
    assert_eq!(ds.num_classes(), 10);
    // Fashion-MNIST's test set is balanced: 1000 of each class.
    for c in 0..10 {
        assert_eq!(ds.labels().iter().filter(|&&l| l == c).count(), 1000);
    }
    // First labels as published (9 ankle boot, 2 pullover, 1 trouser, ...).
    assert_eq!(&ds.labels()[..5], &[9, 2, 1, 1, 6]);
    let spec = ds.input_spec(&[1, 28, 28], &Preprocess::default()).unwrap();
    let b = ds.batch(&spec, 0..64).unwrap();
    let x = b.x.as_f32().unwrap();
    assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(x.contains(&1.0) && x.contains(&0.0));
}

/// A PNG whose header claims 100000 x 100000 pixels (and holds no data):
/// refused by the size limits, not allocated.
#[test]
fn image_folder_refuses_huge_headers_and_reads_jpeg() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("only");
    std::fs::create_dir(&class).unwrap();
    image::GrayImage::from_pixel(4, 4, image::Luma([128]))
        .save(class.join("a.jpg"))
        .unwrap();
    let ds = open_dataset(dir.path()).unwrap();
    assert_eq!(ds.sample_shape(), &[1, 4, 4]);
    let pre = Preprocess {
        divide_by: Some(1.0),
        ..Preprocess::default()
    };
    let spec = ds.input_spec(&[1, 4, 4], &pre).unwrap();
    let b = ds.batch(&spec, 0..1).unwrap();
    // JPEG is lossy, but a flat image stays flat within a level or two.
    assert!(b
        .x
        .as_f32()
        .unwrap()
        .iter()
        .all(|v| (v - 128.0).abs() <= 2.0));

    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    let mut crc = flate2::Crc::new();
    crc.update(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(class.join("b.png"), &png).unwrap();
    let ds = open_dataset(dir.path()).unwrap();
    let e = err_text(ds.batch(&spec, 0..2));
    assert!(e.contains("b.png"), "{e}");
    // As the first image it fails at open.
    std::fs::remove_file(class.join("a.jpg")).unwrap();
    let e = err_text(open_dataset(dir.path()));
    assert!(e.contains("b.png"), "{e}");
}
