//! Building blocks shared by the models: torchvision's `BasicConv2d` (conv, batch norm,
//! ReLU) and an inception module with configurable branch kernels, both able to load from and
//! export to state dicts and to describe themselves to Summit.

use std::collections::BTreeMap;

use crate::act::relu;
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::describe::{PathKind, to_host};
use crate::error::Result;
use crate::weights::{HostTensor, StateDict};

/// Max pooling as PyTorch's `nn.MaxPool2d(kernel, stride, padding, ceil_mode)`.
pub fn max_pool(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
    ceil: bool,
) -> Tensor<4> {
    crate::pool::max_pool2d(
        x,
        MaxPoolOptions::new([kernel, kernel])
            .with_stride([stride, stride])
            .with_padding_pairs([(padding, padding), (padding, padding)])
            .with_ceil_mode(ceil),
    )
}

/// Conv (no bias) → batch norm → ReLU, as torchvision's `BasicConv2d`.
#[derive(Module, Debug)]
pub struct BasicConv2d {
    /// The convolution (no bias).
    pub conv: Conv2d,
    /// The batch norm.
    pub bn: BatchNorm,
}

/// The shape of a [`BasicConv2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvSpec {
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Symmetric zero padding.
    pub padding: usize,
}

impl ConvSpec {
    /// A stride-1 convolution with "same" padding `kernel / 2`.
    pub fn same(c_in: usize, c_out: usize, kernel: usize) -> Self {
        Self {
            c_in,
            c_out,
            kernel,
            stride: 1,
            padding: kernel / 2,
        }
    }
}

fn to_tensor<const D: usize>(t: HostTensor, device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(t.data, t.shape), device)
}

impl BasicConv2d {
    /// A freshly initialised block (Kaiming-uniform conv, unit batch norm) for training.
    pub fn init(spec: ConvSpec, eps: f64, device: &Device) -> Self {
        let conv = Conv2dConfig::new([spec.c_in, spec.c_out], [spec.kernel, spec.kernel])
            .with_stride([spec.stride, spec.stride])
            .with_padding(PaddingConfig2d::Explicit(
                spec.padding,
                spec.padding,
                spec.padding,
                spec.padding,
            ))
            .with_bias(false)
            .init(device);
        let bn = BatchNormConfig::new(spec.c_out)
            .with_epsilon(eps)
            .init(device);
        Self { conv, bn }
    }

    /// Loads `{prefix}.conv.weight` and `{prefix}.bn.{weight,bias,running_mean,running_var}`.
    pub fn load(
        sd: &mut StateDict,
        prefix: &str,
        spec: ConvSpec,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        let mut block = Self::init(spec, eps, device);
        let w = sd.take(
            &format!("{prefix}.conv.weight"),
            &[spec.c_out, spec.c_in, spec.kernel, spec.kernel],
        )?;
        block.conv.weight = Param::from_tensor(to_tensor(w, device));
        let c = [spec.c_out];
        let gamma = sd.take(&format!("{prefix}.bn.weight"), &c)?;
        let beta = sd.take(&format!("{prefix}.bn.bias"), &c)?;
        let mean = sd.take(&format!("{prefix}.bn.running_mean"), &c)?;
        let var = sd.take(&format!("{prefix}.bn.running_var"), &c)?;
        sd.skip(&format!("{prefix}.bn.num_batches_tracked"));
        block.bn.gamma = Param::from_tensor(to_tensor(gamma, device));
        block.bn.beta = Param::from_tensor(to_tensor(beta, device));
        block.bn.running_mean = RunningState::new(to_tensor(mean, device));
        block.bn.running_var = RunningState::new(to_tensor(var, device));
        Ok(block)
    }

    /// Writes the block's tensors under torchvision's keys.
    pub fn export(&self, prefix: &str, out: &mut BTreeMap<String, HostTensor>) -> Result<()> {
        let mut put = |key: String, t: Tensor<4>| -> Result<()> {
            let shape = t.dims().to_vec();
            out.insert(key.clone(), HostTensor::new(shape, to_host(t, &key)?));
            Ok(())
        };
        put(format!("{prefix}.conv.weight"), self.conv.weight.val())?;
        let vecs = [
            ("bn.weight", self.bn.gamma.val()),
            ("bn.bias", self.bn.beta.val()),
            ("bn.running_mean", self.bn.running_mean.value()),
            ("bn.running_var", self.bn.running_var.value()),
        ];
        for (name, t) in vecs {
            let key = format!("{prefix}.{name}");
            let n = t.dims()[0];
            out.insert(key.clone(), HostTensor::new(vec![n], to_host(t, &key)?));
        }
        Ok(())
    }

    /// Adds the block to a model graph as `{path}.conv` → `{path}.bn` → ReLU, reading `x`; the
    /// block's output value is named `path`.
    pub fn to_graph(
        &self,
        g: &mut crate::onnx::build::GraphBuilder,
        path: &str,
        x: &str,
        spec: ConvSpec,
    ) -> Result<String> {
        let mut m = BTreeMap::new();
        self.export(path, &mut m)?;
        let mut take = |k: &str| {
            m.remove(&format!("{path}.{k}"))
                .ok_or_else(|| crate::ModelError::Describe(format!("graph of `{path}`: no `{k}`")))
        };
        let (w, gamma, beta, mean, var) = (
            take("conv.weight")?,
            take("bn.weight")?,
            take("bn.bias")?,
            take("bn.running_mean")?,
            take("bn.running_var")?,
        );
        let c = g.conv(
            &format!("{path}.conv"),
            x,
            &w,
            None,
            spec.stride,
            spec.padding,
            1,
        )?;
        let b = g.batch_norm(
            &format!("{path}.bn"),
            &c,
            &gamma,
            &beta,
            &mean,
            &var,
            self.bn.epsilon,
        )?;
        Ok(g.relu(path, &b))
    }

    /// Conv → batch norm → ReLU with burn's modules (training and evaluation; Summit runs
    /// the model graph, whose host kernels compute the same values, `crate::onnx`).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(self.bn.forward(self.conv_forward(x)))
    }

    fn conv_forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [c_out, c_in, kh, kw] = self.conv.weight.dims();
        let plain_1x1 = kh == 1
            && kw == 1
            && self.conv.stride == [1, 1]
            && self.conv.groups == 1
            && self.conv.bias.is_none()
            && matches!(
                self.conv.padding,
                PaddingConfig2d::Explicit(0, 0, 0, 0) | PaddingConfig2d::Valid
            );
        if !(plain_1x1 && x.is_autodiff()) {
            return self.conv.forward(x);
        }
        let [n, _, h, w] = x.dims();
        let weight = self.conv.weight.val().reshape([1, c_out, c_in]);
        weight
            .matmul(x.reshape([n, c_in, h * w]))
            .reshape([n, c_out, h, w])
    }
}

/// The widths and kernels of an inception module's four branches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InceptionSpec {
    /// Input channels.
    pub c_in: usize,
    /// 1×1 branch width.
    pub ch1x1: usize,
    /// Reduce width of the first two-hop branch.
    pub ch3x3red: usize,
    /// Output width of the first two-hop branch.
    pub ch3x3: usize,
    /// Kernel of the first two-hop branch (3).
    pub k3: usize,
    /// Reduce width of the second two-hop branch.
    pub ch5x5red: usize,
    /// Output width of the second two-hop branch.
    pub ch5x5: usize,
    /// Kernel of the second two-hop branch (3 in torchvision's GoogLeNet, whose "5×5" branch
    /// really has a 3×3 kernel; 5 in the Fashion-MNIST network).
    pub k5: usize,
    /// Pool projection width.
    pub pool_proj: usize,
}

impl InceptionSpec {
    /// Output channels (the concatenation of the four branches).
    pub fn out_channels(&self) -> usize {
        self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj
    }
}

/// An inception module with torchvision's layout: `branch1` (1×1), `branch2` (1×1 reduce →
/// k3), `branch3` (1×1 reduce → k5), `branch4` (3×3 max pool stride 1 → 1×1), concatenated
/// in that order.
#[derive(Module, Debug)]
pub struct Inception {
    /// 1×1 branch.
    pub branch1: BasicConv2d,
    /// Reduce of the first two-hop branch.
    pub branch2_reduce: BasicConv2d,
    /// Main conv of the first two-hop branch.
    pub branch2_conv: BasicConv2d,
    /// Reduce of the second two-hop branch.
    pub branch3_reduce: BasicConv2d,
    /// Main conv of the second two-hop branch.
    pub branch3_conv: BasicConv2d,
    /// 1×1 projection after the pool.
    pub branch4_proj: BasicConv2d,
}

impl Inception {
    pub(crate) fn specs(s: &InceptionSpec) -> [ConvSpec; 6] {
        [
            ConvSpec::same(s.c_in, s.ch1x1, 1),
            ConvSpec::same(s.c_in, s.ch3x3red, 1),
            ConvSpec::same(s.ch3x3red, s.ch3x3, s.k3),
            ConvSpec::same(s.c_in, s.ch5x5red, 1),
            ConvSpec::same(s.ch5x5red, s.ch5x5, s.k5),
            ConvSpec::same(s.c_in, s.pool_proj, 1),
        ]
    }

    /// The state-dict key prefixes of the module's six convolution blocks, in definition order
    /// (torchvision's `Inception`: branch1, branch2, branch3, branch4).
    pub const KEYS: [&'static str; 6] = [
        "branch1",
        "branch2.0",
        "branch2.1",
        "branch3.0",
        "branch3.1",
        "branch4.1",
    ];

    /// A freshly initialised module.
    pub fn init(spec: &InceptionSpec, eps: f64, device: &Device) -> Self {
        let [a, b, c, d, e, f] = Self::specs(spec).map(|s| BasicConv2d::init(s, eps, device));
        Self {
            branch1: a,
            branch2_reduce: b,
            branch2_conv: c,
            branch3_reduce: d,
            branch3_conv: e,
            branch4_proj: f,
        }
    }

    /// Loads the module's tensors under torchvision's keys (`{prefix}.branch1.conv.weight`, ...).
    pub fn load(
        sd: &mut StateDict,
        prefix: &str,
        spec: &InceptionSpec,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        let specs = Self::specs(spec);
        let mut blocks = Vec::with_capacity(6);
        for (key, s) in Self::KEYS.iter().zip(specs) {
            blocks.push(BasicConv2d::load(
                sd,
                &format!("{prefix}.{key}"),
                s,
                eps,
                device,
            )?);
        }
        let mut it = blocks.into_iter();
        let mut next = || it.next().ok_or_else(|| unreachable_err(prefix));
        Ok(Self {
            branch1: next()?,
            branch2_reduce: next()?,
            branch2_conv: next()?,
            branch3_reduce: next()?,
            branch3_conv: next()?,
            branch4_proj: next()?,
        })
    }

    fn blocks(&self) -> [&BasicConv2d; 6] {
        [
            &self.branch1,
            &self.branch2_reduce,
            &self.branch2_conv,
            &self.branch3_reduce,
            &self.branch3_conv,
            &self.branch4_proj,
        ]
    }

    /// Writes the module's tensors under torchvision's keys.
    pub fn export(&self, prefix: &str, out: &mut BTreeMap<String, HostTensor>) -> Result<()> {
        for (key, b) in Self::KEYS.iter().zip(self.blocks()) {
            b.export(&format!("{prefix}.{key}"), out)?;
        }
        Ok(())
    }

    /// Adds the module to a model graph under `path` (torchvision's module paths:
    /// `{path}.branch1`, `{path}.branch2.0`, …, `{path}.branch4.1`), reading `x`; its output (the
    /// concatenation) is the value `path`.
    pub fn to_graph(
        &self,
        g: &mut crate::onnx::build::GraphBuilder,
        path: &str,
        x: &str,
        spec: &InceptionSpec,
    ) -> Result<String> {
        let s = Self::specs(spec);
        let b1 = self
            .branch1
            .to_graph(g, &format!("{path}.branch1"), x, s[0])?;
        let r3 = self
            .branch2_reduce
            .to_graph(g, &format!("{path}.branch2.0"), x, s[1])?;
        let b2 = self
            .branch2_conv
            .to_graph(g, &format!("{path}.branch2.1"), &r3, s[2])?;
        let r5 = self
            .branch3_reduce
            .to_graph(g, &format!("{path}.branch3.0"), x, s[3])?;
        let b3 = self
            .branch3_conv
            .to_graph(g, &format!("{path}.branch3.1"), &r5, s[4])?;
        let p = g.max_pool(&format!("{path}.branch4.0"), x, 3, 1, 1, true);
        let b4 = self
            .branch4_proj
            .to_graph(g, &format!("{path}.branch4.1"), &p, s[5])?;
        Ok(g.concat(path, &[b1, b2, b3, b4]))
    }

    /// Forward pass with burn's modules (training and evaluation).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let b1 = self.branch1.forward(x.clone());
        let b2 = self
            .branch2_conv
            .forward(self.branch2_reduce.forward(x.clone()));
        let b3 = self
            .branch3_conv
            .forward(self.branch3_reduce.forward(x.clone()));
        let b4 = self.branch4_proj.forward(max_pool(x, 3, 1, 1, true));
        Tensor::cat(vec![b1, b2, b3, b4], 1)
    }
}

/// The labels of an inception network ([`crate::onnx::build::NativeLabels`]): its name, its
/// modules (graph value name, paper alias) as summary layers, and each module's four paths,
/// named by `branches(module)`.
pub(crate) fn inception_labels(
    name: &str,
    modules: &[(&str, Option<&str>)],
    branches: impl Fn(&str) -> [String; 4],
) -> crate::onnx::build::NativeLabels {
    crate::onnx::build::NativeLabels {
        name: name.into(),
        layers: modules
            .iter()
            .map(|(m, alias)| ((*m).to_string(), alias.map(str::to_string)))
            .collect(),
        paths: modules
            .iter()
            .map(|(m, _)| inception_path_labels(branches(m)))
            .collect(),
    }
}

/// The names and kinds of an inception module's four paths, in concatenation order: the 1×1
/// branch (direct), the two reduce-then-convolve branches, the pool branch.
fn inception_path_labels(names: [String; 4]) -> Vec<(String, PathKind)> {
    let kinds = [
        PathKind::Direct,
        PathKind::TwoHop,
        PathKind::TwoHop,
        PathKind::Pool,
    ];
    names.into_iter().zip(kinds).collect()
}

fn unreachable_err(prefix: &str) -> crate::error::ModelError {
    crate::error::ModelError::Data {
        what: prefix.to_string(),
        reason: "internal: branch count mismatch".into(),
    }
}
