//! InceptionV1 exactly as torchvision's `googlenet` defines it (batch norm with eps 1e-3, max
//! pools with `ceil_mode`, the `transform_input` option, and "5×5" branches that really have
//! 3×3 kernels), loaded from a torchvision state dict.

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};

use crate::blocks::{BasicConv2d, ConvSpec, Inception, InceptionSpec};
use crate::describe::{ModelDescription, Summarizable, TapSink};
use crate::error::{ModelError, Result};
use crate::weights::{HostTensor, StateDict};

/// Batch norm epsilon of torchvision's GoogLeNet (not stored in the weights file).
pub const GOOGLENET_BN_EPS: f64 = 1e-3;

/// The nine inception modules: (torchvision name, paper name, spec).
pub const GOOGLENET_MODULES: [(&str, &str, InceptionSpec); 9] = [
    ("inception3a", "mixed3a", spec(192, 64, 96, 128, 16, 32, 32)),
    (
        "inception3b",
        "mixed3b",
        spec(256, 128, 128, 192, 32, 96, 64),
    ),
    (
        "inception4a",
        "mixed4a",
        spec(480, 192, 96, 208, 16, 48, 64),
    ),
    (
        "inception4b",
        "mixed4b",
        spec(512, 160, 112, 224, 24, 64, 64),
    ),
    (
        "inception4c",
        "mixed4c",
        spec(512, 128, 128, 256, 24, 64, 64),
    ),
    (
        "inception4d",
        "mixed4d",
        spec(512, 112, 144, 288, 32, 64, 64),
    ),
    (
        "inception4e",
        "mixed4e",
        spec(528, 256, 160, 320, 32, 128, 128),
    ),
    (
        "inception5a",
        "mixed5a",
        spec(832, 256, 160, 320, 32, 128, 128),
    ),
    (
        "inception5b",
        "mixed5b",
        spec(832, 384, 192, 384, 48, 128, 128),
    ),
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
        k5: 3,
        pool_proj,
    }
}

/// The stem's convolutions (torchvision key prefix, shape): conv1 7×7 stride 2, conv2 1×1,
/// conv3 3×3.
fn stem_specs() -> [(&'static str, ConvSpec); 3] {
    [
        (
            "conv1",
            ConvSpec {
                c_in: 3,
                c_out: 64,
                kernel: 7,
                stride: 2,
                padding: 3,
            },
        ),
        ("conv2", ConvSpec::same(64, 64, 1)),
        ("conv3", ConvSpec::same(64, 192, 3)),
    ]
}

/// Options of [`GoogLeNet::load`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GoogLeNetOptions {
    /// torchvision's `transform_input`: map ImageNet-normalised inputs to the (x − 0.5) / 0.5
    /// range the original weights were trained with. `True` for torchvision's pretrained
    /// weights, `False` for `googlenet(weights=None)`.
    pub transform_input: bool,
}

/// The burn module of torchvision's GoogLeNet.
#[derive(Module, Debug)]
pub struct GoogLeNetNet {
    conv1: BasicConv2d,
    conv2: BasicConv2d,
    conv3: BasicConv2d,
    inception: Vec<Inception>,
    fc: Linear,
}

/// torchvision's GoogLeNet (InceptionV1) ready for Summit: its state dict built into the model
/// graph that runs and describes every model ([`crate::OnnxModel`], the one runtime).
#[derive(Debug)]
pub struct GoogLeNet {
    options: GoogLeNetOptions,
    graph: crate::OnnxModel,
    weights_hash: String,
}

impl GoogLeNet {
    /// Loads a torchvision state dict (`.pth` saved by `torch.save(model.state_dict(), f)`, or
    /// `.safetensors`). `aux1.*`/`aux2.*` keys are ignored; any other missing or unexpected key,
    /// or a mismatched shape, is an error naming it. The number of classes is read from
    /// `fc.weight`.
    pub fn load(
        path: impl AsRef<Path>,
        options: GoogLeNetOptions,
        device: &Device,
    ) -> Result<Self> {
        let mut sd = StateDict::load(path)?;
        Self::from_state_dict(&mut sd, options, device)
    }

    /// torchvision's GoogLeNet with seeded pseudo-random weights and `num_classes` outputs,
    /// for tests, benches and scale runs without a weights file: He-uniform convolutions,
    /// randomised batch-norm statistics (scale and variance in `[0.5, 1.5)`, shift and mean in
    /// `[−0.2, 0.2)`), a uniform classifier. The same seed gives the same weights.
    ///
    /// ```
    /// use summit_model::{GoogLeNet, GoogLeNetOptions, Summarizable};
    /// use burn::tensor::Device;
    /// let m = GoogLeNet::seeded(10, 7, GoogLeNetOptions::default(), &Device::flex())?;
    /// assert_eq!(m.description().num_classes, 10);
    /// assert_eq!(m.description().layers.len(), 9);
    /// # Ok::<(), summit_model::ModelError>(())
    /// ```
    pub fn seeded(
        num_classes: usize,
        seed: u64,
        options: GoogLeNetOptions,
        device: &Device,
    ) -> Result<Self> {
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // SplitMix64
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        };
        let mut uniform = |n: usize, lo: f32, hi: f32| -> Vec<f32> {
            (0..n).map(|_| lo + (hi - lo) * next()).collect()
        };
        let mut tensors = BTreeMap::new();
        let mut block = |prefix: &str, s: ConvSpec| {
            let fan_in = s.c_in * s.kernel * s.kernel;
            let bound = (6.0 / fan_in as f32).sqrt();
            let shape = vec![s.c_out, s.c_in, s.kernel, s.kernel];
            let n = shape.iter().product();
            tensors.insert(
                format!("{prefix}.conv.weight"),
                HostTensor::new(shape, uniform(n, -bound, bound)),
            );
            for (key, lo, hi) in [
                ("weight", 0.5, 1.5),
                ("bias", -0.2, 0.2),
                ("running_mean", -0.2, 0.2),
                ("running_var", 0.5, 1.5),
            ] {
                tensors.insert(
                    format!("{prefix}.bn.{key}"),
                    HostTensor::new(vec![s.c_out], uniform(s.c_out, lo, hi)),
                );
            }
        };
        for (name, cs) in stem_specs() {
            block(name, cs);
        }
        for (name, _, s) in &GOOGLENET_MODULES {
            for (key, cs) in Inception::KEYS.iter().zip(Inception::specs(s)) {
                block(&format!("{name}.{key}"), cs);
            }
        }
        let bound = 1.0 / 1024f32.sqrt();
        tensors.insert(
            "fc.weight".into(),
            HostTensor::new(
                vec![num_classes, 1024],
                uniform(num_classes * 1024, -bound, bound),
            ),
        );
        tensors.insert(
            "fc.bias".into(),
            HostTensor::new(vec![num_classes], uniform(num_classes, -bound, bound)),
        );
        let mut sd = StateDict::from_tensors(format!("<seeded googlenet {seed}>"), tensors);
        Self::from_state_dict(&mut sd, options, device)
    }

    /// Builds the model from an already read state dict.
    pub fn from_state_dict(
        sd: &mut StateDict,
        options: GoogLeNetOptions,
        device: &Device,
    ) -> Result<Self> {
        let eps = GOOGLENET_BN_EPS;
        let [(n1, s1), (n2, s2), (n3, s3)] = stem_specs();
        let conv1 = BasicConv2d::load(sd, n1, s1, eps, device)?;
        let conv2 = BasicConv2d::load(sd, n2, s2, eps, device)?;
        let conv3 = BasicConv2d::load(sd, n3, s3, eps, device)?;
        let mut inception = Vec::with_capacity(9);
        for (name, _, s) in &GOOGLENET_MODULES {
            inception.push(Inception::load(sd, name, s, eps, device)?);
        }
        let fc_shape = sd
            .get("fc.weight")
            .map(|t| t.shape.clone())
            .ok_or_else(|| ModelError::MissingKey {
                path: sd.path().to_path_buf(),
                key: "fc.weight".into(),
            })?;
        let num_classes = match fc_shape.as_slice() {
            [n, 1024] => *n,
            _ => {
                return Err(ModelError::Shape {
                    path: sd.path().to_path_buf(),
                    key: "fc.weight".into(),
                    expected: vec![0, 1024],
                    got: fc_shape,
                });
            }
        };
        let w = sd.take("fc.weight", &[num_classes, 1024])?;
        let b = sd.take("fc.bias", &[num_classes])?;
        let mut fc = LinearConfig::new(1024, num_classes).init(device);
        // burn's Linear stores [in, out]: transpose torchvision's [out, in].
        let wt = Tensor::<2>::from_data(TensorData::new(w.data, [num_classes, 1024]), device)
            .transpose();
        fc.weight = Param::from_tensor(wt);
        fc.bias = Some(Param::from_tensor(Tensor::from_data(
            TensorData::new(b.data, [num_classes]),
            device,
        )));
        sd.finish(|k| k.starts_with("aux1.") || k.starts_with("aux2."))?;
        let net = GoogLeNetNet {
            conv1,
            conv2,
            conv3,
            inception,
            fc,
        };
        Self::new(net, options, num_classes, device)
    }

    fn new(
        net: GoogLeNetNet,
        options: GoogLeNetOptions,
        _num_classes: usize,
        device: &Device,
    ) -> Result<Self> {
        let (g, x) = Self::graph_builder(&net, options)?;
        let modules: Vec<(&str, Option<&str>)> = GOOGLENET_MODULES
            .iter()
            .map(|(m, alias, _)| (*m, Some(*alias)))
            .collect();
        let labels = crate::blocks::inception_labels("googlenet (torchvision)", &modules, |m| {
            ["branch1", "branch2", "branch3", "branch4"].map(|b| format!("{m}.{b}"))
        });
        let graph = g.finish_described(&x, &labels, device)?;
        let weights_hash = crate::identity::extend_hash(
            &crate::identity::weights_hash(&net)?,
            &[u8::from(options.transform_input)],
        );
        Ok(Self {
            options,
            graph,
            weights_hash,
        })
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.graph.device()
    }

    /// The options the model was built with.
    pub fn options(&self) -> GoogLeNetOptions {
        self.options
    }

    fn check_input(&self, x: &Tensor<4>) -> Result<()> {
        let d = x.dims();
        if d[1] != 3 || d[2] < 32 || d[3] < 32 {
            return Err(ModelError::Input {
                got: d.to_vec(),
                expected: "[B, 3, H, W] with H, W >= 32 (224 for ImageNet)".into(),
            });
        }
        Ok(())
    }
}

impl GoogLeNet {
    /// The network as a model graph (batch norm as its own nodes; `transform_input` as a
    /// per-channel affine map, a batch norm of unit variance) and its output value.
    fn graph_builder(
        net: &GoogLeNetNet,
        options: GoogLeNetOptions,
    ) -> Result<(crate::onnx::build::GraphBuilder, String)> {
        use crate::onnx::build::GraphBuilder;
        let mut g = GraphBuilder::new(3, [224, 224]);
        let mut x = g.input();
        if options.transform_input {
            let a = [0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5];
            let b = [
                (0.485 - 0.5) / 0.5,
                (0.456 - 0.5) / 0.5,
                (0.406 - 0.5) / 0.5,
            ];
            let t = |v: [f32; 3]| HostTensor::new(vec![3], v.to_vec());
            x = g.batch_norm(
                "transform_input",
                &x,
                &t(a),
                &t(b),
                &t([0.0; 3]),
                &t([1.0; 3]),
                0.0,
            )?;
        }
        let n = net;
        let [s1, s2, s3] = stem_specs().map(|(_, s)| s);
        x = n.conv1.to_graph(&mut g, "conv1", &x, s1)?;
        x = g.max_pool("maxpool1", &x, 3, 2, 0, true);
        x = n.conv2.to_graph(&mut g, "conv2", &x, s2)?;
        x = n.conv3.to_graph(&mut g, "conv3", &x, s3)?;
        x = g.max_pool("maxpool2", &x, 3, 2, 0, true);
        for (idx, (m, (name, _, spec))) in n.inception.iter().zip(GOOGLENET_MODULES).enumerate() {
            if idx == 2 {
                x = g.max_pool("maxpool3", &x, 3, 2, 0, true);
            } else if idx == 7 {
                x = g.max_pool("maxpool4", &x, 2, 2, 0, true);
            }
            x = m.to_graph(&mut g, name, &x, &spec)?;
        }
        x = g.global_average_pool("avgpool", &x);
        x = g.flatten("flatten", &x);
        x = g.linear("fc", &x, &n.fc)?;
        Ok((g, x))
    }
}

impl Summarizable for GoogLeNet {
    fn description(&self) -> &ModelDescription {
        self.graph.description()
    }

    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>> {
        self.check_input(&images)?;
        self.graph.forward_taps(images, sink)
    }

    fn forward_to(&self, images: Tensor<4>, tap: crate::TapId) -> Result<Tensor<4>> {
        self.check_input(&images)?;
        self.graph.forward_to(images, tap)
    }

    fn graph(&self) -> Result<crate::describe::GraphRef<'_>> {
        Ok(crate::describe::GraphRef::whole(&self.graph))
    }

    fn weights_hash(&self) -> Result<String> {
        Ok(self.weights_hash.clone())
    }

    /// The classifier follows an adaptive average pool: any H, W >= 32 run.
    fn accepts_any_size(&self) -> bool {
        true
    }
}
