//! Merging a summary layer's paths into edges between consecutive summary
//! layers (SPEC §2, "Branching modules").

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::counts::InfluenceCounts;
use crate::error::InfluenceError;

/// The shape of one hop of a path (SPEC §2.1): a convolution from `c_in` to `c_out` channels
/// in `groups` groups (1: dense; `c_in`: depthwise), or an identity (a skip connection:
/// output channel `j` receives input channel `j`, `c_in = c_out = groups`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HopSpec {
    /// Input channels (all groups together).
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Groups: input channel `i` is a candidate only for the output channels of its group.
    pub groups: usize,
    /// Whether the hop is an identity (its influence is `max X_j`, at its own geometry
    /// whatever the preset).
    pub identity: bool,
}

impl HopSpec {
    /// A dense convolution.
    pub fn dense(c_in: usize, c_out: usize) -> Self {
        Self {
            c_in,
            c_out,
            groups: 1,
            identity: false,
        }
    }

    /// A grouped convolution (`groups = c_in` for a depthwise one).
    pub fn grouped(c_in: usize, c_out: usize, groups: usize) -> Self {
        Self {
            c_in,
            c_out,
            groups,
            identity: false,
        }
    }

    /// An identity (skip) hop over `channels` channels.
    pub fn identity(channels: usize) -> Self {
        Self {
            c_in: channels,
            c_out: channels,
            groups: channels,
            identity: true,
        }
    }

    /// Candidates per output channel: `c_in / groups`.
    pub fn group_inputs(&self) -> usize {
        self.c_in / self.groups.max(1)
    }

    /// The first input channel of output channel `j`'s group.
    pub fn group_start(&self, j: usize) -> usize {
        let cout_g = (self.c_out / self.groups.max(1)).max(1);
        (j / cout_g) * self.group_inputs()
    }

    /// Checks the channel counts against the groups.
    pub fn validate(&self) -> Result<(), String> {
        if self.c_in == 0 || self.c_out == 0 {
            return Err(format!(
                "a hop needs channels (C_in {}, C_out {})",
                self.c_in, self.c_out
            ));
        }
        if self.groups == 0
            || !self.c_in.is_multiple_of(self.groups)
            || !self.c_out.is_multiple_of(self.groups)
        {
            return Err(format!(
                "{} groups do not divide C_in {} and C_out {}",
                self.groups, self.c_in, self.c_out
            ));
        }
        if self.identity && !(self.c_in == self.c_out && self.groups == self.c_in) {
            return Err(format!(
                "an identity hop maps C channels to C in C groups, not {} → {} in {}",
                self.c_in, self.c_out, self.groups
            ));
        }
        Ok(())
    }
}

impl From<(usize, usize)> for HopSpec {
    /// A dense convolution `(c_in, c_out)`.
    fn from((c_in, c_out): (usize, usize)) -> Self {
        Self::dense(c_in, c_out)
    }
}

/// The shape of one path into a summary layer: where its output channels sit
/// in the layer and the channel counts of its hops.
///
/// A path has one hop (direct, e.g. InceptionV1's 1×1 and pool branches, a
/// sequential CNN's layer, or a residual block's identity skip) or more
/// (through inner layers, e.g. the 3×3 branch: previous layer → 1×1 reduce →
/// 3×3, or a bottleneck block's three convolutions). The first hop's inputs are
/// the previous summary layer's channels and the last hop's outputs are
/// channels `out_offset..out_offset + hops.last().c_out` of the summary layer.
/// Paths whose output channels overlap *sum* into those channels (a residual
/// Add): their last hops' candidates compete in one selection (SPEC §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathSpec {
    /// Offset of the path's output channels in the summary layer.
    pub out_offset: usize,
    /// Every hop, from the previous summary layer on.
    pub hops: Vec<HopSpec>,
}

impl PathSpec {
    /// A path of dense convolutions `(C_in, C_out)`.
    pub fn dense(out_offset: usize, hops: &[(usize, usize)]) -> Self {
        Self {
            out_offset,
            hops: hops.iter().map(|&h| h.into()).collect(),
        }
    }

    /// The summary-layer channels the path writes: `out_offset..out_offset + C_out`.
    pub fn out_range(&self) -> std::ops::Range<usize> {
        self.out_offset..self.out_offset + self.hops.last().map_or(0, |h| h.c_out)
    }
}

/// The influence counts of one path: one [`InfluenceCounts`] per hop, in the
/// order of [`PathSpec::hops`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCounts {
    /// Offset of the path's output channels in the summary layer.
    pub out_offset: usize,
    /// Counts of every hop, from the previous summary layer on.
    pub hops: Vec<InfluenceCounts>,
    /// The shape of every hop (groups, identity), as in [`PathSpec::hops`].
    pub kinds: Vec<HopSpec>,
}

impl PathCounts {
    /// Empty counts for a path of shape `spec` and `num_classes` classes.
    pub fn new(num_classes: usize, spec: &PathSpec) -> Self {
        Self {
            out_offset: spec.out_offset,
            hops: spec
                .hops
                .iter()
                .map(|h| InfluenceCounts::new(num_classes, h.c_out, h.c_in))
                .collect(),
            kinds: spec.hops.clone(),
        }
    }

    /// A path of dense hops from counts alone (e.g. built by hand in a test).
    pub fn dense(out_offset: usize, hops: Vec<InfluenceCounts>) -> Self {
        let kinds = hops
            .iter()
            .map(|h| HopSpec::dense(h.c_in(), h.c_out()))
            .collect();
        Self {
            out_offset,
            hops,
            kinds,
        }
    }

    /// The path's shape.
    pub fn spec(&self) -> PathSpec {
        PathSpec {
            out_offset: self.out_offset,
            hops: self.kinds.clone(),
        }
    }

    /// Whether the path is one convolution (not an identity): the paths whose edges set the
    /// bottleneck budget (SPEC §2.1).
    fn is_single_conv(&self) -> bool {
        self.hops.len() == 1 && !self.kinds.first().is_some_and(|k| k.identity)
    }
}

/// Checks that `paths` chain from `c_prev` channels into a `c_layer`-channel
/// summary layer.
fn check_paths(
    paths: &[PathCounts],
    num_classes: usize,
    c_prev: usize,
    c_layer: usize,
) -> Result<(), InfluenceError> {
    for (p, path) in paths.iter().enumerate() {
        let bad = |reason: String| InfluenceError::BadPath { path: p, reason };
        let (first, last) = match (path.hops.first(), path.hops.last()) {
            (Some(f), Some(l)) => (f, l),
            _ => return Err(bad("a path needs at least one hop".into())),
        };
        if path.kinds.len() != path.hops.len() {
            return Err(bad(format!(
                "{} hop shapes for {} hops",
                path.kinds.len(),
                path.hops.len()
            )));
        }
        for (h, (k, c)) in path.kinds.iter().zip(&path.hops).enumerate() {
            k.validate().map_err(|e| bad(format!("hop {h}: {e}")))?;
            if (k.c_in, k.c_out) != (c.c_in(), c.c_out()) {
                return Err(bad(format!(
                    "hop {h} is shaped {} → {} but its counts {} → {}",
                    k.c_in,
                    k.c_out,
                    c.c_in(),
                    c.c_out()
                )));
            }
        }
        if let Some(h) = path
            .hops
            .iter()
            .position(|h| h.num_classes() != num_classes)
        {
            return Err(bad(format!(
                "hop {h} has {} classes, expected {num_classes}",
                path.hops[h].num_classes()
            )));
        }
        if first.c_in() != c_prev {
            return Err(bad(format!(
                "the first hop has {} input channels, the previous summary layer {c_prev}",
                first.c_in()
            )));
        }
        for (h, pair) in path.hops.windows(2).enumerate() {
            if pair[0].c_out() != pair[1].c_in() {
                return Err(bad(format!(
                    "hop {h} has {} output channels but hop {} has {} input channels",
                    pair[0].c_out(),
                    h + 1,
                    pair[1].c_in()
                )));
            }
        }
        if path.out_offset + last.c_out() > c_layer {
            return Err(bad(format!(
                "output channels {}..{} exceed the summary layer's {c_layer} channels",
                path.out_offset,
                path.out_offset + last.c_out()
            )));
        }
    }
    Ok(())
}

/// Merges `(input, weight)` pairs into a row sorted by input, keeping the
/// larger weight for an input present twice.
fn max_merge(row: &mut Vec<(u32, u32)>, add: impl IntoIterator<Item = (u32, u32)>) {
    if row.is_empty() {
        row.extend(add);
        return;
    }
    for (i, w) in add {
        match row.binary_search_by_key(&i, |e| e.0) {
            Ok(p) => row[p].1 = row[p].1.max(w),
            Err(p) => row.insert(p, (i, w)),
        }
    }
}

/// The edges of one summary layer, per class, from the previous summary
/// layer's `c_prev` channels to its `c_layer` channels, as an
/// [`InfluenceCounts`] whose values are edge weights.
///
/// - A direct (one-hop) path contributes every counted pair with its count
///   `I[class, j, i]`.
/// - A path through inner layers contributes, for each of its output channels
///   `j`, the bottleneck weights `w(i → j) = max over r of min(I2[j, r],
///   I1[r, i])` (applied hop after hop for longer chains), of which only the
///   top `m` are kept ([`bottleneck_edge_budget`]). Ties in weight keep the
///   **higher** input index first (the SPEC's tie rule).
/// - Output channels are offset by the path's `out_offset`; where paths
///   overlap, the larger weight of an edge wins.
///
/// Classes are merged in parallel; the result is deterministic.
pub fn merge_paths(
    paths: &[PathCounts],
    num_classes: usize,
    c_prev: usize,
    c_layer: usize,
) -> Result<InfluenceCounts, InfluenceError> {
    check_paths(paths, num_classes, c_prev, c_layer)?;
    let per_class: Vec<Vec<Vec<(u32, u32)>>> = (0..num_classes)
        .into_par_iter()
        .map(|class| merge_class(paths, class, c_layer))
        .collect();
    InfluenceCounts::from_rows(
        num_classes,
        c_layer,
        c_prev,
        per_class.into_iter().flatten().collect(),
    )
}

/// The number of bottleneck edges kept per output channel of a multi-hop path for `class`
/// (SPEC §2.1): the floor of the mean number of edges per output channel of the layer's
/// single-hop *convolution* paths (InceptionV1's 1×1 and pool branches, the original's
/// `int(np.average(...))`, channels without edges included) when it has any, otherwise of
/// the first hops of its multi-hop paths (a ResNet block with an identity skip: conv1).
/// `None` (keep every edge) when the layer has neither.
pub fn bottleneck_edge_budget(paths: &[PathCounts], class: usize) -> Option<usize> {
    let mean = |hops: &mut dyn Iterator<Item = &InfluenceCounts>| {
        let mut edges = 0usize;
        let mut channels = 0usize;
        for hop in hops {
            channels += hop.c_out();
            edges += (0..hop.c_out())
                .map(|j| hop.row(class, j).map_or(0, |r| r.len()))
                .sum::<usize>();
        }
        (channels > 0).then(|| edges / channels)
    };
    mean(
        &mut paths
            .iter()
            .filter(|p| p.is_single_conv())
            .map(|p| &p.hops[0]),
    )
    .or_else(|| {
        mean(
            &mut paths
                .iter()
                .filter(|p| p.hops.len() > 1)
                .map(|p| &p.hops[0]),
        )
    })
}

/// The merged edges of one class (see [`merge_paths`]): `rows[j]` lists the `(input, weight)`
/// pairs into channel `j` of the `c_layer`-channel summary layer, sorted by input. Computing
/// one class at a time keeps the memory of an analysis bounded by one class's edges.
pub fn merge_paths_class(
    paths: &[PathCounts],
    num_classes: usize,
    class: usize,
    c_prev: usize,
    c_layer: usize,
) -> Result<Vec<Vec<(u32, u32)>>, InfluenceError> {
    check_paths(paths, num_classes, c_prev, c_layer)?;
    if class >= num_classes {
        return Err(InfluenceError::IndexOutOfRange {
            what: "class",
            index: class,
            len: num_classes,
        });
    }
    Ok(merge_class(paths, class, c_layer))
}

fn merge_class(paths: &[PathCounts], class: usize, c_layer: usize) -> Vec<Vec<(u32, u32)>> {
    let mut out: Vec<Vec<(u32, u32)>> = vec![Vec::new(); c_layer];
    let budget = bottleneck_edge_budget(paths, class);
    // dense scratch of weights per hop input, reset through `touched`
    let mut weights: Vec<u32> = Vec::new();
    let mut touched: Vec<u32> = Vec::new();
    for path in paths {
        let last = path.hops.len() - 1;
        let last_hop = &path.hops[last];
        for j in 0..last_hop.c_out() {
            let target = &mut out[path.out_offset + j];
            let Some(row) = last_hop.row(class, j) else {
                continue;
            };
            if last == 0 {
                max_merge(target, row.iter());
                continue;
            }
            let mut cur: Vec<(u32, u32)> = row.to_vec();
            for hop in path.hops[..last].iter().rev() {
                weights.clear();
                weights.resize(hop.c_in(), 0);
                touched.clear();
                for &(r, w_r) in &cur {
                    let Some(inner) = hop.row(class, r as usize) else {
                        continue;
                    };
                    for (i, w_i) in inner.iter() {
                        let w = w_r.min(w_i);
                        let slot = &mut weights[i as usize];
                        if *slot == 0 {
                            touched.push(i);
                        }
                        if w > *slot {
                            *slot = w;
                        }
                    }
                }
                touched.sort_unstable();
                cur = touched.iter().map(|&i| (i, weights[i as usize])).collect();
            }
            if let Some(m) = budget
                && cur.len() > m
            {
                cur.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
                cur.truncate(m);
                cur.sort_unstable_by_key(|e| e.0);
            }
            max_merge(target, cur);
        }
    }
    out
}
