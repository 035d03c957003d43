//! Image folders: one sub-folder per class.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::preprocess::{Image, Preprocess, Transform, decode_file};

/// File extensions (compared case-insensitively) that are taken as images.
pub const IMAGE_EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// `true` when the path's extension is one of [`IMAGE_EXTENSIONS`] (any case).
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
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
///   symbolic links, each directory visited once) whose extension is `jpg`,
///   `jpeg` or `png` in any case, sorted by directory path and then file name
///   (the order of torchvision's `sorted(os.walk(...))`);
/// * other files, including files directly under `root`, are ignored but
///   listed in [`ignored_files`](ImageFolder::ignored_files);
/// * a class directory without images is allowed (the class exists, with 0 samples).
///
/// Files are only listed when the dataset is opened; they are read when a sample is loaded.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    root: PathBuf,
    classes: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    ignored: Vec<PathBuf>,
    transform: Transform,
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
        let mut names = Vec::with_capacity(classes.len());
        let mut files = Vec::new();
        let mut labels = Vec::new();
        for (label, dir) in classes.iter().enumerate() {
            names.push(
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let mut found = Vec::new();
            let mut visited = HashSet::new();
            walk(dir, &mut found, &mut visited)?;
            found.sort_by(|a, b| {
                a.0.as_os_str()
                    .as_encoded_bytes()
                    .cmp(b.0.as_os_str().as_encoded_bytes())
                    .then_with(|| a.1.cmp(&b.1))
            });
            for (dir, name) in found {
                let path = dir.join(&name);
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
            transform,
        })
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
        let img = decode_file(path)?;
        self.transform.apply(&img, &path.display().to_string())
    }

    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.transform.output_dims()
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

/// Collects `(directory, file name)` of every file below `dir`.
fn walk(
    dir: &Path,
    out: &mut Vec<(PathBuf, std::ffi::OsString)>,
    visited: &mut HashSet<PathBuf>,
) -> Result<()> {
    let canonical = std::fs::canonicalize(dir).map_err(|e| DataError::io(dir, e))?;
    if !visited.insert(canonical) {
        return Ok(()); // a symbolic-link cycle or a second link to the same directory
    }
    for entry in read_dir_sorted(dir)? {
        // An unreadable entry (e.g. a broken link) is kept as a file: if it has
        // an image extension, loading it fails and it is reported as skipped.
        if std::fs::metadata(&entry).is_ok_and(|m| m.is_dir()) {
            walk(&entry, out, visited)?;
        } else if let Some(name) = entry.file_name() {
            out.push((dir.to_path_buf(), name.to_os_string()));
        }
    }
    Ok(())
}
