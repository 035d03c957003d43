//! Dataset-example patches: receptive-field crops of the top images of
//! every channel that is a vertex of some class's attribution graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use image::{RgbImage, imageops};

use crate::atomic::{create_dir, write_atomic_unsynced};
use crate::error::{ExportError, Result};
use crate::input::{ExportInput, PatchGeometry, PatchSource};
use crate::manifest::PatchStats;
use crate::output::patch_dir_name;

/// The square crop `(x0, y0, side)` in an image of `image_wh = [width,
/// height]` pixels for the arg-max cell `argmax` (flat `h * W + w`) of a
/// layer with `geometry` (see [`PatchGeometry`]). `None` if `argmax` is
/// outside the feature map or a size is 0.
///
/// ```
/// use summit_export::{crop_box, PatchGeometry};
/// let g = PatchGeometry { layer_hw: [4, 4], input_hw: [64, 64], receptive_field: 16 };
/// // cell (1, 2): centre (24, 40) in (y, x); 16 px square around it
/// assert_eq!(crop_box(&g, 1 * 4 + 2, [64, 64]), Some((32, 16, 16)));
/// // a corner cell is shifted inside the image
/// assert_eq!(crop_box(&PatchGeometry { receptive_field: 40, ..g }, 0, [64, 64]), Some((0, 0, 40)));
/// ```
pub fn crop_box(
    geometry: &PatchGeometry,
    argmax: u32,
    image_wh: [u32; 2],
) -> Option<(u32, u32, u32)> {
    let [lh, lw] = geometry.layer_hw;
    let [ih, iw] = geometry.input_hw;
    let [w_px, h_px] = image_wh;
    if lh == 0 || lw == 0 || ih == 0 || iw == 0 || w_px == 0 || h_px == 0 {
        return None;
    }
    let a = argmax as usize;
    if a >= lh * lw {
        return None;
    }
    let (h, w) = (a / lw, a % lw);
    let sy = f64::from(h_px) / ih as f64;
    let sx = f64::from(w_px) / iw as f64;
    let cy = (h as f64 + 0.5) * ih as f64 / lh as f64 * sy;
    let cx = (w as f64 + 0.5) * iw as f64 / lw as f64 * sx;
    let side =
        ((geometry.receptive_field as f64 * sx.min(sy)).round() as u32).clamp(1, w_px.min(h_px));
    let place = |c: f64, len: u32| -> u32 {
        let start = (c - f64::from(side) / 2.0).round();
        start.clamp(0.0, f64::from(len - side)) as u32
    };
    Some((place(cx, w_px), place(cy, h_px), side))
}

/// Crops and resizes one patch.
pub(crate) fn crop_patch(img: &RgbImage, (x, y, side): (u32, u32, u32), size: u32) -> RgbImage {
    let view = imageops::crop_imm(img, x, y, side, side).to_image();
    if side == size {
        view
    } else {
        imageops::resize(&view, size, size, imageops::FilterType::Triangle)
    }
}

/// The relative file name of patch `rank` of `channel` in layer `layer`.
pub(crate) fn patch_file(
    input: &ExportInput<'_>,
    layer: usize,
    channel: u32,
    rank: usize,
) -> String {
    format!(
        "{}/{channel}-{rank}.png",
        patch_dir_name(layer, &input.layers[layer])
    )
}

/// Per layer: channel -> number of patches written (ranks `0..n`).
pub(crate) type PatchCounts = BTreeMap<usize, BTreeMap<u32, usize>>;

/// The Summit format's file of dataset example `rank` of `channel` of a layer named `summit`
/// (SPEC §5), relative to the output directory.
pub fn summit_dataset_file(summit: &str, channel: u32, rank: usize) -> String {
    format!("data/feature-vis/dataset-p/{summit}-{channel}-dataset-p-{rank}.jpg")
}

/// Encodes `img` as JPEG (quality 90) and writes it to `path` (atomically, creating its
/// directory).
pub fn write_jpeg(img: &RgbImage, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(img)
        .map_err(|source| ExportError::Image {
            path: path.to_path_buf(),
            source,
        })?;
    if let Some(parent) = path.parent() {
        create_dir(parent)?;
    }
    write_atomic_unsynced(path, &bytes)
}

/// Writes the patches (and, with `summit_format`, their JPEG copies under the Summit
/// format's `data/feature-vis/dataset-p/`); returns the statistics, the per-channel counts
/// and the relative paths written.
pub(crate) fn write_patches(
    dir: &Path,
    input: &ExportInput<'_>,
    src: &PatchSource<'_>,
    summit_format: bool,
) -> Result<(PatchStats, PatchCounts, Vec<String>)> {
    let examples = input.aggregates.examples();
    // channels per layer appearing in some graph
    let mut channels: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); input.layers.len()];
    for g in input.graphs {
        for (l, layer) in g.layers.iter().enumerate() {
            channels[l].extend(layer.vertices.iter().map(|v| v.channel));
        }
    }
    // image id -> [(layer, channel, rank, argmax)]
    let mut jobs: BTreeMap<u64, Vec<(usize, u32, usize, u32)>> = BTreeMap::new();
    let mut n_channels = 0;
    for (l, chans) in channels.iter().enumerate() {
        for &c in chans {
            n_channels += 1;
            let ex = examples.get(l, c as usize).unwrap_or(&[]);
            for (rank, e) in ex.iter().take(src.per_channel).enumerate() {
                jobs.entry(e.image_id)
                    .or_default()
                    .push((l, c, rank, e.argmax));
            }
        }
    }
    for (l, chans) in channels.iter().enumerate() {
        if !chans.is_empty() {
            create_dir(&dir.join(patch_dir_name(l, &input.layers[l])))?;
        }
    }
    if summit_format && !jobs.is_empty() {
        create_dir(&dir.join("data/feature-vis/dataset-p"))?;
    }
    let mut present: BTreeMap<(usize, u32), BTreeSet<usize>> = BTreeMap::new();
    let mut written = Vec::new();
    let mut patches = 0;
    let mut missing = 0;
    for (&image_id, list) in &jobs {
        let Some(img) = (src.image)(image_id) else {
            missing += list.len();
            continue;
        };
        for &(l, c, rank, argmax) in list {
            let geometry = &src.geometry[l];
            let bx = crop_box(geometry, argmax, [img.width(), img.height()]).ok_or_else(|| {
                ExportError::Input {
                    what: format!(
                        "arg-max cell of example {rank} (image {image_id}) of channel {c} of layer '{}'",
                        input.layers[l].name
                    ),
                    expected: format!(
                        "< {} cells of the {:?} feature map, image non-empty",
                        geometry.layer_hw[0] * geometry.layer_hw[1],
                        geometry.layer_hw
                    ),
                    got: format!("cell {argmax}, image {}x{}", img.width(), img.height()),
                }
            })?;
            let patch = crop_patch(&img, bx, src.size);
            let rel = patch_file(input, l, c, rank);
            let path = dir.join(&rel);
            let mut bytes = Vec::new();
            patch
                .write_to(
                    &mut std::io::Cursor::new(&mut bytes),
                    image::ImageFormat::Png,
                )
                .map_err(|source| ExportError::Image {
                    path: path.clone(),
                    source,
                })?;
            write_atomic_unsynced(&path, &bytes)?;
            if summit_format {
                let rel = summit_dataset_file(input.layers[l].summit_name(), c, rank);
                write_jpeg(&patch, &dir.join(&rel))?;
                written.push(rel);
            }
            present.entry((l, c)).or_default().insert(rank);
            patches += 1;
            written.push(rel);
        }
    }
    // the view shows ranks 0..n without gaps
    let mut counts: PatchCounts = BTreeMap::new();
    for ((l, c), ranks) in present {
        let n = (0..).take_while(|r| ranks.contains(r)).count();
        if n > 0 {
            counts.entry(l).or_default().insert(c, n);
        }
    }
    let stats = PatchStats {
        size: src.size,
        per_channel: src.per_channel,
        channels: n_channels,
        written: patches,
        missing_images: missing,
    };
    Ok((stats, counts, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Brute force: the crop is the `side`-square whose centre is nearest
    /// to the cell centre among all squares inside the image.
    #[test]
    fn crop_box_is_the_nearest_square_inside_the_image() {
        for (layer_hw, input_hw, rf, image_wh) in [
            ([7, 7], [224, 224], 99, [224, 224]),
            ([14, 14], [224, 224], 139, [112, 112]),
            ([3, 5], [30, 50], 12, [60, 100]),
            ([4, 4], [32, 32], 64, [32, 32]),
        ] {
            let g = PatchGeometry {
                layer_hw,
                input_hw,
                receptive_field: rf,
            };
            for a in 0..(layer_hw[0] * layer_hw[1]) as u32 {
                let (x0, y0, side) =
                    crop_box(&g, a, image_wh).unwrap_or_else(|| panic!("cell {a}"));
                let scale = f64::from(image_wh[0]) / input_hw[1] as f64;
                let want_side =
                    ((rf as f64 * scale).round() as u32).min(image_wh[0].min(image_wh[1]));
                assert_eq!(side, want_side);
                let (h, w) = (a as usize / layer_hw[1], a as usize % layer_hw[1]);
                let cx = (w as f64 + 0.5) * f64::from(image_wh[0]) / layer_hw[1] as f64;
                let cy = (h as f64 + 0.5) * f64::from(image_wh[1]) / layer_hw[0] as f64;
                let best = |c: f64, len: u32| {
                    (0..=len - side)
                        .min_by(|&p, &q| {
                            let d = |s: u32| (f64::from(s) + f64::from(side) / 2.0 - c).abs();
                            d(p).total_cmp(&d(q))
                        })
                        .unwrap_or(0)
                };
                let (bx, by) = (best(cx, image_wh[0]), best(cy, image_wh[1]));
                assert!(
                    (i64::from(x0) - i64::from(bx)).abs() <= 1,
                    "cell {a}: x {x0} vs {bx}"
                );
                assert!(
                    (i64::from(y0) - i64::from(by)).abs() <= 1,
                    "cell {a}: y {y0} vs {by}"
                );
            }
            assert_eq!(
                crop_box(&g, (layer_hw[0] * layer_hw[1]) as u32, image_wh),
                None
            );
        }
    }
}
