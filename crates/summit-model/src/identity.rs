//! Content hashes that identify a model: its weights and its description.
//!
//! Two runs may only be resumed into or merged with each other when they were made with the
//! same weights; the model's *name* says nothing about that (every torchvision GoogLeNet is
//! called the same). [`weights_hash`] hashes every float parameter and buffer of a burn
//! module (shapes and values, in the module's visiting order, batch-norm running statistics
//! included) with BLAKE3; [`description_hash`] hashes a [`ModelDescription`] (taps, layers,
//! paths and their folded kernels).

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

use crate::describe::{ModelDescription, Summarizable, to_host};
use crate::error::{ModelError, Result};

/// A model's identity as recorded in manifests and checkpoints: BLAKE3 hashes (hexadecimal)
/// of its weights and of its description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// [`Summarizable::weights_hash`] of the model.
    pub weights: String,
    /// [`description_hash`] of the model's description.
    pub description: String,
}

impl ModelIdentity {
    /// The identity of `model` (reads every parameter back from its device once).
    ///
    /// ```
    /// use summit_model::{FashionInception, ModelIdentity};
    /// use burn::tensor::Device;
    ///
    /// let device = Device::flex();
    /// let model = FashionInception::embedded(&device)?;
    /// let id = ModelIdentity::of(&model)?;
    /// assert_eq!(id.weights.len(), 64);
    /// assert_eq!(id, ModelIdentity::of(&model)?);
    /// # Ok::<(), summit_model::ModelError>(())
    /// ```
    pub fn of(model: &dyn Summarizable) -> Result<Self> {
        Ok(Self {
            weights: model.weights_hash()?,
            description: description_hash(model.description())?,
        })
    }

    /// The first 12 hexadecimal digits of the weights hash (for messages).
    pub fn short(&self) -> &str {
        self.weights.get(..12).unwrap_or(&self.weights)
    }
}

struct HashVisitor {
    hasher: blake3::Hasher,
    params: u64,
    error: Option<ModelError>,
}

impl ModuleVisitor for HashVisitor {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.error.is_some() {
            return;
        }
        let t = param.val();
        let dims = t.dims();
        match to_host(t, "a parameter being hashed") {
            Ok(values) => {
                self.hasher.update(&(D as u64).to_le_bytes());
                for d in dims {
                    self.hasher.update(&(d as u64).to_le_bytes());
                }
                for v in values {
                    self.hasher.update(&v.to_bits().to_le_bytes());
                }
                self.params += 1;
            }
            Err(e) => self.error = Some(e),
        }
    }
}

/// The BLAKE3 hash (64 hexadecimal digits) of every float parameter and buffer of `module`:
/// for each, in the module's visiting order, its rank, its dimensions and its values' bits.
/// Equal for two modules with the same architecture and values, whatever file they came from.
pub fn weights_hash<M: Module>(module: &M) -> Result<String> {
    let mut v = HashVisitor {
        hasher: blake3::Hasher::new(),
        params: 0,
        error: None,
    };
    module.visit(&mut v);
    if let Some(e) = v.error {
        return Err(e);
    }
    v.hasher.update(&v.params.to_le_bytes());
    Ok(v.hasher.finalize().to_hex().to_string())
}

/// The BLAKE3 hash (64 hexadecimal digits) of a model description: its bincode encoding
/// (name, input, classes, taps, summary layers, paths with their folded kernels).
pub fn description_hash(desc: &ModelDescription) -> Result<String> {
    let bytes = bincode::serde::encode_to_vec(desc, bincode::config::standard()).map_err(|e| {
        ModelError::Data {
            what: format!("the description of model `{}`", desc.name),
            reason: format!("cannot encode for hashing: {e}"),
        }
    })?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

/// Combines a hash with extra identifying bytes (e.g. [`crate::SelectOutputs`]' columns).
pub(crate) fn extend_hash(hash: &str, extra: &[u8]) -> String {
    let mut h = blake3::Hasher::new();
    h.update(hash.as_bytes());
    h.update(extra);
    h.finalize().to_hex().to_string()
}
