//! # ariann-fss: function secret sharing for two-party private deep learning
//!
//! This crate owns the FSS primitives of ariann-rs, with no I/O and no
//! knowledge of protocols or models:
//!
//! - [`prg`]: the PRG of the key trees, fixed-key AES-128 (AES-NI/VAES when
//!   the CPU has them, detected at run time) in the tweaked sigma-MMO mode.
//! - [`Dpf`]: distributed point functions, `f(x) = beta if x == alpha` (ARIANN
//!   Algorithms 1-2, Boyle-Gilboa-Ishai 2016).
//! - [`Dcf`]: distributed comparison functions, `f(x) = beta if x < alpha`
//!   (Boyle et al., Eurocrypt 2021).
//! - Output groups ([`Payload`]): `Z_2` ([`Z2`]), `Z_2^32` (`u32`), `Z_2^64`
//!   (`u64`) and `(Z_2^64)^2` (`[u64; 2]`); input width `n` from 1 to 64 bits,
//!   independent of the output group; optional early termination
//!   ([`TreeParams`]).
//! - A batched API ([`FssKeys`]): many independent keys, one point each, which
//!   is what MPC gates need. Keys are interleaved level by level so AES latency
//!   is hidden, and batches are split over rayon.
//! - [`mod@reference`]: a plain scalar implementation the fast path is tested against.
//! - [`codec`]: a compact, versioned, checksummed key encoding.
//!
//! ```
//! use ariann_fss::{DcfKeys, TreeParams};
//! use rand::SeedableRng;
//!
//! let mut rng = rand::rngs::StdRng::seed_from_u64(1); // tests only: use from_os_rng()
//! let params = TreeParams::new::<u64>(32).unwrap();
//! let alphas = [10u64, 20, 30];
//! let betas = [1u64, 2, 3];
//! let (k0, k1) = DcfKeys::<u64>::generate(params, &alphas, &betas, &mut rng).unwrap();
//! let xs = [9u64, 20, 31];
//! let y0 = k0.eval_to_vec(&xs).unwrap();
//! let y1 = k1.eval_to_vec(&xs).unwrap();
//! let y: Vec<u64> = y0.iter().zip(&y1).map(|(a, b)| a.wrapping_add(*b)).collect();
//! assert_eq!(y, vec![1, 0, 0]);
//! ```
//!
//! ## Dependencies beyond the project's list
//!
//! - `zeroize`: wipes seeds and correction words on drop (RustCrypto, the
//!   standard crate for this).
//! - `sha2`: the checksum of key encodings, so corrupted key files are refused
//!   instead of silently evaluating to wrong shares (RustCrypto; SHA-NI when present).
//!
//! ## Security notes
//!
//! Seeds are 128-bit blocks whose low bit (two low bits for a one-bit DCF)
//! carries the control bit (and payload bit), so the effective seed length is
//! 127 (126) bits. The AES key of the PRG is public and fixed; security rests
//! on modelling fixed-key AES as a random permutation, as in every AES-based
//! DPF implementation.

// `unsafe` is denied everywhere except the one module of AES intrinsics.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod aes_fast;
mod batch;
pub mod codec;
mod error;
mod keys;
mod payload;
pub mod prg;
pub mod reference;
mod tree;

pub use batch::{Dcf, DcfKeys, Dpf, DpfKeys, FssKeys, Scheme};
pub use error::{DecodeError, FssError};
pub use keys::{Key, Kind, MAX_NU, Party, TreeParams};
pub use payload::{Payload, Z2};
