//! The ReLU every model of this crate uses, with a switch for Guided Backpropagation.
//!
//! Guided Backpropagation (Springenberg et al. 2015, as Captum's `GuidedBackprop`) backpropagates
//! through every ReLU only the positive part of the incoming gradient: `∂x = relu(∂y) · [x > 0]`
//! instead of `∂y · [x > 0]`. The forward pass is unchanged. Every model here computes its
//! ReLUs with [`relu`]; inside a [`GuidedRelu`] scope, on an autodiff tensor, that ReLU carries
//! the guided backward step (a burn backend extension with its own `Backward`). Outside a scope,
//! or on a tensor without autodiff, it is burn's ReLU.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use summit_model::act::{GuidedRelu, relu};
//!
//! let device = Device::flex().autodiff();
//! let x = Tensor::<1>::from_floats([1.0, -1.0, 2.0], &device).require_grad();
//! let w = Tensor::<1>::from_floats([3.0, 5.0, -2.0], &device);
//! let plain = relu(x.clone()).mul(w.clone()).sum().backward();
//! assert_eq!(x.grad(&plain).unwrap().into_data().to_vec::<f32>().unwrap(), [3.0, 0.0, -2.0]);
//! let _guided = GuidedRelu::enter(&device)?;
//! let guided = relu(x.clone()).mul(w).sum().backward();
//! assert_eq!(x.grad(&guided).unwrap().into_data().to_vec::<f32>().unwrap(), [3.0, 0.0, 0.0]);
//! # Ok::<(), summit_model::ModelError>(())
//! ```

use std::cell::Cell;

use burn::backend::autodiff::{
    Autodiff,
    checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
    grads::Gradients,
    ops::{Backward, Ops, OpsKind, unary},
};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::tensor::{Device, Tensor};

use crate::error::{ModelError, Result};

thread_local! {
    static GUIDED: Cell<usize> = const { Cell::new(0) };
    static REDIRECTED: Cell<usize> = const { Cell::new(0) };
    static DECONV: Cell<usize> = const { Cell::new(0) };
}

/// A backend with a ReLU whose backward step passes only positive gradients.
#[backend_extension(Autodiff, Flex)]
pub trait GuidedReluBackend: Backend {
    /// `max(x, 0)`; under autodiff its backward step is `relu(∂y) · [y > 0]`.
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }

    /// `max(x, 0)`; under autodiff its backward step is Lucid's *redirected* ReLU gradient:
    /// for an image (a row of the batch) whose ReLU passes no gradient at all, the gradient
    /// flows through the inactive units too, except where it would push them lower.
    fn redirected_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }

    /// `max(x, 0)`; under autodiff its backward step is DeconvNet's `relu(∂y)` (Zeiler and
    /// Fergus 2014; zennit's `ReLUDeconvNet`, Captum's `Deconvolution`): the sign of the input
    /// does not gate the gradient.
    fn deconv_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::relu(x)
    }
}

impl GuidedReluBackend for Flex {}

impl<B: Backend + GuidedReluBackend, C: CheckpointStrategy> GuidedReluBackend for Autodiff<B, C> {
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct GuidedReluBackward;

        impl<B: Backend> Backward<B, 1> for GuidedReluBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let output = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    B::relu_backward(output, B::relu(grad))
                });
            }
        }

        match GuidedReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::relu(x.primitive().clone());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu(x.into_primitive())),
        }
    }

    fn redirected_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RedirectedReluBackward;

        impl<B: Backend> Backward<B, 1> for RedirectedReluBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let output = ops.state;
                unary::<B, _>(ops.parents, ops.node, grads, |grad| {
                    redirected_grad::<B>(output, grad)
                });
            }
        }

        match RedirectedReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = B::relu(x.primitive().clone());
                prep.finish(output.clone(), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::relu(x.into_primitive())),
        }
    }

    fn deconv_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DeconvReluBackward;

        impl<B: Backend> Backward<B, 1> for DeconvReluBackward {
            type State = ();

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                unary::<B, _>(ops.parents, ops.node, grads, |grad| B::relu(grad));
            }
        }

        let output = B::relu(x.primitive().clone());
        DeconvReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateless(output)
    }
}

/// Lucid's `redirected_relu_grad` on backend primitives: `grad` is ∂loss/∂y of `y = relu(x)`.
fn redirected_grad<B: Backend>(y: FloatTensor<B>, grad: FloatTensor<B>) -> FloatTensor<B> {
    use burn::backend::TensorMetadata;
    let shape = grad.shape();
    let dims = shape.to_vec();
    let n = dims.first().copied().unwrap_or(1).max(1);
    let rest = dims.iter().skip(1).product::<usize>().max(1);
    let relu_grad = B::relu_backward(y.clone(), grad.clone());
    let ones = B::float_add_scalar(B::float_mul_scalar(grad.clone(), 0f32.into()), 1f32.into());
    let active = B::relu_backward(y, ones.clone());
    let inactive = B::float_sub(ones, active);
    // keep, at inactive units, only the gradients that push them up (∂loss/∂y < 0)
    let pushing_up = B::float_sub(grad.clone(), B::relu(grad));
    let redirected = B::float_add(relu_grad.clone(), B::float_mul(inactive, pushing_up));
    // per image: did the plain ReLU gradient pass anything?
    let sq = B::float_mul(relu_grad.clone(), relu_grad.clone());
    let mag = B::float_sum_dim(B::float_reshape(sq, [n, rest].into()), 1);
    let one = B::float_add_scalar(B::float_mul_scalar(mag.clone(), 0f32.into()), 1f32.into());
    let passes = B::relu_backward(mag, one);
    let passes = B::float_reshape(B::float_expand(passes, [n, rest].into()), shape);
    let diff = B::float_sub(relu_grad, redirected.clone());
    B::float_add(redirected, B::float_mul(passes, diff))
}

/// While alive, [`relu`] on this thread backpropagates as Guided Backpropagation. Scopes nest.
#[derive(Debug)]
pub struct GuidedRelu {
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Opens one level of the thread-local scope `counter` for computations on `device`, which
/// must be burn's CPU (`flex`) device with autodiff (where the custom backward steps are
/// implemented); `what` names the step in the error.
fn open_scope(
    counter: &'static std::thread::LocalKey<Cell<usize>>,
    device: &Device,
    what: &str,
) -> Result<()> {
    let name = format!("{device:?}");
    if !device.is_autodiff() || !name.contains("Flex") {
        return Err(ModelError::Unsupported(format!(
            "{what} needs burn's CPU device with autodiff (Device::flex().autodiff()), got {name}"
        )));
    }
    counter.with(|g| g.set(g.get() + 1));
    Ok(())
}

fn close_scope(counter: &'static std::thread::LocalKey<Cell<usize>>) {
    counter.with(|g| g.set(g.get().saturating_sub(1)));
}

impl GuidedRelu {
    /// Enters a scope for computations on `device`, which must be burn's CPU (`flex`) device
    /// with autodiff (the guided step is implemented there).
    pub fn enter(device: &Device) -> Result<Self> {
        open_scope(&GUIDED, device, "guided backpropagation")?;
        Ok(Self {
            _not_send: std::marker::PhantomData,
        })
    }

    /// Whether a scope is open on this thread.
    pub fn active() -> bool {
        GUIDED.with(|g| g.get() > 0)
    }
}

impl Drop for GuidedRelu {
    fn drop(&mut self) {
        close_scope(&GUIDED);
    }
}

/// While alive, [`relu`] on this thread backpropagates with Lucid's redirected ReLU gradient
/// (feature visualization: lets the optimisation start when the visualised channel does not
/// fire at all on the initial image). Scopes nest; a [`GuidedRelu`] scope takes precedence.
#[derive(Debug)]
pub struct RedirectedRelu {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl RedirectedRelu {
    /// Enters a scope for computations on `device`, which must be burn's CPU (`flex`) device
    /// with autodiff (the redirected step is implemented there).
    pub fn enter(device: &Device) -> Result<Self> {
        open_scope(&REDIRECTED, device, "the redirected ReLU gradient")?;
        Ok(Self {
            _not_send: std::marker::PhantomData,
        })
    }

    /// Whether a scope is open on this thread.
    pub fn active() -> bool {
        REDIRECTED.with(|g| g.get() > 0)
    }
}

impl Drop for RedirectedRelu {
    fn drop(&mut self) {
        close_scope(&REDIRECTED);
    }
}

/// While alive, [`relu`] on this thread backpropagates as DeconvNet: `relu(∂y)`, whatever the
/// input's sign (zennit's `ReLUDeconvNet`, Captum's `Deconvolution`). Scopes nest; it takes
/// precedence over the others.
#[derive(Debug)]
pub struct DeconvRelu {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl DeconvRelu {
    /// Enters a scope for computations on `device`, which must be burn's CPU (`flex`) device
    /// with autodiff (the DeconvNet step is implemented there).
    pub fn enter(device: &Device) -> Result<Self> {
        open_scope(&DECONV, device, "DeconvNet")?;
        Ok(Self {
            _not_send: std::marker::PhantomData,
        })
    }

    /// Whether a scope is open on this thread.
    pub fn active() -> bool {
        DECONV.with(|g| g.get() > 0)
    }
}

impl Drop for DeconvRelu {
    fn drop(&mut self) {
        close_scope(&DECONV);
    }
}

/// `max(x, 0)`: burn's ReLU, or inside a [`GuidedRelu`] / [`RedirectedRelu`] /
/// [`DeconvRelu`] scope on an autodiff tensor the guided / redirected / DeconvNet one.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if DeconvRelu::active() && x.is_autodiff() {
        return Tensor::from_dispatch(<Dispatch as GuidedReluBackend>::deconv_relu(
            x.into_dispatch(),
        ));
    }
    if RedirectedRelu::active() && !GuidedRelu::active() && x.is_autodiff() {
        return Tensor::from_dispatch(<Dispatch as GuidedReluBackend>::redirected_relu(
            x.into_dispatch(),
        ));
    }
    if GuidedRelu::active() && x.is_autodiff() {
        Tensor::from_dispatch(<Dispatch as GuidedReluBackend>::guided_relu(
            x.into_dispatch(),
        ))
    } else {
        burn::tensor::activation::relu(x)
    }
}
