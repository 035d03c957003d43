//! Atomic file writes: a temporary file in the target's directory, renamed
//! over the target once complete, so a reader never sees a partial file and
//! a crash leaves no half-written output under the final name.

use std::path::Path;

use crate::error::{ExportError, Result};

/// Creates `dir` and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Io {
        op: "creating directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` atomically (temp file in the same directory,
/// synced, then renamed). The parent directory must exist.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, true)
}

/// Writes `bytes` to `path` atomically, creating its parent directories first: a temporary
/// file in the same directory (mode 0666 less the umask, like any file a program creates, not
/// a temporary file's private 0600), synced, then renamed onto `path` — `summit_io`'s one
/// atomic writer, which every file summit-rs writes into an output directory or a cache goes
/// through.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let p = dir.path().join("a/b.txt");
/// summit_export::write_file_atomic(&p, b"hello").unwrap();
/// assert_eq!(std::fs::read(&p).unwrap(), b"hello");
/// ```
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_dir(dir)?;
    }
    write_atomic(path, bytes)
}

/// [`write_atomic`] without syncing the data to disk before the rename:
/// readers still never see a partial file; after a power loss the file may
/// be empty (used for the many small patch PNGs, whose run is only complete
/// once the synced manifest exists).
pub(crate) fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, false)
}

fn write_atomic_with(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    summit_io::write_atomic(path, bytes, sync).map_err(|e| ExportError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// Serialises `value` as JSON (compact) and writes it atomically.
pub(crate) fn write_json<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|source| ExportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Serialises `value` as indented JSON and writes it atomically.
pub(crate) fn write_json_pretty<T: serde::Serialize + ?Sized>(
    path: &Path,
    value: &T,
) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ExportError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, &bytes)
}

/// Reads and parses a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| ExportError::Json {
        path: path.to_path_buf(),
        source,
    })
}
