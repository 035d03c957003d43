//! Decoding an ONNX `ModelProto` into a [`Graph`]: one typed operator per node, checked, and a
//! probe run that records every value's shape.

use super::*;

pub(super) const SUPPORTED: &str = "Conv, BatchNormalization, Relu, Clip, Sigmoid, Add, Sub, Mul, Div, \
    MaxPool, AveragePool, GlobalAveragePool, ReduceMean, Pad, Concat, Flatten, Reshape, Gemm, \
    MatMul, Dropout, Identity, LRN, Constant, and the shape computations Shape, Gather, \
    Unsqueeze, Squeeze, ConstantOfShape, Slice, Transpose, Cast";

impl Graph {
    pub(super) fn parse(
        path: &Path,
        bytes: &[u8],
        options: &OnnxOptions,
        device: &Device,
    ) -> Result<Self> {
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

    pub(super) fn num_classes(&self) -> usize {
        self.shapes[self.output].get(1).copied().unwrap_or(0)
    }

    pub(super) fn channels(&self, v: usize) -> usize {
        self.shapes[v].get(1).copied().unwrap_or(0)
    }

    pub(super) fn is_4d(&self, v: usize) -> bool {
        self.shapes[v].len() == 4
    }
}
