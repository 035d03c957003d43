//! The ILSVRC2012 (ImageNet) validation layout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::folder::{has_image_extension, read_dir_sorted};
use crate::preprocess::{
    DecodeLimits, Image, Preprocess, Transform, decode_file_with_limits, probe_sample_dims,
};

/// Which ground-truth file format [`ImageNetVal::open`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelFormat {
    /// The devkit's `ILSVRC2012_validation_ground_truth.txt`: one integer per
    /// line, **1-based**, line `n` is the label of the image whose file stem ends in
    /// the number `n` (`ILSVRC2012_val_00000001.JPEG` → line 1). Label `k`
    /// means line `k` of the class list.
    Devkit,
    /// The `val.txt` form `<file name> <label>` per line, **0-based**
    /// (label `k` means line `k + 1` of the class list). The file name is
    /// matched against the image's file name; a directory part is ignored.
    FileLabel,
}

/// The ImageNet validation set as distributed: a flat folder of images, a
/// ground-truth labels file and a class list.
///
/// **Images**: the files directly in `images_dir` with extension
/// `jpg`/`jpeg`/`png` (any case), sorted by file name; sub-directories and other
/// files are ignored and listed in [`ignored_files`](ImageNetVal::ignored_files).
/// Every image must have a label; labels without an image are allowed (a
/// subset of the validation set) and counted in
/// [`unmatched_labels`](ImageNetVal::unmatched_labels).
///
/// **Ground truth** (format detected from the first non-blank line, then
/// required on every line; blank lines are skipped, except inside the
/// positional devkit format):
/// * one integer per line → [`LabelFormat::Devkit`] (1-based);
/// * two fields, the second an integer → [`LabelFormat::FileLabel`] (0-based).
///
/// **Class list**: one class per non-blank line, in label order: a class id
/// (the first whitespace-separated token, e.g. a WordNet synset `n01440764`)
/// optionally followed by a description (`tench, Tinca tinca`), as in
/// `LOC_synset_mapping.txt`. Class ids must be unique. [`Dataset::class_names`]
/// returns the ids; [`descriptions`](ImageNetVal::descriptions) the rest of the line.
///
/// Note the devkit's 1-based ids follow the devkit's own class order
/// (`meta.mat`), which is *not* the sorted-synset order of torchvision models;
/// pair the devkit file with a class list in devkit order and then call
/// [`remap_classes`](ImageNetVal::remap_classes) with the model's class order.
#[derive(Debug, Clone)]
pub struct ImageNetVal {
    images_dir: PathBuf,
    class_list_file: PathBuf,
    synsets: Vec<String>,
    descriptions: Vec<String>,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    ignored: Vec<PathBuf>,
    unmatched: usize,
    format: LabelFormat,
    transform: Transform,
    limits: DecodeLimits,
    dims: std::sync::OnceLock<Option<[usize; 3]>>,
}

fn line_err(path: &Path, line: usize, reason: impl Into<String>) -> DataError {
    DataError::Line {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    String::from_utf8(bytes).map_err(|e| DataError::Format {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text ({e})"),
    })
}

/// Parses a class list: returns (ids, descriptions).
fn parse_class_list(path: &Path) -> Result<(Vec<String>, Vec<String>)> {
    let text = read_text(path)?;
    let mut ids = Vec::new();
    let mut descriptions = Vec::new();
    let mut seen = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, rest) = match line.split_once(char::is_whitespace) {
            Some((id, rest)) => (id, rest.trim()),
            None => (line, ""),
        };
        if let Some(first) = seen.insert(id.to_string(), n + 1) {
            return Err(line_err(
                path,
                n + 1,
                format!("class {id:?} is listed twice (first on line {first})"),
            ));
        }
        ids.push(id.to_string());
        descriptions.push(if rest.is_empty() { id } else { rest }.to_string());
    }
    if ids.is_empty() {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            reason: "the class list has no classes".to_string(),
        });
    }
    Ok((ids, descriptions))
}

enum GroundTruth {
    /// Label (0-based) per line, line 1 first.
    Positional(Vec<usize>),
    /// File name → label (0-based).
    ByName(HashMap<String, usize>),
}

fn parse_ground_truth(path: &Path, classes: usize) -> Result<(LabelFormat, GroundTruth)> {
    let text = read_text(path)?;
    let lines: Vec<&str> = text.lines().collect();
    let first = lines
        .iter()
        .position(|l| !l.trim().is_empty())
        .ok_or_else(|| DataError::Format {
            path: path.to_path_buf(),
            reason: "the ground-truth file has no labels".to_string(),
        })?;
    let tokens: Vec<&str> = lines[first].split_whitespace().collect();
    let format = match tokens.as_slice() {
        [a] if a.parse::<usize>().is_ok() => LabelFormat::Devkit,
        [_, b] if b.parse::<usize>().is_ok() => LabelFormat::FileLabel,
        _ => {
            return Err(line_err(
                path,
                first + 1,
                format!(
                    "unrecognised ground-truth line {:?}: expected one integer label per line \
                     (ILSVRC2012_validation_ground_truth.txt, 1-based) or `<file name> <label>` \
                     (val.txt, 0-based)",
                    lines[first]
                ),
            ));
        }
    };
    match format {
        LabelFormat::Devkit => {
            // Trailing blank lines are fine; a blank line between labels would shift them.
            let last = lines
                .iter()
                .rposition(|l| !l.trim().is_empty())
                .unwrap_or(first);
            let mut labels = Vec::with_capacity(last + 1);
            for (n, line) in lines.iter().enumerate().take(last + 1) {
                let t = line.trim();
                let id: usize = t.parse().map_err(|_| {
                    line_err(
                        path,
                        n + 1,
                        format!("expected one integer label (devkit format), got {t:?}"),
                    )
                })?;
                if id == 0 || id > classes {
                    return Err(line_err(
                        path,
                        n + 1,
                        format!("label {id} is outside 1..={classes} (devkit labels are 1-based)"),
                    ));
                }
                labels.push(id - 1);
            }
            Ok((format, GroundTruth::Positional(labels)))
        }
        LabelFormat::FileLabel => {
            let mut map = HashMap::new();
            for (n, line) in lines.iter().enumerate() {
                let tokens: Vec<&str> = line.split_whitespace().collect();
                let (name, label) = match tokens.as_slice() {
                    [] => continue,
                    [name, label] => (*name, *label),
                    _ => {
                        return Err(line_err(
                            path,
                            n + 1,
                            format!("expected `<file name> <label>`, got {line:?}"),
                        ));
                    }
                };
                let label: usize = label.parse().map_err(|_| {
                    line_err(path, n + 1, format!("label {label:?} is not an integer"))
                })?;
                if label >= classes {
                    return Err(line_err(
                        path,
                        n + 1,
                        format!(
                            "label {label} is outside 0..{classes} (val.txt labels are 0-based)"
                        ),
                    ));
                }
                let base = name.rsplit(['/', '\\']).next().unwrap_or(name).to_string();
                if map.insert(base.clone(), label).is_some() {
                    return Err(line_err(path, n + 1, format!("{base:?} is listed twice")));
                }
            }
            Ok((format, GroundTruth::ByName(map)))
        }
    }
}

/// The number at the end of a file stem: `ILSVRC2012_val_00000042` → 42.
fn trailing_number(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?;
    let digits = stem.len() - stem.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    stem[stem.len() - digits..].parse().ok()
}

impl ImageNetVal {
    /// Opens the validation set. See the [type docs](ImageNetVal) for the
    /// accepted formats. Errors name the file (and line) at fault.
    pub fn open(
        images_dir: impl AsRef<Path>,
        labels_file: impl AsRef<Path>,
        class_list_file: impl AsRef<Path>,
        preprocess: Preprocess,
    ) -> Result<Self> {
        let images_dir = images_dir.as_ref().to_path_buf();
        let labels_file = labels_file.as_ref();
        let class_list_file = class_list_file.as_ref().to_path_buf();
        let transform = preprocess.transform();
        transform.validate()?;
        let (synsets, descriptions) = parse_class_list(&class_list_file)?;
        let (format, truth) = parse_ground_truth(labels_file, synsets.len())?;
        let mut files = Vec::new();
        let mut ignored = Vec::new();
        for entry in read_dir_sorted(&images_dir)? {
            if has_image_extension(&entry) && !std::fs::metadata(&entry).is_ok_and(|m| m.is_dir()) {
                files.push(entry);
            } else {
                ignored.push(entry);
            }
        }
        if files.is_empty() {
            return Err(DataError::EmptyDataset {
                path: images_dir,
                reason: "no .jpg/.jpeg/.png files".to_string(),
            });
        }
        let no_label = |file: &Path, why: String| DataError::Format {
            path: labels_file.to_path_buf(),
            reason: format!("image {} has no label: {why}", file.display()),
        };
        let mut labels = Vec::with_capacity(files.len());
        let total = match &truth {
            GroundTruth::Positional(v) => v.len(),
            GroundTruth::ByName(m) => m.len(),
        };
        for file in &files {
            let label = match &truth {
                GroundTruth::Positional(v) => {
                    let n = trailing_number(file).ok_or_else(|| {
                        no_label(
                            file,
                            "the devkit format needs a file name ending in the image number \
                             (ILSVRC2012_val_00000001.JPEG)"
                                .to_string(),
                        )
                    })?;
                    *n.checked_sub(1).and_then(|i| v.get(i)).ok_or_else(|| {
                        no_label(file, format!("image number {n} is not in 1..={}", v.len()))
                    })?
                }
                GroundTruth::ByName(m) => {
                    let name = file
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    *m.get(&name)
                        .ok_or_else(|| no_label(file, "its file name is not listed".to_string()))?
                }
            };
            labels.push(label);
        }
        if let GroundTruth::Positional(_) = truth {
            // Two files with the same number (e.g. .JPEG and .png) would share one label line.
            let mut numbers: Vec<usize> = files.iter().filter_map(|f| trailing_number(f)).collect();
            numbers.sort_unstable();
            if let Some(w) = numbers.windows(2).find(|w| w[0] == w[1]) {
                return Err(DataError::Format {
                    path: images_dir,
                    reason: format!("two image files carry the number {}", w[0]),
                });
            }
        }
        Ok(Self {
            unmatched: total.saturating_sub(files.len()),
            images_dir,
            class_list_file,
            synsets,
            descriptions,
            files,
            labels,
            ignored,
            format,
            transform,
            limits: DecodeLimits::default(),
            dims: std::sync::OnceLock::new(),
        })
    }

    /// The same dataset, decoding within `limits` instead of the defaults
    /// (see [`DecodeLimits`]).
    #[must_use]
    pub fn with_decode_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self.dims = std::sync::OnceLock::new();
        self
    }

    /// The limits on a decoded image's size that [`Dataset::load`] applies.
    pub fn decode_limits(&self) -> &DecodeLimits {
        &self.limits
    }

    /// The ground-truth format that was detected.
    pub fn label_format(&self) -> LabelFormat {
        self.format
    }

    /// The class descriptions (the class list's text after the id), indexed by label.
    pub fn descriptions(&self) -> &[String] {
        &self.descriptions
    }

    /// The images directory.
    pub fn images_dir(&self) -> &Path {
        &self.images_dir
    }

    /// Every sample's file, in index order.
    pub fn paths(&self) -> &[PathBuf] {
        &self.files
    }

    /// Entries of the images directory that are not images by extension.
    pub fn ignored_files(&self) -> &[PathBuf] {
        &self.ignored
    }

    /// Number of ground-truth entries without an image file.
    pub fn unmatched_labels(&self) -> usize {
        self.unmatched
    }

    /// Renumbers the classes to the order `order` (class ids as in the class
    /// list, e.g. a model's output order). Ids in `order` that the class list
    /// lacks become classes without samples (description = id); every class
    /// that has samples must appear in `order`, else [`DataError::UnknownClass`].
    pub fn remap_classes<S: AsRef<str>>(mut self, order: &[S]) -> Result<Self> {
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_ref(), i))
            .collect();
        if position.len() != order.len() {
            return Err(DataError::config("the new class order lists a class twice"));
        }
        let mut new_label = vec![None; self.synsets.len()];
        for (old, id) in self.synsets.iter().enumerate() {
            new_label[old] = position.get(id.as_str()).copied();
        }
        for &l in &self.labels {
            if new_label[l].is_none() {
                return Err(DataError::UnknownClass {
                    name: self.synsets[l].clone(),
                    source_file: "the new class order".to_string(),
                });
            }
        }
        let old_desc: HashMap<&str, &str> = self
            .synsets
            .iter()
            .zip(&self.descriptions)
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        let descriptions = order
            .iter()
            .map(|s| {
                old_desc
                    .get(s.as_ref())
                    .copied()
                    .unwrap_or(s.as_ref())
                    .to_string()
            })
            .collect();
        self.labels = self
            .labels
            .iter()
            .map(|&l| new_label[l].unwrap_or(usize::MAX))
            .collect();
        self.synsets = order.iter().map(|s| s.as_ref().to_string()).collect();
        self.descriptions = descriptions;
        Ok(self)
    }

    /// The preprocessing applied by [`Dataset::load`].
    pub fn transform(&self) -> &Transform {
        &self.transform
    }

    /// The class list file the classes came from.
    pub fn class_list_file(&self) -> &Path {
        &self.class_list_file
    }
}

impl Dataset for ImageNetVal {
    fn class_names(&self) -> &[String] {
        &self.synsets
    }

    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn source(&self, index: usize) -> String {
        match self.files.get(index) {
            Some(p) => p.display().to_string(),
            None => format!("{}#{index} (out of range)", self.images_dir.display()),
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

    /// The preprocessing's output size when it fixes one; otherwise the most
    /// common output size among the headers of up to 256 files spread over the
    /// dataset, read once, on the first call. Samples of another size are
    /// skipped by the loader.
    fn value_range(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        Some(self.transform.value_range())
    }

    fn sample_dims(&self) -> Option<[usize; 3]> {
        *self
            .dims
            .get_or_init(|| probe_sample_dims(&self.files, &self.transform, &self.limits))
    }
}
