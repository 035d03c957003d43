//! A convolution whose input gradient is itself a forward convolution.
//!
//! burn's autodiff computes a convolution's input gradient with `conv_transpose2d`, which
//! burn-flex 0.22 runs as a GEMM followed by a col2im scatter. The input gradient is also a
//! plain convolution: the output gradient, with `stride − 1` zeros inserted between its values,
//! convolved at stride 1 with the kernel flipped in both spatial axes and its input and output
//! channels exchanged (per group), with padding `d·(k − 1) − pad_begin` before and
//! `H − (H_out − 1)·stride − 1 + pad_begin` after. Which of the two is faster depends on the
//! shape (`cargo bench -p summit-model --bench convgrad`, forward + input gradient, batch 8, 2
//! cores): for 1×1 convolutions the forward route wins (GoogLeNet's `conv2`, 64→64 at 56²:
//! 9.2 ms against burn's 19.7; a 256→128 one at 28²: 6.3 against 7.5), and for depthwise
//! ones (EfficientNet-Lite0's 5×5 at 14²: 5.4 against 9.5); for 3×3 stride-1 convolutions it
//! is level or slower (5.3 against 4.1 ms at 8²), and with a stride the inserted zeros make it
//! far slower (GoogLeNet's 7×7 stride-2 stem: 1.07 s against 59 ms). So [`conv2d`] takes the
//! forward route for stride-1 convolutions that are 1×1 or grouped, on burn's CPU device under
//! autodiff where the weights carry no gradient (feature visualization, attribution: gradients
//! with respect to the image only), and is burn's `conv2d` everywhere else (training, other
//! devices, other shapes). The extension itself handles every shape (its tests compare strided,
//! dilated, grouped and asymmetrically padded ones with burn's gradient).
//!
//! ```
//! use burn::tensor::{Device, Tensor, module::conv2d as burn_conv2d, ops::ConvOptions};
//! use summit_model::convgrad::conv2d;
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<4>::random([2, 4, 9, 8], burn::tensor::Distribution::Default, &device)
//!     .require_grad();
//! // a depthwise 3×3 convolution: its input gradient takes the forward route
//! let w = Tensor::<4>::random([4, 1, 3, 3], burn::tensor::Distribution::Default, &Device::flex());
//! let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 4);
//! let ours = x.grad(&conv2d(x.clone(), w.clone(), None, opts.clone()).sum().backward()).unwrap();
//! let burns = x.grad(&burn_conv2d(x.clone(), w, None, opts).sum().backward()).unwrap();
//! ours.into_data().assert_approx_eq::<f32>(&burns.into_data(), Default::default());
//! ```

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind, unary},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, DispatchDevice, Flex, TensorMetadata, backend_extension};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Shape, Slice, Tensor};

/// A backend with a convolution whose backward step computes the input's gradient as a forward
/// convolution (and no gradient for the weights). The bias is added by the caller.
#[backend_extension(Autodiff, Flex)]
pub trait InputGradConvBackend: Backend {
    /// burn's `conv2d` without bias; under autodiff its backward step gives `x` its gradient
    /// through a forward convolution and gives the weights none.
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::conv2d(x, weight, None, options)
    }
}

impl InputGradConvBackend for Flex {}

/// What the backward step keeps: the transformed kernel, the forward options and the input's
/// height and width.
#[derive(Debug, Clone)]
struct GradState<T> {
    kernel: T,
    options: ConvOptions<2>,
    input_hw: [usize; 2],
}

impl<B: Backend + InputGradConvBackend, C: CheckpointStrategy> InputGradConvBackend
    for Autodiff<B, C>
{
    fn conv2d_input_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvInputBackward;

        impl<B: Backend> Backward<B, 1> for ConvInputBackward {
            type State = GradState<FloatTensor<B>>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let state = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    input_grad::<B>(grad, state.kernel, &state.options, state.input_hw)
                });
            }
        }

        let weight = weight.into_primitive();
        match ConvInputBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let dims = x.primitive().shape().to_vec();
                let input_hw = [dims[2], dims[3]];
                let kernel = flipped_kernel::<B>(weight.clone(), options.groups);
                let out = B::conv2d(x.primitive().clone(), weight, None, options.clone());
                prep.finish(
                    GradState {
                        kernel,
                        options,
                        input_hw,
                    },
                    out,
                )
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv2d(x.into_primitive(), weight, None, options))
            }
        }
    }
}

/// `[c_out, c_in/g, kh, kw]` → `[c_in, c_out/g, kh, kw]`, flipped in both spatial axes: the
/// kernel of the input gradient's convolution (per group, input and output channels exchange).
fn flipped_kernel<B: Backend>(w: FloatTensor<B>, groups: usize) -> FloatTensor<B> {
    let dims = w.shape().to_vec();
    let (c_out, c_in_g, kh, kw) = (dims[0], dims[1], dims[2], dims[3]);
    let g = groups.max(1);
    let c_out_g = c_out / g;
    let w = B::float_reshape(w, Shape::new([g, c_out_g, c_in_g, kh * kw]));
    let w = B::float_swap_dims(w, 1, 2);
    let w = B::float_reshape(w, Shape::new([g * c_in_g, c_out_g, kh, kw]));
    B::float_flip(w, &[2, 3])
}

/// `grad` (`[n, c_out, oh, ow]`) with `s − 1` zeros between neighbours along `axis` (2 or 3).
fn dilate<B: Backend>(grad: FloatTensor<B>, axis: usize, s: usize) -> FloatTensor<B> {
    if s <= 1 {
        return grad;
    }
    let dims = grad.shape().to_vec();
    let len = dims[axis];
    // [.., len, 1, ..] beside zeros [.., len, s − 1, ..], then merged to [.., len·s, ..]
    let mut split = dims.clone();
    split.insert(axis + 1, 1);
    let g = B::float_reshape(grad, Shape::from(split));
    let zeros = B::float_mul_scalar(g.clone(), 0f32.into());
    let mut parts = vec![g];
    parts.extend(std::iter::repeat_n(zeros, s - 1));
    let g = B::float_cat(parts, axis + 1);
    let mut merged = dims.clone();
    merged[axis] = len * s;
    let g = B::float_reshape(g, Shape::from(merged));
    // the trailing zeros after the last value are not part of the dilated map
    let slices: Vec<Slice> = (0..dims.len())
        .map(|d| {
            if d == axis {
                Slice::from(0..(len - 1) * s + 1)
            } else {
                Slice::from(0..dims[d])
            }
        })
        .collect();
    B::float_slice(g, &slices)
}

/// The input gradient of `conv2d(x, w, options)` for output gradient `grad`, as a stride-1
/// convolution of the dilated gradient with `kernel` ([`flipped_kernel`]).
fn input_grad<B: Backend>(
    grad: FloatTensor<B>,
    kernel: FloatTensor<B>,
    options: &ConvOptions<2>,
    input_hw: [usize; 2],
) -> FloatTensor<B> {
    let kdims = kernel.shape().to_vec();
    let mut g = grad;
    let mut padding = [(0usize, 0usize); 2];
    for axis in 0..2 {
        let (s, d) = (options.stride[axis], options.dilation[axis]);
        let out_len = g.shape().to_vec()[axis + 2];
        g = dilate::<B>(g, axis + 2, s);
        let span = d * (kdims[axis + 2] - 1) + 1;
        let (begin, _) = options.padding[axis];
        let before = span as isize - 1 - begin as isize;
        let after = input_hw[axis] as isize - ((out_len - 1) * s) as isize - 1 + begin as isize;
        // a negative padding crops the dilated gradient
        let len = g.shape().to_vec()[axis + 2] as isize;
        let (lo, hi) = ((-before).max(0), (len - (-after).max(0)).max(0));
        if lo > 0 || hi < len {
            let dims = g.shape().to_vec();
            let slices: Vec<Slice> = (0..4)
                .map(|k| {
                    if k == axis + 2 {
                        Slice::from(lo as usize..hi as usize)
                    } else {
                        Slice::from(0..dims[k])
                    }
                })
                .collect();
            g = B::float_slice(g, &slices);
        }
        padding[axis] = (before.max(0) as usize, after.max(0) as usize);
    }
    let mut opts = ConvOptions::new([1, 1], [0, 0], options.dilation, options.groups);
    opts.padding = padding;
    B::conv2d(g, kernel, None, opts)
}

/// burn's `conv2d`, except that on burn's CPU device under autodiff, where neither the weights
/// nor the bias require a gradient, the input's gradient is computed as a forward convolution
/// (see the module docs).
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    let [_, _, kh, kw] = weight.dims();
    let fast = x.is_autodiff()
        && options.stride == [1, 1]
        && (kh * kw == 1 || options.groups > 1)
        && matches!(x.device().as_dispatch(), DispatchDevice::Autodiff(_))
        && format!("{:?}", x.device()).contains("Flex")
        && !weight.is_require_grad()
        && bias.as_ref().is_none_or(|b| !b.is_require_grad());
    if !fast {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let y = input_grad_conv(x, weight, options);
    match bias {
        Some(b) => {
            let c = b.dims()[0];
            y.add(b.reshape([1, c, 1, 1]))
        }
        None => y,
    }
}

/// `Jᵀ s` for `conv2d(x, weight, options)` with `x` of height and width `input_hw`: the input
/// gradient for the output gradient `s`, computed without a forward pass (the convolution is
/// linear in its input). Stride 1: the flipped kernel's forward convolution (this module's);
/// strided with symmetric padding: burn's transposed convolution; otherwise burn's autodiff.
pub fn transpose(
    s: Tensor<4>,
    weight: Tensor<4>,
    options: &ConvOptions<2>,
    input_hw: [usize; 2],
) -> Tensor<4> {
    let [n, _, oh, ow] = s.dims();
    let [_, cin_g, kh, kw] = weight.dims();
    let groups = options.groups;
    let symmetric = options.padding[0].0 == options.padding[0].1
        && options.padding[1].0 == options.padding[1].1;
    if options.stride == [1, 1] && !s.is_autodiff() {
        let kernel = flipped_kernel::<Dispatch>(weight.into_dispatch(), groups);
        return Tensor::from_dispatch(input_grad::<Dispatch>(
            s.into_dispatch(),
            kernel,
            options,
            input_hw,
        ));
    }
    if symmetric {
        let p = [options.padding[0].0, options.padding[1].0];
        let k = [kh, kw];
        let o = [oh, ow];
        let mut out_pad = [0usize; 2];
        let mut fits = true;
        for a in 0..2 {
            let covered = (o[a] - 1) * options.stride[a] + options.dilation[a] * (k[a] - 1) + 1;
            match (input_hw[a] + 2 * p[a]).checked_sub(covered) {
                Some(extra) if extra < options.stride[a].max(options.dilation[a]) => {
                    out_pad[a] = extra
                }
                _ => fits = false,
            }
        }
        if fits {
            let opts = burn::tensor::ops::ConvTransposeOptions::new(
                options.stride,
                p,
                out_pad,
                options.dilation,
                groups,
            );
            return burn::tensor::module::conv_transpose2d(s, weight, None, opts);
        }
    }
    // the general case: the gradient of Σ s · conv(x) at any x (zeros)
    let device = s.device();
    let ad = device.clone().autodiff();
    let x = Tensor::<4>::zeros([n, cin_g * groups, input_hw[0], input_hw[1]], &ad).require_grad();
    let sa = Tensor::<4>::from_data(s.into_data(), &ad);
    let y = burn::tensor::module::conv2d(x.clone(), weight, None, options.clone());
    let grads = y.mul(sa).sum().backward();
    match x.grad(&grads) {
        Some(g) => Tensor::from_data(g.into_data(), &device),
        None => Tensor::zeros([n, cin_g * groups, input_hw[0], input_hw[1]], &device),
    }
}

/// The extension's convolution (no bias), whatever the shape.
fn input_grad_conv(x: Tensor<4>, weight: Tensor<4>, options: ConvOptions<2>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as InputGradConvBackend>::conv2d_input_grad(
        x.into_dispatch(),
        weight.into_dispatch(),
        options,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::conv::tests::values;
    use burn::tensor::{Device, TensorData};

    /// The input gradient as a forward convolution equals burn's (`conv_transpose2d`) within
    /// float rounding, for strides, dilations, asymmetric paddings, groups and kernels that do
    /// and do not fit the stride; the forward values are burn's.
    #[test]
    fn input_gradient_equals_burns() {
        let host = Device::flex();
        let ad = host.clone().autodiff();
        // (n, c_in, c_out, h, w, k, stride, dilation, padding, groups)
        type Case = (
            usize,
            usize,
            usize,
            usize,
            usize,
            [usize; 2],
            [usize; 2],
            [usize; 2],
            [(usize, usize); 2],
            usize,
        );
        let cases: &[Case] = &[
            (2, 3, 4, 9, 8, [3, 3], [1, 1], [1, 1], [(1, 1), (1, 1)], 1),
            (2, 6, 8, 11, 10, [1, 1], [1, 1], [1, 1], [(0, 0), (0, 0)], 1),
            (1, 3, 5, 13, 12, [7, 7], [2, 2], [1, 1], [(3, 3), (3, 3)], 1),
            (2, 4, 4, 10, 9, [3, 3], [2, 2], [1, 1], [(0, 1), (1, 0)], 4),
            (1, 6, 6, 12, 12, [5, 3], [1, 2], [2, 1], [(4, 2), (1, 1)], 3),
            (1, 4, 8, 7, 7, [3, 3], [3, 3], [1, 1], [(0, 0), (2, 2)], 2),
            (2, 8, 8, 6, 6, [5, 5], [1, 1], [1, 1], [(2, 2), (2, 2)], 8),
        ];
        for (i, &(n, ci, co, h, w, k, s, d, p, g)) in cases.iter().enumerate() {
            let x = Tensor::<4>::from_data(
                TensorData::new(values(n * ci * h * w, i as u64), [n, ci, h, w]),
                &ad,
            )
            .require_grad();
            let wt = Tensor::<4>::from_data(
                TensorData::new(
                    values(co * ci / g * k[0] * k[1], 50 + i as u64),
                    [co, ci / g, k[0], k[1]],
                ),
                &host,
            );
            let mut opts = ConvOptions::new(s, [0, 0], d, g);
            opts.padding = p;
            let ours = input_grad_conv(x.clone(), wt.clone(), opts.clone());
            let burns = burn::tensor::module::conv2d(x.clone(), wt, None, opts);
            assert_eq!(ours.dims(), burns.dims(), "case {i}");
            let up = Tensor::<4>::from_data(
                TensorData::new(
                    values(ours.dims().iter().product(), 90 + i as u64),
                    ours.dims(),
                ),
                &ad,
            );
            let fo = crate::to_host(ours.clone().inner(), "ours").unwrap();
            let fb = crate::to_host(burns.clone().inner(), "burn").unwrap();
            assert_eq!(fo, fb, "case {i}: forward");
            let go = x.grad(&ours.mul(up.clone()).sum().backward()).unwrap();
            let gb = x.grad(&burns.mul(up).sum().backward()).unwrap();
            let (go, gb) = (
                crate::to_host(go, "ours").unwrap(),
                crate::to_host(gb, "burn").unwrap(),
            );
            let err = go
                .iter()
                .zip(&gb)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let scale = gb.iter().map(|v| v.abs()).fold(0f32, f32::max);
            assert!(
                err <= 1e-5 * scale.max(1.0),
                "case {i}: max error {err} (scale {scale})"
            );
            // `transpose` (no forward pass; each of its three routes) gives the same gradient
            let up_host =
                Tensor::<4>::from_data(up_values(&ours_dims(n, co, h, w, k, s, d, p), i), &host);
            let t = transpose(
                up_host,
                wt_host(co, ci, g, k, i, &host),
                &{
                    let mut o = ConvOptions::new(s, [0, 0], d, g);
                    o.padding = p;
                    o
                },
                [h, w],
            );
            assert_eq!(t.dims(), [n, ci, h, w], "case {i}: transpose shape");
            let gt = crate::to_host(t, "transpose").unwrap();
            let err = gt
                .iter()
                .zip(&gb)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                err <= 1e-5 * scale.max(1.0),
                "case {i}: transpose max error {err} (scale {scale})"
            );
        }
    }

    /// The output dims of a case's convolution.
    #[allow(clippy::too_many_arguments)]
    fn ours_dims(
        n: usize,
        co: usize,
        h: usize,
        w: usize,
        k: [usize; 2],
        s: [usize; 2],
        d: [usize; 2],
        p: [(usize, usize); 2],
    ) -> [usize; 4] {
        let o = |len: usize, a: usize| (len + p[a].0 + p[a].1 - d[a] * (k[a] - 1) - 1) / s[a] + 1;
        [n, co, o(h, 0), o(w, 1)]
    }

    fn up_values(dims: &[usize; 4], i: usize) -> TensorData {
        TensorData::new(values(dims.iter().product(), 90 + i as u64), *dims)
    }

    fn wt_host(
        co: usize,
        ci: usize,
        g: usize,
        k: [usize; 2],
        i: usize,
        host: &Device,
    ) -> Tensor<4> {
        Tensor::<4>::from_data(
            TensorData::new(
                values(co * ci / g * k[0] * k[1], 50 + i as u64),
                [co, ci / g, k[0], k[1]],
            ),
            host,
        )
    }
}
