//! The embedded default model: a small inception network for Fashion-MNIST (28×28 greyscale,
//! 10 classes), trained by `examples/train_fashion_mnist.rs` and shipped with its weights.
//!
//! Layout (BasicConv2d = conv → batch norm (eps 1e-3) → ReLU):
//!
//! | layer | op | output |
//! |---|---|---|
//! | `conv1` | 3×3, 1 → 16 | 16 × 28 × 28 |
//! | `maxpool1` | 2×2 stride 2 | 16 × 14 × 14 |
//! | `conv2` | 3×3, 16 → 48 | 48 × 14 × 14 (stem tap) |
//! | `mixed3a` | 1×1 24 · 1×1 32 → 3×3 48 · 1×1 8 → 5×5 16 · pool → 1×1 16 | 104 × 14 × 14 |
//! | `mixed3b` | 1×1 32 · 1×1 32 → 3×3 48 · 1×1 8 → 5×5 16 · pool → 1×1 16 | 112 × 14 × 14 |
//! | `maxpool3` | 3×3 stride 2 pad 1 | 112 × 7 × 7 |
//! | `mixed4a` | 1×1 48 · 1×1 48 → 3×3 64 · 1×1 12 → 5×5 24 · pool → 1×1 24 | 160 × 7 × 7 |
//! | `fc` | global average pool → linear 160 → 10 | 10 |
//!
//! Every path kind is exercised: direct 1×1, two-hop reduce → 3×3 and reduce → 5×5 (real 5×5
//! kernels), and pool → 1×1.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::blocks::{BasicConv2d, ConvSpec, Inception, InceptionSpec, max_pool};
use crate::describe::{ModelDescription, Summarizable, TapId, TapSink, to_host};
use crate::error::{ModelError, Result};
use crate::weights::{HostTensor, StateDict};

/// Batch norm epsilon of the Fashion-MNIST network.
pub const FASHION_BN_EPS: f64 = 1e-3;

/// The Fashion-MNIST class names, in label order.
pub const FASHION_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Mean of the Fashion-MNIST training pixels (in 0..1) used to normalise inputs.
pub const FASHION_MEAN: f32 = 0.2860;
/// Standard deviation of the Fashion-MNIST training pixels (in 0..1).
pub const FASHION_STD: f32 = 0.3530;

/// The embedded trained weights (safetensors, torchvision-style keys).
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../assets/fashion_inception.safetensors");

/// The three inception modules: (name, spec).
pub const FASHION_MODULES: [(&str, InceptionSpec); 3] = [
    (
        "mixed3a",
        InceptionSpec {
            c_in: 48,
            ch1x1: 24,
            ch3x3red: 32,
            ch3x3: 48,
            k3: 3,
            ch5x5red: 8,
            ch5x5: 16,
            k5: 5,
            pool_proj: 16,
        },
    ),
    (
        "mixed3b",
        InceptionSpec {
            c_in: 104,
            ch1x1: 32,
            ch3x3red: 32,
            ch3x3: 48,
            k3: 3,
            ch5x5red: 8,
            ch5x5: 16,
            k5: 5,
            pool_proj: 16,
        },
    ),
    (
        "mixed4a",
        InceptionSpec {
            c_in: 112,
            ch1x1: 48,
            ch3x3red: 48,
            ch3x3: 64,
            k3: 3,
            ch5x5red: 12,
            ch5x5: 24,
            k5: 5,
            pool_proj: 24,
        },
    ),
];

const CONV1: ConvSpec = ConvSpec {
    c_in: 1,
    c_out: 16,
    kernel: 3,
    stride: 1,
    padding: 1,
};
const CONV2: ConvSpec = ConvSpec {
    c_in: 16,
    c_out: 48,
    kernel: 3,
    stride: 1,
    padding: 1,
};
const FC_IN: usize = 160;

/// The burn module of the Fashion-MNIST inception network (trainable).
#[derive(Module, Debug)]
pub struct FashionNet {
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    inception: Vec<Inception>,
    fc: Linear,
}

impl FashionNet {
    /// A freshly initialised network (seed the device first for reproducibility).
    pub fn init(device: &Device) -> Self {
        Self {
            conv1: BasicConv2d::init(CONV1, FASHION_BN_EPS, device),
            conv2: BasicConv2d::init(CONV2, FASHION_BN_EPS, device),
            inception: FASHION_MODULES
                .iter()
                .map(|(_, s)| Inception::init(s, FASHION_BN_EPS, device))
                .collect(),
            fc: LinearConfig::new(FC_IN, 10).init(device),
        }
    }

    /// Loads the network from a state dict with the keys [`FashionNet::export`] writes.
    pub fn from_state_dict(sd: &mut StateDict, device: &Device) -> Result<Self> {
        let conv1 = BasicConv2d::load(sd, "conv1", CONV1, FASHION_BN_EPS, device)?;
        let conv2 = BasicConv2d::load(sd, "conv2", CONV2, FASHION_BN_EPS, device)?;
        let mut inception = Vec::with_capacity(3);
        for (name, s) in &FASHION_MODULES {
            inception.push(Inception::load(sd, name, s, FASHION_BN_EPS, device)?);
        }
        let w = sd.take("fc.weight", &[10, FC_IN])?;
        let b = sd.take("fc.bias", &[10])?;
        let mut fc = LinearConfig::new(FC_IN, 10).init(device);
        fc.weight = Param::from_tensor(
            Tensor::<2>::from_data(TensorData::new(w.data, [10, FC_IN]), device).transpose(),
        );
        fc.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b.data, [10]),
            device,
        )));
        sd.finish(|_| false)?;
        Ok(Self {
            conv1,
            conv2,
            inception,
            fc,
        })
    }

    /// The network's tensors under torchvision-style keys (`conv1.conv.weight`,
    /// `mixed3a.branch2.1.bn.running_var`, `fc.weight` as `[out, in]`, ...).
    pub fn export(&self) -> Result<BTreeMap<String, HostTensor>> {
        let mut out = BTreeMap::new();
        self.conv1.export("conv1", &mut out)?;
        self.conv2.export("conv2", &mut out)?;
        for ((name, _), m) in FASHION_MODULES.iter().zip(&self.inception) {
            m.export(name, &mut out)?;
        }
        let w = self.fc.weight.val().transpose();
        out.insert(
            "fc.weight".into(),
            HostTensor::new(vec![10, FC_IN], to_host(w, "fc.weight")?),
        );
        if let Some(b) = &self.fc.bias {
            out.insert(
                "fc.bias".into(),
                HostTensor::new(vec![10], to_host(b.val(), "fc.bias")?),
            );
        }
        Ok(out)
    }

    /// Saves the network as `.safetensors` (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        StateDict::save_safetensors(&self.export()?, path)
    }

    /// Forward pass for training and evaluation: `[B, 1, 28, 28]` → `[B, 10]` logits (burn's
    /// modules, which autodiff trains; Summit runs the model graph, [`FashionInception`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv1.forward(x);
        let x = max_pool(x, 2, 2, 0, false);
        let mut x = self.conv2.forward(x);
        for (idx, m) in self.inception.iter().enumerate() {
            if idx == 2 {
                x = max_pool(x, 3, 2, 1, false);
            }
            x = m.forward(x);
        }
        let [b, c, _, _] = x.dims();
        let pooled = x.mean_dim(3).mean_dim(2).reshape([b, c]);
        self.fc.forward(pooled)
    }
}

/// The Fashion-MNIST inception network ready for Summit: its weights built into the model
/// graph that runs and describes every model ([`crate::OnnxModel`], the one runtime); the burn
/// network is kept for training and export.
#[derive(Debug)]
pub struct FashionInception {
    net: FashionNet,
    graph: crate::OnnxModel,
}

impl FashionInception {
    /// The embedded default: the trained weights shipped in the crate.
    pub fn embedded(device: &Device) -> Result<Self> {
        let mut sd = StateDict::from_safetensors_bytes(
            "<embedded fashion_inception.safetensors>",
            EMBEDDED_WEIGHTS,
        )?;
        Self::new(FashionNet::from_state_dict(&mut sd, device)?)
    }

    /// Loads weights from a `.safetensors`/`.pth` file with [`FashionNet::export`]'s keys.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let mut sd = StateDict::load(path)?;
        Self::new(FashionNet::from_state_dict(&mut sd, device)?)
    }

    /// Wraps a (trained) network; its batch norms run in inference mode from here on.
    pub fn new(net: FashionNet) -> Result<Self> {
        // frozen: batch norm keeps its running statistics even when the input carries
        // autodiff (attribution)
        let net = net.valid().freeze();
        let device = net.fc.weight.val().device();
        let (g, x) = Self::graph_builder(&net)?;
        let modules: Vec<(&str, Option<&str>)> =
            FASHION_MODULES.iter().map(|(m, _)| (*m, None)).collect();
        let labels =
            crate::blocks::inception_labels("fashion-mnist inception (summit-rs)", &modules, |m| {
                ["branch1", "branch2", "branch3", "branch4"].map(|b| format!("{m}.{b}"))
            });
        let graph = g.finish_described(&x, &labels, &device)?;
        Ok(Self { net, graph })
    }

    /// The underlying network.
    pub fn net(&self) -> &FashionNet {
        &self.net
    }

    fn check_input(&self, x: &Tensor<4>) -> Result<()> {
        let d = x.dims();
        // the classifier follows a global average pool: other sizes run too (feature
        // visualization feeds its transformed images at their own size, SPEC §4.1)
        if d[1] != 1 || d[2] < 8 || d[3] < 8 {
            return Err(ModelError::Input {
                got: d.to_vec(),
                expected: "[B, 1, 28, 28] normalised Fashion-MNIST images (any H, W >= 8 run)"
                    .into(),
            });
        }
        Ok(())
    }
}

impl FashionInception {
    /// The network as a model graph (batch norm as its own nodes) and its output value.
    fn graph_builder(net: &FashionNet) -> Result<(crate::onnx::build::GraphBuilder, String)> {
        use crate::onnx::build::GraphBuilder;
        let n = net;
        let mut g = GraphBuilder::new(1, [28, 28]);
        let mut x = g.input();
        x = n.conv1.to_graph(&mut g, "conv1", &x, CONV1)?;
        x = g.max_pool("maxpool1", &x, 2, 2, 0, false);
        x = n.conv2.to_graph(&mut g, "conv2", &x, CONV2)?;
        for (idx, (m, (name, spec))) in n.inception.iter().zip(FASHION_MODULES).enumerate() {
            if idx == 2 {
                x = g.max_pool("maxpool3", &x, 3, 2, 1, false);
            }
            x = m.to_graph(&mut g, name, &x, &spec)?;
        }
        x = g.global_average_pool("avgpool", &x);
        x = g.flatten("flatten", &x);
        x = g.linear("fc", &x, &n.fc)?;
        Ok((g, x))
    }
}

impl Summarizable for FashionInception {
    fn description(&self) -> &ModelDescription {
        self.graph.description()
    }

    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>> {
        self.check_input(&images)?;
        self.graph.forward_taps(images, sink)
    }

    fn graph(&self) -> Result<crate::describe::GraphRef<'_>> {
        Ok(crate::describe::GraphRef::whole(&self.graph))
    }

    fn weights_hash(&self) -> Result<String> {
        crate::identity::weights_hash(&self.net)
    }

    /// Runs the stages up to the tap only (any H, W >= 8).
    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        self.check_input(&images)?;
        self.graph.forward_to(images, tap)
    }

    fn accepts_any_size(&self) -> bool {
        true
    }
}
