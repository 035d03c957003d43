//! # summit-io
//!
//! The one atomic file writer of summit-rs. Every file a run leaves behind — the output
//! directory's pages, graphs, images and aggregates, the checkpoint, the feature-visualization
//! cache, saved weights — is written to a temporary file in its directory and renamed onto its
//! name once complete: a reader never sees a partial file, and a crash leaves no half-written
//! file under the final name (only a `.summit-tmp-…` file that the next run removes).
//!
//! The temporary file has a regular file's mode — 0666 less the process umask, so 0644 under
//! the usual umask 022 — not a temporary file's private 0600: outputs are meant to be served
//! and shared.
//!
//! ```
//! use std::io::Write;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("a/b.txt");
//! summit_io::write_atomic(&path, b"hello", true)?;
//! assert_eq!(std::fs::read(&path).unwrap(), b"hello");
//!
//! // streaming: write, then commit; dropped without a commit, nothing appears
//! let mut f = summit_io::AtomicFile::create(&dir.path().join("c.bin"))?;
//! f.file_mut().write_all(b"streamed").map_err(|e| summit_io::IoError::new("writing", f.path(), e))?;
//! f.commit(true)?;
//! assert_eq!(std::fs::read(dir.path().join("c.bin")).unwrap(), b"streamed");
//! # Ok::<(), summit_io::IoError>(())
//! ```
#![warn(missing_docs)]

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The prefix of the temporary files [`AtomicFile`] creates (and a run's clean-up removes).
pub const TMP_PREFIX: &str = ".summit-tmp-";

/// A file operation that failed, naming what was being done and to which file.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done (`creating directory`, `writing`, `renaming the temporary file onto`).
    pub op: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The reason.
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    /// An error of operation `op` on `path`.
    pub fn new(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, IoError>;

/// A file being written atomically: a temporary file in the target's directory (created with
/// its parents), renamed onto the target by [`AtomicFile::commit`]. Dropped without a commit,
/// the temporary file is removed and the target is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing `path` (temporary files named `.summit-tmp-…`).
    pub fn create(path: &Path) -> Result<Self> {
        Self::with_prefix(path, TMP_PREFIX)
    }

    /// Starts writing `path` with temporary files named `{prefix}…` (a checkpoint names its
    /// own, so that only its stale temporaries are removed).
    pub fn with_prefix(path: &Path, prefix: &str) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|e| IoError::new("creating directory", dir, e))?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(prefix);
        #[cfg(unix)]
        {
            // a regular file's mode (0666 less the umask), not tempfile's private 0600
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| IoError::new("creating a temporary file for", path, e))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// The target's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, to write (and seek) into.
    pub fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// Renames the temporary file onto the target, after syncing its data to disk when `sync`
    /// (unsynced, a reader still never sees a partial file; after a power loss the file may
    /// be empty — for the many small files whose run is complete only once a synced manifest
    /// exists).
    pub fn commit(self, sync: bool) -> Result<()> {
        if sync {
            self.tmp
                .as_file()
                .sync_all()
                .map_err(|e| IoError::new("syncing", &self.path, e))?;
        }
        let path = self.path;
        self.tmp
            .persist(&path)
            .map_err(|e| IoError::new("renaming the temporary file onto", &path, e.error))?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tmp.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.tmp.as_file_mut().flush()
    }
}

/// Writes `bytes` to `path` atomically ([`AtomicFile`]), creating its parent directories;
/// `sync` as in [`AtomicFile::commit`].
pub fn write_atomic(path: &Path, bytes: &[u8], sync: bool) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.file_mut()
        .write_all(bytes)
        .map_err(|e| IoError::new("writing", path, e))?;
    f.commit(sync)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn an_uncommitted_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        let mut f = AtomicFile::create(&path).unwrap();
        f.file_mut().write_all(b"partial").unwrap();
        drop(f);
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn files_get_a_regular_mode_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.txt");
        write_atomic(&path, b"x", false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        // 0666 less the umask: group/other read at least under the usual umasks (022, 002)
        assert_ne!(mode, 0o600, "mode {mode:o}");
        assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
    }

    #[test]
    fn an_existing_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        write_atomic(&path, b"a long first version", true).unwrap();
        write_atomic(&path, b"short", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short");
    }
}
