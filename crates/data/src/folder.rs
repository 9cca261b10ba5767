//! Folders of images per class: `DIR/<class>/*.png|jpg|jpeg`, classes sorted
//! by name. Images are decoded when a batch needs them, to the channel count
//! the model wants (grayscale or RGB); they are never resized.

use std::path::{Path, PathBuf};

use image::{ImageReader, Limits};

use crate::limits::{MAX_DATA_BYTES, MAX_IMAGE_SIDE};
use crate::DataError;

/// The files of an image-folder dataset.
pub(crate) struct Folder {
    pub class_names: Vec<String>,
    pub files: Vec<PathBuf>,
    pub labels: Vec<u32>,
    /// Channels (1 or 3), height and width of the first image.
    pub first_shape: [usize; 3],
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

fn hidden(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(true)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
        let path = entry.map_err(DataError::io(dir))?.path();
        if !hidden(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn reader(path: &Path) -> Result<ImageReader<std::io::BufReader<std::fs::File>>, DataError> {
    let mut r = ImageReader::open(path)
        .map_err(DataError::io(path))?
        .with_guessed_format()
        .map_err(DataError::io(path))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_DATA_BYTES.min(1 << 30));
    r.limits(limits);
    Ok(r)
}

/// Scans `dir`: one sub-folder per class, images inside.
pub(crate) fn scan(dir: &Path) -> Result<Folder, DataError> {
    let mut class_names = Vec::new();
    let mut files = Vec::new();
    let mut labels = Vec::new();
    for class_dir in sorted_entries(dir)?.into_iter().filter(|p| p.is_dir()) {
        let label = class_names.len() as u32;
        class_names.push(
            class_dir
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        for f in sorted_entries(&class_dir)? {
            if f.is_file() && is_image(&f) {
                files.push(f);
                labels.push(label);
            }
        }
    }
    if class_names.is_empty() {
        return Err(DataError::format(
            dir,
            "is not a dataset: no IDX files, and no class sub-folders of images (DIR/<class>/*.png)",
        ));
    }
    let Some(first) = files.first() else {
        return Err(DataError::format(
            dir,
            format!(
                "has {} class folders but no .png/.jpg images in them",
                class_names.len()
            ),
        ));
    };
    let img = decode(first)?;
    let channels = if img.color().has_color() { 3 } else { 1 };
    let first_shape = [channels, img.height() as usize, img.width() as usize];
    Ok(Folder {
        class_names,
        files,
        labels,
        first_shape,
    })
}

fn decode(path: &Path) -> Result<image::DynamicImage, DataError> {
    reader(path)?
        .decode()
        .map_err(|e| DataError::format(path, format!("cannot decode image: {e}")))
}

/// Decodes `path` as `channels` (1 = luma, 3 = RGB) planes of `h` x `w`
/// bytes, channel-major (CHW), into `out`.
pub(crate) fn decode_chw(
    path: &Path,
    channels: usize,
    h: usize,
    w: usize,
    out: &mut Vec<u8>,
) -> Result<(), DataError> {
    let img = decode(path)?;
    if (img.height() as usize, img.width() as usize) != (h, w) {
        return Err(DataError::mismatch(
            path,
            format!(
                "image is {}x{} (HxW) but the model wants {h}x{w}; whittle does not resize",
                img.height(),
                img.width()
            ),
        ));
    }
    out.clear();
    match channels {
        1 => out.extend_from_slice(img.to_luma8().as_raw()),
        3 => {
            let rgb = img.to_rgb8();
            let raw = rgb.as_raw();
            for c in 0..3 {
                out.extend(raw.iter().skip(c).step_by(3));
            }
        }
        c => {
            return Err(DataError::mismatch(
                path,
                format!("images can be read as 1 (grayscale) or 3 (RGB) channels, not {c}"),
            ))
        }
    }
    Ok(())
}
