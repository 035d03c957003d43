//! Datasets for Summit: image folders, the ImageNet validation layout and
//! Fashion-MNIST, decoded and preprocessed in parallel into host-side `f32`
//! batches ahead of the model.
//!
//! * [`ImageFolder`]: one sub-folder per class (JPEG/PNG), class names from folder names.
//! * [`ImageNetVal`]: the ILSVRC2012 validation layout (flat folder, ground-truth
//!   labels file, class list).
//! * [`FashionMnist`]: IDX files, gzip-compressed or raw.
//! * [`Preprocess`]: the `torchvision` (resize 256, center crop 224, ImageNet
//!   mean/std) and `Lucid` (resize to 224, value map `2·pixel − 372`) presets,
//!   greyscale normalisation, or an explicit [`Transform`].
//! * [`BatchLoader`]: batches decoded in parallel with rayon, one batch (or
//!   more, bounded) prefetched on a background thread; a corrupt, empty or
//!   unreadable image is left out of its batch and reported as a [`Skipped`]
//!   record naming its path and the reason — never a panic, never silently dropped.
//!   So is an image that would decode (or resize) to more than its [`DecodeLimits`]
//!   allow, and an image whose preprocessed shape is not the dataset's
//!   [`sample_dims`](Dataset::sample_dims).
//! * [`shard`]: the index range of one shard of a dataset.
//!
//! Batch contents and order depend only on the index list: not on the number
//! of threads, and concatenating batches gives the same samples for every batch size.
//!
//! ```no_run
//! use std::sync::Arc;
//! use summit_data::{BatchLoader, Dataset, ImageFolder, Preprocess};
//!
//! let data = Arc::new(ImageFolder::open("images/", Preprocess::Torchvision)?);
//! println!("{} images of {} classes", data.len(), data.class_names().len());
//! let loader = BatchLoader::new(data.clone(), (0..data.len()).collect(), 32)?;
//! for batch in loader {
//!     let [b, c, h, w] = batch.dims; // [B, 3, 224, 224]
//!     assert_eq!(batch.images.len(), b * c * h * w);
//!     for s in &batch.skipped {
//!         eprintln!("{s}"); // "skipped sample 7 (images/cat/x.jpg): cannot decode image ..."
//!     }
//! }
//! # Ok::<(), summit_data::DataError>(())
//! ```
#![warn(missing_docs)]

mod dataset;
mod error;
mod fashion;
mod folder;
mod imagenet;
mod loader;
pub mod preprocess;

pub use dataset::Dataset;
pub use error::{DataError, Result};
pub use fashion::{
    FASHION_MNIST_CLASSES, FashionMnist, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC, IdxArray, read_idx,
};
pub use folder::{IMAGE_EXTENSIONS, ImageFolder, SkipReason, SkippedEntry, has_image_extension};
pub use imagenet::{ImageNetVal, LabelFormat};
pub use loader::{Batch, BatchLoader, LoaderOptions, Skipped, load_batch, shard};
pub use preprocess::{
    ColorMode, DEFAULT_MAX_ALLOC, DEFAULT_MAX_SIDE, DecodeLimits, FASHION_MNIST_MEAN,
    FASHION_MNIST_STD, IMAGENET_MEAN, IMAGENET_STD, Image, LUCID_OFFSET, LUCID_SCALE, Preprocess,
    Resize, Transform, decode_bytes, decode_bytes_with_limits, decode_file,
    decode_file_with_limits,
};
