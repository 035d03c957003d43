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
}

/// A backend with a ReLU whose backward step passes only positive gradients.
#[backend_extension(Autodiff, Flex)]
pub trait GuidedReluBackend: Backend {
    /// `max(x, 0)`; under autodiff its backward step is `relu(∂y) · [y > 0]`.
    fn guided_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
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
}

/// While alive, [`relu`] on this thread backpropagates as Guided Backpropagation. Scopes nest.
#[derive(Debug)]
pub struct GuidedRelu {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl GuidedRelu {
    /// Enters a scope for computations on `device`, which must be burn's CPU (`flex`) device
    /// with autodiff (the guided step is implemented there).
    pub fn enter(device: &Device) -> Result<Self> {
        let name = format!("{device:?}");
        if !device.is_autodiff() || !name.contains("Flex") {
            return Err(ModelError::Unsupported(format!(
                "guided backpropagation needs burn's CPU device with autodiff \
                 (Device::flex().autodiff()), got {name}"
            )));
        }
        GUIDED.with(|g| g.set(g.get() + 1));
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
        GUIDED.with(|g| g.set(g.get().saturating_sub(1)));
    }
}

/// `max(x, 0)`: burn's ReLU, or inside a [`GuidedRelu`] scope on an autodiff tensor the guided
/// one.
pub fn relu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if GuidedRelu::active() && x.is_autodiff() {
        Tensor::from_dispatch(<Dispatch as GuidedReluBackend>::guided_relu(
            x.into_dispatch(),
        ))
    } else {
        burn::tensor::activation::relu(x)
    }
}
