//! Image folders: one sub-folder per class.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::{
    DecodeLimits, Image, Preprocess, Transform, decode_file_with_limits, probe_sample_dims,
};

/// File extensions (compared case-insensitively) that are taken as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// `true` when the path's extension is one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// Why [`ImageFolder::open`] left a directory or file out of a class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SkipReason {
    /// The directory or file was already listed (reached through another path:
    /// a symbolic-link loop, or a second link to the same directory or file).
    Repeated,
    /// It lies outside its class: it is (or is inside) another class's
    /// directory, the dataset root, a file directly under the root, or a
    /// directory that contains the root.
    OutsideClass,
}

/// A directory or file that [`ImageFolder::open`] reached but did not list,
/// so that no image is counted twice or under the wrong class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SkippedEntry {
    /// The path as reached under the root (usually a symbolic link).
    pub path: PathBuf,
    /// Its canonical path (where the link points).
    pub target: PathBuf,
    /// Why it was left out.
    pub reason: SkipReason,
}

impl std::fmt::Display for SkippedEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let why = match self.reason {
            SkipReason::Repeated => {
                "already listed (a symbolic-link loop or a second link to the same place)"
            }
            SkipReason::OutsideClass => {
                "outside its class (the dataset root, a directory containing it, or another class)"
            }
        };
        write!(
            f,
            "not listed: {} -> {}: {why}",
            self.path.display(),
            self.target.display()
        )
    }
}

/// An image classification dataset laid out as torchvision's `ImageFolder`:
///
/// ```text
/// root/cat/001.jpg
/// root/cat/more/002.png
/// root/dog/003.JPEG
/// ```
///
/// * every directory directly under `root` is a class (hidden ones
///   included, as in torchvision); class names are the directory names, sorted
///   by their UTF-8 bytes, and the label is the position in that order;
/// * a class's images are all files below its directory (recursively, following
///   symbolic links) whose extension is `jpg`, `jpeg` or `png` in any case,
///   sorted by directory path and then file name (the order of torchvision's
///   `sorted(os.walk(...))`);
/// * symbolic links never make an image count twice or under another class:
///   each directory and each file (by canonical path) is listed at most once in
///   the whole dataset, and a class never takes in the dataset root, a
///   directory containing it, another class's directory (or anything inside
///   it) or a file directly under the root. What is left out this way is listed
///   in [`skipped_entries`](ImageFolder::skipped_entries);
/// * other files, including files directly under `root`, are ignored but
///   listed in [`ignored_files`](ImageFolder::ignored_files);
/// * a class directory without images is allowed (the class exists, with 0 samples).
///
/// Files are only listed when the dataset is opened; they are read when a
/// sample is loaded, within the [`DecodeLimits`] set with
/// [`with_decode_limits`](ImageFolder::with_decode_limits) (the defaults otherwise).
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    ignored: Vec<PathBuf>,
    skipped: Vec<SkippedEntry>,
    transform: Transform,
    limits: DecodeLimits,
    dims: OnceLock<Option<[usize; 3]>>,
}

impl ImageFolder {
    /// Lists the dataset under `root`.
    ///
    /// Errors when `root` or a directory below it cannot be read, when there
    /// is no class directory or no image at all ([`DataError::EmptyDataset`]),
    /// and when the preprocessing is invalid.
    pub fn open(root: impl AsRef<Path>, preprocess: Preprocess) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let transform = preprocess.transform();
        transform.validate()?;
        let mut classes = Vec::new();
        let mut ignored = Vec::new();
        for entry in read_dir_sorted(&root)? {
            // An entry whose metadata cannot be read (e.g. a broken link) is not a class.
            if std::fs::metadata(&entry).is_ok_and(|m| m.is_dir()) {
                classes.push(entry);
            } else {
                ignored.push(entry);
            }
        }
        if classes.is_empty() {
            return Err(DataError::EmptyDataset {
                path: root,
                reason: "no class sub-folders".to_string(),
            });
        }
        let names: Vec<String> = classes
            .iter()
            .map(|dir| {
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            })
            .collect();
        let mut walker = Walker::new(&root, &classes)?;
        let found = walker.walk_classes(&classes)?;
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, mut entries) in found.into_iter().enumerate() {
            entries.retain(|e| walker.keep_file_link(label, e));
            entries.sort_by(|a, b| {
                a.dir
                    .as_os_str()
                    .as_encoded_bytes()
                    .cmp(b.dir.as_os_str().as_encoded_bytes())
                    .then_with(|| a.name.cmp(&b.name))
            });
            for entry in entries {
                let path = entry.dir.join(&entry.name);
                if has_image_extension(&path) {
                    files.push(path);
                    labels.push(label);
                } else {
                    ignored.push(path);
                }
            }
        }
        if files.is_empty() {
            return Err(DataError::EmptyDataset {
                path: root,
                reason: format!(
                    "no .jpg/.jpeg/.png files in its {} class folders",
                    names.len()
                ),
            });
        }
        Ok(Self {
            root,
            classes: names,
            files,
            labels,
            ignored,
            skipped: walker.skipped,
            transform,
            limits: DecodeLimits::default(),
            dims: OnceLock::new(),
        })
    }

    /// The same dataset, decoding within `limits` instead of the defaults
    /// (see [`DecodeLimits`]).
    #[must_use]
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self.dims = OnceLock::new();
        self
    }

    /// The limits on a decoded image's size that [`Dataset::load`] applies.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// Directories and files that were reached but not listed, so that no
    /// image counts twice or under the wrong class (symbolic-link loops, second
    /// links, links into other classes or the root), in the order they were met.
    pub fn skipped_entries(&self) -> &[SkippedEntry] {
        &self.skipped
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of sample `index`, `None` when out of range.
    pub fn path(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(PathBuf::as_path)
    }

    /// Every sample's file, in index order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.files
    }

    /// Files that were found but are not images by extension, in listing order.
    pub fn ignored_files(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// Number of samples of each class, indexed by label.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }

    /// The preprocessing applied by [`Dataset::load`].
    pub fn transform(&self) -> &Transform {
        &self.transform
    }
}

impl Dataset for ImageFolder {
    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn source(&self, index: usize) -> String {
        match self.files.get(index) {
            Some(p) => p.display().to_string(),
            None => format!("{}#{index} (out of range)", self.root.display()),
        }
    }

    fn load(&self, index: usize) -> Result<Image> {
        let path = self.files.get(index).ok_or(DataError::IndexOutOfRange {
            index,
            len: self.files.len(),
        })?;
        let img = decode_file_with_limits(path, &self.limits)?;
        self.transform
            .apply_with_limits(&img, &path.display().to_string(), &self.limits)
    }

    /// The preprocessing's output size when it fixes one; otherwise (e.g.
    /// [`Preprocess::Grayscale`] at the decoded size) the most common output
    /// size among the headers of up to 256 files spread over the dataset, read
    /// once, on the first call. Samples of another size are skipped by the loader.
    fn value_range(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        Some(self.transform.value_range())
    }

    fn sample_dims(&self) -> Option<[usize; 3]> {
        *self
            .dims
            .get_or_init(|| probe_sample_dims(&self.files, &self.transform, &self.limits))
    }
}

/// Directory entries' paths, sorted by file name bytes.
pub(crate) fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        out.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    out.sort_by(|a, b| {
        let key = |p: &PathBuf| p.file_name().map(|n| n.as_encoded_bytes().to_vec());
        key(a).cmp(&key(b))
    });
    Ok(out)
}

/// A file found below a class directory.
#[derive(Debug)]
struct Found {
    /// The directory as reached from the class directory (not canonical).
    dir: PathBuf,
    /// The file name.
    name: OsString,
    /// For a symbolic link to a file, its canonical target (`None` for a
    /// regular file, or a broken link, which is kept: loading it fails and it
    /// is reported as skipped).
    link_target: Option<PathBuf>,
}

/// The walk of every class directory of one [`ImageFolder::open`].
struct Walker {
    /// The canonical dataset root.
    root: PathBuf,
    /// Canonical class directory → the first class (label) that has it.
    owners: HashMap<PathBuf, usize>,
    /// Canonical directories already listed, over the whole dataset.
    visited: HashSet<PathBuf>,
    /// Canonical targets of file links kept so far that lie in no listed directory.
    linked_files: HashSet<PathBuf>,
    /// What was left out.
    skipped: Vec<SkippedEntry>,
}

fn canonical(path: &Path) -> Result<PathBuf> {
    std::fs::canonicalize(path).map_err(|e| DataError::io(path, e))
}

impl Walker {
    fn new(root: &Path, classes: &[PathBuf]) -> Result<Self> {
        let root = canonical(root)?;
        let mut owners = HashMap::new();
        for (label, dir) in classes.iter().enumerate() {
            let canon = canonical(dir)?;
            // A "class" that is the root or contains it owns nothing (it is not walked).
            if !root.starts_with(&canon) {
                owners.entry(canon).or_insert(label);
            }
        }
        Ok(Self {
            root,
            owners,
            visited: HashSet::new(),
            linked_files: HashSet::new(),
            skipped: Vec::new(),
        })
    }

    fn skip(&mut self, path: &Path, target: PathBuf, reason: SkipReason) {
        self.skipped.push(SkippedEntry {
            path: path.to_path_buf(),
            target,
            reason,
        });
    }

    /// The class owning canonical `path`: the one whose canonical directory is
    /// the deepest ancestor-or-self of `path`.
    fn owner_of(&self, path: &Path) -> Option<usize> {
        path.ancestors().find_map(|a| self.owners.get(a).copied())
    }

    /// Walks every class directory (in label order); the files found per class.
    fn walk_classes(&mut self, classes: &[PathBuf]) -> Result<Vec<Vec<Found>>> {
        let mut found = Vec::with_capacity(classes.len());
        for (label, dir) in classes.iter().enumerate() {
            let mut out = Vec::new();
            let canon = canonical(dir)?;
            match self.owners.get(&canon) {
                None => self.skip(dir, canon, SkipReason::OutsideClass),
                Some(&owner) if owner != label => self.skip(dir, canon, SkipReason::Repeated),
                Some(_) => {
                    self.visited.insert(canon.clone());
                    self.walk(dir, &canon, Some(label), label, &mut out)?;
                }
            }
            found.push(out);
        }
        Ok(found)
    }

    /// Whether class `class` may walk directory `canon` (owned by `owner`)
    /// reached as `path`; records it as visited when it may, and as skipped otherwise.
    fn enter(&mut self, path: &Path, canon: &Path, owner: Option<usize>, class: usize) -> bool {
        let outside = match owner {
            Some(o) => o != class,
            // not in any class: external, unless it is inside the root (the
            // root itself) or contains it
            None => canon.starts_with(&self.root) || self.root.starts_with(canon),
        };
        if outside {
            self.skip(path, canon.to_path_buf(), SkipReason::OutsideClass);
            false
        } else if self.visited.insert(canon.to_path_buf()) {
            true
        } else {
            self.skip(path, canon.to_path_buf(), SkipReason::Repeated);
            false
        }
    }

    /// Collects the files below `dir` (canonical path `canon`, owned by
    /// `owner`) for class `class`.
    fn walk(
        &mut self,
        dir: &Path,
        canon: &Path,
        owner: Option<usize>,
        class: usize,
        out: &mut Vec<Found>,
    ) -> Result<()> {
        for entry in read_dir_sorted(dir)? {
            let Some(name) = entry.file_name().map(|n| n.to_os_string()) else {
                continue;
            };
            let file = |link_target| Found {
                dir: dir.to_path_buf(),
                name: name.clone(),
                link_target,
            };
            // An unreadable entry (e.g. a broken link) is kept as a file: if it has
            // an image extension, loading it fails and it is reported as skipped.
            let Ok(meta) = std::fs::symlink_metadata(&entry) else {
                out.push(file(None));
                continue;
            };
            if meta.is_symlink() {
                let Ok(target) = std::fs::canonicalize(&entry) else {
                    out.push(file(None)); // broken link
                    continue;
                };
                if std::fs::metadata(&target).is_ok_and(|m| m.is_dir()) {
                    let target_owner = self.owner_of(&target);
                    if self.enter(&entry, &target, target_owner, class) {
                        self.walk(&entry, &target, target_owner, class, out)?;
                    }
                } else {
                    out.push(file(Some(target)));
                }
            } else if meta.is_dir() {
                // not a link: its canonical path is the parent's plus its name
                let child = canon.join(&name);
                let child_owner = self.owners.get(&child).copied().or(owner);
                if self.enter(&entry, &child, child_owner, class) {
                    self.walk(&entry, &child, child_owner, class, out)?;
                }
            } else {
                out.push(file(None));
            }
        }
        Ok(())
    }

    /// Whether a found file of class `class` is listed: regular files always
    /// are; a link to a file is not when its target is outside the class (in
    /// another class, or directly under the root), or is listed anyway (its
    /// directory was walked, or an earlier link points to it).
    fn keep_file_link(&mut self, class: usize, found: &Found) -> bool {
        let Some(target) = &found.link_target else {
            return true;
        };
        let path = found.dir.join(&found.name);
        let outside = match self.owner_of(target) {
            Some(o) => o != class,
            None => target.starts_with(&self.root),
        };
        if outside {
            self.skip(&path, target.clone(), SkipReason::OutsideClass);
            return false;
        }
        let listed = target.parent().is_some_and(|p| self.visited.contains(p));
        if listed || !self.linked_files.insert(target.clone()) {
            self.skip(&path, target.clone(), SkipReason::Repeated);
            return false;
        }
        true
    }
}
