//! Building a model graph from code: the native models (torchvision GoogLeNet, Lucid
//! InceptionV1, the embedded Fashion-MNIST network) describe themselves as the same operator
//! graph the ONNX importer builds, so that what walks a graph — layer-wise relevance
//! propagation — is written once for every model.
//!
//! [`GraphBuilder`] writes an ONNX `ModelProto` (opset 17) node by node; node names carry the
//! PyTorch module path of each operator (`/inception3a/branch2/0/conv/Conv` is
//! `inception3a.branch2.0.conv`, the name rule maps use) and each block's output value is named
//! by its module path (`inception3a`), so that a summary layer's value is found by its name.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use summit_model::onnx::build::GraphBuilder;
//! use summit_model::{HostTensor, Summarizable};
//!
//! let mut g = GraphBuilder::new(1, [4, 4]);
//! let x = g.input();
//! let w = HostTensor::new(vec![2, 1, 3, 3], vec![0.1; 18]);
//! let c = g.conv("features.0", &x, &w, None, 1, 1, 1)?;
//! let r = g.relu("features.1", &c);
//! let p = g.global_average_pool("pool", &r);
//! let f = g.flatten("flatten", &p);
//! let fc = g.gemm("fc", &f, &HostTensor::new(vec![3, 2], vec![1.0; 6]), None)?;
//! let model = g.finish(&fc, "tiny", &Device::flex())?;
//! let logits = model.forward(Tensor::ones([1, 1, 4, 4], &Device::flex()))?;
//! assert_eq!(logits.dims(), [1, 3]);
//! # Ok::<(), summit_model::ModelError>(())
//! ```

use std::path::Path;
use std::sync::OnceLock;

use burn::nn::Linear;
use burn::tensor::{Device, Tensor};
use prost::Message;

use super::proto::{
    AttributeProto, Dimension, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, TypeProtoTensor, ValueInfoProto,
};
use super::{Graph, OnnxModel, OnnxOptions};
use crate::describe::{InputSpec, ModelDescription, to_host};
use crate::error::{ModelError, Result};
use crate::weights::HostTensor;

/// Writes a model graph node by node (see the module documentation).
#[derive(Debug, Clone)]
pub struct GraphBuilder {
    /// batch norms' epsilons as the network holds them (f64; an ONNX attribute rounds them
    /// to f32), by output value
    epsilons: Vec<(String, f64)>,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    channels: usize,
    hw: [usize; 2],
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.to_vec(),
        r#type: 7,
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i: v,
        r#type: 2,
        ..Default::default()
    }
}

fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f: v,
        r#type: 1,
        ..Default::default()
    }
}

impl GraphBuilder {
    /// A graph taking `[N, channels, h, w]` images.
    pub fn new(channels: usize, hw: [usize; 2]) -> Self {
        Self {
            epsilons: Vec::new(),
            nodes: Vec::new(),
            initializers: Vec::new(),
            channels,
            hw,
        }
    }

    /// The input value's name.
    pub fn input(&self) -> String {
        "image".into()
    }

    fn node(
        &mut self,
        path: &str,
        op: &str,
        inputs: Vec<String>,
        attributes: Vec<AttributeProto>,
    ) -> String {
        self.node_as(path, path, op, inputs, attributes)
    }

    /// A node named by its module `path` whose output value is named `value`.
    fn node_as(
        &mut self,
        path: &str,
        value: &str,
        op: &str,
        inputs: Vec<String>,
        attributes: Vec<AttributeProto>,
    ) -> String {
        let output = value.to_string();
        let scope: String = path.split('.').map(|p| format!("/{p}")).collect();
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output.clone()],
            name: format!("{scope}/{op}"),
            op_type: op.into(),
            attribute: attributes,
            domain: String::new(),
        });
        output
    }

    fn constant(&mut self, name: String, t: &HostTensor) -> Result<String> {
        let n: usize = t.shape.iter().product();
        if n != t.data.len() {
            return Err(ModelError::Describe(format!(
                "graph builder: `{name}` has shape {:?} but {} values",
                t.shape,
                t.data.len()
            )));
        }
        self.initializers.push(TensorProto {
            dims: t.shape.iter().map(|&d| d as i64).collect(),
            data_type: 1,
            float_data: t.data.clone(),
            name: name.clone(),
            ..Default::default()
        });
        Ok(name)
    }

    /// A convolution (square kernel from `weight` `[c_out, c_in / groups, k, k]`, symmetric
    /// padding) named by its module path; its output value is named `path`.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &mut self,
        path: &str,
        x: &str,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
        stride: usize,
        padding: usize,
        groups: usize,
    ) -> Result<String> {
        self.conv_padded(path, x, weight, bias, stride, [padding; 4], groups)
    }

    /// [`conv`](Self::conv) with padding `[top, left, bottom, right]` (ONNX's order).
    #[allow(clippy::too_many_arguments)]
    pub fn conv_padded(
        &mut self,
        path: &str,
        x: &str,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
        stride: usize,
        pads: [usize; 4],
        groups: usize,
    ) -> Result<String> {
        let [_, _, kh, kw] = <[usize; 4]>::try_from(weight.shape.as_slice()).map_err(|_| {
            ModelError::Describe(format!("graph builder: `{path}.weight` is not 4-D"))
        })?;
        let mut inputs = vec![
            x.to_string(),
            self.constant(format!("{path}.weight"), weight)?,
        ];
        if let Some(b) = bias {
            inputs.push(self.constant(format!("{path}.bias"), b)?);
        }
        let s = stride as i64;
        Ok(self.node(
            path,
            "Conv",
            inputs,
            vec![
                ints("kernel_shape", &[kh as i64, kw as i64]),
                ints("strides", &[s, s]),
                ints("pads", &pads.map(|p| p as i64)),
                int("group", groups as i64),
            ],
        ))
    }

    /// Batch normalisation with running statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &mut self,
        path: &str,
        x: &str,
        gamma: &HostTensor,
        beta: &HostTensor,
        mean: &HostTensor,
        var: &HostTensor,
        eps: f64,
    ) -> Result<String> {
        let inputs = vec![
            x.to_string(),
            self.constant(format!("{path}.weight"), gamma)?,
            self.constant(format!("{path}.bias"), beta)?,
            self.constant(format!("{path}.running_mean"), mean)?,
            self.constant(format!("{path}.running_var"), var)?,
        ];
        let out = self.node(
            path,
            "BatchNormalization",
            inputs,
            vec![float("epsilon", eps as f32)],
        );
        self.epsilons.push((out.clone(), eps));
        Ok(out)
    }

    /// ReLU.
    pub fn relu(&mut self, path: &str, x: &str) -> String {
        self.node(path, "Relu", vec![x.into()], vec![])
    }

    /// ReLU whose output value is named `value` (a tap named as the model names it, where
    /// that is not the module path: Lucid's `mixed3a_3x3_bottleneck`).
    pub fn relu_as(&mut self, path: &str, value: &str, x: &str) -> String {
        self.node_as(path, value, "Relu", vec![x.into()], vec![])
    }

    /// Max pooling, square kernel, symmetric padding.
    pub fn max_pool(
        &mut self,
        path: &str,
        x: &str,
        kernel: usize,
        stride: usize,
        padding: usize,
        ceil: bool,
    ) -> String {
        self.max_pool_padded(path, x, kernel, stride, [padding; 4], ceil)
    }

    /// [`max_pool`](Self::max_pool) with padding `[top, left, bottom, right]` (never the
    /// maximum).
    pub fn max_pool_padded(
        &mut self,
        path: &str,
        x: &str,
        kernel: usize,
        stride: usize,
        pads: [usize; 4],
        ceil: bool,
    ) -> String {
        let (k, s) = (kernel as i64, stride as i64);
        self.node(
            path,
            "MaxPool",
            vec![x.into()],
            vec![
                ints("kernel_shape", &[k, k]),
                ints("strides", &[s, s]),
                ints("pads", &pads.map(|p| p as i64)),
                int("ceil_mode", i64::from(ceil)),
            ],
        )
    }

    /// Global average pooling to `[N, C, 1, 1]`.
    pub fn global_average_pool(&mut self, path: &str, x: &str) -> String {
        self.node(path, "GlobalAveragePool", vec![x.into()], vec![])
    }

    /// Concatenation along channels.
    pub fn concat(&mut self, path: &str, xs: &[String]) -> String {
        self.node(path, "Concat", xs.to_vec(), vec![int("axis", 1)])
    }

    /// The elementwise product of two values (a gate, SiLU's `x · sigmoid(x)`).
    pub fn product(&mut self, path: &str, a: &str, b: &str) -> String {
        self.node(path, "Mul", vec![a.into(), b.into()], vec![])
    }

    /// `[N, C, H, W]` to `[N, C·H·W]`.
    pub fn flatten(&mut self, path: &str, x: &str) -> String {
        self.node(path, "Flatten", vec![x.into()], vec![int("axis", 1)])
    }

    /// A dense layer with PyTorch's weight layout `[out, in]`.
    pub fn gemm(
        &mut self,
        path: &str,
        x: &str,
        weight: &HostTensor,
        bias: Option<&HostTensor>,
    ) -> Result<String> {
        let mut inputs = vec![
            x.to_string(),
            self.constant(format!("{path}.weight"), weight)?,
        ];
        if let Some(b) = bias {
            inputs.push(self.constant(format!("{path}.bias"), b)?);
        }
        Ok(self.node(path, "Gemm", inputs, vec![int("transB", 1)]))
    }

    /// Local response normalisation across channels.
    pub fn lrn(
        &mut self,
        path: &str,
        x: &str,
        size: usize,
        alpha: f64,
        beta: f64,
        bias: f64,
    ) -> String {
        self.node(
            path,
            "LRN",
            vec![x.into()],
            vec![
                int("size", size as i64),
                float("alpha", alpha as f32),
                float("beta", beta as f32),
                float("bias", bias as f32),
            ],
        )
    }

    /// The ONNX model's bytes, with `output` (`[N, classes]`) as the graph output.
    pub fn to_bytes(&self, output: &str) -> Vec<u8> {
        let dim = |v: usize| Dimension {
            dim_value: Some(v as i64),
            dim_param: None,
        };
        let input = ValueInfoProto {
            name: self.input(),
            r#type: Some(TypeProto {
                tensor_type: Some(TypeProtoTensor {
                    elem_type: 1,
                    shape: Some(TensorShapeProto {
                        dim: vec![
                            Dimension {
                                dim_value: None,
                                dim_param: Some("n".into()),
                            },
                            dim(self.channels),
                            dim(self.hw[0]),
                            dim(self.hw[1]),
                        ],
                    }),
                }),
            }),
        };
        let out = ValueInfoProto {
            name: output.into(),
            r#type: None,
        };
        ModelProto {
            ir_version: 8,
            producer_name: "summit-model".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(GraphProto {
                node: self.nodes.clone(),
                name: "summit".into(),
                initializer: self.initializers.clone(),
                input: vec![input],
                output: vec![out],
            }),
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            }],
        }
        .encode_to_vec()
    }

    /// The graph as a runnable model named `name`, on `device`. Its description has no summary
    /// layers (the native model that built it describes itself); it runs, and relevance
    /// propagation walks it.
    pub fn finish(&self, output: &str, name: &str, device: &Device) -> Result<OnnxModel> {
        let bytes = self.to_bytes(output);
        let path = format!("<graph of {name}>");
        let mut graph = Graph::parse(Path::new(&path), &bytes, &OnnxOptions::default(), device)?;
        graph.set_epsilons(&self.epsilons);
        let description = ModelDescription {
            name: name.into(),
            input: InputSpec {
                channels: self.channels,
                height: self.hw[0],
                width: self.hw[1],
            },
            num_classes: graph.num_classes(),
            taps: Vec::new(),
            layers: Vec::new(),
            paths: Vec::new(),
        };
        // the native networks end in a global average pool: any size above their minimum
        graph.any_size = true;
        OnnxModel::from_parts(graph, description, Vec::new(), device)
    }

    /// The graph as the model it is (SPEC §2.1): described by the one graph walk with the
    /// summary layers of `labels`, then named as the native network names itself — its name,
    /// the layers' aliases, its paths' names and kinds. A walk that finds another number of
    /// paths than `labels` lists is an error naming the layer.
    pub fn finish_described(
        &self,
        output: &str,
        labels: &NativeLabels,
        device: &Device,
    ) -> Result<OnnxModel> {
        let bytes = self.to_bytes(output);
        let path = format!("<graph of {}>", labels.name);
        let options = OnnxOptions {
            layers: Some(labels.layers.iter().map(|(n, _)| n.clone()).collect()),
            input_hw: None,
        };
        let mut graph = Graph::parse(Path::new(&path), &bytes, &options, device)?;
        // the native networks end in a global average pool: any size above their minimum
        graph.any_size = true;
        graph.set_epsilons(&self.epsilons);
        let (mut description, taps) = graph.describe(&options)?;
        description.name.clone_from(&labels.name);
        for (l, layer) in description.layers.iter_mut().enumerate() {
            layer.alias = labels.layers.get(l).and_then(|(_, a)| a.clone());
            let (paths, want) = (&mut description.paths[l], labels.paths.get(l));
            let want = want.map_or(&[][..], Vec::as_slice);
            if paths.len() != want.len() {
                return Err(ModelError::Describe(format!(
                    "{}: summary layer `{}` has {} paths in its graph, the network lists {}",
                    labels.name,
                    layer.name,
                    paths.len(),
                    want.len()
                )));
            }
            for (p, (name, kind)) in paths.iter_mut().zip(want) {
                p.name.clone_from(name);
                p.kind = *kind;
            }
        }
        OnnxModel::from_parts(graph, description, taps, device)
    }

    /// A burn `Linear` (weights `[in, out]`) as a dense layer named `path`.
    pub fn linear(&mut self, path: &str, x: &str, fc: &Linear) -> Result<String> {
        let w = fc.weight.val();
        let [k, n] = w.dims();
        let wt = host(w.transpose(), path)?;
        let b = match &fc.bias {
            Some(b) => Some(HostTensor::new(vec![n], host(b.val(), path)?)),
            None => None,
        };
        self.gemm(path, x, &HostTensor::new(vec![n, k], wt), b.as_ref())
    }
}

/// What a native network knows of itself beyond its graph
/// ([`GraphBuilder::finish_described`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeLabels {
    /// The model's name (`googlenet (torchvision)`).
    pub name: String,
    /// Its summary layers, first to last: the graph value's name and the paper's alias.
    pub layers: Vec<(String, Option<String>)>,
    /// Per summary layer, its paths in concatenation order: name and kind.
    pub paths: Vec<Vec<(String, crate::describe::PathKind)>>,
}

/// A tensor's values on the host.
pub(crate) fn host<const D: usize>(t: Tensor<D>, what: &str) -> Result<Vec<f32>> {
    to_host(t, what)
}

/// A graph built on first use and kept ([`crate::Summarizable::graph`] of the native models).
#[derive(Default)]
pub struct LazyGraph(OnceLock<std::result::Result<OnnxModel, String>>);

impl std::fmt::Debug for LazyGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0.get() {
            None => "LazyGraph(not built)",
            Some(Ok(_)) => "LazyGraph(built)",
            Some(Err(_)) => "LazyGraph(failed)",
        })
    }
}

impl LazyGraph {
    /// The graph, built by `build` the first time.
    pub fn get_or_build(&self, build: impl FnOnce() -> Result<OnnxModel>) -> Result<&OnnxModel> {
        match self.0.get_or_init(|| build().map_err(|e| e.to_string())) {
            Ok(m) => Ok(m),
            Err(e) => Err(ModelError::Describe(format!(
                "building the model graph: {e}"
            ))),
        }
    }
}
