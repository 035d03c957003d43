//! The aggregation's parameters from a model's description and a configuration (SPEC §2.1).

use super::*;

/// The [`PathSpec`]s of every summary layer of a model: `specs[l][p]` describes
/// `desc.paths[l][p]` (its concatenation offset and the `(C_in, C_out)` of each hop, read from
/// the folded kernels).
pub fn path_specs(desc: &ModelDescription) -> Result<Vec<Vec<PathSpec>>> {
    desc.paths
        .iter()
        .enumerate()
        .map(|(l, paths)| {
            paths
                .iter()
                .map(|p| {
                    let hops: Vec<HopSpec> = p
                        .hops
                        .iter()
                        .map(|h| HopSpec {
                            c_in: h.in_channels(),
                            c_out: h.out_channels(),
                            groups: h.groups,
                            identity: h.kind == HopKind::Identity,
                        })
                        .collect();
                    match hops.last() {
                        Some(h) if h.c_out == p.out_channels => Ok(PathSpec {
                            out_offset: p.out_offset,
                            hops,
                        }),
                        _ => Err(CoreError::Config(format!(
                            "path `{}` into summary layer {l} of model `{}`: its last kernel \
                             has {:?} output channels, the path declares {}",
                            p.name,
                            desc.name,
                            hops.last().map(|h| h.c_out),
                            p.out_channels
                        ))),
                    }
                })
                .collect()
        })
        .collect()
}

/// The paper's name of a summary layer when the model gives one (`mixed3a`), else the model's
/// own name. (Aggregates and graphs use the model's own name; the Summit format the paper's.)
pub fn layer_display_name(layer: &summit_model::SummaryLayer) -> String {
    layer.alias.clone().unwrap_or_else(|| layer.name.clone())
}

/// The aggregation parameters of `config` for model `desc` (layers, excluded channels, paths,
/// selections, geometry). Errors when `config` names a layer the model lacks.
pub fn aggregate_params(desc: &ModelDescription, config: &Config) -> Result<AggregateParams> {
    config.validate()?;
    if desc.paths.len() != desc.layers.len() {
        return Err(CoreError::Config(format!(
            "model `{}` describes paths for {} summary layers but has {}",
            desc.name,
            desc.paths.len(),
            desc.layers.len()
        )));
    }
    let excluded = config.excluded_per_layer(desc)?;
    let specs = path_specs(desc)?;
    let mut layers = Vec::with_capacity(desc.layers.len());
    for (l, (layer, paths)) in desc.layers.iter().zip(specs).enumerate() {
        let input_channels = match paths.first().and_then(|p| p.hops.first()) {
            Some(h) => h.c_in,
            None if l > 0 => desc.layers[l - 1].channels,
            None => 0,
        };
        layers.push(LayerParams {
            name: layer.name.clone(),
            channels: layer.channels,
            excluded: excluded[l].clone(),
            input_channels,
            paths,
        });
    }
    let params = AggregateParams {
        num_classes: desc.num_classes,
        layers,
        activation_selection: config.activation_selection,
        influence_selection: config.influence_selection,
        influence_geometry: config.influence_geometry,
        examples_per_channel: config.examples_per_channel,
    };
    params
        .validate()
        .map_err(|e| CoreError::Config(format!("model `{}`: {e}", desc.name)))?;
    Ok(params)
}

/// The half (0 or 1) image `index` belongs to in a [`Config::stability`] run: the low bit of
/// a SplitMix64 hash of the dataset index, so the split is the same for every batch size,
/// order, thread count and shard.
///
/// ```
/// let halves: Vec<usize> = (0..1000).map(summit_core::stability_half).collect();
/// let ones = halves.iter().filter(|&&h| h == 1).count();
/// assert!(ones > 450 && ones < 550);
/// ```
pub fn stability_half(index: usize) -> usize {
    let mut z = (index as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) & 1) as usize
}
