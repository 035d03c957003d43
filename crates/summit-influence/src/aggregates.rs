//! Everything one pass over a dataset accumulates, as a mergeable value
//! with a versioned binary file format.

use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use summit_activation::{
    ActivationCounts, ChannelMask, Example, ExampleHeaps, Selection, select_rows,
};

use crate::counts::{InfluenceCounts, top_influences_hop};
use crate::error::InfluenceError;
use crate::geometry::{HopGeometry, InfluenceGeometry};
use crate::kernel::influence_cpu_grouped;
use crate::merge::{HopSpec, PathCounts, PathSpec, merge_paths, merge_paths_class};
use crate::picks::{ImagePicks, PickParams};

/// The first 8 bytes of an aggregate file.
pub const AGGREGATES_MAGIC: [u8; 8] = *b"SUMMITAG";
/// The format version this build writes and reads.
pub const AGGREGATES_FORMAT_VERSION: u32 = 4;
/// The number of equal bins over `[0, 1]` of the per-class histograms of the predicted
/// probability of the true class ([`Aggregates::probability_histogram`]).
pub const PROBABILITY_BINS: usize = 100;
/// Header size: magic, version (u32), payload length (u64), checksum (u64).
const HEADER_LEN: usize = 8 + 4 + 8 + 8;

/// One summary layer as the aggregation sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerParams {
    /// The layer's name (e.g. `"mixed4a"`).
    pub name: String,
    /// Its channel count `C_l`.
    pub channels: usize,
    /// Channels excluded from selection (SPEC §1 step 2), also excluded as
    /// influence inputs of the next layer's first hops.
    pub excluded: Vec<usize>,
    /// The channel count of the paths' input: the previous summary layer's
    /// `channels` (for the first summary layer, the stem tap's channels).
    pub input_channels: usize,
    /// The convolution paths into this layer (empty: no influences).
    pub paths: Vec<PathSpec>,
}

/// The inputs selected for a batch's influences into one summary layer
/// ([`AggregateParams::select_layer_influences`]), ready to be recorded by
/// [`Aggregates::add_layer_selection`].
#[derive(Debug, Clone, PartialEq)]
pub struct LayerSelection {
    layer: usize,
    batch: usize,
    /// `[path][hop][image · C_out + j]`: the selected inputs of each output channel
    selected: Vec<Vec<Vec<Vec<u32>>>>,
}

impl LayerSelection {
    /// The summary layer the selection is for.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// The number of images it covers.
    pub fn batch(&self) -> usize {
        self.batch
    }
}

/// The parameters of an aggregation run. Two [`Aggregates`] merge only when
/// these are equal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AggregateParams {
    /// The number of classes `C`.
    pub num_classes: usize,
    /// The summary layers, input to output.
    pub layers: Vec<LayerParams>,
    /// Selection for the activation counts `A` (default Method 2, 3 %).
    pub activation_selection: Selection,
    /// Selection for the influence counts `I` (default Method 1, top 5).
    pub influence_selection: Selection,
    /// Hop geometry for influences (the layer's own, or stride-3 SAME for
    /// `summit2019`).
    pub influence_geometry: InfluenceGeometry,
    /// Dataset examples kept per channel (default 10).
    pub examples_per_channel: usize,
}

impl AggregateParams {
    /// The parameters of summary layer `layer` (an error naming it when out of range).
    pub(crate) fn layer_params(&self, layer: usize) -> Result<&LayerParams, InfluenceError> {
        self.layers
            .get(layer)
            .ok_or(InfluenceError::IndexOutOfRange {
                what: "summary layer",
                index: layer,
                len: self.layers.len(),
            })
    }

    /// The excluded input channels of a hop: the previous summary layer's for a first hop,
    /// none for inner layers.
    pub(crate) fn hop_mask(&self, layer: usize, hop: usize) -> ChannelMask {
        if hop == 0 && layer > 0 {
            ChannelMask::from_channels(&self.layers[layer - 1].excluded)
        } else {
            ChannelMask::none()
        }
    }

    pub(crate) fn check_labels(
        &self,
        labels: &[usize],
        batch: usize,
    ) -> Result<(), InfluenceError> {
        if labels.len() != batch {
            return Err(InfluenceError::Shape {
                what: "labels",
                dims: vec![batch],
                expected: batch,
                got: labels.len(),
            });
        }
        match labels.iter().position(|&l| l >= self.num_classes) {
            Some(image) => Err(InfluenceError::LabelOutOfRange {
                image,
                label: labels[image],
                classes: self.num_classes,
            }),
            None => Ok(()),
        }
    }

    /// The shape of hop `hop` of path `path` into summary layer `layer`.
    pub fn hop_spec(
        &self,
        layer: usize,
        path: usize,
        hop: usize,
    ) -> Result<HopSpec, InfluenceError> {
        let lp = self.layer_params(layer)?;
        let p = lp.paths.get(path).ok_or(InfluenceError::IndexOutOfRange {
            what: "path",
            index: path,
            len: lp.paths.len(),
        })?;
        p.hops
            .get(hop)
            .copied()
            .ok_or(InfluenceError::IndexOutOfRange {
                what: "hop",
                index: hop,
                len: p.hops.len(),
            })
    }

    /// Whether the last hop of path `path` into `layer` shares output channels with another
    /// path's (a residual Add), so that its candidates compete with theirs (SPEC §2.1).
    pub fn last_hop_competes(&self, layer: usize, path: usize) -> Result<bool, InfluenceError> {
        let lp = self.layer_params(layer)?;
        let mine = lp
            .paths
            .get(path)
            .ok_or(InfluenceError::IndexOutOfRange {
                what: "path",
                index: path,
                len: lp.paths.len(),
            })?
            .out_range();
        Ok(lp.paths.iter().enumerate().any(|(q, other)| {
            let r = other.out_range();
            q != path && r.start < mine.end && mine.start < r.end
        }))
    }

    /// The influences of one hop computed on the CPU from the hop's input `x`
    /// (`[B, C_in, H, W]`) and folded kernel (`[C_out, C_in / groups, kh, kw]`), with the
    /// hop's own geometry `layer_geometry` resolved by the parameters'
    /// [`InfluenceGeometry`] (an identity hop keeps its own geometry under every preset):
    /// `[B, C_out, C_in / groups]`, as [`add_influences`](Aggregates::add_influences) and
    /// [`add_layer_influences`](Aggregates::add_layer_influences) take them.
    #[allow(clippy::too_many_arguments)]
    pub fn hop_influences_cpu(
        &self,
        layer: usize,
        path: usize,
        hop: usize,
        x: &[f32],
        x_dims: [usize; 4],
        kernel: &[f32],
        k_dims: [usize; 4],
        layer_geometry: HopGeometry,
    ) -> Result<Vec<f32>, InfluenceError> {
        let spec = self.hop_spec(layer, path, hop)?;
        let geom = self.hop_geometry(&spec, layer_geometry, x_dims, k_dims);
        if spec.c_in != x_dims[1] || spec.c_out != k_dims[0] || spec.group_inputs() != k_dims[1] {
            return Err(InfluenceError::Mismatch {
                what: format!(
                    "hop {hop} of path {path} into layer {layer}: (C_in, C_out, C_in / groups)"
                ),
                left: format!("{:?}", (spec.c_in, spec.c_out, spec.group_inputs())),
                right: format!("{:?}", (x_dims[1], k_dims[0], k_dims[1])),
            });
        }
        influence_cpu_grouped(x, x_dims, kernel, k_dims, spec.groups, &geom)
    }

    /// The geometry the influences of a hop use: its own for an identity hop, else its own
    /// resolved by the parameters' [`InfluenceGeometry`].
    pub fn hop_geometry(
        &self,
        spec: &HopSpec,
        layer_geometry: HopGeometry,
        x_dims: [usize; 4],
        k_dims: [usize; 4],
    ) -> HopGeometry {
        if spec.identity {
            layer_geometry
        } else {
            self.influence_geometry.resolve(
                layer_geometry,
                [x_dims[2], x_dims[3]],
                [k_dims[2], k_dims[3]],
            )
        }
    }

    /// The selection of a batch's influences of every hop of every path into summary layer
    /// `layer`, without recording it (see [`Aggregates::add_layer_influences`], which is this
    /// and [`Aggregates::add_layer_selection`]): it reads only the parameters, so batches can
    /// be selected on several threads while one [`Aggregates`] records them in order.
    pub fn select_layer_influences(
        &self,
        layer: usize,
        labels: &[usize],
        l: &[Vec<&[f32]>],
    ) -> Result<LayerSelection, InfluenceError> {
        let b = labels.len();
        self.check_labels(labels, b)?;
        let lp = self.layer_params(layer)?;
        if l.len() != lp.paths.len() {
            return Err(InfluenceError::Shape {
                what: "influences per path",
                dims: vec![lp.paths.len()],
                expected: lp.paths.len(),
                got: l.len(),
            });
        }
        let sel = self.influence_selection;
        // which paths' last hops write each summary channel, in path order
        let mut cover: Vec<Vec<usize>> = vec![Vec::new(); lp.channels];
        for (p, path) in lp.paths.iter().enumerate() {
            if l[p].len() != path.hops.len() {
                return Err(InfluenceError::BadPath {
                    path: p,
                    reason: format!(
                        "{} influence arrays for {} hops",
                        l[p].len(),
                        path.hops.len()
                    ),
                });
            }
            for (h, (hop, values)) in path.hops.iter().zip(&l[p]).enumerate() {
                let want = b * hop.c_out * hop.group_inputs();
                if values.len() != want {
                    return Err(InfluenceError::BadPath {
                        path: p,
                        reason: format!(
                            "hop {h}: {} influences, expected [B={b}, C_out={}, C_in/groups={}]",
                            values.len(),
                            hop.c_out,
                            hop.group_inputs()
                        ),
                    });
                }
            }
            for j in path.out_range() {
                cover[j].push(p);
            }
        }
        let contested: Vec<bool> = (0..lp.paths.len())
            .map(|p| lp.paths[p].out_range().any(|j| cover[j].len() > 1))
            .collect();
        let mut selections: Vec<Vec<Vec<Vec<u32>>>> = Vec::with_capacity(lp.paths.len());
        for (p, path) in lp.paths.iter().enumerate() {
            let mut per_hop = Vec::with_capacity(path.hops.len());
            for (h, hop) in path.hops.iter().enumerate() {
                if h + 1 == path.hops.len() && contested[p] {
                    per_hop.push(vec![Vec::new(); b * hop.c_out]);
                } else {
                    let mask = self.hop_mask(layer, h);
                    per_hop.push(top_influences_hop(l[p][h], b, hop, &mask, &sel)?);
                }
            }
            selections.push(per_hop);
        }
        if contested.iter().any(|&c| c) {
            let masks: Vec<ChannelMask> = lp
                .paths
                .iter()
                .map(|path| self.hop_mask(layer, path.hops.len() - 1))
                .collect();
            let mut selector = summit_activation::Selector::new();
            let (mut values, mut owners, mut excluded, mut out) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for n in 0..b {
                for (j, paths) in cover.iter().enumerate() {
                    if !paths.iter().any(|&p| contested[p]) {
                        continue;
                    }
                    values.clear();
                    owners.clear();
                    excluded.clear();
                    for &p in paths {
                        let path = &lp.paths[p];
                        let last = path.hops.len() - 1;
                        let hop = &path.hops[last];
                        let jl = j - path.out_offset;
                        let (start, cin_g) = (hop.group_start(jl), hop.group_inputs());
                        let row = &l[p][last][(n * hop.c_out + jl) * cin_g..][..cin_g];
                        for (q, &v) in row.iter().enumerate() {
                            if masks[p].contains(start + q) {
                                excluded.push(values.len());
                            }
                            values.push(v);
                            owners.push((p, (start + q) as u32));
                        }
                    }
                    selector
                        .select(
                            &values,
                            &ChannelMask::from_channels(&excluded),
                            &sel,
                            &mut out,
                        )
                        .map_err(|e| match e {
                            summit_activation::ActivationError::NonFinite { value, .. } => {
                                InfluenceError::NonFinite {
                                    what: "influences L of summed paths",
                                    index: n,
                                    value,
                                }
                            }
                            other => InfluenceError::Activation(other),
                        })?;
                    for &pos in &out {
                        let (p, i) = owners[pos];
                        let path = &lp.paths[p];
                        let last = path.hops.len() - 1;
                        let c_out = path.hops[last].c_out;
                        selections[p][last][n * c_out + j - path.out_offset].push(i);
                    }
                }
            }
        }
        Ok(LayerSelection {
            layer,
            batch: b,
            selected: selections,
        })
    }

    /// Checks selections, excluded channels and that every path chains from
    /// the layer's `input_channels` into its `channels`, and that
    /// `input_channels` of a layer after the first equals the previous
    /// layer's `channels`.
    pub fn validate(&self) -> Result<(), InfluenceError> {
        self.activation_selection.validate()?;
        self.influence_selection.validate()?;
        for (l, layer) in self.layers.iter().enumerate() {
            let in_layer = |e: InfluenceError| InfluenceError::InLayer {
                layer: l,
                source: Box::new(e),
            };
            if let Some(&e) = layer.excluded.iter().find(|&&e| e >= layer.channels) {
                return Err(in_layer(InfluenceError::IndexOutOfRange {
                    what: "excluded channel",
                    index: e,
                    len: layer.channels,
                }));
            }
            if l > 0
                && !layer.paths.is_empty()
                && layer.input_channels != self.layers[l - 1].channels
            {
                return Err(in_layer(InfluenceError::DimensionMismatch {
                    what: format!(
                        "path input channels of '{}' vs the channels of the previous summary layer '{}'",
                        layer.name,
                        self.layers[l - 1].name
                    ),
                    expected: self.layers[l - 1].channels,
                    got: layer.input_channels,
                }));
            }
            for (p, path) in layer.paths.iter().enumerate() {
                let bad = |reason: String| in_layer(InfluenceError::BadPath { path: p, reason });
                let (Some(first), Some(last)) = (path.hops.first(), path.hops.last()) else {
                    return Err(bad("a path needs at least one hop".into()));
                };
                for (h, hop) in path.hops.iter().enumerate() {
                    hop.validate().map_err(|e| bad(format!("hop {h}: {e}")))?;
                }
                if first.c_in != layer.input_channels {
                    return Err(bad(format!(
                        "the first hop has {} input channels, the layer's input {}",
                        first.c_in, layer.input_channels
                    )));
                }
                if let Some(h) = path.hops.windows(2).position(|w| w[0].c_out != w[1].c_in) {
                    return Err(bad(format!(
                        "hop {h}'s outputs do not match hop {}'s inputs",
                        h + 1
                    )));
                }
                if path.out_offset + last.c_out > layer.channels {
                    return Err(bad(format!(
                        "output channels {}..{} exceed the layer's {}",
                        path.out_offset,
                        path.out_offset + last.c_out,
                        layer.channels
                    )));
                }
            }
        }
        Ok(())
    }

    fn channels(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.channels).collect()
    }
}

/// Everything a pass over a dataset accumulates (SPEC §1, §2, §4): the
/// activation counts `A`, the influence counts `I` of every hop of every path,
/// the dataset examples, per-class image counts, top-1 correct counts and a
/// per-class histogram of the predicted probability of the true class
/// ([`PROBABILITY_BINS`] bins), with the parameters used, and the set of image
/// ids seen (a compressed bitmap, to refuse an image counted twice).
///
/// Nothing is kept per image beyond the bounded [`ImagePicks`] (classes × N plus two
/// fixed-size samples): the size is bounded by classes × channels
/// (plus the id bitmap, a few bytes per run of consecutive ids). All parts are
/// counts, top-N sets under a total order or the id set, so
/// [`merge`](Self::merge) of two shards equals one run over both, and nothing
/// depends on batch size, image order or thread count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    params: AggregateParams,
    activations: ActivationCounts,
    influences: Vec<Vec<PathCounts>>,
    examples: ExampleHeaps,
    class_images: Vec<u64>,
    class_top1_correct: Vec<u64>,
    /// `[class * PROBABILITY_BINS + bin]`: images of the class whose predicted probability of
    /// the class falls in the bin.
    probability_bins: Vec<u64>,
    /// Every image id counted.
    image_ids: roaring::RoaringTreemap,
    /// The images picked for a closer look (per-image attribution, model comparison).
    picks: ImagePicks,
}

/// One class's counts computed elsewhere (an importer of another tool's counts, or a
/// simulation), for [`Aggregates::add_class_counts`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassCounts {
    /// The class.
    pub class: usize,
    /// Its images are the ids `first_image_id..first_image_id + images`.
    pub first_image_id: u64,
    /// Number of images.
    pub images: u64,
    /// How many of them were classified correctly (top-1).
    pub top1_correct: u64,
    /// Histogram of their predicted probability of the class, [`PROBABILITY_BINS`] bins
    /// (summing to `images`).
    pub probability_bins: Vec<u64>,
    /// `activations[l][ch]`: the count `A_l[class, ch]`, every summary layer.
    pub activations: Vec<Vec<u32>>,
    /// `influences[l][p][h][j]`: the `(input, count)` pairs of row `j` of hop `h` of path `p`
    /// into summary layer `l` (every layer, path, hop and output channel).
    pub influences: Vec<Vec<Vec<HopRows>>>,
}

/// The rows of one hop for one class: `rows[j]` lists `(input, count)` pairs of output
/// channel `j`.
pub type HopRows = Vec<Vec<(u32, u32)>>;

impl Aggregates {
    /// Adds one class's counts computed elsewhere ([`ClassCounts`]): its images (ids,
    /// accuracy, probability histogram), its `A` rows and its `I` rows. Every shape is
    /// checked, and an image id already counted refused, before anything changes.
    pub fn add_class_counts(&mut self, c: &ClassCounts) -> Result<(), InfluenceError> {
        let p = &self.params;
        let class = c.class;
        if class >= p.num_classes {
            return Err(InfluenceError::LabelOutOfRange {
                image: 0,
                label: class,
                classes: p.num_classes,
            });
        }
        let shape = |what: &'static str, dims: Vec<usize>, expected: usize, got: usize| {
            InfluenceError::Shape {
                what,
                dims,
                expected,
                got,
            }
        };
        if c.probability_bins.len() != PROBABILITY_BINS
            || c.probability_bins.iter().sum::<u64>() != c.images
            || c.top1_correct > c.images
        {
            return Err(InfluenceError::Mismatch {
                what: format!("statistics of class {class}"),
                left: format!(
                    "{} images, {} correct, {PROBABILITY_BINS} bins summing to the images",
                    c.images, c.top1_correct
                ),
                right: format!(
                    "{} bins summing to {}",
                    c.probability_bins.len(),
                    c.probability_bins.iter().sum::<u64>()
                ),
            });
        }
        if c.activations.len() != p.layers.len() || c.influences.len() != p.layers.len() {
            return Err(shape(
                "per-layer counts of a class",
                vec![p.layers.len()],
                p.layers.len(),
                c.activations.len().min(c.influences.len()),
            ));
        }
        for (l, lp) in p.layers.iter().enumerate() {
            if c.activations[l].len() != lp.channels {
                return Err(shape(
                    "activation counts of a layer",
                    vec![lp.channels],
                    lp.channels,
                    c.activations[l].len(),
                ));
            }
            if c.influences[l].len() != lp.paths.len() {
                return Err(shape(
                    "paths of a layer",
                    vec![lp.paths.len()],
                    lp.paths.len(),
                    c.influences[l].len(),
                ));
            }
            for (path, spec) in c.influences[l].iter().zip(&lp.paths) {
                if path.len() != spec.hops.len() {
                    return Err(shape(
                        "hops of a path",
                        vec![spec.hops.len()],
                        spec.hops.len(),
                        path.len(),
                    ));
                }
                for (rows, &HopSpec { c_in, c_out, .. }) in path.iter().zip(&spec.hops) {
                    if rows.len() != c_out {
                        return Err(shape("rows of a hop", vec![c_out], c_out, rows.len()));
                    }
                    if let Some(&(i, _)) = rows.iter().flatten().find(|e| e.0 as usize >= c_in) {
                        return Err(InfluenceError::IndexOutOfRange {
                            what: "input channel",
                            index: i as usize,
                            len: c_in,
                        });
                    }
                }
            }
        }
        let ids = c.first_image_id..c.first_image_id.saturating_add(c.images);
        let mut new_ids = roaring::RoaringTreemap::new();
        new_ids.insert_range(ids);
        if let Some(id) = (&self.image_ids & &new_ids).min() {
            return Err(InfluenceError::DuplicateImage { image_id: id });
        }
        // everything checked but overflow: add the influence rows first (each row checks its
        // own overflow before changing), then the rest
        for (l, paths) in c.influences.iter().enumerate() {
            for (pi, path) in paths.iter().enumerate() {
                for (h, rows) in path.iter().enumerate() {
                    let counts = &mut self.influences[l][pi].hops[h];
                    for (j, row) in rows.iter().enumerate() {
                        counts.add_row(class, j, row)?;
                    }
                }
            }
        }
        for (l, row) in c.activations.iter().enumerate() {
            self.activations.add_row_counts(l, class, row)?;
        }
        self.class_images[class] += c.images;
        self.class_top1_correct[class] += c.top1_correct;
        for (x, y) in self.probability_bins[class * PROBABILITY_BINS..][..PROBABILITY_BINS]
            .iter_mut()
            .zip(&c.probability_bins)
        {
            *x += *y;
        }
        self.image_ids |= new_ids;
        Ok(())
    }

    /// Offers a batch of channel maxima of summary layer `layer` (`[B, C_l]`, with their
    /// arg-max positions) to the dataset examples only, without counting `A` (for importers
    /// and simulations whose counts come from [`add_class_counts`](Self::add_class_counts)).
    pub fn add_examples(
        &mut self,
        layer: usize,
        image_ids: &[u64],
        maxima: &[f32],
        argmax: &[u32],
    ) -> Result<(), InfluenceError> {
        self.examples.add_batch(layer, maxima, argmax, image_ids)?;
        Ok(())
    }

    /// Empty aggregates for `params` (validated).
    pub fn new(params: AggregateParams) -> Result<Self, InfluenceError> {
        params.validate()?;
        let channels = params.channels();
        let k = params.num_classes;
        Ok(Self {
            activations: ActivationCounts::new(k, &channels),
            influences: params
                .layers
                .iter()
                .map(|l| l.paths.iter().map(|p| PathCounts::new(k, p)).collect())
                .collect(),
            examples: ExampleHeaps::new(params.examples_per_channel, &channels),
            class_images: vec![0; k],
            class_top1_correct: vec![0; k],
            probability_bins: vec![0; k * PROBABILITY_BINS],
            image_ids: roaring::RoaringTreemap::new(),
            picks: ImagePicks::new(k, PickParams::default()),
            params,
        })
    }

    /// These (empty) aggregates with other pick sizes ([`PickParams`]).
    pub fn with_picks(mut self, params: PickParams) -> Self {
        self.picks = ImagePicks::new(self.params.num_classes, params);
        self
    }

    /// The images picked while the pass streamed ([`ImagePicks`]).
    pub fn picks(&self) -> &ImagePicks {
        &self.picks
    }

    /// The parameters.
    pub fn params(&self) -> &AggregateParams {
        &self.params
    }

    /// The activation counts `A`.
    pub fn activations(&self) -> &ActivationCounts {
        &self.activations
    }

    /// The influence counts of every path into summary layer `layer`.
    pub fn paths(&self, layer: usize) -> Option<&[PathCounts]> {
        self.influences.get(layer).map(Vec::as_slice)
    }

    /// The dataset examples.
    pub fn examples(&self) -> &ExampleHeaps {
        &self.examples
    }

    /// The number of images per class.
    pub fn class_images(&self) -> &[u64] {
        &self.class_images
    }

    /// The number of correctly top-1 classified images per class.
    pub fn class_top1_correct(&self) -> &[u64] {
        &self.class_top1_correct
    }

    /// The activation counts `A` of summary layer `layer` as a `[classes, C_l]` matrix view
    /// (`None` when out of range).
    ///
    /// ```
    /// use summit_activation::Selection;
    /// use summit_influence::{AggregateParams, Aggregates, InfluenceGeometry, LayerParams};
    ///
    /// let params = AggregateParams {
    ///     num_classes: 2,
    ///     layers: vec![LayerParams {
    ///         name: "l0".into(), channels: 3, excluded: vec![], input_channels: 0, paths: vec![],
    ///     }],
    ///     activation_selection: Selection::TopK(1),
    ///     influence_selection: Selection::TopK(1),
    ///     influence_geometry: InfluenceGeometry::LayerOwn,
    ///     examples_per_channel: 1,
    /// };
    /// let mut agg = Aggregates::new(params)?;
    /// // two images of class 1: channel 2 then channel 0 fire most
    /// agg.add_activations(0, &[0, 1], &[1, 1], &[0.0, 0.1, 0.9, 0.8, 0.1, 0.0], &[0; 6])?;
    /// let a = agg.activation_matrix(0).unwrap();
    /// assert_eq!(a.shape(), &[2, 3]);
    /// assert_eq!(a.row(1).to_vec(), vec![1, 0, 1]);
    /// # Ok::<(), summit_influence::InfluenceError>(())
    /// ```
    pub fn activation_matrix(&self, layer: usize) -> Option<ndarray::ArrayView2<'_, u32>> {
        let c = *self.params.layers.get(layer).map(|l| &l.channels)?;
        let data = self.activations.layer(layer)?;
        ndarray::ArrayView2::from_shape((self.params.num_classes, c), data).ok()
    }

    /// The merged edge weights into summary layer `layer` of class `class` as a dense
    /// `[C_l, C_{l−1}]` matrix (row `j`: the weights `i → j`; see
    /// [`class_layer_edges`](Self::class_layer_edges)).
    ///
    /// ```
    /// use summit_activation::Selection;
    /// use summit_influence::{AggregateParams, Aggregates, InfluenceGeometry, LayerParams, PathSpec};
    ///
    /// let layer = |name: &str, channels, input_channels, paths| LayerParams {
    ///     name: name.into(), channels, excluded: vec![], input_channels, paths,
    /// };
    /// let params = AggregateParams {
    ///     num_classes: 1,
    ///     layers: vec![
    ///         layer("l0", 3, 0, vec![]),
    ///         // one direct path: 3 inputs into the layer's 2 channels
    ///         layer("l1", 2, 3, vec![PathSpec { out_offset: 0, hops: vec![(3, 2).into()] }]),
    ///     ],
    ///     activation_selection: Selection::TopK(1),
    ///     influence_selection: Selection::TopK(1),
    ///     influence_geometry: InfluenceGeometry::LayerOwn,
    ///     examples_per_channel: 1,
    /// };
    /// let mut agg = Aggregates::new(params)?;
    /// // one image: L[j, i] (2 outputs × 3 inputs); the top input of output 0 is 2, of output 1 is 0
    /// agg.add_influences(1, 0, 0, &[0], &[0.1, 0.2, 0.9, 0.7, 0.3, 0.0])?;
    /// let m = agg.class_edge_matrix(1, 0)?;
    /// assert_eq!(m.shape(), &[2, 3]);
    /// assert_eq!(m.row(0).to_vec(), vec![0, 0, 1]);
    /// assert_eq!(m.row(1).to_vec(), vec![1, 0, 0]);
    /// # Ok::<(), summit_influence::InfluenceError>(())
    /// ```
    pub fn class_edge_matrix(
        &self,
        layer: usize,
        class: usize,
    ) -> Result<ndarray::Array2<u32>, InfluenceError> {
        let rows = self.class_layer_edges(layer, class)?;
        let lp = &self.params.layers[layer];
        let mut m = ndarray::Array2::<u32>::zeros((lp.channels, lp.input_channels));
        for (j, row) in rows.iter().enumerate() {
            for &(i, w) in row {
                if let Some(slot) = m.get_mut([j, i as usize]) {
                    *slot = w;
                }
            }
        }
        Ok(m)
    }

    /// The number of images counted (over all classes).
    pub fn num_images(&self) -> u64 {
        self.image_ids.len()
    }

    /// Whether image `id` has been counted.
    pub fn contains_image(&self, id: u64) -> bool {
        self.image_ids.contains(id)
    }

    /// The histogram of the predicted probability of the true class for the images of
    /// `class` in [`PROBABILITY_BINS`] equal bins over `[0, 1]` (bin `b` holds
    /// `b/100 ≤ p < (b+1)/100`, the last one closed); `None` when out of range.
    pub fn probability_histogram(&self, class: usize) -> Option<&[u64]> {
        (class < self.params.num_classes)
            .then(|| &self.probability_bins[class * PROBABILITY_BINS..][..PROBABILITY_BINS])
    }

    /// The same histogram in `bins` equal bins, `bins` a divisor of [`PROBABILITY_BINS`]
    /// (1, 2, 4, 5, 10, 20, 25, 50, 100): sums of consecutive fine bins, equal to binning the
    /// probabilities directly (`floor(p · bins)`, the last bin closed). `None` for another
    /// `bins` or a class out of range.
    pub fn true_class_histogram(&self, class: usize, bins: usize) -> Option<Vec<u64>> {
        if bins == 0 || !PROBABILITY_BINS.is_multiple_of(bins) {
            return None;
        }
        let fine = self.probability_histogram(class)?;
        Some(
            fine.chunks(PROBABILITY_BINS / bins)
                .map(|c| c.iter().sum())
                .collect(),
        )
    }

    /// The merged edges into summary layer `layer` of class `class` alone
    /// ([`merge_paths_class`]): `rows[j]` lists `(input, weight)` pairs into channel `j`.
    pub fn class_layer_edges(
        &self,
        layer: usize,
        class: usize,
    ) -> Result<Vec<Vec<(u32, u32)>>, InfluenceError> {
        let lp = self.params.layer_params(layer)?;
        merge_paths_class(
            &self.influences[layer],
            self.params.num_classes,
            class,
            lp.input_channels,
            lp.channels,
        )
        .map_err(|e| InfluenceError::InLayer {
            layer,
            source: Box::new(e),
        })
    }

    /// Bytes of memory held by the influence counts (all layers, paths and hops).
    pub fn influence_heap_bytes(&self) -> usize {
        self.influences
            .iter()
            .flatten()
            .flat_map(|p| p.hops.iter().map(InfluenceCounts::heap_bytes))
            .sum()
    }

    /// The merged edges of summary layer `layer` from the previous one, per
    /// class ([`merge_paths`]).
    pub fn layer_edges(&self, layer: usize) -> Result<InfluenceCounts, InfluenceError> {
        let lp = self.params.layer_params(layer)?;
        merge_paths(
            &self.influences[layer],
            self.params.num_classes,
            lp.input_channels,
            lp.channels,
        )
        .map_err(|e| InfluenceError::InLayer {
            layer,
            source: Box::new(e),
        })
    }

    /// Records a batch's predictions: `probs` is `[B, C]` row-major (the
    /// softmax output), `labels[b]` image `b`'s true class. Counts the image
    /// for its class, counts it as top-1 correct when the first maximum of
    /// its row is at its label, and bins its probability of the true class.
    /// An image id already recorded (or twice in the batch) is an error;
    /// the batch is validated before anything changes.
    pub fn add_predictions(
        &mut self,
        image_ids: &[u64],
        labels: &[usize],
        probs: &[f32],
    ) -> Result<(), InfluenceError> {
        let b = image_ids.len();
        self.params.check_labels(labels, b)?;
        let k = self.params.num_classes;
        if probs.len() != b * k {
            return Err(InfluenceError::Shape {
                what: "probabilities [B, C]",
                dims: vec![b, k],
                expected: b * k,
                got: probs.len(),
            });
        }
        if let Some(index) = probs.iter().position(|p| !p.is_finite()) {
            return Err(InfluenceError::NonFinite {
                what: "probabilities",
                index,
                value: probs[index],
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for &id in image_ids {
            if !seen.insert(id) || self.image_ids.contains(id) {
                return Err(InfluenceError::DuplicateImage { image_id: id });
            }
        }
        for ((&id, &label), row) in image_ids
            .iter()
            .zip(labels)
            .zip(probs.chunks_exact(k.max(1)))
        {
            let mut best = 0;
            for (c, &p) in row.iter().enumerate() {
                if p > row[best] {
                    best = c;
                }
            }
            self.class_images[label] += 1;
            if best == label {
                self.class_top1_correct[label] += 1;
            }
            let p = f64::from(row[label]);
            let bin = ((p * PROBABILITY_BINS as f64).max(0.0) as usize).min(PROBABILITY_BINS - 1);
            self.probability_bins[label * PROBABILITY_BINS + bin] += 1;
            self.image_ids.insert(id);
            self.picks.offer(id, label, row);
        }
        Ok(())
    }

    /// Records a batch's channel maxima of summary layer `layer`: `maxima`
    /// and `argmax` are `[B, C_l]` (see
    /// [`channel_max`](summit_activation::channel_max)). Adds the selected
    /// channels to `A` and offers every value to the dataset examples.
    pub fn add_activations(
        &mut self,
        layer: usize,
        image_ids: &[u64],
        labels: &[usize],
        maxima: &[f32],
        argmax: &[u32],
    ) -> Result<(), InfluenceError> {
        let b = image_ids.len();
        self.params.check_labels(labels, b)?;
        let lp = self.params.layer_params(layer)?;
        if maxima.len() != b * lp.channels || argmax.len() != b * lp.channels {
            return Err(InfluenceError::Shape {
                what: "maxima / argmax [B, C_l]",
                dims: vec![b, lp.channels],
                expected: b * lp.channels,
                got: if maxima.len() != b * lp.channels {
                    maxima.len()
                } else {
                    argmax.len()
                },
            });
        }
        let mask = ChannelMask::from_channels(&lp.excluded);
        let chosen = select_rows(
            maxima,
            lp.channels,
            &mask,
            &self.params.activation_selection,
        )?;
        self.examples.add_batch(layer, maxima, argmax, image_ids)?;
        for (&label, sel) in labels.iter().zip(&chosen) {
            self.activations.add(layer, label, sel)?;
        }
        Ok(())
    }

    fn hop_counts(
        &mut self,
        layer: usize,
        path: usize,
        hop: usize,
    ) -> Result<(&mut InfluenceCounts, ChannelMask), InfluenceError> {
        let n_layers = self.influences.len();
        let paths = self
            .influences
            .get_mut(layer)
            .ok_or(InfluenceError::IndexOutOfRange {
                what: "summary layer",
                index: layer,
                len: n_layers,
            })?;
        let n_paths = paths.len();
        let hops = &mut paths
            .get_mut(path)
            .ok_or(InfluenceError::IndexOutOfRange {
                what: "path",
                index: path,
                len: n_paths,
            })?
            .hops;
        let n_hops = hops.len();
        let counts = hops.get_mut(hop).ok_or(InfluenceError::IndexOutOfRange {
            what: "hop",
            index: hop,
            len: n_hops,
        })?;
        // The first hop reads the previous summary layer, whose excluded
        // channels are removed; inner layers exclude nothing.
        let mask = if hop == 0 && layer > 0 {
            ChannelMask::from_channels(&self.params.layers[layer - 1].excluded)
        } else {
            ChannelMask::none()
        };
        Ok((counts, mask))
    }

    /// The shape of hop `hop` of path `path` into summary layer `layer`.
    pub fn hop_spec(
        &self,
        layer: usize,
        path: usize,
        hop: usize,
    ) -> Result<HopSpec, InfluenceError> {
        self.params.hop_spec(layer, path, hop)
    }

    /// Whether the last hop of path `path` into `layer` shares output channels with another
    /// path's (a residual Add), so that its candidates compete with theirs (SPEC §2.1).
    pub fn last_hop_competes(&self, layer: usize, path: usize) -> Result<bool, InfluenceError> {
        self.params.last_hop_competes(layer, path)
    }

    /// Records a batch's influences `l` of hop `hop` of path `path` into summary layer
    /// `layer`: `[B, C_out, C_in / groups]`, from
    /// [`influence_cpu_grouped`] (or
    /// [`influence_cpu`](crate::influence_cpu) for a dense hop) or the device. The inputs chosen by the influence
    /// selection among each output channel's candidates (its group's inputs, excluded
    /// channels of the previous summary layer removed first for a first hop) each add 1 to
    /// `I[label, j, i]`. The last hop of a path that sums with others into the same channels
    /// cannot be recorded alone: use [`add_layer_influences`](Self::add_layer_influences).
    pub fn add_influences(
        &mut self,
        layer: usize,
        path: usize,
        hop: usize,
        labels: &[usize],
        l: &[f32],
    ) -> Result<(), InfluenceError> {
        self.params.check_labels(labels, labels.len())?;
        let spec = self.hop_spec(layer, path, hop)?;
        let n_hops = self.params.layers[layer].paths[path].hops.len();
        if hop + 1 == n_hops && self.last_hop_competes(layer, path)? {
            return Err(InfluenceError::BadPath {
                path,
                reason: format!(
                    "its last hop sums with another path into the channels of layer {layer}: \
                     its candidates compete with theirs, record them together with \
                     add_layer_influences"
                ),
            });
        }
        let sel = self.params.influence_selection;
        let mask = self.params.hop_mask(layer, hop);
        let selected = top_influences_hop(l, labels.len(), &spec, &mask, &sel)?;
        let (counts, _) = self.hop_counts(layer, path, hop)?;
        counts.add_selected(labels, &selected)
    }

    /// Records a batch's influences of every hop of every path into summary layer `layer`:
    /// `l[p][h]` as for [`add_influences`](Self::add_influences). Where paths sum into the
    /// same channels (a residual Add), the candidates of their last hops form one list per
    /// output channel — path by path in path order, inputs ascending within a path — and the
    /// selection is taken over it, ties to the later candidate (SPEC §2.1); each selected
    /// candidate counts for its own hop. Everything is selected (and validated) before any
    /// count changes.
    pub fn add_layer_influences(
        &mut self,
        layer: usize,
        labels: &[usize],
        l: &[Vec<&[f32]>],
    ) -> Result<(), InfluenceError> {
        let selection = self.params.select_layer_influences(layer, labels, l)?;
        self.add_layer_selection(labels, &selection)
    }

    /// Records a selection made by [`AggregateParams::select_layer_influences`] (with these
    /// aggregates' parameters) for the images labelled `labels`.
    pub fn add_layer_selection(
        &mut self,
        labels: &[usize],
        selection: &LayerSelection,
    ) -> Result<(), InfluenceError> {
        self.params.check_labels(labels, selection.batch)?;
        for (p, per_hop) in selection.selected.iter().enumerate() {
            for (h, selected) in per_hop.iter().enumerate() {
                let (counts, _) = self.hop_counts(selection.layer, p, h)?;
                counts.add_selected(labels, selected)?;
            }
        }
        Ok(())
    }

    /// Records a batch's influence selections made elsewhere (e.g. top-k on
    /// the device) of a dense hop: `selected` is `[B, C_out, k]` row-major input indices.
    /// Every index must be in range and not excluded.
    pub fn add_selected_influences(
        &mut self,
        layer: usize,
        path: usize,
        hop: usize,
        labels: &[usize],
        selected: &[u32],
        k: usize,
    ) -> Result<(), InfluenceError> {
        self.params.check_labels(labels, labels.len())?;
        let (counts, mask) = self.hop_counts(layer, path, hop)?;
        let (c_out, b) = (counts.c_out(), labels.len());
        if selected.len() != b * c_out * k {
            return Err(InfluenceError::Shape {
                what: "selected influences [B, C_out, k]",
                dims: vec![b, c_out, k],
                expected: b * c_out * k,
                got: selected.len(),
            });
        }
        if let Some(&i) = selected.iter().find(|&&i| mask.contains(i as usize)) {
            return Err(InfluenceError::Mismatch {
                what: "selected influences".into(),
                left: "no excluded input channel".into(),
                right: format!("excluded input channel {i}"),
            });
        }
        for (n, &label) in labels.iter().enumerate() {
            let rows: Vec<Vec<u32>> = (0..c_out)
                .map(|j| selected[(n * c_out + j) * k..][..k].to_vec())
                .collect();
            counts.add_image(label, &rows)?;
        }
        Ok(())
    }

    /// The influences of one hop computed on the CPU from the hop's input `x`
    /// (`[B, C_in, H, W]`) and folded kernel (`[C_out, C_in / groups, kh, kw]`), with the
    /// hop's own geometry `layer_geometry` resolved by the parameters'
    /// [`InfluenceGeometry`] (an identity hop keeps its own geometry under every preset):
    /// `[B, C_out, C_in / groups]`, as [`add_influences`](Self::add_influences) and
    /// [`add_layer_influences`](Self::add_layer_influences) take them.
    #[allow(clippy::too_many_arguments)]
    pub fn hop_influences_cpu(
        &self,
        layer: usize,
        path: usize,
        hop: usize,
        x: &[f32],
        x_dims: [usize; 4],
        kernel: &[f32],
        k_dims: [usize; 4],
        layer_geometry: HopGeometry,
    ) -> Result<Vec<f32>, InfluenceError> {
        self.params
            .hop_influences_cpu(layer, path, hop, x, x_dims, kernel, k_dims, layer_geometry)
    }

    /// The geometry the influences of a hop use: its own for an identity hop, else its own
    /// resolved by the parameters' [`InfluenceGeometry`].
    pub fn hop_geometry(
        &self,
        spec: &HopSpec,
        layer_geometry: HopGeometry,
        x_dims: [usize; 4],
        k_dims: [usize; 4],
    ) -> HopGeometry {
        self.params
            .hop_geometry(spec, layer_geometry, x_dims, k_dims)
    }

    /// Computes a batch's influences of one hop on the CPU
    /// ([`hop_influences_cpu`](Self::hop_influences_cpu)) and records them like
    /// [`add_influences`](Self::add_influences).
    #[allow(clippy::too_many_arguments)]
    pub fn add_hop_input(
        &mut self,
        layer: usize,
        path: usize,
        hop: usize,
        labels: &[usize],
        x: &[f32],
        x_dims: [usize; 4],
        kernel: &[f32],
        k_dims: [usize; 4],
        layer_geometry: HopGeometry,
    ) -> Result<(), InfluenceError> {
        let l =
            self.hop_influences_cpu(layer, path, hop, x, x_dims, kernel, k_dims, layer_geometry)?;
        self.add_influences(layer, path, hop, labels, &l)
    }

    /// Adds `other` (another shard) to these aggregates. Refuses different
    /// parameters, naming the field, and images present in both.
    pub fn merge(&mut self, other: &Aggregates) -> Result<(), InfluenceError> {
        let (a, b) = (&self.params, &other.params);
        let mismatch = |what: &str, l: String, r: String| InfluenceError::Mismatch {
            what: format!("aggregate parameters: {what}"),
            left: l,
            right: r,
        };
        if a.num_classes != b.num_classes {
            return Err(mismatch(
                "number of classes",
                a.num_classes.to_string(),
                b.num_classes.to_string(),
            ));
        }
        if a.layers.len() != b.layers.len() {
            return Err(mismatch(
                "number of summary layers",
                a.layers.len().to_string(),
                b.layers.len().to_string(),
            ));
        }
        for (la, lb) in a.layers.iter().zip(&b.layers) {
            if la != lb {
                return Err(mismatch(
                    &format!("summary layer '{}'", la.name),
                    format!("{la:?}"),
                    format!("{lb:?}"),
                ));
            }
        }
        if a.activation_selection != b.activation_selection {
            return Err(mismatch(
                "activation selection",
                format!("{:?}", a.activation_selection),
                format!("{:?}", b.activation_selection),
            ));
        }
        if a.influence_selection != b.influence_selection {
            return Err(mismatch(
                "influence selection",
                format!("{:?}", a.influence_selection),
                format!("{:?}", b.influence_selection),
            ));
        }
        if a.influence_geometry != b.influence_geometry {
            return Err(mismatch(
                "influence geometry",
                format!("{:?}", a.influence_geometry),
                format!("{:?}", b.influence_geometry),
            ));
        }
        if a.examples_per_channel != b.examples_per_channel {
            return Err(mismatch(
                "examples per channel",
                a.examples_per_channel.to_string(),
                b.examples_per_channel.to_string(),
            ));
        }
        if self.picks.params() != other.picks.params() {
            return Err(mismatch(
                "picked images per class and sample size",
                format!("{:?}", self.picks.params()),
                format!("{:?}", other.picks.params()),
            ));
        }
        if let Some(id) = (&self.image_ids & &other.image_ids).min() {
            return Err(InfluenceError::DuplicateImage { image_id: id });
        }
        for (x, y) in self.class_images.iter().zip(&other.class_images) {
            if x.checked_add(*y).is_none() {
                return Err(InfluenceError::CountOverflow {
                    what: "class image counts".into(),
                });
            }
        }
        self.activations.merge(&other.activations)?;
        self.examples.merge(&other.examples)?;
        self.picks.merge(&other.picks);
        for (mine, theirs) in self.influences.iter_mut().zip(&other.influences) {
            for (pm, pt) in mine.iter_mut().zip(theirs) {
                for (hm, ht) in pm.hops.iter_mut().zip(&pt.hops) {
                    hm.merge(ht)?;
                }
            }
        }
        for (x, y) in self.class_images.iter_mut().zip(&other.class_images) {
            *x += *y;
        }
        for (x, y) in self
            .class_top1_correct
            .iter_mut()
            .zip(&other.class_top1_correct)
        {
            *x += *y;
        }
        for (x, y) in self
            .probability_bins
            .iter_mut()
            .zip(&other.probability_bins)
        {
            *x += *y;
        }
        self.image_ids |= &other.image_ids;
        Ok(())
    }

    /// Checks that the parts agree with the parameters (after loading).
    fn check_consistency(&self) -> Result<(), String> {
        self.params
            .validate()
            .map_err(|e| format!("invalid parameters: {e}"))?;
        let p = &self.params;
        let k = p.num_classes;
        let channels = p.channels();
        if self.activations.num_classes() != k || self.activations.channels() != channels.as_slice()
        {
            return Err("activation counts do not match the parameters".into());
        }
        for (l, &c) in channels.iter().enumerate() {
            if self.activations.layer(l).map(<[u32]>::len) != Some(k * c) {
                return Err(format!(
                    "activation counts of layer {l} have the wrong size"
                ));
            }
            for ch in 0..c {
                let ex: &[Example] = self.examples.get(l, ch).unwrap_or(&[]);
                if self.examples.get(l, ch).is_none()
                    || ex.len() > self.examples.capacity()
                    || ex
                        .windows(2)
                        .any(|w| w[0].rank_cmp(&w[1]) != std::cmp::Ordering::Less)
                {
                    return Err(format!(
                        "dataset examples of layer {l}, channel {ch} are invalid"
                    ));
                }
            }
        }
        if self.examples.capacity() != p.examples_per_channel
            || self.examples.channels() != channels.as_slice()
        {
            return Err("dataset examples do not match the parameters".into());
        }
        if self.influences.len() != p.layers.len() {
            return Err("influence counts do not match the number of layers".into());
        }
        for (l, (paths, lp)) in self.influences.iter().zip(&p.layers).enumerate() {
            if paths.len() != lp.paths.len() {
                return Err(format!(
                    "layer {l}: {} paths stored, {} described",
                    paths.len(),
                    lp.paths.len()
                ));
            }
            for (pi, (pc, spec)) in paths.iter().zip(&lp.paths).enumerate() {
                if &pc.spec() != spec {
                    return Err(format!(
                        "layer {l}, path {pi}: counts do not match the path description"
                    ));
                }
                for (h, hop) in pc.hops.iter().enumerate() {
                    if hop.num_classes() != k {
                        return Err(format!(
                            "layer {l}, path {pi}, hop {h}: wrong number of classes"
                        ));
                    }
                    hop.validate()
                        .map_err(|e| format!("layer {l}, path {pi}, hop {h}: {e}"))?;
                }
            }
        }
        if self.class_images.len() != k || self.class_top1_correct.len() != k {
            return Err("per-class statistics have the wrong length".into());
        }
        if self.probability_bins.len() != k * PROBABILITY_BINS {
            return Err("probability histograms have the wrong length".into());
        }
        let images: u64 = self.class_images.iter().sum();
        let binned: u64 = self.probability_bins.iter().sum();
        if images != binned || images != self.image_ids.len() {
            return Err(format!(
                "{images} images counted per class, {binned} binned, {} image ids",
                self.image_ids.len()
            ));
        }
        Ok(())
    }

    /// Writes the aggregates to `path` atomically (a temporary file in the
    /// same directory, synced, then renamed over `path`).
    ///
    /// Format: the 8-byte magic [`AGGREGATES_MAGIC`], the format version
    /// ([`AGGREGATES_FORMAT_VERSION`], u32 little-endian), the payload length
    /// (u64 LE), an FNV-1a 64 checksum of the payload (u64 LE), then the
    /// payload: this value encoded with bincode 2 (serde, standard config; influence rows as
    /// varint gaps and counts), zlib-compressed.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), InfluenceError> {
        use std::io::{Seek, SeekFrom};
        let path = path.as_ref();
        let io = |source: std::io::Error| InfluenceError::Io {
            path: path.to_path_buf(),
            source,
        };
        let from_io = |e: summit_io::IoError| InfluenceError::Io {
            path: e.path,
            source: e.source,
        };
        let mut tmp = summit_io::AtomicFile::create(path).map_err(from_io)?;
        // the header's length and checksum are filled in once the payload is written: the
        // payload streams from the encoder through zlib into the file, never held whole
        tmp.write_all(&[0u8; HEADER_LEN]).map_err(io)?;
        let mut sink = HashingWriter {
            inner: std::io::BufWriter::new(tmp.file_mut()),
            hash: FNV_OFFSET,
            len: 0,
        };
        {
            let mut z = flate2::write::ZlibEncoder::new(&mut sink, flate2::Compression::default());
            bincode::serde::encode_into_std_write(self, &mut z, bincode::config::standard())
                .map_err(|e| InfluenceError::Format {
                    path: path.to_path_buf(),
                    reason: format!("cannot encode: {e}"),
                })?;
            z.finish().map_err(io)?;
        }
        let (hash, len) = (sink.hash, sink.len);
        sink.inner.flush().map_err(io)?;
        drop(sink);
        let file = tmp.file_mut();
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&AGGREGATES_MAGIC).map_err(io)?;
        file.write_all(&AGGREGATES_FORMAT_VERSION.to_le_bytes())
            .map_err(io)?;
        file.write_all(&len.to_le_bytes()).map_err(io)?;
        file.write_all(&hash.to_le_bytes()).map_err(io)?;
        tmp.commit(true).map_err(from_io)
    }

    /// Reads aggregates written by [`save`](Self::save). A file with another
    /// magic or format version, a truncated, extended or corrupt file, or
    /// contents that contradict their own parameters give a
    /// [`InfluenceError::Format`] naming the file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, InfluenceError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| InfluenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let fail = |reason: String| InfluenceError::Format {
            path: path.to_path_buf(),
            reason,
        };
        if bytes.len() < 8 || bytes[..8] != AGGREGATES_MAGIC {
            return Err(fail(
                "not a summit-rs aggregate file (wrong magic bytes)".into(),
            ));
        }
        if bytes.len() < HEADER_LEN {
            return Err(fail(format!(
                "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        let u32_at =
            |o: usize| u32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        let u64_at = |o: usize| u64::from(u32_at(o)) | (u64::from(u32_at(o + 4)) << 32);
        let version = u32_at(8);
        if version != AGGREGATES_FORMAT_VERSION {
            return Err(fail(format!(
                "format version {version}, but this build reads version {AGGREGATES_FORMAT_VERSION}"
            )));
        }
        let declared = u64_at(12);
        let checksum = u64_at(20);
        let payload = &bytes[HEADER_LEN..];
        if (payload.len() as u64) < declared {
            return Err(fail(format!(
                "truncated: the header declares {declared} payload bytes, the file holds {}",
                payload.len()
            )));
        }
        if payload.len() as u64 > declared {
            return Err(fail(format!(
                "{} unexpected bytes after the declared {declared}-byte payload",
                payload.len() as u64 - declared
            )));
        }
        if fnv1a64(payload) != checksum {
            return Err(fail("corrupt: payload checksum mismatch".into()));
        }
        let mut z = flate2::read::ZlibDecoder::new(payload);
        let value: Aggregates =
            bincode::serde::decode_from_std_read(&mut z, bincode::config::standard())
                .map_err(|e| fail(format!("corrupt payload: {e}")))?;
        let mut rest = [0u8; 1];
        match std::io::Read::read(&mut z, &mut rest) {
            Ok(0) => {}
            Ok(_) => return Err(fail("corrupt payload: bytes left undecoded".into())),
            Err(e) => return Err(fail(format!("corrupt compressed payload: {e}"))),
        }
        value
            .check_consistency()
            .map_err(|e| fail(format!("inconsistent contents: {e}")))?;
        Ok(value)
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, 64 bit, continued from `h`.
fn fnv1a64_from(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a, 64 bit.
fn fnv1a64(data: &[u8]) -> u64 {
    fnv1a64_from(FNV_OFFSET, data)
}

/// Passes bytes on, counting them and hashing them (FNV-1a).
struct HashingWriter<W> {
    inner: W,
    hash: u64,
    len: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash = fnv1a64_from(self.hash, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
