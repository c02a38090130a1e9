//! What every dense-layer launcher takes: the operands of one layer on the device.

use cudarc::driver::{CudaView, CudaViewMut};

use crate::activation::Activation;

/// The operands of one dense layer, row-major: `a` m×k, `w` k×n, `bias` n, `out` m×n.
pub(crate) struct DenseOperands<'a, 'b, T> {
    pub(crate) a: &'b CudaView<'a, T>,
    pub(crate) w: &'b CudaView<'a, T>,
    pub(crate) bias: &'b CudaView<'a, T>,
    pub(crate) out: &'b mut CudaViewMut<'a, T>,
    pub(crate) m: usize,
    pub(crate) n: usize,
    pub(crate) k: usize,
    pub(crate) activation: Activation,
}
