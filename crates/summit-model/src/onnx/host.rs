//! Shape computations on the host (Shape, Gather, Unsqueeze, Slice, Reshape, … of constants
//! and shapes), as exporters emit them around Flatten and Reshape.

use super::*;

/// A host input of a node: a constant, or a host value computed earlier.
pub(super) fn host_input(
    n: &Node,
    consts: &[Const],
    vals: &[Option<Val>],
    k: usize,
) -> Result<Const> {
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

pub(super) fn host_ints(c: &Const) -> Vec<i64> {
    c.i64s
        .clone()
        .or_else(|| {
            c.f32s
                .as_ref()
                .map(|v| v.iter().map(|&x| x as i64).collect())
        })
        .unwrap_or_default()
}

pub(super) fn host_floats(c: &Const) -> Vec<f32> {
    c.f32s
        .clone()
        .or_else(|| {
            c.i64s
                .as_ref()
                .map(|v| v.iter().map(|&x| x as f32).collect())
        })
        .unwrap_or_default()
}

pub(super) fn axis_of(a: i64, rank: usize, n: &Node) -> Result<usize> {
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
pub(super) fn host_eval(n: &Node, consts: &[Const], vals: &[Option<Val>]) -> Result<Const> {
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
pub(super) fn check_pool_fit(
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
pub(super) fn reshape_dims(dims: &[usize], shape: &[i64], n: &Node) -> Result<Vec<usize>> {
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
