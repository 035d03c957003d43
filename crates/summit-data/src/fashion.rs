//! Fashion-MNIST in the IDX format.

use std::io::Read;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::{Image, Preprocess, Transform};

/// Fashion-MNIST's class names, indexed by label.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// IDX magic number of an unsigned-byte 3-d array (images).
pub const IDX_IMAGES_MAGIC: u32 = 2051;
/// IDX magic number of an unsigned-byte 1-d array (labels).
pub const IDX_LABELS_MAGIC: u32 = 2049;

/// An unsigned-byte IDX array as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// The magic number (`0x0000_08NN` for unsigned bytes in `NN` dimensions).
    pub magic: u32,
    /// The dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// The values, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of unsigned bytes, gzip-compressed or not (detected by
/// the gzip magic bytes `1f 8b`), and checks that its length matches its header.
pub fn read_idx(path: impl AsRef<Path>) -> Result<IdxArray> {
    let path = path.as_ref();
    let raw = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let format = |reason: String| DataError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(raw.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| format(format!("invalid gzip data: {e}")))?;
        out
    } else {
        raw
    };
    parse_idx(&bytes).map_err(format)
}

/// Parses IDX bytes (already decompressed).
fn parse_idx(b: &[u8]) -> std::result::Result<IdxArray, String> {
    if b.len() < 4 {
        return Err(format!("too short for an IDX header ({} bytes)", b.len()));
    }
    let magic = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    if b[0] != 0 || b[1] != 0 || b[2] != 0x08 || b[3] == 0 {
        return Err(format!(
            "bad IDX magic number {magic} (0x{magic:08x}): expected an unsigned-byte array \
             (0x000008NN, e.g. {IDX_LABELS_MAGIC} for labels, {IDX_IMAGES_MAGIC} for images)"
        ));
    }
    let ndim = usize::from(b[3]);
    let header = 4 + 4 * ndim;
    if b.len() < header {
        return Err(format!(
            "truncated IDX header: {ndim} dimensions need {header} bytes, the file has {}",
            b.len()
        ));
    }
    let dims: Vec<usize> = b[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let body = b.len() - header;
    if body != count {
        return Err(format!(
            "{} IDX data: dimensions {dims:?} need {count} bytes after the header, the file has {body}",
            if body < count {
                "truncated"
            } else {
                "over-long"
            }
        ));
    }
    Ok(IdxArray {
        magic,
        dims,
        data: b[header..].to_vec(),
    })
}

/// Fashion-MNIST (or any MNIST-like pair of IDX files with labels `0..10`).
///
/// Samples are `rows × cols` 8-bit grey images. [`Dataset::load`] runs them
/// through the preprocessing (by default [`Preprocess::fashion_mnist`]:
/// `1×28×28`, `(pixel/255 − 0.2860)/0.3530`); [`raw_image`](FashionMnist::raw_image)
/// gives the original bytes.
///
/// ```no_run
/// use summit_data::{Dataset, FashionMnist};
/// let d = FashionMnist::open(
///     "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
///     "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz",
/// )?;
/// assert_eq!(d.len(), 10_000);
/// assert_eq!(d.load(0)?.dims(), [1, 28, 28]);
/// # Ok::<(), summit_data::DataError>(())
/// ```
#[derive(Debug, Clone)]
pub struct FashionMnist {
    images_file: PathBuf,
    source_name: String,
    pixels: Vec<u8>,
    labels: Vec<usize>,
    rows: usize,
    cols: usize,
    classes: Vec<String>,
    transform: Transform,
}

impl FashionMnist {
    /// Reads an images file (magic 2051, `n × rows × cols`) and a labels file
    /// (magic 2049, `n`), each gzip-compressed or raw, with the default
    /// preprocessing [`Preprocess::fashion_mnist`].
    ///
    /// Errors name the file at fault: wrong magic number, truncated or
    /// over-long data, differing sample counts, labels outside `0..10`.
    pub fn open(images_idx: impl AsRef<Path>, labels_idx: impl AsRef<Path>) -> Result<Self> {
        let images_file = images_idx.as_ref();
        let labels_file = labels_idx.as_ref();
        let images = read_idx(images_file)?;
        let labels = read_idx(labels_file)?;
        let format = |path: &Path, reason: String| DataError::Format {
            path: path.to_path_buf(),
            reason,
        };
        if images.magic != IDX_IMAGES_MAGIC {
            return Err(format(
                images_file,
                format!(
                    "IDX magic number {} is not {IDX_IMAGES_MAGIC} (a 3-d unsigned-byte image array)",
                    images.magic
                ),
            ));
        }
        if labels.magic != IDX_LABELS_MAGIC {
            return Err(format(
                labels_file,
                format!(
                    "IDX magic number {} is not {IDX_LABELS_MAGIC} (a 1-d unsigned-byte label array)",
                    labels.magic
                ),
            ));
        }
        let (n, rows, cols) = (images.dims[0], images.dims[1], images.dims[2]);
        if rows == 0 || cols == 0 {
            return Err(format(
                images_file,
                format!("images have a zero size ({rows}×{cols})"),
            ));
        }
        if labels.dims[0] != n {
            return Err(format(
                labels_file,
                format!(
                    "{} labels but {} has {n} images",
                    labels.dims[0],
                    images_file.display()
                ),
            ));
        }
        if n == 0 {
            return Err(DataError::EmptyDataset {
                path: images_file.to_path_buf(),
                reason: "the IDX file holds 0 images".to_string(),
            });
        }
        if let Some(i) = labels
            .data
            .iter()
            .position(|&l| usize::from(l) >= FASHION_MNIST_CLASSES.len())
        {
            return Err(format(
                labels_file,
                format!(
                    "label {} of sample {i} is outside 0..{}",
                    labels.data[i],
                    FASHION_MNIST_CLASSES.len()
                ),
            ));
        }
        let source_name = images_file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| images_file.display().to_string());
        Ok(Self {
            images_file: images_file.to_path_buf(),
            source_name,
            pixels: images.data,
            labels: labels.data.iter().map(|&l| usize::from(l)).collect(),
            rows,
            cols,
            classes: FASHION_MNIST_CLASSES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            transform: Preprocess::fashion_mnist().transform(),
        })
    }

    /// Replaces the preprocessing (e.g. [`Preprocess::Torchvision`] to feed an RGB model).
    pub fn with_preprocess(mut self, preprocess: Preprocess) -> Result<Self> {
        let transform = preprocess.transform();
        transform.validate()?;
        self.transform = transform;
        Ok(self)
    }

    /// Image height in pixels (28 for Fashion-MNIST).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width in pixels (28 for Fashion-MNIST).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The `rows·cols` original 8-bit pixels of sample `index`, row-major; `None` when out of range.
    pub fn raw_image(&self, index: usize) -> Option<&[u8]> {
        let n = self.rows * self.cols;
        self.pixels
            .get(index.checked_mul(n)?..(index + 1).checked_mul(n)?)
    }

    /// All original pixels: `len·rows·cols` bytes, sample after sample.
    pub fn raw_images(&self) -> &[u8] {
        &self.pixels
    }

    /// The images file.
    pub fn images_file(&self) -> &Path {
        &self.images_file
    }

    /// The preprocessing applied by [`Dataset::load`].
    pub fn transform(&self) -> &Transform {
        &self.transform
    }
}

impl Dataset for FashionMnist {
    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn source(&self, index: usize) -> String {
        format!("{}#{index}", self.source_name)
    }

    fn load(&self, index: usize) -> Result<Image> {
        let raw = self.raw_image(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.labels.len(),
        })?;
        let (w, h) = (self.cols as u32, self.rows as u32);
        let grey = GrayImage::from_raw(w, h, raw.to_vec()).ok_or_else(|| DataError::Decode {
            item: self.source(index),
            reason: format!("{} bytes do not make a {w}×{h} image", raw.len()),
        })?;
        self.transform
            .apply(&DynamicImage::ImageLuma8(grey), &self.source(index))
    }

    fn value_range(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        Some(self.transform.value_range())
    }

    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some(
            self.transform
                .output_dims_for(self.cols as u32, self.rows as u32),
        )
    }
}
