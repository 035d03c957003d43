//! BatchLoader behaviour with synthetic datasets: order, panics, prefetch
//! bound, early drop, shards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use summit_data::{BatchLoader, DataError, Dataset, Image, LoaderOptions, load_batch, shard};

/// Sample `i` is a 1×2×2 image filled with `i`; samples in `bad` fail, in `panics` panic.
struct Synthetic {
    labels: Vec<usize>,
    classes: Vec<String>,
    bad: Vec<usize>,
    panics: Vec<usize>,
    loads: AtomicUsize,
}

impl Synthetic {
    fn new(n: usize, bad: Vec<usize>, panics: Vec<usize>) -> Self {
        Self {
            labels: (0..n).map(|i| i % 3).collect(),
            classes: vec!["a".into(), "b".into(), "c".into()],
            bad,
            panics,
            loads: AtomicUsize::new(0),
        }
    }
}

impl Dataset for Synthetic {
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        format!("synthetic#{index}")
    }
    fn load(&self, index: usize) -> summit_data::Result<Image> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        if self.panics.contains(&index) {
            panic!("boom at {index}");
        }
        if self.bad.contains(&index) {
            return Err(DataError::Decode {
                item: self.source(index),
                reason: "bad on purpose".into(),
            });
        }
        Ok(Image {
            data: vec![index as f32; 4],
            channels: 1,
            height: 2,
            width: 2,
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        Some([1, 2, 2])
    }
}

#[test]
fn batches_follow_the_index_list() {
    let d = Arc::new(Synthetic::new(10, vec![], vec![]));
    let order = vec![9, 2, 2, 5, 0, 7, 1];
    let batches: Vec<_> = BatchLoader::new(d, order.clone(), 3).unwrap().collect();
    assert_eq!(batches.len(), 3);
    assert_eq!(batches[0].dims, [3, 1, 2, 2]);
    assert_eq!(batches[2].dims, [1, 1, 2, 2]);
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(indices, order);
    let values: Vec<f32> = batches.iter().flat_map(|b| b.images.clone()).collect();
    let want: Vec<f32> = order.iter().flat_map(|&i| [i as f32; 4]).collect();
    assert_eq!(values, want);
    let labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, order.iter().map(|i| i % 3).collect::<Vec<_>>());
    assert_eq!(batches[1].image(1).unwrap(), [0.0; 4]);
    assert!(batches[1].image(3).is_none());
}

#[test]
fn panics_and_errors_become_skipped_records() {
    let d = Arc::new(Synthetic::new(9, vec![1, 3, 4, 5], vec![7]));
    let mut loader = BatchLoader::new(d, (0..9).collect(), 3).unwrap();
    let batches: Vec<_> = loader.by_ref().collect();
    // chunk [3,4,5] is all bad: not yielded, its records travel with the next batch
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].indices, [0, 2]);
    assert_eq!(batches[1].indices, [6, 8]);
    let sk = |b: &summit_data::Batch| b.skipped.iter().map(|s| s.index).collect::<Vec<_>>();
    assert_eq!(sk(&batches[0]), [1]);
    assert_eq!(sk(&batches[1]), [3, 4, 5, 7]);
    let all: Vec<usize> = loader.skipped().iter().map(|s| s.index).collect();
    assert_eq!(all, [1, 3, 4, 5, 7]);
    let panicked = &loader.skipped()[4];
    assert_eq!(panicked.source, "synthetic#7");
    assert!(
        panicked.reason.contains("panicked") && panicked.reason.contains("boom at 7"),
        "{panicked}"
    );
    assert!(loader.skipped()[0].reason.contains("bad on purpose"));
    assert_eq!(
        loader.loaded_count() + loader.skipped_count(),
        loader.requested()
    );
    assert_eq!(loader.num_chunks(), 3);
}

#[test]
fn all_skipped_at_the_end_still_reported() {
    let d = Arc::new(Synthetic::new(4, vec![2, 3], vec![]));
    let mut loader = BatchLoader::new(d, (0..4).collect(), 2).unwrap();
    assert_eq!(loader.next().unwrap().indices, [0, 1]);
    assert!(loader.next().is_none());
    assert_eq!(loader.skipped_count(), 2);
    assert!(loader.next().is_none());
}

#[test]
fn invalid_arguments_are_errors() {
    let d = Arc::new(Synthetic::new(4, vec![], vec![]));
    let e = BatchLoader::new(d.clone(), vec![0, 4], 2).unwrap_err();
    assert!(
        matches!(e, DataError::IndexOutOfRange { index: 4, len: 4 }),
        "{e}"
    );
    assert!(BatchLoader::new(d.clone(), vec![0], 0).is_err());
    assert_eq!(BatchLoader::new(d, vec![], 2).unwrap().count(), 0);
}

#[test]
fn prefetch_is_bounded() {
    for prefetch in [1, 2] {
        let d = Arc::new(Synthetic::new(100, vec![], vec![]));
        let options = LoaderOptions {
            batch_size: 4,
            prefetch,
            pool: None,
        };
        let mut loader = BatchLoader::with_options(d.clone(), (0..100).collect(), options).unwrap();
        let first = loader.next().unwrap();
        assert_eq!(first.indices, [0, 1, 2, 3]);
        // Give the background thread ample time to run ahead as far as it may.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let loads = d.loads.load(Ordering::SeqCst);
        // the batch held by the consumer + `prefetch` decoded ahead
        assert!(
            loads <= 4 * (1 + prefetch),
            "prefetch {prefetch}: {loads} loads"
        );
        assert!(loads >= 8, "nothing was prefetched: {loads} loads");
        drop(loader); // must not hang
        let after = d.loads.load(Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(
            d.loads.load(Ordering::SeqCst),
            after,
            "worker kept running after drop"
        );
    }
}

#[test]
fn load_batch_is_synchronous_and_sets_dims() {
    let d = Synthetic::new(5, vec![0], vec![]);
    let mut dims = None;
    let b = load_batch(&d, &[0, 1, 2], &mut dims);
    assert_eq!(dims, Some([1, 2, 2]));
    assert_eq!(b.dims, [2, 1, 2, 2]);
    assert_eq!(b.skipped.len(), 1);
}

#[test]
fn shards_partition_exactly() {
    for len in 0..40 {
        for count in 1..9 {
            let parts: Vec<_> = (0..count).map(|i| shard(i, count, len).unwrap()).collect();
            let joined: Vec<usize> = parts.iter().flat_map(|r| r.clone()).collect();
            assert_eq!(
                joined,
                (0..len).collect::<Vec<_>>(),
                "len {len} count {count}"
            );
            let sizes: Vec<usize> = parts.iter().map(|r| r.len()).collect();
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
        }
    }
    assert!(shard(0, 0, 10).is_err());
    assert!(shard(3, 3, 10).is_err());
    assert_eq!(shard(1, 2, usize::MAX).unwrap(), usize::MAX / 2..usize::MAX);
}
