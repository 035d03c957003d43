//! Checkpoints of a pass: the run key a checkpoint belongs to (model, weights, dataset
//! fingerprint, images, picks), the file format (magic, version, FNV-1a checksum) and the
//! cleanup of temporaries left by a killed write.

use std::path::Path;

use serde::{Deserialize, Serialize};
use summit_data::{Dataset, Skipped};
use summit_influence::Aggregates;

use crate::error::{CoreError, Result};

/// Identifies the run a checkpoint belongs to: everything that changes the aggregates besides
/// the aggregation parameters (compared on their own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunKey {
    pub(crate) model: String,
    /// The model's weights hash ([`ModelIdentity::weights`](summit_model::ModelIdentity::weights)).
    pub(crate) weights: String,
    /// The model's description hash.
    pub(crate) description: String,
    /// [`dataset_fingerprint`] of the dataset: its files, labels and class names.
    pub(crate) dataset: String,
    pub(crate) dataset_len: usize,
    pub(crate) indices_len: usize,
    pub(crate) indices_hash: u64,
    pub(crate) hop_input: crate::config::HopInput,
    pub(crate) picks: summit_influence::PickParams,
}

impl RunKey {
    /// What differs between the checkpoint's key `self` and this run's `now`, by name.
    pub(crate) fn differences(&self, now: &RunKey) -> Vec<String> {
        let mut d = Vec::new();
        let mut check = |differs: bool, what: &str, then: String, current: String| {
            if differs {
                d.push(format!("{what}: {then} in the checkpoint, {current} now"));
            }
        };
        check(
            self.model != now.model,
            "model",
            format!("`{}`", self.model),
            format!("`{}`", now.model),
        );
        check(
            self.description != now.description,
            "model description (layers, shapes)",
            self.description.clone(),
            now.description.clone(),
        );
        check(
            self.dataset_len != now.dataset_len,
            "dataset size",
            self.dataset_len.to_string(),
            now.dataset_len.to_string(),
        );
        check(
            self.dataset != now.dataset,
            "dataset (its files, their labels or the class list's order)",
            format!("fingerprint {}", self.dataset),
            format!("fingerprint {}", now.dataset),
        );
        check(
            self.indices_len != now.indices_len,
            "images of the run (--limit, --classes or --shard)",
            self.indices_len.to_string(),
            now.indices_len.to_string(),
        );
        check(
            self.indices_len == now.indices_len && self.indices_hash != now.indices_hash,
            "the images chosen (--classes or --shard)",
            format!("{:016x}", self.indices_hash),
            format!("{:016x}", now.indices_hash),
        );
        check(
            self.hop_input != now.hop_input,
            "hop input",
            format!("{:?}", self.hop_input),
            format!("{:?}", now.hop_input),
        );
        check(
            self.picks.per_class != now.picks.per_class,
            "picked images per class (--attribution-per-class)",
            self.picks.per_class.to_string(),
            now.picks.per_class.to_string(),
        );
        check(
            self.picks.sample != now.picks.sample,
            "sampled images (picks)",
            self.picks.sample.to_string(),
            now.picks.sample.to_string(),
        );
        check(
            self.picks.top != now.picks.top,
            "predictions kept per pick",
            self.picks.top.to_string(),
            now.picks.top.to_string(),
        );
        d
    }
}

/// A fingerprint of a dataset: FNV-1a 64 over its size, class names, and every sample's source
/// and label, in index order (hex). Two datasets with the same fingerprint list the same files
/// with the same labels in the same class order; a reordered class list, another folder or
/// another label file changes it.
pub fn dataset_fingerprint(dataset: &dyn Dataset) -> String {
    let mut h = FNV_OFFSET;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(&(dataset.len() as u64).to_le_bytes());
    for name in dataset.class_names() {
        eat(name.as_bytes());
        eat(&[0]);
    }
    let labels = dataset.labels();
    for i in 0..dataset.len() {
        eat(dataset.source(i).as_bytes());
        eat(&[0]);
        let label = labels.get(i).map_or(u64::MAX, |&l| l as u64);
        eat(&label.to_le_bytes());
    }
    format!("{h:016x}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Checkpoint {
    pub(crate) key: RunKey,
    pub(crate) position: usize,
    pub(crate) skipped: Vec<Skipped>,
    pub(crate) aggregates: Aggregates,
}

/// A checkpoint to write, borrowing the run's state (the same encoding as [`Checkpoint`]):
/// writing one never copies the aggregates.
#[derive(Serialize)]
pub(crate) struct CheckpointRef<'a> {
    pub(crate) key: &'a RunKey,
    pub(crate) position: usize,
    pub(crate) skipped: &'a [Skipped],
    pub(crate) aggregates: &'a Aggregates,
}

pub(crate) const CHECKPOINT_MAGIC: [u8; 8] = *b"SUMMITCK";
pub(crate) const CHECKPOINT_VERSION: u32 = 3;

pub(crate) fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn hash_indices(indices: &[usize]) -> u64 {
    let bytes: Vec<u8> = indices
        .iter()
        .flat_map(|&i| (i as u64).to_le_bytes())
        .collect();
    fnv1a64(&bytes)
}

impl CheckpointRef<'_> {
    /// Writes the checkpoint atomically: magic, version (u32 LE), checksum (u64 LE) of the
    /// payload, then the payload (bincode 2, serde, standard config), streamed from the
    /// encoder to the file (the checksum is filled in afterwards).
    pub(crate) fn save(&self, path: &Path) -> Result<()> {
        use std::io::{Seek, SeekFrom, Write};
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(CoreError::io(dir))?;
        let io = CoreError::io(path);
        let prefix = checkpoint_tmp_prefix(path);
        let from_io = |e: summit_io::IoError| std::io::Error::other(e.to_string());
        let write = || -> std::io::Result<std::result::Result<(), String>> {
            let mut tmp = summit_io::AtomicFile::with_prefix(path, &prefix).map_err(from_io)?;
            tmp.write_all(&[0u8; 20])?;
            let mut sink = HashingWriter {
                inner: std::io::BufWriter::new(tmp.file_mut()),
                hash: FNV_OFFSET,
            };
            if let Err(e) =
                bincode::serde::encode_into_std_write(self, &mut sink, bincode::config::standard())
            {
                return Ok(Err(format!("cannot encode: {e}")));
            }
            let hash = sink.hash;
            sink.inner.flush()?;
            drop(sink);
            let f = tmp.file_mut();
            f.seek(SeekFrom::Start(0))?;
            f.write_all(&CHECKPOINT_MAGIC)?;
            f.write_all(&CHECKPOINT_VERSION.to_le_bytes())?;
            f.write_all(&hash.to_le_bytes())?;
            tmp.commit(true).map_err(from_io)?;
            Ok(Ok(()))
        };
        match write().map_err(io)? {
            Ok(()) => Ok(()),
            Err(reason) => Err(CoreError::Checkpoint {
                path: path.to_path_buf(),
                reason,
            }),
        }
    }
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// The prefix of the temporary files a checkpoint is written through:
/// `.{file name}.summit-tmp-`.
pub(crate) fn checkpoint_tmp_prefix(path: &Path) -> String {
    let name = path
        .file_name()
        .map_or_else(|| "checkpoint".into(), |n| n.to_string_lossy().into_owned());
    format!(".{name}.summit-tmp-")
}

/// Removes the temporary files that writing the checkpoint `path` left when a run was killed
/// mid-write (they are never complete checkpoints: the rename is the last step). Returns how
/// many were removed.
pub fn remove_stale_checkpoint_files(path: &Path) -> Result<usize> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Ok(0);
    }
    let prefix = checkpoint_tmp_prefix(path);
    let mut removed = 0;
    for e in std::fs::read_dir(dir).map_err(CoreError::io(dir))? {
        let e = e.map_err(CoreError::io(dir))?;
        if e.file_name().to_string_lossy().starts_with(&prefix) {
            let p = e.path();
            std::fs::remove_file(&p).map_err(CoreError::io(&p))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Passes bytes on, hashing them (FNV-1a 64).
pub(crate) struct HashingWriter<W> {
    inner: W,
    hash: u64,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        for &b in &buf[..n] {
            self.hash ^= u64::from(b);
            self.hash = self.hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Checkpoint {
    pub(crate) fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(CoreError::io(path))?;
        let fail = |reason: String| CoreError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 20 || bytes[..8] != CHECKPOINT_MAGIC {
            return Err(fail(
                "not a summit-rs checkpoint (wrong magic bytes or truncated)".into(),
            ));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != CHECKPOINT_VERSION {
            return Err(fail(format!(
                "format version {version}, this build reads {CHECKPOINT_VERSION}"
            )));
        }
        let mut sum = [0u8; 8];
        sum.copy_from_slice(&bytes[12..20]);
        let payload = &bytes[20..];
        if fnv1a64(payload) != u64::from_le_bytes(sum) {
            return Err(fail("corrupt: checksum mismatch".into()));
        }
        let (ck, used): (Checkpoint, usize) =
            bincode::serde::decode_from_slice(payload, bincode::config::standard())
                .map_err(|e| fail(format!("corrupt payload: {e}")))?;
        if used != payload.len() {
            return Err(fail(format!(
                "corrupt payload: {} bytes left undecoded",
                payload.len() - used
            )));
        }
        Ok(ck)
    }
}
