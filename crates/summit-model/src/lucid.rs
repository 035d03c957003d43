//! InceptionV1 as Lucid defines it — the Caffe-trained GoogLeNet distributed by TensorFlow as
//! the "inception5h" graph, the model the original Summit analysed — exactly as the PyTorch
//! port in `torch-lucent` 0.1.8 (`lucent.modelzoo.inceptionv1.InceptionV1`) writes it:
//!
//! - convolutions with biases and no batch norm, each followed by a ReLU;
//! - the stem `conv2d0` (7×7, stride 2, zero padding 2 top/left and 3 bottom/right),
//!   `maxpool0` (3×3, stride 2, −∞ padding 1 bottom/right), local response normalisation
//!   (size 9, α = 9.99999974738e-5, β = 0.5, k = 1, PyTorch's `F.local_response_norm`
//!   semantics: α is divided by the window size), `conv2d1` (1×1), `conv2d2` (3×3, padding 1),
//!   LRN, `maxpool1` (as `maxpool0`);
//! - nine mixed layers with real 5×5 kernels, branch widths of the Caffe model (`mixed4a` has
//!   508 channels: its 3×3 branch has 204), a pool branch of 3×3 stride-1 max pool (−∞
//!   padding 1) and a 1×1 `pool_reduce`; stage max pools `maxpool4` (after `mixed3b`) and
//!   `maxpool10` (after `mixed4e`) as `maxpool0`;
//! - a 7×7 average pool and the 1008-way `softmax2_pre_activation_matmul` classifier (the
//!   recorded logits are its pre-softmax scores; lucent's `forward` returns their softmax).
//!
//! State-dict keys are lucent's (`conv2d0_pre_relu_conv.weight`,
//! `mixed3a_3x3_bottleneck_pre_relu_conv.bias`, `softmax2_pre_activation_matmul.weight`, ...),
//! which are also those of ProGamerGov's converted `inception5h.pth`.
//!
//! Input: `[B, 3, 224, 224]` in Lucid's value range: the model's own preprocessing is
//! `pixel − 117` for pixels in `0..=255` ([`LUCID_PIXEL_SCALE`], [`LUCID_PIXEL_OFFSET`]; lucent's
//! `preprocess_inceptionv1`). The original Summit code fed `2·pixel − 372` instead (SPEC §6,
//! the `summit2019` preset; see `docs/presets.md`).

use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};

use crate::blocks::InceptionSpec;
use crate::describe::{ModelDescription, Summarizable, TapId, TapSink, to_host};
use crate::error::{ModelError, Result};
use crate::weights::StateDict;

/// Window size (channels) of Lucid InceptionV1's local response normalisation.
pub const LUCID_LRN_SIZE: usize = 9;
/// α of Lucid InceptionV1's local response normalisation (as lucent writes it).
pub const LUCID_LRN_ALPHA: f64 = 9.99999974738e-05;
/// β of Lucid InceptionV1's local response normalisation.
pub const LUCID_LRN_BETA: f64 = 0.5;
/// k of Lucid InceptionV1's local response normalisation.
pub const LUCID_LRN_K: f64 = 1.0;
/// Scale of the model's own input mapping `value = scale·pixel + offset` (pixels in 0..=255):
/// Lucid's `image_value_range` (−117, 138), lucent's `preprocess_inceptionv1`.
pub const LUCID_PIXEL_SCALE: f32 = 1.0;
/// Offset of the model's own input mapping (`pixel − 117`).
pub const LUCID_PIXEL_OFFSET: f32 = -117.0;
/// Number of classes of the pretrained Lucid/Caffe head (1000 ImageNet classes plus 8 unused).
pub const LUCID_NUM_CLASSES: usize = 1008;

/// The name [`LucidInceptionV1`] describes itself by (its [`ModelDescription::name`]).
///
/// [`ModelDescription::name`]: crate::ModelDescription::name
pub const LUCID_MODEL_NAME: &str = "inceptionv1 (lucid)";

/// The channels Summit (2019) excluded from Lucid InceptionV1's graphs, by summary layer: the
/// channels that fire for nearly every class (its `summit2019` preset; SPEC §6).
pub const LUCID_SUMMIT2019_EXCLUSIONS: [(&str, &[usize]); 2] =
    [("mixed3a", &[67, 190]), ("mixed3b", &[390, 399, 412])];

/// The nine mixed layers: (name, spec). Widths are those of the Caffe model; the "5×5"
/// branches have real 5×5 kernels.
pub const LUCID_MODULES: [(&str, InceptionSpec); 9] = [
    ("mixed3a", spec(192, 64, 96, 128, 16, 32, 32)),
    ("mixed3b", spec(256, 128, 128, 192, 32, 96, 64)),
    ("mixed4a", spec(480, 192, 96, 204, 16, 48, 64)),
    ("mixed4b", spec(508, 160, 112, 224, 24, 64, 64)),
    ("mixed4c", spec(512, 128, 128, 256, 24, 64, 64)),
    ("mixed4d", spec(512, 112, 144, 288, 32, 64, 64)),
    ("mixed4e", spec(528, 256, 160, 320, 32, 128, 128)),
    ("mixed5a", spec(832, 256, 160, 320, 48, 128, 128)),
    ("mixed5b", spec(832, 384, 192, 384, 48, 128, 128)),
];

const fn spec(
    c_in: usize,
    ch1x1: usize,
    ch3x3red: usize,
    ch3x3: usize,
    ch5x5red: usize,
    ch5x5: usize,
    pool_proj: usize,
) -> InceptionSpec {
    InceptionSpec {
        c_in,
        ch1x1,
        ch3x3red,
        ch3x3,
        k3: 3,
        ch5x5red,
        ch5x5,
        k5: 5,
        pool_proj,
    }
}

/// PyTorch's `F.local_response_norm(x, size, alpha, beta, k)` on `[B, C, H, W]`:
/// `x_c / (k + alpha/size · Σ_{c' ∈ [c − size/2, c + (size−1)/2]} x_{c'}²)^beta`, channels
/// outside `0..C` counting as zero.
pub fn local_response_norm(x: Tensor<4>, size: usize, alpha: f64, beta: f64, k: f64) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let sq = x.clone().powi_scalar(2);
    let before = size / 2;
    let after = (size - 1) / 2;
    let padded = Tensor::cat(
        vec![
            Tensor::zeros([b, before, h, w], &device),
            sq,
            Tensor::zeros([b, after, h, w], &device),
        ],
        1,
    );
    let mut sum = padded.clone().narrow(1, 0, c);
    for d in 1..size {
        sum = sum + padded.clone().narrow(1, d, c);
    }
    let div = sum
        .mul_scalar(alpha / size as f64)
        .add_scalar(k)
        .powf_scalar(beta);
    x / div
}

/// A convolution with bias and its ReLU, as lucent's `*_pre_relu_conv` followed by a ReLU
/// layer.
fn conv(
    sd: &mut StateDict,
    key: &str,
    [c_in, c_out, kernel]: [usize; 3],
    stride: usize,
    padding: [usize; 4],
    device: &Device,
) -> Result<Conv2d> {
    let [top, left, bottom, right] = padding;
    let mut c = Conv2dConfig::new([c_in, c_out], [kernel, kernel])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(top, left, bottom, right))
        .with_bias(true)
        .init(device);
    let w = sd.take(&format!("{key}.weight"), &[c_out, c_in, kernel, kernel])?;
    let b = sd.take(&format!("{key}.bias"), &[c_out])?;
    c.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w.data, w.shape), device));
    c.bias = Some(Param::from_tensor(Tensor::from_data(
        TensorData::new(b.data, b.shape),
        device,
    )));
    Ok(c)
}

/// A same-padded stride-1 convolution (padding `kernel / 2` on every side).
fn same_conv(sd: &mut StateDict, key: &str, dims: [usize; 3], device: &Device) -> Result<Conv2d> {
    let p = dims[2] / 2;
    conv(sd, key, dims, 1, [p, p, p, p], device)
}

/// One mixed layer of Lucid's InceptionV1: `1x1`, `3x3_bottleneck` → `3x3`,
/// `5x5_bottleneck` → `5x5`, `pool` (3×3 max pool, stride 1) → `pool_reduce`, concatenated in
/// that order; every convolution has a bias and a ReLU.
#[derive(Module, Debug)]
pub struct LucidMixed {
    /// `{name}_1x1_pre_relu_conv`.
    pub conv_1x1: Conv2d,
    /// `{name}_3x3_bottleneck_pre_relu_conv`.
    pub conv_3x3_bottleneck: Conv2d,
    /// `{name}_3x3_pre_relu_conv`.
    pub conv_3x3: Conv2d,
    /// `{name}_5x5_bottleneck_pre_relu_conv`.
    pub conv_5x5_bottleneck: Conv2d,
    /// `{name}_5x5_pre_relu_conv`.
    pub conv_5x5: Conv2d,
    /// `{name}_pool_reduce_pre_relu_conv`.
    pub pool_reduce: Conv2d,
}

impl LucidMixed {
    fn load(sd: &mut StateDict, name: &str, s: &InceptionSpec, device: &Device) -> Result<Self> {
        let mut c = |suffix: &str, dims: [usize; 3]| {
            same_conv(sd, &format!("{name}_{suffix}_pre_relu_conv"), dims, device)
        };
        Ok(Self {
            conv_1x1: c("1x1", [s.c_in, s.ch1x1, 1])?,
            conv_3x3_bottleneck: c("3x3_bottleneck", [s.c_in, s.ch3x3red, 1])?,
            conv_3x3: c("3x3", [s.ch3x3red, s.ch3x3, s.k3])?,
            conv_5x5_bottleneck: c("5x5_bottleneck", [s.c_in, s.ch5x5red, 1])?,
            conv_5x5: c("5x5", [s.ch5x5red, s.ch5x5, s.k5])?,
            pool_reduce: c("pool_reduce", [s.c_in, s.pool_proj, 1])?,
        })
    }
}

/// The burn module of Lucid's InceptionV1.
#[derive(Module, Debug)]
pub struct LucidNet {
    /// `conv2d0_pre_relu_conv`: 7×7, stride 2, padding (2, 3) per axis.
    pub conv2d0: Conv2d,
    /// `conv2d1_pre_relu_conv`: 1×1.
    pub conv2d1: Conv2d,
    /// `conv2d2_pre_relu_conv`: 3×3, padding 1.
    pub conv2d2: Conv2d,
    /// `mixed3a` … `mixed5b`.
    pub mixed: Vec<LucidMixed>,
    /// `softmax2_pre_activation_matmul`.
    pub head: Linear,
}

/// Lucid's InceptionV1 (torch-lucent's port of the "inception5h" graph) ready for Summit.
///
/// Its description has the nine summary layers `mixed3a` … `mixed5b` (256, 480, 508, 512, 512,
/// 528, 832, 832, 1024 channels) and these taps: `conv2d2` (the stem output after its ReLU,
/// before LRN and `maxpool1`), `maxpool1`, `maxpool4`, `maxpool10` (the stage max pools), and
/// for each mixed layer `{name}_3x3_bottleneck`, `{name}_5x5_bottleneck` (reduce outputs after
/// ReLU), `{name}_pool` (the pool branch's max-pooled input) and `{name}` (the concatenated
/// output). Hop inputs: the tensor each convolution receives (`maxpool1` for `mixed3a`,
/// `maxpool4` for `mixed4a`, `maxpool10` for `mixed5a`, `{name}_pool` for the pool branch);
/// original inputs (`summit2019`): `conv2d2`, `mixed3b`, `mixed4e` before the stage pools and
/// the previous layer itself for the pool branch.
///
/// Its weights are built into the model graph that runs and describes every model
/// ([`crate::OnnxModel`], the one runtime).
#[derive(Debug)]
pub struct LucidInceptionV1 {
    graph: crate::OnnxModel,
    weights_hash: String,
}

/// A biased convolution and its ReLU in a model graph: `{path}` (the convolution, named as
/// lucent's module) then `{path}.relu`, whose output value is `value` (a tap's name) or
/// `{path}.relu`.
fn conv_to_graph(
    g: &mut crate::onnx::build::GraphBuilder,
    path: &str,
    x: &str,
    c: &Conv2d,
    stride: usize,
    pads: [usize; 4],
    value: Option<&str>,
) -> Result<String> {
    let w =
        crate::weights::HostTensor::new(c.weight.dims().to_vec(), to_host(c.weight.val(), path)?);
    let b = match &c.bias {
        Some(b) => Some(crate::weights::HostTensor::new(
            b.dims().to_vec(),
            to_host(b.val(), path)?,
        )),
        None => None,
    };
    let y = g.conv_padded(path, x, &w, b.as_ref(), stride, pads, 1)?;
    let relu = format!("{path}.relu");
    Ok(g.relu_as(&relu, value.unwrap_or(&relu), &y))
}

impl LucidMixed {
    /// The mixed layer in a model graph under `name` (lucent's module names
    /// `{name}_1x1_pre_relu_conv`, …); its concatenated output is the value `name`.
    fn to_graph(
        &self,
        g: &mut crate::onnx::build::GraphBuilder,
        name: &str,
        x: &str,
        s: &InceptionSpec,
    ) -> Result<String> {
        let same = |k: usize| [k / 2; 4];
        let path = |suffix: &str| format!("{name}_{suffix}_pre_relu_conv");
        let b1 = conv_to_graph(g, &path("1x1"), x, &self.conv_1x1, 1, same(1), None)?;
        let r3 = conv_to_graph(
            g,
            &path("3x3_bottleneck"),
            x,
            &self.conv_3x3_bottleneck,
            1,
            same(1),
            Some(&format!("{name}_3x3_bottleneck")),
        )?;
        let b2 = conv_to_graph(g, &path("3x3"), &r3, &self.conv_3x3, 1, same(s.k3), None)?;
        let r5 = conv_to_graph(
            g,
            &path("5x5_bottleneck"),
            x,
            &self.conv_5x5_bottleneck,
            1,
            same(1),
            Some(&format!("{name}_5x5_bottleneck")),
        )?;
        let b3 = conv_to_graph(g, &path("5x5"), &r5, &self.conv_5x5, 1, same(s.k5), None)?;
        let p = g.max_pool(&format!("{name}_pool"), x, 3, 1, 1, false);
        let b4 = conv_to_graph(
            g,
            &path("pool_reduce"),
            &p,
            &self.pool_reduce,
            1,
            same(1),
            None,
        )?;
        Ok(g.concat(name, &[b1, b2, b3, b4]))
    }
}

impl LucidInceptionV1 {
    /// The network as a model graph (local response normalisation as ONNX `LRN` nodes, the
    /// head's 7×7 average pool as a global one) and its output value.
    fn graph_builder(net: &LucidNet) -> Result<(crate::onnx::build::GraphBuilder, String)> {
        use crate::onnx::build::GraphBuilder;
        let n = net;
        let mut g = GraphBuilder::new(3, [224, 224]);
        let lrn = |g: &mut GraphBuilder, path: &str, x: &str| {
            g.lrn(
                path,
                x,
                LUCID_LRN_SIZE,
                LUCID_LRN_ALPHA,
                LUCID_LRN_BETA,
                LUCID_LRN_K,
            )
        };
        let stage = [0, 0, 1, 1];
        let mut x = g.input();
        x = conv_to_graph(
            &mut g,
            "conv2d0_pre_relu_conv",
            &x,
            &n.conv2d0,
            2,
            [2, 2, 3, 3],
            None,
        )?;
        x = g.max_pool_padded("maxpool0", &x, 3, 2, stage, false);
        x = lrn(&mut g, "localresponsenorm0", &x);
        x = conv_to_graph(
            &mut g,
            "conv2d1_pre_relu_conv",
            &x,
            &n.conv2d1,
            1,
            [0; 4],
            None,
        )?;
        x = conv_to_graph(
            &mut g,
            "conv2d2_pre_relu_conv",
            &x,
            &n.conv2d2,
            1,
            [1; 4],
            Some("conv2d2"),
        )?;
        x = lrn(&mut g, "localresponsenorm1", &x);
        x = g.max_pool_padded("maxpool1", &x, 3, 2, stage, false);
        for (idx, (m, (name, spec))) in n.mixed.iter().zip(LUCID_MODULES).enumerate() {
            if idx == 2 {
                x = g.max_pool_padded("maxpool4", &x, 3, 2, stage, false);
            } else if idx == 7 {
                x = g.max_pool_padded("maxpool10", &x, 3, 2, stage, false);
            }
            x = m.to_graph(&mut g, name, &x, &spec)?;
        }
        x = g.global_average_pool("avgpool0", &x);
        x = g.flatten("flatten", &x);
        x = g.linear("softmax2_pre_activation_matmul", &x, &n.head)?;
        Ok((g, x))
    }
}

impl LucidInceptionV1 {
    /// Loads a torch-lucent state dict (`torch.save(InceptionV1().state_dict(), f)`, such as
    /// ProGamerGov's converted `inception5h.pth`) from a `.pth`/`.pt` or `.safetensors` file.
    /// Any missing or unexpected key, or a mismatched shape, is an error naming it. The number
    /// of classes is read from `softmax2_pre_activation_matmul.weight` (1008 for the
    /// pretrained model).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let mut sd = StateDict::load(path)?;
        Self::from_state_dict(&mut sd, device)
    }

    /// Builds the model from an already read state dict.
    pub fn from_state_dict(sd: &mut StateDict, device: &Device) -> Result<Self> {
        let conv2d0 = conv(
            sd,
            "conv2d0_pre_relu_conv",
            [3, 64, 7],
            2,
            [2, 2, 3, 3],
            device,
        )?;
        let conv2d1 = same_conv(sd, "conv2d1_pre_relu_conv", [64, 64, 1], device)?;
        let conv2d2 = same_conv(sd, "conv2d2_pre_relu_conv", [64, 192, 3], device)?;
        let mut mixed = Vec::with_capacity(9);
        for (name, s) in &LUCID_MODULES {
            mixed.push(LucidMixed::load(sd, name, s, device)?);
        }
        const HEAD: &str = "softmax2_pre_activation_matmul";
        let wkey = format!("{HEAD}.weight");
        let head_shape =
            sd.get(&wkey)
                .map(|t| t.shape.clone())
                .ok_or_else(|| ModelError::MissingKey {
                    path: sd.path().to_path_buf(),
                    key: wkey.clone(),
                })?;
        let num_classes = match head_shape.as_slice() {
            [n, 1024] if *n > 0 => *n,
            _ => {
                return Err(ModelError::Shape {
                    path: sd.path().to_path_buf(),
                    key: wkey,
                    expected: vec![LUCID_NUM_CLASSES, 1024],
                    got: head_shape,
                });
            }
        };
        let w = sd.take(&wkey, &[num_classes, 1024])?;
        let b = sd.take(&format!("{HEAD}.bias"), &[num_classes])?;
        let mut head = LinearConfig::new(1024, num_classes).init(device);
        // burn's Linear stores [in, out]: transpose PyTorch's [out, in].
        let wt = Tensor::<2>::from_data(TensorData::new(w.data, [num_classes, 1024]), device)
            .transpose();
        head.weight = Param::from_tensor(wt);
        head.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b.data, [num_classes]),
            device,
        )));
        sd.finish(|_| false)?;
        let net = LucidNet {
            conv2d0,
            conv2d1,
            conv2d2,
            mixed,
            head,
        };
        Self::new(net, num_classes, device)
    }

    fn new(net: LucidNet, _num_classes: usize, device: &Device) -> Result<Self> {
        let (g, x) = Self::graph_builder(&net)?;
        let modules: Vec<(&str, Option<&str>)> =
            LUCID_MODULES.iter().map(|(m, _)| (*m, None)).collect();
        let labels = crate::blocks::inception_labels(LUCID_MODEL_NAME, &modules, |m| {
            ["1x1", "3x3", "5x5", "pool"].map(|b| format!("{m}_{b}"))
        });
        let graph = g.finish_described(&x, &labels, device)?;
        Ok(Self {
            weights_hash: crate::identity::weights_hash(&net)?,
            graph,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.graph.device()
    }

    /// The spatial size of `mixed5b` for an `h`-pixel input side (7 for 224).
    fn final_side(h: usize) -> usize {
        // conv2d0 (pad 2+3, k7, s2) then four stage pools (pad 0+1, k3, s2).
        let mut s = (h + 5).saturating_sub(7) / 2 + 1;
        for _ in 0..4 {
            s = (s + 1).saturating_sub(3) / 2 + 1;
        }
        s
    }

    fn check_input(&self, x: &Tensor<4>) -> Result<()> {
        let d = x.dims();
        // Lucent's head is a 7×7 average pool with stride 1 reshaped to [-1, 1024]: only a
        // 7×7 `mixed5b` gives one row per image.
        if d[1] != 3 || Self::final_side(d[2]) != 7 || Self::final_side(d[3]) != 7 {
            return Err(ModelError::Input {
                got: d.to_vec(),
                expected: "[B, 3, H, W] with a 7×7 mixed5b, i.e. H, W in 224..=255 \
                           (224×224 for ImageNet), values in Lucid's range (pixel − 117)"
                    .into(),
            });
        }
        Ok(())
    }
}

impl Summarizable for LucidInceptionV1 {
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
        Ok(self.weights_hash.clone())
    }

    /// Runs the graph up to the tap only, on images of any height and width >= 32.
    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        let d = images.dims();
        if d[1] != 3 || d[2] < 32 || d[3] < 32 {
            return Err(ModelError::Input {
                got: d.to_vec(),
                expected: "[B, 3, H, W] with H, W >= 32 in Lucid's range (pixel − 117)".into(),
            });
        }
        self.graph.forward_to(images, tap)
    }

    fn accepts_any_size(&self) -> bool {
        true
    }
}
