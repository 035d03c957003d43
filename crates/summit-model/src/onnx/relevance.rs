//! Relevance propagation through the model graph (layer-wise relevance propagation, SPEC §4.2).
//!
//! The graph knows how relevance crosses every operator that is not a linear layer: activations,
//! batch norm and dropout pass it unchanged; max pooling sends it to the maximum (the gradient);
//! average pooling and the residual Add use the `Norm` rule (zennit: each input's share of the
//! output, `R_i = x_i · R / stab(Σ x)`); Concat splits it by channel; flatten, reshape and padding
//! pass it back to the input's shape. A batch norm directly after a convolution is folded into
//! it first (zennit's `MergeBatchNorm` canonizer). Linear layers (convolutions and dense layers)
//! are handed to a [`LinearRelevance`], which applies an LRP rule; the rules and composites live
//! in `summit-attribution`. An operator the graph has no rule for is an error naming the node and
//! the operator, never a silent gradient.

use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

use super::{BinOp, Graph, Input, Node, OnnxModel, Op, Val, conv_options, module_path};
use crate::error::{ModelError, Result};

/// What kind of linear layer a [`LinearLayer`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinearKind {
    /// A convolution (`Conv`), batch norm folded in where one follows it.
    Convolution,
    /// A dense layer (`Gemm`, `MatMul`).
    Dense,
}

impl LinearKind {
    /// `convolution` or `dense`.
    pub fn name(self) -> &'static str {
        match self {
            LinearKind::Convolution => "convolution",
            LinearKind::Dense => "dense",
        }
    }
}

/// One linear layer of the graph as a relevance rule sees it: its weights (batch norm folded)
/// and the means to apply them to modified inputs with modified weights. A dense layer is
/// presented as a 1×1 convolution on `[N, K, 1, 1]`.
pub struct LinearLayer<'a> {
    name: String,
    node: &'a str,
    op_type: &'a str,
    kind: LinearKind,
    index: usize,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
    output: Option<Tensor<4>>,
}

impl std::fmt::Debug for LinearLayer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinearLayer")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("index", &self.index)
            .field("weight", &self.weight.dims())
            .finish()
    }
}

impl LinearLayer<'_> {
    /// The layer's name: its PyTorch module path where the node name carries one
    /// (`layer1.0.conv1`, `features.0`, `inception3a.branch2.1`), else the node name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The graph node's own name.
    pub fn node(&self) -> &str {
        self.node
    }

    /// The operator (`Conv`, `Gemm`).
    pub fn op_type(&self) -> &str {
        self.op_type
    }

    /// Convolution or dense.
    pub fn kind(&self) -> LinearKind {
        self.kind
    }

    /// The position among the graph's linear layers in execution order (0: the first, the
    /// one composites treat specially).
    pub fn index(&self) -> usize {
        self.index
    }

    /// `[C_out, C_in / groups, kh, kw]` (dense: `[N, K, 1, 1]`), batch norm folded in.
    pub fn weight(&self) -> Tensor<4> {
        self.weight.clone()
    }

    /// One bias per output channel, if the layer has one (batch norm folding gives one).
    pub fn bias(&self) -> Option<Tensor<1>> {
        self.bias.clone()
    }

    /// The layer applied to `x` with weights `weight` and bias `bias` (the layer's stride,
    /// padding, dilation and groups).
    pub fn apply(&self, x: Tensor<4>, weight: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
        crate::convgrad::conv2d(x, weight, bias, self.options.clone())
    }

    /// What the layer computed in the forward pass (`w·x + b`, batch norm folded in): the `z`
    /// of the `epsilon` rule, without computing it again.
    pub fn output(&self) -> Option<Tensor<4>> {
        self.output.clone()
    }

    /// `Jᵀ s`: the layer's linear map with weights `weight` transposed, applied to `s` (shaped
    /// like the layer's output), giving a tensor of `input_dims` — the gradient of `Σ s ·
    /// apply(x, weight, ·)` with respect to `x`, computed without a forward pass
    /// ([`crate::convgrad::transpose`]).
    pub fn transpose(
        &self,
        s: &Tensor<4>,
        weight: &Tensor<4>,
        input_dims: [usize; 4],
    ) -> Result<Tensor<4>> {
        let t = crate::convgrad::transpose(
            s.clone(),
            weight.clone(),
            &self.options,
            [input_dims[2], input_dims[3]],
        );
        if t.dims() != input_dims {
            return Err(ModelError::Describe(format!(
                "layer `{}`: the transposed map has shape {:?}, not the input's {input_dims:?}",
                self.name,
                t.dims()
            )));
        }
        Ok(t)
    }
}

/// The rule for linear layers: given the layer, its input `x` and the relevance `r` of its
/// output (shaped like the output), the relevance of its input (shaped like `x`).
pub trait LinearRelevance {
    /// The relevance of `layer`'s input.
    fn relevance(&self, layer: &LinearLayer<'_>, x: Tensor<4>, r: Tensor<4>) -> Result<Tensor<4>>;

    /// The stabiliser of the `Norm` rule (residual Add, average pooling): zennit's 1e-6.
    fn stabilizer(&self) -> f32 {
        1e-6
    }
}

/// Where relevance starts.
pub enum RelevanceSeed<'a> {
    /// At the logits: the function gets the logits `[N, classes]` and returns their relevance
    /// (e.g. the one-hot of the target).
    Logits(&'a dyn Fn(&Tensor<2>) -> Result<Tensor<2>>),
    /// At a value of the graph (a summary layer's tap, by the value's name): the function gets
    /// the value `[N, C, H, W]` and returns its relevance. The nodes after it do not run.
    Value {
        /// The value's name ([`OnnxModel::value_name_of_layer`]).
        name: String,
        /// Its relevance from its activation.
        seed: &'a dyn Fn(&Tensor<4>) -> Result<Tensor<4>>,
    },
}

/// zennit's stabiliser: `z + ε · (sign z + [z = 0])`, moving every entry away from zero with its
/// sign (zero counts as positive).
pub fn stabilize<const D: usize>(z: Tensor<D>, epsilon: f32) -> Tensor<D> {
    let sign = z.clone().sign() + z.clone().equal_elem(0.0).float();
    z + sign * epsilon
}

/// `r / stab(z)` with [`stabilize`]; with `ε = 0`, entries where `z = 0` are 0 (a safe divide).
pub fn divide_stabilized<const D: usize>(r: Tensor<D>, z: Tensor<D>, epsilon: f32) -> Tensor<D> {
    if epsilon == 0.0 {
        let zero = z.clone().equal_elem(0.0);
        let denom = z.mask_fill(zero.clone(), 1.0);
        (r / denom).mask_fill(zero, 0.0)
    } else {
        r / stabilize(z, epsilon)
    }
}

/// The gradient of `Σ s · f(x)` with respect to `x` (a vector–Jacobian product), by burn's
/// autodiff on the device of `x`.
pub fn vjp<const D: usize>(
    x: &Tensor<4>,
    s: &Tensor<D>,
    f: impl Fn(Tensor<4>) -> Tensor<D>,
) -> Result<Tensor<4>> {
    let plain = x.device();
    let ad = plain.clone().autodiff();
    let xa = Tensor::<4>::from_data(x.clone().into_data(), &ad).require_grad();
    let sa = Tensor::<D>::from_data(s.clone().into_data(), &ad);
    let y = f(xa.clone());
    if y.dims() != s.dims() {
        return Err(ModelError::Describe(format!(
            "relevance: a map of shape {:?} for an output of shape {:?}",
            s.dims(),
            y.dims()
        )));
    }
    let grads = y.mul(sa).sum().backward();
    let g = xa.grad(&grads).ok_or_else(|| {
        ModelError::Unsupported("relevance: autodiff gave no gradient for a layer input".into())
    })?;
    Ok(Tensor::from_data(g.into_data(), &plain))
}

/// Max pooling's relevance step: each output's relevance goes to the maximum of its window,
/// the first in row-major order where several are equal (PyTorch's gradient, whose tie-break
/// matters where relevance reaches windows of equal values, e.g. zeros after a ReLU under the
/// `flat` rule). Padding never wins.
fn max_pool_route(
    x: &Tensor<4>,
    r: &Tensor<4>,
    kernel: [usize; 2],
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
) -> Result<Tensor<4>> {
    let [n, c, h, w] = x.dims();
    let [rn, rc, oh, ow] = r.dims();
    if rn != n || rc != c {
        return Err(ModelError::Describe(format!(
            "relevance: max pooling's relevance {:?} for an input {:?}",
            r.dims(),
            x.dims()
        )));
    }
    let xs = crate::describe::to_host(x.clone(), "max pool input")?;
    let rs = crate::describe::to_host(r.clone(), "max pool relevance")?;
    let mut out = vec![0f32; xs.len()];
    use rayon::prelude::*;
    out.par_chunks_mut(h * w)
        .enumerate()
        .for_each(|(plane, op)| {
            let xp = &xs[plane * h * w..(plane + 1) * h * w];
            let rp = &rs[plane * oh * ow..(plane + 1) * oh * ow];
            for oy in 0..oh {
                for ox in 0..ow {
                    let rv = rp[oy * ow + ox];
                    if rv == 0.0 {
                        continue;
                    }
                    let mut best: Option<(usize, f32)> = None;
                    for ky in 0..kernel[0] {
                        let iy = (oy * stride[0] + ky * dilation[0]) as isize - pads[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..kernel[1] {
                            let ix =
                                (ox * stride[1] + kx * dilation[1]) as isize - pads[2] as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let i = iy as usize * w + ix as usize;
                            let v = xp[i];
                            if best.is_none_or(|(_, b)| v > b || v.is_nan()) {
                                best = Some((i, v));
                            }
                        }
                    }
                    if let Some((i, _)) = best {
                        op[i] += rv;
                    }
                }
            }
        });
    Ok(Tensor::from_data(
        TensorData::new(out, [n, c, h, w]),
        &x.device(),
    ))
}

/// A value as `[N, C, H, W]` (a `[N, K]` one as `[N, K, 1, 1]`).
fn as4(v: &Val, what: &str) -> Result<Tensor<4>> {
    match v {
        Val::T4(t) => Ok(t.clone()),
        Val::T2(t) => {
            let [n, k] = t.dims();
            Ok(t.clone().reshape([n, k, 1, 1]))
        }
        Val::Host(_) => Err(ModelError::Describe(format!(
            "relevance: `{what}` is a shape computation, not a feature map"
        ))),
    }
}

/// `[N, C, H, W]` of a value (`[N, K, 1, 1]` for `[N, K]`).
fn dims4(v: &Val) -> Option<[usize; 4]> {
    match v {
        Val::T4(t) => Some(t.dims()),
        Val::T2(t) => {
            let [n, k] = t.dims();
            Some([n, k, 1, 1])
        }
        Val::Host(_) => None,
    }
}

fn no_rule(n: &Node, why: &str) -> ModelError {
    ModelError::Describe(format!(
        "node `{}` ({}): no relevance rule{why}",
        n.name, n.op_type
    ))
}

impl Graph {
    /// The batch norm folded into each convolution node (the convolution's only reader).
    fn folded_batch_norms(&self) -> Vec<Option<usize>> {
        self.nodes
            .iter()
            .map(|n| {
                if !matches!(n.op, Op::Conv { .. }) || self.uses(n.output) != 1 {
                    return None;
                }
                self.consumers[n.output]
                    .iter()
                    .copied()
                    .find(|&k| matches!(self.nodes[k].op, Op::BatchNorm { .. }))
            })
            .collect()
    }

    /// The linear layers in execution order: `(node index, kind)`.
    fn linear_nodes(&self) -> Vec<(usize, LinearKind)> {
        self.nodes
            .iter()
            .enumerate()
            .filter_map(|(k, n)| match n.op {
                Op::Conv { .. } => Some((k, LinearKind::Convolution)),
                Op::Gemm { .. } => Some((k, LinearKind::Dense)),
                _ => None,
            })
            .collect()
    }

    fn layer_name(n: &Node) -> String {
        let p = module_path(&n.name);
        if p.is_empty() { n.name.clone() } else { p }
    }

    fn linear_layer(
        &self,
        k: usize,
        index: usize,
        bn: Option<usize>,
        output: Option<Tensor<4>>,
        device: &Device,
    ) -> Result<LinearLayer<'_>> {
        let n = &self.nodes[k];
        let (kind, weight, bias, options) = match &n.op {
            Op::Conv {
                weight,
                bias,
                stride,
                pads,
                dilation,
                groups,
                ..
            } => {
                let opts = conv_options(*stride, *pads, *dilation, *groups);
                match bn {
                    Some(b) => {
                        let f = self.folded(k, Some(b))?;
                        let c = f.dims[0];
                        let w = Tensor::<4>::from_data(TensorData::new(f.weight, f.dims), device);
                        let b = Tensor::<1>::from_data(TensorData::new(f.bias, [c]), device);
                        (LinearKind::Convolution, w, Some(b), opts)
                    }
                    None => (LinearKind::Convolution, weight.clone(), bias.clone(), opts),
                }
            }
            Op::Gemm { weight, bias } => {
                let [kk, nn] = weight.dims();
                let w = weight.clone().transpose().reshape([nn, kk, 1, 1]);
                (
                    LinearKind::Dense,
                    w,
                    bias.clone(),
                    ConvOptions::new([1, 1], [0, 0], [1, 1], 1),
                )
            }
            _ => return Err(no_rule(n, ": not a linear layer")),
        };
        Ok(LinearLayer {
            name: Self::layer_name(n),
            node: &n.name,
            op_type: &n.op_type,
            kind,
            index,
            weight,
            bias,
            options,
            output,
        })
    }

    /// The relevance of the input images: a forward pass keeping every value, then relevance
    /// flows back from the seed node by node.
    fn relevance(
        &self,
        x: Tensor<4>,
        seed: &RelevanceSeed<'_>,
        rules: &dyn LinearRelevance,
    ) -> Result<Tensor<4>> {
        let device = x.device();
        let input_dims = x.dims();
        let stop = match seed {
            RelevanceSeed::Logits(_) => None,
            RelevanceSeed::Value { name, .. } => Some(
                self.value_names
                    .iter()
                    .position(|v| v == name)
                    .ok_or_else(|| {
                        ModelError::Describe(format!("relevance: the graph has no value `{name}`"))
                    })?,
            ),
        };
        let keep = vec![true; self.value_names.len()];
        let vals = self.run_taps(x, &keep, &[], &mut crate::describe::NoTaps, stop)?;
        let mut rel: Vec<Option<Tensor<4>>> = vec![None; self.value_names.len()];
        match seed {
            RelevanceSeed::Logits(f) => {
                let Some(Val::T2(logits)) = &vals[self.output] else {
                    return Err(ModelError::Describe(
                        "relevance: the graph output is not [N, classes]".into(),
                    ));
                };
                let r = f(logits)?;
                let [n, k] = r.dims();
                rel[self.output] = Some(r.reshape([n, k, 1, 1]));
            }
            RelevanceSeed::Value { seed, .. } => {
                let v = stop
                    .ok_or_else(|| ModelError::Describe("relevance: seed value missing".into()))?;
                let a = vals[v]
                    .as_ref()
                    .map(|v| as4(v, "seed"))
                    .transpose()?
                    .ok_or_else(|| ModelError::Describe("relevance: seed value missing".into()))?;
                rel[v] = Some(seed(&a)?);
            }
        }
        let bns = self.folded_batch_norms();
        let linear = self.linear_nodes();
        let mut linear_index = vec![usize::MAX; self.nodes.len()];
        for (i, (k, _)) in linear.iter().enumerate() {
            linear_index[*k] = i;
        }
        let eps = rules.stabilizer();
        let val = |v: usize| -> Result<&Val> {
            vals[v].as_ref().ok_or_else(|| {
                ModelError::Describe(format!(
                    "relevance: value `{}` was not computed",
                    self.value_names[v]
                ))
            })
        };
        let last = stop
            .and_then(|v| self.producer[v])
            .unwrap_or(self.nodes.len().saturating_sub(1));
        for k in (0..self.nodes.len()).rev() {
            if k > last {
                continue;
            }
            let n = &self.nodes[k];
            let Some(r) = rel[n.output].take() else {
                continue;
            };
            let values: Vec<(usize, usize)> = n
                .inputs
                .iter()
                .enumerate()
                .filter_map(|(i, inp)| match inp {
                    Input::Value(v) if !matches!(vals[*v], Some(Val::Host(_))) => Some((i, *v)),
                    _ => None,
                })
                .collect();
            let mut give = |v: usize, t: Tensor<4>| -> Result<()> {
                let d = dims4(val(v)?).ok_or_else(|| no_rule(n, ": relevance into a shape"))?;
                let t = if t.dims() == d {
                    t
                } else if t.dims().iter().product::<usize>() == d.iter().product::<usize>() {
                    t.reshape(d)
                } else {
                    return Err(ModelError::Describe(format!(
                        "node `{}` ({}): relevance of shape {:?} for an input of shape {d:?}",
                        n.name,
                        n.op_type,
                        t.dims()
                    )));
                };
                rel[v] = Some(match rel[v].take() {
                    Some(acc) => acc + t,
                    None => t,
                });
                Ok(())
            };
            let first = values.first().map(|&(_, v)| v);
            match &n.op {
                Op::Conv { .. } | Op::Gemm { .. } => {
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    // what the layer (with its folded batch norm) computed
                    let out_value = bns[k].map_or(n.output, |b| self.nodes[b].output);
                    let z = vals[out_value]
                        .as_ref()
                        .map(|v| as4(v, &self.value_names[out_value]))
                        .transpose()?;
                    let layer = self.linear_layer(k, linear_index[k], bns[k], z, &device)?;
                    let x = as4(val(v)?, &self.value_names[v])?;
                    let out = rules.relevance(&layer, x, r)?;
                    give(v, out)?;
                }
                Op::BatchNorm { .. }
                | Op::Relu
                | Op::Clip { .. }
                | Op::Sigmoid
                | Op::Pass
                | Op::Lrn { .. }
                | Op::Flatten
                | Op::Reshape
                | Op::Squeeze { .. }
                | Op::Unsqueeze { .. } => {
                    // batch norm folded or passed (zennit's `Pass`), activations, dropout, LRN
                    // pass relevance unchanged; reshapes give it the input's shape
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    give(v, r)?;
                }
                Op::MaxPool {
                    kernel,
                    stride,
                    pads,
                    dilation,
                    ..
                } => {
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    let x = as4(val(v)?, &self.value_names[v])?;
                    let routed = max_pool_route(&x, &r, *kernel, *stride, *pads, *dilation)?;
                    give(v, routed)?;
                }
                Op::AveragePool {
                    kernel,
                    stride,
                    pads,
                    ceil,
                    count_include_pad,
                } => {
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    let x = as4(val(v)?, &self.value_names[v])?;
                    let z = as4(val(n.output)?, &self.value_names[n.output])?;
                    let mut o = burn::tensor::ops::AvgPoolOptions::new(*kernel);
                    o.stride = *stride;
                    o.padding = [(pads[0], pads[1]), (pads[2], pads[3])];
                    o.ceil_mode = *ceil;
                    o.count_include_pad = *count_include_pad;
                    let s = divide_stabilized(r, z, eps);
                    let c = vjp(&x, &s, |x| burn::tensor::module::avg_pool2d(x, o.clone()))?;
                    give(v, x * c)?;
                }
                Op::GlobalAveragePool | Op::ReduceMean { .. } => {
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    let x = as4(val(v)?, &self.value_names[v])?;
                    let [b, c, h, w] = x.dims();
                    let z = as4(val(n.output)?, &self.value_names[n.output])?.reshape([b, c, 1, 1]);
                    let s = divide_stabilized(r.reshape([b, c, 1, 1]), z, eps);
                    // the mean's transpose spreads s / (h·w) over the positions
                    let c_map = s.expand([b, c, h, w]) / (h * w) as f32;
                    give(v, x * c_map)?;
                }
                Op::Pad => {
                    let v = first.ok_or_else(|| no_rule(n, ": no input"))?;
                    let [b, c, h, w] = dims4(val(v)?).ok_or_else(|| no_rule(n, ""))?;
                    let pads = self.pad_amounts(n, &vals)?;
                    give(
                        v,
                        r.slice([0..b, 0..c, pads[0]..pads[0] + h, pads[2]..pads[2] + w]),
                    )?;
                }
                Op::Concat { axis } => {
                    if *axis != 1 && *axis != -3 {
                        return Err(no_rule(n, " for a concatenation other than by channel"));
                    }
                    let [b, _, h, w] = r.dims();
                    let mut at = 0;
                    for &(_, v) in &values {
                        let d = dims4(val(v)?).ok_or_else(|| no_rule(n, ""))?;
                        give(v, r.clone().slice([0..b, at..at + d[1], 0..h, 0..w]))?;
                        at += d[1];
                    }
                }
                Op::Binary(op) => {
                    let z = as4(val(n.output)?, &self.value_names[n.output])?;
                    match (op, values.as_slice()) {
                        // a sum of feature maps (the residual Add): zennit's `Norm`
                        (BinOp::Add | BinOp::Sub, [(_, a), (_, b)]) => {
                            let xa = as4(val(*a)?, &self.value_names[*a])?;
                            let xb = as4(val(*b)?, &self.value_names[*b])?;
                            if xa.dims() != z.dims() || xb.dims() != z.dims() {
                                return Err(no_rule(
                                    n,
                                    &format!(
                                        " for a broadcast sum of {:?} and {:?}",
                                        xa.dims(),
                                        xb.dims()
                                    ),
                                ));
                            }
                            let s = divide_stabilized(r, z, eps);
                            let sign = if *op == BinOp::Sub { -1.0 } else { 1.0 };
                            let (ra, rb) = (xa * s.clone(), xb * s * sign);
                            give(*a, ra)?;
                            give(*b, rb)?;
                        }
                        // a feature map plus a constant (a bias): its share
                        (BinOp::Add | BinOp::Sub, [(i, a)]) => {
                            let xa = as4(val(*a)?, &self.value_names[*a])?;
                            let sign = if *op == BinOp::Sub && *i == 1 {
                                -1.0
                            } else {
                                1.0
                            };
                            let s = divide_stabilized(r, z, eps);
                            give(*a, xa * s * sign)?;
                        }
                        // scaling by a constant passes relevance
                        (BinOp::Mul | BinOp::Div, [(i, a)]) if *op == BinOp::Mul || *i == 0 => {
                            give(*a, r)?;
                        }
                        // a gate (SiLU's sigmoid, squeeze-excitation): to the gated map
                        (BinOp::Mul, [_, _]) => match self.mul_passthrough(n) {
                            Some(v) => give(v, r)?,
                            None => return Err(no_rule(n, " for a product of two feature maps")),
                        },
                        _ => return Err(no_rule(n, "")),
                    }
                }
                Op::Shape
                | Op::Gather { .. }
                | Op::ConstantOfShape { .. }
                | Op::Slice
                | Op::Transpose { .. }
                | Op::Cast { .. } => {
                    if !values.is_empty() {
                        return Err(no_rule(n, ""));
                    }
                }
            }
        }
        Ok(rel[self.input]
            .take()
            .unwrap_or_else(|| Tensor::zeros(input_dims, &device)))
    }
}

impl OnnxModel {
    /// The linear layers (convolutions and dense layers) in execution order, by the name a
    /// rule map uses ([`LinearLayer::name`]), with their kind.
    pub fn linear_layers(&self) -> Vec<(String, LinearKind)> {
        self.graph
            .linear_nodes()
            .into_iter()
            .map(|(k, kind)| (Graph::layer_name(&self.graph.nodes[k]), kind))
            .collect()
    }

    /// The name of the graph value a summary layer or tensor name refers to: a layer of the
    /// description (its tap), else a value of that exact name.
    pub fn value_name_of_layer(&self, layer: &str) -> Option<String> {
        if let Some(i) = self.description.layer_index(layer) {
            let tap = self.description.layers[i].tap;
            return self
                .tap_values
                .get(tap.0)
                .map(|&v| self.graph.value_names[v].clone());
        }
        self.graph.value_names.iter().find(|v| *v == layer).cloned()
    }

    /// Layer-wise relevance propagation: the relevance of `images` (`[N, C, H, W]`) from
    /// `seed`, with `rules` for the linear layers (see the module's documentation for every
    /// other operator).
    pub fn relevance(
        &self,
        images: Tensor<4>,
        seed: &RelevanceSeed<'_>,
        rules: &dyn LinearRelevance,
    ) -> Result<Tensor<4>> {
        self.graph.relevance(images, seed, rules)
    }
}
