//! Every image's top-5 predictions, written as the pass streams (SPEC §5.1): `predictions.bin`.
//!
//! The explorer's dataset browser filters every image of a dataset by predicted class,
//! correctness and confidence without a second pass over the images; this file is what it
//! reads. Layout (little-endian):
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SUMMITP1` |
//! | 4 | `k` (u32, [`TOP_K`]) |
//! | 4 | the model's class count (u32, at most [`MAX_CLASSES`]) |
//! | 8 | the dataset's image count `n` (u64) |
//! | `n` × [`RECORD_BYTES`] | record `i` is dataset image `i` |
//!
//! A record is `k` pairs (class + 1 as u16, probability as u16 = round(p × 65535)), best first;
//! ties go to the lower class (SPEC §1). Class 0 in the file (a zero record) marks a slot
//! the run did not fill: another shard's image, a skipped sample, one outside `--limit` or
//! `--classes`. A model with fewer than `k` classes leaves the last pairs zero. 20 bytes per
//! image: 25.6 MB for ImageNet's 1.28M images, written by positioned writes as batches
//! arrive, so the pass holds nothing per image; shards fill disjoint slots and
//! [`merge_predictions`] overlays them.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{ExportError, Result};

/// The file name of the predictions in an output directory.
pub const PREDICTIONS_FILE: &str = "predictions.bin";

/// How many classes each image keeps (its top 5).
pub const TOP_K: usize = 5;

/// Bytes per image.
pub const RECORD_BYTES: usize = TOP_K * 4;

/// The most classes the file's 16-bit class field holds.
pub const MAX_CLASSES: usize = u16::MAX as usize - 1;

const MAGIC: &[u8; 8] = b"SUMMITP1";
const HEADER_BYTES: u64 = 24;

/// One image's top classes with their probabilities, best first.
pub type TopK = Vec<(usize, f32)>;

/// The `k` most probable classes of one image's class probabilities `probs`, best first; ties
/// go to the lower class (SPEC §1).
///
/// ```
/// let top = summit_export::top_k(&[0.1, 0.4, 0.1, 0.4], 3);
/// assert_eq!(top, vec![(1, 0.4), (3, 0.4), (0, 0.1)]);
/// ```
pub fn top_k(probs: &[f32], k: usize) -> TopK {
    // one pass keeping the best k in order (a thousand classes per image: no sort of them all)
    let mut best: TopK = Vec::with_capacity(k + 1);
    if k == 0 {
        return best;
    }
    for (c, &p) in probs.iter().enumerate() {
        if best.len() == k && best[k - 1].1.total_cmp(&p).is_ge() {
            continue;
        }
        // after every kept class at least as probable: those tie with a lower class
        let at = best.partition_point(|&(_, q)| q.total_cmp(&p).is_ge());
        best.insert(at, (c, p));
        best.truncate(k);
    }
    best
}

fn quantize(p: f32) -> u16 {
    // clamped first, so the cast cannot saturate unexpectedly; NaN (refused before) maps to 0
    (f64::from(p.clamp(0.0, 1.0)) * 65535.0).round() as u16
}

fn encode(probs: &[f32]) -> [u8; RECORD_BYTES] {
    let mut rec = [0u8; RECORD_BYTES];
    for (slot, (c, p)) in top_k(probs, TOP_K).into_iter().enumerate() {
        // c < MAX_CLASSES, checked when the log was made
        let class = (c as u16).saturating_add(1);
        rec[slot * 4..slot * 4 + 2].copy_from_slice(&class.to_le_bytes());
        rec[slot * 4 + 2..slot * 4 + 4].copy_from_slice(&quantize(p).to_le_bytes());
    }
    rec
}

fn decode(rec: &[u8]) -> Option<TopK> {
    let mut out = Vec::with_capacity(TOP_K);
    for pair in rec.chunks_exact(4) {
        let class = u16::from_le_bytes([pair[0], pair[1]]);
        if class == 0 {
            break;
        }
        let q = u16::from_le_bytes([pair[2], pair[3]]);
        out.push((usize::from(class - 1), f32::from(q) / 65535.0));
    }
    (!out.is_empty()).then_some(out)
}

fn header(classes: usize, images: u64) -> [u8; HEADER_BYTES as usize] {
    let mut h = [0u8; HEADER_BYTES as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&(TOP_K as u32).to_le_bytes());
    h[12..16].copy_from_slice(&(classes as u32).to_le_bytes());
    h[16..24].copy_from_slice(&images.to_le_bytes());
    h
}

/// Reads and checks a header: `(classes, images)`.
fn read_header(file: &mut File, path: &Path) -> Result<(usize, u64)> {
    let fail = |reason: String| ExportError::Predictions {
        path: path.to_path_buf(),
        reason,
    };
    let mut h = [0u8; HEADER_BYTES as usize];
    file.seek(SeekFrom::Start(0))
        .and_then(|_| file.read_exact(&mut h))
        .map_err(|e| fail(format!("cannot read the header: {e}")))?;
    if &h[..8] != MAGIC {
        return Err(fail(
            "not a summit-rs predictions file (wrong magic bytes)".into(),
        ));
    }
    let k = u32::from_le_bytes([h[8], h[9], h[10], h[11]]) as usize;
    if k != TOP_K {
        return Err(fail(format!(
            "keeps the top {k}, this build reads the top {TOP_K}"
        )));
    }
    let classes = u32::from_le_bytes([h[12], h[13], h[14], h[15]]) as usize;
    let mut n = [0u8; 8];
    n.copy_from_slice(&h[16..24]);
    let images = u64::from_le_bytes(n);
    let want = images
        .checked_mul(RECORD_BYTES as u64)
        .and_then(|b| b.checked_add(HEADER_BYTES))
        .ok_or_else(|| fail(format!("an image count of {images} is impossible")))?;
    let len = file
        .metadata()
        .map_err(|e| fail(format!("cannot read its size: {e}")))?
        .len();
    if len != want {
        return Err(fail(format!(
            "is {len} bytes, but {images} images of {RECORD_BYTES} bytes after the \
             {HEADER_BYTES}-byte header make {want}: truncated or not finished"
        )));
    }
    Ok((classes, images))
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io { op, path, source }
}

/// The file a pass writes its images' predictions into as batches arrive: positioned writes of
/// fixed-size records, so the order of batches, a resumed run and a shard split all give the
/// same bytes. [`copy_to`](Self::copy_to) puts it into an output.
#[derive(Debug)]
pub struct PredictionLog {
    file: File,
    path: PathBuf,
    classes: usize,
    images: u64,
}

impl PredictionLog {
    fn check_classes(classes: usize, path: &Path) -> Result<()> {
        if classes == 0 || classes > MAX_CLASSES {
            return Err(ExportError::Predictions {
                path: path.to_path_buf(),
                reason: format!(
                    "a model of {classes} classes: the file holds 1 to {MAX_CLASSES} classes"
                ),
            });
        }
        Ok(())
    }

    fn start(mut file: File, path: PathBuf, classes: usize, images: u64) -> Result<Self> {
        Self::check_classes(classes, &path)?;
        let len = images
            .checked_mul(RECORD_BYTES as u64)
            .and_then(|b| b.checked_add(HEADER_BYTES))
            .ok_or_else(|| ExportError::Predictions {
                path: path.clone(),
                reason: format!("{images} images are too many"),
            })?;
        file.set_len(0)
            .and_then(|()| file.write_all(&header(classes, images)))
            .and_then(|()| file.set_len(len))
            .map_err(io_err("writing", &path))?;
        Ok(Self {
            file,
            path,
            classes,
            images,
        })
    }

    /// A new log at `path` (replacing any file there; its directory is created) for a dataset
    /// of `images` images and a model of `classes` classes, every slot empty.
    pub fn create(path: &Path, classes: usize, images: u64) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::atomic::create_dir(dir)?;
        }
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err("creating", path))?;
        Self::start(file, path.to_path_buf(), classes, images)
    }

    /// A new log in an anonymous temporary file (gone when the log is dropped), for a pass
    /// that keeps no checkpoint.
    pub fn temporary(classes: usize, images: u64) -> Result<Self> {
        let path = std::env::temp_dir();
        let file = tempfile::tempfile().map_err(io_err("creating a temporary file in", &path))?;
        Self::start(
            file,
            path.join("(the predictions of the pass)"),
            classes,
            images,
        )
    }

    /// Reopens the log at `path` to go on writing (a resumed pass): its header must say
    /// `classes` classes and `images` images, and its length must match.
    pub fn open(path: &Path, classes: usize, images: u64) -> Result<Self> {
        let mut file = File::options()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err("opening", path))?;
        let (c, n) = read_header(&mut file, path)?;
        if (c, n) != (classes, images) {
            return Err(ExportError::Predictions {
                path: path.to_path_buf(),
                reason: format!(
                    "belongs to a run of {c} classes over {n} images, this one has {classes} \
                     classes over {images} images"
                ),
            });
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            classes,
            images,
        })
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records the top [`TOP_K`] of images `ids`, whose class probabilities are the rows of
    /// `probs` (`[ids.len(), classes]`). Writing an image again writes the same bytes.
    pub fn record(&mut self, ids: &[u64], probs: &[f32]) -> Result<()> {
        let k = self.classes;
        if probs.len() != ids.len() * k {
            return Err(ExportError::Predictions {
                path: self.path.clone(),
                reason: format!(
                    "{} probabilities for {} images of {k} classes",
                    probs.len(),
                    ids.len()
                ),
            });
        }
        let mut rows: Vec<(u64, &[f32])> = ids.iter().copied().zip(probs.chunks_exact(k)).collect();
        rows.sort_by_key(|r| r.0);
        if let Some(&(id, _)) = rows.iter().find(|r| r.0 >= self.images) {
            return Err(ExportError::Predictions {
                path: self.path.clone(),
                reason: format!("image {id} is beyond the dataset's {} images", self.images),
            });
        }
        // contiguous ids go out in one write
        let mut i = 0;
        while i < rows.len() {
            let first = rows[i].0;
            let mut buf = Vec::new();
            while i < rows.len() && rows[i].0 == first + (buf.len() / RECORD_BYTES) as u64 {
                buf.extend_from_slice(&encode(rows[i].1));
                i += 1;
            }
            self.file
                .seek(SeekFrom::Start(HEADER_BYTES + first * RECORD_BYTES as u64))
                .and_then(|_| self.file.write_all(&buf))
                .map_err(io_err("writing", &self.path))?;
        }
        Ok(())
    }

    /// Makes what was recorded durable (before a checkpoint that counts those images).
    pub fn sync(&self) -> Result<()> {
        self.file.sync_data().map_err(io_err("syncing", &self.path))
    }

    /// Copies the log to `dest` (atomically, synced): the output's [`PREDICTIONS_FILE`].
    pub fn copy_to(&self, dest: &Path) -> Result<()> {
        let mut src = self
            .file
            .try_clone()
            .map_err(io_err("reading", &self.path))?;
        src.seek(SeekFrom::Start(0))
            .map_err(io_err("reading", &self.path))?;
        let mut out = summit_io::AtomicFile::create(dest).map_err(|e| ExportError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })?;
        std::io::copy(&mut src, &mut out).map_err(io_err("writing", dest))?;
        out.commit(true).map_err(|e| ExportError::Io {
            op: e.op,
            path: e.path,
            source: e.source,
        })
    }
}

/// An output's [`PREDICTIONS_FILE`], read whole (20 bytes per image).
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    classes: usize,
    records: Vec<u8>,
}

impl Predictions {
    /// Reads and checks `path`.
    pub fn read(path: &Path) -> Result<Self> {
        let mut file = File::open(path).map_err(io_err("reading", path))?;
        let (classes, images) = read_header(&mut file, path)?;
        let mut records = Vec::new();
        file.read_to_end(&mut records)
            .map_err(io_err("reading", path))?;
        if records.len() as u64 != images * RECORD_BYTES as u64 {
            return Err(ExportError::Predictions {
                path: path.to_path_buf(),
                reason: "changed while being read".into(),
            });
        }
        if let Some((i, c)) = records
            .chunks_exact(RECORD_BYTES)
            .enumerate()
            .flat_map(|(i, r)| {
                r.chunks_exact(4)
                    .map(move |p| (i, u16::from_le_bytes([p[0], p[1]])))
            })
            .find(|&(_, c)| usize::from(c) > classes)
        {
            return Err(ExportError::Predictions {
                path: path.to_path_buf(),
                reason: format!(
                    "image {i} names class {}, but the model has {classes} classes",
                    c - 1
                ),
            });
        }
        Ok(Self { classes, records })
    }

    /// The model's number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The number of image slots (the dataset's images).
    pub fn len(&self) -> usize {
        self.records.len() / RECORD_BYTES
    }

    /// Whether the dataset has no images.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Image `index`'s top [`TOP_K`] (probabilities to 1/65535), `None` when the run did not
    /// process it or it is out of range.
    pub fn get(&self, index: usize) -> Option<TopK> {
        let rec = self
            .records
            .get(index * RECORD_BYTES..(index + 1) * RECORD_BYTES)?;
        decode(rec)
    }

    /// Image `index`'s predicted class and its probability, without allocating.
    pub fn top1(&self, index: usize) -> Option<(usize, f32)> {
        let r = self
            .records
            .get(index * RECORD_BYTES..index * RECORD_BYTES + 4)?;
        let class = u16::from_le_bytes([r[0], r[1]]);
        (class != 0).then(|| {
            (
                usize::from(class - 1),
                f32::from(u16::from_le_bytes([r[2], r[3]])) / 65535.0,
            )
        })
    }

    /// How many images have predictions.
    pub fn processed(&self) -> usize {
        (0..self.len()).filter(|&i| self.top1(i).is_some()).count()
    }
}

/// Overlays the predictions files of shard outputs into `out` (atomically): each image's
/// record comes from the shard that processed it. The shards must agree on the class and image
/// counts, and no image may be in two shards.
pub fn merge_predictions<P: AsRef<Path>>(inputs: &[P], out: &Path) -> Result<()> {
    let mut merged: Option<Predictions> = None;
    let mut first_path = PathBuf::new();
    for p in inputs {
        let p = p.as_ref();
        let next = Predictions::read(p)?;
        let Some(m) = merged.as_mut() else {
            first_path = p.to_path_buf();
            merged = Some(next);
            continue;
        };
        if (next.classes, next.len()) != (m.classes, m.len()) {
            return Err(ExportError::Predictions {
                path: p.to_path_buf(),
                reason: format!(
                    "{} classes over {} images, but {} has {} classes over {} images",
                    next.classes,
                    next.len(),
                    first_path.display(),
                    m.classes,
                    m.len()
                ),
            });
        }
        for (i, (dst, src)) in m
            .records
            .chunks_exact_mut(RECORD_BYTES)
            .zip(next.records.chunks_exact(RECORD_BYTES))
            .enumerate()
        {
            if src[..2] == [0, 0] {
                continue;
            }
            if dst[..2] != [0, 0] {
                return Err(ExportError::Predictions {
                    path: p.to_path_buf(),
                    reason: format!("image {i} is also in an earlier shard: shards overlap"),
                });
            }
            dst.copy_from_slice(src);
        }
    }
    let Some(m) = merged else {
        return Err(ExportError::Predictions {
            path: out.to_path_buf(),
            reason: "no shard predictions to merge".into(),
        });
    };
    let mut bytes = Vec::with_capacity(HEADER_BYTES as usize + m.records.len());
    bytes.extend_from_slice(&header(m.classes, m.len() as u64));
    bytes.extend_from_slice(&m.records);
    crate::write_file_atomic(out, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of `r`'s error (empty when it succeeded, which the callers' asserts catch).
    fn err_of<T>(r: Result<T>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn top_k_is_a_full_sort_cut_to_k() {
        // ties everywhere: values from a few levels
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for n in [0usize, 1, 3, 10, 57, 1000] {
            let probs: Vec<f32> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 7) as f32 / 7.0
                })
                .collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
            for k in [0usize, 1, 5, 12] {
                let want: TopK = order.iter().take(k).map(|&c| (c, probs[c])).collect();
                assert_eq!(top_k(&probs, k), want, "n {n}, k {k}");
            }
        }
    }

    #[test]
    fn records_in_any_order_give_the_same_file_and_read_back() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io_err("creating", Path::new("tmp")))?;
        let probs: Vec<f32> = (0..7 * 6)
            .map(|i| ((i * 37 % 11) as f32 + 1.0) / 66.0)
            .collect();
        let ids: Vec<u64> = (0..7).map(|i| [3, 0, 1, 8, 9, 4, 5][i]).collect();
        let a = dir.path().join("a.bin");
        let mut log = PredictionLog::create(&a, 6, 12)?;
        log.record(&ids, &probs)?;
        let b = dir.path().join("b.bin");
        let mut log2 = PredictionLog::create(&b, 6, 12)?;
        for (i, id) in ids.iter().enumerate().rev() {
            log2.record(&[*id], &probs[i * 6..(i + 1) * 6])?;
        }
        log2.record(&ids[..2], &probs[..12])?; // again: the same bytes
        let (fa, fb) = (
            std::fs::read(&a).map_err(io_err("reading", &a))?,
            std::fs::read(&b).map_err(io_err("reading", &b))?,
        );
        assert_eq!(fa, fb);
        let p = Predictions::read(&a)?;
        assert_eq!((p.len(), p.classes(), p.processed()), (12, 6, 7));
        for (i, &id) in ids.iter().enumerate() {
            let row = &probs[i * 6..(i + 1) * 6];
            let want = top_k(row, TOP_K);
            let got = p.get(id as usize).ok_or_else(|| ExportError::Predictions {
                path: a.clone(),
                reason: format!("image {id} missing"),
            })?;
            assert_eq!(got.len(), 5);
            for ((wc, wp), (gc, gp)) in want.iter().zip(&got) {
                assert_eq!(wc, gc);
                assert!((wp - gp).abs() <= 0.5 / 65535.0 + 1e-7, "{wp} {gp}");
            }
            assert_eq!(p.top1(id as usize).map(|t| t.0), Some(want[0].0));
        }
        assert_eq!(p.get(2), None);
        assert_eq!(p.get(12), None);
        Ok(())
    }

    #[test]
    fn shards_merge_to_the_whole_run_and_overlaps_are_refused() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io_err("creating", Path::new("tmp")))?;
        let probs: Vec<f32> = (0..10 * 3).map(|i| (i % 7) as f32 / 7.0).collect();
        let ids: Vec<u64> = (0..10).collect();
        let whole = dir.path().join("whole.bin");
        PredictionLog::create(&whole, 3, 10)?.record(&ids, &probs)?;
        let (s0, s1) = (dir.path().join("s0.bin"), dir.path().join("s1.bin"));
        PredictionLog::create(&s0, 3, 10)?.record(&ids[..4], &probs[..12])?;
        PredictionLog::create(&s1, 3, 10)?.record(&ids[4..], &probs[12..])?;
        let merged = dir.path().join("merged.bin");
        merge_predictions(&[&s1, &s0], &merged)?;
        assert_eq!(
            std::fs::read(&merged).map_err(io_err("reading", &merged))?,
            std::fs::read(&whole).map_err(io_err("reading", &whole))?
        );
        let err = merge_predictions(&[&s0, &whole], &dir.path().join("x.bin"));
        assert!(
            matches!(&err, Err(ExportError::Predictions { reason, .. }) if reason.contains("image 0")),
            "{err:?}"
        );
        Ok(())
    }

    #[test]
    fn bad_files_are_refused_naming_the_problem() -> Result<()> {
        let dir = tempfile::tempdir().map_err(io_err("creating", Path::new("tmp")))?;
        let p = dir.path().join("p.bin");
        PredictionLog::create(&p, 3, 4)?;
        let mut bytes = std::fs::read(&p).map_err(io_err("reading", &p))?;
        bytes.pop();
        std::fs::write(&p, &bytes).map_err(io_err("writing", &p))?;
        let e = err_of(Predictions::read(&p));
        assert!(e.contains("truncated"), "{e}");
        assert!(PredictionLog::open(&p, 3, 4).is_err());
        std::fs::write(&p, b"not a predictions file at all....").map_err(io_err("writing", &p))?;
        let e = err_of(Predictions::read(&p));
        assert!(e.contains("magic"), "{e}");
        let q = dir.path().join("q.bin");
        PredictionLog::create(&q, 3, 4)?;
        let e = err_of(PredictionLog::open(&q, 4, 4));
        assert!(e.contains("4 classes"), "{e}");
        let e = err_of(PredictionLog::create(&q, 70_000, 4));
        assert!(e.contains("70000 classes"), "{e}");
        let mut log = PredictionLog::create(&q, 3, 4)?;
        let e = err_of(log.record(&[4], &[0.2, 0.3, 0.5]));
        assert!(e.contains("image 4"), "{e}");
        Ok(())
    }
}
