//! From aggregates to attribution graphs (every class, in parallel) and the class overview.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use summit_graph::{
    AttributionGraph, AttributionLayer, ClassAggregate, Edge, Embedding, GraphParams, LayerInfo,
    MotifParams, MotifSet, NonSemanticChannel, attribution_graph, cosine_similarity, embed_layers,
    exclusion_lists, non_semantic_channels,
};
use summit_influence::{Aggregates, InfluenceCounts};

use crate::config::NonSemanticConfig;
use crate::error::{CoreError, Result};

/// The summary layers of `aggs` as summit-graph sees them.
pub fn layer_infos(aggs: &Aggregates) -> Vec<LayerInfo> {
    aggs.params()
        .layers
        .iter()
        .map(|l| LayerInfo::new(l.name.clone(), l.channels))
        .collect()
}

/// The excluded channels of every layer of `aggs`, as summit-graph takes them.
pub fn excluded_channels(aggs: &Aggregates) -> Vec<Vec<u32>> {
    aggs.params()
        .layers
        .iter()
        .map(|l| l.excluded.iter().map(|&c| c as u32).collect())
        .collect()
}

/// The merged edges of every summary layer ([`Aggregates::layer_edges`]): `edges[l]` holds, per
/// class, the weights from layer `l − 1` into layer `l` (for `l = 0` from the stem).
pub fn merged_edges(aggs: &Aggregates) -> Result<Vec<InfluenceCounts>> {
    (0..aggs.params().layers.len())
        .map(|l| {
            aggs.layer_edges(l).map_err(CoreError::aggregate(format!(
                "merging the paths into summary layer {l} (`{}`)",
                aggs.params().layers[l].name
            )))
        })
        .collect()
}

/// Everything summit-graph needs about one class:
///
/// - `counts[l] = A_l[class, :]`;
/// - `edges[l]` (`l ≥ 1`): the merged influence edges `i → j` with weight `I[class, j, i]`
///   ([`Aggregates::class_layer_edges`]: bottleneck-merged through inner layers for paths of
///   several hops);
/// - `raw_influences[l][j]`: the same merged counts into channel `j` before any vertex
///   selection, for every layer including the first (whose inputs are stem channels); the
///   graph keeps the top 3 as the vertex's `attr`.
///
/// The edges are merged for this class alone, so building every class's graph in turn needs
/// the memory of one class's edges, not of all classes'.
pub fn class_aggregate(aggs: &Aggregates, class: usize) -> Result<ClassAggregate> {
    let params = aggs.params();
    let mut out = ClassAggregate::default();
    for (l, lp) in params.layers.iter().enumerate() {
        let row = aggs.activations().row(l, class).ok_or_else(|| {
            CoreError::Config(format!(
                "class {class} is out of range ({} classes)",
                params.num_classes
            ))
        })?;
        out.counts.push(row.to_vec());
        let rows = aggs
            .class_layer_edges(l, class)
            .map_err(CoreError::aggregate(format!(
                "merging the paths into summary layer {l} (`{}`) for class {class}",
                lp.name
            )))?;
        let mut layer_edges = Vec::new();
        let mut raw = Vec::with_capacity(lp.channels);
        for (j, r) in rows.into_iter().enumerate() {
            if l > 0 {
                layer_edges.extend(r.iter().map(|&(i, w)| Edge::new(i, j as u32, f64::from(w))));
            }
            raw.push(r.into_iter().map(|(i, w)| (i, f64::from(w))).collect());
        }
        out.edges.push(layer_edges);
        out.raw_influences.push(raw);
    }
    Ok(out)
}

/// The attribution graph of a class without any selected channel (no images, or a class left
/// out of the run): every layer present and empty, PageRank not run.
pub fn empty_graph(layers: &[LayerInfo]) -> AttributionGraph {
    AttributionGraph {
        layers: layers
            .iter()
            .map(|l| AttributionLayer {
                name: l.name.clone(),
                vertices: Vec::new(),
            })
            .collect(),
        shares: Vec::new(),
        relaxation_rounds: 0,
        unconnected_layers: Vec::new(),
        pagerank_iterations: 0,
        pagerank_converged: false,
    }
}

/// The attribution graph of every class in `classes` (a class whose counts are all zero, or
/// whose only counted channels are excluded, gets [`empty_graph`]) (in parallel with rayon; the result does
/// not depend on the thread count), in the order of `classes`. `class_names` names classes in
/// error messages. `extra_excluded[l]` lists channels of layer `l` removed from the graphs on
/// top of the pass's own excluded channels (e.g. detected non-semantic channels; may be empty
/// or shorter than the number of layers).
pub fn class_graphs(
    aggs: &Aggregates,
    classes: &[usize],
    class_names: &[String],
    params: &GraphParams,
    extra_excluded: &[Vec<u32>],
) -> Result<Vec<AttributionGraph>> {
    let layers = layer_infos(aggs);
    let mut excluded = excluded_channels(aggs);
    for (l, extra) in extra_excluded.iter().enumerate() {
        if let Some(list) = excluded.get_mut(l) {
            list.extend_from_slice(extra);
            list.sort_unstable();
            list.dedup();
        }
    }
    let excluded = excluded;
    classes
        .par_iter()
        .map(|&c| {
            let name = class_names.get(c).map_or("?", String::as_str);
            let counted = |l: usize, row: &[u32]| {
                row.iter().enumerate().any(|(ch, &v)| {
                    v > 0
                        && excluded
                            .get(l)
                            .is_none_or(|ex| ex.binary_search(&(ch as u32)).is_err())
                })
            };
            let has_counts = (0..aggs.params().layers.len())
                .any(|l| aggs.activations().row(l, c).is_some_and(|r| counted(l, r)));
            if !has_counts {
                // nothing to personalize PageRank with: no images, or every counted channel
                // excluded (e.g. all flagged non-semantic)
                return Ok(empty_graph(&layers));
            }
            let ca = class_aggregate(aggs, c)?;
            attribution_graph(&layers, &ca, &excluded, params).map_err(CoreError::graph(format!(
                "building the attribution graph of class {c} ({name})"
            )))
        })
        .collect()
}

/// The class overview (SPEC §4): per summary layer, the cosine similarity of the classes' `A`
/// rows and a 2D embedding of the classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The classes, in the order of the rows below.
    pub classes: Vec<usize>,
    /// `similarity[l][a][b]`: cosine similarity of classes `classes[a]`, `classes[b]` in layer `l`.
    pub similarity: Vec<Vec<Vec<f64>>>,
    /// `embedding[l][a] = [x, y]` of class `classes[a]` in layer `l`.
    pub embedding: Vec<Vec<[f64; 2]>>,
}

/// The class overview of `classes`. With UMAP, fewer classes than neighbours fall back to a
/// smaller neighbourhood (`n_neighbors = classes − 1`, at least 2); fewer than 3 classes use
/// PCA.
pub fn overview(
    aggs: &Aggregates,
    classes: &[usize],
    embedding: &Embedding,
    seed: u64,
) -> Result<Overview> {
    let rows = activation_rows(aggs, classes, "the overview")?;
    let similarity = rows
        .iter()
        .enumerate()
        .map(|(l, r)| {
            cosine_similarity(r).map_err(CoreError::graph(format!(
                "computing the class similarity of layer {l}"
            )))
        })
        .collect::<Result<Vec<_>>>()?;
    let method = match embedding {
        Embedding::Umap(_) if classes.len() < 3 => Embedding::Pca,
        Embedding::Umap(p) if p.n_neighbors >= classes.len() => {
            let mut p = *p;
            p.n_neighbors = (classes.len() - 1).max(2);
            Embedding::Umap(p)
        }
        other => *other,
    };
    let embedding =
        embed_layers(&rows, &method, seed).map_err(CoreError::graph("embedding the classes"))?;
    Ok(Overview {
        classes: classes.to_vec(),
        similarity,
        embedding,
    })
}

/// Attribution graphs and overview of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The classes analysed, ascending.
    pub classes: Vec<usize>,
    /// `graphs[k]`: the attribution graph of `classes[k]` (an [`empty_graph`] for a class
    /// outside [`graph_classes`](Self::graph_classes)).
    pub graphs: Vec<AttributionGraph>,
    /// The classes whose graphs were built (all of `classes` unless a subset was asked for,
    /// e.g. [`Config::classes`](crate::Config::classes)), ascending.
    pub graph_classes: Vec<usize>,
    /// The class overview.
    pub overview: Overview,
    /// The non-semantic channels detected over the classes analysed (empty when detection is
    /// off).
    pub non_semantic: Vec<NonSemanticChannel>,
    /// Whether they were removed from the graphs.
    pub non_semantic_excluded: bool,
    /// Motifs shared by the graphs of [`graph_classes`](Self::graph_classes) (mined with the
    /// default [`MotifParams`]; [`with_motifs`](Self::with_motifs) mines with others).
    pub motifs: MotifSet,
}

/// A class whose PageRank stopped at its iteration limit before reaching the tolerance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unconverged {
    /// The class index.
    pub class: usize,
    /// Iterations run (the limit, [`GraphParams::max_iter`]).
    pub iterations: usize,
}

impl Analysis {
    /// Mines the motifs of the graphs of [`graph_classes`](Self::graph_classes) with
    /// `params` (paper §9: structures shared across classes).
    pub fn with_motifs(mut self, params: &MotifParams) -> Self {
        self.motifs = mine_class_motifs(&self.classes, &self.graphs, &self.graph_classes, params);
        self
    }

    /// The classes whose PageRank did not converge (their graph is the last iterate's; raise
    /// [`GraphParams::max_iter`] or the tolerance), ascending.
    pub fn unconverged(&self) -> Vec<Unconverged> {
        self.classes
            .iter()
            .zip(&self.graphs)
            .filter(|(_, g)| g.pagerank_iterations > 0 && !g.pagerank_converged)
            .map(|(&class, g)| Unconverged {
                class,
                iterations: g.pagerank_iterations,
            })
            .collect()
    }

    /// One warning line per class whose PageRank did not converge, naming it by
    /// `class_names` (by class index).
    pub fn warning_lines<S: AsRef<str>>(&self, class_names: &[S]) -> Vec<String> {
        self.unconverged()
            .iter()
            .map(|u| {
                format!(
                    "warning: PageRank of class {} ({}) did not converge in {} iterations; its \
                     graph uses the last iterate (raise max_iter or the tolerance)",
                    u.class,
                    class_names.get(u.class).map_or("?", AsRef::as_ref),
                    u.iterations
                )
            })
            .collect()
    }

    /// One line per detected non-semantic channel, for people: layer name (from
    /// `layer_names`, by layer index), channel, how many classes have it among their top
    /// channels, and whether it was excluded from the graphs.
    pub fn non_semantic_lines<S: AsRef<str>>(&self, layer_names: &[S]) -> Vec<String> {
        self.non_semantic
            .iter()
            .map(|f| {
                format!(
                    "non-semantic channel: {} {} (top channel of {} classes, {:.0} %){}",
                    layer_names.get(f.layer).map_or("?", AsRef::as_ref),
                    f.channel,
                    f.classes,
                    100.0 * f.share,
                    if self.non_semantic_excluded {
                        ", excluded from the graphs"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    }
}

/// `rows[l][k]`: the `A` row of class `classes[k]` in summary layer `l`. `what` names the
/// caller in the error for a class out of range.
fn activation_rows(aggs: &Aggregates, classes: &[usize], what: &str) -> Result<Vec<Vec<Vec<u32>>>> {
    (0..aggs.params().layers.len())
        .map(|l| {
            classes
                .iter()
                .map(|&c| {
                    aggs.activations()
                        .row(l, c)
                        .map(<[u32]>::to_vec)
                        .ok_or_else(|| {
                            CoreError::Config(format!("class {c} out of range in {what}"))
                        })
                })
                .collect()
        })
        .collect()
}

/// The non-semantic channels of `aggs` over the rows of `classes` ([`non_semantic_channels`]).
pub fn detect_non_semantic(
    aggs: &Aggregates,
    classes: &[usize],
    params: &summit_graph::NonSemanticParams,
) -> Result<Vec<NonSemanticChannel>> {
    let rows = activation_rows(aggs, classes, "non-semantic detection")?;
    non_semantic_channels(&rows, params)
        .map_err(CoreError::graph("detecting non-semantic channels"))
}

/// Builds the attribution graph of every class in `classes` and the overview, after detecting
/// non-semantic channels (and removing them from the graphs when `non_semantic.exclude`).
pub fn analyze(
    aggs: &Aggregates,
    classes: &[usize],
    class_names: &[String],
    params: &GraphParams,
    embedding: &Embedding,
    seed: u64,
    non_semantic: &NonSemanticConfig,
) -> Result<Analysis> {
    analyze_subset(
        aggs,
        classes,
        None,
        class_names,
        params,
        embedding,
        seed,
        non_semantic,
    )
}

/// [`analyze`] with graphs built only for `graph_classes` (when given; each must be one of
/// `classes`): the others get an [`empty_graph`]. The overview and the non-semantic detection
/// still cover every class of `classes`.
#[allow(clippy::too_many_arguments)]
pub fn analyze_subset(
    aggs: &Aggregates,
    classes: &[usize],
    graph_classes: Option<&[usize]>,
    class_names: &[String],
    params: &GraphParams,
    embedding: &Embedding,
    seed: u64,
    non_semantic: &NonSemanticConfig,
) -> Result<Analysis> {
    let chosen: Vec<usize> = match graph_classes {
        Some(g) => {
            let mut g = g.to_vec();
            g.sort_unstable();
            g.dedup();
            if let Some(c) = g.iter().find(|c| !classes.contains(c)) {
                return Err(CoreError::Config(format!(
                    "graphs asked for class {c}, which is not among the classes analysed"
                )));
            }
            g
        }
        None => classes.to_vec(),
    };
    let flagged = match &non_semantic.detect {
        Some(p) => detect_non_semantic(aggs, classes, p)?,
        None => Vec::new(),
    };
    let extra = if non_semantic.exclude {
        exclusion_lists(&flagged, aggs.params().layers.len())
    } else {
        Vec::new()
    };
    let built = class_graphs(aggs, &chosen, class_names, params, &extra)?;
    let layers = layer_infos(aggs);
    let mut built = chosen.iter().copied().zip(built).peekable();
    let graphs: Vec<AttributionGraph> = classes
        .iter()
        .map(|&c| match built.peek() {
            Some((b, _)) if *b == c => built.next().map_or_else(|| empty_graph(&layers), |x| x.1),
            _ => empty_graph(&layers),
        })
        .collect();
    let overview = overview(aggs, classes, embedding, seed)?;
    let motifs = mine_class_motifs(classes, &graphs, &chosen, &MotifParams::default());
    Ok(Analysis {
        classes: classes.to_vec(),
        graphs,
        graph_classes: chosen,
        overview,
        non_semantic: flagged,
        non_semantic_excluded: non_semantic.exclude,
        motifs,
    })
}

/// The motifs of the graphs (`graphs[k]` of `classes[k]`) of the classes in `chosen` that have
/// a graph: an empty one (a class without images, or whose counts were all excluded) supports
/// no motif and does not count towards the minimum support (10 % of the classes with graphs,
/// not of all classes).
fn mine_class_motifs(
    classes: &[usize],
    graphs: &[AttributionGraph],
    chosen: &[usize],
    params: &MotifParams,
) -> MotifSet {
    let pairs: Vec<(usize, &AttributionGraph)> = classes
        .iter()
        .zip(graphs)
        .filter(|(c, g)| chosen.contains(c) && g.layers.iter().any(|l| !l.vertices.is_empty()))
        .map(|(&c, g)| (c, g))
        .collect();
    MotifSet::mine(&pairs, params)
}

/// The stability of every class's graph (SPEC-level extension of paper §6's hyperparameter
/// note: do graphs settle with the images used?): the graphs of the classes of
/// `analysis.graph_classes` built from each half's aggregates with the same parameters and
/// exclusions as the whole, and the Jaccard indices of their vertex sets (`(layer, channel)`
/// pairs) — between the halves, and of the whole graph with each half. `None` for a class
/// without a graph. `whole` is the merge of the halves (its graphs are `analysis.graphs`).
pub fn class_stability(
    analysis: &Analysis,
    whole: &Aggregates,
    halves: &[Aggregates; 2],
    class_names: &[String],
    params: &GraphParams,
) -> Result<Vec<Option<summit_export::ClassStability>>> {
    let extra = if analysis.non_semantic_excluded {
        exclusion_lists(&analysis.non_semantic, whole.params().layers.len())
    } else {
        Vec::new()
    };
    let chosen = &analysis.graph_classes;
    let g0 = class_graphs(&halves[0], chosen, class_names, params, &extra)?;
    let g1 = class_graphs(&halves[1], chosen, class_names, params, &extra)?;
    let mut out = vec![None; whole.params().num_classes];
    for (k, &c) in chosen.iter().enumerate() {
        let Some(pos) = analysis.classes.iter().position(|&x| x == c) else {
            continue;
        };
        let (a, b, w) = (
            vertex_set(&g0[k]),
            vertex_set(&g1[k]),
            vertex_set(&analysis.graphs[pos]),
        );
        if let Some(slot) = out.get_mut(c) {
            *slot = Some(summit_export::ClassStability {
                images: [halves[0].class_images()[c], halves[1].class_images()[c]],
                halves: jaccard(&a, &b),
                whole_vs_half: [jaccard(&w, &a), jaccard(&w, &b)],
            });
        }
    }
    Ok(out)
}

/// The `(layer, channel)` vertices of a graph.
pub fn vertex_set(g: &AttributionGraph) -> std::collections::BTreeSet<(usize, u32)> {
    g.layers
        .iter()
        .enumerate()
        .flat_map(|(l, layer)| layer.vertices.iter().map(move |v| (l, v.channel)))
        .collect()
}

/// `|a ∩ b| / |a ∪ b|`, 1 for two empty sets.
pub fn jaccard<T: Ord>(
    a: &std::collections::BTreeSet<T>,
    b: &std::collections::BTreeSet<T>,
) -> f64 {
    let union = a.union(b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(b).count() as f64 / union as f64
}
