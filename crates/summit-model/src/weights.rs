//! Reading and writing state dicts: `.pth` files saved by `torch.save(model.state_dict(), ...)`
//! and `.safetensors` files, as named host-side f32 tensors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::error::{ModelError, Result};

/// One tensor of a state dict, converted to f32 and held on the host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// A tensor from its shape and values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self { shape, data }
    }
}

/// A state dict: tensors by key, with bookkeeping of which keys a model consumed, so that a
/// wrong file gets an error that names the missing or unexpected key or the mismatched shape.
#[derive(Debug, Clone)]
pub struct StateDict {
    path: PathBuf,
    tensors: BTreeMap<String, HostTensor>,
    used: BTreeSet<String>,
}

impl StateDict {
    /// Loads a `.pth`/`.pt` (PyTorch pickle, zip or legacy) or `.safetensors` file. Every
    /// floating-point tensor is converted to f32; integer tensors (such as batch norm's
    /// `num_batches_tracked`) are kept too, converted to f32.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default();
        let tensors = match ext.as_str() {
            "pth" | "pt" | "bin" => read_pytorch(path)?,
            "safetensors" => read_safetensors(path)?,
            _ => {
                return Err(ModelError::UnsupportedFormat {
                    path: path.to_path_buf(),
                });
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            tensors,
            used: BTreeSet::new(),
        })
    }

    /// Parses the bytes of a `.safetensors` file (`name` is used in error messages).
    pub fn from_safetensors_bytes(name: impl Into<PathBuf>, bytes: &[u8]) -> Result<Self> {
        let path = name.into();
        let tensors = parse_safetensors(&path, bytes)?;
        Ok(Self {
            path,
            tensors,
            used: BTreeSet::new(),
        })
    }

    /// A state dict built in memory (`path` is only used in error messages).
    pub fn from_tensors(path: impl Into<PathBuf>, tensors: BTreeMap<String, HostTensor>) -> Self {
        Self {
            path: path.into(),
            tensors,
            used: BTreeSet::new(),
        }
    }

    /// The file this state dict was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// All keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// All tensors, consuming the state dict.
    pub fn into_tensors(self) -> BTreeMap<String, HostTensor> {
        self.tensors
    }

    /// The tensor under `key`, without checking its shape or marking it used.
    pub fn get(&self, key: &str) -> Option<&HostTensor> {
        self.tensors.get(key)
    }

    /// Takes the tensor under `key`, checking that its shape is `expected`, and marks it used.
    pub fn take(&mut self, key: &str, expected: &[usize]) -> Result<HostTensor> {
        let t = self
            .tensors
            .get(key)
            .ok_or_else(|| ModelError::MissingKey {
                path: self.path.clone(),
                key: key.to_string(),
            })?;
        if t.shape != expected {
            return Err(ModelError::Shape {
                path: self.path.clone(),
                key: key.to_string(),
                expected: expected.to_vec(),
                got: t.shape.clone(),
            });
        }
        self.used.insert(key.to_string());
        Ok(t.clone())
    }

    /// Marks `key` as used if present (for keys a model may ignore, such as
    /// `num_batches_tracked`).
    pub fn skip(&mut self, key: &str) {
        if self.tensors.contains_key(key) {
            self.used.insert(key.to_string());
        }
    }

    /// Fails with [`ModelError::UnexpectedKeys`] if any key was not consumed, except those
    /// for which `ignore(key)` is true.
    pub fn finish(&self, ignore: impl Fn(&str) -> bool) -> Result<()> {
        let unexpected: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !self.used.contains(*k) && !ignore(k))
            .cloned()
            .collect();
        if unexpected.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnexpectedKeys {
                path: self.path.clone(),
                keys: unexpected.into_iter().take(8).collect(),
            })
        }
    }

    /// Writes the tensors to a `.safetensors` file atomically (a temporary file in the same
    /// folder, then a rename).
    pub fn save_safetensors(
        tensors: &BTreeMap<String, HostTensor>,
        path: impl AsRef<Path>,
    ) -> Result<()> {
        let path = path.as_ref();
        let write_err = |reason: String| ModelError::Write {
            path: path.to_path_buf(),
            reason,
        };
        let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
            .iter()
            .map(|(k, t)| {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k.clone(), b, t.shape.clone())
            })
            .collect();
        let mut views = Vec::with_capacity(bytes.len());
        for (k, b, shape) in &bytes {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                    .map_err(|e| write_err(format!("tensor `{k}`: {e}")))?;
            views.push((k.clone(), view));
        }
        let data = safetensors::serialize(views, None).map_err(|e| write_err(format!("{e}")))?;
        summit_io::write_atomic(path, &data, true).map_err(|e| write_err(e.to_string()))
    }
}

fn read_pytorch(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let read_err = |reason: String| ModelError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| read_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, t) in reader.into_tensors() {
        let bytes = t.read().map_err(|e| read_err(e.to_string()))?;
        let data = decode(&bytes, t.dtype()).ok_or_else(|| ModelError::DType {
            path: path.to_path_buf(),
            key: name.clone(),
            dtype: format!("{:?}", t.dtype()),
        })?;
        out.insert(name, HostTensor::new(t.shape().to_vec(), data));
    }
    Ok(out)
}

/// Converts native-endian bytes of a PyTorch tensor to f32.
fn decode(bytes: &[u8], dtype: pytorch_reader::DType) -> Option<Vec<f32>> {
    use pytorch_reader::DType as D;
    let v = match dtype {
        D::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        D::F64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_ne_bytes(a) as f32
            })
            .collect(),
        D::F16 => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        D::BF16 => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_ne_bytes([c[0], c[1]]).to_f32())
            .collect(),
        D::I64 => bytes
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                i64::from_ne_bytes(a) as f32
            })
            .collect(),
        D::I32 => bytes
            .chunks_exact(4)
            .map(|c| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as f32)
            .collect(),
        D::U8 | D::Bool => bytes.iter().map(|&b| f32::from(b)).collect(),
        D::I8 => bytes.iter().map(|&b| f32::from(b as i8)).collect(),
        D::I16 | D::U16 | D::U32 | D::U64 => return None,
    };
    Some(v)
}

fn read_safetensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    parse_safetensors(path, &bytes)
}

fn parse_safetensors(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, HostTensor>> {
    let read_err = |reason: String| ModelError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| read_err(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.tensors() {
        let b = view.data();
        use safetensors::Dtype as D;
        let data: Vec<f32> = match view.dtype() {
            D::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            D::F64 => b
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    f64::from_le_bytes(a) as f32
                })
                .collect(),
            D::F16 => b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::BF16 => b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            D::I64 => b
                .chunks_exact(8)
                .map(|c| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    i64::from_le_bytes(a) as f32
                })
                .collect(),
            other => {
                return Err(ModelError::DType {
                    path: path.to_path_buf(),
                    key: name,
                    dtype: format!("{other:?}"),
                });
            }
        };
        out.insert(name, HostTensor::new(view.shape().to_vec(), data));
    }
    Ok(out)
}
