//! One function per ONNX operator: the node's attributes and constant inputs read, checked and
//! typed into an [`Op`] (shapes of values are checked by the probe run that follows).

use super::*;

/// What an operator's function sees of its node: the node, its name (or `#k (Op)` where it
/// has none), its inputs resolved to values and constants, the constants so far, the device
/// and the file (for errors).
pub(super) struct NodeCtx<'a> {
    pub(super) n: &'a proto::NodeProto,
    pub(super) name: &'a str,
    pub(super) ins: &'a [Input],
    pub(super) consts: &'a [Const],
    pub(super) device: &'a Device,
    pub(super) path: &'a Path,
}

impl NodeCtx<'_> {
    /// Input `k`, which must be a constant (`what` names it in the error).
    pub(super) fn const_in(&self, k: usize, what: &str) -> Result<&Const> {
        match self.ins.get(k) {
            Some(Input::Const(c)) => Ok(&self.consts[*c]),
            _ => Err(describe(format!(
                "node `{}` ({}): its {what} must be a constant",
                self.name, self.n.op_type
            ))),
        }
    }

    /// Checks that input `k` is computed by the graph.
    pub(super) fn value_in(&self, k: usize) -> Result<()> {
        match self.ins.get(k) {
            Some(Input::Value(_)) => Ok(()),
            _ => Err(describe(format!(
                "node `{}` ({}): input {k} must be computed by the graph",
                self.name, self.n.op_type
            ))),
        }
    }
}

/// The `Conv` operator.
pub(super) fn conv(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    let ins = cx.ins;
    let consts = cx.consts;
    let device = cx.device;
    cx.value_in(0)?;
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
    let auto = attr(n, "auto_pad").map(|a| String::from_utf8_lossy(&a.s).to_string());
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
    let weight = Tensor::<4>::from_data(TensorData::new(w.floats(name)?.to_vec(), wd), device);
    let bias = match bias_const {
        Some(b) => Some(Tensor::<1>::from_data(
            TensorData::new(consts[b].floats(name)?.to_vec(), [wd[0]]),
            device,
        )),
        None => None,
    };
    Ok(Op::Conv {
        weight,
        bias,
        weight_const: wc,
        bias_const,
        stride: pair(attr_ints(n, "strides"), 1, "strides", name)?,
        pads: pads4(attr_ints(n, "pads"), name)?,
        dilation: pair(attr_ints(n, "dilations"), 1, "dilations", name)?,
        groups,
    })
}

/// The `BatchNormalization` operator.
pub(super) fn batch_norm(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    cx.value_in(0)?;
    let eps = f64::from(attr_float(n, "epsilon", 1e-5));
    let g = cx.const_in(1, "scale")?.floats(name)?.to_vec();
    let b = cx.const_in(2, "bias")?.floats(name)?.to_vec();
    let m = cx.const_in(3, "mean")?.floats(name)?.to_vec();
    let v = cx.const_in(4, "variance")?.floats(name)?.to_vec();
    if [b.len(), m.len(), v.len()].iter().any(|&l| l != g.len()) {
        return Err(describe(format!(
            "node `{name}` (BatchNormalization): parameters of different lengths"
        )));
    }
    let (scale, shift) = bn_scale_shift(&g, &b, &m, &v, eps);
    Ok(Op::BatchNorm {
        scale,
        shift,
        gamma: g,
        beta: b,
        mean: m,
        var: v,
        eps,
    })
}

/// The `Clip` operator.
pub(super) fn clip(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    let ins = cx.ins;
    let consts = cx.consts;
    let bound = |k: usize, attr_name: &str, default: f32| -> Result<f32> {
        match ins.get(k) {
            Some(Input::Const(c)) => consts[*c]
                .floats(name)?
                .first()
                .copied()
                .ok_or_else(|| describe(format!("node `{name}` (Clip): empty bound"))),
            Some(Input::Value(_)) => Ok(f32::NAN),
            _ => Ok(attr_float(n, attr_name, default)),
        }
    };
    Ok(Op::Clip {
        min: bound(1, "min", f32::NEG_INFINITY)?,
        max: bound(2, "max", f32::INFINITY)?,
    })
}

/// The `MaxPool` operator.
pub(super) fn max_pool(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    cx.value_in(0)?;
    if n.output.len() > 1 && !n.output[1].is_empty() {
        return Err(describe(format!(
            "node `{name}` (MaxPool): its indices output is not supported"
        )));
    }
    let kernel = pair(attr_ints(n, "kernel_shape"), 0, "kernel_shape", name)?;
    Ok(Op::MaxPool {
        kernel,
        stride: pair(attr_ints(n, "strides"), 1, "strides", name)?,
        pads: pads4(attr_ints(n, "pads"), name)?,
        dilation: pair(attr_ints(n, "dilations"), 1, "dilations", name)?,
        ceil: attr_int(n, "ceil_mode", 0) != 0,
    })
}

/// The `AveragePool` operator.
pub(super) fn average_pool(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    cx.value_in(0)?;
    Ok(Op::AveragePool {
        kernel: pair(attr_ints(n, "kernel_shape"), 0, "kernel_shape", name)?,
        stride: pair(attr_ints(n, "strides"), 1, "strides", name)?,
        pads: pads4(attr_ints(n, "pads"), name)?,
        ceil: attr_int(n, "ceil_mode", 0) != 0,
        count_include_pad: attr_int(n, "count_include_pad", 0) != 0,
    })
}

/// The `Pad` operator.
pub(super) fn pad(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    cx.value_in(0)?;
    let mode = attr(n, "mode").map_or("constant".to_string(), |a| {
        String::from_utf8_lossy(&a.s).to_string()
    });
    if mode != "constant" {
        return Err(describe(format!(
            "node `{name}` (Pad): only constant (zero) padding is supported, not {mode}"
        )));
    }
    Ok(Op::Pad)
}

/// The `Concat` operator.
pub(super) fn concat(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::Concat {
        axis: attr_int(n, "axis", 1),
    })
}

/// The `Gather` operator.
pub(super) fn gather(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::Gather {
        axis: attr_int(n, "axis", 0),
    })
}

/// The `Unsqueeze` operator.
pub(super) fn unsqueeze(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::Unsqueeze {
        axes: attr_ints(n, "axes"),
    })
}

/// The `Squeeze` operator.
pub(super) fn squeeze(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::Squeeze {
        axes: attr_ints(n, "axes"),
    })
}

/// The `ConstantOfShape` operator.
pub(super) fn constant_of_shape(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let path = cx.path;
    Ok(Op::ConstantOfShape {
        value: match attr(n, "value").and_then(|a| a.t.as_ref()) {
            Some(t) => tensor_const(t, path)?,
            None => Const {
                dims: vec![1],
                f32s: Some(vec![0.0]),
                i64s: None,
            },
        },
    })
}

/// The `Transpose` operator.
pub(super) fn transpose(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    Ok(Op::Transpose {
        perm: to_usize(&attr_ints(n, "perm").unwrap_or_default(), "perm", name)?,
    })
}

/// The `Cast` operator.
pub(super) fn cast(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    let to = i32::try_from(attr_int(n, "to", 1)).unwrap_or(0);
    if ![1, 6, 7, 11].contains(&to) {
        return Err(describe(format!(
            "node `{name}` (Cast): to ONNX type {to} is not supported"
        )));
    }
    Ok(Op::Cast { to })
}

/// The `ReduceMean` operator.
pub(super) fn reduce_mean(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::ReduceMean {
        axes: attr_ints(n, "axes"),
        keepdims: attr_int(n, "keepdims", 1) != 0,
    })
}

/// The `Flatten` operator.
pub(super) fn flatten(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    if attr_int(n, "axis", 1) != 1 {
        return Err(describe(format!(
            "node `{name}` (Flatten): only axis 1 is supported"
        )));
    }
    Ok(Op::Flatten)
}

/// The `Gemm`/`MatMul` operator.
pub(super) fn gemm(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    let name = cx.name;
    let ins = cx.ins;
    let consts = cx.consts;
    let device = cx.device;
    cx.value_in(0)?;
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
    let b = cx.const_in(1, "weight (B)")?;
    let [r, c]: [usize; 2] = b.dims.clone().try_into().map_err(|_| {
        describe(format!(
            "node `{name}` ({}): weight dims {:?}, expected 2-D",
            n.op_type, b.dims
        ))
    })?;
    let w = b.floats(name)?;
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
            let bv = consts[*cc].floats(name)?;
            if bv.len() != nn {
                return Err(describe(format!(
                    "node `{name}` (Gemm): bias of {} values for {nn} outputs",
                    bv.len()
                )));
            }
            Some(Tensor::<1>::from_data(
                TensorData::new(bv.iter().map(|v| v * beta).collect::<Vec<f32>>(), [nn]),
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
    Ok(Op::Gemm {
        weight: Tensor::<2>::from_data(TensorData::new(data, [k, nn]), device),
        bias,
    })
}

/// The `LRN` operator.
pub(super) fn lrn(cx: &NodeCtx<'_>) -> Result<Op> {
    let n = cx.n;
    Ok(Op::Lrn {
        size: usize::try_from(attr_int(n, "size", 0)).unwrap_or(0).max(1),
        alpha: f64::from(attr_float(n, "alpha", 1e-4)),
        beta: f64::from(attr_float(n, "beta", 0.75)),
        bias: f64::from(attr_float(n, "bias", 1.0)),
    })
}
