//! Batching with parallel decoding and bounded prefetch.

use std::ops::Range;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use rayon::prelude::*;

use crate::dataset::{Dataset, most_common_dims};
use crate::error::{DataError, Result};
use crate::preprocess::Image;

/// A sample that could not be loaded and was left out of its batch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Skipped {
    /// The sample's index in the dataset.
    pub index: usize,
    /// The sample's [`Dataset::source`] (its path).
    pub source: String,
    /// Why it was skipped (the error's message).
    pub reason: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "skipped sample {} ({}): {}",
            self.index, self.source, self.reason
        )
    }
}

/// A batch of preprocessed samples, ready to become a `[B, C, H, W]` tensor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Batch {
    /// `B·C·H·W` values: sample after sample, each CHW row-major.
    pub images: Vec<f32>,
    /// `[B, C, H, W]`.
    pub dims: [usize; 4],
    /// The label of each sample (`B` entries).
    pub labels: Vec<usize>,
    /// The dataset index of each sample (`B` entries), ascending in the order
    /// the indices were given to the loader.
    pub indices: Vec<usize>,
    /// Samples that were asked for in this batch (or in preceding batches
    /// whose samples were all skipped) but could not be loaded, in index-list order.
    pub skipped: Vec<Skipped>,
}

impl Batch {
    /// Number of samples `B`.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// `true` when the batch has no samples.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The values of sample `i` of the batch (`C·H·W` of them), `None` when out of range.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let per = self.dims[1] * self.dims[2] * self.dims[3];
        self.images.get(i * per..(i + 1) * per)
    }
}

/// Loads the samples `indices` of `dataset` into one batch, decoding in
/// parallel on the current rayon pool.
///
/// Samples that fail to load (or whose dims differ from `expected`) are left
/// out and listed in [`Batch::skipped`]. A panic inside [`Dataset::load`] is
/// caught and reported as a skipped sample as well. When `expected` is `None`
/// it is set to the most common shape among this batch's samples that load
/// (ties go to the shape met first), so that every later batch must match it;
/// pass the model's input shape (or [`Dataset::sample_dims`]) where known, so
/// that an odd first sample cannot decide it. The result does not depend on
/// the number of threads.
pub fn load_batch<D: Dataset + ?Sized>(
    dataset: &D,
    indices: &[usize],
    expected: &mut Option<[usize; 3]>,
) -> Batch {
    let loaded: Vec<std::result::Result<Image, String>> = indices
        .par_iter()
        .map(
            |&i| match catch_unwind(AssertUnwindSafe(|| dataset.load(i))) {
                Ok(Ok(img)) => Ok(img),
                Ok(Err(e)) => Err(e.to_string()),
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic payload".to_string());
                    Err(format!("panicked while loading: {msg}"))
                }
            },
        )
        .collect();
    if expected.is_none() {
        *expected = most_common_dims(
            loaded
                .iter()
                .filter_map(|r| r.as_ref().ok().map(Image::dims)),
        );
    }
    let mut batch = Batch::default();
    for (&index, result) in indices.iter().zip(loaded) {
        let skip = |reason: String| Skipped {
            index,
            source: dataset.source(index),
            reason,
        };
        match result {
            Err(reason) => batch.skipped.push(skip(reason)),
            Ok(img) => {
                let dims = img.dims();
                let want = *expected.get_or_insert(dims);
                if dims != want {
                    let source = dataset.source(index);
                    batch.skipped.push(skip(format!(
                        "{source}: preprocessed shape {dims:?} ([channels, height, width]) \
                         differs from the expected {want:?} of every sample \
                         (use a preprocessing with a fixed output size)"
                    )));
                    continue;
                }
                if img.data.len() != dims.iter().product::<usize>() {
                    batch.skipped.push(skip(format!(
                        "{}: {} values do not make the shape {dims:?}",
                        dataset.source(index),
                        img.data.len()
                    )));
                    continue;
                }
                batch.images.extend_from_slice(&img.data);
                batch
                    .labels
                    .push(dataset.label(index).unwrap_or(usize::MAX));
                batch.indices.push(index);
            }
        }
    }
    let [c, h, w] = expected.unwrap_or([0; 3]);
    batch.dims = [batch.indices.len(), c, h, w];
    batch
}

/// Settings of a [`BatchLoader`].
#[derive(Debug, Clone)]
pub struct LoaderOptions {
    /// Samples asked for per batch (a batch may hold fewer when some are skipped). At least 1.
    pub batch_size: usize,
    /// Batches decoded ahead of the one the consumer holds (at least 1; 0 is
    /// treated as 1). Memory stays bounded by `prefetch + 1` batches.
    pub prefetch: usize,
    /// The rayon pool to decode on; `None` uses rayon's global pool.
    pub pool: Option<Arc<rayon::ThreadPool>>,
}

impl LoaderOptions {
    /// `batch_size` samples per batch, one batch of prefetch, the global rayon pool.
    pub fn new(batch_size: usize) -> Self {
        Self {
            batch_size,
            prefetch: 1,
            pool: None,
        }
    }
}

/// An iterator of [`Batch`]es over a list of dataset indices.
///
/// A background thread decodes batch `k + 1` (in parallel, with rayon) while
/// the consumer works on batch `k`; at most [`LoaderOptions::prefetch`]
/// batches are decoded ahead. Batches follow the given index order, and their
/// contents do not depend on the number of threads; concatenating the batches
/// gives the same samples for every batch size.
///
/// Samples that cannot be loaded are left out, listed in the batch's
/// [`Batch::skipped`] and accumulated in [`BatchLoader::skipped`]. A batch whose
/// samples were all skipped is not yielded (its skipped records travel with
/// the next batch, and always reach [`BatchLoader::skipped`]).
///
/// Dropping the loader early stops the background thread.
pub struct BatchLoader {
    rx: Option<Receiver<Batch>>,
    worker: Option<JoinHandle<()>>,
    skipped: Vec<Skipped>,
    loaded: usize,
    requested: usize,
    batch_size: usize,
}

impl std::fmt::Debug for BatchLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchLoader")
            .field("requested", &self.requested)
            .field("batch_size", &self.batch_size)
            .field("loaded", &self.loaded)
            .field("skipped", &self.skipped.len())
            .finish()
    }
}

impl BatchLoader {
    /// A loader over `indices` of `dataset`, `batch_size` samples per batch,
    /// default [`LoaderOptions`].
    ///
    /// Errors when `batch_size` is 0 or an index is out of range.
    pub fn new<D: Dataset + ?Sized + 'static>(
        dataset: Arc<D>,
        indices: Vec<usize>,
        batch_size: usize,
    ) -> Result<Self> {
        Self::with_options(dataset, indices, LoaderOptions::new(batch_size))
    }

    /// A loader over `indices` of `dataset` with explicit options.
    ///
    /// Errors when the batch size is 0 or an index is out of range.
    pub fn with_options<D: Dataset + ?Sized + 'static>(
        dataset: Arc<D>,
        indices: Vec<usize>,
        options: LoaderOptions,
    ) -> Result<Self> {
        Self::start(dataset, indices, options, None)
    }

    /// A loader whose samples must all have the shape `dims`
    /// (`[channels, height, width]`, e.g. the model's input), whatever
    /// [`Dataset::sample_dims`] says; samples of another shape are skipped
    /// with a reason naming their source and both shapes.
    ///
    /// Errors when the batch size is 0 or an index is out of range.
    pub fn with_expected_dims<D: Dataset + ?Sized + 'static>(
        dataset: Arc<D>,
        indices: Vec<usize>,
        options: LoaderOptions,
        dims: [usize; 3],
    ) -> Result<Self> {
        Self::start(dataset, indices, options, Some(dims))
    }

    fn start<D: Dataset + ?Sized + 'static>(
        dataset: Arc<D>,
        indices: Vec<usize>,
        options: LoaderOptions,
        dims: Option<[usize; 3]>,
    ) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(DataError::config("batch size must be at least 1"));
        }
        let len = dataset.len();
        if let Some(&index) = indices.iter().find(|&&i| i >= len) {
            return Err(DataError::IndexOutOfRange { index, len });
        }
        let (tx, rx) = sync_channel(options.prefetch.max(1) - 1);
        let requested = indices.len();
        let batch_size = options.batch_size;
        let worker = std::thread::Builder::new()
            .name("summit-data-loader".to_string())
            .spawn(move || produce(&*dataset, &indices, &options, dims, &tx))
            .map_err(|e| DataError::config(format!("cannot start the loader thread: {e}")))?;
        Ok(Self {
            rx: Some(rx),
            worker: Some(worker),
            skipped: Vec::new(),
            loaded: 0,
            requested,
            batch_size,
        })
    }

    /// Every sample skipped so far (in the batches yielded so far), in index-list order.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Number of samples skipped so far.
    pub fn skipped_count(&self) -> usize {
        self.skipped.len()
    }

    /// Number of samples yielded so far.
    pub fn loaded_count(&self) -> usize {
        self.loaded
    }

    /// Number of indices the loader was given.
    pub fn requested(&self) -> usize {
        self.requested
    }

    /// Number of batches the index list is cut into (`ceil(requested / batch_size)`);
    /// fewer are yielded when every sample of a batch is skipped.
    pub fn num_chunks(&self) -> usize {
        self.requested.div_ceil(self.batch_size)
    }
}

fn produce<D: Dataset + ?Sized>(
    dataset: &D,
    indices: &[usize],
    options: &LoaderOptions,
    dims: Option<[usize; 3]>,
    tx: &SyncSender<Batch>,
) {
    let mut expected = dims.or_else(|| dataset.sample_dims());
    for chunk in indices.chunks(options.batch_size) {
        let batch = match &options.pool {
            Some(pool) => pool.install(|| load_batch(dataset, chunk, &mut expected)),
            None => load_batch(dataset, chunk, &mut expected),
        };
        if tx.send(batch).is_err() {
            return; // the loader was dropped
        }
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        let mut carried: Vec<Skipped> = Vec::new();
        loop {
            let received = self.rx.as_ref().and_then(|rx| rx.recv().ok());
            let Some(mut batch) = received else {
                self.finish();
                return None;
            };
            self.skipped.extend_from_slice(&batch.skipped);
            if batch.is_empty() {
                carried.append(&mut batch.skipped);
                continue;
            }
            if !carried.is_empty() {
                carried.append(&mut batch.skipped);
                batch.skipped = carried;
            }
            self.loaded += batch.len();
            return Some(batch);
        }
    }
}

impl BatchLoader {
    /// Joins the worker; re-raises its panic (a bug, not bad data: per-sample
    /// panics are already caught) so that samples are never silently lost.
    fn finish(&mut self) {
        self.rx = None;
        if let Some(worker) = self.worker.take()
            && let Err(panic) = worker.join()
        {
            std::panic::resume_unwind(panic);
        }
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.rx = None; // unblocks a worker waiting to send
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The contiguous index range of shard `index` out of `count` over a dataset
/// of `len` samples: `[index·len/count, (index+1)·len/count)`.
///
/// The shards of `0..count` partition `0..len` exactly, in order, and their
/// sizes differ by at most one. Errors when `count` is 0 or `index >= count`.
///
/// ```
/// let parts: Vec<_> = (0..3).map(|i| summit_data::shard(i, 3, 10).unwrap()).collect();
/// assert_eq!(parts, vec![0..3, 3..6, 6..10]);
/// ```
pub fn shard(index: usize, count: usize, len: usize) -> Result<Range<usize>> {
    if count == 0 || index >= count {
        return Err(DataError::config(format!(
            "shard {index} of {count} does not exist (shards are numbered 0..{count})"
        )));
    }
    let at = |i: usize| -> usize {
        // u128 keeps i * len exact; the quotient is <= len, so it fits in usize.
        let v = (i as u128 * len as u128) / count as u128;
        usize::try_from(v).unwrap_or(len)
    };
    Ok(at(index)..at(index + 1))
}
