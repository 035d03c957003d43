//! The original Summit frontend's data format (SPEC §5): `data/imagenet.json`
//! and `data/ag/ag-{target_class}.json`, and its checker.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value, json};

use crate::atomic::{create_dir, write_atomic};
use crate::error::{ExportError, Result};
use crate::input::ExportInput;
use crate::manifest::ClassStats;
use summit_influence::aggregates::PROBABILITY_BINS;

/// The keys of every class object of `data/imagenet.json`.
pub const IMAGENET_KEYS: [&str; 9] = [
    "synset",
    "name",
    "label",
    "target_class",
    "numOfInstances",
    "topOneAcc",
    "accs",
    "topChannels",
    "embed",
];
/// The keys of every vertex object of `data/ag/ag-{class}.json`.
pub const AG_VERTEX_KEYS: [&str; 6] = [
    "channel",
    "count",
    "layer",
    "pagerank",
    "prev_channels",
    "attr_channels",
];

/// A number as the original wrote it: an integer when the value is one.
fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// The synset written for a class: its own, else `c{index}` (the frontend
/// builds element ids from it, so it must be unique and id-safe).
pub fn summit_synset(index: usize, synset: Option<&str>) -> String {
    synset.map_or_else(|| format!("c{index}"), str::to_string)
}

/// Writes `data/imagenet.json` and `data/ag/ag-{c}.json`; returns the
/// relative paths written.
pub(crate) fn write_summit_format(
    dir: &Path,
    input: &ExportInput<'_>,
    stats: &[ClassStats],
) -> Result<Vec<String>> {
    create_dir(&dir.join("data/ag"))?;
    let agg = input.aggregates;
    let acts = agg.activations();
    // `accs`: one value per image of the class, its predicted probability of the class,
    // from the streamed histogram (no per-image record is kept): the centre of its
    // 1/PROBABILITY_BINS bin, ascending.
    let accs: Vec<Vec<f64>> = (0..input.classes.len())
        .map(|c| {
            agg.probability_histogram(c)
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .flat_map(|(b, &n)| {
                    let centre = (b as f64 + 0.5) / PROBABILITY_BINS as f64;
                    std::iter::repeat_n(centre, usize::try_from(n).unwrap_or(0))
                })
                .collect()
        })
        .collect();
    // written class by class into one buffer: at 1000 classes the JSON values of every
    // class's topChannels at once would take a gigabyte
    let path = dir.join("data/imagenet.json");
    let json_err = |source| ExportError::Json {
        path: path.clone(),
        source,
    };
    let mut classes: Vec<u8> = b"[".to_vec();
    for (c, info) in input.classes.iter().enumerate() {
        let mut top = Map::new();
        let mut embed = Map::new();
        for (l, desc) in input.layers.iter().enumerate() {
            let row = acts.row(l, c).unwrap_or(&[]);
            let mut list: Vec<(u32, u32)> = row
                .iter()
                .enumerate()
                .filter(|&(_, &n)| n > 0)
                .map(|(ch, &n)| (ch as u32, n))
                .collect();
            list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            top.insert(
                desc.summit_name().to_string(),
                Value::Array(
                    list.iter()
                        .map(|&(ch, n)| json!({"c": ch, "i": n}))
                        .collect(),
                ),
            );
            let p = input.overview.layers[l].embedding[c];
            embed.insert(
                desc.summit_name().to_string(),
                json!({"x": p[0], "y": p[1]}),
            );
        }
        let value = json!({
            "synset": summit_synset(c, info.synset.as_deref()),
            "name": info.name,
            "label": (c + 1).to_string(),
            "target_class": c,
            "numOfInstances": stats[c].images,
            "topOneAcc": stats[c].accuracy.unwrap_or(0.0),
            "accs": accs[c],
            "topChannels": top,
            "embed": embed,
        });
        if c > 0 {
            classes.push(b',');
        }
        serde_json::to_writer(&mut classes, &value).map_err(json_err)?;
    }
    classes.push(b']');
    write_atomic(&path, &classes)?;
    let mut written = vec!["data/imagenet.json".to_string()];
    for (c, g) in input.graphs.iter().enumerate() {
        // keys last layer to first, in this order (a JSON object built by hand)
        let mut out = String::from("{");
        for (k, (l, layer)) in g.layers.iter().enumerate().rev().enumerate() {
            let name = input.layers[l].summit_name();
            let vertices: Vec<Value> = layer
                .vertices
                .iter()
                .map(|v| {
                    json!({
                        "channel": v.channel,
                        "count": v.count,
                        "layer": name,
                        "pagerank": v.pagerank,
                        "prev_channels": v.prev.iter()
                            .map(|&(p, w)| json!({"prev_channel": p, "inf": num(w)}))
                            .collect::<Vec<_>>(),
                        "attr_channels": v.attr.iter()
                            .map(|&(p, w)| json!({"prev_channel": p.to_string(), "inf": num(w)}))
                            .collect::<Vec<_>>(),
                    })
                })
                .collect();
            if k > 0 {
                out.push_str(", ");
            }
            let key = serde_json::to_string(name).unwrap_or_default();
            let val = serde_json::to_string(&vertices).map_err(|source| ExportError::Json {
                path: dir.join(format!("data/ag/ag-{c}.json")),
                source,
            })?;
            out.push_str(&key);
            out.push_str(": ");
            out.push_str(&val);
        }
        out.push('}');
        let rel = format!("data/ag/ag-{c}.json");
        write_atomic(&dir.join(&rel), out.as_bytes())?;
        written.push(rel);
    }
    Ok(written)
}

/// A JSON object with its keys in file order.
struct Ordered(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut m: A,
            ) -> std::result::Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some((k, val)) = m.next_entry::<String, Value>()? {
                    v.push((k, val));
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

fn bad(file: &str, reason: String) -> ExportError {
    ExportError::SummitFormat {
        file: file.to_string(),
        reason,
    }
}

fn exact_keys(file: &str, what: &str, obj: &Map<String, Value>, keys: &[&str]) -> Result<()> {
    let got: BTreeSet<&str> = obj.keys().map(String::as_str).collect();
    let want: BTreeSet<&str> = keys.iter().copied().collect();
    if got != want {
        let missing: Vec<_> = want.difference(&got).collect();
        let extra: Vec<_> = got.difference(&want).collect();
        return Err(bad(
            file,
            format!("{what}: keys missing {missing:?}, unexpected {extra:?}"),
        ));
    }
    Ok(())
}

fn as_uint(file: &str, what: &str, v: &Value) -> Result<u64> {
    v.as_u64().ok_or_else(|| {
        bad(
            file,
            format!("{what} must be a non-negative integer, got {v}"),
        )
    })
}

fn as_num(file: &str, what: &str, v: &Value) -> Result<f64> {
    v.as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| bad(file, format!("{what} must be a finite number, got {v}")))
}

/// Checks the Summit-format files of an output directory against SPEC §5:
///
/// * `data/imagenet.json` is an array of classes, each with exactly the keys
///   [`IMAGENET_KEYS`]; `target_class` values are distinct non-negative
///   integers; `numOfInstances` equals the length of `accs`, whose values
///   lie in `[0, 1]`; `topOneAcc` lies in `[0, 1]`; `topChannels` and
///   `embed` have the same layer keys for every class; every
///   `topChannels[layer]` is a list of `{c, i}` with distinct channels `c`
///   and counts `i > 0` sorted descending; `embed[layer]` is `{x, y}` with
///   finite numbers.
/// * For every class `data/ag/ag-{target_class}.json` exists and is an
///   object whose keys are the same layers, from last to first (the order
///   of `manifest.json`'s layers when present, else the same order in every
///   file); each vertex has exactly the keys [`AG_VERTEX_KEYS`], its `layer`
///   equals its key, channels are distinct in a layer (and below the
///   layer's channel count when the manifest gives it); every
///   `prev_channels[].prev_channel` is a `channel` of the next lower layer
///   and the lowest layer has no `prev_channels`; every `inf` is a finite
///   number.
pub fn check_summit_format(dir: &Path) -> Result<()> {
    let file = "data/imagenet.json";
    let classes: Vec<Value> = crate::atomic::read_json(&dir.join(file))?;
    let manifest = crate::read_manifest(dir).ok();
    let manifest_layers: Option<Vec<(String, usize)>> = manifest.as_ref().map(|m| {
        m.layers
            .iter()
            .map(|l| (l.summit_name().to_string(), l.channels))
            .collect()
    });
    if let Some(m) = &manifest
        && classes.len() != m.classes.len()
    {
        return Err(bad(
            file,
            format!(
                "{} classes, the manifest has {}",
                classes.len(),
                m.classes.len()
            ),
        ));
    }
    let mut layer_set: Option<BTreeSet<String>> = None;
    let mut targets = BTreeSet::new();
    for (k, cv) in classes.iter().enumerate() {
        let obj = cv
            .as_object()
            .ok_or_else(|| bad(file, format!("entry {k} is not an object")))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let what = format!("class {k} '{name}'");
        exact_keys(file, &what, obj, &IMAGENET_KEYS)?;
        for key in ["synset", "name", "label"] {
            if !obj[key].is_string() {
                return Err(bad(file, format!("{what}: {key} must be a string")));
            }
        }
        let target = as_uint(file, &format!("{what}: target_class"), &obj["target_class"])?;
        if !targets.insert(target) {
            return Err(bad(file, format!("{what}: target_class {target} repeated")));
        }
        let n = as_uint(
            file,
            &format!("{what}: numOfInstances"),
            &obj["numOfInstances"],
        )?;
        let acc = as_num(file, &format!("{what}: topOneAcc"), &obj["topOneAcc"])?;
        if !(0.0..=1.0).contains(&acc) {
            return Err(bad(file, format!("{what}: topOneAcc {acc} outside [0, 1]")));
        }
        let accs = obj["accs"]
            .as_array()
            .ok_or_else(|| bad(file, format!("{what}: accs must be an array")))?;
        if accs.len() as u64 != n {
            return Err(bad(
                file,
                format!("{what}: {} accs for numOfInstances {n}", accs.len()),
            ));
        }
        for a in accs {
            let p = as_num(file, &format!("{what}: accs value"), a)?;
            if !(0.0..=1.0).contains(&p) {
                return Err(bad(file, format!("{what}: accs value {p} outside [0, 1]")));
            }
        }
        let top = obj["topChannels"]
            .as_object()
            .ok_or_else(|| bad(file, format!("{what}: topChannels must be an object")))?;
        let embed = obj["embed"]
            .as_object()
            .ok_or_else(|| bad(file, format!("{what}: embed must be an object")))?;
        let keys: BTreeSet<String> = top.keys().cloned().collect();
        let ekeys: BTreeSet<String> = embed.keys().cloned().collect();
        if keys != ekeys {
            return Err(bad(
                file,
                format!("{what}: topChannels layers {keys:?} differ from embed layers {ekeys:?}"),
            ));
        }
        match &layer_set {
            None => layer_set = Some(keys.clone()),
            Some(s) if *s != keys => {
                return Err(bad(
                    file,
                    format!("{what}: layers {keys:?} differ from the first class's {s:?}"),
                ));
            }
            _ => {}
        }
        for (layer, list) in top {
            let list = list.as_array().ok_or_else(|| {
                bad(
                    file,
                    format!("{what}: topChannels[{layer}] must be an array"),
                )
            })?;
            let mut seen = BTreeSet::new();
            let mut prev = u64::MAX;
            for e in list {
                let eo = e.as_object().ok_or_else(|| {
                    bad(
                        file,
                        format!("{what}: topChannels[{layer}] entry not an object"),
                    )
                })?;
                exact_keys(
                    file,
                    &format!("{what}: topChannels[{layer}] entry"),
                    eo,
                    &["c", "i"],
                )?;
                let c = as_uint(file, &format!("{what}: topChannels[{layer}].c"), &eo["c"])?;
                let i = as_uint(file, &format!("{what}: topChannels[{layer}].i"), &eo["i"])?;
                if i == 0 || i > prev {
                    return Err(bad(
                        file,
                        format!(
                            "{what}: topChannels[{layer}] counts must be > 0 and descending (channel {c}: {i} after {prev})"
                        ),
                    ));
                }
                if !seen.insert(c) {
                    return Err(bad(
                        file,
                        format!("{what}: topChannels[{layer}] repeats channel {c}"),
                    ));
                }
                prev = i;
            }
            let p = embed[layer]
                .as_object()
                .ok_or_else(|| bad(file, format!("{what}: embed[{layer}] must be an object")))?;
            exact_keys(file, &format!("{what}: embed[{layer}]"), p, &["x", "y"])?;
            as_num(file, &format!("{what}: embed[{layer}].x"), &p["x"])?;
            as_num(file, &format!("{what}: embed[{layer}].y"), &p["y"])?;
        }
    }
    if let (Some(ml), Some(s)) = (&manifest_layers, &layer_set) {
        let mset: BTreeSet<String> = ml.iter().map(|(n, _)| n.clone()).collect();
        if mset != *s {
            return Err(bad(
                file,
                format!("layers {s:?} differ from the manifest's {mset:?}"),
            ));
        }
    }
    let channels: BTreeMap<String, usize> = manifest_layers.iter().flatten().cloned().collect();
    let mut order: Option<Vec<String>> = manifest_layers
        .as_ref()
        .map(|ml| ml.iter().rev().map(|(n, _)| n.clone()).collect());
    for target in targets {
        let file = format!("data/ag/ag-{target}.json");
        let path = dir.join(&file);
        let bytes = std::fs::read(&path).map_err(|source| ExportError::Io {
            op: "reading",
            path: path.clone(),
            source,
        })?;
        let Ordered(layers) =
            serde_json::from_slice(&bytes).map_err(|source| ExportError::Json {
                path: path.clone(),
                source,
            })?;
        let keys: Vec<String> = layers.iter().map(|(k, _)| k.clone()).collect();
        let key_set: BTreeSet<String> = keys.iter().cloned().collect();
        if Some(&key_set) != layer_set.as_ref() {
            return Err(bad(
                &file,
                format!("layer keys {keys:?} differ from imagenet.json's {layer_set:?}"),
            ));
        }
        match &order {
            None => order = Some(keys.clone()),
            Some(o) if *o != keys => {
                return Err(bad(
                    &file,
                    format!("layer keys {keys:?} are not in the order last to first {o:?}"),
                ));
            }
            _ => {}
        }
        let mut chans: Vec<BTreeSet<u64>> = Vec::with_capacity(layers.len());
        for (layer, vs) in &layers {
            let vs = vs
                .as_array()
                .ok_or_else(|| bad(&file, format!("layer {layer} must be an array")))?;
            let mut set = BTreeSet::new();
            for v in vs {
                let o = v.as_object().ok_or_else(|| {
                    bad(&file, format!("layer {layer}: a vertex is not an object"))
                })?;
                exact_keys(&file, &format!("layer {layer} vertex"), o, &AG_VERTEX_KEYS)?;
                let ch = as_uint(&file, &format!("layer {layer}: channel"), &o["channel"])?;
                let what = format!("layer {layer} channel {ch}");
                if o["layer"].as_str() != Some(layer.as_str()) {
                    return Err(bad(
                        &file,
                        format!("{what}: layer is {}, not its key", o["layer"]),
                    ));
                }
                if let Some(&n) = channels.get(layer)
                    && ch as usize >= n
                {
                    return Err(bad(
                        &file,
                        format!("{what}: channel >= the layer's {n} channels"),
                    ));
                }
                if !set.insert(ch) {
                    return Err(bad(&file, format!("{what}: repeated")));
                }
                as_uint(&file, &format!("{what}: count"), &o["count"])?;
                let pr = as_num(&file, &format!("{what}: pagerank"), &o["pagerank"])?;
                if pr < 0.0 {
                    return Err(bad(&file, format!("{what}: negative pagerank {pr}")));
                }
                for key in ["prev_channels", "attr_channels"] {
                    let list = o[key]
                        .as_array()
                        .ok_or_else(|| bad(&file, format!("{what}: {key} must be an array")))?;
                    for e in list {
                        let eo = e.as_object().ok_or_else(|| {
                            bad(&file, format!("{what}: {key} entry not an object"))
                        })?;
                        exact_keys(
                            &file,
                            &format!("{what}: {key} entry"),
                            eo,
                            &["prev_channel", "inf"],
                        )?;
                        as_num(&file, &format!("{what}: {key}.inf"), &eo["inf"])?;
                    }
                }
            }
            chans.push(set);
        }
        // prev_channels must exist in the next lower layer (the next key)
        for (k, (layer, vs)) in layers.iter().enumerate() {
            let below = chans.get(k + 1);
            for v in vs.as_array().into_iter().flatten() {
                let ch = v["channel"].as_u64().unwrap_or(0);
                for e in v["prev_channels"].as_array().into_iter().flatten() {
                    let p = e["prev_channel"].as_u64().ok_or_else(|| {
                        bad(&file, format!("layer {layer} channel {ch}: prev_channel must be an integer, got {}", e["prev_channel"]))
                    })?;
                    match below {
                        None => {
                            return Err(bad(
                                &file,
                                format!(
                                    "layer {layer} channel {ch}: the lowest layer has prev_channel {p}"
                                ),
                            ));
                        }
                        Some(b) if !b.contains(&p) => {
                            return Err(bad(
                                &file,
                                format!(
                                    "layer {layer} channel {ch}: prev_channel {p} is not a channel of the next lower layer {}",
                                    layers[k + 1].0
                                ),
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// The Summit format's feature visualization of `channel` of a layer named `summit`
/// (SPEC §5), relative to the output directory.
pub fn summit_channel_file(summit: &str, channel: u32) -> String {
    format!("data/feature-vis/channel/{summit}-{channel}-channel.jpg")
}

/// The Summit format's diversity image `d` (0..3) of `channel` of a layer named `summit`
/// (SPEC §5), relative to the output directory.
pub fn summit_diversity_file(summit: &str, channel: u32, d: usize) -> String {
    format!("data/feature-vis/diversity-{d}/{summit}-{channel}-diversity-{d}.jpg")
}

/// The images SPEC §5 names for every vertex of every graph of the Summit format under `dir`
/// (`data/ag/ag-*.json`: the channel image, its 4 diversity images and its dataset examples)
/// that are missing, as relative paths. `examples(layer, channel)` is the number of dataset
/// examples expected of a vertex (at most 10 are checked).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// assert!(summit_export::missing_summit_images(dir.path(), &|_, _| 10).is_err()); // no data/ag
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn missing_summit_images(
    dir: &Path,
    examples: &dyn Fn(&str, u32) -> usize,
) -> Result<Vec<String>> {
    let ag = dir.join("data/ag");
    let entries = std::fs::read_dir(&ag).map_err(|source| ExportError::Io {
        op: "reading",
        path: ag.clone(),
        source,
    })?;
    let mut vertices = BTreeSet::new();
    for e in entries {
        let e = e.map_err(|source| ExportError::Io {
            op: "reading",
            path: ag.clone(),
            source,
        })?;
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let graph: BTreeMap<String, Vec<Value>> = crate::atomic::read_json(&path)?;
        for (layer, list) in graph {
            for v in list {
                if let Some(c) = v.get("channel").and_then(Value::as_u64) {
                    vertices.insert((layer.clone(), c as u32));
                }
            }
        }
    }
    let mut missing = Vec::new();
    for (layer, c) in vertices {
        let mut want = vec![summit_channel_file(&layer, c)];
        want.extend((0..4).map(|d| summit_diversity_file(&layer, c, d)));
        want.extend(
            (0..examples(&layer, c).min(10))
                .map(|i| crate::patches::summit_dataset_file(&layer, c, i)),
        );
        missing.extend(want.into_iter().filter(|w| !dir.join(w).is_file()));
    }
    Ok(missing)
}
