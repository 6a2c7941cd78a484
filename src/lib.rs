//! # ariann
//!
//! Two-party private deep learning with function secret sharing (FSS) and a
//! trusted dealer, after the ARIANN paper. This facade re-exports the library
//! crates of the workspace:
//!
//! - [`fss`]: fixed-key AES PRG, DPF (equality) and DCF (comparison) keys,
//!   batched and parallel.
//! - [`ring`]: `Z_2^64` / `Z_2^32` ring elements, fixed-point encoding, ring
//!   tensors, im2col/col2im and additive sharing.
//! - [`mpc`]: the two-party gates over a sans-IO transport (masked openings,
//!   one-round comparison, ReLU, truncation, Beaver/matrix/convolution
//!   triples, max-pool, argmax), tagged key bundles and sessions.
//! - [`dealer`]: plans of gates, their stable hash, streaming key generation.
//! - [`nn`]: layers and models run in float, in fixed point and privately;
//!   safetensors weights by PyTorch names.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod local;

pub use ariann_dealer as dealer;
pub use ariann_fss as fss;
pub use ariann_mpc as mpc;
pub use ariann_nn as nn;
pub use ariann_ring as ring;
