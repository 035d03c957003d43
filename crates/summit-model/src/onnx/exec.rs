//! Running the graph: node by node with burn operations, and the host fast paths —
//! convolution (+ batch norm) + ReLU fused into one host pass, strided convolutions as host
//! columns times a product (`crate::im2col`).

use super::*;

/// A batch norm as a per-channel affine map `x · scale + shift`: `scale = γ / sqrt(var + eps)`
/// (in f64, rounded once), `shift = β − mean · scale`.
pub(super) fn bn_scale_shift(
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

/// A convolution's bias on the host, `c_out` zeros without one; `None` where it is not `c_out`
/// f32 values.
pub(super) fn host_bias(bias: Option<&Tensor<1>>, c_out: usize) -> Option<Vec<f32>> {
    match bias {
        Some(b) => b
            .clone()
            .into_data()
            .try_into_vec::<f32>()
            .ok()
            .filter(|b| b.len() == c_out),
        None => Some(vec![0.0; c_out]),
    }
}

/// The shortest chain (`c_in · kh · kw`) a strided convolution goes through host columns for:
/// GoogLeNet's, Lucid's and ResNet's 7×7 stems over 3 channels (147) do, MobileNetV2's 3×3 stem
/// (27) does not (`benches/onnx_pass.rs`: 37–40 ms per image through burn, 41–45 through
/// columns).
pub(super) const IM2COL_MIN_CHAIN: usize = 64;

/// A dense convolution on the host with its epilogue: at stride 1 the host convolution
/// (`crate::conv`, the epilogue in its output pass), strided the host columns times burn's
/// product (`crate::im2col`, chains of at least [`IM2COL_MIN_CHAIN`]) then the epilogue in one
/// pass; `x` comes back as the error where
/// neither takes it (grouped, dilated, shapes the host kernels refuse).
#[allow(clippy::result_large_err)] // the error is the caller's input, handed back
pub(super) fn host_conv(
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
    let [_, c_in, kh, kw] = weight.dims();
    // short chains (MobileNetV2's 3×3 stem over 3 channels: 27 taps) stay with burn's direct
    // convolution, faster there than a product with so few rows
    if c_in * kh * kw < IM2COL_MIN_CHAIN {
        return Err(x);
    }
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
pub(super) fn conv_options(
    stride: [usize; 2],
    pads: [usize; 4],
    dilation: [usize; 2],
    groups: usize,
) -> ConvOptions<2> {
    let mut opts = ConvOptions::new(stride, [0, 0], dilation, groups);
    opts.padding = [(pads[0], pads[1]), (pads[2], pads[3])];
    opts
}

impl Graph {
    pub(super) fn run(&self, x: Tensor<4>, keep: &[bool]) -> Result<Vec<Option<Val>>> {
        self.run_taps(x, keep, &[], &mut NoTaps, None)
    }

    /// Runs the graph; every value listed in `taps` (value id, tap id) is handed to `sink` as
    /// soon as it is computed, and the graph goes on with what the sink returns. With `stop`,
    /// the run ends as soon as that value is computed (the nodes after it do not run) and the
    /// images may have any height and width the nodes before it accept.
    pub(super) fn run_taps(
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
    pub(super) fn find_fusions(&self) -> Vec<Option<Fusion>> {
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
    pub(super) fn eval_fused<'a>(
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
        let Some(b) = host_bias(bias.as_ref(), c_out) else {
            return Ok(None);
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

    pub(super) fn value(&self, n: &Node, vals: &[Option<Val>], k: usize) -> Result<Val> {
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

    pub(super) fn host_err(&self, n: &Node) -> ModelError {
        describe(format!(
            "node `{}` ({}) applied to a host tensor (a shape computation)",
            n.name, n.op_type
        ))
    }

    /// The `[top, bottom, left, right]` zero padding of a Pad node (from its pads input or
    /// attribute); only the two spatial axes of a 4-D tensor may be padded, with zeros.
    pub(super) fn pad_amounts(&self, n: &Node, vals: &[Option<Val>]) -> Result<[usize; 4]> {
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

    pub(super) fn t4(&self, n: &Node, vals: &[Option<Val>], k: usize) -> Result<Tensor<4>> {
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

    pub(super) fn const_val(
        &self,
        c: usize,
        rank: usize,
        device: &Device,
        n: &Node,
    ) -> Result<Val> {
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

    pub(super) fn eval(&self, n: &Node, vals: &[Option<Val>], device: &Device) -> Result<Val> {
        Ok(match &n.op {
            Op::Conv { .. } => return self.eval_conv(n, vals),
            Op::BatchNorm { .. } => return self.eval_batch_norm(n, vals, device),
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
            Op::ReduceMean { .. } => return self.eval_reduce_mean(n, vals),
            Op::Clip { .. } => return self.eval_clip(n, vals),
            Op::Binary { .. } => return self.eval_binary(n, vals, device),
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
            Op::Concat { .. } => return self.eval_concat(n, vals),
            Op::Flatten => match self.value(n, vals, 0)? {
                Val::T4(t) => {
                    let [b, c, h, w] = t.dims();
                    Val::T2(t.reshape([b, c * h * w]))
                }
                Val::Host(_) => return Err(self.host_err(n)),
                v => v,
            },
            Op::Reshape => return self.eval_reshape(n, vals),
            Op::Gemm { .. } => return self.eval_gemm(n, vals),
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

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::blocks::{BasicConv2d, ConvSpec};
    use crate::describe::to_host;
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
            (3, 3, 5, 2, 11, 1),
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
                assert_eq!(
                    u.to_bits(),
                    v.to_bits(),
                    "case {k}, element {i}: {u} vs {v}"
                );
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
