//! Describing the graph (SPEC §2.1): the summary layers, and the paths of convolution and
//! identity hops between consecutive ones, found by walking the graph backwards.

use super::*;

/// One hop found by the graph walk.
#[derive(Debug, Clone)]
pub(super) enum RawHop {
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
    pub(super) fn input(&self) -> usize {
        match self {
            RawHop::Conv { input, .. } | RawHop::Identity { input, .. } => *input,
        }
    }
}

#[derive(Debug, Clone)]
pub(super) struct RawPath {
    hops: Vec<RawHop>,
    out_offset: usize,
}

/// Ops that act channel by channel (no cross-channel influence) and pass their first input on.
pub(super) fn channel_wise(op: &Op) -> bool {
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
    pub(super) fn first_value(&self, n: &Node) -> Option<usize> {
        n.inputs.iter().find_map(|i| match i {
            Input::Value(v) => Some(*v),
            _ => None,
        })
    }

    /// The nodes reading `v` as data (shape queries not counted).
    pub(super) fn uses(&self, v: usize) -> usize {
        self.consumers[v]
            .iter()
            .filter(|&&k| !matches!(self.nodes[k].op, Op::Shape))
            .count()
    }

    pub(super) fn name_of(&self, v: usize) -> &str {
        &self.value_names[v]
    }

    /// The value a channel-wise Mul passes on: `x · sigmoid(x)` (SiLU), `x · gate` with a
    /// `[B, C, 1, 1]` gate (squeeze-excitation) or `x · constant`.
    pub(super) fn mul_passthrough(&self, n: &Node) -> Option<usize> {
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
    pub(super) fn walk(
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

    pub(super) fn conv_hop(
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
    pub(super) fn dominates(&self, t: usize, target: usize) -> bool {
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
    pub(super) fn shortcut_of(&self, v: usize) -> usize {
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

    pub(super) fn stem_for(&self, s: usize, layer: &str) -> Result<usize> {
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
    pub(super) fn activated(&self, v: usize) -> usize {
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
    pub(super) fn summary_layers(&self, names: Option<&[String]>) -> Result<Vec<(String, usize)>> {
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

    pub(super) fn folded(&self, node: usize, bn: Option<usize>) -> Result<FoldedKernel> {
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

    pub(super) fn describe(&self, options: &OnnxOptions) -> Result<(ModelDescription, Vec<usize>)> {
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
