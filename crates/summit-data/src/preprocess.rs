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
//!
//! [`DecodeLimits`] caps the size of every buffer of this chain (the decoded
//! image, its colour conversion, its resized copy and the `f32` output), checked
//! from the image's header *before* anything is allocated: a small file that
//! would decode to a huge image is an ordinary per-file error, not an aborted run.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{
    DynamicImage, GrayImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage,
    imageops::FilterType,
};
use rayon::prelude::*;

use crate::dataset::most_common_dims;
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

/// Default of [`DecodeLimits::max_width`] and [`DecodeLimits::max_height`]: 16384 pixels.
pub const DEFAULT_MAX_SIDE: u32 = 16384;
/// Default of [`DecodeLimits::max_alloc`]: 512 MiB, the `image` crate's own default cap.
pub const DEFAULT_MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// Caps on the size of an image, checked from its header before it is decoded.
///
/// A file whose image is wider than `max_width`, taller than `max_height`, or
/// whose decoded pixels would take more than `max_alloc` bytes is a
/// [`DataError::Decode`] naming the file and the size (e.g. `decoded image
/// would be 20000×20000 pixels, over the limit of 16384×16384`), which
/// [`BatchLoader`](crate::BatchLoader) skips and reports like any other bad
/// image. `max_alloc` also caps each buffer the [`Transform`] makes (the
/// colour-converted copy, the resized copy, the `f32` output), so that a
/// preprocessing step cannot blow up an image that decoded fine (a 16000×1 line
/// resized to a shorter side of 256 would be 4096000×256 pixels); such an image is a
/// [`DataError::Preprocess`] error.
///
/// The defaults ([`DecodeLimits::default`]) are 16384 pixels per side
/// ([`DEFAULT_MAX_SIDE`]) and 512 MiB ([`DEFAULT_MAX_ALLOC`]): every photo up
/// to about 178 megapixels in 8-bit RGB (e.g. 16384×10922, or a 150-megapixel
/// medium-format frame) and panoramas up to 16384 pixels long decode, while
/// one sample never holds more than a few of these buffers at once (at most
/// about 1.5 GiB per decoding thread). Raise them with
/// [`ImageFolder::with_decode_limits`](crate::ImageFolder::with_decode_limits)
/// or [`ImageNetVal::with_decode_limits`](crate::ImageNetVal::with_decode_limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecodeLimits {
    /// Largest accepted image width in pixels.
    pub max_width: u32,
    /// Largest accepted image height in pixels.
    pub max_height: u32,
    /// Largest accepted size in bytes of the decoded pixels, and of each
    /// buffer made while preprocessing.
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_width: DEFAULT_MAX_SIDE,
            max_height: DEFAULT_MAX_SIDE,
            max_alloc: DEFAULT_MAX_ALLOC,
        }
    }
}

/// `bytes` in MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    let tenths = bytes.saturating_mul(10) / (1024 * 1024);
    format!("{}.{} MiB", tenths / 10, tenths % 10)
}

impl DecodeLimits {
    /// The same limits for the `image` crate's decoders.
    fn to_image_limits(self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_width);
        limits.max_image_height = Some(self.max_height);
        limits.max_alloc = Some(self.max_alloc);
        limits
    }

    /// Checks a header's `width × height` and the decoded size `bytes`.
    fn check_decoded(
        &self,
        width: u32,
        height: u32,
        bytes: u64,
    ) -> std::result::Result<(), String> {
        if width > self.max_width || height > self.max_height {
            return Err(format!(
                "decoded image would be {width}×{height} pixels, over the limit of {}×{} \
                 (DecodeLimits)",
                self.max_width, self.max_height
            ));
        }
        if bytes > self.max_alloc {
            return Err(format!(
                "decoded image of {width}×{height} pixels would take {}, over the limit of {} \
                 (DecodeLimits)",
                mib(bytes),
                mib(self.max_alloc)
            ));
        }
        Ok(())
    }

    /// Checks that a buffer of `bytes` made by `what` fits `max_alloc`.
    fn check_buffer(&self, what: &str, bytes: u64) -> std::result::Result<(), String> {
        if bytes > self.max_alloc {
            return Err(format!(
                "{what} would take {}, over the limit of {} (DecodeLimits)",
                mib(bytes),
                mib(self.max_alloc)
            ));
        }
        Ok(())
    }
}

/// Bytes of a `dims`-sized buffer of `per` bytes per value, saturating.
fn buffer_bytes(dims: &[u64], per: u64) -> u64 {
    dims.iter().fold(per, |acc, &d| acc.saturating_mul(d))
}

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
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
    /// The lowest and highest value of each channel: pixels 0 and 255 through the value map.
    pub fn value_range(&self) -> (Vec<f32>, Vec<f32>) {
        let at = |p: f32| -> Vec<f32> {
            self.scale
                .iter()
                .zip(&self.offset)
                .map(|(s, o)| p * s + o)
                .collect()
        };
        let (a, b) = (at(0.0), at(255.0));
        let lo = a.iter().zip(&b).map(|(x, y)| x.min(*y)).collect();
        let hi = a.iter().zip(&b).map(|(x, y)| x.max(*y)).collect();
        (lo, hi)
    }

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
    ///
    /// Each buffer it makes is capped by the default [`DecodeLimits`]; see
    /// [`apply_with_limits`](Transform::apply_with_limits).
    pub fn apply(&self, img: &DynamicImage, item: &str) -> Result<Image> {
        self.apply_with_limits(img, item, &DecodeLimits::default())
    }

    /// Runs the chain on a decoded image; `item` names the sample in errors.
    ///
    /// Before anything is allocated, checks that the colour-converted image,
    /// the resized image and the `f32` output each fit in `limits.max_alloc`
    /// bytes; an image that does not is a [`DataError::Preprocess`] error
    /// (e.g. a 16000×1 line that a shorter-side resize to 256 would make 4096000×256).
    pub fn apply_with_limits(
        &self,
        img: &DynamicImage,
        item: &str,
        limits: &DecodeLimits,
    ) -> Result<Image> {
        self.check_sizes(img.width(), img.height(), limits)
            .map_err(|reason| DataError::Preprocess {
                item: item.to_string(),
                reason,
            })?;
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

    /// The size `resize` turns a `w × h` image into.
    fn resized_size(&self, w: u32, h: u32) -> (u32, u32) {
        match self.resize {
            Resize::None => (w, h),
            Resize::ShorterSide(s) => shorter_side_size(w, h, s),
            Resize::Exact { width, height } => (width, height),
        }
    }

    /// Checks the buffers the chain makes for a `w × h` input against `limits`.
    fn check_sizes(
        &self,
        w: u32,
        h: u32,
        limits: &DecodeLimits,
    ) -> std::result::Result<(), String> {
        let c = self.color.channels() as u64;
        let name = match self.color {
            ColorMode::Rgb => "RGB",
            ColorMode::Luma => "grey",
        };
        let (w64, h64) = (u64::from(w), u64::from(h));
        limits.check_buffer(
            &format!("converting the {w}×{h} image to {name}"),
            buffer_bytes(&[w64, h64, c], 1),
        )?;
        let (nw, nh) = self.resized_size(w, h);
        if (nw, nh) != (w, h) {
            limits.check_buffer(
                &format!("resizing the {w}×{h} image to {nw}×{nh}"),
                buffer_bytes(&[u64::from(nw), u64::from(nh), c], 1),
            )?;
        }
        let out = self.output_dims_for(w, h).map(|d| d as u64);
        limits.check_buffer(
            &format!(
                "the preprocessed {}×{}×{} sample (f32)",
                out[0], out[1], out[2]
            ),
            buffer_bytes(&out, 4),
        )
    }

    fn resize_buf<P>(&self, buf: image::ImageBuffer<P, Vec<u8>>) -> image::ImageBuffer<P, Vec<u8>>
    where
        P: image::Pixel<Subpixel = u8> + 'static,
    {
        let (w, h) = buf.dimensions();
        let (nw, nh) = self.resized_size(w, h);
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

/// Reads and decodes one image file (JPEG or PNG, recognised by content, not
/// by extension), within the default [`DecodeLimits`].
///
/// An empty file, an unknown format, a decoding failure, a JPEG that ends
/// before its end-of-image marker (truncated) and an image over the limits are
/// [`DataError::Decode`]; a file that cannot be read is [`DataError::Io`].
pub fn decode_file(path: &Path) -> Result<DynamicImage> {
    decode_file_with_limits(path, &DecodeLimits::default())
}

/// [`decode_file`] with explicit limits on the decoded size.
pub fn decode_file_with_limits(path: &Path, limits: &DecodeLimits) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_bytes_with_limits(&bytes, &path.display().to_string(), limits)
}

/// Decodes an image held in memory within the default [`DecodeLimits`];
/// `item` names it in errors. See [`decode_file`].
pub fn decode_bytes(bytes: &[u8], item: &str) -> Result<DynamicImage> {
    decode_bytes_with_limits(bytes, item, &DecodeLimits::default())
}

/// [`decode_bytes`] with explicit limits: the header is read first, and an
/// image over the limits is an error before any pixel is decoded.
pub fn decode_bytes_with_limits(
    bytes: &[u8],
    item: &str,
    limits: &DecodeLimits,
) -> Result<DynamicImage> {
    let fail = |reason: String| DataError::Decode {
        item: item.to_string(),
        reason,
    };
    if bytes.is_empty() {
        return Err(fail("empty file (0 bytes)".to_string()));
    }
    let format = image::guess_format(bytes)
        .map_err(|_| fail("not a recognised image format (expected JPEG or PNG)".to_string()))?;
    if format == ImageFormat::Jpeg {
        jpeg_complete(bytes).map_err(fail)?;
    }
    let mut decoder = open_decoder(Cursor::new(bytes), Some(format), limits).map_err(fail)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(fail(format!("image has a zero size ({width}×{height})")));
    }
    let size = decoder.total_bytes();
    limits.check_decoded(width, height, size).map_err(fail)?;
    // From here on the `image` crate enforces the limits too, as `ImageReader::decode`
    // does: the output buffer is reserved, and the decoder may allocate the rest.
    let mut image_limits = limits.to_image_limits();
    image_limits
        .reserve(size)
        .and_then(|()| decoder.set_limits(image_limits))
        .map_err(|e| fail(e.to_string()))?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| fail(e.to_string()))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(fail(format!(
            "image has a zero size ({}×{})",
            img.width(),
            img.height()
        )));
    }
    Ok(img)
}

/// A decoder that has read the image's header but none of its pixels.
/// `format` `None` guesses it from the content. Only `max_alloc` applies here
/// (to what the decoder reads before the pixels), so that an image over the
/// side limits can still report its size.
fn open_decoder<'a, R: std::io::BufRead + std::io::Seek + 'a>(
    reader: R,
    format: Option<ImageFormat>,
    limits: &DecodeLimits,
) -> std::result::Result<impl ImageDecoder + 'a, String> {
    let mut reader = match format {
        Some(f) => ImageReader::with_format(reader, f),
        None => ImageReader::new(reader)
            .with_guessed_format()
            .map_err(|e| e.to_string())?,
    };
    let mut header_limits = Limits::default();
    header_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(header_limits);
    reader.into_decoder().map_err(|e| e.to_string())
}

/// At most this many files' headers are read by [`probe_sample_dims`].
pub(crate) const PROBE_FILES: usize = 256;

/// The shape every sample of a dataset of image `files` is expected to have
/// after `transform`: its declared output size when it fixes one, otherwise
/// the most common output size among the headers of up to [`PROBE_FILES`]
/// files spread evenly over the list (ties go to the size met first in index
/// order). Files whose header cannot be read or is over `limits` do not vote;
/// `None` when no file does.
pub(crate) fn probe_sample_dims(
    files: &[PathBuf],
    transform: &Transform,
    limits: &DecodeLimits,
) -> Option<[usize; 3]> {
    if let Some(dims) = transform.output_dims() {
        return Some(dims);
    }
    let n = files.len().min(PROBE_FILES);
    let picks: Vec<&PathBuf> = (0..n)
        .filter_map(|i| {
            let at = u128::try_from(i).ok()? * files.len() as u128 / n as u128;
            files.get(usize::try_from(at).ok()?)
        })
        .collect();
    let votes: Vec<Option<[usize; 3]>> = picks
        .par_iter()
        .map(|path| {
            let file = std::fs::File::open(path).ok()?;
            let decoder = open_decoder(std::io::BufReader::new(file), None, limits).ok()?;
            let (w, h) = decoder.dimensions();
            if w == 0 || h == 0 || limits.check_decoded(w, h, decoder.total_bytes()).is_err() {
                return None;
            }
            Some(transform.output_dims_for(w, h))
        })
        .collect();
    most_common_dims(votes.into_iter().flatten())
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
