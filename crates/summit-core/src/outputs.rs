//! Work on finished output directories: merging shard outputs (the aggregates of several
//! output directories, each a [`Pipeline::run`](crate::Pipeline::run) over one shard,
//! [`crate::Config::shard`], merged exactly and written as one output directory with graphs,
//! overview and web view), and comparing two classes of an output.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use summit_export::{
    ClassInfo, Manifest, WriteOptions, read_graph, read_manifest, write_comparison,
};
use summit_graph::GraphComparison;

use crate::classes::class_index;
use crate::config::Config;
use crate::error::{CoreError, Result};
use crate::pipeline::merge_aggregate_files;
use crate::run::{RunContext, RunMeta, RunReport, finish_aggregates};
use summit_influence::Aggregates;

/// The aggregates file of an output directory.
pub const AGGREGATES_FILE: &str = "aggregates.bin";

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn shard_mismatch(dir: &Path, first: &Path, what: &str) -> CoreError {
    CoreError::Usage(format!(
        "shard output {} does not match {}: different {what}; only outputs of the same model, \
         dataset, classes and parameters can be merged",
        dir.display(),
        first.display()
    ))
}

/// Whether `path` (which need not exist) is `dir` or lies inside it, comparing canonical
/// paths of their nearest existing ancestors (so `a/../b` and symbolic links count).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    fn resolve(p: &Path) -> Option<PathBuf> {
        use std::path::Component;
        let abs = if p.is_absolute() {
            p.to_path_buf()
        } else {
            std::env::current_dir().ok()?.join(p)
        };
        // the longest existing ancestor canonical, the rest lexically (`..` pops)
        let mut base = abs.as_path();
        let mut rest = Vec::new();
        let mut out = loop {
            if let Ok(c) = base.canonicalize() {
                break c;
            }
            rest.push(base.components().next_back()?);
            base = base.parent()?;
        };
        for c in rest.into_iter().rev() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        Some(out)
    }
    match (resolve(path), resolve(dir)) {
        (Some(p), Some(d)) => p.starts_with(d),
        _ => false,
    }
}

/// Checks, before any work, that `dir` can take a new output
/// ([`summit_export::check_output_target`]: it does not exist, is empty, or — with `force` —
/// holds a previous summit-rs output; not `.` or a mount point; a file can be created where it
/// is staged), so that a long pass does not end in these errors. Nothing is left changed on
/// disk.
pub fn check_output_dir(dir: &Path, force: bool) -> Result<()> {
    summit_export::check_output_target(dir, force).map_err(CoreError::export(format!(
        "checking the output directory {}",
        dir.display()
    )))
}

/// Merges the shard output directories `shards` into a new output directory `out`: their
/// `aggregates.bin` files are merged ([`merge_aggregate_files`]: same parameters, no image in
/// two shards), skipped inputs are united, and graphs, overview, Summit format and web view are
/// written with the first shard's configuration (from its manifest) by [`finish_aggregates`].
///
/// Dataset-example patches are not written (they need the images; the merged aggregates keep
/// the example lists). Errors name the shard at fault: a missing manifest or aggregates file,
/// another model, dataset, class list, layer list or parameters. `out` must not be one of the
/// shards.
pub fn merge_outputs<P: AsRef<Path>>(
    shards: &[P],
    out: &Path,
    options: &WriteOptions,
) -> Result<RunReport> {
    let start = Instant::now();
    let merged = read_shards(shards, out, options)?;
    let first = &merged.manifests[0];
    let meta = RunMeta {
        dataset_name: first.dataset.name.clone(),
        dataset_source: first.dataset.source.clone(),
        classes: manifest_classes(first),
    };
    let identity = match (&first.model_weights_hash, &first.model_description_hash) {
        (Some(w), Some(d)) => Some(summit_model::ModelIdentity {
            weights: w.clone(),
            description: d.clone(),
        }),
        _ => None,
    };
    let dirs: Vec<PathBuf> = shards.iter().map(|d| d.as_ref().to_path_buf()).collect();
    // the shards' preprocessing, recorded again (null in outputs that did not record one)
    let transform: Option<summit_data::Transform> = match first.parameters.get("transform") {
        None | Some(serde_json::Value::Null) => None,
        Some(t) => Some(serde_json::from_value(t.clone()).map_err(|e| {
            CoreError::Usage(format!(
                "the manifest of shard output {} has a `parameters.transform` this build \
                 cannot read: {e}",
                dirs[0].display()
            ))
        })?),
    };
    let context = RunContext {
        model: first.model.clone(),
        identity,
        layers: first.layers.clone(),
        config: &merged.config,
        meta: &meta,
        halves: None,
        predictions: crate::run::PredictionSource::Shards(&dirs),
        transform: transform.as_ref(),
        dataset_fingerprint: first.dataset.fingerprint.clone(),
    };
    let mut phases = vec![("merge".to_string(), start.elapsed().as_secs_f64())];
    let options = WriteOptions {
        patches: false,
        ..*options
    };
    finish_aggregates(
        &merged.aggregates,
        &merged.skipped,
        None,
        &mut phases,
        out,
        &context,
        None,
        &options,
    )
}

/// The run configuration a shard output's manifest records.
fn shard_config(dir: &Path, m: &Manifest) -> Result<Config> {
    let v = m.parameters.get("config").cloned().ok_or_else(|| {
        CoreError::Usage(format!(
            "the manifest of shard output {} has no `parameters.config`",
            dir.display()
        ))
    })?;
    serde_json::from_value(v).map_err(|e| {
        CoreError::Usage(format!(
            "the manifest of shard output {} has a `parameters.config` this build cannot read: \
             {e}",
            dir.display()
        ))
    })
}

/// Checks that the shard outputs are exactly one whole split: every one a shard `i` of the
/// same `n`, each `i` of `0..n` once, none limited to its first images (`--limit`). Errors name
/// the shard at fault, or the shards missing.
fn check_shard_set(dirs: &[PathBuf], manifests: &[Manifest]) -> Result<()> {
    let mut split: Option<(usize, &Path)> = None;
    let mut seen: BTreeMap<usize, &Path> = BTreeMap::new();
    for (d, m) in dirs.iter().zip(manifests) {
        let c = shard_config(d, m)?;
        let Some((i, n)) = c.shard else {
            return Err(CoreError::Usage(format!(
                "{} is not a shard output (its run had no --shard): only the shards of one \
                 split can be merged",
                d.display()
            )));
        };
        if let Some(limit) = c.limit {
            return Err(CoreError::Usage(format!(
                "shard output {} was made with --limit {limit}: it holds only part of shard \
                 {i}/{n}; rerun that shard without --limit",
                d.display()
            )));
        }
        match split {
            None => split = Some((n, d)),
            Some((n0, d0)) if n0 != n => {
                return Err(CoreError::Usage(format!(
                    "shard output {} is shard {i} of {n}, shard output {} is of a split into \
                     {n0}: shards of different splits cannot be merged",
                    d.display(),
                    d0.display()
                )));
            }
            Some(_) => {}
        }
        if let Some(other) = seen.insert(i, d) {
            return Err(CoreError::Usage(format!(
                "shard outputs {} and {} are both shard {i} of {n}",
                other.display(),
                d.display()
            )));
        }
    }
    if let Some((n, _)) = split {
        let missing: Vec<String> = (0..n)
            .filter(|i| !seen.contains_key(i))
            .map(|i| format!("{i}/{n}"))
            .collect();
        if !missing.is_empty() {
            return Err(CoreError::Usage(format!(
                "the shard set is incomplete: shard{} {} of the split into {n} {} missing; \
                 merge every shard of the split",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            )));
        }
    }
    Ok(())
}

/// Shard outputs read and merged, not yet written.
pub(crate) struct MergedShards {
    /// The shards' manifests, in the order given.
    pub manifests: Vec<Manifest>,
    /// Their aggregates, merged.
    pub aggregates: Aggregates,
    /// Their skipped inputs, united, by index.
    pub skipped: Vec<summit_data::Skipped>,
    /// The first shard's configuration, without shard, checkpoint and batch limit.
    pub config: Config,
}

/// Reads and checks the shard outputs `shards` for a merge into `out`, and merges their
/// aggregates (see [`merge_outputs`]).
pub(crate) fn read_shards<P: AsRef<Path>>(
    shards: &[P],
    out: &Path,
    options: &WriteOptions,
) -> Result<MergedShards> {
    let dirs: Vec<PathBuf> = shards.iter().map(|p| p.as_ref().to_path_buf()).collect();
    let Some(first_dir) = dirs.first() else {
        return Err(CoreError::Usage(
            "no shard output directories to merge".into(),
        ));
    };
    check_output_dir(out, options.force)?;
    let mut manifests: Vec<Manifest> = Vec::with_capacity(dirs.len());
    for d in &dirs {
        if same_dir(d, out) {
            return Err(CoreError::Usage(format!(
                "the merged output {} is one of the shards; choose a new directory",
                out.display()
            )));
        }
        let m = read_manifest(d).map_err(CoreError::export(format!(
            "reading the manifest of shard output {}",
            d.display()
        )))?;
        if let Some(f) = manifests.first() {
            if m.model != f.model {
                return Err(shard_mismatch(d, first_dir, "model"));
            }
            if m.model_weights_hash != f.model_weights_hash {
                let show =
                    |h: &Option<String>| h.clone().unwrap_or_else(|| "(not recorded)".into());
                return Err(CoreError::Usage(format!(
                    "shard output {} was made with weights {} of `{}`, shard output {} with \
                     weights {}: only outputs of the same weights can be merged",
                    d.display(),
                    show(&m.model_weights_hash),
                    m.model,
                    first_dir.display(),
                    show(&f.model_weights_hash)
                )));
            }
            if m.model_description_hash != f.model_description_hash {
                return Err(shard_mismatch(d, first_dir, "model description"));
            }
            if m.dataset.name != f.dataset.name {
                return Err(shard_mismatch(d, first_dir, "dataset"));
            }
            if m.dataset.source != f.dataset.source {
                return Err(shard_mismatch(
                    d,
                    first_dir,
                    &format!(
                        "dataset source ({} and {})",
                        m.dataset.source, f.dataset.source
                    ),
                ));
            }
            if m.dataset.fingerprint != f.dataset.fingerprint {
                return Err(shard_mismatch(
                    d,
                    first_dir,
                    "dataset (its files, labels or class order differ: another folder or class list)",
                ));
            }
            if m.layers != f.layers {
                return Err(shard_mismatch(d, first_dir, "summary layers"));
            }
            let names = |m: &Manifest| -> Vec<(String, Option<String>)> {
                m.classes
                    .iter()
                    .map(|c| (c.name.clone(), c.synset.clone()))
                    .collect()
            };
            if names(&m) != names(f) {
                return Err(shard_mismatch(d, first_dir, "classes"));
            }
            if m.preset != f.preset {
                return Err(shard_mismatch(d, first_dir, "preset"));
            }
        }
        manifests.push(m);
    }
    check_shard_set(&dirs, &manifests)?;
    let files: Vec<PathBuf> = dirs.iter().map(|d| d.join(AGGREGATES_FILE)).collect();
    let aggs = merge_aggregate_files(&files)?;
    let first = &manifests[0];
    let mut config: Config = shard_config(first_dir, first)?;
    config.shard = None;
    config.checkpoint = None;
    config.max_batches = None;
    let mut skipped: Vec<summit_data::Skipped> = manifests
        .iter()
        .flat_map(|m| m.dataset.skipped.iter())
        .map(|s| summit_data::Skipped {
            index: usize::try_from(s.index).unwrap_or(usize::MAX),
            source: s.source.clone(),
            reason: s.reason.clone(),
        })
        .collect();
    skipped.sort_by_key(|s| s.index);
    skipped.dedup_by_key(|s| s.index);
    Ok(MergedShards {
        manifests,
        aggregates: aggs,
        skipped,
        config,
    })
}

/// The classes of an output directory's manifest, by class index.
pub fn manifest_classes(manifest: &Manifest) -> Vec<ClassInfo> {
    manifest
        .classes
        .iter()
        .map(|c| ClassInfo {
            name: c.name.clone(),
            synset: c.synset.clone(),
        })
        .collect()
}

/// What [`compare_output_classes`] wrote.
#[derive(Debug, Clone)]
pub struct WrittenComparison {
    /// Class A (index, name).
    pub a: (usize, String),
    /// Class B (index, name).
    pub b: (usize, String),
    /// The comparison of their attribution graphs.
    pub comparison: GraphComparison,
    /// The file written, `dir/comparisons/{a}-vs-{b}.json`.
    pub path: PathBuf,
}

/// Compares the attribution graphs of classes `a` and `b` (names, synsets or indices, see
/// [`class_index`]) of the output directory `dir` ([`summit_graph::compare`]) and writes
/// `dir/comparisons/{a}-vs-{b}.json` atomically. An unknown class is an error listing the
/// output's classes.
pub fn compare_output_classes(dir: &Path, a: &str, b: &str) -> Result<WrittenComparison> {
    let manifest = read_manifest(dir).map_err(CoreError::export(format!(
        "reading the manifest of {}",
        dir.display()
    )))?;
    let classes = manifest_classes(&manifest);
    let ia = class_index(&classes, a)?;
    let ib = class_index(&classes, b)?;
    let graph = |i: usize| -> Result<summit_graph::AttributionGraph> {
        let file = dir.join(&manifest.classes[i].graph_file);
        let g = read_graph(&file).map_err(CoreError::export(format!(
            "reading the attribution graph of class {i} ({})",
            classes[i].name
        )))?;
        Ok(g.graph)
    };
    let (ga, gb) = (graph(ia)?, graph(ib)?);
    let comparison = summit_graph::compare(&ga, &gb).map_err(CoreError::graph(format!(
        "comparing classes {ia} ({}) and {ib} ({})",
        classes[ia].name, classes[ib].name
    )))?;
    let path = write_comparison(
        dir,
        (ia, &classes[ia].name),
        (ib, &classes[ib].name),
        &comparison,
    )
    .map_err(CoreError::export(format!(
        "writing the comparison of classes {ia} and {ib} into {}",
        dir.display()
    )))?;
    Ok(WrittenComparison {
        a: (ia, classes[ia].name.clone()),
        b: (ib, classes[ib].name.clone()),
        comparison,
        path,
    })
}
