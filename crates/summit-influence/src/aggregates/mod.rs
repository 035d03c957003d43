//! Everything one pass over a dataset accumulates, as a mergeable value with a versioned
//! binary file format: the types and their accessors here; the selection arithmetic in
//! `select`, the accumulator and merge in `accumulate`, the file format in `file`.

mod accumulate;
mod file;
mod select;

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
}
