//! # ariann-ring: the ring layer of two-party private deep learning
//!
//! This crate owns the arithmetic every other crate of ariann-rs computes
//! in, with no cryptography beyond a seeded ChaCha20 stream for share
//! expansion, no I/O, and no knowledge of protocols, FSS or models:
//!
//! - [`Ring`]: the rings `Z_2^64` (`u64`, the one the project computes in)
//!   and `Z_2^32` (`u32`), wrapping arithmetic, signed interpretation, shifts.
//! - [`FixedPoint`]: binary fixed-point encoding of reals, rounding to
//!   nearest (16 fractional bits by default in `Z_2^64`, 12 in `Z_2^32`;
//!   see [`FixedPoint::DEFAULT`] for why).
//! - [`RingTensor`]: dense row-major tensors of ring elements (ndarray),
//!   wrapping elementwise arithmetic, a cache-blocked rayon matrix product.
//!   Values are treated as secret: `Debug` shows the shape only, buffers are
//!   zeroized on drop.
//! - [`Conv2dShape`], [`im2col`], [`col2im`], [`conv2d`]: NCHW/OIHW
//!   convolution geometry, unrolling and its adjoint.
//! - [`share`], [`reconstruct`], [`ShareSeed`], [`share_with_seed`]:
//!   additive two-party secret sharing, with seed-compressed shares for the
//!   dealer.
//! - [`reference`](mod@reference): naive matmul and direct convolution the fast paths are
//!   tested against.
//! - [`simd`]: the instruction set of the products, chosen at run time
//!   (AVX2, AVX-512 or portable; `ARIANN_SIMD=off` forces the portable
//!   path). The crate's only `unsafe` lives there; the default build needs
//!   no `target-cpu=native`, and every path gives the same bits.
//!
//! ```
//! use ariann_ring::{FixedPoint, RingTensor, reconstruct, share};
//! use rand::SeedableRng;
//!
//! let fp = FixedPoint::DEFAULT;
//! let x = ndarray::arr2(&[[1.5, -2.25], [0.5, 3.0]]).into_dyn();
//! let w = ndarray::arr2(&[[2.0], [1.0]]).into_dyn();
//! let xe: RingTensor<u64> = fp.encode_tensor(&x).unwrap();
//! let we: RingTensor<u64> = fp.encode_tensor(&w).unwrap();
//! // A product carries 2f fractional bits; a cleartext shift truncates it.
//! let y = xe.matmul(&we).unwrap().sar(fp.frac_bits);
//! assert_eq!(fp.decode_tensor(&y), ndarray::arr2(&[[0.75], [4.0]]).into_dyn());
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1); // tests only: use from_os_rng()
//! let (y0, y1) = share(&y, &mut rng);
//! assert_eq!(reconstruct(&y0, &y1).unwrap(), y);
//! ```
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod conv;
mod error;
mod fixed;
pub mod reference;
mod ring;
mod share;
pub mod simd;
mod tensor;

pub use conv::{Conv2dShape, col2im, conv2d, conv2d_grad_input, conv2d_grad_weight, im2col};
pub use error::RingError;
pub use fixed::FixedPoint;
pub use ring::Ring;
pub use share::{ShareSeed, reconstruct, share, share_with_seed};
pub use tensor::{MATMUL_PAR_THRESHOLD, RingTensor};
