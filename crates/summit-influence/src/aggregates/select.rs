//! The selection arithmetic: what a summary layer's hops are (their specs and geometry),
//! their influences on the CPU, and the joint top-k selection of a layer's paths (SPEC §2.1).

use super::*;

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

    pub(super) fn channels(&self) -> Vec<usize> {
        self.layers.iter().map(|l| l.channels).collect()
    }
}
