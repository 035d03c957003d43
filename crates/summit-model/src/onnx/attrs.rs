//! Typed reading of ONNX node attributes and initializers, and module paths from node names.

use super::*;

pub(super) fn describe(msg: String) -> ModelError {
    ModelError::Describe(msg)
}

pub(super) fn attr<'a>(n: &'a proto::NodeProto, name: &str) -> Option<&'a proto::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

pub(super) fn attr_ints(n: &proto::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

pub(super) fn attr_int(n: &proto::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

pub(super) fn attr_float(n: &proto::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

pub(super) fn to_usize(v: &[i64], what: &str, node: &str) -> Result<Vec<usize>> {
    v.iter()
        .map(|&x| {
            usize::try_from(x)
                .map_err(|_| describe(format!("node `{node}`: {what} {v:?} must be non-negative")))
        })
        .collect()
}

pub(super) fn pair(
    v: Option<Vec<i64>>,
    default: usize,
    what: &str,
    node: &str,
) -> Result<[usize; 2]> {
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
pub(super) fn pads4(v: Option<Vec<i64>>, node: &str) -> Result<[usize; 4]> {
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

pub(super) fn tensor_const(t: &proto::TensorProto, base: &Path) -> Result<Const> {
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
