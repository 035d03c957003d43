//! Fashion-MNIST IDX reading: tiny IDX files written by the test (raw and
//! gzip), error cases, and the real test set when it is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use summit_data::{
    BatchLoader, DataError, Dataset, FASHION_MNIST_CLASSES, FashionMnist, Preprocess, read_idx,
};

fn idx_bytes(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = magic.to_be_bytes().to_vec();
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8], gzip: bool) -> PathBuf {
    let path = dir.join(name);
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(bytes).unwrap();
        std::fs::write(&path, enc.finish().unwrap()).unwrap();
    } else {
        std::fs::write(&path, bytes).unwrap();
    }
    path
}

/// 3 images of 4 rows × 5 columns; the pixel at flat position `k` is `(37·k + 11) mod 256`.
fn pixels() -> Vec<u8> {
    (0..3 * 4 * 5)
        .map(|k: u32| ((k * 37 + 11) % 256) as u8)
        .collect()
}

fn tiny(dir: &Path, gzip: bool) -> (PathBuf, PathBuf) {
    let ext = if gzip { ".gz" } else { "" };
    let images = write(
        dir,
        &format!("images{ext}"),
        &idx_bytes(2051, &[3, 4, 5], &pixels()),
        gzip,
    );
    let labels = write(
        dir,
        &format!("labels{ext}"),
        &idx_bytes(2049, &[3], &[9, 0, 4]),
        gzip,
    );
    (images, labels)
}

#[test]
fn reads_raw_and_gzipped_idx() {
    let tmp = tempfile::tempdir().unwrap();
    for gzip in [false, true] {
        let (images, labels) = tiny(tmp.path(), gzip);
        let d = FashionMnist::open(&images, &labels).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!((d.rows(), d.cols()), (4, 5));
        assert_eq!(d.labels(), [9, 0, 4]);
        assert_eq!(d.class_names(), FASHION_MNIST_CLASSES);
        assert_eq!(d.class_names()[9], "Ankle boot");
        assert_eq!(d.raw_images(), pixels());
        assert_eq!(d.raw_image(1).unwrap(), &pixels()[20..40]);
        assert!(d.raw_image(3).is_none());
        assert_eq!(d.sample_dims(), Some([1, 4, 5]));
        let expected_source = format!("{}#2", images.file_name().unwrap().to_string_lossy());
        assert_eq!(d.source(2), expected_source);
        let img = d.load(1).unwrap();
        assert_eq!(img.dims(), [1, 4, 5]);
        for (got, &p) in img.data.iter().zip(&pixels()[20..40]) {
            let want = (f64::from(p) / 255.0 - 0.2860) / 0.3530;
            assert!((f64::from(*got) - want).abs() < 1e-5, "{got} vs {want}");
        }
        assert!(matches!(
            d.load(3),
            Err(DataError::IndexOutOfRange { index: 3, len: 3 })
        ));
    }
}

#[test]
fn rgb_presets_replicate_the_grey_channel() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = tiny(tmp.path(), false);
    let d = FashionMnist::open(&images, &labels)
        .unwrap()
        .with_preprocess(Preprocess::lucid())
        .unwrap();
    assert_eq!(d.sample_dims(), Some([3, 224, 224]));
    let img = d.load(0).unwrap();
    assert_eq!(img.dims(), [3, 224, 224]);
    let plane = 224 * 224;
    assert_eq!(img.data[..plane], img.data[plane..2 * plane]);
    // Torchvision's Resize(256) keeps the 4:5 aspect ratio: 256×320, cropped to 224.
    let d = d.with_preprocess(Preprocess::Torchvision).unwrap();
    assert_eq!(d.load(2).unwrap().dims(), [3, 224, 224]);
    let batch = BatchLoader::new(Arc::new(d), vec![0, 1, 2], 2)
        .unwrap()
        .next()
        .unwrap();
    assert_eq!(batch.dims, [2, 3, 224, 224]);
}

fn open_err(images: &[u8], labels: &[u8], gzip: bool) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let i = write(tmp.path(), "img.idx", images, gzip);
    let l = write(tmp.path(), "lab.idx", labels, gzip);
    FashionMnist::open(i, l).unwrap_err().to_string()
}

#[test]
fn rejects_bad_files_and_names_them() {
    let good_images = idx_bytes(2051, &[3, 4, 5], &pixels());
    let good_labels = idx_bytes(2049, &[3], &[1, 2, 3]);
    for gzip in [false, true] {
        // files swapped: wrong magic numbers
        let e = open_err(&good_labels, &good_images, gzip);
        assert!(
            e.contains("img.idx") && e.contains("2049") && e.contains("2051"),
            "{e}"
        );
        let e = open_err(&good_images, &idx_bytes(2051, &[3, 1, 1], &[0; 3]), gzip);
        assert!(e.contains("lab.idx") && e.contains("2049"), "{e}");
        // not IDX at all
        let e = open_err(b"\x01\x02\x03\x04\x05", &good_labels, gzip);
        assert!(e.contains("img.idx") && e.contains("bad IDX magic"), "{e}");
        // truncated pixels
        let e = open_err(&good_images[..good_images.len() - 1], &good_labels, gzip);
        assert!(e.contains("img.idx") && e.contains("truncated"), "{e}");
        // truncated header
        let e = open_err(&good_images[..10], &good_labels, gzip);
        assert!(
            e.contains("img.idx") && e.contains("truncated IDX header"),
            "{e}"
        );
        // trailing bytes
        let mut long = good_labels.clone();
        long.push(0);
        let e = open_err(&good_images, &long, gzip);
        assert!(e.contains("lab.idx") && e.contains("over-long"), "{e}");
        // counts differ
        let e = open_err(&good_images, &idx_bytes(2049, &[2], &[1, 2]), gzip);
        assert!(
            e.contains("lab.idx") && e.contains("2 labels") && e.contains("3 images"),
            "{e}"
        );
        // label out of range
        let e = open_err(&good_images, &idx_bytes(2049, &[3], &[1, 10, 3]), gzip);
        assert!(
            e.contains("lab.idx") && e.contains("label 10 of sample 1"),
            "{e}"
        );
    }
    // a gzip header followed by garbage
    let e = open_err(b"\x1f\x8b\x08\x00garbage", &good_labels, false);
    assert!(e.contains("img.idx") && e.contains("gzip"), "{e}");
    // missing file
    let tmp = tempfile::tempdir().unwrap();
    let e = FashionMnist::open(tmp.path().join("none.gz"), tmp.path().join("x")).unwrap_err();
    assert!(
        matches!(e, DataError::Io { .. }) && e.to_string().contains("none.gz"),
        "{e}"
    );
}

#[test]
fn read_idx_returns_header_and_data() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "a.gz",
        &idx_bytes(0x0802, &[2, 3], &[1, 2, 3, 4, 5, 6]),
        true,
    );
    let a = read_idx(&p).unwrap();
    assert_eq!(
        (a.magic, a.dims.clone(), a.data.clone()),
        (0x0802, vec![2, 3], vec![1, 2, 3, 4, 5, 6])
    );
}

/// The real test set, when installed (skipped with a message otherwise).
#[test]
fn real_fashion_mnist_test_set() {
    let dir = Path::new("/usr/share/datasets/fashion-mnist");
    let images = dir.join("t10k-images-idx3-ubyte.gz");
    let labels = dir.join("t10k-labels-idx1-ubyte.gz");
    if !images.exists() || !labels.exists() {
        println!("skipped: {} not found", images.display());
        return;
    }
    let d = FashionMnist::open(&images, &labels).unwrap();
    assert_eq!(d.len(), 10_000);
    assert_eq!((d.rows(), d.cols()), (28, 28));
    // The test set is balanced: 1000 images per class.
    let mut counts = [0usize; 10];
    for &l in d.labels() {
        counts[l] += 1;
    }
    assert_eq!(counts, [1000; 10]);
    assert_eq!(d.raw_images().len(), 10_000 * 784);
    // Figures from numpy over the same file (gzip.open + np.frombuffer).
    assert_eq!(d.labels()[..5], [9, 2, 1, 1, 6]);
    let sum = |b: &[u8]| b.iter().map(|&v| u64::from(v)).sum::<u64>();
    assert_eq!(sum(d.raw_image(0).unwrap()), 33_456);
    assert_eq!(sum(d.raw_images()), 573_469_082);
    let img = d.load(0).unwrap();
    assert_eq!(img.dims(), [1, 28, 28]);
    let lo = (0.0 - 0.2860) / 0.3530;
    let hi = (1.0 - 0.2860) / 0.3530;
    assert!(
        img.data
            .iter()
            .all(|&v| (lo - 1e-5..=hi + 1e-5).contains(&f64::from(v)))
    );
}
