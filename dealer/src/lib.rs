//! # ariann-dealer: key files and JSON plans of the trusted dealer
//!
//! A [`Plan`] is the public description of a job: the ring width and the
//! ordered list of gates ([`GateDesc`]) the two parties will run, with their
//! shapes. `Plan`, its stable [`Plan::hash`] and the lazy stream of both
//! parties' key bundles ([`Plan::bundles`], [`BundleStream`]) live in
//! `ariann_mpc::plan` and are re-exported here. The dealer never sees data
//! or weights; from a plan alone it produces both parties' key bundles,
//! **one gate at a time**, so a job's keys never have to be in memory at
//! once.
//!
//! Key files ([`keyfile`]): the dealer writes each party's bundles to a
//! file (`party0.keys`, `party1.keys`; format documented in [`keyfile`]),
//! streaming, one gate at a time; a party reads its file through a
//! [`keyfile::KeyFileSource`], which checks every chunk and records each
//! bundle it hands out in a use-once journal, so keys are never used twice.
//! Plans also have a JSON form ([`plan_json`]).
//!
//! The dealer signs what it deals ([`auth`]): key files and key streams
//! carry an Ed25519 signature by the dealer's key, which parties pin, and a
//! per-session [`auth::LinkSecret`] for the party link. The party-wide
//! [`ledger`] makes use-once survive a copied key file.
//!
//! Dependencies beyond the workspace's usual ones: `ed25519-dalek` (the
//! dealer's signatures; see [`auth`]).
//!
//! The `ariann-dealer` binary is the `ariann-dealer-cli` package
//! (`dealer/cli`; it needs `ariann-nn` to turn models into plans).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod auth;
pub mod keyfile;
pub mod ledger;
pub mod plan_json;

pub use ariann_mpc::{BundleStream, GateDesc, KeyBundle, MpcError, Plan};
use thiserror::Error;

/// Errors of the dealer (besides key files' [`keyfile::KeyFileError`] and
/// key generation's [`MpcError`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DealerError {
    /// A JSON plan could not be read.
    #[error("invalid JSON plan: {0}")]
    PlanJson(String),
}
