//! What command-line programs over the pipeline share: classes chosen by name or index, shard
//! specs (`i/n`), the device, class lists, datasets relabelled to a model's class order, and
//! the check that an InceptionV1 run has its weights and data.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use summit_data::{Dataset, Image};
use summit_export::ClassInfo;
use summit_model::burn::tensor::Device;

use crate::error::{CoreError, Result};

/// How many classes an "unknown class" error lists before it says how many more there are.
const LISTED_CLASSES: usize = 50;

/// Parses a shard spec `i/n` (shard `i` of `n`, numbered from 0, as [`crate::Config::shard`]).
///
/// ```
/// assert_eq!(summit_core::parse_shard("1/4").unwrap(), (1, 4));
/// assert!(summit_core::parse_shard("4/4").is_err());
/// ```
pub fn parse_shard(spec: &str) -> Result<(usize, usize)> {
    let bad = |why: &str| {
        CoreError::Usage(format!(
            "shard `{spec}`: {why}; write `i/n` for shard i of n, numbered 0..n (e.g. `0/2` and `1/2`)"
        ))
    };
    let (i, n) = spec.split_once('/').ok_or_else(|| bad("no `/`"))?;
    let i: usize = i.trim().parse().map_err(|_| bad("`i` is not a number"))?;
    let n: usize = n.trim().parse().map_err(|_| bad("`n` is not a number"))?;
    if n == 0 {
        return Err(bad("n must be at least 1"));
    }
    if i >= n {
        return Err(bad("i must be less than n"));
    }
    Ok((i, n))
}

/// The shard of a Slurm job array task, from the environment Slurm gives each task
/// (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`, and `SLURM_ARRAY_TASK_MIN` when the
/// array does not start at 0): shard `TASK_ID − TASK_MIN` of `TASK_COUNT`. `Ok(None)` outside
/// a job array; an error when the variables are there but make no shard (e.g. a stepped
/// array `--array=0-9:2`, whose ids do not number `0..COUNT`).
///
/// ```
/// let env = |k: &str| match k {
///     "SLURM_ARRAY_TASK_ID" => Some("3".to_string()),
///     "SLURM_ARRAY_TASK_COUNT" => Some("4".to_string()),
///     _ => None,
/// };
/// assert_eq!(summit_core::shard_from_slurm(env).unwrap(), Some((3, 4)));
/// assert_eq!(summit_core::shard_from_slurm(|_| None).unwrap(), None);
/// ```
pub fn shard_from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<(usize, usize)>> {
    let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
    else {
        return Ok(None);
    };
    let num = |name: &str, v: &str| -> Result<usize> {
        v.trim().parse().map_err(|_| {
            CoreError::Usage(format!("{name}={v:?} is not a number (Slurm job array)"))
        })
    };
    let id = num("SLURM_ARRAY_TASK_ID", &id)?;
    let n = num("SLURM_ARRAY_TASK_COUNT", &count)?;
    let min = match var("SLURM_ARRAY_TASK_MIN") {
        Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
        None => 0,
    };
    match id.checked_sub(min) {
        Some(i) if i < n => Ok(Some((i, n))),
        _ => Err(CoreError::Usage(format!(
            "Slurm job array task {id} (ids from {min}, {n} tasks) is not shard i of {n} with \
             i in 0..{n}: use a contiguous array (--array=0-{}) or pass --shard i/n",
            n.saturating_sub(1)
        ))),
    }
}

/// The shard of a run: `--shard i/n` when given ([`parse_shard`]), else the Slurm job array
/// task's ([`shard_from_slurm`] on the process environment), else none.
pub fn shard_or_slurm(spec: Option<&str>) -> Result<Option<(usize, usize)>> {
    match spec {
        Some(s) => parse_shard(s).map(Some),
        None => shard_from_slurm(|k| std::env::var(k).ok()),
    }
}

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

/// The device to run the model on: CUDA device `cuda` when given (needs the `cuda` feature),
/// else burn's `flex` CPU backend.
pub fn select_device(cuda: Option<usize>) -> Result<Device> {
    match cuda {
        None => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        Some(i) => Ok(Device::cuda(i)),
        #[cfg(not(feature = "cuda"))]
        Some(i) => Err(CoreError::Usage(format!(
            "CUDA device {i} requested, but this build has no CUDA backend: build with \
             `--features cuda` (see README, GPU)"
        ))),
    }
}

/// The device of `--cuda N` or `--vulkan N` (at most one): CUDA device `N` (with the `cuda`
/// feature), the `N`-th discrete GPU through burn's wgpu backend on Vulkan (with the `vulkan`
/// feature), else burn's CPU backend. A GPU asked of a build without its feature is a usage
/// error saying which feature to build with.
pub fn select_gpu(cuda: Option<usize>, vulkan: Option<usize>) -> Result<Device> {
    match (cuda, vulkan) {
        (Some(c), Some(v)) => Err(CoreError::Usage(format!(
            "--cuda {c} and --vulkan {v}: pick one device"
        ))),
        (_, None) => select_device(cuda),
        (None, Some(i)) => vulkan_device(i),
    }
}

/// The device of a spec `vulkan:N` or `cuda:N` (as `SUMMIT_GPU` and `SUMMIT_PASS_DEVICE` give
/// it), through [`select_gpu`].
pub fn gpu_from_spec(spec: &str) -> Result<Device> {
    let bad = || {
        CoreError::Usage(format!(
            "GPU `{spec}`: expected `vulkan:N` or `cuda:N` (N the device index)"
        ))
    };
    let (kind, index) = spec.split_once(':').ok_or_else(bad)?;
    let i: usize = index.trim().parse().map_err(|_| bad())?;
    match kind.trim() {
        "vulkan" => select_gpu(None, Some(i)),
        "cuda" => select_gpu(Some(i), None),
        _ => Err(bad()),
    }
}

#[cfg(feature = "vulkan")]
fn vulkan_device(i: usize) -> Result<Device> {
    Ok(Device::vulkan(
        summit_model::burn::tensor::DeviceKind::DiscreteGpu(i),
    ))
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_device(i: usize) -> Result<Device> {
    Err(CoreError::Usage(format!(
        "Vulkan GPU {i} requested, but this build has no wgpu backend: build with \
         `--features vulkan` (see README, GPU)"
    )))
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

/// How to get InceptionV1 weights (README, "Your own InceptionV1 weights").
pub const INCEPTION_WEIGHTS_HELP: &str = "\
--weights FILE: torchvision GoogLeNet (InceptionV1) weights, a state dict as .pth or .safetensors.
  Save the pretrained ones with three lines of Python (pip install torch torchvision):
    import torch, torchvision
    model = torchvision.models.googlenet(weights=\"IMAGENET1K_V1\")
    torch.save(model.state_dict(), \"googlenet.pth\")
  then pass --weights googlenet.pth
  With --model lucid: Lucid's InceptionV1 as torch-lucent ports it (pip install torch-lucent):
    import torch
    from lucent.modelzoo import inceptionv1
    torch.save(inceptionv1(pretrained=True).state_dict(), \"inceptionv1_lucid.pth\")
  then pass --weights inceptionv1_lucid.pth and --output-classes (see there)";

/// What a Lucid InceptionV1 run needs to map its 1008 outputs to ImageNet classes.
pub const LUCID_OUTPUTS_HELP: &str = "\
--output-classes FILE: the synset of each of Lucid InceptionV1's 1008 outputs, one per line in
  output order (`dummy` or a blank line for unused outputs): Lucid's
  ImageNet_alternate_synsets.txt, e.g.
    gsutil cp gs://modelzoo/labels/ImageNet_alternate_synsets.txt .
  (or https://storage.googleapis.com/modelzoo/labels/ImageNet_alternate_synsets.txt). Summit's
  classes are then the dataset's (or --class-list's) synsets in sorted-synset order, each read
  from its output of the model";

/// What data an InceptionV1 run reads.
pub const INCEPTION_DATA_HELP: &str = "\
--data DIR: the images, either
  - an image folder: one sub-directory per class (DIR/<class>/*.jpg|jpeg|png, as torchvision's
    ImageFolder); with fewer than the model's 1000 classes, or class names that are not in
    the model's order, add --class-list LOC_synset_mapping.txt (one synset per line, model order);
  - or the ImageNet (ILSVRC2012) validation layout: DIR holds the 50,000 ILSVRC2012_val_*.JPEG
    files; add --labels val.txt (`<file> <label>` per line, 0-based, model order) and
    --class-list LOC_synset_mapping.txt (from the ImageNet download, e.g. Kaggle's
    imagenet-object-localization-challenge or image-net.org)";

/// Checks that an InceptionV1 run was given its weights and data. Without them the error says
/// exactly what to provide and how to get it ([`INCEPTION_WEIGHTS_HELP`],
/// [`INCEPTION_DATA_HELP`]); a given path that does not exist is named.
pub fn require_inception_inputs(
    weights: Option<&Path>,
    data: Option<&Path>,
) -> Result<(PathBuf, PathBuf)> {
    let mut missing = Vec::new();
    if weights.is_none() {
        missing.push(INCEPTION_WEIGHTS_HELP);
    }
    if data.is_none() {
        missing.push(INCEPTION_DATA_HELP);
    }
    if !missing.is_empty() {
        let what = match (weights.is_none(), data.is_none()) {
            (true, true) => "no --weights and no --data given",
            (true, false) => "no --weights given",
            _ => "no --data given",
        };
        return Err(CoreError::Usage(format!(
            "{what}. This example runs Summit on InceptionV1 over your images; provide\n{}",
            missing.join("\n")
        )));
    }
    let (Some(w), Some(d)) = (weights, data) else {
        return Err(CoreError::Usage("no --weights or --data given".into()));
    };
    if !w.is_file() {
        return Err(CoreError::Usage(format!(
            "--weights {}: no such file\n{INCEPTION_WEIGHTS_HELP}",
            w.display()
        )));
    }
    if !d.is_dir() {
        return Err(CoreError::Usage(format!(
            "--data {}: no such directory\n{INCEPTION_DATA_HELP}",
            d.display()
        )));
    }
    Ok((w.to_path_buf(), d.to_path_buf()))
}
