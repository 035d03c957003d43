//! Classes chosen by name, synset or index, class and output lists read from files, and
//! datasets relabelled to a model's class order.

use std::path::Path;
use std::sync::Arc;

use summit_data::{Dataset, Image};
use summit_export::ClassInfo;

use crate::error::{CoreError, Result};

/// How many classes an "unknown class" error lists before it says how many more there are.
const LISTED_CLASSES: usize = 50;

fn class_listing(classes: &[ClassInfo]) -> String {
    let mut s: Vec<String> = classes
        .iter()
        .take(LISTED_CLASSES)
        .enumerate()
        .map(|(i, c)| match &c.synset {
            Some(syn) if syn != &c.name => format!("{i} {} ({syn})", c.name),
            _ => format!("{i} {}", c.name),
        })
        .collect();
    if classes.len() > LISTED_CLASSES {
        s.push(format!("… and {} more", classes.len() - LISTED_CLASSES));
    }
    s.join(", ")
}

/// The index of the class `spec` names: its name (exactly, else ignoring ASCII case), its
/// synset, or its index. An unknown name is an error listing the available classes.
///
/// ```
/// use summit_core::{ClassInfo, class_index};
/// let classes: Vec<ClassInfo> = ["T-shirt/top", "Trouser"].into_iter().map(ClassInfo::new).collect();
/// assert_eq!(class_index(&classes, "trouser").unwrap(), 1);
/// assert_eq!(class_index(&classes, "0").unwrap(), 0);
/// let err = class_index(&classes, "Sock").unwrap_err().to_string();
/// assert!(err.contains("T-shirt/top") && err.contains("Trouser"));
/// ```
pub fn class_index(classes: &[ClassInfo], spec: &str) -> Result<usize> {
    let spec = spec.trim();
    let found = classes
        .iter()
        .position(|c| c.name == spec)
        .or_else(|| {
            classes
                .iter()
                .position(|c| c.synset.as_deref() == Some(spec))
        })
        .or_else(|| {
            classes
                .iter()
                .position(|c| c.name.eq_ignore_ascii_case(spec))
        })
        .or_else(|| spec.parse::<usize>().ok().filter(|&i| i < classes.len()));
    found.ok_or_else(|| {
        CoreError::Usage(format!(
            "unknown class `{spec}`: give a class name, synset or index; the {} classes are: {}",
            classes.len(),
            class_listing(classes)
        ))
    })
}

/// The classes of a comma-separated list of names, synsets or indices ([`class_index`]),
/// ascending and without duplicates. An empty list is an error.
pub fn class_indices(classes: &[ClassInfo], list: &str) -> Result<Vec<usize>> {
    let mut out = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| class_index(classes, s))
        .collect::<Result<Vec<_>>>()?;
    if out.is_empty() {
        return Err(CoreError::Usage(format!(
            "the class list `{list}` names no class; the {} classes are: {}",
            classes.len(),
            class_listing(classes)
        )));
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// A class list file: one class per non-blank line, a class id (e.g. the WordNet synset
/// `n01440764`) optionally followed by a description (`tench, Tinca tinca`), as ImageNet's
/// `LOC_synset_mapping.txt`. The class name is the description's first comma-separated part
/// with spaces as `_` (Summit's `white_wolf`), or the id without a description.
pub fn read_class_list(path: &Path) -> Result<Vec<ClassInfo>> {
    let text = std::fs::read_to_string(path).map_err(CoreError::io(path))?;
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let (id, desc) = match line.split_once(char::is_whitespace) {
            Some((id, d)) => (id, d.trim()),
            None => (line, ""),
        };
        if !seen.insert(id.to_string()) {
            return Err(CoreError::Usage(format!(
                "class list {} line {}: class `{id}` is listed twice",
                path.display(),
                n + 1
            )));
        }
        let name = desc
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .replace(' ', "_");
        out.push(ClassInfo {
            name: if name.is_empty() {
                id.to_string()
            } else {
                name
            },
            synset: Some(id.to_string()),
        });
    }
    if out.is_empty() {
        return Err(CoreError::Usage(format!(
            "class list {} holds no class",
            path.display()
        )));
    }
    Ok(out)
}

/// A model's output list: line `k` names output `k` by its first whitespace-separated token
/// (a synset such as `n01440764`, or a placeholder such as Lucid's `dummy`); a blank line is an
/// unused output. For [`SelectOutputs::by_name`](summit_model::SelectOutputs::by_name), e.g.
/// Lucid's `ImageNet_alternate_synsets.txt`.
pub fn read_output_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(CoreError::io(path))?;
    let out: Vec<String> = text
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    if out.iter().all(String::is_empty) {
        return Err(CoreError::Usage(format!(
            "output list {} names no output",
            path.display()
        )));
    }
    Ok(out)
}

/// A dataset with its classes renumbered to another order (e.g. an image folder holding some
/// ImageNet classes, renumbered to the model's 1000 outputs). Samples and preprocessing are
/// the inner dataset's.
pub struct Relabeled {
    inner: Arc<dyn Dataset>,
    classes: Vec<String>,
    labels: Vec<usize>,
}

impl std::fmt::Debug for Relabeled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relabeled")
            .field("classes", &self.classes.len())
            .field("samples", &self.labels.len())
            .finish()
    }
}

impl Relabeled {
    /// Renumbers `inner`'s classes to `order` (class names as the inner dataset names them).
    /// Every class of `inner` that has samples must be in `order`; `order` may hold classes
    /// without samples. `source` names where `order` came from, for errors.
    pub fn new<S: AsRef<str>>(inner: Arc<dyn Dataset>, order: &[S], source: &str) -> Result<Self> {
        let position: std::collections::HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, s)| (s.as_ref(), i))
            .collect();
        let names = inner.class_names();
        let map: Vec<Option<usize>> = names
            .iter()
            .map(|n| position.get(n.as_str()).copied())
            .collect();
        let mut labels = Vec::with_capacity(inner.len());
        for (i, &l) in inner.labels().iter().enumerate() {
            let new = map.get(l).copied().flatten().ok_or_else(|| {
                CoreError::Usage(format!(
                    "class `{}` of {} is not in {source} (the model's class order)",
                    names.get(l).map_or("?", String::as_str),
                    inner.source(i)
                ))
            })?;
            labels.push(new);
        }
        Ok(Self {
            inner,
            classes: order.iter().map(|s| s.as_ref().to_string()).collect(),
            labels,
        })
    }
}

impl Dataset for Relabeled {
    fn class_names(&self) -> &[String] {
        &self.classes
    }

    fn labels(&self) -> &[usize] {
        &self.labels
    }

    fn source(&self, index: usize) -> String {
        self.inner.source(index)
    }

    fn load(&self, index: usize) -> summit_data::Result<Image> {
        self.inner.load(index)
    }

    fn sample_dims(&self) -> Option<[usize; 3]> {
        self.inner.sample_dims()
    }
}
