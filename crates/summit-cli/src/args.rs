//! What the command-line programs over the pipeline share (the examples and the `summit`
//! command): shard specs (`i/n`, or a Slurm job array's task), and the check, with its help
//! texts, that an InceptionV1 run has its weights and data.

use std::path::{Path, PathBuf};

use crate::{CliError, Result};

/// Parses a shard spec `i/n` (shard `i` of `n`, numbered from 0, as [`summit_core::Config::shard`]).
///
/// ```
/// assert_eq!(summit_cli::args::parse_shard("1/4").unwrap(), (1, 4));
/// assert!(summit_cli::args::parse_shard("4/4").is_err());
/// ```
pub fn parse_shard(spec: &str) -> Result<(usize, usize)> {
    let bad = |why: &str| {
        CliError::Usage(format!(
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
/// assert_eq!(summit_cli::args::shard_from_slurm(env).unwrap(), Some((3, 4)));
/// assert_eq!(summit_cli::args::shard_from_slurm(|_| None).unwrap(), None);
/// ```
pub fn shard_from_slurm(var: impl Fn(&str) -> Option<String>) -> Result<Option<(usize, usize)>> {
    let (Some(id), Some(count)) = (var("SLURM_ARRAY_TASK_ID"), var("SLURM_ARRAY_TASK_COUNT"))
    else {
        return Ok(None);
    };
    let num = |name: &str, v: &str| -> Result<usize> {
        v.trim()
            .parse()
            .map_err(|_| CliError::Usage(format!("{name}={v:?} is not a number (Slurm job array)")))
    };
    let id = num("SLURM_ARRAY_TASK_ID", &id)?;
    let n = num("SLURM_ARRAY_TASK_COUNT", &count)?;
    let min = match var("SLURM_ARRAY_TASK_MIN") {
        Some(m) => num("SLURM_ARRAY_TASK_MIN", &m)?,
        None => 0,
    };
    match id.checked_sub(min) {
        Some(i) if i < n => Ok(Some((i, n))),
        _ => Err(CliError::Usage(format!(
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
        return Err(CliError::Usage(format!(
            "{what}. This example runs Summit on InceptionV1 over your images; provide\n{}",
            missing.join("\n")
        )));
    }
    let (Some(w), Some(d)) = (weights, data) else {
        return Err(CliError::Usage("no --weights or --data given".into()));
    };
    if !w.is_file() {
        return Err(CliError::Usage(format!(
            "--weights {}: no such file\n{INCEPTION_WEIGHTS_HELP}",
            w.display()
        )));
    }
    if !d.is_dir() {
        return Err(CliError::Usage(format!(
            "--data {}: no such directory\n{INCEPTION_DATA_HELP}",
            d.display()
        )));
    }
    Ok((w.to_path_buf(), d.to_path_buf()))
}
