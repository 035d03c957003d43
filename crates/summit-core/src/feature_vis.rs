//! Feature visualizations of a run (SPEC §4.1, §5): for every vertex of every exported graph
//! (or every channel), a plain visualization and its diversity images, made by
//! [`summit_featvis::visualize`], cached, and written in the project's own format
//! (`feature-vis/{l}-{layer}/{channel}.png`, `…/{channel}-diversity-{d}.png`,
//! [`FEATURE_VIS_FILE`], `view/featvis.js` for the web view) and in the Summit format
//! (`data/feature-vis/channel/{layer}-{channel}-channel.jpg`,
//! `data/feature-vis/diversity-{d}/{layer}-{channel}-diversity-{d}.jpg`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use summit_featvis::{FeatureVisParams, InputMap, Visualization, visualize};

use crate::analysis::Analysis;
use crate::config::{FeatureVisConfig, FeatureVisMode};
use crate::error::{CoreError, Result};
use crate::images::{write_file_atomic, write_view_data};
use crate::pipeline::Pipeline;

/// The feature-visualization data file of an output directory.
pub const FEATURE_VIS_FILE: &str = "feature-vis.json";

/// One visualised channel in [`FEATURE_VIS_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVisEntry {
    /// The summary layer's index.
    pub layer: usize,
    /// The channel.
    pub channel: usize,
    /// The plain visualization (relative path).
    pub image: String,
    /// The diversity images (relative paths).
    pub diversity: Vec<String>,
    /// The objective (the channel's mean activation, transforms applied) at the last step of
    /// the plain visualization.
    pub objective: f32,
    /// Whether it came from the cache.
    pub cached: bool,
}

/// The content of [`FEATURE_VIS_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureVisFile {
    /// The model.
    pub model: String,
    /// Which channels.
    pub mode: FeatureVisMode,
    /// The parameters.
    pub params: FeatureVisParams,
    /// Side of the images.
    pub size: usize,
    /// `"{layer}:{channel}"` → its images.
    pub channels: BTreeMap<String, FeatureVisEntry>,
    /// Channels optimised in this run.
    pub computed: usize,
    /// Channels taken from the cache.
    pub cached: usize,
    /// Seconds the step took.
    pub seconds: f64,
}

/// The channels to visualise, per summary layer: every vertex of every graph of `analysis`,
/// or every channel (`channels[l]` = the layer's channel count); with `max_channels`, only
/// that many: the largest summed vertex count over the graphs first (ties: layer, then channel
/// ascending; in `all` mode channels without a vertex come last).
pub fn feature_vis_channels(
    analysis: &Analysis,
    mode: FeatureVisMode,
    channels: &[usize],
    max_channels: Option<usize>,
) -> Vec<BTreeSet<usize>> {
    let mut count: BTreeMap<(usize, usize), u64> = BTreeMap::new();
    for g in &analysis.graphs {
        for (l, layer) in g.layers.iter().enumerate() {
            if l >= channels.len() {
                continue;
            }
            for v in &layer.vertices {
                *count.entry((l, v.channel as usize)).or_default() += u64::from(v.count);
            }
        }
    }
    if mode == FeatureVisMode::All {
        for (l, &n) in channels.iter().enumerate() {
            for c in 0..n {
                count.entry((l, c)).or_default();
            }
        }
    }
    let mut ranked: Vec<((usize, usize), u64)> = count.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(m) = max_channels {
        ranked.truncate(m);
    }
    let mut out = vec![BTreeSet::new(); channels.len()];
    for ((l, c), _) in ranked {
        out[l].insert(c);
    }
    out
}

/// What the cache keeps of one channel.
#[derive(Debug, Serialize, Deserialize)]
struct CacheMeta {
    key: String,
    objective: f32,
    diversity: usize,
}

struct Images {
    plain: image::RgbImage,
    diversity: Vec<image::RgbImage>,
    objective: f32,
}

fn cache_key(
    weights: &str,
    description: &str,
    layer: &str,
    channel: usize,
    params: &FeatureVisParams,
    map: &InputMap,
) -> String {
    let text = serde_json::json!({
        "weights": weights,
        "description": description,
        "layer": layer,
        "channel": channel,
        "params": params,
        "map": map,
        "format": 1,
    })
    .to_string();
    blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
}

fn read_cached(dir: &Path, key: &str, diversity: usize) -> Option<Images> {
    let meta: CacheMeta =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).ok()?).ok()?;
    if meta.key != key || meta.diversity != diversity {
        return None;
    }
    let load = |name: &str| image::open(dir.join(name)).ok().map(|i| i.to_rgb8());
    let plain = load("channel.png")?;
    let diversity = (0..diversity)
        .map(|d| load(&format!("diversity-{d}.png")))
        .collect::<Option<Vec<_>>>()?;
    Some(Images {
        plain,
        diversity,
        objective: meta.objective,
    })
}

fn png(img: &image::RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .map_err(|e| CoreError::Config(format!("encoding {}: {e}", path.display())))?;
    write_file_atomic(path, &bytes)
}

fn write_cached(dir: &Path, key: &str, images: &Images) -> Result<()> {
    png(&images.plain, &dir.join("channel.png"))?;
    for (d, img) in images.diversity.iter().enumerate() {
        png(img, &dir.join(format!("diversity-{d}.png")))?;
    }
    // last: an entry without it is incomplete and recomputed
    let meta = CacheMeta {
        key: key.to_string(),
        objective: images.objective,
        diversity: images.diversity.len(),
    };
    let json = serde_json::to_vec(&meta)
        .map_err(|e| CoreError::Config(format!("encoding the cache entry: {e}")))?;
    write_file_atomic(&dir.join("meta.json"), &json)
}

impl Pipeline<'_> {
    /// Makes (or takes from `config.cache`) the feature visualizations of the channels
    /// [`feature_vis_channels`] names and writes them under `out` (see the module docs; the
    /// Summit format's copies when `summit_format`). `map` is the model's preprocessing.
    pub fn write_feature_vis(
        &self,
        analysis: &Analysis,
        config: &FeatureVisConfig,
        map: &InputMap,
        summit_format: bool,
        out: &Path,
    ) -> Result<FeatureVisFile> {
        let t0 = Instant::now();
        let model = self.model();
        let desc = model.description();
        let layers = self.layer_descs();
        let counts: Vec<usize> = desc.layers.iter().map(|l| l.channels).collect();
        let wanted = feature_vis_channels(analysis, config.mode, &counts, config.max_channels);
        let plain_params = FeatureVisParams {
            diversity: 1,
            ..config.params.clone()
        };
        let d = config.params.diversity;
        let identity = self.identity();
        let mut file = FeatureVisFile {
            model: desc.name.clone(),
            mode: config.mode,
            params: config.params.clone(),
            size: config
                .params
                .size
                .min(desc.input.height.min(desc.input.width)),
            channels: BTreeMap::new(),
            computed: 0,
            cached: 0,
            seconds: 0.0,
        };
        // cached channels first, so that the progress bar counts only the work left
        let mut found: BTreeMap<(usize, usize), Images> = BTreeMap::new();
        let mut missing: Vec<Vec<usize>> = vec![Vec::new(); wanted.len()];
        let mut keys: BTreeMap<(usize, usize), String> = BTreeMap::new();
        let mut from_cache: BTreeSet<(usize, usize)> = BTreeSet::new();
        // diversity images per channel (none when `diversity` is 1)
        let n_div = if d > 1 { d } else { 0 };
        for (l, set) in wanted.iter().enumerate() {
            for &c in set {
                let key = cache_key(
                    &identity.weights,
                    &identity.description,
                    &desc.layers[l].name,
                    c,
                    &config.params,
                    map,
                );
                match config
                    .cache
                    .as_ref()
                    .and_then(|dir| read_cached(&dir.join(&key), &key, n_div))
                {
                    Some(img) => {
                        found.insert((l, c), img);
                        from_cache.insert((l, c));
                    }
                    None => missing[l].push(c),
                }
                keys.insert((l, c), key);
            }
        }
        file.cached = found.len();
        let batches = |n: usize, per: usize| n.div_ceil((config.params.batch_size / per).max(1));
        let total: usize = missing
            .iter()
            .map(|m| {
                (batches(m.len(), 1) + if d > 1 { batches(m.len(), d) } else { 0 })
                    * config.params.steps
            })
            .sum();
        let bar = self.feature_vis_bar(total as u64);
        for (l, chans) in missing.iter().enumerate() {
            if chans.is_empty() {
                continue;
            }
            let name = &desc.layers[l].name;
            let ctx = || format!("feature visualization of layer `{name}`");
            let plain = visualize(
                model,
                name,
                chans,
                map,
                &plain_params,
                self.device(),
                |_, _| {
                    bar.inc(1);
                },
            )
            .map_err(CoreError::featvis(ctx()))?;
            let div: Vec<Option<Visualization>> = if d > 1 {
                visualize(
                    model,
                    name,
                    chans,
                    map,
                    &config.params,
                    self.device(),
                    |_, _| bar.inc(1),
                )
                .map_err(CoreError::featvis(ctx()))?
                .into_iter()
                .map(Some)
                .collect()
            } else {
                vec![None; chans.len()]
            };
            for (p, dv) in plain.into_iter().zip(div) {
                let images = Images {
                    plain: p.images.into_iter().next().unwrap_or_default(),
                    diversity: dv.map(|v| v.images).unwrap_or_default(),
                    objective: p.objective.first().copied().unwrap_or(0.0),
                };
                if let (Some(dir), Some(key)) = (&config.cache, keys.get(&(l, p.channel))) {
                    write_cached(&dir.join(key), key, &images)?;
                }
                found.insert((l, p.channel), images);
                file.computed += 1;
            }
        }
        bar.finish_and_clear();
        for ((l, c), images) in &found {
            let dir = format!(
                "feature-vis/{l}-{}",
                summit_export::sanitize_name(&layers[*l].name)
            );
            let image = format!("{dir}/{c}.png");
            png(&images.plain, &out.join(&image))?;
            let mut diversity = Vec::with_capacity(images.diversity.len());
            for (k, img) in images.diversity.iter().enumerate() {
                let rel = format!("{dir}/{c}-diversity-{k}.png");
                png(img, &out.join(&rel))?;
                diversity.push(rel);
            }
            if summit_format {
                let summit = layers[*l].summit_name();
                let ch = u32::try_from(*c).unwrap_or(u32::MAX);
                let jpeg = |img: &image::RgbImage, rel: String| {
                    summit_export::write_jpeg(img, &out.join(&rel)).map_err(CoreError::export(
                        format!("writing the Summit format's {rel}"),
                    ))
                };
                jpeg(
                    &images.plain,
                    summit_export::summit_channel_file(summit, ch),
                )?;
                for (k, img) in images.diversity.iter().enumerate() {
                    jpeg(img, summit_export::summit_diversity_file(summit, ch, k))?;
                }
            }
            file.channels.insert(
                format!("{l}:{c}"),
                FeatureVisEntry {
                    layer: *l,
                    channel: *c,
                    image,
                    diversity,
                    objective: images.objective,
                    cached: from_cache.contains(&(*l, *c)),
                },
            );
        }
        file.seconds = t0.elapsed().as_secs_f64();
        write_feature_vis_file(out, &file)?;
        Ok(file)
    }

    fn feature_vis_bar(&self, total: u64) -> ProgressBar {
        let target = if self.config().progress && std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template(
            "{bar:40} {pos}/{len} feature-visualization steps  elapsed {elapsed}  ETA {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    }
}

/// Writes [`FEATURE_VIS_FILE`] and `view/featvis.js` (atomically).
pub fn write_feature_vis_file(out: &Path, file: &FeatureVisFile) -> Result<()> {
    write_view_data(
        out,
        FEATURE_VIS_FILE,
        "featvis.js",
        "summitFeatVisData",
        file,
    )
}

/// The default cache directory of feature visualizations: `$SUMMIT_CACHE_DIR/feature-vis`,
/// else `$XDG_CACHE_HOME/summit-rs/feature-vis`, else `$HOME/.cache/summit-rs/feature-vis`
/// (`None` when none of them is set).
pub fn default_feature_vis_cache() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("SUMMIT_CACHE_DIR")
        .map(|d| d.join("feature-vis"))
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("summit-rs/feature-vis")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/summit-rs/feature-vis")))
}
