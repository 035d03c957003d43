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
            let cx = ops::NodeCtx {
                n,
                name: &name,
                ins: &ins,
                consts: &consts,
                device,
                path,
            };
            let op = match n.op_type.as_str() {
                "Conv" => ops::conv(&cx)?,
                "BatchNormalization" => ops::batch_norm(&cx)?,
                "Relu" => Op::Relu,
                "Sigmoid" => Op::Sigmoid,
                "Clip" => ops::clip(&cx)?,
                "Add" => Op::Binary(BinOp::Add),
                "Sub" => Op::Binary(BinOp::Sub),
                "Mul" => Op::Binary(BinOp::Mul),
                "Div" => Op::Binary(BinOp::Div),
                "MaxPool" => ops::max_pool(&cx)?,
                "AveragePool" => ops::average_pool(&cx)?,
                "GlobalAveragePool" => Op::GlobalAveragePool,
                "Pad" => ops::pad(&cx)?,
                "Concat" => ops::concat(&cx)?,
                "Shape" => Op::Shape,
                "Gather" => ops::gather(&cx)?,
                "Unsqueeze" => ops::unsqueeze(&cx)?,
                "Squeeze" => ops::squeeze(&cx)?,
                "ConstantOfShape" => ops::constant_of_shape(&cx)?,
                "Slice" => Op::Slice,
                "Transpose" => ops::transpose(&cx)?,
                "Cast" => ops::cast(&cx)?,
                "ReduceMean" => ops::reduce_mean(&cx)?,
                "Flatten" => ops::flatten(&cx)?,
                "Reshape" => Op::Reshape,
                "Gemm" | "MatMul" => ops::gemm(&cx)?,
                "Dropout" | "Identity" => Op::Pass,
                "LRN" => ops::lrn(&cx)?,
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
                cx.value_in(0)?;
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
