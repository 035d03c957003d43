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
//! Why not burn's `onnx-ir`: it rewrites graphs for burn's code generator (lifting and
//! renaming constants, inferring static shapes for every node), while Summit needs the graph
//! as exported — node names carry the PyTorch module paths that name summary layers — and a
//! graph walk of its own; the protobuf schema is all that is needed from ONNX.

pub mod build;
pub mod proto;
pub mod relevance;

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

/// A batch norm as a per-channel affine map `x · scale + shift`: `scale = γ / sqrt(var + eps)`
/// (in f64, rounded once), `shift = β − mean · scale`.
fn bn_scale_shift(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let scale: Vec<f32> = gamma
        .iter()
        .zip(var)
        .map(|(&g, &v)| (f64::from(g) / (f64::from(v) + eps).sqrt()) as f32)
        .collect();
    let shift = beta
        .iter()
        .zip(mean)
        .zip(&scale)
        .map(|((&b, &m), &s)| b - m * s)
        .collect();
    (scale, shift)
}

/// A dense convolution on the host with its epilogue: at stride 1 the host convolution
/// (`crate::conv`, the epilogue in its output pass), strided the host columns times burn's
/// product (`crate::im2col`) then the epilogue in one pass; `x` comes back as the error where
/// neither takes it (grouped, dilated, shapes the host kernels refuse).
#[allow(clippy::result_large_err)] // the error is the caller's input, handed back
fn host_conv(
    x: Tensor<4>,
    weight: &Tensor<4>,
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
    epi: crate::conv::Epilogue<'_>,
) -> std::result::Result<Tensor<4>, Tensor<4>> {
    if dilation != [1, 1] || groups != 1 {
        return Err(x);
    }
    if stride == [1, 1] {
        return crate::conv::conv2d_tensor(x, weight, pads, epi);
    }
    let [_, _, kh, kw] = weight.dims();
    let u = crate::im2col::Unfold {
        kh,
        kw,
        stride,
        pad: pads,
    };
    match crate::im2col::conv2d(&x, weight, &u).and_then(|y| crate::conv::epilogue_tensor(&y, epi))
    {
        Some(y) => Ok(y),
        None => Err(x),
    }
}

/// burn's options of a Conv node (`pads`: `[top, bottom, left, right]`).
fn conv_options(
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
) -> ConvOptions<2> {
    let mut opts = ConvOptions::new(stride, [0, 0], dilation, groups);
    opts.padding = [(pads[0], pads[1]), (pads[2], pads[3])];
    opts
}

fn describe(msg: String) -> ModelError {
    ModelError::Describe(msg)
}

fn attr<'a>(n: &'a proto::NodeProto, name: &str) -> Option<&'a proto::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(n: &proto::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_int(n: &proto::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_float(n: &proto::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn to_usize(v: &[i64], what: &str, node: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| describe(format!("node `{node}`: {what} {v:?} must be non-negative")))
        })
        .collect()
}

fn pair(v: Option<Vec<i64>>, default: usize, what: &str, node: &str) -> Result<[usize; 2]> {
    match v {
        None => Ok([default; 2]),
        Some(v) => {
            let u = to_usize(&v, what, node)?;
            match u.as_slice() {
                [a, b] if *a > 0 && *b > 0 => Ok([*a, *b]),
                _ => Err(describe(format!(
                    "node `{node}`: {what} {v:?}: expected two positive values (2-D)"
                ))),
            }
        }
    }
}

/// ONNX `pads` `[top, left, bottom, right]` → `[top, bottom, left, right]`.
fn pads4(v: Option<Vec<i64>>, node: &str) -> Result<[usize; 4]> {
    match v {
        None => Ok([0; 4]),
        Some(v) => {
            let u = to_usize(&v, "pads", node)?;
            match u.as_slice() {
                [t, l, b, r] => Ok([*t, *b, *l, *r]),
                _ => Err(describe(format!(
                    "node `{node}`: pads {v:?}: expected 4 values (2-D)"
                ))),
            }
        }
    }
}

fn tensor_const(t: &proto::TensorProto, base: &Path) -> Result<Const> {
    let dims = to_usize(&t.dims, "dims", &t.name)?;
    let n: usize = dims.iter().product();
    if t.data_location == 1 || !t.external_data.is_empty() {
        let loc = t
            .external_data
            .iter()
            .find(|e| e.key == "location")
            .map_or("?", |e| e.value.as_str());
        return Err(describe(format!(
            "tensor `{}` keeps its data in an external file (`{loc}` beside {}): export the \
             model in one file",
            t.name,
            base.display()
        )));
    }
    let raw = &t.raw_data;
    let bad = |got: usize| {
        describe(format!(
            "tensor `{}`: {got} values for dims {dims:?} ({n} expected)",
            t.name
        ))
    };
    let (f32s, i64s) = match t.data_type {
        1 => {
            let v: Vec<f32> = if raw.is_empty() {
                t.float_data.clone()
            } else {
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            };
            (Some(v), None)
        }
        11 => {
            let v: Vec<f32> = if raw.is_empty() {
                t.double_data.iter().map(|&d| d as f32).collect()
            } else {
                raw.chunks_exact(8)
                    .map(|c| {
                        f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32
                    })
                    .collect()
            };
            (Some(v), None)
        }
        7 => {
            let v: Vec<i64> = if raw.is_empty() {
                t.int64_data.clone()
            } else {
                raw.chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect()
            };
            (None, Some(v))
        }
        6 => {
            let v: Vec<i64> = if raw.is_empty() {
                t.int32_data.iter().map(|&d| i64::from(d)).collect()
            } else {
                raw.chunks_exact(4)
                    .map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]])))
                    .collect()
            };
            (None, Some(v))
        }
        other => {
            return Err(describe(format!(
                "tensor `{}` has ONNX data type {other}; only float, double, int32 and int64 \
                 tensors are supported",
                t.name
            )));
        }
    };
    let got = f32s
        .as_ref()
        .map(Vec::len)
        .or(i64s.as_ref().map(Vec::len))
        .unwrap_or(0);
    if got != n {
        return Err(bad(got));
    }
    if let Some(v) = &f32s
        && let Some(i) = v.iter().position(|x| !x.is_finite())
    {
        return Err(describe(format!(
            "tensor `{}` holds a non-finite value at {i}",
            t.name
        )));
    }
    Ok(Const { dims, f32s, i64s })
}

/// The PyTorch module path of an exported node name: `/layer1/layer1.0/relu_1/Relu` →
/// `layer1.0.relu_1`, `/features/features.3/conv/conv.0/conv.0.0/Conv` → `features.3.conv.0.0`
/// (components that extend the previous one replace it). Empty for names without scopes.
pub fn module_path(node_name: &str) -> String {
    let comps: Vec<&str> = node_name
        .trim_start_matches('/')
        .split('/')
        .filter(|c| !c.is_empty())
        .collect();
    if comps.len() < 2 {
        return String::new();
    }
    let mut parts: Vec<String> = Vec::new();
    let mut last: Option<&str> = None;
    for c in &comps[..comps.len() - 1] {
        match last {
            Some(l) if c.starts_with(&format!("{l}.")) => {
                parts.pop();
                parts.push((*c).to_string());
            }
            _ => parts.push((*c).to_string()),
        }
        last = Some(c);
    }
    parts.join(".")
}

/// A host input of a node: a constant, or a host value computed earlier.
fn host_input(n: &Node, consts: &[Const], vals: &[Option<Val>], k: usize) -> Result<Const> {
    match n.inputs.get(k) {
        Some(Input::Const(c)) => Ok(consts[*c].clone()),
        Some(Input::Value(v)) => match vals.get(*v).and_then(Option::as_ref) {
            Some(Val::Host(c)) => Ok(c.clone()),
            Some(other) => Err(describe(format!(
                "node `{}` ({}): input {k} is a {:?} feature map, expected a small host tensor (a shape or constant)",
                n.name,
                n.op_type,
                other.dims()
            ))),
            None => Err(describe(format!(
                "node `{}`: input {k} is not available",
                n.name
            ))),
        },
        _ => Err(describe(format!(
            "node `{}` ({}): input {k} is missing",
            n.name, n.op_type
        ))),
    }
}

fn host_ints(c: &Const) -> Vec<i64> {
    c.i64s
        .clone()
        .or_else(|| {
            c.f32s
                .as_ref()
                .map(|v| v.iter().map(|&x| x as i64).collect())
        })
        .unwrap_or_default()
}

fn host_floats(c: &Const) -> Vec<f32> {
    c.f32s
        .clone()
        .or_else(|| {
            c.i64s
                .as_ref()
                .map(|v| v.iter().map(|&x| x as f32).collect())
        })
        .unwrap_or_default()
}

fn axis_of(a: i64, rank: usize, n: &Node) -> Result<usize> {
    let r = rank as i64;
    let x = if a < 0 { a + r } else { a };
    usize::try_from(x)
        .ok()
        .filter(|&x| x < rank.max(1))
        .ok_or_else(|| {
            describe(format!(
                "node `{}` ({}): axis {a} for rank {rank}",
                n.name, n.op_type
            ))
        })
}

/// Evaluates a shape computation on host tensors (constants, shapes): Gather, Unsqueeze,
/// Squeeze, Concat, ConstantOfShape, Slice, Transpose, Cast, Reshape and arithmetic.
fn host_eval(n: &Node, consts: &[Const], vals: &[Option<Val>]) -> Result<Const> {
    let x = host_input(n, consts, vals, 0)?;
    let ints = x.i64s.is_some();
    let make = |dims: Vec<usize>, f: Vec<f32>, i: Vec<i64>, ints: bool| Const {
        dims,
        f32s: (!ints).then_some(f),
        i64s: ints.then_some(i),
    };
    let (xi, xf) = (host_ints(&x), host_floats(&x));
    Ok(match &n.op {
        Op::Gather { axis } => {
            let idx = host_input(n, consts, vals, 1)?;
            let ax = axis_of(*axis, x.dims.len().max(1), n)?;
            if ax != 0 || x.dims.len() > 1 {
                return Err(describe(format!(
                    "node `{}` (Gather): only 1-D gathers of shapes are supported",
                    n.name
                )));
            }
            let len = xi.len() as i64;
            let mut oi = Vec::new();
            let mut of = Vec::new();
            for &k in &host_ints(&idx) {
                let k = if k < 0 { k + len } else { k };
                let k = usize::try_from(k)
                    .ok()
                    .filter(|&k| k < xi.len())
                    .ok_or_else(|| {
                        describe(format!("node `{}` (Gather): index out of range", n.name))
                    })?;
                oi.push(xi[k]);
                of.push(xf[k]);
            }
            make(idx.dims.clone(), of, oi, ints)
        }
        Op::Unsqueeze { axes } | Op::Squeeze { axes } => {
            let axes = match axes {
                Some(a) => a.clone(),
                None => host_input(n, consts, vals, 1)
                    .map(|c| host_ints(&c))
                    .unwrap_or_default(),
            };
            let mut dims = x.dims.clone();
            if matches!(n.op, Op::Unsqueeze { .. }) {
                let rank = dims.len() + axes.len();
                let mut ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis_of(a, rank, n))
                    .collect::<Result<_>>()?;
                ax.sort_unstable();
                for a in ax {
                    dims.insert(a.min(dims.len()), 1);
                }
            } else if axes.is_empty() {
                dims.retain(|&d| d != 1);
            } else {
                let rank = dims.len();
                let ax: Vec<usize> = axes
                    .iter()
                    .map(|&a| axis_of(a, rank, n))
                    .collect::<Result<_>>()?;
                dims = dims
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| !ax.contains(k))
                    .map(|(_, &d)| d)
                    .collect();
            }
            make(dims, xf, xi, ints)
        }
        Op::Concat { axis } => {
            let mut oi = xi;
            let mut of = xf;
            let mut len = x.dims.first().copied().unwrap_or(1);
            if x.dims.len() > 1 || *axis != 0 && *axis != -1 {
                return Err(describe(format!(
                    "node `{}` (Concat): host concatenation of 1-D tensors only",
                    n.name
                )));
            }
            for k in 1..n.inputs.len() {
                let y = host_input(n, consts, vals, k)?;
                oi.extend(host_ints(&y));
                of.extend(host_floats(&y));
                len += y.dims.first().copied().unwrap_or(1);
            }
            make(vec![len], of, oi, ints)
        }
        Op::ConstantOfShape { value } => {
            let dims = to_usize(&xi, "shape", &n.name)?;
            let count: usize = dims.iter().product();
            let vi = host_ints(value).first().copied().unwrap_or(0);
            let vf = host_floats(value).first().copied().unwrap_or(0.0);
            make(dims, vec![vf; count], vec![vi; count], value.i64s.is_some())
        }
        Op::Slice => {
            let starts = host_ints(&host_input(n, consts, vals, 1)?);
            let ends = host_ints(&host_input(n, consts, vals, 2)?);
            let rank = x.dims.len();
            let axes = match host_input(n, consts, vals, 3) {
                Ok(a) => host_ints(&a),
                Err(_) => (0..starts.len() as i64).collect(),
            };
            let steps = match host_input(n, consts, vals, 4) {
                Ok(a) => host_ints(&a),
                Err(_) => vec![1; starts.len()],
            };
            // index lists per axis
            let mut keep: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
            for q in 0..starts.len() {
                let a = axis_of(axes[q], rank, n)?;
                let d = x.dims[a] as i64;
                let st = steps.get(q).copied().unwrap_or(1);
                if st == 0 {
                    return Err(describe(format!("node `{}` (Slice): step 0", n.name)));
                }
                let clampi = |v: i64, lo: i64, hi: i64| v.max(lo).min(hi);
                let norm = |v: i64| if v < 0 { v + d } else { v };
                let mut idx = Vec::new();
                if st > 0 {
                    let (b, e) = (clampi(norm(starts[q]), 0, d), clampi(norm(ends[q]), 0, d));
                    let mut i = b;
                    while i < e {
                        idx.push(i as usize);
                        i += st;
                    }
                } else {
                    let (b, e) = (
                        clampi(norm(starts[q]), -1, d - 1),
                        clampi(norm(ends[q]), -1, d - 1),
                    );
                    let mut i = b;
                    while i > e {
                        idx.push(i as usize);
                        i += st;
                    }
                }
                keep[a] = idx;
            }
            let dims: Vec<usize> = keep.iter().map(Vec::len).collect();
            let mut oi = Vec::new();
            let mut of = Vec::new();
            let strides: Vec<usize> = (0..rank)
                .map(|a| x.dims[a + 1..].iter().product())
                .collect();
            let total: usize = dims.iter().product();
            for flat in 0..total {
                let mut rem = flat;
                let mut src = 0;
                for a in (0..rank).rev() {
                    let k = rem % dims[a];
                    rem /= dims[a];
                    src += keep[a][k] * strides[a];
                }
                oi.push(xi.get(src).copied().unwrap_or(0));
                of.push(xf.get(src).copied().unwrap_or(0.0));
            }
            make(dims, of, oi, ints)
        }
        Op::Transpose { perm } => {
            let rank = x.dims.len();
            let perm: Vec<usize> = if perm.is_empty() {
                (0..rank).rev().collect()
            } else {
                perm.clone()
            };
            if perm.len() != rank {
                return Err(describe(format!(
                    "node `{}` (Transpose): perm {perm:?} for rank {rank}",
                    n.name
                )));
            }
            let dims: Vec<usize> = perm.iter().map(|&p| x.dims[p]).collect();
            let strides: Vec<usize> = (0..rank)
                .map(|a| x.dims[a + 1..].iter().product())
                .collect();
            let total: usize = dims.iter().product();
            let (mut oi, mut of) = (Vec::new(), Vec::new());
            for flat in 0..total {
                let mut rem = flat;
                let mut src = 0;
                for a in (0..rank).rev() {
                    let k = rem % dims[a];
                    rem /= dims[a];
                    src += k * strides[perm[a]];
                }
                oi.push(xi.get(src).copied().unwrap_or(0));
                of.push(xf.get(src).copied().unwrap_or(0.0));
            }
            make(dims, of, oi, ints)
        }
        Op::Cast { to } => make(x.dims.clone(), xf, xi, matches!(to, 6 | 7)),
        Op::Pass => x.clone(),
        Op::Reshape => {
            let shape = host_ints(&host_input(n, consts, vals, 1)?);
            let dims = reshape_dims(&x.dims, &shape, n)?;
            make(dims, xf, xi, ints)
        }
        Op::Binary(op) => {
            let y = host_input(n, consts, vals, 1)?;
            let both_int = ints && y.i64s.is_some();
            let (yi, yf) = (host_ints(&y), host_floats(&y));
            let len = xi.len().max(yi.len());
            if !(xi.len() == yi.len() || xi.len() == 1 || yi.len() == 1) {
                return Err(describe(format!(
                    "node `{}` ({}): host shapes {:?} and {:?}",
                    n.name, n.op_type, x.dims, y.dims
                )));
            }
            let dims = if xi.len() >= yi.len() {
                x.dims.clone()
            } else {
                y.dims.clone()
            };
            let at = |v: &[i64], k: usize| v[if v.len() == 1 { 0 } else { k }];
            let atf = |v: &[f32], k: usize| v[if v.len() == 1 { 0 } else { k }];
            let mut oi = Vec::with_capacity(len);
            let mut of = Vec::with_capacity(len);
            for k in 0..len {
                let (a, b) = (at(&xi, k), at(&yi, k));
                oi.push(match op {
                    BinOp::Add => a.wrapping_add(b),
                    BinOp::Sub => a.wrapping_sub(b),
                    BinOp::Mul => a.wrapping_mul(b),
                    BinOp::Div => {
                        if b == 0 {
                            0
                        } else {
                            a / b
                        }
                    }
                });
                let (a, b) = (atf(&xf, k), atf(&yf, k));
                of.push(match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                });
            }
            make(dims, of, oi, both_int)
        }
        _ => {
            return Err(describe(format!(
                "node `{}` ({}) cannot be computed on host tensors",
                n.name, n.op_type
            )));
        }
    })
}

/// A pooling window must fit the padded input.
fn check_pool_fit(
    n: &Node,
    kernel: &[usize; 2],
    pads: &[usize; 4],
    dims: [usize; 4],
) -> Result<()> {
    let [_, _, h, w] = dims;
    if kernel.contains(&0) || h + pads[0] + pads[1] < kernel[0] || w + pads[2] + pads[3] < kernel[1]
    {
        return Err(describe(format!(
            "node `{}` ({}): kernel {kernel:?} on a {h}×{w} input",
            n.name, n.op_type
        )));
    }
    Ok(())
}

/// The dims of a Reshape of `dims` to `shape` (0 copies a dimension, −1 is inferred).
fn reshape_dims(dims: &[usize], shape: &[i64], n: &Node) -> Result<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out: Vec<usize> = Vec::with_capacity(shape.len());
    let mut infer = None;
    for (k, &s) in shape.iter().enumerate() {
        match s {
            0 => out.push(dims.get(k).copied().unwrap_or(0)),
            -1 if infer.is_none() => {
                infer = Some(k);
                out.push(1);
            }
            s if s > 0 => out.push(s as usize),
            _ => {
                return Err(describe(format!(
                    "node `{}` (Reshape): shape {shape:?}",
                    n.name
                )));
            }
        }
    }
    let known: usize = out.iter().product();
    if let Some(k) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(describe(format!(
                "node `{}` (Reshape): {dims:?} into {shape:?}",
                n.name
            )));
        }
        out[k] = total / known;
    }
    if out.iter().product::<usize>() != total {
        return Err(describe(format!(
            "node `{}` (Reshape): {dims:?} into {shape:?}",
            n.name
        )));
    }
    Ok(out)
}

const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip, Sigmoid, Add, Sub, Mul, Div, \
    MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Pad, Concat, Flatten, Reshape, Gemm, \
    MatMul, Dropout, Identity, LRN, Constant, and the shape computations Shape, Gather, \
    Unsqueeze, Squeeze, ConstantOfShape, Slice, Transpose, Cast";

impl Graph {
    fn parse(path: &Path, bytes: &[u8], options: &OnnxOptions, device: &Device) -> Result<Self> {
        let model = proto::ModelProto::decode(bytes).map_err(|e| ModelError::Read {
            path: path.to_path_buf(),
            reason: format!("not an ONNX model (protobuf decoding failed: {e})"),
        })?;
        let not_onnx = |reason: &str| ModelError::Read {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        };
        let graph = model
            .graph
            .as_ref()
            .ok_or_else(|| not_onnx("not an ONNX model: it has no graph"))?;
        if model.ir_version <= 0 || graph.node.is_empty() {
            return Err(not_onnx(
                "not an ONNX model (no IR version or no nodes; truncated or another format?)",
            ));
        }
        let opset = model
            .opset_import
            .iter()
            .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
            .map_or(0, |o| o.version);
        if opset < 7 {
            return Err(not_onnx(&format!(
                "ONNX opset {opset} is too old (7 or later is supported; torch.onnx.export \
                 writes 17 or later)"
            )));
        }
        let mut consts: Vec<Const> = Vec::new();
        let mut const_of: BTreeMap<String, usize> = BTreeMap::new();
        for t in &graph.initializer {
            const_of.insert(t.name.clone(), consts.len());
            consts.push(tensor_const(t, path)?);
        }
        let mut value_of: BTreeMap<String, usize> = BTreeMap::new();
        let mut value_names: Vec<String> = Vec::new();
        let inputs: Vec<&proto::ValueInfoProto> = graph
            .input
            .iter()
            .filter(|i| !const_of.contains_key(&i.name))
            .collect();
        let [image] = inputs.as_slice() else {
            return Err(describe(format!(
                "{}: a classifier has one image input, this graph has {} ({})",
                path.display(),
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let dims: Vec<Option<i64>> = image
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref())
            .and_then(|t| t.shape.as_ref())
            .map(|s| s.dim.iter().map(|d| d.dim_value).collect())
            .unwrap_or_default();
        if dims.len() != 4 {
            return Err(describe(format!(
                "{}: the input `{}` has rank {}, an image classifier takes [N, C, H, W]",
                path.display(),
                image.name,
                dims.len()
            )));
        }
        let channels = dims[1]
            .and_then(|c| usize::try_from(c).ok())
            .filter(|&c| c > 0)
            .ok_or_else(|| {
                describe(format!(
                    "{}: the input `{}` leaves its channel count symbolic",
                    path.display(),
                    image.name
                ))
            })?;
        let file_hw =
            [dims[2], dims[3]].map(|d| d.and_then(|v| usize::try_from(v).ok()).filter(|&v| v > 0));
        let [height, width] = match (options.input_hw, file_hw) {
            (Some(hw), _) => hw,
            (None, [Some(h), Some(w)]) => [h, w],
            _ => {
                return Err(describe(format!(
                    "{}: the input `{}` leaves its height and width symbolic: give the input size",
                    path.display(),
                    image.name
                )));
            }
        };
        value_of.insert(image.name.clone(), 0);
        value_names.push(image.name.clone());
        let mut producer: Vec<Option<usize>> = vec![None];
        let mut pad_attrs: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
        let mut nodes: Vec<Node> = Vec::new();
        for (k, n) in graph.node.iter().enumerate() {
            let name = if n.name.is_empty() {
                format!("#{k} ({})", n.op_type)
            } else {
                n.name.clone()
            };
            let unsupported = || {
                describe(format!(
                    "node `{name}`: operator `{}{}` is not supported (supported: {SUPPORTED})",
                    if n.domain.is_empty() || n.domain == "ai.onnx" {
                        String::new()
                    } else {
                        format!("{}.", n.domain)
                    },
                    n.op_type
                ))
            };
            if !(n.domain.is_empty() || n.domain == "ai.onnx") {
                return Err(unsupported());
            }
            if n.op_type == "Constant" {
                let t = attr(n, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                    describe(format!("node `{name}`: a Constant without a tensor value"))
                })?;
                let out = n
                    .output
                    .first()
                    .ok_or_else(|| describe(format!("node `{name}` has no output")))?;
                const_of.insert(out.clone(), consts.len());
                consts.push(tensor_const(t, path)?);
                continue;
            }
            let mut ins = Vec::with_capacity(n.input.len());
            for i in &n.input {
                ins.push(if i.is_empty() {
                    Input::Absent
                } else if let Some(&c) = const_of.get(i) {
                    Input::Const(c)
                } else if let Some(&v) = value_of.get(i) {
                    Input::Value(v)
                } else {
                    return Err(describe(format!(
                        "node `{name}` reads `{i}`, which no earlier node computes (the graph is \
                         not in topological order, or is truncated)"
                    )));
                });
            }
            let const_in = |k: usize, what: &str| -> Result<&Const> {
                match ins.get(k) {
                    Some(Input::Const(c)) => Ok(&consts[*c]),
                    _ => Err(describe(format!(
                        "node `{name}` ({}): its {what} must be a constant",
                        n.op_type
                    ))),
                }
            };
            let value_in = |k: usize| -> Result<()> {
                match ins.get(k) {
                    Some(Input::Value(_)) => Ok(()),
                    _ => Err(describe(format!(
                        "node `{name}` ({}): input {k} must be computed by the graph",
                        n.op_type
                    ))),
                }
            };
            let op = match n.op_type.as_str() {
                "Conv" => {
                    value_in(0)?;
                    let Some(Input::Const(wc)) = ins.get(1).copied() else {
                        return Err(describe(format!(
                            "node `{name}` (Conv): its weight must be a constant"
                        )));
                    };
                    let w = &consts[wc];
                    let wd: [usize; 4] = w.dims.clone().try_into().map_err(|_| {
                        describe(format!(
                            "node `{name}` (Conv): weight dims {:?}, expected 4-D",
                            w.dims
                        ))
                    })?;
                    let bias_const = match ins.get(2) {
                        Some(Input::Const(c)) => Some(*c),
                        None | Some(Input::Absent) => None,
                        Some(Input::Value(_)) => {
                            return Err(describe(format!(
                                "node `{name}` (Conv): its bias must be a constant"
                            )));
                        }
                    };
                    if let Some(b) = bias_const
                        && consts[b].dims != [wd[0]]
                    {
                        return Err(describe(format!(
                            "node `{name}` (Conv): bias dims {:?} for {} output channels",
                            consts[b].dims, wd[0]
                        )));
                    }
                    let auto =
                        attr(n, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).to_string());
                    if auto.as_deref().is_some_and(|a| a != "NOTSET") {
                        return Err(describe(format!(
                            "node `{name}` (Conv): auto_pad {auto:?} is not supported (export with explicit pads)"
                        )));
                    }
                    let groups = usize::try_from(attr_int(n, "group", 1)).unwrap_or(0);
                    if groups == 0 || !wd[0].is_multiple_of(groups) {
                        return Err(describe(format!(
                            "node `{name}` (Conv): {groups} groups for {} output channels",
                            wd[0]
                        )));
                    }
                    let weight = Tensor::<4>::from_data(
                        TensorData::new(w.floats(&name)?.to_vec(), wd),
                        device,
                    );
                    let bias = match bias_const {
                        Some(b) => Some(Tensor::<1>::from_data(
                            TensorData::new(consts[b].floats(&name)?.to_vec(), [wd[0]]),
                            device,
                        )),
                        None => None,
                    };
                    Op::Conv {
                        weight,
                        bias,
                        weight_const: wc,
                        bias_const,
                        stride: pair(attr_ints(n, "strides"), 1, "strides", &name)?,
                        pads: pads4(attr_ints(n, "pads"), &name)?,
                        dilation: pair(attr_ints(n, "dilations"), 1, "dilations", &name)?,
                        groups,
                    }
                }
                "BatchNormalization" => {
                    value_in(0)?;
                    let eps = f64::from(attr_float(n, "epsilon", 1e-5));
                    let g = const_in(1, "scale")?.floats(&name)?.to_vec();
                    let b = const_in(2, "bias")?.floats(&name)?.to_vec();
                    let m = const_in(3, "mean")?.floats(&name)?.to_vec();
                    let v = const_in(4, "variance")?.floats(&name)?.to_vec();
                    if [b.len(), m.len(), v.len()].iter().any(|&l| l != g.len()) {
                        return Err(describe(format!(
                            "node `{name}` (BatchNormalization): parameters of different lengths"
                        )));
                    }
                    let (scale, shift) = bn_scale_shift(&g, &b, &m, &v, eps);
                    Op::BatchNorm {
                        scale,
                        shift,
                        gamma: g,
                        beta: b,
                        mean: m,
                        var: v,
                        eps,
                    }
                }
                "Relu" => Op::Relu,
                "Sigmoid" => Op::Sigmoid,
                "Clip" => {
                    let bound = |k: usize, attr_name: &str, default: f32| -> Result<f32> {
                        match ins.get(k) {
                            Some(Input::Const(c)) => {
                                consts[*c].floats(&name)?.first().copied().ok_or_else(|| {
                                    describe(format!("node `{name}` (Clip): empty bound"))
                                })
                            }
                            Some(Input::Value(_)) => Ok(f32::NAN),
                            _ => Ok(attr_float(n, attr_name, default)),
                        }
                    };
                    Op::Clip {
                        min: bound(1, "min", f32::NEG_INFINITY)?,
                        max: bound(2, "max", f32::INFINITY)?,
                    }
                }
                "Add" => Op::Binary(BinOp::Add),
                "Sub" => Op::Binary(BinOp::Sub),
                "Mul" => Op::Binary(BinOp::Mul),
                "Div" => Op::Binary(BinOp::Div),
                "MaxPool" => {
                    value_in(0)?;
                    if n.output.len() > 1 && !n.output[1].is_empty() {
                        return Err(describe(format!(
                            "node `{name}` (MaxPool): its indices output is not supported"
                        )));
                    }
                    let kernel = pair(attr_ints(n, "kernel_shape"), 0, "kernel_shape", &name)?;
                    Op::MaxPool {
                        kernel,
                        stride: pair(attr_ints(n, "strides"), 1, "strides", &name)?,
                        pads: pads4(attr_ints(n, "pads"), &name)?,
                        dilation: pair(attr_ints(n, "dilations"), 1, "dilations", &name)?,
                        ceil: attr_int(n, "ceil_mode", 0) != 0,
                    }
                }
                "AveragePool" => {
                    value_in(0)?;
                    Op::AveragePool {
                        kernel: pair(attr_ints(n, "kernel_shape"), 0, "kernel_shape", &name)?,
                        stride: pair(attr_ints(n, "strides"), 1, "strides", &name)?,
                        pads: pads4(attr_ints(n, "pads"), &name)?,
                        ceil: attr_int(n, "ceil_mode", 0) != 0,
                        count_include_pad: attr_int(n, "count_include_pad", 0) != 0,
                    }
                }
                "GlobalAveragePool" => Op::GlobalAveragePool,
                "Pad" => {
                    value_in(0)?;
                    let mode = attr(n, "mode").map_or("constant".to_string(), |a| {
                        String::from_utf8_lossy(&a.s).to_string()
                    });
                    if mode != "constant" {
                        return Err(describe(format!(
                            "node `{name}` (Pad): only constant (zero) padding is supported, not {mode}"
                        )));
                    }
                    Op::Pad
                }
                "Concat" => Op::Concat {
                    axis: attr_int(n, "axis", 1),
                },
                "Shape" => Op::Shape,
                "Gather" => Op::Gather {
                    axis: attr_int(n, "axis", 0),
                },
                "Unsqueeze" => Op::Unsqueeze {
                    axes: attr_ints(n, "axes"),
                },
                "Squeeze" => Op::Squeeze {
                    axes: attr_ints(n, "axes"),
                },
                "ConstantOfShape" => Op::ConstantOfShape {
                    value: match attr(n, "value").and_then(|a| a.t.as_ref()) {
                        Some(t) => tensor_const(t, path)?,
                        None => Const {
                            dims: vec![1],
                            f32s: Some(vec![0.0]),
                            i64s: None,
                        },
                    },
                },
                "Slice" => Op::Slice,
                "Transpose" => Op::Transpose {
                    perm: to_usize(&attr_ints(n, "perm").unwrap_or_default(), "perm", &name)?,
                },
                "Cast" => {
                    let to = i32::try_from(attr_int(n, "to", 1)).unwrap_or(0);
                    if ![1, 6, 7, 11].contains(&to) {
                        return Err(describe(format!(
                            "node `{name}` (Cast): to ONNX type {to} is not supported"
                        )));
                    }
                    Op::Cast { to }
                }
                "ReduceMean" => Op::ReduceMean {
                    axes: attr_ints(n, "axes"),
                    keepdims: attr_int(n, "keepdims", 1) != 0,
                },
                "Flatten" => {
                    if attr_int(n, "axis", 1) != 1 {
                        return Err(describe(format!(
                            "node `{name}` (Flatten): only axis 1 is supported"
                        )));
                    }
                    Op::Flatten
                }
                "Reshape" => Op::Reshape,
                "Gemm" | "MatMul" => {
                    value_in(0)?;
                    let (alpha, beta, ta, tb) = if n.op_type == "Gemm" {
                        (
                            attr_float(n, "alpha", 1.0),
                            attr_float(n, "beta", 1.0),
                            attr_int(n, "transA", 0),
                            attr_int(n, "transB", 0),
                        )
                    } else {
                        (1.0, 1.0, 0, 0)
                    };
                    if ta != 0 {
                        return Err(describe(format!(
                            "node `{name}` (Gemm): transA is not supported"
                        )));
                    }
                    let b = const_in(1, "weight (B)")?;
                    let [r, c]: [usize; 2] = b.dims.clone().try_into().map_err(|_| {
                        describe(format!(
                            "node `{name}` ({}): weight dims {:?}, expected 2-D",
                            n.op_type, b.dims
                        ))
                    })?;
                    let w = b.floats(&name)?;
                    // to [K, N], scaled by alpha
                    let (k, nn, data): (usize, usize, Vec<f32>) = if tb != 0 {
                        let mut d = vec![0.0; r * c];
                        for i in 0..r {
                            for j in 0..c {
                                d[j * r + i] = w[i * c + j] * alpha;
                            }
                        }
                        (c, r, d)
                    } else {
                        (r, c, w.iter().map(|v| v * alpha).collect())
                    };
                    let bias = match ins.get(2) {
                        Some(Input::Const(cc)) => {
                            let bv = consts[*cc].floats(&name)?;
                            if bv.len() != nn {
                                return Err(describe(format!(
                                    "node `{name}` (Gemm): bias of {} values for {nn} outputs",
                                    bv.len()
                                )));
                            }
                            Some(Tensor::<1>::from_data(
                                TensorData::new(
                                    bv.iter().map(|v| v * beta).collect::<Vec<f32>>(),
                                    [nn],
                                ),
                                device,
                            ))
                        }
                        Some(Input::Value(_)) => {
                            return Err(describe(format!(
                                "node `{name}` (Gemm): its bias must be a constant"
                            )));
                        }
                        _ => None,
                    };
                    Op::Gemm {
                        weight: Tensor::<2>::from_data(TensorData::new(data, [k, nn]), device),
                        bias,
                    }
                }
                "Dropout" | "Identity" => Op::Pass,
                "LRN" => Op::Lrn {
                    size: usize::try_from(attr_int(n, "size", 0)).unwrap_or(0).max(1),
                    alpha: f64::from(attr_float(n, "alpha", 1e-4)),
                    beta: f64::from(attr_float(n, "beta", 0.75)),
                    bias: f64::from(attr_float(n, "bias", 1.0)),
                },
                _ => return Err(unsupported()),
            };
            let host_op = matches!(
                op,
                Op::Binary(_)
                    | Op::Concat { .. }
                    | Op::Gather { .. }
                    | Op::Unsqueeze { .. }
                    | Op::Squeeze { .. }
                    | Op::ConstantOfShape { .. }
                    | Op::Slice
                    | Op::Transpose { .. }
                    | Op::Cast { .. }
                    | Op::Reshape
            );
            let on_consts = ins.iter().all(|i| !matches!(i, Input::Value(_)));
            if (host_op || matches!(op, Op::Pass)) && on_consts {
                // computes on constants only: fold it now
                let folded = {
                    let tmp = Node {
                        name: name.clone(),
                        op_type: n.op_type.clone(),
                        op: op.clone(),
                        inputs: ins.clone(),
                        output: 0,
                    };
                    host_eval(&tmp, &consts, &[])?
                };
                let out = n
                    .output
                    .first()
                    .ok_or_else(|| describe(format!("node `{name}` has no output")))?;
                const_of.insert(out.clone(), consts.len());
                consts.push(folded);
                continue;
            }
            if !host_op {
                value_in(0)?;
            }
            let out = n
                .output
                .first()
                .filter(|o| !o.is_empty())
                .ok_or_else(|| describe(format!("node `{name}` has no output")))?;
            let id = value_names.len();
            if matches!(op, Op::Pad)
                && let Some(p) = attr_ints(n, "pads")
            {
                pad_attrs.insert(id, p);
            }
            value_of.insert(out.clone(), id);
            value_names.push(out.clone());
            producer.push(Some(nodes.len()));
            nodes.push(Node {
                name,
                op_type: n.op_type.clone(),
                op,
                inputs: ins,
                output: id,
            });
        }
        let out_name = graph
            .output
            .first()
            .map(|o| o.name.clone())
            .ok_or_else(|| describe(format!("{}: the graph has no output", path.display())))?;
        let output = *value_of.get(&out_name).ok_or_else(|| {
            describe(format!(
                "{}: the graph output `{out_name}` is not computed by any node",
                path.display()
            ))
        })?;
        let nv = value_names.len();
        let mut consumers = vec![Vec::new(); nv];
        let mut last_use = vec![0usize; nv];
        for (k, n) in nodes.iter().enumerate() {
            for i in &n.inputs {
                if let Input::Value(v) = *i {
                    consumers[v].push(k);
                    last_use[v] = k;
                }
            }
        }
        let mut g = Graph {
            path: path.to_path_buf(),
            nodes,
            consts,
            value_names,
            producer,
            consumers,
            input: 0,
            output,
            shapes: Vec::new(),
            input_spec: InputSpec {
                channels,
                height,
                width,
            },
            last_use,
            pad_attrs,
            probe_pads: Vec::new(),
            any_size: false,
            fusions: Vec::new(),
        };
        g.fusions = g.find_fusions();
        // a probe run at batch 1 records every value's shape
        let probe = Tensor::<4>::zeros([1, channels, height, width], device);
        let keep = vec![true; nv];
        let vals = g.run(probe, &keep)?;
        g.shapes = vals
            .iter()
            .map(|v| v.as_ref().map(Val::dims).unwrap_or_default())
            .collect();
        g.probe_pads = g
            .nodes
            .iter()
            .map(|n| match n.op {
                Op::Pad => g.pad_amounts(n, &vals).ok(),
                _ => None,
            })
            .collect();
        match g.shapes[output].as_slice() {
            [1, k] if *k > 0 => {}
            other => {
                return Err(describe(format!(
                    "{}: the graph output `{out_name}` has shape {other:?} for one image: a \
                     classifier outputs [N, classes] logits (no classifier output)",
                    path.display()
                )));
            }
        }
        Ok(g)
    }

    fn num_classes(&self) -> usize {
        self.shapes[self.output].get(1).copied().unwrap_or(0)
    }

    fn channels(&self, v: usize) -> usize {
        self.shapes[v].get(1).copied().unwrap_or(0)
    }

    fn is_4d(&self, v: usize) -> bool {
        self.shapes[v].len() == 4
    }

    fn run(&self, x: Tensor<4>, keep: &[bool]) -> Result<Vec<Option<Val>>> {
        self.run_taps(x, keep, &[], &mut NoTaps, None)
    }

    /// Runs the graph; every value listed in `taps` (value id, tap id) is handed to `sink` as
    /// soon as it is computed, and the graph goes on with what the sink returns. With `stop`,
    /// the run ends as soon as that value is computed (the nodes after it do not run) and the
    /// images may have any height and width the nodes before it accept.
    fn run_taps(
        &self,
        x: Tensor<4>,
        keep: &[bool],
        taps: &[(usize, TapId)],
        sink: &mut dyn TapSink,
        stop: Option<usize>,
    ) -> Result<Vec<Option<Val>>> {
        let hand = |v: usize, val: Val, sink: &mut dyn TapSink| match val {
            Val::T4(t) => match taps.iter().find(|(tv, _)| *tv == v) {
                Some(&(_, id)) => Val::T4(sink.tap(id, t)),
                None => Val::T4(t),
            },
            other => other,
        };
        let [_, c, h, w] = x.dims();
        let want = self.input_spec;
        let fits = if stop.is_some() || self.any_size {
            c == want.channels
        } else {
            [c, h, w] == [want.channels, want.height, want.width]
        };
        if !fits {
            return Err(ModelError::Input {
                expected: format!(
                    "[N, {}, {}, {}] images",
                    want.channels, want.height, want.width
                ),
                got: x.dims().to_vec(),
            });
        }
        let device = x.device();
        let mut vals: Vec<Option<Val>> = vec![None; self.value_names.len()];
        vals[self.input] = Some(hand(self.input, Val::T4(x), sink));
        if stop == Some(self.input) {
            return Ok(vals);
        }
        let mut fused = vec![false; self.nodes.len()];
        for (k, n) in self.nodes.iter().enumerate() {
            if !fused[k] {
                let (v, out) = match self.eval_fused(k, &vals, keep, taps, stop)? {
                    Some((f, out)) => {
                        for &m in &f.nodes {
                            fused[m] = true;
                        }
                        (f.out, out)
                    }
                    None => (n.output, self.eval(n, &vals, &device)?),
                };
                vals[v] = Some(hand(v, out, sink));
                if stop == Some(v) {
                    return Ok(vals);
                }
            }
            for i in &n.inputs {
                if let Input::Value(v) = *i
                    && self.last_use[v] == k
                    && !keep[v]
                    && v != self.output
                {
                    vals[v] = None;
                }
            }
        }
        Ok(vals)
    }

    /// Sets the epsilon of the batch norms named by their output value to the network's own
    /// (f64) value, which the ONNX attribute rounded to f32, and recomputes what depends on
    /// it: folded kernels then equal the network's own folding bit for bit.
    pub(crate) fn set_epsilons(&mut self, epsilons: &[(String, f64)]) {
        for n in &mut self.nodes {
            let Op::BatchNorm {
                scale,
                shift,
                gamma,
                beta,
                mean,
                var,
                eps,
            } = &mut n.op
            else {
                continue;
            };
            let name = &self.value_names[n.output];
            if let Some((_, e)) = epsilons.iter().find(|(v, _)| v == name) {
                *eps = *e;
                (*scale, *shift) = bn_scale_shift(gamma, beta, mean, var, *e);
            }
        }
        self.fusions = self.find_fusions();
    }

    /// The fusions of [`Graph::fusions`]: a Conv whose only reader is a ReLU, or a bias-free
    /// Conv whose only reader is a BatchNormalization whose only reader is a ReLU.
    fn find_fusions(&self) -> Vec<Option<Fusion>> {
        let only_reader = |v: usize| match self.consumers[v].as_slice() {
            [k] if v != self.output => Some(*k),
            _ => None,
        };
        self.nodes
            .iter()
            .map(|n| {
                let Op::Conv { bias, .. } = &n.op else {
                    return None;
                };
                let mut inner = vec![n.output];
                let mut nodes = Vec::new();
                let mut bn = None;
                let mut k = only_reader(n.output)?;
                if let Op::BatchNorm {
                    gamma,
                    beta,
                    mean,
                    var,
                    eps,
                    ..
                } = &self.nodes[k].op
                {
                    if bias.is_some() {
                        return None;
                    }
                    let eps = *eps as f32;
                    let sd = var.iter().map(|&v| (v + eps).sqrt()).collect();
                    bn = Some([gamma.clone(), beta.clone(), mean.clone(), sd]);
                    nodes.push(k);
                    inner.push(self.nodes[k].output);
                    k = only_reader(self.nodes[k].output)?;
                }
                if !matches!(self.nodes[k].op, Op::Relu) {
                    return None;
                }
                nodes.push(k);
                Some(Fusion {
                    inner,
                    nodes,
                    out: self.nodes[k].output,
                    bn,
                })
            })
            .collect()
    }

    /// Node `k` and the nodes it fuses with, in one host pass ([`Fusion`]), or `None` where
    /// it does not fuse: no fusion, a value inside the chain is kept, tapped or the stop, the
    /// input is not on the host, or the host convolution does not take the shapes.
    fn eval_fused<'a>(
        &'a self,
        k: usize,
        vals: &[Option<Val>],
        keep: &[bool],
        taps: &[(usize, TapId)],
        stop: Option<usize>,
    ) -> Result<Option<(&'a Fusion, Val)>> {
        let Some(f) = self.fusions.get(k).and_then(Option::as_ref) else {
            return Ok(None);
        };
        if f.inner
            .iter()
            .any(|&v| keep[v] || stop == Some(v) || taps.iter().any(|(t, _)| *t == v))
        {
            return Ok(None);
        }
        let n = &self.nodes[k];
        let Op::Conv {
            weight,
            bias,
            stride,
            pads,
            dilation,
            groups,
            ..
        } = &n.op
        else {
            return Ok(None);
        };
        let x = self.t4(n, vals, 0)?;
        if !crate::conv::on_host(&x) {
            return Ok(None);
        }
        let c_out = weight.dims()[0];
        let b = match bias {
            Some(b) => match b.clone().into_data().try_into_vec::<f32>() {
                Ok(b) if b.len() == c_out => b,
                _ => return Ok(None),
            },
            None => vec![0.0; c_out],
        };
        let epi = match &f.bn {
            Some([gamma, beta, mean, sd]) if gamma.len() == c_out => {
                crate::conv::Epilogue::BnRelu {
                    mean,
                    sd,
                    gamma,
                    beta,
                }
            }
            Some(_) => return Ok(None),
            None => crate::conv::Epilogue::BiasRelu(&b),
        };
        let y = match host_conv(x, weight, *stride, *pads, *dilation, *groups, epi) {
            Ok(y) => Some(y),
            // burn's convolution, then the epilogue in one host pass
            Err(x) => {
                let opts = conv_options(*stride, *pads, *dilation, *groups);
                let y = crate::convgrad::conv2d(x, weight.clone(), None, opts);
                crate::conv::epilogue_tensor(&y, epi)
            }
        };
        Ok(y.map(|y| (f, Val::T4(y))))
    }

    fn value(&self, n: &Node, vals: &[Option<Val>], k: usize) -> Result<Val> {
        match n.inputs.get(k) {
            Some(Input::Value(v)) => vals[*v].clone().ok_or_else(|| {
                describe(format!(
                    "node `{}`: input `{}` was freed",
                    n.name, self.value_names[*v]
                ))
            }),
            _ => Err(describe(format!("node `{}`: input {k} missing", n.name))),
        }
    }

    fn host_err(&self, n: &Node) -> ModelError {
        describe(format!(
            "node `{}` ({}) applied to a host tensor (a shape computation)",
            n.name, n.op_type
        ))
    }

    /// The `[top, bottom, left, right]` zero padding of a Pad node (from its pads input or
    /// attribute); only the two spatial axes of a 4-D tensor may be padded, with zeros.
    fn pad_amounts(&self, n: &Node, vals: &[Option<Val>]) -> Result<[usize; 4]> {
        let raw = match n.inputs.get(1) {
            Some(Input::Const(_)) | Some(Input::Value(_)) => {
                host_ints(&host_input(n, &self.consts, vals, 1)?)
            }
            _ => self.pad_attrs.get(&n.output).cloned().unwrap_or_default(),
        };
        let value = match n.inputs.get(2) {
            Some(Input::Const(_)) | Some(Input::Value(_)) => {
                host_floats(&host_input(n, &self.consts, vals, 2)?)
                    .first()
                    .copied()
                    .unwrap_or(0.0)
            }
            _ => 0.0,
        };
        let p = to_usize(&raw, "pads", &n.name)?;
        if value != 0.0 || p.len() != 8 || p[0] + p[1] + p[4] + p[5] != 0 {
            return Err(describe(format!(
                "node `{}` (Pad): only zero padding of the two spatial axes of a 4-D tensor is \
                 supported (value {value}, pads {raw:?})",
                n.name
            )));
        }
        Ok([p[2], p[6], p[3], p[7]])
    }

    fn t4(&self, n: &Node, vals: &[Option<Val>], k: usize) -> Result<Tensor<4>> {
        match self.value(n, vals, k)? {
            Val::T4(t) => Ok(t),
            other => Err(describe(format!(
                "node `{}` ({}): expected a 4-D input, got {:?}",
                n.name,
                n.op_type,
                other.dims()
            ))),
        }
    }

    fn const_val(&self, c: usize, rank: usize, device: &Device, n: &Node) -> Result<Val> {
        let k = &self.consts[c];
        let data = k
            .f32s
            .clone()
            .or_else(|| {
                k.i64s
                    .as_ref()
                    .map(|v| v.iter().map(|&x| x as f32).collect())
            })
            .unwrap_or_default();
        if k.dims.len() > rank {
            return Err(describe(format!(
                "node `{}` ({}): constant of rank {} broadcast against rank {rank}",
                n.name,
                n.op_type,
                k.dims.len()
            )));
        }
        let mut dims = vec![1usize; rank - k.dims.len()];
        dims.extend(&k.dims);
        Ok(match rank {
            4 => Val::T4(Tensor::<4>::from_data(
                TensorData::new(data, [dims[0], dims[1], dims[2], dims[3]]),
                device,
            )),
            _ => Val::T2(Tensor::<2>::from_data(
                TensorData::new(data, [dims[0], dims[1]]),
                device,
            )),
        })
    }

    fn eval(&self, n: &Node, vals: &[Option<Val>], device: &Device) -> Result<Val> {
        Ok(match &n.op {
            Op::Conv {
                weight,
                bias,
                stride,
                pads,
                dilation,
                groups,
                ..
            } => {
                let x = self.t4(n, vals, 0)?;
                let [_, c, h, w] = x.dims();
                let [_, cin_g, kh, kw] = weight.dims();
                let span = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1];
                if c != cin_g * groups
                    || h + pads[0] + pads[1] < span[0]
                    || w + pads[2] + pads[3] < span[1]
                {
                    return Err(describe(format!(
                        "node `{}` (Conv): input [{c}, {h}, {w}] does not fit its kernel {:?} in {groups} groups",
                        n.name,
                        weight.dims()
                    )));
                }
                // ungrouped, on the CPU: the host convolution (`crate::conv`) or, strided, its
                // columns times a product (`crate::im2col`)
                let x = if crate::conv::on_host(&x) {
                    let c_out = weight.dims()[0];
                    let b = match bias {
                        Some(b) => b.clone().into_data().try_into_vec::<f32>().ok(),
                        None => Some(vec![0.0; c_out]),
                    };
                    match b {
                        Some(b) if b.len() == c_out => {
                            let epi = crate::conv::Epilogue::Bias(&b);
                            match host_conv(x, weight, *stride, *pads, *dilation, *groups, epi) {
                                Ok(y) => return Ok(Val::T4(y)),
                                Err(x) => x,
                            }
                        }
                        _ => x,
                    }
                } else {
                    x
                };
                let opts = conv_options(*stride, *pads, *dilation, *groups);
                Val::T4(crate::convgrad::conv2d(
                    x,
                    weight.clone(),
                    bias.clone(),
                    opts,
                ))
            }
            Op::BatchNorm { scale, shift, .. } => {
                let x = self.t4(n, vals, 0)?;
                let c = x.dims()[1];
                if c != scale.len() {
                    return Err(describe(format!(
                        "node `{}` (BatchNormalization): {} parameters for {c} channels",
                        n.name,
                        scale.len()
                    )));
                }
                let s =
                    Tensor::<4>::from_data(TensorData::new(scale.clone(), [1, c, 1, 1]), device);
                let b =
                    Tensor::<4>::from_data(TensorData::new(shift.clone(), [1, c, 1, 1]), device);
                Val::T4(x * s + b)
            }
            Op::Relu => match self.value(n, vals, 0)? {
                Val::T4(t) => Val::T4(crate::act::relu(t)),
                Val::T2(t) => Val::T2(crate::act::relu(t)),
                Val::Host(_) => return Err(self.host_err(n)),
            },
            Op::Sigmoid => match self.value(n, vals, 0)? {
                Val::T4(t) => Val::T4(activation::sigmoid(t)),
                Val::T2(t) => Val::T2(activation::sigmoid(t)),
                Val::Host(_) => return Err(self.host_err(n)),
            },
            Op::Shape => Val::Host(Const {
                dims: vec![self.value(n, vals, 0)?.dims().len()],
                f32s: None,
                i64s: Some(
                    self.value(n, vals, 0)?
                        .dims()
                        .iter()
                        .map(|&d| d as i64)
                        .collect(),
                ),
            }),
            Op::Gather { .. }
            | Op::Unsqueeze { .. }
            | Op::Squeeze { .. }
            | Op::ConstantOfShape { .. }
            | Op::Slice
            | Op::Transpose { .. }
            | Op::Cast { .. } => Val::Host(host_eval(n, &self.consts, vals)?),
            Op::ReduceMean { axes, keepdims } => {
                let x = self.t4(n, vals, 0)?;
                let mut ax: Vec<i64> = match axes {
                    Some(a) => a.clone(),
                    None => host_input(n, &self.consts, vals, 1)
                        .map(|c| host_ints(&c))
                        .unwrap_or_default(),
                };
                for a in &mut ax {
                    if *a < 0 {
                        *a += 4;
                    }
                }
                ax.sort_unstable();
                if ax != [2, 3] {
                    return Err(describe(format!(
                        "node `{}` (ReduceMean): only the mean over the two spatial axes is supported, not {ax:?}",
                        n.name
                    )));
                }
                let [b, c, h, w] = x.dims();
                let m = x.reshape([b, c, h * w]).mean_dim(2);
                if *keepdims {
                    Val::T4(m.reshape([b, c, 1, 1]))
                } else {
                    Val::T2(m.reshape([b, c]))
                }
            }
            Op::Clip { min, max } => {
                let bound = |k: usize, v: f32| -> Result<f32> {
                    if v.is_nan() {
                        host_input(n, &self.consts, vals, k)
                            .map(|c| host_floats(&c).first().copied().unwrap_or(f32::NAN))
                    } else {
                        Ok(v)
                    }
                };
                let (min, max) = (&bound(1, *min)?, &bound(2, *max)?);
                let clip4 = |t: Tensor<4>| {
                    let t = if min.is_finite() {
                        t.clamp_min(*min)
                    } else {
                        t
                    };
                    if max.is_finite() {
                        t.clamp_max(*max)
                    } else {
                        t
                    }
                };
                let clip2 = |t: Tensor<2>| {
                    let t = if min.is_finite() {
                        t.clamp_min(*min)
                    } else {
                        t
                    };
                    if max.is_finite() {
                        t.clamp_max(*max)
                    } else {
                        t
                    }
                };
                match self.value(n, vals, 0)? {
                    Val::T4(t) => Val::T4(clip4(t)),
                    Val::T2(t) => Val::T2(clip2(t)),
                    Val::Host(_) => return Err(self.host_err(n)),
                }
            }
            Op::Binary(op) => {
                let rank = n
                    .inputs
                    .iter()
                    .find_map(|i| match i {
                        Input::Value(v) => vals[*v].as_ref().map(|x| x.dims().len()),
                        _ => None,
                    })
                    .unwrap_or(4);
                let get = |k: usize| -> Result<Val> {
                    match n.inputs.get(k) {
                        Some(Input::Const(c)) => self.const_val(*c, rank, device, n),
                        _ => self.value(n, vals, k),
                    }
                };
                let all_host = n.inputs.iter().all(|i| match i {
                    Input::Value(v) => matches!(vals[*v], Some(Val::Host(_))),
                    _ => true,
                });
                if all_host {
                    return Ok(Val::Host(host_eval(n, &self.consts, vals)?));
                }
                let (a, b) = (get(0)?, get(1)?);
                let bad = |a: &Val, b: &Val| {
                    describe(format!(
                        "node `{}` ({}): cannot broadcast {:?} with {:?}",
                        n.name,
                        n.op_type,
                        a.dims(),
                        b.dims()
                    ))
                };
                let ok = |x: &[usize], y: &[usize]| {
                    x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p == q || *p == 1 || *q == 1)
                };
                if !ok(&a.dims(), &b.dims()) {
                    return Err(bad(&a, &b));
                }
                match (a, b) {
                    (Val::T4(x), Val::T4(y)) => Val::T4(match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                    }),
                    (Val::T2(x), Val::T2(y)) => Val::T2(match op {
                        BinOp::Add => x + y,
                        BinOp::Sub => x - y,
                        BinOp::Mul => x * y,
                        BinOp::Div => x / y,
                    }),
                    (a, b) => return Err(bad(&a, &b)),
                }
            }
            Op::MaxPool {
                kernel,
                stride,
                pads,
                dilation,
                ceil,
            } => {
                let x = self.t4(n, vals, 0)?;
                check_pool_fit(n, kernel, pads, x.dims())?;
                let mut o = MaxPoolOptions::new(*kernel);
                o.stride = *stride;
                o.padding = [(pads[0], pads[1]), (pads[2], pads[3])];
                o.dilation = *dilation;
                o.ceil_mode = *ceil;
                Val::T4(crate::pool::max_pool2d(x, o))
            }
            Op::AveragePool {
                kernel,
                stride,
                pads,
                ceil,
                count_include_pad,
            } => {
                let x = self.t4(n, vals, 0)?;
                check_pool_fit(n, kernel, pads, x.dims())?;
                let mut o = AvgPoolOptions::new(*kernel);
                o.stride = *stride;
                o.padding = [(pads[0], pads[1]), (pads[2], pads[3])];
                o.ceil_mode = *ceil;
                o.count_include_pad = *count_include_pad;
                Val::T4(avg_pool2d(x, o))
            }
            Op::GlobalAveragePool => {
                let x = self.t4(n, vals, 0)?;
                let [b, c, h, w] = x.dims();
                Val::T4(x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c, 1, 1]))
            }
            Op::Pad => {
                let pads = self.pad_amounts(n, vals)?;
                let x = self.t4(n, vals, 0)?;
                Val::T4(x.pad(
                    [(pads[0], pads[1]), (pads[2], pads[3])],
                    PadMode::Constant(0.0),
                ))
            }
            Op::Concat { axis } => {
                let host = n.inputs.iter().any(|i| match i {
                    Input::Value(v) => matches!(vals[*v], Some(Val::Host(_))),
                    _ => true,
                });
                if host {
                    return Ok(Val::Host(host_eval(n, &self.consts, vals)?));
                }
                if *axis != 1 && *axis != -3 {
                    return Err(describe(format!(
                        "node `{}` (Concat): only the channel axis (1) of feature maps is supported",
                        n.name
                    )));
                }
                let mut ts = Vec::with_capacity(n.inputs.len());
                for k in 0..n.inputs.len() {
                    ts.push(self.t4(n, vals, k)?);
                }
                let d0 = ts.first().map(|t| t.dims()).unwrap_or([0; 4]);
                if ts.iter().any(|t| {
                    let d = t.dims();
                    d[0] != d0[0] || d[2] != d0[2] || d[3] != d0[3]
                }) {
                    return Err(describe(format!(
                        "node `{}` (Concat): inputs of different batch or spatial sizes",
                        n.name
                    )));
                }
                Val::T4(Tensor::cat(ts, 1))
            }
            Op::Flatten => match self.value(n, vals, 0)? {
                Val::T4(t) => {
                    let [b, c, h, w] = t.dims();
                    Val::T2(t.reshape([b, c * h * w]))
                }
                Val::Host(_) => return Err(self.host_err(n)),
                v => v,
            },
            Op::Reshape => {
                let v = self.value(n, vals, 0)?;
                if let Val::Host(_) = v {
                    return Ok(Val::Host(host_eval(n, &self.consts, vals)?));
                }
                let shape = host_ints(&host_input(n, &self.consts, vals, 1)?);
                let dims = v.dims();
                let out = reshape_dims(&dims, &shape, n)?;
                let total: usize = dims.iter().product();
                let flat = match v {
                    Val::T4(t) => t.reshape([total]),
                    Val::T2(t) => t.reshape([total]),
                    Val::Host(_) => return Err(self.host_err(n)),
                };
                match out.as_slice() {
                    [a, b] => Val::T2(flat.reshape([*a, *b])),
                    [a, b, c, d] => Val::T4(flat.reshape([*a, *b, *c, *d])),
                    _ => {
                        return Err(describe(format!(
                            "node `{}` (Reshape): only 2-D and 4-D results are supported, not {out:?}",
                            n.name
                        )));
                    }
                }
            }
            Op::Gemm { weight, bias } => {
                let a = match self.value(n, vals, 0)? {
                    Val::Host(_) => return Err(self.host_err(n)),
                    Val::T2(t) => t,
                    Val::T4(t) => {
                        let [b, c, h, w] = t.dims();
                        if h * w != 1 {
                            return Err(describe(format!(
                                "node `{}` ({}): a 4-D input [{b}, {c}, {h}, {w}]",
                                n.name, n.op_type
                            )));
                        }
                        t.reshape([b, c])
                    }
                };
                let [_, k] = a.dims();
                if k != weight.dims()[0] {
                    return Err(describe(format!(
                        "node `{}` ({}): {k} inputs for a {:?} weight",
                        n.name,
                        n.op_type,
                        weight.dims()
                    )));
                }
                let y = a.matmul(weight.clone());
                Val::T2(match bias {
                    Some(b) => {
                        let nn = b.dims()[0];
                        y + b.clone().reshape([1, nn])
                    }
                    None => y,
                })
            }
            Op::Pass => self.value(n, vals, 0)?,
            Op::Lrn {
                size,
                alpha,
                beta,
                bias,
            } => Val::T4(local_response_norm(
                self.t4(n, vals, 0)?,
                *size,
                *alpha,
                *beta,
                *bias,
            )),
        })
    }
}

/// One hop found by the graph walk.
#[derive(Debug, Clone)]
enum RawHop {
    /// a Conv node, the BatchNormalization folded into it, and the zero padding of a Pad node
    /// before it
    Conv {
        node: usize,
        bn: Option<usize>,
        extra_pads: [usize; 4],
        input: usize,
    },
    Identity {
        input: usize,
        channels: usize,
    },
}

impl RawHop {
    fn input(&self) -> usize {
        match self {
            RawHop::Conv { input, .. } | RawHop::Identity { input, .. } => *input,
        }
    }
}

#[derive(Debug, Clone)]
struct RawPath {
    hops: Vec<RawHop>,
    out_offset: usize,
}

/// Ops that act channel by channel (no cross-channel influence) and pass their first input on.
fn channel_wise(op: &Op) -> bool {
    matches!(
        op,
        Op::Relu
            | Op::Clip { .. }
            | Op::Sigmoid
            | Op::MaxPool { .. }
            | Op::AveragePool { .. }
            | Op::Pad
            | Op::Pass
            | Op::BatchNorm { .. }
            | Op::Lrn { .. }
    )
}

impl Graph {
    fn first_value(&self, n: &Node) -> Option<usize> {
        n.inputs.iter().find_map(|i| match i {
            Input::Value(v) => Some(*v),
            _ => None,
        })
    }

    /// The nodes reading `v` as data (shape queries not counted).
    fn uses(&self, v: usize) -> usize {
        self.consumers[v]
            .iter()
            .filter(|&&k| !matches!(self.nodes[k].op, Op::Shape))
            .count()
    }

    fn name_of(&self, v: usize) -> &str {
        &self.value_names[v]
    }

    /// The value a channel-wise Mul passes on: `x · sigmoid(x)` (SiLU), `x · gate` with a
    /// `[B, C, 1, 1]` gate (squeeze-excitation) or `x · constant`.
    fn mul_passthrough(&self, n: &Node) -> Option<usize> {
        let ins: Vec<Input> = n.inputs.clone();
        let vals: Vec<usize> = ins
            .iter()
            .filter_map(|i| match i {
                Input::Value(v) => Some(*v),
                _ => None,
            })
            .collect();
        match vals.as_slice() {
            [v] => Some(*v),
            [a, b] => {
                let sig_of = |s: usize, x: usize| {
                    self.producer[s].is_some_and(|p| {
                        matches!(self.nodes[p].op, Op::Sigmoid)
                            && self.first_value(&self.nodes[p]) == Some(x)
                    })
                };
                let gate = |g: usize, x: usize| {
                    let (gs, xs) = (&self.shapes[g], &self.shapes[x]);
                    gs.len() == 4
                        && xs.len() == 4
                        && gs[2] * gs[3] == 1
                        && xs[2] * xs[3] > 1
                        && gs[1] == xs[1]
                };
                if sig_of(*b, *a) || gate(*b, *a) {
                    Some(*a)
                } else if sig_of(*a, *b) || gate(*a, *b) {
                    Some(*b)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Paths from `stop` into `t`. `top`: `t` is (a summand or branch of) the summary layer
    /// itself, so that an Add or Concat may split it.
    fn walk(
        &self,
        t: usize,
        stop: usize,
        top: bool,
        layer: &str,
        prev: &str,
    ) -> Result<Vec<RawPath>> {
        if t == stop {
            return Ok(vec![RawPath {
                hops: Vec::new(),
                out_offset: 0,
            }]);
        }
        let Some(k) = self.producer[t] else {
            return Err(describe(format!(
                "the paths into summary layer `{layer}` reach the model input without passing \
                 `{prev}`: choose summary layers that every path passes"
            )));
        };
        let n = &self.nodes[k];
        match &n.op {
            Op::Conv { .. } => self.conv_hop(k, None, stop, layer, prev),
            Op::BatchNorm { .. } => {
                let x = self.first_value(n).unwrap_or(stop);
                match self.producer[x] {
                    Some(p) if matches!(self.nodes[p].op, Op::Conv { .. }) && self.uses(x) == 1 => {
                        self.conv_hop(p, Some(k), stop, layer, prev)
                    }
                    _ => self.walk(x, stop, top, layer, prev),
                }
            }
            op if channel_wise(op) => {
                let x = self.first_value(n).unwrap_or(stop);
                self.walk(x, stop, top, layer, prev)
            }
            Op::Binary(BinOp::Mul) => match self.mul_passthrough(n) {
                Some(x) => self.walk(x, stop, top, layer, prev),
                None => Err(describe(format!(
                    "node `{}` (Mul) between summary layers `{prev}` and `{layer}` multiplies two \
                     feature maps; only channel-wise gates (SiLU, squeeze-excitation, constants) \
                     can be described",
                    n.name
                ))),
            },
            Op::Binary(BinOp::Add) if top => {
                let mut out = Vec::new();
                for i in &n.inputs {
                    let a = match i {
                        Input::Value(v) => *v,
                        _ => {
                            return Err(describe(format!(
                                "node `{}` (Add) into summary layer `{layer}` adds a constant",
                                n.name
                            )));
                        }
                    };
                    // back through channel-wise ops: a fork (a tensor read elsewhere too) or the
                    // previous summary layer makes this summand a skip connection
                    let mut u = a;
                    while u != stop {
                        match self.producer[u] {
                            Some(p)
                                if channel_wise(&self.nodes[p].op)
                                    && !matches!(self.nodes[p].op, Op::BatchNorm { .. })
                                    && self.uses(u) == 1 =>
                            {
                                u = self.first_value(&self.nodes[p]).unwrap_or(stop);
                            }
                            _ => break,
                        }
                    }
                    let fork = u == stop || self.uses(u) > 1;
                    if fork {
                        for mut p in self.walk(u, stop, false, layer, prev)? {
                            p.hops.push(RawHop::Identity {
                                input: a,
                                channels: self.channels(a),
                            });
                            out.push(p);
                        }
                    } else {
                        out.extend(self.walk(a, stop, true, layer, prev)?);
                    }
                }
                Ok(out)
            }
            Op::Concat { .. } if top => {
                let mut out = Vec::new();
                let mut offset = 0;
                for i in &n.inputs {
                    if let Input::Value(v) = *i {
                        for mut p in self.walk(v, stop, true, layer, prev)? {
                            p.out_offset += offset;
                            out.push(p);
                        }
                        offset += self.channels(v);
                    }
                }
                Ok(out)
            }
            Op::Binary(_) | Op::Concat { .. } => Err(describe(format!(
                "node `{}` ({}) lies between summary layers `{prev}` and `{layer}`: the paths \
                 through it cannot be described; make its output a summary layer (name it in the \
                 layers) or choose other layers",
                n.name, n.op_type
            ))),
            _ => Err(describe(format!(
                "node `{}` ({}) between summary layers `{prev}` and `{layer}` cannot be part of a \
                 convolution path",
                n.name, n.op_type
            ))),
        }
    }

    fn conv_hop(
        &self,
        conv: usize,
        bn: Option<usize>,
        stop: usize,
        layer: &str,
        prev: &str,
    ) -> Result<Vec<RawPath>> {
        let n = &self.nodes[conv];
        let mut input = self.first_value(n).unwrap_or(stop);
        let mut extra_pads = [0; 4];
        if input != stop
            && let Some(p) = self.producer[input]
            && let Some(pads) = self.probe_pads[p]
            && self.uses(input) == 1
        {
            extra_pads = pads;
            input = self.first_value(&self.nodes[p]).unwrap_or(stop);
        }
        let mut out = self.walk(input, stop, false, layer, prev)?;
        for p in &mut out {
            p.hops.push(RawHop::Conv {
                node: conv,
                bn,
                extra_pads,
                input,
            });
        }
        Ok(out)
    }

    /// Whether every path from the input to `target` passes through `t`.
    fn dominates(&self, t: usize, target: usize) -> bool {
        if t == self.input {
            return true;
        }
        let mut reached = vec![false; self.value_names.len()];
        reached[self.input] = true;
        for n in &self.nodes {
            if n.output == t {
                continue;
            }
            if n.inputs
                .iter()
                .any(|i| matches!(i, Input::Value(v) if reached[*v]))
            {
                reached[n.output] = true;
            }
        }
        !reached[target]
    }

    /// The tensor the first summary layer's paths start from: the nearest tensor before `s`
    /// (along first inputs) that every path to `s` passes and from which every path into `s`
    /// can be described with at least one hop (the input of the first block: ResNet's max
    /// pool, MobileNetV2's `features.2` output, a plain CNN's image).
    /// The input the original Summit code gave a convolution in place of `v` (SPEC §2.1,
    /// `summit2019`): `v` followed back through the max pools and local response
    /// normalisations that produced it (a stage's max pool, a pool branch's pool), to the
    /// value before them; `v` itself where no such operation produced it.
    fn shortcut_of(&self, v: usize) -> usize {
        let mut t = v;
        while let Some(k) = self.producer[t] {
            let n = &self.nodes[k];
            if !matches!(n.op, Op::MaxPool { .. } | Op::Lrn { .. }) {
                break;
            }
            match self.first_value(n) {
                Some(x) => t = x,
                None => break,
            }
        }
        t
    }

    fn stem_for(&self, s: usize, layer: &str) -> Result<usize> {
        let mut t = s;
        while let Some(k) = self.producer[t] {
            let Some(x) = self.first_value(&self.nodes[k]) else {
                break;
            };
            t = x;
            if self.is_4d(t)
                && self.dominates(t, s)
                && let Ok(paths) = self.walk(s, t, true, layer, "the stem")
                && !paths.is_empty()
                && paths.iter().all(|p| !p.hops.is_empty())
            {
                return Ok(t);
            }
        }
        Err(describe(format!(
            "no tensor before the first summary layer `{layer}` starts paths of convolutions into it"
        )))
    }

    /// The value after the activation that directly follows `v`, if any.
    fn activated(&self, v: usize) -> usize {
        match self.consumers[v].as_slice() {
            [c] if matches!(self.nodes[*c].op, Op::Relu | Op::Clip { .. }) => self.nodes[*c].output,
            [a, b] => {
                // SiLU: v · sigmoid(v)
                let (na, nb) = (&self.nodes[*a], &self.nodes[*b]);
                for (s, m) in [(na, nb), (nb, na)] {
                    if matches!(s.op, Op::Sigmoid)
                        && matches!(m.op, Op::Binary(BinOp::Mul))
                        && m.inputs.contains(&Input::Value(s.output))
                        && m.inputs.contains(&Input::Value(v))
                    {
                        return m.output;
                    }
                }
                v
            }
            _ => v,
        }
    }

    /// The summary layers: `(name, value)` in graph order.
    fn summary_layers(&self, names: Option<&[String]>) -> Result<Vec<(String, usize)>> {
        let mut out: Vec<(String, usize)> = Vec::new();
        match names {
            None => {
                let sums: Vec<usize> = (0..self.nodes.len())
                    .filter(|&k| {
                        matches!(self.nodes[k].op, Op::Binary(BinOp::Add) | Op::Concat { .. })
                            && self.is_4d(self.nodes[k].output)
                            && self.nodes[k]
                                .inputs
                                .iter()
                                .filter(|i| matches!(i, Input::Value(_)))
                                .count()
                                >= 2
                    })
                    .collect();
                let picks: Vec<usize> = if sums.is_empty() {
                    (0..self.nodes.len())
                        .filter(|&k| matches!(self.nodes[k].op, Op::Conv { .. }))
                        .collect()
                } else {
                    sums
                };
                for k in picks {
                    let n = &self.nodes[k];
                    let mut name = module_path(&n.name);
                    if name.is_empty() {
                        name = self.name_of(n.output).to_string();
                    }
                    out.push((name, self.activated(n.output)));
                }
                // the last convolution of a plain CNN may feed the classifier directly; keep it
            }
            Some(names) => {
                for want in names {
                    let v = if let Some(v) = self.value_names.iter().position(|n| n == want) {
                        v
                    } else {
                        let last = (0..self.nodes.len())
                            .rev()
                            .find(|&k| self.is_4d(self.nodes[k].output) && {
                                let m = module_path(&self.nodes[k].name);
                                m == *want
                            })
                            .ok_or_else(|| {
                                let known: Vec<String> = self
                                    .nodes
                                    .iter()
                                    .filter(|n| matches!(n.op, Op::Conv { .. } | Op::Binary(BinOp::Add) | Op::Concat { .. }))
                                    .map(|n| module_path(&n.name))
                                    .filter(|m| !m.is_empty())
                                    .take(12)
                                    .collect();
                                describe(format!(
                                    "{}: no tensor or module named `{want}` (module paths include: {})",
                                    self.path.display(),
                                    known.join(", ")
                                ))
                            })?;
                        let n = &self.nodes[last];
                        if matches!(n.op, Op::Conv { .. } | Op::BatchNorm { .. }) {
                            self.activated(n.output)
                        } else {
                            n.output
                        }
                    };
                    if !self.is_4d(v) {
                        return Err(describe(format!(
                            "summary layer `{want}`: tensor `{}` has shape {:?}, not [N, C, H, W]",
                            self.name_of(v),
                            self.shapes[v]
                        )));
                    }
                    out.push((want.clone(), v));
                }
                let order = |v: usize| self.producer[v].map_or(0, |k| k + 1);
                for w in out.windows(2) {
                    if order(w[0].1) >= order(w[1].1) {
                        return Err(describe(format!(
                            "summary layers `{}` and `{}` are not in graph order (or are the same tensor)",
                            w[0].0, w[1].0
                        )));
                    }
                }
            }
        }
        if out.is_empty() {
            return Err(describe(format!(
                "{}: no summary layer found",
                self.path.display()
            )));
        }
        // unique names
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for (name, _) in &mut out {
            let c = seen.entry(name.clone()).or_insert(0);
            *c += 1;
            if *c > 1 {
                *name = format!("{name}#{c}");
            }
        }
        Ok(out)
    }

    fn folded(&self, node: usize, bn: Option<usize>) -> Result<FoldedKernel> {
        let n = &self.nodes[node];
        let Op::Conv {
            weight_const,
            bias_const,
            ..
        } = &n.op
        else {
            return Err(describe(format!("node `{}` is not a convolution", n.name)));
        };
        let w = &self.consts[*weight_const];
        let dims: [usize; 4] = w
            .dims
            .clone()
            .try_into()
            .map_err(|_| describe(format!("node `{}`: weight not 4-D", n.name)))?;
        let weight = w.floats(&n.name)?.to_vec();
        let bias = match bias_const {
            Some(b) => self.consts[*b].floats(&n.name)?.to_vec(),
            None => vec![0.0; dims[0]],
        };
        let Some(bn) = bn else {
            return Ok(FoldedKernel { dims, weight, bias });
        };
        let Op::BatchNorm {
            gamma,
            beta,
            mean,
            var,
            eps,
            ..
        } = &self.nodes[bn].op
        else {
            return Ok(FoldedKernel { dims, weight, bias });
        };
        if gamma.len() != dims[0] {
            return Err(describe(format!(
                "node `{}` (BatchNormalization): {} channels after a convolution of {}",
                self.nodes[bn].name,
                gamma.len(),
                dims[0]
            )));
        }
        let per = dims[1] * dims[2] * dims[3];
        let mut fw = Vec::with_capacity(weight.len());
        let mut fb = Vec::with_capacity(dims[0]);
        for j in 0..dims[0] {
            let scale = f64::from(gamma[j]) / (f64::from(var[j]) + eps).sqrt();
            fw.extend(
                weight[j * per..(j + 1) * per]
                    .iter()
                    .map(|&v| (f64::from(v) * scale) as f32),
            );
            fb.push(
                ((f64::from(bias[j]) - f64::from(mean[j])) * scale + f64::from(beta[j])) as f32,
            );
        }
        Ok(FoldedKernel {
            dims,
            weight: fw,
            bias: fb,
        })
    }

    fn describe(&self, options: &OnnxOptions) -> Result<(ModelDescription, Vec<usize>)> {
        let layers = self.summary_layers(options.layers.as_deref())?;
        let mut taps: Vec<usize> = Vec::new();
        let tap_of = |v: usize, taps: &mut Vec<usize>| -> TapId {
            match taps.iter().position(|&t| t == v) {
                Some(p) => TapId(p),
                None => {
                    taps.push(v);
                    TapId(taps.len() - 1)
                }
            }
        };
        let mut summary = Vec::with_capacity(layers.len());
        for (name, v) in &layers {
            summary.push(SummaryLayer {
                name: name.clone(),
                alias: None,
                channels: self.channels(*v),
                tap: tap_of(*v, &mut taps),
            });
        }
        let mut all_paths = Vec::with_capacity(layers.len());
        for (l, (name, v)) in layers.iter().enumerate() {
            let (stop, prev) = if l == 0 {
                let s = self.stem_for(*v, name)?;
                (s, format!("the stem tensor `{}`", self.name_of(s)))
            } else {
                (layers[l - 1].1, layers[l - 1].0.clone())
            };
            let raw = self.walk(*v, stop, true, name, &prev)?;
            let mut paths = Vec::with_capacity(raw.len());
            for rp in raw {
                if rp.hops.is_empty() {
                    return Err(describe(format!(
                        "summary layer `{name}` is reached from `{prev}` without a convolution"
                    )));
                }
                let mut hops = Vec::with_capacity(rp.hops.len());
                for h in &rp.hops {
                    let input = tap_of(h.input(), &mut taps);
                    let original_input = tap_of(self.shortcut_of(h.input()), &mut taps);
                    hops.push(match h {
                        RawHop::Identity { channels, .. } => {
                            ConvHop::identity(input, None, *channels)
                        }
                        RawHop::Conv {
                            node,
                            bn,
                            extra_pads,
                            ..
                        } => {
                            let Op::Conv {
                                stride,
                                pads,
                                dilation,
                                groups,
                                ..
                            } = &self.nodes[*node].op
                            else {
                                return Err(describe(format!(
                                    "node `{}` is not a convolution",
                                    self.nodes[*node].name
                                )));
                            };
                            let p = [0, 1, 2, 3].map(|a| pads[a] + extra_pads[a]);
                            ConvHop {
                                name: module_path(&self.nodes[*node].name),
                                input,
                                original_input,
                                output: None,
                                kernel: self.folded(*node, *bn)?,
                                stride: *stride,
                                padding: p,
                                dilation: *dilation,
                                groups: *groups,
                                kind: crate::describe::HopKind::Conv,
                            }
                        }
                    });
                }
                for h in 0..hops.len().saturating_sub(1) {
                    hops[h].output = Some(hops[h + 1].input);
                }
                let last_identity = matches!(rp.hops.last(), Some(RawHop::Identity { .. }));
                let kind = match (hops.len(), last_identity) {
                    (_, true) => PathKind::Skip,
                    (1, false) => PathKind::Direct,
                    _ => PathKind::Chain,
                };
                let pname = match rp.hops.last() {
                    Some(RawHop::Conv { node, .. }) => {
                        let m = module_path(&self.nodes[*node].name);
                        if m.is_empty() {
                            self.nodes[*node].name.clone()
                        } else {
                            m
                        }
                    }
                    Some(RawHop::Identity { input, .. }) => {
                        format!("skip from `{}`", self.name_of(*input))
                    }
                    None => String::new(),
                };
                let out_channels = hops.last().map_or(0, ConvHop::out_channels);
                paths.push(ConvPath {
                    name: pname,
                    kind,
                    hops,
                    out_offset: rp.out_offset,
                    out_channels,
                });
            }
            all_paths.push(paths);
        }
        let tap_infos = taps
            .iter()
            .map(|&v| TapInfo {
                name: self.name_of(v).to_string(),
                channels: self.channels(v),
            })
            .collect();
        let file = self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |f| f.to_string_lossy().to_string(),
        );
        let lrn: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Lrn { .. }))
            .map(|n| n.name.as_str())
            .collect();
        // SPEC §2.1: a cross-channel operation that is not a convolution is ignored by the
        // paths, and the description says so
        let note = if lrn.is_empty() {
            String::new()
        } else {
            format!(
                " (local response normalisation at {} ignored by the paths)",
                lrn.join(", ")
            )
        };
        Ok((
            ModelDescription {
                name: format!("onnx:{file}{note}"),
                input: self.input_spec,
                num_classes: self.num_classes(),
                taps: tap_infos,
                layers: summary,
                paths: all_paths,
            },
            taps,
        ))
    }
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
        Ok(crate::describe::GraphRef {
            model: self,
            outputs: None,
        })
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

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod fusion_tests {
    use super::*;
    use crate::blocks::{BasicConv2d, ConvSpec};
    use crate::onnx::build::GraphBuilder;
    use burn::module::{Param, RunningState};

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

    /// The graph runs conv → batch norm → ReLU as one host pass (the batch norm + ReLU in the
    /// host convolution's output pass at stride 1, after the host columns' product when
    /// strided) whose values are bit for bit burn's `batch_norm` then `relu` of the same
    /// sums, for 1×1, 3×3, 5×5 strided convolutions and odd planes; a tapped value inside
    /// the chain turns the fusion off and the values stay those of burn's operations in turn.
    #[test]
    fn fused_conv_batch_norm_relu_is_burns_bit_for_bit() {
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
            let mut g = GraphBuilder::new(c_in, [hw, hw]);
            let input = g.input();
            let y = block.to_graph(&mut g, "block", &input, spec).unwrap();
            let p = g.global_average_pool("pool", &y);
            let f = g.flatten("flatten", &p);
            let w = crate::weights::HostTensor::new(vec![2, c_out], vec![1.0; 2 * c_out]);
            let out = g.gemm("fc", &f, &w, None).unwrap();
            let model = g
                .finish(&out, "one block", &device)
                .expect("graph of one block");
            let graph = &model.graph;
            assert!(graph.fusions.iter().any(Option::is_some), "case {k}: fused");
            let id = |name: &str| graph.value_names.iter().position(|v| v == name).unwrap();
            let keep = vec![false; graph.value_names.len()];
            let stop = id("block");
            // fused
            let mut vals = graph
                .run_taps(x.clone(), &keep, &[], &mut NoTaps, Some(stop))
                .unwrap();
            let Some(Val::T4(fused)) = vals[stop].take() else {
                panic!("no block output")
            };
            // not fused: the convolution's value is tapped
            let taps = [(id("block.conv"), TapId(0))];
            let mut vals = graph
                .run_taps(x.clone(), &keep, &taps, &mut NoTaps, Some(stop))
                .unwrap();
            let Some(Val::T4(apart)) = vals[stop].take() else {
                panic!("no block output")
            };
            // the reference: burn's batch norm and ReLU of the host sums
            let p = kernel / 2;
            let sums = if stride == 1 {
                let zero = vec![0.0f32; c_out];
                crate::conv::conv2d_tensor(
                    x.clone(),
                    &block.conv.weight.val(),
                    [p; 4],
                    crate::conv::Epilogue::Bias(&zero),
                )
                .ok()
                .unwrap()
            } else {
                let u = crate::im2col::Unfold {
                    kh: kernel,
                    kw: kernel,
                    stride: [stride, stride],
                    pad: [p; 4],
                };
                crate::im2col::conv2d(&x, &block.conv.weight.val(), &u).unwrap()
            };
            let reference = burn::tensor::activation::relu(block.bn.forward(sums));
            let r = to_host(reference, "reference").unwrap();
            let a = to_host(fused, "fused").unwrap();
            zeros += a.iter().filter(|&&v| v == 0.0).count();
            positive += a.iter().filter(|&&v| v > 0.0).count();
            assert_eq!(a.len(), r.len());
            for (i, (u, v)) in a.iter().zip(&r).enumerate() {
                assert_eq!(u.to_bits(), v.to_bits(), "case {k}, element {i}: {u} vs {v}");
            }
            let b = to_host(apart, "apart").unwrap();
            let e = b
                .iter()
                .zip(&r)
                .map(|(u, v)| f64::from((u - v).abs()))
                .fold(0.0, f64::max);
            assert!(e < 1e-5, "case {k}: unfused differs by {e}");
        }
        assert!(
            zeros > 0 && positive > 0,
            "{zeros} zeros, {positive} positive"
        );
    }
}
