//! [`OutputStage`]: an output directory written beside its final place and swapped in whole,
//! so that a kill at any point leaves either the previous output or the new, complete one,
//! never a mix. (On file systems without `RENAME_EXCHANGE` the swap is two renames: a kill
//! between them leaves the previous output beside its place, and the next run for the target
//! puts it back.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::atomic::create_dir;
use crate::error::{ExportError, Result};
use crate::manifest::{MARKER_FILE, Manifest, read_manifest};
use crate::output::OWNED_ENTRIES;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = path.to_path_buf();
    move |source| ExportError::Io { op, path, source }
}

/// An output directory being written: every file goes into a staging directory beside the
/// target (`.{name}.summit-new-{pid}`), and [`commit`](Self::commit) writes the manifest last
/// and swaps the staging directory into place in one rename (Linux: `renameat2` with
/// `RENAME_EXCHANGE` when a previous output is replaced). A run killed before the commit
/// leaves the previous output untouched; its stale staging directory is removed by the next
/// [`begin`](Self::begin) of the same target. Dropped without a commit (an error), the staging
/// directory is removed.
///
/// ```
/// use summit_export::OutputStage;
/// let tmp = tempfile::tempdir().unwrap();
/// let out = tmp.path().join("run");
/// let stage = OutputStage::begin(&out, false).unwrap();
/// std::fs::write(stage.dir().join("a.txt"), b"a").unwrap();
/// assert!(!out.exists(), "nothing at the target before the commit");
/// ```
#[derive(Debug)]
pub struct OutputStage {
    target: PathBuf,
    staging: PathBuf,
    force: bool,
    committed: bool,
}

/// The staging and retired-output names of `target`: `.{name}.summit-new-` and
/// `.{name}.summit-old-` prefixes in its parent directory.
fn prefixes(target: &Path) -> (PathBuf, String, String) {
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    (
        parent,
        format!(".{name}.summit-new-"),
        format!(".{name}.summit-old-"),
    )
}

/// The place an output is written to: `target` itself, or, where that is a symbolic link, the
/// directory it resolves to (the link is left in place). `.`, `..` and `/` are refused.
fn resolve_target(target: &Path) -> Result<PathBuf> {
    if !matches!(
        target.components().next_back(),
        Some(std::path::Component::Normal(_))
    ) {
        // `.`, `..` or `/`: replacing it would pull the directory from under the shell
        return Err(ExportError::OutputExists {
            dir: target.to_path_buf(),
            detail: " (name the output directory itself, not `.`, `..` or `/`)".into(),
        });
    }
    let is_link = std::fs::symlink_metadata(target).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(target.to_path_buf());
    }
    target
        .canonicalize()
        .map_err(io_err("resolving the output directory", target))
}

/// Whether a staging suffix (`{pid}`) names another process that is running now (Linux:
/// `/proc/{pid}` exists); elsewhere, and for names that are no pid, false.
fn running_other_process(suffix: &str) -> bool {
    match suffix.parse::<u32>() {
        Ok(pid) if pid != std::process::id() => {
            cfg!(target_os = "linux") && Path::new("/proc").join(pid.to_string()).exists()
        }
        _ => false,
    }
}

/// Whether `dir` holds a previous summit-rs output (its marker file or a readable manifest).
pub(crate) fn is_output(dir: &Path) -> bool {
    dir.join(MARKER_FILE).exists() || read_manifest(dir).is_ok()
}

/// Checks that `dir` can take a new output: it does not exist, is empty, or (with `force`)
/// holds a previous summit-rs output; and that it is not a mount point (the output is staged
/// beside it and moved in with one rename, which cannot cross file systems).
pub(crate) fn check_target(dir: &Path, force: bool) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (parent, _, _) = prefixes(dir);
        if let (Ok(d), Ok(p)) = (std::fs::metadata(dir), std::fs::metadata(&parent))
            && d.dev() != p.dev()
        {
            return Err(ExportError::OutputExists {
                dir: dir.to_path_buf(),
                detail: " (it is a mount point: the output is written beside it and moved in, \
                         which cannot cross file systems; name a directory inside it)"
                    .into(),
            });
        }
    }
    if !dir.is_dir() {
        return Err(ExportError::OutputExists {
            dir: dir.to_path_buf(),
            detail: " (it is a file, not a directory)".into(),
        });
    }
    let mut entries = std::fs::read_dir(dir).map_err(io_err("listing", dir))?;
    let Some(first) = entries.next() else {
        return Ok(());
    };
    let first = first.map_err(io_err("listing", dir))?;
    let owned = is_output(dir);
    if !force {
        let detail = if owned {
            " (it holds a previous summit-rs output)".to_string()
        } else {
            format!(" (e.g. '{}')", first.file_name().to_string_lossy())
        };
        return Err(ExportError::OutputExists {
            dir: dir.to_path_buf(),
            detail,
        });
    }
    if !owned {
        return Err(ExportError::NotAnOutput {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The top-level entries of a previous output that summit-rs wrote: the fixed layout and
/// whatever its manifest lists.
fn owned_names(old: &Path) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = OWNED_ENTRIES.iter().map(|s| (*s).to_string()).collect();
    if let Ok(m) = read_manifest(old) {
        for f in &m.files {
            if let Some(top) = f.split('/').next() {
                names.insert(top.to_string());
            }
        }
    }
    names
}

/// Moves the entries of the retired output `old` that summit-rs did not write (a user's own
/// files) into `new` where `new` has no entry of that name, then removes `old`.
fn retire(old: &Path, new: &Path) -> Result<()> {
    let owned = owned_names(old);
    for e in std::fs::read_dir(old).map_err(io_err("listing", old))? {
        let e = e.map_err(io_err("listing", old))?;
        let name = e.file_name();
        let text = name.to_string_lossy();
        if owned.contains(text.as_ref()) || text.starts_with(".summit-tmp-") {
            continue;
        }
        let to = new.join(&name);
        if !to.exists() {
            std::fs::rename(e.path(), &to).map_err(io_err("moving a file of yours into", &to))?;
        }
    }
    std::fs::remove_dir_all(old).map_err(io_err("removing the previous output", old))
}

/// Swaps `staging` into `target` (which exists): one `RENAME_EXCHANGE` where the system has
/// it, two renames elsewhere. Returns where the previous output now is.
fn swap(staging: &Path, target: &Path, old: &Path) -> Result<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, staging, CWD, target, RenameFlags::EXCHANGE) {
            Ok(()) => return Ok(staging.to_path_buf()),
            // file systems without the exchange fall back to two renames
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => {
                return Err(ExportError::Io {
                    op: "swapping the new output into",
                    path: target.to_path_buf(),
                    source: e.into(),
                });
            }
        }
    }
    std::fs::rename(target, old).map_err(io_err("moving the previous output aside", target))?;
    std::fs::rename(staging, target).map_err(io_err("moving the new output into", target))?;
    Ok(old.to_path_buf())
}

/// Checks, without changing anything, that `target` can take a new output: the rules of
/// [`OutputStage::begin`] (`.`, `..` and `/` refused, a symbolic link followed, an existing
/// non-empty directory only with `force` and only when it holds a previous output, not a mount
/// point), and that a file can be created where the output is staged (its parent, or the
/// nearest existing ancestor). Run it before long work, so that it does not end in these errors.
pub fn check_output_target(target: &Path, force: bool) -> Result<()> {
    let resolved = resolve_target(target)?;
    check_target(&resolved, force)?;
    let (mut probe, new_prefix, _) = prefixes(&resolved);
    while !probe.exists() {
        match probe.parent() {
            Some(p) if !p.as_os_str().is_empty() => probe = p.to_path_buf(),
            _ => {
                probe = PathBuf::from(".");
                break;
            }
        }
    }
    if !probe.is_dir() {
        return Err(ExportError::Io {
            op: "creating the output directory in",
            path: probe,
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    // named like a staging entry, so that a run killed here leaves nothing the next run keeps
    tempfile::Builder::new()
        .prefix(&format!("{new_prefix}probe-"))
        .tempfile_in(&probe)
        .map(drop)
        .map_err(io_err(
            "creating a file (to check the output can be written) in",
            &probe,
        ))
}

/// Moves `staging` to `target`, which must not exist: `RENAME_NOREPLACE` where the system has
/// it (a directory created there meanwhile is never replaced), a plain rename elsewhere.
fn move_into_place(staging: &Path, target: &Path) -> Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        match renameat_with(CWD, staging, CWD, target, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(()),
            Err(e) if e == rustix::io::Errno::INVAL || e == rustix::io::Errno::NOSYS => {}
            Err(e) => {
                return Err(ExportError::Io {
                    op: "moving the new output into",
                    path: target.to_path_buf(),
                    source: e.into(),
                });
            }
        }
    }
    std::fs::rename(staging, target).map_err(io_err("moving the new output into", target))
}

impl OutputStage {
    /// Starts an output for `target`: checks that it can take one (it does not exist, is
    /// empty, or — with `force` — holds a previous summit-rs output; a non-empty directory that
    /// is not an output is never replaced), removes what an interrupted earlier run left beside
    /// it (staging directories; a retired previous output has your own files moved back
    /// first), and creates the staging directory.
    pub fn begin(target: &Path, force: bool) -> Result<Self> {
        let resolved = resolve_target(target)?;
        let target = resolved.as_path();
        let (parent, new_prefix, old_prefix) = prefixes(target);
        if parent.is_dir() {
            for e in std::fs::read_dir(&parent).map_err(io_err("listing", &parent))? {
                let e = e.map_err(io_err("listing", &parent))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let p = e.path();
                let stale_new = name.starts_with(&new_prefix);
                if !stale_new && !name.starts_with(&old_prefix) {
                    continue;
                }
                let suffix = &name[if stale_new {
                    new_prefix.len()
                } else {
                    old_prefix.len()
                }..];
                if running_other_process(suffix) {
                    // another run writing the same output right now: its files, not stale
                    continue;
                }
                if stale_new && !p.is_dir() {
                    // a probe file of a writability check
                    std::fs::remove_file(&p)
                        .map_err(io_err("removing a stale staging file", &p))?;
                } else if stale_new && !p.join("manifest.json").exists() {
                    // a staging directory never committed: only partial files of ours
                    std::fs::remove_dir_all(&p)
                        .map_err(io_err("removing a stale staging directory", &p))?;
                } else if target.is_dir() {
                    // a staging directory, or a previous output swapped out but not yet
                    // removed: files of yours go (back) into the output, the rest is removed
                    retire(&p, target)?;
                } else if stale_new {
                    std::fs::remove_dir_all(&p)
                        .map_err(io_err("removing a stale staging directory", &p))?;
                } else {
                    // killed between the two renames of the fallback swap: the previous
                    // output goes back into place
                    std::fs::rename(&p, target)
                        .map_err(io_err("restoring the previous output", target))?;
                }
            }
        }
        check_target(target, force)?;
        create_dir(&parent)?;
        let staging = parent.join(format!("{new_prefix}{}", std::process::id()));
        create_dir(&staging)?;
        Ok(Self {
            target: resolved,
            staging,
            force,
            committed: false,
        })
    }

    /// The directory to write the output's files into.
    pub fn dir(&self) -> &Path {
        &self.staging
    }

    /// The final place of the output.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Every file in the staging directory, as `/`-separated paths relative to it, sorted.
    pub fn files(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.staging.clone(), String::new())];
        while let Some((dir, rel)) = stack.pop() {
            for e in std::fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
                let e = e.map_err(io_err("listing", &dir))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".summit-tmp-") {
                    continue;
                }
                let r = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let ty = e
                    .file_type()
                    .map_err(io_err("reading the type of", &e.path()))?;
                if ty.is_dir() {
                    stack.push((e.path(), r));
                } else {
                    out.push(r);
                }
            }
        }
        out.push("manifest.json".into());
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Writes `manifest` (its file list replaced by every file the staging directory holds)
    /// as the last file, and swaps the staging directory into the target's place. A previous
    /// output there is removed, keeping files of yours that it held (they move into the new
    /// output). Returns the manifest as written.
    pub fn commit(mut self, mut manifest: Manifest) -> Result<Manifest> {
        manifest.files = self.files()?;
        crate::atomic::write_json_pretty(&self.staging.join("manifest.json"), &manifest)?;
        let (parent, _, old_prefix) = prefixes(&self.target);
        if let Ok(f) = std::fs::File::open(&self.staging) {
            // the staging directory's entries durable before it is renamed (best effort: some
            // file systems cannot sync a directory, and the files themselves are synced)
            let _ = f.sync_all();
        }
        // the target may have changed during the run (another run, a user): checked again, and
        // on refusal the finished output is kept in its staging directory, named in the error
        if let Err(e) = check_target(&self.target, self.force) {
            self.committed = true;
            return Err(ExportError::Kept {
                staging: self.staging.clone(),
                source: Box::new(e),
            });
        }
        let exists = match std::fs::symlink_metadata(&self.target) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err("reading", &self.target)(e)),
        };
        if exists {
            let old = parent.join(format!("{old_prefix}{}", std::process::id()));
            let old = swap(&self.staging, &self.target, &old)?;
            self.committed = true;
            // the new output is in place: a failure to remove the previous one leaves it
            // beside, where the next run for this target finishes the job
            let _ = retire(&old, &self.target);
        } else {
            move_into_place(&self.staging, &self.target)?;
            self.committed = true;
        }
        if let Ok(f) = std::fs::File::open(&parent) {
            // the rename durable; a file system that cannot sync a directory still renamed
            let _ = f.sync_all();
        }
        Ok(manifest)
    }
}

impl Drop for OutputStage {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}
