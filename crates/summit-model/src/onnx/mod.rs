//! CNN classifiers read from ONNX files at run time (SPEC §2.1): no code generation, no
//! Python. [`OnnxModel::load`] decodes the protobuf (the few ONNX messages it needs are
//! declared in [`proto`] with `prost`'s derive macros — no build script, no `protoc`), checks
//! every operator, runs the graph with burn tensor operations on any device, and *describes*
//! it: its summary layers (discovered or named) and the paths of convolution and identity hops
//! between consecutive summary layers, found by walking the graph backwards.
//!
//! Supported operators: Conv (groups, dilation, asymmetric pads), BatchNormalization,
//! Relu, Clip (ReLU6), Sigmoid, Add, Sub, Mul, Div (with broadcasting; SiLU and
//! squeeze-excitation gates), MaxPool, AveragePool, GlobalAveragePool, Pad (zero, spatial),
//! Concat, Flatten, Reshape, Gemm, MatMul, Dropout, Identity, LRN and Constant. Anything
//! else is an error naming the node and the operator.
//!
//! The model graph is summit-rs's one runtime: the native models ([`crate::GoogLeNet`],
//! [`crate::LucidInceptionV1`], [`crate::FashionInception`]) build theirs with
//! [`build::GraphBuilder`]. The files: `proto` (the protobuf messages), `attrs` (typed node
//! attributes and initializers), `parse` (one typed operator per node, checked), `host` (shape
//! computations on the host), `exec` (the run, with the host fast paths), `eval` (the operators), `walk` (the
//! description: summary layers and paths), `relevance` (layer-wise relevance propagation),
//! `build` (graphs written from code).
//!
//! Why not burn's `onnx-ir`: it rewrites graphs for burn's code generator (lifting and
//! renaming constants, inferring static shapes for every node), while Summit needs the graph
//! as exported — node names carry the PyTorch module paths that name summary layers — and a
//! graph walk of its own; the protobuf schema is all that is needed from ONNX.

mod attrs;
pub mod build;
mod eval;
mod exec;
mod host;
mod ops;
mod parse;
pub mod proto;
pub mod relevance;
mod walk;

pub use attrs::module_path;
use attrs::*;
use exec::*;
use host::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions, PadMode};
use burn::tensor::{Device, Tensor, TensorData, activation};
use prost::Message;

use crate::describe::{
    ConvHop, ConvPath, FoldedKernel, InputSpec, ModelDescription, NoTaps, PathKind, Summarizable,
    SummaryLayer, TapId, TapInfo, TapSink,
};
use crate::error::{ModelError, Result};
use crate::lucid::local_response_norm;

/// Options of [`OnnxModel::load`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OnnxOptions {
    /// The summary layers, first to last, by tensor name or PyTorch module path (`layer1.0`,
    /// `features.3`); `None` discovers them (SPEC §2.1: every Add or Concat output, after the
    /// activation that follows it; in a network without Add or Concat, every convolution's
    /// activated output).
    pub layers: Option<Vec<String>>,
    /// Input height and width, required when the file leaves them symbolic.
    pub input_hw: Option<[usize; 2]>,
}

/// An ONNX classifier: a graph run with burn operations, described for Summit.
pub struct OnnxModel {
    graph: Graph,
    description: ModelDescription,
    /// value id of every tap, by [`TapId`]
    tap_values: Vec<usize>,
    weights_hash: String,
    device: Device,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("name", &self.description.name)
            .field("nodes", &self.graph.nodes.len())
            .field("taps", &self.tap_values.len())
            .finish()
    }
}

/// A constant (initializer or `Constant` node) on the host.
#[derive(Debug, Clone)]
struct Const {
    dims: Vec<usize>,
    f32s: Option<Vec<f32>>,
    i64s: Option<Vec<i64>>,
}

impl Const {
    fn floats(&self, what: &str) -> Result<&[f32]> {
        self.f32s
            .as_deref()
            .ok_or_else(|| describe(format!("{what}: expected a float tensor")))
    }
}

/// A node input: a value computed by the graph, or a constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Value(usize),
    Const(usize),
    Absent,
}

#[derive(Debug, Clone)]
enum Op {
    Conv {
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        weight_const: usize,
        bias_const: Option<usize>,
        stride: [usize; 2],
        /// `[top, bottom, left, right]`
        pads: [usize; 4],
        dilation: [usize; 2],
        groups: usize,
    },
    BatchNorm {
        scale: Vec<f32>,
        shift: Vec<f32>,
        gamma: Vec<f32>,
        beta: Vec<f32>,
        mean: Vec<f32>,
        var: Vec<f32>,
        eps: f64,
    },
    Relu,
    Clip {
        min: f32,
        max: f32,
    },
    Sigmoid,
    Binary(BinOp),
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        dilation: [usize; 2],
        ceil: bool,
    },
    AveragePool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pads: [usize; 4],
        ceil: bool,
        count_include_pad: bool,
    },
    GlobalAveragePool,
    Pad,
    Concat {
        axis: i64,
    },
    Flatten,
    Reshape,
    Shape,
    Gather {
        axis: i64,
    },
    Unsqueeze {
        axes: Option<Vec<i64>>,
    },
    Squeeze {
        axes: Option<Vec<i64>>,
    },
    ConstantOfShape {
        value: Const,
    },
    Slice,
    Transpose {
        perm: Vec<usize>,
    },
    Cast {
        to: i32,
    },
    ReduceMean {
        axes: Option<Vec<i64>>,
        keepdims: bool,
    },
    Gemm {
        /// `[K, N]`
        weight: Tensor<2>,
        bias: Option<Tensor<1>>,
    },
    Pass,
    Lrn {
        size: usize,
        alpha: f64,
        beta: f64,
        bias: f64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone)]
struct Node {
    name: String,
    op_type: String,
    op: Op,
    inputs: Vec<Input>,
    output: usize,
}

/// A value at run time.
#[derive(Debug, Clone)]
enum Val {
    T4(Tensor<4>),
    T2(Tensor<2>),
    /// a small tensor on the host: shapes, pads, scalars (shape computations of an export)
    Host(Const),
}

impl Val {
    fn dims(&self) -> Vec<usize> {
        match self {
            Val::T4(t) => t.dims().to_vec(),
            Val::T2(t) => t.dims().to_vec(),
            Val::Host(c) => c.dims.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Graph {
    path: PathBuf,
    nodes: Vec<Node>,
    consts: Vec<Const>,
    value_names: Vec<String>,
    /// the producing node of every value (`None` for the graph input)
    producer: Vec<Option<usize>>,
    consumers: Vec<Vec<usize>>,
    input: usize,
    output: usize,
    /// dims of every value with batch 1 (from a probe run)
    shapes: Vec<Vec<usize>>,
    input_spec: InputSpec,
    /// index of the last node reading each value
    last_use: Vec<usize>,
    /// the `pads` attribute of Pad nodes of opset < 11, by output value
    pad_attrs: BTreeMap<usize, Vec<i64>>,
    /// the padding of every Pad node, as the probe run computed it
    probe_pads: Vec<Option<[usize; 4]>>,
    /// whether images of any height and width run the whole graph (built graphs of networks
    /// ending in a global pool); otherwise only `input_spec`'s size runs it to the end
    any_size: bool,
    /// per node: the convolution → (batch norm →) ReLU chain it starts, run as one host
    /// pass where nothing reads the values inside the chain
    fusions: Vec<Option<Fusion>>,
}

/// A convolution followed by the nodes its epilogue computes in the same pass on the host: a
/// ReLU, or a batch norm (of a bias-free convolution) then a ReLU.
#[derive(Debug, Clone)]
struct Fusion {
    /// the values produced inside the chain (the convolution's, the batch norm's)
    inner: Vec<usize>,
    /// the nodes after the convolution that the fused pass computes
    nodes: Vec<usize>,
    /// the value the chain ends in (the ReLU's output)
    out: usize,
    /// the batch norm's `[gamma, beta, mean, sd]`, `sd = sqrt(var + eps)` rounded in f32 as
    /// burn's batch norm rounds it
    bn: Option<[Vec<f32>; 4]>,
}

/// The embedded residual model, as ONNX: a small ResNet (three stages of two basic blocks,
/// 16/32/64 channels) trained on Fashion-MNIST by `scripts/train_fashion_resnet.py` (input
/// `(pixel/255 − 0.2860)/0.3530`, 28×28 greyscale, like [`FashionInception`](crate::FashionInception)).
pub const FASHION_RESNET_ONNX: &[u8] = include_bytes!("../../assets/fashion_resnet.onnx");

impl OnnxModel {
    /// The embedded Fashion-MNIST ResNet ([`FASHION_RESNET_ONNX`]); its summary layers are
    /// the six residual blocks `layer1.0` … `layer3.1`.
    ///
    /// ```
    /// use summit_model::{OnnxModel, Summarizable};
    /// use burn::tensor::{Device, Tensor};
    /// let device = Device::flex();
    /// let model = OnnxModel::fashion_resnet(&device)?;
    /// assert_eq!(model.description().layers.len(), 6);
    /// let logits = model.forward(Tensor::zeros([2, 1, 28, 28], &device))?;
    /// assert_eq!(logits.dims(), [2, 10]);
    /// # Ok::<(), summit_model::ModelError>(())
    /// ```
    pub fn fashion_resnet(device: &Device) -> Result<Self> {
        let mut m = Self::from_bytes(
            Path::new("<embedded fashion_resnet.onnx>"),
            FASHION_RESNET_ONNX,
            &OnnxOptions::default(),
            device,
        )?;
        m.description.name = "fashion-resnet (embedded, onnx)".into();
        Ok(m)
    }

    /// Reads an ONNX classifier (e.g. written by `torch.onnx.export(model.eval(), x, f,
    /// dynamo=False)`) and describes it. Errors name the file, the node and the operator: a
    /// file that is not ONNX or is truncated, an unsupported operator, a graph without an
    /// `[N, classes]` output, a summary layer that does not exist, paths that cannot be
    /// described.
    pub fn load(path: impl AsRef<Path>, options: &OnnxOptions, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| ModelError::Read {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_bytes(path, &bytes, options, device)
    }

    /// [`load`](Self::load) from bytes already read (`path` names them in errors).
    pub fn from_bytes(
        path: &Path,
        bytes: &[u8],
        options: &OnnxOptions,
        device: &Device,
    ) -> Result<Self> {
        let graph = Graph::parse(path, bytes, options, device)?;
        let (description, tap_values) = graph.describe(options)?;
        Self::from_parts(graph, description, tap_values, device)
    }

    /// A model from a parsed graph and its description (the weights hash computed here).
    fn from_parts(
        graph: Graph,
        description: ModelDescription,
        tap_values: Vec<usize>,
        device: &Device,
    ) -> Result<Self> {
        let mut h = blake3::Hasher::new();
        for c in &graph.consts {
            h.update(&(c.dims.len() as u64).to_le_bytes());
            for d in &c.dims {
                h.update(&(*d as u64).to_le_bytes());
            }
            if let Some(f) = &c.f32s {
                for v in f {
                    h.update(&v.to_bits().to_le_bytes());
                }
            }
            if let Some(i) = &c.i64s {
                for v in i {
                    h.update(&v.to_le_bytes());
                }
            }
        }
        Ok(Self {
            graph,
            description,
            tap_values,
            weights_hash: h.finalize().to_hex().to_string(),
            device: device.clone(),
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The names of the operators of the graph, in order (for reports).
    pub fn operators(&self) -> Vec<(String, String)> {
        self.graph
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.op_type.clone()))
            .collect()
    }

    /// The tensor name of every tap, by [`TapId`].
    pub fn tap_names(&self) -> Vec<&str> {
        self.tap_values
            .iter()
            .map(|&v| self.graph.name_of(v))
            .collect()
    }
}

impl Summarizable for OnnxModel {
    fn description(&self) -> &ModelDescription {
        &self.description
    }

    fn forward_taps(&self, images: Tensor<4>, sink: &mut dyn TapSink) -> Result<Tensor<2>> {
        let keep = vec![false; self.graph.value_names.len()];
        let taps: Vec<(usize, TapId)> = self
            .tap_values
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, TapId(i)))
            .collect();
        let mut vals = self.graph.run_taps(images, &keep, &taps, sink, None)?;
        match vals[self.graph.output].take() {
            Some(Val::T2(t)) => Ok(t),
            other => Err(describe(format!(
                "the graph output has shape {:?}, not [N, classes]",
                other.map(|v| v.dims())
            ))),
        }
    }

    fn weights_hash(&self) -> Result<String> {
        Ok(self.weights_hash.clone())
    }

    /// Runs the graph only up to the tap (the nodes after it are not evaluated), on images of
    /// any height and width the nodes before it accept.
    fn forward_to(&self, images: Tensor<4>, tap: TapId) -> Result<Tensor<4>> {
        let v = *self.tap_values.get(tap.0).ok_or_else(|| {
            describe(format!(
                "tap {} of {} does not exist",
                tap.0,
                self.tap_values.len()
            ))
        })?;
        let keep = vec![false; self.graph.value_names.len()];
        let mut vals = self
            .graph
            .run_taps(images, &keep, &[], &mut NoTaps, Some(v))?;
        match vals[v].take() {
            Some(Val::T4(t)) => Ok(t),
            other => Err(describe(format!(
                "tap `{}` has shape {:?}, not [N, C, H, W]",
                self.graph.name_of(v),
                other.map(|v| v.dims())
            ))),
        }
    }

    fn accepts_any_size(&self) -> bool {
        true
    }

    fn graph(&self) -> Result<crate::describe::GraphRef<'_>> {
        Ok(crate::describe::GraphRef::whole(self))
    }
}

#[cfg(test)]
mod tests {
    use super::module_path;

    #[test]
    fn module_paths_of_exported_node_names() {
        assert_eq!(
            module_path("/layer1/layer1.0/relu_1/Relu"),
            "layer1.0.relu_1"
        );
        assert_eq!(module_path("/layer1/layer1.0/Add"), "layer1.0");
        assert_eq!(
            module_path("/features/features.3/conv/conv.0/conv.0.0/Conv"),
            "features.3.conv.0.0"
        );
        assert_eq!(module_path("/features/features.3/Add"), "features.3");
        assert_eq!(module_path("/inception3a/Concat"), "inception3a");
        assert_eq!(module_path("/_blocks.1/Add"), "_blocks.1");
        assert_eq!(module_path("Conv_0"), "");
    }
}
