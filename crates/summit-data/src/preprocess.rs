//! Decoding image files and turning decoded images into model input.
//!
//! A [`Preprocess`] preset (or a hand-made [`Transform`]) describes the
//! whole chain from a decoded image to a `C×H×W` `f32` tensor:
//!
//! 1. **colour**: [`ColorMode::Rgb`] converts every input to 8-bit RGB
//!    (greyscale is replicated into the three channels; an alpha channel is
//!    *dropped*, not composited over a background — the same as PIL's
//!    `img.convert("RGB")` that torchvision's `ImageFolder` uses; 16-bit
//!    images are scaled to 8 bits). [`ColorMode::Luma`] converts to one 8-bit
//!    grey channel with PIL's `convert("L")` formula
//!    `L = (19595·R + 38470·G + 7471·B + 32768) >> 16` (ITU-R 601-2 luma),
//!    again ignoring alpha. EXIF orientation is not applied (neither does PIL
//!    by default).
//! 2. **resize** ([`Resize`]) with `image`'s `Triangle` filter, i.e. bilinear
//!    interpolation whose support widens when down-scaling (antialiased).
//!    torchvision's `Resize` on PIL images is antialiased bilinear as well;
//!    the two agree to about one grey level (see the crate's reference tests).
//!    Results are rounded to 8 bits after resizing, as PIL does.
//! 3. **center crop**, offsets as torchvision's `CenterCrop`:
//!    `top = round((H − h) / 2)` with Python's round-half-to-even.
//! 4. **value map** per channel: `value = pixel · scale[c] + offset[c]`, where
//!    `pixel` is the 8-bit value in `0..=255`. A mean/std normalisation
//!    `(pixel/255 − mean)/std` is `scale = 1/(255·std)`, `offset = −mean/std`.

use std::path::Path;

use image::{DynamicImage, GrayImage, RgbImage, imageops::FilterType};

use crate::error::{DataError, Result};

/// ImageNet channel means (RGB) used by torchvision models.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB) used by torchvision models.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Mean of Fashion-MNIST training pixels scaled to `[0, 1]`; the default of
/// [`Preprocess::fashion_mnist`] and the value the embedded model was trained with.
pub const FASHION_MNIST_MEAN: f32 = 0.2860;
/// Standard deviation of Fashion-MNIST training pixels scaled to `[0, 1]`.
pub const FASHION_MNIST_STD: f32 = 0.3530;
/// Default multiplier of the Lucid value map `value = 2·pixel − 372` (SPEC §6).
pub const LUCID_SCALE: f32 = 2.0;
/// Default offset of the Lucid value map `value = 2·pixel − 372` (SPEC §6).
pub const LUCID_OFFSET: f32 = -372.0;

/// A decoded, preprocessed sample: `channels × height × width` values, row-major (CHW).
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    /// `channels * height * width` values, channel-major then row-major.
    pub data: Vec<f32>,
    /// Number of channels (3 for RGB, 1 for greyscale).
    pub channels: usize,
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
}

impl Image {
    /// `[channels, height, width]`.
    pub fn dims(&self) -> [usize; 3] {
        [self.channels, self.height, self.width]
    }
}

/// Which colour representation the model expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColorMode {
    /// Three channels, R, G, B in that order.
    Rgb,
    /// One grey channel.
    Luma,
}

impl ColorMode {
    /// Number of output channels.
    pub fn channels(self) -> usize {
        match self {
            Self::Rgb => 3,
            Self::Luma => 1,
        }
    }
}

/// How to resize a decoded image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resize {
    /// Keep the decoded size.
    None,
    /// Scale so that the shorter side has this length, keeping the aspect
    /// ratio; the longer side becomes `floor(len · long / short)`, as
    /// torchvision's `Resize(len)` computes it.
    ShorterSide(u32),
    /// Scale to exactly this size, ignoring the aspect ratio.
    Exact {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
    },
}

/// A fully explicit preprocessing chain (see the [module docs](self) for the order of steps).
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Colour conversion.
    pub color: ColorMode,
    /// Resizing.
    pub resize: Resize,
    /// Center crop to `[height, width]`, after resizing. An image smaller than
    /// the crop is an error for that sample (no padding).
    pub center_crop: Option<[u32; 2]>,
    /// Per-channel multiplier applied to the 8-bit pixel value (`color.channels()` entries).
    pub scale: Vec<f32>,
    /// Per-channel offset added after the multiplier (`color.channels()` entries).
    pub offset: Vec<f32>,
}

/// A preprocessing preset.
#[derive(Debug, Clone, PartialEq)]
pub enum Preprocess {
    /// torchvision's ImageNet evaluation transform: RGB, resize shorter side
    /// to 256, center crop 224×224, `(pixel/255 − mean)/std` with
    /// [`IMAGENET_MEAN`] and [`IMAGENET_STD`].
    Torchvision,
    /// Lucid InceptionV1 input: RGB, resize to exactly 224×224 (no crop),
    /// `value = scale·pixel + offset`. SPEC §6 records `2·pixel − 372` for the
    /// original Summit code ([`LUCID_SCALE`], [`LUCID_OFFSET`]; see [`Preprocess::lucid`]).
    Lucid {
        /// Multiplier of the 8-bit pixel value.
        scale: f32,
        /// Offset added after the multiplier.
        offset: f32,
    },
    /// One grey channel at the decoded size, `(pixel/255 − mean)/std`.
    /// Fashion-MNIST's default is [`Preprocess::fashion_mnist`].
    Grayscale {
        /// Mean of pixels scaled to `[0, 1]`.
        mean: f32,
        /// Standard deviation of pixels scaled to `[0, 1]`.
        std: f32,
    },
    /// Anything else, spelled out.
    Custom(Transform),
}

impl Preprocess {
    /// [`Preprocess::Lucid`] with the SPEC §6 value map `2·pixel − 372`.
    pub fn lucid() -> Self {
        Self::Lucid {
            scale: LUCID_SCALE,
            offset: LUCID_OFFSET,
        }
    }

    /// [`Preprocess::Grayscale`] with the Fashion-MNIST statistics used by the
    /// embedded model: mean [`FASHION_MNIST_MEAN`] (0.2860), std [`FASHION_MNIST_STD`] (0.3530).
    pub fn fashion_mnist() -> Self {
        Self::Grayscale {
            mean: FASHION_MNIST_MEAN,
            std: FASHION_MNIST_STD,
        }
    }

    /// The explicit chain this preset stands for.
    pub fn transform(&self) -> Transform {
        match self {
            Self::Torchvision => Transform {
                color: ColorMode::Rgb,
                resize: Resize::ShorterSide(256),
                center_crop: Some([224, 224]),
                scale: IMAGENET_STD.iter().map(|s| 1.0 / (255.0 * s)).collect(),
                offset: IMAGENET_MEAN
                    .iter()
                    .zip(IMAGENET_STD)
                    .map(|(m, s)| -m / s)
                    .collect(),
            },
            Self::Lucid { scale, offset } => Transform {
                color: ColorMode::Rgb,
                resize: Resize::Exact {
                    width: 224,
                    height: 224,
                },
                center_crop: None,
                scale: vec![*scale; 3],
                offset: vec![*offset; 3],
            },
            Self::Grayscale { mean, std } => Transform {
                color: ColorMode::Luma,
                resize: Resize::None,
                center_crop: None,
                scale: vec![1.0 / (255.0 * std)],
                offset: vec![-mean / std],
            },
            Self::Custom(t) => t.clone(),
        }
    }
}

impl Transform {
    /// A transform with a mean/std normalisation `(pixel/255 − mean[c])/std[c]`.
    pub fn normalized(
        color: ColorMode,
        resize: Resize,
        center_crop: Option<[u32; 2]>,
        mean: &[f32],
        std: &[f32],
    ) -> Self {
        Self {
            color,
            resize,
            center_crop,
            scale: std.iter().map(|s| 1.0 / (255.0 * s)).collect(),
            offset: mean.iter().zip(std).map(|(m, s)| -m / s).collect(),
        }
    }

    /// Checks that the settings are usable (channel counts of `scale`/`offset`,
    /// non-zero sizes, finite values).
    pub fn validate(&self) -> Result<()> {
        let c = self.color.channels();
        if self.scale.len() != c || self.offset.len() != c {
            return Err(DataError::config(format!(
                "{:?} needs {c} scale and offset values, got {} and {}",
                self.color,
                self.scale.len(),
                self.offset.len()
            )));
        }
        if self
            .scale
            .iter()
            .chain(&self.offset)
            .any(|v| !v.is_finite())
        {
            return Err(DataError::config(format!(
                "scale {:?} and offset {:?} must be finite (a std of 0?)",
                self.scale, self.offset
            )));
        }
        let zero = match self.resize {
            Resize::None => false,
            Resize::ShorterSide(n) => n == 0,
            Resize::Exact { width, height } => width == 0 || height == 0,
        };
        if zero || self.center_crop.is_some_and(|[h, w]| h == 0 || w == 0) {
            return Err(DataError::config(format!(
                "resize {:?} and crop {:?} must not have a zero size",
                self.resize, self.center_crop
            )));
        }
        Ok(())
    }

    /// `[channels, height, width]` of every output, when it does not depend on the input size.
    pub fn output_dims(&self) -> Option<[usize; 3]> {
        let c = self.color.channels();
        match (self.center_crop, self.resize) {
            (Some([h, w]), _) => Some([c, h as usize, w as usize]),
            (None, Resize::Exact { width, height }) => Some([c, height as usize, width as usize]),
            _ => None,
        }
    }

    /// `[channels, height, width]` of the output for an input of `width × height`
    /// (the crop size even when the resized image would be too small for it).
    pub fn output_dims_for(&self, width: u32, height: u32) -> [usize; 3] {
        if let Some(dims) = self.output_dims() {
            return dims;
        }
        let (w, h) = match self.resize {
            Resize::None | Resize::Exact { .. } => (width, height),
            Resize::ShorterSide(s) => shorter_side_size(width, height, s),
        };
        [self.color.channels(), h as usize, w as usize]
    }

    /// Runs the chain on a decoded image. `item` names the sample in errors.
    pub fn apply(&self, img: &DynamicImage, item: &str) -> Result<Image> {
        match self.color {
            ColorMode::Rgb => {
                let rgb = img.to_rgb8();
                let rgb = self.resize_buf(rgb);
                self.finish(rgb.width(), rgb.height(), 3, rgb.as_raw(), item)
            }
            ColorMode::Luma => {
                let grey = to_luma_pil(img);
                let grey = self.resize_buf(grey);
                self.finish(grey.width(), grey.height(), 1, grey.as_raw(), item)
            }
        }
    }

    fn resize_buf<P>(&self, buf: image::ImageBuffer<P, Vec<u8>>) -> image::ImageBuffer<P, Vec<u8>>
    where
        P: image::Pixel<Subpixel = u8> + 'static,
    {
        let (w, h) = buf.dimensions();
        let (nw, nh) = match self.resize {
            Resize::None => return buf,
            Resize::ShorterSide(s) => shorter_side_size(w, h, s),
            Resize::Exact { width, height } => (width, height),
        };
        if (nw, nh) == (w, h) || w == 0 || h == 0 {
            buf
        } else {
            image::imageops::resize(&buf, nw, nh, FilterType::Triangle)
        }
    }

    /// Crop and value map from interleaved 8-bit pixels to CHW floats.
    fn finish(&self, w: u32, h: u32, c: usize, raw: &[u8], item: &str) -> Result<Image> {
        if w == 0 || h == 0 {
            return Err(DataError::Preprocess {
                item: item.to_string(),
                reason: format!("image has a zero size ({w}×{h})"),
            });
        }
        let (top, left, ch, cw) = match self.center_crop {
            None => (0, 0, h, w),
            Some([ch, cw]) => {
                if ch > h || cw > w {
                    return Err(DataError::Preprocess {
                        item: item.to_string(),
                        reason: format!(
                            "image of {w}×{h} (w×h, after resizing) is smaller than the {cw}×{ch} crop"
                        ),
                    });
                }
                (center_offset(h, ch), center_offset(w, cw), ch, cw)
            }
        };
        let (w, top, left, ch, cw) = (
            w as usize,
            top as usize,
            left as usize,
            ch as usize,
            cw as usize,
        );
        let mut data = vec![0.0f32; c * ch * cw];
        for (k, plane) in data.chunks_exact_mut(ch * cw).enumerate() {
            let (a, b) = (self.scale[k], self.offset[k]);
            for (y, row) in plane.chunks_exact_mut(cw).enumerate() {
                let start = ((top + y) * w + left) * c + k;
                for (x, v) in row.iter_mut().enumerate() {
                    *v = f32::from(raw[start + x * c]) * a + b;
                }
            }
        }
        Ok(Image {
            data,
            channels: c,
            height: ch,
            width: cw,
        })
    }
}

/// Output `(width, height)` of torchvision's `Resize(shorter)`: the shorter
/// side becomes `shorter`, the longer `floor(shorter · long / short)`.
pub fn shorter_side_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    let scaled = |long: u32, short: u32| -> u32 {
        let v = u64::from(shorter) * u64::from(long) / u64::from(short.max(1));
        u32::try_from(v).unwrap_or(u32::MAX)
    };
    if width <= height {
        (shorter, scaled(height, width))
    } else {
        (scaled(width, height), shorter)
    }
}

/// torchvision's center-crop offset `int(round((full − crop) / 2))` with
/// Python's round-half-to-even. Requires `crop <= full`.
pub fn center_offset(full: u32, crop: u32) -> u32 {
    let d = full.saturating_sub(crop);
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// Grey conversion as PIL's `convert("L")`: ITU-R 601-2 luma in fixed point, alpha ignored.
fn to_luma_pil(img: &DynamicImage) -> GrayImage {
    match img {
        DynamicImage::ImageLuma8(g) => g.clone(),
        DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => img.to_luma8(),
        _ => {
            let rgb: RgbImage = img.to_rgb8();
            let (w, h) = rgb.dimensions();
            let raw = rgb
                .as_raw()
                .chunks_exact(3)
                .map(|p| {
                    let l = u32::from(p[0]) * 19595
                        + u32::from(p[1]) * 38470
                        + u32::from(p[2]) * 7471
                        + 0x8000;
                    (l >> 16) as u8
                })
                .collect();
            GrayImage::from_raw(w, h, raw).unwrap_or_else(|| GrayImage::new(w, h))
        }
    }
}

/// Reads and decodes one image file (JPEG or PNG, recognised by content, not by extension).
///
/// An empty file, an unknown format, a decoding failure and a JPEG that ends
/// before its end-of-image marker (truncated) are [`DataError::Decode`]; a
/// file that cannot be read is [`DataError::Io`].
pub fn decode_file(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes(&bytes, &path.display().to_string())
}

/// Decodes an image held in memory; `item` names it in errors. See [`decode_file`].
pub fn decode_bytes(bytes: &[u8], item: &str) -> Result<DynamicImage> {
    let fail = |reason: String| DataError::Decode {
        item: item.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("empty file (0 bytes)".to_string()));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| fail("not a recognised image format (expected JPEG or PNG)".to_string()))?;
    if format == image::ImageFormat::Jpeg {
        jpeg_complete(bytes).map_err(fail)?;
    }
    let img =
        image::load_from_memory_with_format(bytes, format).map_err(|e| fail(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(fail(format!(
            "image has a zero size ({}×{})",
            img.width(),
            img.height()
        )));
    }
    Ok(img)
}

/// Walks a JPEG's marker segments and checks that an end-of-image marker
/// (`FF D9`) follows the last scan. The `image` crate's JPEG decoder is
/// lenient and fills a truncated scan with grey, so this check is what turns
/// a truncated file into an error. Bytes after the end-of-image marker are allowed.
fn jpeg_complete(b: &[u8]) -> std::result::Result<(), String> {
    let truncated = || {
        Err(format!(
            "truncated JPEG: the data ({} bytes) ends before the end-of-image marker",
            b.len()
        ))
    };
    let mut pos = 2; // after SOI
    loop {
        // Find the next marker (tolerating garbage and fill bytes before it).
        while pos < b.len() && b[pos] != 0xFF {
            pos += 1;
        }
        while pos < b.len() && b[pos] == 0xFF {
            pos += 1;
        }
        if pos >= b.len() {
            return truncated();
        }
        let marker = b[pos];
        pos += 1;
        match marker {
            0xD9 => return Ok(()),
            0xD0..=0xD7 | 0x01 | 0xD8 => {}
            _ => {
                if pos + 2 > b.len() {
                    return truncated();
                }
                let len = usize::from(u16::from_be_bytes([b[pos], b[pos + 1]]));
                pos += len;
                if pos > b.len() {
                    return truncated();
                }
                if marker == 0xDA {
                    // Entropy-coded data: 0xFF is followed by 0x00 (stuffing) or RSTn.
                    loop {
                        if pos + 1 >= b.len() {
                            return truncated();
                        }
                        if b[pos] == 0xFF {
                            match b[pos + 1] {
                                0x00 | 0xD0..=0xD7 => pos += 2,
                                0xFF => pos += 1,
                                _ => break,
                            }
                        } else {
                            pos += 1;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn center_offset_rounds_half_to_even_like_python() {
        // Python: int(round(d / 2.0))
        for (d, want) in [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 2),
            (5, 2),
            (7, 4),
            (71, 36),
            (117, 58),
            (177, 88),
        ] {
            assert_eq!(center_offset(224 + d, 224), want, "d = {d}");
        }
    }

    #[test]
    fn shorter_side_matches_torchvision_formula() {
        // int(256 * long / short) computed with integers for a brute-force range
        for w in 1..300u32 {
            for h in [1u32, 7, 30, 256, 299] {
                let (nw, nh) = shorter_side_size(w, h, 256);
                if w <= h {
                    assert_eq!(nw, 256);
                    assert_eq!(nh, ((256.0 * f64::from(h)) / f64::from(w)) as u32);
                } else {
                    assert_eq!(nh, 256);
                    assert_eq!(nw, ((256.0 * f64::from(w)) / f64::from(h)) as u32);
                }
            }
        }
    }

    #[test]
    fn crop_takes_the_torchvision_window_and_channel_order() {
        // 256×300 (w×h) needs no resize for ShorterSide(256); values encode coordinates.
        let (w, h) = (256u32, 300u32);
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + 2 * y) % 239) as u8])
        });
        let t = Transform {
            color: ColorMode::Rgb,
            resize: Resize::ShorterSide(256),
            center_crop: Some([224, 224]),
            scale: vec![1.0, 1.0, 1.0],
            offset: vec![0.0, 0.0, 0.0],
        };
        let out = t.apply(&DynamicImage::ImageRgb8(img), "t").unwrap();
        assert_eq!(out.dims(), [3, 224, 224]);
        let (top, left) = (38usize, 16usize); // round(76/2), round(32/2)
        for y in 0..224 {
            for x in 0..224 {
                let (sx, sy) = (x + left, y + top);
                let at = |c: usize| out.data[(c * 224 + y) * 224 + x];
                assert_eq!(at(0), (sx % 251) as f32);
                assert_eq!(at(1), (sy % 241) as f32);
                assert_eq!(at(2), ((sx + 2 * sy) % 239) as f32);
            }
        }
    }

    #[test]
    fn luma_uses_pil_weights() {
        let img = RgbImage::from_raw(3, 1, vec![255, 0, 0, 0, 255, 0, 10, 20, 30]).unwrap();
        let g = to_luma_pil(&DynamicImage::ImageRgb8(img));
        // PIL: Image.new("RGB", ...).convert("L") gives 76, 150, 18 for these pixels
        assert_eq!(g.as_raw(), &vec![76, 150, 18]);
    }

    #[test]
    fn validate_rejects_bad_settings() {
        let mut t = Preprocess::Torchvision.transform();
        assert!(t.validate().is_ok());
        t.scale.pop();
        assert!(matches!(t.validate(), Err(DataError::InvalidConfig { .. })));
        let t = Preprocess::Grayscale {
            mean: 0.5,
            std: 0.0,
        }
        .transform();
        assert!(t.validate().is_err());
        let mut t = Preprocess::lucid().transform();
        t.resize = Resize::Exact {
            width: 0,
            height: 3,
        };
        assert!(t.validate().is_err());
    }

    #[test]
    fn jpeg_marker_walk() {
        assert!(decode_bytes(&[], "x").is_err());
        assert!(decode_bytes(b"hello world, not an image", "x").is_err());
        let img = RgbImage::from_fn(16, 8, |x, y| image::Rgb([x as u8 * 9, y as u8 * 20, 7]));
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Jpeg).unwrap();
        let bytes = buf.into_inner();
        assert!(jpeg_complete(&bytes).is_ok());
        let mut padded = bytes.clone();
        padded.extend_from_slice(b"trailing junk");
        assert!(jpeg_complete(&padded).is_ok());
        for cut in [3, 20, bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            let err = decode_bytes(&bytes[..cut], "cut.jpg")
                .unwrap_err()
                .to_string();
            assert!(err.contains("cut.jpg"), "{err}");
        }
    }
}
