//! One batch's step: the recording forward pass, predictions, activation selection and
//! examples, every hop's influences and their joint selection, added to the aggregates.

use super::*;

/// Aggregates one batch of images into `aggs`: the step [`Pipeline::aggregate`] runs for
/// every batch, public so that benches and tests run exactly the pipeline's code.
///
/// Records `images` (`[B, C, H, W]`, on the model's device) with `model`, adds the
/// predictions (softmax of the logits), the channel maxima and arg-max of every summary layer
/// (reduced on the device, selected on the host) and the influences of every convolution hop
/// of every path (read back to the host, fused CPU kernel); first hops read the tap
/// `hop_input` chooses. `ids[b]` and `labels[b]` identify image `b`; `what` names the batch in
/// error messages. On error `aggs` may hold part of the batch.
pub fn aggregate_batch(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
) -> Result<()> {
    aggregate_batch_with(model, hop_input, aggs, images, ids, labels, what, None)
}

/// The folded kernels of every hop of a model on its device, arranged for
/// [`influence_device`](summit_influence::influence_device): `[layer][path][hop]`. Built once
/// per pipeline when [`Config::influence_on`] is [`InfluenceOn::Device`].
pub struct DeviceKernels(Vec<Vec<Vec<DeviceKernel>>>);

impl DeviceKernels {
    /// Uploads every hop kernel of `desc` to `device`.
    pub fn new(desc: &ModelDescription, device: &Device) -> Result<Self> {
        let mut layers = Vec::with_capacity(desc.paths.len());
        for (l, paths) in desc.paths.iter().enumerate() {
            let mut ps = Vec::with_capacity(paths.len());
            for path in paths {
                let mut hs = Vec::with_capacity(path.hops.len());
                for (h, hop) in path.hops.iter().enumerate() {
                    let k = DeviceKernel::with_groups(
                        &hop.kernel.weight,
                        hop.kernel.dims,
                        hop.groups,
                        device,
                    )
                    .map_err(CoreError::aggregate(format!(
                        "uploading the kernel of hop {h} of path `{}` into `{}`",
                        path.name,
                        desc.layers.get(l).map_or("?", |x| x.name.as_str())
                    )))?;
                    hs.push(k);
                }
                ps.push(hs);
            }
            layers.push(ps);
        }
        Ok(Self(layers))
    }

    fn get(&self, l: usize, p: usize, h: usize) -> Option<&DeviceKernel> {
        self.0.get(l)?.get(p)?.get(h)
    }
}

/// [`aggregate_batch`], with the influences computed on the model's device when `kernels` is
/// given ([`InfluenceOn::Device`]; the kernels of `model`'s hops, [`DeviceKernels::new`]):
/// each hop input stays on the device and only its `[B, C_out, C_in]` maxima are read back.
#[allow(clippy::too_many_arguments)]
pub fn aggregate_batch_with(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<()> {
    let rec = record_batch(model, images, ids, labels, what)?;
    aggregate_recording(model, hop_input, aggs, rec, ids, labels, what, kernels)
}

/// The recording forward pass of [`aggregate_batch_with`]: checks that `ids` and `labels`
/// have one entry per image and records `images` with `model`.
pub fn record_batch(
    model: &dyn Summarizable,
    images: Tensor<4>,
    ids: &[u64],
    labels: &[usize],
    what: &str,
) -> Result<Recording> {
    let b = images.dims()[0];
    if ids.len() != b || labels.len() != b {
        return Err(CoreError::Config(format!(
            "{what}: {b} images but {} ids and {} labels",
            ids.len(),
            labels.len()
        )));
    }
    model
        .record(images)
        .map_err(CoreError::model(format!("recording {what}")))
}

/// The aggregation step of [`aggregate_batch_with`] on a recording `rec` of `model`
/// ([`record_batch`]): predictions, activations and influences added to `aggs`
/// ([`prepare_recording`] with `aggs`' parameters, then [`PreparedBatch::add_to`]).
#[allow(clippy::too_many_arguments)]
pub fn aggregate_recording(
    model: &dyn Summarizable,
    hop_input: HopInput,
    aggs: &mut Aggregates,
    rec: Recording,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<()> {
    prepare_recording(
        model,
        hop_input,
        aggs.params(),
        rec,
        ids,
        labels,
        what,
        kernels,
    )?
    .add_to(aggs)
}

/// What a batch adds to the aggregates, computed from its recording but not yet recorded:
/// its predictions, every summary layer's channel maxima and arg-max, and every layer's
/// influence selection ([`prepare_recording`]). Only [`add_to`](Self::add_to) needs the
/// aggregates themselves, so batches are prepared on several threads and added in order.
#[derive(Debug, Clone)]
pub struct PreparedBatch {
    ids: Vec<u64>,
    labels: Vec<usize>,
    what: String,
    probs: Vec<f32>,
    /// per summary layer: channel maxima and their positions, `[B, C]`
    activations: Vec<(Vec<f32>, Vec<u32>)>,
    selections: Vec<LayerSelection>,
}

impl PreparedBatch {
    /// The number of images.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether it holds no image.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Records the batch's images' top 5 in the pass's predictions log (SPEC §5.1).
    pub fn log_predictions(&self, log: &mut summit_export::PredictionLog) -> Result<()> {
        log.record(&self.ids, &self.probs)
            .map_err(CoreError::export(format!(
                "recording the predictions of {}",
                self.what
            )))
    }

    /// Adds the batch to `aggs` (whose parameters must be those it was prepared with).
    pub fn add_to(&self, aggs: &mut Aggregates) -> Result<()> {
        let what = &self.what;
        aggs.add_predictions(&self.ids, &self.labels, &self.probs)
            .map_err(CoreError::aggregate(format!(
                "adding the predictions of {what}"
            )))?;
        for (l, (max, arg)) in self.activations.iter().enumerate() {
            aggs.add_activations(l, &self.ids, &self.labels, max, arg)
                .map_err(CoreError::aggregate(format!(
                    "adding the activations of summary layer {l} for {what}"
                )))?;
        }
        for sel in &self.selections {
            aggs.add_layer_selection(&self.labels, sel)
                .map_err(CoreError::aggregate(format!(
                    "adding the influences into summary layer {} for {what}",
                    sel.layer()
                )))?;
        }
        Ok(())
    }
}

/// Computes what a recording `rec` of `model` adds to aggregates of parameters `params`
/// ([`PreparedBatch`]): the softmax of the logits, every summary layer's channel maxima and
/// arg-max (reduced on the device, read back), and the influences of every convolution hop of
/// every path (read back to the host, fused CPU kernel, or on the device with `kernels`),
/// selected per output channel. Reads no aggregates: it runs on any thread.
#[allow(clippy::too_many_arguments)]
pub fn prepare_recording(
    model: &dyn Summarizable,
    hop_input: HopInput,
    params: &AggregateParams,
    mut rec: Recording,
    ids: &[u64],
    labels: &[usize],
    what: &str,
    kernels: Option<&DeviceKernels>,
) -> Result<PreparedBatch> {
    let desc = model.description();
    let b = ids.len();
    if rec.logits.dims()[0] != b || labels.len() != b {
        return Err(CoreError::Config(format!(
            "{what}: a recording of {} images but {b} ids and {} labels",
            rec.logits.dims()[0],
            labels.len()
        )));
    }

    // predictions
    let logits = to_host(rec.logits.clone(), "logits")
        .map_err(CoreError::model(format!("reading the logits of {what}")))?;
    let probs = softmax_rows(&logits, desc.num_classes);
    let mut activations = Vec::with_capacity(desc.layers.len());
    let mut selections = Vec::with_capacity(desc.paths.len());

    // activations: channel maxima and arg-max on the device
    for layer in desc.layers.iter() {
        let t = rec.tap(layer.tap).clone();
        let [tb, c, h, w] = t.dims();
        if tb != b || c != layer.channels {
            return Err(CoreError::Config(format!(
                "summary layer `{}` recorded {:?}, expected [{b}, {}, H, W] ({what})",
                layer.name,
                [tb, c, h, w],
                layer.channels
            )));
        }
        let (max, arg) = t.reshape([b, c, h * w]).max_dim_with_indices(2);
        let max = to_host(max, &layer.name).map_err(CoreError::model(format!(
            "reading the channel maxima of `{}` for {what}",
            layer.name
        )))?;
        let arg: Vec<u32> = arg
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .map_err(|e| {
                CoreError::Config(format!(
                    "cannot read the arg-max of `{}` for {what}: {e:?}",
                    layer.name
                ))
            })?
            .into_iter()
            .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
            .collect();
        activations.push((max, arg));
    }

    // influences: every hop of every path, on the host (or on the device); the hops of one
    // layer are recorded together, so that paths summing into one channel compete
    let mut host: BTreeMap<TapId, (TensorData, [usize; 4])> = BTreeMap::new();
    for (l, paths) in desc.paths.iter().enumerate() {
        let mut values: Vec<Vec<Vec<f32>>> = Vec::with_capacity(paths.len());
        // hops already computed in this layer: a hop shared by several paths (a chain through
        // a block that is not a summary layer, e.g. MobileNetV2's blocks without a skip) is
        // computed once
        let mut done: Vec<(TapId, &ConvHop, usize, usize)> = Vec::new();
        // (path, hop) filled from an earlier (path, hop) once computed
        let mut dups: Vec<(usize, usize, usize, usize)> = Vec::new();
        // host hops to compute, all of a layer's together in parallel: (path, hop, input tap)
        let mut pending: Vec<(usize, usize, TapId)> = Vec::new();
        for (p, path) in paths.iter().enumerate() {
            let mut per_hop = Vec::with_capacity(path.hops.len());
            for (h, hop) in path.hops.iter().enumerate() {
                let tap = if h == 0 {
                    hop_input.tap(hop)
                } else {
                    hop.input
                };
                if let Some(&(_, _, q, g)) = done
                    .iter()
                    .find(|(t, other, q, _)| *q != p && *t == tap && same_hop(other, hop))
                {
                    dups.push((p, h, q, g));
                    per_hop.push(Vec::new());
                    continue;
                }
                done.push((tap, hop, p, h));
                let hop_what = || hop_context(h, &path.name, &desc.layers[l].name, what);
                let Some(t) = rec.taps.get_mut(tap.0) else {
                    return Err(CoreError::Config(format!(
                        "path `{}` reads tap {} which the recording lacks",
                        path.name, tap.0
                    )));
                };
                let spec = params
                    .hop_spec(l, p, h)
                    .map_err(CoreError::aggregate(hop_what()))?;
                if let Some(kernels) = kernels {
                    let kernel = kernels.get(l, p, h).ok_or_else(|| {
                        CoreError::Config(format!(
                            "no device kernel for hop {h} of path `{}` (kernels of another model?)",
                            path.name
                        ))
                    })?;
                    let dims = t.dims();
                    let geom = params.hop_geometry(&spec, hop_geometry(hop), dims, hop.kernel.dims);
                    let lmax = influence_device_host(
                        t.clone(),
                        kernel,
                        &geom,
                        &DeviceInfluenceOptions::default(),
                    )
                    .map_err(CoreError::aggregate(hop_what()))?;
                    per_hop.push(lmax);
                    continue;
                }
                match host.entry(tap) {
                    std::collections::btree_map::Entry::Occupied(_) => {}
                    std::collections::btree_map::Entry::Vacant(e) => {
                        let dims = t.dims();
                        let name = &desc.taps[tap.0].name;
                        // the recording's last reference to the tap moves to the host without a
                        // copy (the map keeps it while later layers read it)
                        let empty = Tensor::<4>::empty([0, 0, 0, 0], &t.device());
                        let v = host_data(std::mem::replace(t, empty), name).map_err(
                            CoreError::model(format!("reading tap `{name}` for {what}")),
                        )?;
                        e.insert((v, dims));
                    }
                }
                pending.push((p, h, tap));
                per_hop.push(Vec::new());
            }
            values.push(per_hop);
        }
        // the layer's host hops in parallel (each one's values do not depend on it)
        let computed: Vec<Result<Vec<f32>>> = pending
            .par_iter()
            .map(|&(p, h, tap)| {
                let path = &paths[p];
                let hop = &path.hops[h];
                let hop_what = || hop_context(h, &path.name, &desc.layers[l].name, what);
                let (x, dims) = host.get(&tap).ok_or_else(|| {
                    CoreError::Config(format!("tap {} of {what} is not on the host", tap.0))
                })?;
                let x = x.as_slice::<f32>().map_err(|e| {
                    CoreError::Config(format!("cannot read a tap of {what} as f32: {e:?}"))
                })?;
                params
                    .hop_influences_cpu(
                        l,
                        p,
                        h,
                        x,
                        *dims,
                        &hop.kernel.weight,
                        hop.kernel.dims,
                        hop_geometry(hop),
                    )
                    .map_err(CoreError::aggregate(hop_what()))
            })
            .collect();
        for (&(p, h, _), lmax) in pending.iter().zip(computed) {
            values[p][h] = lmax?;
        }
        for &(p, h, q, g) in &dups {
            values[p][h] = values[q][g].clone();
        }
        let refs: Vec<Vec<&[f32]>> = values
            .iter()
            .map(|p| p.iter().map(Vec::as_slice).collect())
            .collect();
        selections.push(params.select_layer_influences(l, labels, &refs).map_err(
            CoreError::aggregate(format!(
                "selecting the influences into `{}` for {what}",
                desc.layers[l].name
            )),
        )?);
        // taps of this layer's paths are no longer needed unless a later layer reads them
        let later: Vec<TapId> = desc.paths[l + 1..]
            .iter()
            .flatten()
            .flat_map(|p| {
                p.hops
                    .iter()
                    .map(|h| h.input)
                    .chain(p.hops.iter().map(|h| h.original_input))
            })
            .collect();
        host.retain(|t, _| later.contains(t));
    }
    Ok(PreparedBatch {
        ids: ids.to_vec(),
        labels: labels.to_vec(),
        what: what.to_string(),
        probs,
        activations,
        selections,
    })
}

/// What a hop's errors say they were doing.
pub(super) fn hop_context(hop: usize, path: &str, layer: &str, what: &str) -> String {
    format!("aggregating influences of hop {hop} of path `{path}` into `{layer}` for {what}")
}

/// A tap's values on the host: the tensor's own data where it reads as `f32` in place (no
/// copy when nothing else holds the tensor), else an `f32` copy.
pub(super) fn host_data(t: Tensor<4>, what: &str) -> summit_model::Result<TensorData> {
    let data = t.into_data();
    if data.as_slice::<f32>().is_ok() {
        return Ok(data);
    }
    let shape = data.shape().clone();
    let values = data.convert::<f32>().try_into_vec::<f32>().map_err(|e| {
        summit_model::ModelError::Data {
            what: what.to_string(),
            reason: format!("{e:?}"),
        }
    })?;
    Ok(TensorData::new(values, shape))
}

/// Whether two hops compute the same influences from the same input: same kind, kernel,
/// geometry and groups.
pub(super) fn same_hop(a: &ConvHop, b: &ConvHop) -> bool {
    a.kind == b.kind
        && a.groups == b.groups
        && a.stride == b.stride
        && a.padding == b.padding
        && a.dilation == b.dilation
        && a.kernel.dims == b.kernel.dims
        && a.kernel.weight == b.kernel.weight
}

/// The geometry of a hop as described (its stride, padding and dilation).
pub fn hop_geometry(hop: &ConvHop) -> HopGeometry {
    HopGeometry::new(hop.stride, hop.padding).with_dilation(hop.dilation)
}

/// Row-wise softmax of `[B, C]` logits, in f64 for stability, max subtracted.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks(classes.max(1)) {
        let m = row
            .iter()
            .map(|&v| f64::from(v))
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| (f64::from(v) - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| (v / s) as f32));
    }
    out
}
