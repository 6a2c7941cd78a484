//! # ariann-mpc: two-party gates over a sans-IO transport
//!
//! This crate owns the two-party protocols of ariann-rs. It knows nothing of
//! sockets, tokio or files: a protocol talks to its peer through the blocking
//! [`Transport`] trait (in-memory duplex here, gRPC in `crates/net`).
//!
//! Every gate follows the online/offline contract of the design: the dealer
//! runs `generate` and hands each party its key; online, each party adds its
//! share of the dealer's mask to its input share, both open the masked value
//! in ONE exchange ([`open()`]), and each finishes locally.
//!
//! Gates ([`gates`]): equality with zero, DReLU and ReLU in one round (one
//! DPF/DCF key per element on a declared `k`-bit window, exact inside it),
//! exact truncation in one round, elementwise / matrix / convolution products
//! from triples in one round, max-pool in `ceil(log2 k^2)` rounds, argmax in 2,
//! and training products whose one key serves the forward product and both
//! backward products (mask reuse: one round each way, [`gates::train`]).
//! Weight masks reused across batches ([`gates::reuse`]): in a job of many
//! batches of inference, the first product with each weight opens its mask
//! and later batches' products (`triple_reuse`) open only the activations.
//! Small-key variants ([`gates::small`]) trade one more round for about half
//! the key bytes: ReLU in 2 rounds from a DCF with a 1-bit payload, an exact
//! fused truncation + ReLU in 2 rounds, and the max-pool and argmax built on
//! them.
//!
//! Layers run on a gate backend ([`Gates`]): the private [`Session`], the
//! cleartext fixed-point [`Clear`], or the [`Recorder`] whose trace of the
//! parties' code is the dealer's plan.
//!
//! A gate's costs (online rounds and bytes, key bytes, encoded bundle size)
//! follow from its description alone: [`GateDesc::cost`] and [`plan_cost`]
//! ([`cost`]) answer without generating keys.
//!
//! Every gate kind has one row in the gate table ([`table`]: its number,
//! name and key type); a [`Plan`] lists the gates of a job, its hash names
//! the job, and the dealer streams both parties' bundles from it.
//!
//! Key material is consumed strictly in order through a
//! [`PreprocessingSource`]; a [`Session`] runs the gates of a plan one after
//! the other and refuses a bundle of another gate, shape, index or party
//! before anything is opened.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod backend;
pub mod bundle;
pub mod codec;
pub mod cost;
mod error;
pub mod gates;
pub mod open;
pub mod plan;
pub mod secret;
pub mod session;
pub mod table;
pub mod transport;

pub use backend::{BilinearTape, Clear, Gates, Probe, Recorder, Tracing};
pub use bundle::{
    BundleTag, ChannelSource, GateDesc, GateKey, KeyBundle, PreprocessingSource, VecSource,
};
pub use cost::{GateCost, PlanCost, plan_cost};
pub use error::{Fault, MpcError, SourceFault};
pub use open::{open, open_batch, open_bits};
pub use plan::{BundleStream, Plan};
pub use session::Session;
pub use table::{GateKind, MapKind, SplineKind};
pub use transport::{
    CommStats, MemTransport, ShapedTransport, TimedTransport, Transport, run_two_party,
};
