//! The [`Dataset`] trait shared by every data source.

use crate::error::Result;
use crate::preprocess::Image;

/// A labelled set of images that can be loaded one sample at a time, from any thread.
///
/// Indices run over `0..len()`. Loading is fallible per sample: a corrupt,
/// empty or unreadable image gives an error naming its [`source`](Dataset::source),
/// which [`BatchLoader`](crate::BatchLoader) turns into a
/// [`Skipped`](crate::Skipped) record instead of failing the whole run.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize {
        self.labels().len()
    }

    /// `true` when the dataset has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Class names, indexed by label.
    fn class_names(&self) -> &[String];

    /// The label (an index into [`class_names`](Dataset::class_names)) of every sample.
    fn labels(&self) -> &[usize];

    /// The label of one sample, `None` when `index` is out of range.
    fn label(&self, index: usize) -> Option<usize> {
        self.labels().get(index).copied()
    }

    /// Where a sample comes from, for reports: a file path, or
    /// `file#index` for a sample inside a container file (e.g.
    /// `t10k-images-idx3-ubyte.gz#123`).
    fn source(&self, index: usize) -> String;

    /// Decodes and preprocesses one sample.
    fn load(&self, index: usize) -> Result<Image>;

    /// `[channels, height, width]` of every loaded sample, when the
    /// preprocessing fixes it (it does for all presets except
    /// [`Preprocess::Grayscale`](crate::Preprocess::Grayscale) on image folders).
    fn sample_dims(&self) -> Option<[usize; 3]>;
}
