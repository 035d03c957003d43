//! MPRT's randomised models (Quantus' `get_random_layer_generator`, `order="top_down"`), for
//! models given as state dicts: every module with parameters is re-initialised as PyTorch's
//! `reset_parameters` does, from the last module to the first, cumulatively.
//!
//! Quantus re-initialises with torch's generator seeded `seed + 1` before each module; here a
//! ChaCha8 generator seeded `seed + 1` is used the same way, so the distributions are
//! PyTorch's but not its draws. (The parity test compares MPRT's similarity part, on heatmaps
//! of randomised models made by Quantus itself.)

use std::collections::BTreeMap;

use burn::tensor::Device;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use summit_model::fashion::FASHION_MODULES;
use summit_model::{FashionInception, FashionNet, HostTensor, StateDict, burn};

use crate::attribute::Attributor;
use crate::error::{AttributionError, Result};
use crate::method::{AttributionParams, Method};

/// The convolution blocks of an inception module of FashionNet, in definition order.
const INCEPTION_BLOCKS: [&str; 6] = summit_model::blocks::Inception::KEYS;

/// FashionNet's modules with parameters (the state-dict key prefixes), in definition order,
/// as PyTorch's `named_modules()` lists those with `reset_parameters`: `conv1.conv`,
/// `conv1.bn`, `conv2.conv`, `conv2.bn`, then each inception module's blocks (conv, then
/// batch norm), then `fc`. MPRT randomises them in reverse (top-down).
pub fn fashion_modules() -> Vec<String> {
    let mut out = Vec::new();
    let mut block = |prefix: String| {
        out.push(format!("{prefix}.conv"));
        out.push(format!("{prefix}.bn"));
    };
    block("conv1".into());
    block("conv2".into());
    for (name, _) in &FASHION_MODULES {
        for b in INCEPTION_BLOCKS {
            block(format!("{name}.{b}"));
        }
    }
    out.push("fc".into());
    out
}

/// Re-initialises `module`'s tensors in `tensors` as PyTorch's `reset_parameters` does, drawing
/// from a generator seeded `seed`:
/// - batch norm (the module has `running_mean`): weight 1, bias 0, running mean 0, running
///   variance 1 (`num_batches_tracked` 0 where present);
/// - convolution and linear (`weight` of shape `[out, in, ...]`): weight and bias uniform in
///   `±1/√fan_in`, `fan_in = in · Π kernel` (`kaiming_uniform_(a=√5)` and the bias's bound).
///
/// Fails if `tensors` has no `weight` for `module`.
pub fn reset_module(
    tensors: &mut BTreeMap<String, HostTensor>,
    module: &str,
    seed: u64,
) -> Result<()> {
    let key = |name: &str| format!("{module}.{name}");
    if tensors.contains_key(&key("running_mean")) {
        for (name, value) in [
            ("weight", 1.0),
            ("bias", 0.0),
            ("running_mean", 0.0),
            ("running_var", 1.0),
            ("num_batches_tracked", 0.0),
        ] {
            if let Some(t) = tensors.get_mut(&key(name)) {
                t.data.fill(value);
            }
        }
        return Ok(());
    }
    let weight = tensors.get_mut(&key("weight")).ok_or_else(|| {
        AttributionError::Input(format!(
            "cannot randomise module `{module}`: no tensor `{module}.weight`"
        ))
    })?;
    let fan_in: usize = weight.shape.iter().skip(1).product();
    if weight.shape.len() < 2 || fan_in == 0 {
        return Err(AttributionError::Input(format!(
            "cannot randomise module `{module}`: weight of shape {:?}",
            weight.shape
        )));
    }
    let bound = 1.0 / (fan_in as f64).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut draw = |t: &mut HostTensor| {
        for v in &mut t.data {
            *v = rng.random_range(-bound..bound) as f32;
        }
    };
    draw(weight);
    if let Some(bias) = tensors.get_mut(&key("bias")) {
        draw(bias);
    }
    Ok(())
}

/// The cascade of randomised FashionNets of MPRT: the `k`-th item is the model with its last
/// `k + 1` modules of [`fashion_modules`] re-initialised ([`reset_module`], generator seed
/// `seed + 1` for each, as Quantus), with the module's name. 41 models.
pub struct FashionRandomisation {
    tensors: BTreeMap<String, HostTensor>,
    modules: Vec<String>,
    next: usize,
    seed: u64,
    device: Device,
}

impl std::fmt::Debug for FashionRandomisation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FashionRandomisation")
            .field("modules", &self.modules.len())
            .field("next", &self.next)
            .field("seed", &self.seed)
            .finish()
    }
}

impl FashionRandomisation {
    /// The cascade for `model` (its weights are copied; `model` is not changed). `seed` is
    /// Quantus' MPRT `seed` ([`crate::EvaluationParams::mprt_seed`], 42).
    pub fn new(model: &FashionInception, seed: u64, device: &Device) -> Result<Self> {
        let mut modules = fashion_modules();
        modules.reverse();
        Ok(Self {
            tensors: model.net().export()?,
            modules,
            next: 0,
            seed,
            device: device.clone(),
        })
    }

    /// The module names in the cascade's (top-down) order.
    pub fn modules(&self) -> &[String] {
        &self.modules
    }

    fn step(&mut self) -> Result<(String, FashionInception)> {
        let module = self.modules[self.next].clone();
        self.next += 1;
        reset_module(&mut self.tensors, &module, self.seed.wrapping_add(1))?;
        let mut sd = StateDict::from_tensors(
            format!("<FashionNet randomised down to {module}>"),
            self.tensors.clone(),
        );
        let net = FashionNet::from_state_dict(&mut sd, &self.device)?;
        Ok((module, FashionInception::new(net)?))
    }
}

impl Iterator for FashionRandomisation {
    type Item = Result<(String, FashionInception)>;

    fn next(&mut self) -> Option<Self::Item> {
        (self.next < self.modules.len()).then(|| self.step())
    }
}

/// The heatmaps MPRT compares with, for the embedded FashionNet: `method`'s attribution of
/// every image (`[n, 1, 28, 28]`, `targets`) on each model of [`FashionRandomisation`], in the
/// cascade's order. Returns the module names and, per model, the `n` heatmaps (as
/// [`crate::Batch::randomised`] takes them).
#[allow(clippy::too_many_arguments)]
pub fn randomised_fashion_heatmaps(
    model: &FashionInception,
    method: Method,
    attribution: &AttributionParams,
    images: &[f32],
    dims: [usize; 4],
    targets: &[usize],
    seed: u64,
    device: &Device,
) -> Result<(Vec<String>, Vec<Vec<f32>>)> {
    let mut names = Vec::new();
    let mut heatmaps = Vec::new();
    for item in FashionRandomisation::new(model, seed, device)? {
        let (name, m) = item?;
        let a = Attributor::new(&m, attribution.clone(), device)?
            .attribute_host(method, images, dims, targets)?;
        names.push(name);
        heatmaps.push(a.values);
    }
    Ok((names, heatmaps))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn modules_cover_the_state_dict() {
        let device = Device::flex();
        let model = FashionInception::embedded(&device).unwrap();
        let tensors = model.net().export().unwrap();
        let modules = fashion_modules();
        assert_eq!(modules.len(), 41);
        for k in tensors.keys() {
            let prefix = k.rsplit_once('.').unwrap().0;
            assert!(modules.iter().any(|m| m == prefix), "{k} not covered");
        }
        for m in &modules {
            assert!(
                tensors.keys().any(|k| k.starts_with(&format!("{m}."))),
                "{m} has no tensors"
            );
        }
    }

    #[test]
    fn reset_is_pytorch_like() {
        let mut t = BTreeMap::new();
        t.insert(
            "c.weight".to_string(),
            HostTensor::new(vec![4, 2, 3, 3], vec![9.0; 72]),
        );
        t.insert("c.bias".to_string(), HostTensor::new(vec![4], vec![9.0; 4]));
        t.insert(
            "b.weight".to_string(),
            HostTensor::new(vec![2], vec![3.0; 2]),
        );
        t.insert("b.bias".to_string(), HostTensor::new(vec![2], vec![3.0; 2]));
        t.insert(
            "b.running_mean".to_string(),
            HostTensor::new(vec![2], vec![3.0; 2]),
        );
        t.insert(
            "b.running_var".to_string(),
            HostTensor::new(vec![2], vec![3.0; 2]),
        );
        let before = t.clone();
        reset_module(&mut t, "c", 43).unwrap();
        let bound = 1.0 / 18f32.sqrt();
        assert!(t["c.weight"].data.iter().all(|v| v.abs() <= bound));
        assert!(t["c.bias"].data.iter().all(|v| v.abs() <= bound));
        assert_ne!(t["c.weight"], before["c.weight"]);
        let again = {
            let mut u = before.clone();
            reset_module(&mut u, "c", 43).unwrap();
            u
        };
        assert_eq!(t["c.weight"], again["c.weight"]);
        reset_module(&mut t, "b", 43).unwrap();
        assert_eq!(t["b.weight"].data, [1.0, 1.0]);
        assert_eq!(t["b.bias"].data, [0.0, 0.0]);
        assert_eq!(t["b.running_mean"].data, [0.0, 0.0]);
        assert_eq!(t["b.running_var"].data, [1.0, 1.0]);
        assert!(reset_module(&mut t, "nothing", 1).is_err());
    }
}
