//! The device a model runs on, by feature: burn's CPU backend, a CUDA device (`cuda`
//! feature), a Vulkan GPU through wgpu (`vulkan` feature).

use summit_model::burn::tensor::Device;

use crate::error::{CoreError, Result};

/// The device to run the model on: CUDA device `cuda` when given (needs the `cuda` feature),
/// else burn's `flex` CPU backend.
pub fn select_device(cuda: Option<usize>) -> Result<Device> {
    match cuda {
        None => Ok(Device::flex()),
        #[cfg(feature = "cuda")]
        Some(i) => Ok(Device::cuda(i)),
        #[cfg(not(feature = "cuda"))]
        Some(i) => Err(CoreError::Usage(format!(
            "CUDA device {i} requested, but this build has no CUDA backend: build with \
             `--features cuda` (see README, GPU)"
        ))),
    }
}

/// The device of `--cuda N` or `--vulkan N` (at most one): CUDA device `N` (with the `cuda`
/// feature), the `N`-th discrete GPU through burn's wgpu backend on Vulkan (with the `vulkan`
/// feature), else burn's CPU backend. A GPU asked of a build without its feature is a usage
/// error saying which feature to build with.
pub fn select_gpu(cuda: Option<usize>, vulkan: Option<usize>) -> Result<Device> {
    match (cuda, vulkan) {
        (Some(c), Some(v)) => Err(CoreError::Usage(format!(
            "--cuda {c} and --vulkan {v}: pick one device"
        ))),
        (_, None) => select_device(cuda),
        (None, Some(i)) => vulkan_device(i),
    }
}

/// The device of a spec `vulkan:N` or `cuda:N` (as `SUMMIT_GPU` and `SUMMIT_PASS_DEVICE` give
/// it), through [`select_gpu`].
pub fn gpu_from_spec(spec: &str) -> Result<Device> {
    let bad = || {
        CoreError::Usage(format!(
            "GPU `{spec}`: expected `vulkan:N` or `cuda:N` (N the device index)"
        ))
    };
    let (kind, index) = spec.split_once(':').ok_or_else(bad)?;
    let i: usize = index.trim().parse().map_err(|_| bad())?;
    match kind.trim() {
        "vulkan" => select_gpu(None, Some(i)),
        "cuda" => select_gpu(Some(i), None),
        _ => Err(bad()),
    }
}

#[cfg(feature = "vulkan")]
fn vulkan_device(i: usize) -> Result<Device> {
    Ok(Device::vulkan(
        summit_model::burn::tensor::DeviceKind::DiscreteGpu(i),
    ))
}

#[cfg(not(feature = "vulkan"))]
fn vulkan_device(i: usize) -> Result<Device> {
    Err(CoreError::Usage(format!(
        "Vulkan GPU {i} requested, but this build has no wgpu backend: build with \
         `--features vulkan` (see README, GPU)"
    )))
}
