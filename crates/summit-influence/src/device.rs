//! Influences computed with burn tensor operations, on any backend (SPEC §2).
//!
//! [`influence_device`] computes the same `L [B, C_out, C_in]` as
//! [`influence_cpu`](crate::influence_cpu) from a hop input that stays on its
//! device (a [`Recording`](https://docs.rs/summit-model) tap), as a grouped
//! convolution followed by a spatial max:
//!
//! - the kernel is rearranged input-major into `[C_in·C_out, 1, kh, kw]`
//!   ([`DeviceKernel`]), so that with `groups = C_in` output channel
//!   `g = i·C_out + j` of the convolution is exactly `X_i ⋆ K[j, i]`;
//! - the input is zero-padded explicitly (the four sides may differ, as with
//!   TensorFlow `"SAME"`), convolved at the hop's stride, reshaped to
//!   `[B, C_in·C_out, H_out·W_out]` and reduced with `max_dim(2)`;
//! - the work is split into chunks of input channels (and of images, if one
//!   input channel of the whole batch is already too large) so that the
//!   `[b, c·C_out, H_out, W_out]` intermediate stays under a byte budget
//!   ([`DeviceInfluenceOptions::max_chunk_bytes`]);
//! - a 1×1 hop at stride 1 without padding uses the exact closed form
//!   `max(K·max X_i, K·min X_i)` on the device, as the CPU kernel does.
//!
//! Top-k selection then happens on the host with
//! [`top_influences`](crate::top_influences) or
//! [`Aggregates::add_influences`](crate::Aggregates::add_influences) (same
//! tie rule as the CPU path).
//!
//! **Agreement with the CPU kernel.** The CPU kernel follows a fixed
//! arithmetic contract (see [`influence_cpu`](crate::influence_cpu)) and is
//! bit-identical to the brute-force reference. A backend's convolution sums
//! the kernel taps in its own order (and may use fused multiply-add or other
//! algorithms), so device values agree with the CPU values to rounding
//! (about `1e-6` relative) but not bit for bit. The *selected* channels, and
//! therefore the counts `I`, agree exactly unless two influences of one
//! (image, output channel) row are within rounding of each other at the
//! selection boundary; on continuous data such near-ties are rare but
//! possible, and a GPU run may then count a different input channel than a
//! CPU run. The tests check exact count agreement on random continuous data.

use burn::tensor::module::conv2d;
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::InfluenceError;
use crate::geometry::HopGeometry;

/// The default byte budget of the convolution intermediate of one chunk
/// (256 MiB).
pub const DEFAULT_DEVICE_CHUNK_BYTES: usize = 256 << 20;

/// Options of [`influence_device`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceInfluenceOptions {
    /// Upper bound in bytes of the `[b, c·C_out, H_out, W_out]` `f32`
    /// intermediate of one chunk. A single (image, input channel) slab
    /// `C_out·H_out·W_out·4` larger than this is still computed in one piece.
    pub max_chunk_bytes: usize,
}

impl Default for DeviceInfluenceOptions {
    fn default() -> Self {
        Self {
            max_chunk_bytes: DEFAULT_DEVICE_CHUNK_BYTES,
        }
    }
}

/// A hop's (batch-norm folded) kernel uploaded once to a device, rearranged
/// for [`influence_device`]: `[C_in·C_out, 1, kh, kw]` with row `i·C_out + j`
/// holding `K[j, i]`.
#[derive(Debug, Clone)]
pub struct DeviceKernel {
    grouped: Tensor<4>,
    dims: [usize; 4],
    groups: usize,
}

impl DeviceKernel {
    /// Uploads `kernel` (`[C_out, C_in, kh, kw]` row-major, PyTorch layout,
    /// `k_dims`) to `device`. Errors on a length mismatch, an empty
    /// dimension or a non-finite weight.
    pub fn new(
        kernel: &[f32],
        k_dims: [usize; 4],
        device: &Device,
    ) -> Result<Self, InfluenceError> {
        Self::with_groups(kernel, k_dims, 1, device)
    }

    /// [`new`](Self::new) for a grouped convolution: `kernel` is `[C_out, C_in / groups, kh,
    /// kw]` (`k_dims`), rearranged into `[C_in · C_out/groups, 1, kh, kw]` with row
    /// `i·(C_out/groups) + jj` holding `K[g·(C_out/groups) + jj, i − g·(C_in/groups)]` for the
    /// group `g` of input channel `i`. Errors when `C_out` is not a multiple of `groups`.
    pub fn with_groups(
        kernel: &[f32],
        k_dims: [usize; 4],
        groups: usize,
        device: &Device,
    ) -> Result<Self, InfluenceError> {
        if groups == 0 || !k_dims[0].is_multiple_of(groups) {
            return Err(InfluenceError::InvalidHop {
                reason: "the output channels of a grouped kernel must be a positive multiple of its groups",
            });
        }
        let expected = k_dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX);
        if kernel.len() != expected {
            return Err(InfluenceError::Shape {
                what: "kernel",
                dims: k_dims.to_vec(),
                expected,
                got: kernel.len(),
            });
        }
        if k_dims.contains(&0) {
            return Err(InfluenceError::InvalidHop {
                reason: "kernel dimensions [C_out, C_in, kh, kw] must be positive",
            });
        }
        if let Some(index) = kernel.iter().position(|v| !v.is_finite()) {
            return Err(InfluenceError::NonFinite {
                what: "kernel",
                index,
                value: kernel[index],
            });
        }
        let [c_out, cin_g, kh, kw] = k_dims;
        let t = kh * kw;
        let cout_g = c_out / groups;
        let c_in = cin_g * groups;
        let mut w = vec![0.0f32; kernel.len()];
        for j in 0..c_out {
            let g = j / cout_g;
            for q in 0..cin_g {
                let i = g * cin_g + q;
                w[(i * cout_g + j % cout_g) * t..][..t]
                    .copy_from_slice(&kernel[(j * cin_g + q) * t..][..t]);
            }
        }
        let grouped =
            Tensor::<4>::from_data(TensorData::new(w, [c_in * cout_g, 1, kh, kw]), device);
        Ok(Self {
            grouped,
            dims: k_dims,
            groups,
        })
    }

    /// The number of groups of the convolution.
    pub fn groups(&self) -> usize {
        self.groups
    }

    /// The kernel's `[C_out, C_in / groups, kh, kw]`.
    pub fn dims(&self) -> [usize; 4] {
        self.dims
    }

    /// The device holding the kernel.
    pub fn device(&self) -> Device {
        self.grouped.device()
    }
}

/// Per-image influences of one hop computed on the hop input's device:
/// `L [B, C_out, C_in]` with `L[b, j, i] = max over output positions of
/// (X_{b,i} ⋆ K[j,i])` under zero padding and stride `geom` — the same
/// quantity as [`influence_cpu`](crate::influence_cpu), to rounding (see the
/// [module docs](self) on agreement).
///
/// `x` is the hop input `[B, C_in, H, W]`; it must live on the kernel's
/// device. The result stays on the device; [`influence_device_host`] reads it
/// back. Non-finite inputs are not detected here (that would need a read
/// back); they surface as non-finite influences, which
/// [`top_influences`](crate::top_influences) rejects.
///
/// ```
/// use burn::tensor::{Device, Tensor, TensorData};
/// use summit_influence::{DeviceInfluenceOptions, DeviceKernel, HopGeometry, influence_device_host};
/// let device = Device::flex();
/// // one image, one input channel [[1, 2], [3, 4]], two 1×1 kernels (2 and -1)
/// let x = Tensor::<4>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &device);
/// let k = DeviceKernel::new(&[2.0, -1.0], [2, 1, 1, 1], &device).unwrap();
/// let l = influence_device_host(x, &k, &HopGeometry::conv([1, 1], [0, 0]),
///                               &DeviceInfluenceOptions::default()).unwrap();
/// assert_eq!(l, vec![8.0, -1.0]);
/// ```
pub fn influence_device(
    x: Tensor<4>,
    kernel: &DeviceKernel,
    geom: &HopGeometry,
    options: &DeviceInfluenceOptions,
) -> Result<Tensor<3>, InfluenceError> {
    let [b, c_in, h, w] = x.dims();
    let [c_out, cin_g, kh, kw] = kernel.dims;
    let groups = kernel.groups;
    if c_in != cin_g * groups {
        return Err(InfluenceError::DimensionMismatch {
            what: "input channels of the hop input [B, C_in, H, W] vs the kernel [C_out, C_in / groups, kh, kw] times its groups".into(),
            expected: cin_g * groups,
            got: c_in,
        });
    }
    let cout_g = c_out / groups;
    let [ho, wo] = geom.output_hw([h, w], [kh, kw])?;
    if b == 0 {
        return Ok(Tensor::<3>::zeros([0, c_out, cin_g], &x.device()));
    }
    // [b, C_in, C_out/groups] (input-major) → [b, C_out, C_in/groups]
    let arrange = |m: Tensor<3>| -> Tensor<3> {
        let bn = m.dims()[0];
        m.reshape([bn, groups, cin_g, cout_g])
            .swap_dims(2, 3)
            .reshape([bn, c_out, cin_g])
    };
    if kh == 1 && kw == 1 && geom.stride == [1, 1] && geom.padding == [0; 4] {
        return Ok(arrange(closed_form_1x1(x, kernel)));
    }
    let x = if geom.padding == [0; 4] {
        x
    } else {
        let [pt, pb, pl, pr] = geom.padding;
        x.pad([(pt, pb), (pl, pr)], PadMode::Constant(0.0))
    };
    // bytes of one (image, input channel) slab of the intermediate
    let slab = cout_g
        .saturating_mul(ho)
        .saturating_mul(wo)
        .saturating_mul(4)
        .max(1);
    let budget = options.max_chunk_bytes.max(1);
    let per_image = slab.saturating_mul(c_in);
    let (img_chunk, ch_chunk) = if per_image.saturating_mul(b) <= budget {
        (b, c_in)
    } else if per_image <= budget {
        ((budget / per_image).clamp(1, b), c_in)
    } else {
        (1, (budget / slab).clamp(1, c_in))
    };
    let mut per_images = Vec::with_capacity(b.div_ceil(img_chunk));
    for b0 in (0..b).step_by(img_chunk) {
        let bn = img_chunk.min(b - b0);
        let xb = if bn == b {
            x.clone()
        } else {
            x.clone().narrow(0, b0, bn)
        };
        let mut per_channels = Vec::with_capacity(c_in.div_ceil(ch_chunk));
        for i0 in (0..c_in).step_by(ch_chunk) {
            let cn = ch_chunk.min(c_in - i0);
            let (xc, wc) = if cn == c_in {
                (xb.clone(), kernel.grouped.clone())
            } else {
                (
                    xb.clone().narrow(1, i0, cn),
                    kernel.grouped.clone().narrow(0, i0 * cout_g, cn * cout_g),
                )
            };
            let y = conv2d(
                xc,
                wc,
                None,
                ConvOptions::new(geom.stride, [0, 0], geom.dilation, cn),
            );
            let m = y
                .reshape([bn, cn * cout_g, ho * wo])
                .max_dim(2)
                .reshape([bn, cn, cout_g]);
            per_channels.push(m);
        }
        per_images.push(arrange(if per_channels.len() == 1 {
            per_channels.remove(0)
        } else {
            Tensor::cat(per_channels, 1)
        }));
    }
    Ok(if per_images.len() == 1 {
        per_images.remove(0)
    } else {
        Tensor::cat(per_images, 0)
    })
}

/// The 1×1, stride 1, unpadded closed form on the device, input-major:
/// `[B, C_in, C_out/groups]`.
fn closed_form_1x1(x: Tensor<4>, kernel: &DeviceKernel) -> Tensor<3> {
    let [b, c_in, h, w] = x.dims();
    let cout_g = kernel.dims[0] / kernel.groups;
    let flat = x.reshape([b, c_in, h * w]);
    let mx = flat.clone().max_dim(2).reshape([b, c_in, 1]);
    let mn = flat.min_dim(2).reshape([b, c_in, 1]);
    // [C_in·C_out/groups, 1, 1, 1] input-major → [1, C_in, C_out/groups]
    let k = kernel.grouped.clone().reshape([1, c_in, cout_g]);
    let hi = mx.mul(k.clone());
    let lo = mn.mul(k);
    hi.max_pair(lo)
}

/// [`influence_device`], read back to the host as `[B, C_out, C_in]`
/// row-major `f32` (the layout of [`influence_cpu`](crate::influence_cpu)).
pub fn influence_device_host(
    x: Tensor<4>,
    kernel: &DeviceKernel,
    geom: &HopGeometry,
    options: &DeviceInfluenceOptions,
) -> Result<Vec<f32>, InfluenceError> {
    let l = influence_device(x, kernel, geom, options)?;
    tensor_to_host(l, "influences L")
}

/// Reads a tensor back to the host as `f32` values.
pub fn tensor_to_host<const D: usize>(
    t: Tensor<D>,
    what: &'static str,
) -> Result<Vec<f32>, InfluenceError> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| InfluenceError::Device {
            what,
            reason: format!("{e:?}"),
        })
}
