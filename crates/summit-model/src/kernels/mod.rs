//! The CPU kernels of the runtime's host fast paths, on burn's `flex` device: the direct host
//! convolution with its fused epilogues (`conv`), strided convolutions as host columns times a
//! product (`im2col`), and the exact SIMD max pool ([`pool`]). Each reads burn's buffers in
//! place and gives the same bits for every batch size and thread count (their own tests).

pub(crate) mod conv;
pub(crate) mod im2col;
pub mod pool;
