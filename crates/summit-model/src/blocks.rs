//! Building blocks shared by the models: torchvision's `BasicConv2d` (conv, batch norm,
//! ReLU) and an inception module with configurable branch kernels, both able to load from and
//! export to state dicts and to describe themselves to Summit.

use std::collections::BTreeMap;

use crate::act::relu;
use burn::backend::DispatchDevice;
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{Device, Tensor, TensorData};

use crate::describe::{
    ConvHop, ConvPath, FoldedKernel, PathKind, TapId, TapInfo, TapSink, to_host,
};
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

/// A [`BasicConv2d`] on the host, for [`crate::conv::conv2d`]: its weights (`[c_out, c_in,
/// kh, kw]`), shape and batch-norm statistics (`sd = sqrt(var + eps)`).
struct HostConv {
    weight: Vec<f32>,
    shape: crate::conv::ConvShape,
    gamma: Vec<f32>,
    beta: Vec<f32>,
    mean: Vec<f32>,
    sd: Vec<f32>,
}

impl HostConv {
    /// Conv → batch norm → ReLU of host values `x` (`[n, c_in, h, w]`).
    fn run(&self, x: &[f32], dims: [usize; 4]) -> Option<(Vec<f32>, [usize; 4])> {
        let epi = crate::conv::Epilogue::BnRelu {
            mean: &self.mean,
            sd: &self.sd,
            gamma: &self.gamma,
            beta: &self.beta,
        };
        crate::conv::conv2d(x, dims, &self.weight, &self.shape, epi)
    }

    /// Blocks that read the same input with the same kernel size and padding as one
    /// convolution whose output channels are theirs in order. Each output channel's
    /// arithmetic is its own (module docs of [`crate::conv`]), so the values are those of the
    /// blocks run one by one.
    fn stack(parts: &[HostConv]) -> Option<HostConv> {
        let first = parts.first()?;
        let mut out = HostConv {
            weight: Vec::new(),
            shape: crate::conv::ConvShape {
                c_out: 0,
                ..first.shape
            },
            gamma: Vec::new(),
            beta: Vec::new(),
            mean: Vec::new(),
            sd: Vec::new(),
        };
        for p in parts {
            let s = &p.shape;
            if (s.c_in, s.kh, s.kw, s.pad)
                != (
                    first.shape.c_in,
                    first.shape.kh,
                    first.shape.kw,
                    first.shape.pad,
                )
            {
                return None;
            }
            out.shape.c_out += s.c_out;
            out.weight.extend_from_slice(&p.weight);
            out.gamma.extend_from_slice(&p.gamma);
            out.beta.extend_from_slice(&p.beta);
            out.mean.extend_from_slice(&p.mean);
            out.sd.extend_from_slice(&p.sd);
        }
        Some(out)
    }
}

/// `Tensor::cat(parts, 1)` on burn's CPU device, reading the parts in place (a reduce output
/// is also a tap) and copying each image's channel blocks once; `None` where a part is not a
/// contiguous f32 host tensor or the shapes differ outside the channels (burn's `cat` then
/// runs, and reports the mismatch).
fn cat_channels_host(parts: &[Tensor<4>]) -> Option<Tensor<4>> {
    let first = parts.first()?;
    let [n, _, h, w] = first.dims();
    let hw = h * w;
    let mut blocks = Vec::with_capacity(parts.len());
    let mut c_total = 0;
    for p in parts {
        let [pn, pc, ph, pw] = p.dims();
        if (pn, ph, pw) != (n, h, w) {
            return None;
        }
        c_total += pc;
        blocks.push((crate::conv::HostValues::of(p)?, pc * hw));
    }
    let slices: Vec<(&[f32], usize)> = blocks.iter().map(|(v, b)| (v.values(), *b)).collect();
    let mut out = Vec::with_capacity(n * c_total * hw);
    for img in 0..n {
        for &(v, block) in &slices {
            out.extend_from_slice(v.get(img * block..(img + 1) * block)?);
        }
    }
    Some(Tensor::from_data(
        TensorData::new(out, [n, c_total, h, w]),
        &first.device(),
    ))
}

/// Channels `lo .. lo + len` of every image of host values `x` with `c` channels of `hw`.
fn channels(x: &[f32], c: usize, hw: usize, lo: usize, len: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / c.max(1) * len);
    if hw > 0 && c > 0 {
        for img in x.chunks_exact(c * hw) {
            out.extend_from_slice(&img[lo * hw..(lo + len) * hw]);
        }
    }
    out
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

    /// Conv → batch norm → ReLU.
    ///
    /// On burn's CPU device without autodiff (f32, stride 1, ungrouped), the convolution runs
    /// as the crate's direct host convolution (`conv.rs`) with batch norm and ReLU fused into its
    /// output pass; everywhere else (autodiff, GPU devices, strided convolutions) as burn's
    /// convolution, then batch norm and ReLU.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if crate::conv::on_host(&x) {
            if let Some(host) = self.host() {
                let dims = x.dims();
                // read in place, however many hold the tensor
                if let Some((values, out)) =
                    crate::conv::with_values(&x, |xs| host.run(xs, dims)).flatten()
                {
                    return Tensor::from_data(TensorData::new(values, out), &x.device());
                }
            } else if let Some(y) = self.unfolded(&x) {
                return self.bn_relu(y);
            }
        }
        self.bn_relu(self.conv_forward(x))
    }

    /// The batch norm's running statistics on the host as `(gamma, beta, mean, sd)` with
    /// `sd = sqrt(var + eps)` rounded as burn rounds it, or `None` if they are not `c` f32s.
    fn bn_host(&self, c: usize) -> Option<[Vec<f32>; 4]> {
        let stats = [
            self.bn.gamma.val(),
            self.bn.beta.val(),
            self.bn.running_mean.value(),
            self.bn.running_var.value(),
        ];
        let mut host = Vec::with_capacity(4);
        for t in stats {
            let v = crate::conv::with_values(&t, <[f32]>::to_vec)?;
            if v.len() != c {
                return None;
            }
            host.push(v);
        }
        let eps = self.bn.epsilon as f32;
        let var = host.pop()?;
        let mean = host.pop()?;
        let beta = host.pop()?;
        let gamma = host.pop()?;
        let sd = var.iter().map(|&v| (v + eps).sqrt()).collect();
        Some([gamma, beta, mean, sd])
    }

    /// The convolution's zero padding as `[top, bottom, left, right]`, `None` for a padding
    /// mode that depends on the input (`Same`).
    fn explicit_padding(&self) -> Option<[usize; 4]> {
        match self.conv.padding {
            // burn's order is (top, left, bottom, right)
            PaddingConfig2d::Explicit(t, l, b, r) => Some([t, b, l, r]),
            PaddingConfig2d::Valid => Some([0; 4]),
            _ => None,
        }
    }

    /// The block as a [`HostConv`] where the host convolution applies to it (stride 1,
    /// dilation 1, ungrouped, no bias, explicit padding, f32 parameters).
    fn host(&self) -> Option<HostConv> {
        if self.conv.stride != [1, 1]
            || self.conv.dilation != [1, 1]
            || self.conv.groups != 1
            || self.conv.bias.is_some()
        {
            return None;
        }
        let pad = self.explicit_padding()?;
        let shape = crate::conv::ConvShape::of_weight(self.conv.weight.dims(), pad);
        if !shape.suits_host() {
            return None;
        }
        let [gamma, beta, mean, sd] = self.bn_host(shape.c_out)?;
        let weight = crate::conv::with_values(&self.conv.weight.val(), <[f32]>::to_vec)?;
        Some(HostConv {
            weight,
            shape,
            gamma,
            beta,
            mean,
            sd,
        })
    }

    /// The convolution as host columns times the weights ([`crate::im2col`]), for strided
    /// convolutions (GoogLeNet's 7×7 stem), which the host convolution does not take; stride-1
    /// convolutions with long chains stay with burn's, which was as fast or faster there
    /// (`benches/conv.rs`, one thread: inception3b 3×3 48.6 against 42.9 ms). `None` where it
    /// does not apply (stride 1, grouped, dilated, biased, a padding mode other than
    /// explicit).
    fn unfolded(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        let [_, _, kh, kw] = self.conv.weight.dims();
        if self.conv.dilation != [1, 1] || self.conv.groups != 1 || self.conv.bias.is_some() {
            return None;
        }
        let pad = self.explicit_padding()?;
        if self.conv.stride == [1, 1] {
            return None;
        }
        let u = crate::im2col::Unfold {
            kh,
            kw,
            stride: self.conv.stride,
            pad,
        };
        crate::im2col::conv2d(x, &self.conv.weight.val(), &u)
    }

    /// Batch norm with the running statistics, then ReLU, in one pass over the values on
    /// burn's CPU backend (inference, f32): per element `max((x − mean) / sqrt(var + eps) ·
    /// γ + β, 0)`, each operation rounded as burn's `batch_norm` then `relu` round them (no
    /// fused multiply-add), so the result is bit-identical to theirs while five passes and
    /// four allocations become one. Anything else (autodiff, another device or type) runs
    /// burn's batch norm and our [`relu`].
    fn bn_relu(&self, y: Tensor<4>) -> Tensor<4> {
        let device = y.device();
        if !matches!(device.as_dispatch(), DispatchDevice::Flex(_))
            || y.dtype() != burn::tensor::DType::F32
        {
            return relu(self.bn.forward(y));
        }
        let [n, c, h, w] = y.dims();
        let Some([gamma, beta, mean, sd]) = self.bn_host(c) else {
            return relu(self.bn.forward(y));
        };
        // a tensor no one else holds moves to the host without a copy
        let data = y.into_data();
        let Ok(x) = data.as_slice::<f32>() else {
            return relu(self.bn.forward(Tensor::from_data(data, &device)));
        };
        let plane = h * w;
        let mut values = Vec::with_capacity(x.len());
        if plane > 0 {
            for (i, chunk) in x.chunks(plane).enumerate() {
                let j = i % c;
                let (m, s, g, b) = (mean[j], sd[j], gamma[j], beta[j]);
                values.extend(chunk.iter().map(|&v| {
                    let z = (v - m) / s * g + b;
                    if z.is_nan() || z > 0.0 { z } else { 0.0 }
                }));
            }
        }
        Tensor::from_data(TensorData::new(values, [n, c, h, w]), &device)
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

    /// The kernel with the batch norm folded in (SPEC §2).
    pub fn folded(&self) -> Result<FoldedKernel> {
        let [c_out, c_in, kh, kw] = self.conv.weight.dims();
        let w = to_host(self.conv.weight.val(), "conv.weight")?;
        let gamma = to_host(self.bn.gamma.val(), "bn.weight")?;
        let beta = to_host(self.bn.beta.val(), "bn.bias")?;
        let mean = to_host(self.bn.running_mean.value(), "bn.running_mean")?;
        let var = to_host(self.bn.running_var.value(), "bn.running_var")?;
        let per = c_in * kh * kw;
        let mut weight = Vec::with_capacity(w.len());
        let mut bias = Vec::with_capacity(c_out);
        for j in 0..c_out {
            let scale = f64::from(gamma[j]) / (f64::from(var[j]) + self.bn.epsilon).sqrt();
            weight.extend(
                w[j * per..(j + 1) * per]
                    .iter()
                    .map(|&v| (f64::from(v) * scale) as f32),
            );
            bias.push((f64::from(beta[j]) - f64::from(mean[j]) * scale) as f32);
        }
        Ok(FoldedKernel {
            dims: [c_out, c_in, kh, kw],
            weight,
            bias,
        })
    }

    /// This block as a hop of a path.
    pub fn hop(
        &self,
        input: TapId,
        original_input: TapId,
        output: Option<TapId>,
    ) -> Result<ConvHop> {
        ConvHop::from_burn(
            &self.conv,
            self.folded()?,
            input,
            original_input,
            output,
            "basic conv",
        )
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

/// Taps of one inception module, assigned when the model's description is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InceptionTaps {
    /// Output of the first two-hop branch's reduce layer (`branch2.0`).
    pub reduce3: TapId,
    /// Output of the second two-hop branch's reduce layer (`branch3.0`).
    pub reduce5: TapId,
    /// The pool branch's max-pooled input (`branch4.0`).
    pub pool: TapId,
    /// The module's output.
    pub output: TapId,
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

    /// Forward pass; when `ids` is given, hands the reduce outputs, the pooled input and the
    /// output to `sink` at their tap ids (and goes on with what it returns).
    pub fn forward(
        &self,
        x: Tensor<4>,
        ids: Option<&InceptionTaps>,
        sink: &mut dyn TapSink,
    ) -> Tensor<4> {
        let mut tap = |id: fn(&InceptionTaps) -> TapId, t: Tensor<4>| match ids {
            Some(ids) => sink.tap(id(ids), t),
            None => t,
        };
        let (b1, r3, r5, pooled) = match self.host_front(x) {
            Ok(front) => front,
            Err(x) => (
                self.branch1.forward(x.clone()),
                self.branch2_reduce.forward(x.clone()),
                self.branch3_reduce.forward(x.clone()),
                max_pool(x, 3, 1, 1, true),
            ),
        };
        let r3 = tap(|i| i.reduce3, r3);
        let b2 = self.branch2_conv.forward(r3);
        let r5 = tap(|i| i.reduce5, r5);
        let b3 = self.branch3_conv.forward(r5);
        let pooled = tap(|i| i.pool, pooled);
        let b4 = self.branch4_proj.forward(pooled);
        let parts = vec![b1, b2, b3, b4];
        let out = match cat_channels_host(&parts) {
            Some(out) => out,
            None => Tensor::cat(parts, 1),
        };
        tap(|i| i.output, out)
    }

    /// What the module computes from its input on burn's CPU device, with the input moved to
    /// the host once: the three 1×1 blocks that read it as one host convolution
    /// ([`HostConv::stack`]) and the pool branch's max pool. Returns `(branch1, reduce3,
    /// reduce5, pooled)`, the values of the blocks run one by one; gives `x` back where the
    /// host path does not apply.
    #[allow(clippy::result_large_err, clippy::type_complexity)] // the error is the input
    fn host_front(
        &self,
        x: Tensor<4>,
    ) -> std::result::Result<(Tensor<4>, Tensor<4>, Tensor<4>, Tensor<4>), Tensor<4>> {
        if !crate::conv::on_host(&x) {
            return Err(x);
        }
        let parts = [&self.branch1, &self.branch2_reduce, &self.branch3_reduce].map(|b| b.host());
        let [Some(a), Some(b), Some(c)] = parts else {
            return Err(x);
        };
        let (c1, c3, c5) = (a.shape.c_out, b.shape.c_out, c.shape.c_out);
        let Some(front) = HostConv::stack(&[a, b, c]) else {
            return Err(x);
        };
        let device = x.device();
        let dims = x.dims();
        let pool = MaxPoolOptions::new([3, 3])
            .with_stride([1, 1])
            .with_padding_pairs([(1, 1), (1, 1)])
            .with_ceil_mode(true);
        // read in place, however many hold the tensor (the module input is a tap)
        let host = crate::conv::with_values(&x, |xs| {
            let (f, [n, cf, h, w]) = front.run(xs, dims)?;
            let pooled = crate::pool::max_pool2d_host(xs, dims, &pool)?;
            Some((f, [n, cf, h, w], pooled))
        });
        let Some((f, [n, cf, h, w], (pooled, pd))) = host.flatten() else {
            return Err(x);
        };
        let hw = h * w;
        let t =
            |v: Vec<f32>, c: usize| Tensor::from_data(TensorData::new(v, [n, c, h, w]), &device);
        Ok((
            t(channels(&f, cf, hw, 0, c1), c1),
            t(channels(&f, cf, hw, c1, c3), c3),
            t(channels(&f, cf, hw, c1 + c3, c5), c5),
            Tensor::from_data(TensorData::new(pooled, pd), &device),
        ))
    }

    /// Registers the module's taps (reduce outputs, pooled input, output) in `taps`.
    pub fn register_taps(
        &self,
        prefix: &str,
        spec: &InceptionSpec,
        taps: &mut Vec<TapInfo>,
    ) -> InceptionTaps {
        let mut add = |name: String, channels: usize| {
            taps.push(TapInfo { name, channels });
            TapId(taps.len() - 1)
        };
        InceptionTaps {
            reduce3: add(format!("{prefix}.branch2.0"), spec.ch3x3red),
            reduce5: add(format!("{prefix}.branch3.0"), spec.ch5x5red),
            pool: add(format!("{prefix}.branch4.0"), spec.c_in),
            output: add(prefix.to_string(), spec.out_channels()),
        }
    }

    /// The module's four paths from its input. `input` is the tensor the module receives;
    /// `original_input` the one the original Summit code used in its place.
    pub fn paths(
        &self,
        prefix: &str,
        spec: &InceptionSpec,
        ids: &InceptionTaps,
        input: TapId,
        original_input: TapId,
    ) -> Result<Vec<ConvPath>> {
        let o2 = spec.ch1x1;
        let o3 = o2 + spec.ch3x3;
        let o4 = o3 + spec.ch5x5;
        Ok(vec![
            ConvPath {
                name: format!("{prefix}.branch1"),
                kind: PathKind::Direct,
                hops: vec![self.branch1.hop(input, original_input, None)?],
                out_offset: 0,
                out_channels: spec.ch1x1,
            },
            ConvPath {
                name: format!("{prefix}.branch2"),
                kind: PathKind::TwoHop,
                hops: vec![
                    self.branch2_reduce
                        .hop(input, original_input, Some(ids.reduce3))?,
                    self.branch2_conv.hop(ids.reduce3, ids.reduce3, None)?,
                ],
                out_offset: o2,
                out_channels: spec.ch3x3,
            },
            ConvPath {
                name: format!("{prefix}.branch3"),
                kind: PathKind::TwoHop,
                hops: vec![
                    self.branch3_reduce
                        .hop(input, original_input, Some(ids.reduce5))?,
                    self.branch3_conv.hop(ids.reduce5, ids.reduce5, None)?,
                ],
                out_offset: o3,
                out_channels: spec.ch5x5,
            },
            ConvPath {
                name: format!("{prefix}.branch4"),
                kind: PathKind::Pool,
                hops: vec![self.branch4_proj.hop(ids.pool, original_input, None)?],
                out_offset: o4,
                out_channels: spec.pool_proj,
            },
        ])
    }
}

fn unreachable_err(prefix: &str) -> crate::error::ModelError {
    crate::error::ModelError::Data {
        what: prefix.to_string(),
        reason: "internal: branch count mismatch".into(),
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Deterministic values in about −2…2, with exact zeros and signed zeros.
    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match i % 17 {
                    0 => 0.0,
                    1 => -0.0,
                    _ => ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0,
                }
            })
            .collect()
    }

    fn t1(v: Vec<f32>, device: &Device) -> Tensor<1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), device)
    }

    /// The one-pass batch norm + ReLU of inference, alone and fused into the host
    /// convolution's output pass, is bit-identical to burn's `batch_norm` then `relu`, for
    /// 1×1, 3×3 and strided convolutions and odd planes.
    #[test]
    fn fused_batch_norm_relu_is_burns_bit_for_bit() {
        let device = Device::flex();
        let (mut zeros, mut positive) = (0usize, 0usize);
        for (k, (c_in, c_out, kernel, stride, hw, n)) in [
            (3, 5, 1, 1, 7, 2),
            (4, 6, 3, 1, 9, 3),
            (2, 3, 5, 2, 11, 1),
            (5, 1, 3, 1, 1, 4),
        ]
        .into_iter()
        .enumerate()
        {
            let spec = ConvSpec {
                c_in,
                c_out,
                kernel,
                stride,
                padding: kernel / 2,
            };
            let mut block = BasicConv2d::init(spec, 1e-3, &device);
            let seed = k as u64 * 10;
            block.bn.gamma = Param::from_tensor(t1(values(c_out, seed + 1), &device));
            block.bn.beta = Param::from_tensor(t1(values(c_out, seed + 2), &device));
            block.bn.running_mean = RunningState::new(t1(values(c_out, seed + 3), &device));
            let var: Vec<f32> = values(c_out, seed + 4).iter().map(|v| v.abs()).collect();
            block.bn.running_var = RunningState::new(t1(var, &device));
            let x = Tensor::<4>::from_data(
                TensorData::new(values(n * c_in * hw * hw, seed + 5), [n, c_in, hw, hw]),
                &device,
            );
            let bn_relu = |y: Tensor<4>| burn::tensor::activation::relu(block.bn.forward(y));
            // burn's convolution, then our one-pass batch norm + ReLU
            let fused = block.bn_relu(block.conv_forward(x.clone()));
            let burn = bn_relu(block.conv.forward(x.clone()));
            // the whole block: at stride 1 the host convolution with batch norm + ReLU in
            // its output pass, against burn's batch norm + ReLU of the host convolution's
            // sums; strided, the host columns times the weights (`im2col`), then the same
            let whole = block.forward(x.clone());
            let sums = if stride == 1 {
                let dims = x.dims();
                let xs = to_host(x, "x").unwrap();
                let w = to_host(block.conv.weight.val(), "w").unwrap();
                let p = kernel / 2;
                let shape = crate::conv::ConvShape {
                    c_in,
                    c_out,
                    kh: kernel,
                    kw: kernel,
                    pad: [p; 4],
                };
                let zero = vec![0.0f32; c_out];
                let epi = crate::conv::Epilogue::Bias(&zero);
                let (v, d) = crate::conv::conv2d(&xs, dims, &w, &shape, epi).unwrap();
                Tensor::<4>::from_data(TensorData::new(v, d), &device)
            } else {
                let p = kernel / 2;
                let u = crate::im2col::Unfold {
                    kh: kernel,
                    kw: kernel,
                    stride: [stride, stride],
                    pad: [p; 4],
                };
                crate::im2col::conv2d(&x, &block.conv.weight.val(), &u).unwrap()
            };
            let reference = bn_relu(sums);
            for (what, ours, theirs) in [("bn_relu", fused, burn), ("forward", whole, reference)] {
                assert_eq!(ours.dims(), theirs.dims());
                let a = to_host(ours, "ours").unwrap();
                let b = to_host(theirs, "burn").unwrap();
                zeros += a.iter().filter(|&&v| v == 0.0).count();
                positive += a.iter().filter(|&&v| v > 0.0).count();
                for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                    assert_eq!(
                        x.to_bits(),
                        y.to_bits(),
                        "{what}, case {k}, element {i}: {x} vs {y}"
                    );
                }
            }
        }
        // both sides of the ReLU were exercised
        assert!(
            zeros > 0 && positive > 0,
            "{zeros} zeros, {positive} positive"
        );
    }
}
