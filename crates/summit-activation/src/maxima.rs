//! Global max pooling of a layer's activations (SPEC §1 step 1), host reference.

use crate::error::ActivationError;

/// Checks that `data` holds exactly the product of `dims` values.
pub(crate) fn check_len(
    what: &'static str,
    data_len: usize,
    dims: &[usize],
) -> Result<usize, ActivationError> {
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .unwrap_or(usize::MAX);
    if expected != data_len {
        return Err(ActivationError::Shape {
            what,
            dims: dims.to_vec(),
            expected,
            got: data_len,
        });
    }
    Ok(expected)
}

/// Per-image channel maxima of `act`, a contiguous row-major `[B, C, H, W]`
/// buffer with `dims = [B, C, H, W]`.
///
/// Returns `(maxima, argmax)`, both `[B, C]` row-major: `maxima[b*C + c]` is
/// `max over (h, w) of act[b, c, h, w]` and `argmax[b*C + c]` is the flat
/// position `h*W + w` of its **first** occurrence in row-major order.
///
/// This is the host reference; a pipeline normally computes it on the
/// device. Errors on a length mismatch, an empty spatial map or a non-finite
/// activation.
///
/// ```
/// use summit_activation::channel_max;
/// // B=1, C=2, H=1, W=3
/// let (m, a) = channel_max(&[1.0, 4.0, 4.0, -1.0, -2.0, -0.5], [1, 2, 1, 3]).unwrap();
/// assert_eq!(m, vec![4.0, -0.5]);
/// assert_eq!(a, vec![1, 2]);
/// ```
pub fn channel_max(act: &[f32], dims: [usize; 4]) -> Result<(Vec<f32>, Vec<u32>), ActivationError> {
    check_len("activations", act.len(), &dims)?;
    let [b, c, h, w] = dims;
    let hw = h * w;
    if hw == 0 {
        let axis = if h == 0 { 2 } else { 3 };
        return Err(ActivationError::EmptyDimension {
            what: "activations",
            dims: dims.to_vec(),
            axis,
        });
    }
    if u32::try_from(hw).is_err() {
        return Err(ActivationError::Shape {
            what: "activations (spatial size must fit in u32)",
            dims: dims.to_vec(),
            expected: u32::MAX as usize,
            got: hw,
        });
    }
    if let Some((index, &value)) = act.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(ActivationError::NonFinite {
            what: "activations",
            index,
            value,
        });
    }
    let mut maxima = Vec::with_capacity(b * c);
    let mut argmax = Vec::with_capacity(b * c);
    for map in act.chunks_exact(hw) {
        let mut best = map[0];
        let mut pos = 0usize;
        for (p, &v) in map.iter().enumerate().skip(1) {
            if v > best {
                best = v;
                pos = p;
            }
        }
        maxima.push(best);
        argmax.push(pos as u32);
    }
    Ok((maxima, argmax))
}
