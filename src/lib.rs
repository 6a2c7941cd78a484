//! # ariann
//!
//! Two-party private deep learning with function secret sharing (FSS) and a
//! trusted dealer, after the ARIANN paper. This facade re-exports the library
//! crates of the workspace:
//!
//! - [`fss`]: fixed-key AES PRG, DPF (equality) and DCF (comparison) keys,
//!   batched and parallel.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub use ariann_fss as fss;
