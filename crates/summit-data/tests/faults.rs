//! Regression tests for defects found by fault injection (issue 27): symbolic-link
//! loops in image folders, tiny files that decode to huge images, and an odd-sized
//! image that sorts first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::{GrayImage, RgbImage};
use summit_data::{
    BatchLoader, DataError, Dataset, DecodeLimits, Image, ImageFolder, LoaderOptions, Preprocess,
    SkipReason, decode_file, decode_file_with_limits, load_batch,
};

/// Writes a `w×h` RGB PNG whose pixels depend on `seed`.
fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
    let img = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x * 7) as u8, (y * 5) as u8 ^ seed])
    });
    img.save(path).unwrap();
}

/// Writes a `w×h` 8-bit grey PNG.
fn write_grey_png(path: &Path, w: u32, h: u32, seed: u8) {
    GrayImage::from_fn(w, h, |x, y| image::Luma([seed ^ (x + y) as u8]))
        .save(path)
        .unwrap();
}

/// One PNG chunk: length, type, data, CRC-32 of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

/// A valid, all-black 1-bit greyscale PNG of `w×h` pixels: a few tens of KB
/// for 20000×20000, which decodes to 400 MB of 8-bit grey (1.2 GB as RGB).
fn one_bit_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[1, 0, 0, 0, 0]); // bit depth 1, grey, deflate, filter 0, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    let row = vec![0u8; 1 + (w as usize).div_ceil(8)]; // filter byte + packed bits
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    for _ in 0..h {
        z.write_all(&row).unwrap();
    }
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

// ---------------------------------------------------------------------------
// 4. symbolic-link loops and links across classes
// ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn symlink_loops_and_cross_class_links_count_each_image_once() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("data");
    let (a, b) = (root.join("a"), root.join("b"));
    std::fs::create_dir_all(a.join("sub")).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    for i in 0..3 {
        write_png(&a.join(format!("a{i}.png")), 4, 4, i);
    }
    write_png(&a.join("sub/a_sub.png"), 4, 4, 9);
    for i in 0..2 {
        write_png(&b.join(format!("b{i}.png")), 4, 4, 50 + i);
    }
    // outside the dataset: a directory of 2 images linked from both classes
    let ext = tmp.path().join("external");
    std::fs::create_dir(&ext).unwrap();
    write_png(&ext.join("e0.png"), 4, 4, 100);
    write_png(&ext.join("e1.png"), 4, 4, 101);

    symlink("..", a.join("up_to_root")).unwrap(); // the dataset root
    symlink("../b", a.join("to_b")).unwrap(); // another class
    symlink(".", a.join("sub/self")).unwrap(); // a loop inside the class
    symlink("..", a.join("sub/parent")).unwrap(); // the class itself, again
    symlink("a0.png", a.join("again_a0.png")).unwrap(); // a second path to a0.png
    symlink("../b/b0.png", a.join("stolen_b0.png")).unwrap(); // another class's image
    symlink(&ext, a.join("ext_link")).unwrap(); // outside the root: listed once...
    symlink(&ext, b.join("ext_link")).unwrap(); // ...not a second time under b
    symlink("../..", b.join("up_up")).unwrap(); // a directory that contains the root
    symlink(ext.join("e0.png"), b.join("e0_again.png")).unwrap(); // a file already listed

    let d = ImageFolder::open(&root, Preprocess::lucid()).unwrap();
    assert_eq!(d.class_names(), ["a", "b"]);
    // a: a0..a2, sub/a_sub, ext_link/e0, ext_link/e1; b: b0, b1
    assert_eq!(d.class_counts(), [6, 2], "{:#?}", d.paths());
    let rel: Vec<String> = d
        .paths()
        .iter()
        .map(|p| {
            p.strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(
        rel,
        [
            "a/a0.png",
            "a/a1.png",
            "a/a2.png",
            "a/ext_link/e0.png",
            "a/ext_link/e1.png",
            "a/sub/a_sub.png",
            "b/b0.png",
            "b/b1.png",
        ]
    );
    let skipped: Vec<(String, SkipReason)> = d
        .skipped_entries()
        .iter()
        .map(|s| {
            (
                s.path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
                s.reason,
            )
        })
        .collect();
    for (path, reason) in [
        ("a/up_to_root", SkipReason::OutsideClass),
        ("a/to_b", SkipReason::OutsideClass),
        ("a/sub/self", SkipReason::Repeated),
        ("a/sub/parent", SkipReason::Repeated),
        ("a/again_a0.png", SkipReason::Repeated),
        ("a/stolen_b0.png", SkipReason::OutsideClass),
        ("b/ext_link", SkipReason::Repeated),
        ("b/up_up", SkipReason::OutsideClass),
        ("b/e0_again.png", SkipReason::Repeated),
    ] {
        assert!(
            skipped.contains(&(path.to_string(), reason)),
            "{path} not skipped as {reason:?}: {skipped:#?}"
        );
    }
    assert_eq!(skipped.len(), 9, "{skipped:#?}");
    // The report names the link and where it points.
    let msg = d.skipped_entries()[0].to_string();
    assert!(msg.contains("a/") && msg.contains("->"), "{msg}");
    // Every listed image loads (none is a duplicate of another).
    let mut seen = std::collections::HashSet::new();
    for i in 0..d.len() {
        let canon = std::fs::canonicalize(d.path(i).unwrap()).unwrap();
        assert!(seen.insert(canon), "{} listed twice", d.source(i));
        assert!(d.load(i).is_ok());
    }
}

#[cfg(unix)]
#[test]
fn class_directory_linking_to_the_root_or_another_class_is_empty() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    std::fs::create_dir(root.join("cat")).unwrap();
    for i in 0..4 {
        write_png(&root.join(format!("cat/{i}.png")), 4, 4, i);
    }
    symlink(".", root.join("all")).unwrap(); // a "class" that is the root itself
    symlink("cat", root.join("kitten")).unwrap(); // a second name for class cat
    let d = ImageFolder::open(root, Preprocess::lucid()).unwrap();
    assert_eq!(d.class_names(), ["all", "cat", "kitten"]);
    assert_eq!(d.class_counts(), [0, 4, 0]);
    let reasons: Vec<SkipReason> = d.skipped_entries().iter().map(|s| s.reason).collect();
    assert_eq!(reasons, [SkipReason::OutsideClass, SkipReason::Repeated]);
}

// ---------------------------------------------------------------------------
// 5. tiny files that decode to huge images
// ---------------------------------------------------------------------------

#[test]
fn huge_decoded_size_is_a_per_file_error_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("bomb.png");
    std::fs::write(&big, one_bit_png(20000, 20000)).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() < 200_000);
    let started = Instant::now();
    let err = decode_file(&big).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "slow: decoded?");
    let msg = err.to_string();
    assert!(matches!(err, DataError::Decode { .. }), "{msg}");
    assert!(msg.contains("bomb.png"), "{msg}");
    assert!(msg.contains("20000×20000"), "{msg}");
    assert!(msg.contains("16384"), "{msg}");

    let wide = tmp.path().join("wide.png");
    GrayImage::new(20000, 1).save(&wide).unwrap();
    assert!(std::fs::metadata(&wide).unwrap().len() < 1000);
    let msg = decode_file(&wide).unwrap_err().to_string();
    assert!(msg.contains("wide.png") && msg.contains("20000×1"), "{msg}");

    // Within the side limits but over the memory limit.
    let limits = DecodeLimits {
        max_alloc: 1 << 20,
        ..DecodeLimits::default()
    };
    let tall = tmp.path().join("tall.png");
    std::fs::write(&tall, one_bit_png(2000, 2000)).unwrap();
    let msg = decode_file_with_limits(&tall, &limits)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("tall.png") && msg.contains("MiB"), "{msg}");
    assert!(decode_file(&tall).is_ok());
}

#[test]
fn resizing_an_extreme_aspect_ratio_is_a_per_file_error() {
    // 16000×1 is within the decode limits, but resizing its shorter side to 256
    // would make a 4096000×256 image (3 GB as RGB).
    let tmp = tempfile::tempdir().unwrap();
    let class = tmp.path().join("c");
    std::fs::create_dir(&class).unwrap();
    GrayImage::new(16000, 1)
        .save(class.join("line.png"))
        .unwrap();
    write_png(&class.join("ok.png"), 300, 260, 3);
    let d = ImageFolder::open(tmp.path(), Preprocess::Torchvision).unwrap();
    let started = Instant::now();
    let msg = d.load(0).unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(2), "slow: resized?");
    assert!(msg.contains("line.png") && msg.contains("MiB"), "{msg}");
    assert!(d.load(1).is_ok());
}

#[test]
fn loader_skips_and_counts_a_decompression_bomb() {
    let tmp = tempfile::tempdir().unwrap();
    let class = tmp.path().join("c");
    std::fs::create_dir(&class).unwrap();
    write_png(&class.join("a.png"), 40, 30, 1);
    std::fs::write(class.join("b_bomb.png"), one_bit_png(20000, 20000)).unwrap();
    GrayImage::new(20000, 1)
        .save(class.join("c_wide.png"))
        .unwrap();
    write_png(&class.join("d.png"), 40, 30, 2);
    let d = Arc::new(ImageFolder::open(tmp.path(), Preprocess::Torchvision).unwrap());
    let started = Instant::now();
    let mut loader = BatchLoader::new(d.clone(), (0..d.len()).collect(), 2).unwrap();
    let loaded: Vec<usize> = loader.by_ref().flat_map(|b| b.indices).collect();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(loaded, [0, 3]);
    assert_eq!(loader.skipped_count(), 2);
    let s = loader.skipped();
    assert!(s[0].reason.contains("b_bomb.png") && s[0].reason.contains("over the limit"));
    assert!(s[1].reason.contains("c_wide.png") && s[1].reason.contains("over the limit"));

    // The limits are configurable per dataset.
    let strict = ImageFolder::open(tmp.path(), Preprocess::Torchvision)
        .unwrap()
        .with_decode_limits(DecodeLimits {
            max_width: 39,
            ..DecodeLimits::default()
        });
    assert_eq!(strict.decode_limits().max_width, 39);
    let msg = strict.load(0).unwrap_err().to_string();
    assert!(msg.contains("40×30") && msg.contains("a.png"), "{msg}");
}

// ---------------------------------------------------------------------------
// 8. an odd-sized image that sorts first
// ---------------------------------------------------------------------------

/// `class/!tiny.png` (1×1) sorts before `n0.png`..: fashion-MNIST style greyscale
/// at native size.
fn tiny_first_folder(root: &Path) {
    for class in ["shirt", "shoe"] {
        let dir = root.join(class);
        std::fs::create_dir(&dir).unwrap();
        for i in 0..5 {
            write_grey_png(&dir.join(format!("n{i}.png")), 28, 28, i);
        }
    }
    write_grey_png(&root.join("shirt/!tiny.png"), 1, 1, 0);
}

#[test]
fn odd_sized_first_image_is_skipped_not_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    tiny_first_folder(tmp.path());
    let d = Arc::new(ImageFolder::open(tmp.path(), Preprocess::fashion_mnist()).unwrap());
    assert!(d.source(0).ends_with("!tiny.png"));
    assert_eq!(d.sample_dims(), Some([1, 28, 28]));
    for bs in [1, 4, 32] {
        let mut loader = BatchLoader::new(d.clone(), (0..d.len()).collect(), bs).unwrap();
        let batches: Vec<_> = loader.by_ref().collect();
        for b in &batches {
            assert_eq!(b.dims, [b.len(), 1, 28, 28], "batch size {bs}");
        }
        let loaded: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_eq!(loaded, (1..11).collect::<Vec<_>>(), "batch size {bs}");
        assert_eq!(loader.skipped_count(), 1);
        let s = &loader.skipped()[0];
        assert_eq!(s.index, 0);
        assert!(s.reason.contains("!tiny.png"), "{s}");
        assert!(s.reason.contains("[1, 1, 1]"), "{s}");
        assert!(s.reason.contains("[1, 28, 28]"), "{s}");
    }
}

/// Sample `i` is a `1×2×2` image, except those in `odd`, which are `1×1×1`;
/// the dataset does not declare its sample size.
struct Undeclared {
    labels: Vec<usize>,
    classes: Vec<String>,
    odd: Vec<usize>,
}

impl Dataset for Undeclared {
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn labels(&self) -> &[usize] {
        &self.labels
    }
    fn source(&self, index: usize) -> String {
        format!("undeclared#{index}")
    }
    fn load(&self, index: usize) -> summit_data::Result<Image> {
        let side = if self.odd.contains(&index) { 1 } else { 2 };
        Ok(Image {
            data: vec![index as f32; side * side],
            channels: 1,
            height: side,
            width: side,
        })
    }
    fn sample_dims(&self) -> Option<[usize; 3]> {
        None
    }
}

fn undeclared(n: usize, odd: Vec<usize>) -> Undeclared {
    Undeclared {
        labels: vec![0; n],
        classes: vec!["x".into()],
        odd,
    }
}

#[test]
fn undeclared_size_is_the_most_common_one_of_the_first_batch() {
    let d = undeclared(6, vec![0, 4]);
    let mut dims = None;
    let b = load_batch(&d, &[0, 1, 2, 3], &mut dims);
    assert_eq!(dims, Some([1, 2, 2]));
    assert_eq!(b.indices, [1, 2, 3]);
    assert_eq!(b.skipped.len(), 1);
    assert!(
        b.skipped[0].reason.contains("undeclared#0"),
        "{}",
        b.skipped[0]
    );
    assert!(
        b.skipped[0].reason.contains("[1, 1, 1]"),
        "{}",
        b.skipped[0]
    );
}

#[test]
fn caller_can_give_the_expected_size() {
    // Batch size 1: the first batch alone cannot outvote the odd first sample,
    // but the caller (who knows the model's input) can.
    let d = Arc::new(undeclared(5, vec![0, 3]));
    let mut loader =
        BatchLoader::with_expected_dims(d, (0..5).collect(), LoaderOptions::new(1), [1, 2, 2])
            .unwrap();
    let loaded: Vec<usize> = loader.by_ref().flat_map(|b| b.indices).collect();
    assert_eq!(loaded, [1, 2, 4]);
    let skipped: Vec<usize> = loader.skipped().iter().map(|s| s.index).collect();
    assert_eq!(skipped, [0, 3]);
}
