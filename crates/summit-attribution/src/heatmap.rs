//! Heatmaps for display: one `[0, 1]` value per input pixel, and overlays on the image.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::attribute::Attribution;
use crate::error::{AttributionError, Result};
use crate::method::Method;

/// The display heatmap of image `i` of `attr` at `h × w` (the input's size), in `[0, 1]`:
/// - gradient methods: `Σ_c |a|` per pixel (Captum's `absolute_value` sign), divided by its
///   99th percentile and clipped, so that a few extreme pixels do not hide the rest;
/// - Occlusion: the positive part (evidence for the class), divided by its maximum;
/// - LRP: the relevance summed over colour channels (SPEC §4.2), its positive part (evidence
///   for the target), divided by its 99th percentile and clipped;
/// - Grad-CAM: the map bilinearly upsampled to `h × w` (half-pixel centres, as
///   `align_corners=False`), positive part, divided by its maximum.
///
/// An all-zero attribution gives an all-zero heatmap.
///
/// ```
/// use summit_attribution::{Attribution, Method, heatmap};
/// let cam = Attribution { method: Method::GradCam, dims: [1, 1, 2, 2],
///                         values: vec![0.0, 1.0, 2.0, 4.0], targets: vec![0],
///                         neuron_layer: None };
/// let map = heatmap(&cam, 0, 4, 4);
/// assert_eq!(map.len(), 16);
/// assert_eq!(map[15], 1.0);
/// assert_eq!(map[0], 0.0);
/// ```
pub fn heatmap(attr: &Attribution, i: usize, h: usize, w: usize) -> Vec<f32> {
    let [_, c, ah, aw] = attr.dims;
    let v = attr.image(i);
    if attr.method == Method::GradCam {
        return layer_heatmap(v, ah, aw, h, w);
    }
    let mut map = match attr.method {
        Method::Occlusion => v[..ah * aw].iter().map(|x| x.max(0.0)).collect(),
        m if m.composite().is_some() => {
            let mut s = vec![0f32; ah * aw];
            for ch in 0..c {
                for (o, x) in s.iter_mut().zip(&v[ch * ah * aw..(ch + 1) * ah * aw]) {
                    *o += x;
                }
            }
            s.into_iter().map(|x| x.max(0.0)).collect()
        }
        _ => {
            let mut m = vec![0f32; ah * aw];
            for ch in 0..c {
                for (o, x) in m.iter_mut().zip(&v[ch * ah * aw..(ch + 1) * ah * aw]) {
                    *o += x.abs();
                }
            }
            m
        }
    };
    if attr.method.is_input_space() && (ah, aw) != (h, w) {
        map = upsample(&map, ah, aw, h, w);
    }
    let scale = match attr.method {
        Method::Occlusion => map.iter().fold(0f32, |m, &x| m.max(x)),
        _ => percentile(&map, 0.99),
    };
    if scale > 0.0 && scale.is_finite() {
        for x in &mut map {
            *x = (*x / scale).clamp(0.0, 1.0);
        }
    } else {
        map.fill(0.0);
    }
    map
}

/// A map at a layer's resolution (`ah × aw` values: Grad-CAM's map, or one channel's
/// activations) as a `[0, 1]` heatmap over the `h × w` image: bilinearly upsampled (half-pixel
/// centres, as `align_corners=False`), its positive part, divided by its maximum (all zero
/// when nothing is positive).
///
/// ```
/// let map = summit_attribution::layer_heatmap(&[0.0, -1.0, 2.0, 4.0], 2, 2, 2, 2);
/// assert_eq!(map, vec![0.0, 0.0, 0.5, 1.0]);
/// ```
pub fn layer_heatmap(values: &[f32], ah: usize, aw: usize, h: usize, w: usize) -> Vec<f32> {
    let mut map: Vec<f32> = upsample(values, ah, aw, h, w)
        .into_iter()
        .map(|x| x.max(0.0))
        .collect();
    let scale = map.iter().fold(0f32, |m, &x| m.max(x));
    if scale > 0.0 && scale.is_finite() {
        for x in &mut map {
            *x = (*x / scale).clamp(0.0, 1.0);
        }
    } else {
        map.fill(0.0);
    }
    map
}

fn percentile(v: &[f32], q: f64) -> f32 {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return 0.0;
    }
    s.sort_by(f32::total_cmp);
    let k = ((s.len() - 1) as f64 * q).round() as usize;
    let p = s[k];
    if p > 0.0 { p } else { s[s.len() - 1] }
}

/// Bilinear resize of an `h × w` plane to `oh × ow` (half-pixel centres).
pub fn upsample(v: &[f32], h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0f32; oh * ow];
    if h == 0 || w == 0 {
        return out;
    }
    let coord = |o: usize, n_out: usize, n_in: usize| {
        let s = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f32)
    };
    for y in 0..oh {
        let (y0, y1, fy) = coord(y, oh, h);
        for x in 0..ow {
            let (x0, x1, fx) = coord(x, ow, w);
            let top = v[y0 * w + x0] * (1.0 - fx) + v[y0 * w + x1] * fx;
            let bot = v[y1 * w + x0] * (1.0 - fx) + v[y1 * w + x1] * fx;
            out[y * ow + x] = top * (1.0 - fy) + bot * fy;
        }
    }
    out
}

/// A perceptual colour for `t ∈ [0, 1]` (dark blue → magenta → orange → light yellow, close to
/// matplotlib's `inferno`).
pub fn colormap(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 6] = [
        [0.0, 0.0, 4.0],
        [40.0, 11.0, 84.0],
        [101.0, 21.0, 110.0],
        [188.0, 55.0, 84.0],
        [249.0, 142.0, 9.0],
        [252.0, 255.0, 164.0],
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f32;
    let i = (t.floor() as usize).min(STOPS.len() - 2);
    let f = t - i as f32;
    let mut c = [0u8; 3];
    for k in 0..3 {
        c[k] = (STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f).round() as u8;
    }
    c
}

/// The image with the heatmap laid over it: each pixel blends the image (dimmed) with the
/// heatmap's colour by an opacity that grows with the heat, so cold regions show the image.
pub fn overlay(image: &RgbImage, heat: &[f32]) -> Result<RgbImage> {
    let (w, h) = image.dimensions();
    if heat.len() != (w * h) as usize {
        return Err(AttributionError::Input(format!(
            "heatmap of {} values for a {w}×{h} image",
            heat.len()
        )));
    }
    let mut out = RgbImage::new(w, h);
    for (k, (p, o)) in image.pixels().zip(out.pixels_mut()).enumerate() {
        let t = heat[k];
        let col = colormap(t);
        let alpha = 0.15 + 0.7 * t.sqrt();
        let mut px = [0u8; 3];
        for c in 0..3 {
            let base = f32::from(p.0[c]) * 0.85;
            px[c] = (base * (1.0 - alpha) + f32::from(col[c]) * alpha)
                .round()
                .clamp(0.0, 255.0) as u8;
        }
        *o = Rgb(px);
    }
    Ok(out)
}

/// Writes `image` as a PNG, atomically (a temporary file renamed into place).
pub fn write_png(image: &RgbImage, path: &Path) -> Result<()> {
    let err = |e: &dyn std::fmt::Display| AttributionError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .map_err(|e| err(&e))?;
    summit_io::write_atomic(path, png.get_ref(), true).map_err(|e| err(&e))
}

/// A `[0, 1]` heatmap of `w × h` values as a colour image ([`colormap`]).
pub fn heatmap_image(heat: &[f32], w: u32, h: u32) -> Result<RgbImage> {
    if heat.len() != (w * h) as usize {
        return Err(AttributionError::Input(format!(
            "heatmap of {} values for a {w}×{h} image",
            heat.len()
        )));
    }
    let mut out = RgbImage::new(w, h);
    for (p, &t) in out.pixels_mut().zip(heat) {
        *p = Rgb(colormap(t));
    }
    Ok(out)
}

/// A contact sheet: `rows` of images, each scaled to `cell × cell` pixels (nearest neighbour),
/// two white pixels apart.
///
/// ```
/// use image::RgbImage;
/// let a = RgbImage::new(4, 4);
/// let sheet = summit_attribution::grid(&[vec![a.clone(), a.clone()], vec![a]], 8);
/// assert_eq!(sheet.dimensions(), (20, 20));
/// ```
pub fn grid(rows: &[Vec<RgbImage>], cell: u32) -> RgbImage {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0) as u32;
    let step = cell + 2;
    let mut sheet =
        RgbImage::from_pixel(cols * step, rows.len() as u32 * step, Rgb([255, 255, 255]));
    for (r, row) in rows.iter().enumerate() {
        for (c, img) in row.iter().enumerate() {
            let scaled =
                image::imageops::resize(img, cell, cell, image::imageops::FilterType::Nearest);
            image::imageops::replace(
                &mut sheet,
                &scaled,
                i64::from(c as u32 * step),
                i64::from(r as u32 * step),
            );
        }
    }
    sheet
}
