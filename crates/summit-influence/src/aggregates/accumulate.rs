//! The accumulator: adding a batch's (or another tool's) predictions, activations,
//! examples and influences, and merging two aggregates into one (shards: exactly those of one run
//! over both, as the specification's preamble requires).

use super::*;

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

    pub(super) fn hop_counts(
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
        let spec = self.params.hop_spec(layer, path, hop)?;
        let n_hops = self.params.layers[layer].paths[path].hops.len();
        if hop + 1 == n_hops && self.params.last_hop_competes(layer, path)? {
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

    /// Computes a batch's influences of one hop on the CPU
    /// ([`AggregateParams::hop_influences_cpu`]) and records them like
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
        let l = self.params.hop_influences_cpu(
            layer,
            path,
            hop,
            x,
            x_dims,
            kernel,
            k_dims,
            layer_geometry,
        )?;
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
    pub(super) fn check_consistency(&self) -> Result<(), String> {
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
}
