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

    /// `[channels, height, width]` that every loaded sample must have:
    /// the preprocessing's output size when it fixes one (all presets except
    /// [`Preprocess::Grayscale`](crate::Preprocess::Grayscale)); for image
    /// files preprocessed at their own size, the most common size among the
    /// files' headers ([`ImageFolder`](crate::ImageFolder),
    /// [`ImageNetVal`](crate::ImageNetVal)); `None` when unknown, in which case
    /// [`BatchLoader`](crate::BatchLoader) takes the most common size of the
    /// first batch. Samples of another shape are skipped, with a reason naming
    /// both shapes.
    fn sample_dims(&self) -> Option<[usize; 3]>;

    /// The lowest and highest value the preprocessing can give each channel (pixel 0 and 255
    /// through the value map), e.g. for LRP's `zbox` rule; `None` when unknown.
    fn value_range(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }
}

/// The most common of the shapes `dims`; ties go to the shape met first.
pub(crate) fn most_common_dims(dims: impl IntoIterator<Item = [usize; 3]>) -> Option<[usize; 3]> {
    let mut tally: Vec<([usize; 3], usize)> = Vec::new();
    for d in dims {
        match tally.iter_mut().find(|(t, _)| *t == d) {
            Some((_, count)) => *count += 1,
            None => tally.push((d, 1)),
        }
    }
    let mut best: Option<([usize; 3], usize)> = None;
    for (d, count) in tally {
        if best.is_none_or(|(_, c)| count > c) {
            best = Some((d, count));
        }
    }
    best.map(|(d, _)| d)
}
