//! The executor's operators that take more than a line: one method per operator, called by
//! `Graph::eval`.

use super::*;

/// The error of an operator's method handed another operator's node.
fn not_a(n: &Node, op: &str) -> ModelError {
    describe(format!("node `{}` ({}) is not a {op}", n.name, n.op_type))
}

impl Graph {
    /// Evaluates node `n`, a `Conv`.
    pub(super) fn eval_conv(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
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
            return Err(not_a(n, "Conv"));
        };
        Ok({
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
                match host_bias(bias.as_ref(), weight.dims()[0]) {
                    Some(b) => {
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
        })
    }

    /// Evaluates node `n`, a `BatchNorm`.
    pub(super) fn eval_batch_norm(
        &self,
        n: &Node,
        vals: &[Option<Val>],
        device: &Device,
    ) -> Result<Val> {
        let Op::BatchNorm { scale, shift, .. } = &n.op else {
            return Err(not_a(n, "BatchNorm"));
        };
        Ok({
            let x = self.t4(n, vals, 0)?;
            let c = x.dims()[1];
            if c != scale.len() {
                return Err(describe(format!(
                    "node `{}` (BatchNormalization): {} parameters for {c} channels",
                    n.name,
                    scale.len()
                )));
            }
            let s = Tensor::<4>::from_data(TensorData::new(scale.clone(), [1, c, 1, 1]), device);
            let b = Tensor::<4>::from_data(TensorData::new(shift.clone(), [1, c, 1, 1]), device);
            Val::T4(x * s + b)
        })
    }

    /// Evaluates node `n`, a `ReduceMean`.
    pub(super) fn eval_reduce_mean(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
        let Op::ReduceMean { axes, keepdims } = &n.op else {
            return Err(not_a(n, "ReduceMean"));
        };
        Ok({
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
        })
    }

    /// Evaluates node `n`, a `Clip`.
    pub(super) fn eval_clip(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
        let Op::Clip { min, max } = &n.op else {
            return Err(not_a(n, "Clip"));
        };
        Ok({
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
        })
    }

    /// Evaluates node `n`, a `Binary`.
    pub(super) fn eval_binary(
        &self,
        n: &Node,
        vals: &[Option<Val>],
        device: &Device,
    ) -> Result<Val> {
        let Op::Binary(op) = &n.op else {
            return Err(not_a(n, "Binary"));
        };
        Ok({
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
        })
    }

    /// Evaluates node `n`, a `Concat`.
    pub(super) fn eval_concat(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
        let Op::Concat { axis } = &n.op else {
            return Err(not_a(n, "Concat"));
        };
        Ok({
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
        })
    }

    /// Evaluates node `n`, a `Reshape`.
    pub(super) fn eval_reshape(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
        let Op::Reshape = &n.op else {
            return Err(not_a(n, "Reshape"));
        };
        Ok({
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
        })
    }

    /// Evaluates node `n`, a `Gemm`.
    pub(super) fn eval_gemm(&self, n: &Node, vals: &[Option<Val>]) -> Result<Val> {
        let Op::Gemm { weight, bias } = &n.op else {
            return Err(not_a(n, "Gemm"));
        };
        Ok({
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
        })
    }
}
