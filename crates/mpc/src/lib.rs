//! # ariann-mpc: two-party gates over a sans-IO transport
//!
//! This crate owns the two-party protocols of ariann-rs. It knows nothing of
//! sockets, tokio or files: a protocol talks to its peer through the blocking
//! [`Transport`] trait (in-memory duplex here, gRPC in `crates/net`).
//!
//! Every gate follows the online/offline contract of the design: the dealer
//! runs `generate` and hands each party its key; online, each party adds its
//! share of the dealer's mask to its input share, both open the masked value
//! in ONE exchange ([`open`]), and each finishes locally.
//!
//! Gates so far ([`gates::cmp`]): equality with zero (one DPF per element),
//! DReLU and ReLU in one round (one DCF per element on a declared `k`-bit
//! window, exact inside it).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

mod error;
pub mod gates;
pub mod open;
pub mod transport;

pub use error::MpcError;
pub use open::open;
pub use transport::{CommStats, MemTransport, Transport, run_two_party};
