//! # ariann-dealer: plans and key generation of the trusted dealer
//!
//! A [`Plan`] is the public description of a job: the ring width and the
//! ordered list of gates ([`GateDesc`]) the two parties will run, with their
//! shapes. The dealer never sees data or weights; from a plan alone it
//! produces both parties' key bundles, **one gate at a time**
//! ([`Plan::bundles`] is an iterator), so a job's keys never have to be in
//! memory at once. Each bundle is tagged with its gate and plan index, and the
//! plan's [`Plan::hash`] identifies the job in key files and streams.
//!
//! Randomness: [`Plan::bundles_from_os`] seeds a CSPRNG from the operating
//! system (production); [`Plan::bundles_from_seed`] is deterministic (tests).
//!
//! Key files ([`keyfile`]): the dealer writes each party's bundles to a
//! file (`party0.keys`, `party1.keys`; format documented in [`keyfile`]),
//! streaming, one gate at a time; a party reads its file through a
//! [`keyfile::KeyFileSource`], which checks every chunk and records each
//! bundle it hands out in a use-once journal, so keys are never used twice.
//! Plans also have a JSON form ([`plan_json`]).
//!
//! The `ariann-dealer` binary is the `ariann-dealer-cli` package
//! (`dealer/cli`; it needs `ariann-nn` to turn models into plans, which
//! itself depends on this crate).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(clippy::unwrap_used)]

pub mod keyfile;
pub mod plan_json;

use ariann_mpc::bundle::generate_bundles;
use ariann_mpc::gates::beaver::Bilinear;
pub use ariann_mpc::{GateDesc, KeyBundle, MpcError};
use ariann_ring::Ring;
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Errors of the dealer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DealerError {
    /// The plan is for another ring width than the keys requested.
    #[error("plan is for Z_2^{plan} but keys for Z_2^{requested} were requested")]
    RingMismatch {
        /// Ring bits of the plan.
        plan: u32,
        /// Ring bits requested.
        requested: u32,
    },
    /// A gate of the plan could not be generated.
    #[error("gate {index} of the plan: {source}")]
    Gate {
        /// Plan index.
        index: u64,
        /// Cause.
        source: MpcError,
    },
    /// A JSON plan could not be read.
    #[error("invalid JSON plan: {0}")]
    PlanJson(String),
}

/// The public description of a job: ring width and gates in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plan {
    /// 64 for `Z_2^64`, 32 for `Z_2^32`.
    pub ring_bits: u32,
    /// The gates, in the order the parties run them.
    pub gates: Vec<GateDesc>,
}

/// Domain separator of the plan hash (bump with any change of the encoding).
const HASH_DOMAIN: &[u8] = b"ariann-rs plan v1";

fn put(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Canonical, versioned byte encoding of a gate (the input of the plan hash).
fn encode_gate(out: &mut Vec<u8>, g: &GateDesc) {
    match *g {
        GateDesc::Drelu { m, k } => {
            out.push(1);
            put(out, m as u64);
            put(out, u64::from(k));
        }
        GateDesc::Relu { m, k } => {
            out.push(2);
            put(out, m as u64);
            put(out, u64::from(k));
        }
        GateDesc::EqZero { m, k } => {
            out.push(3);
            put(out, m as u64);
            put(out, u64::from(k));
        }
        GateDesc::Trunc { m, f, k } => {
            out.push(4);
            put(out, m as u64);
            put(out, u64::from(f));
            put(out, u64::from(k));
        }
        GateDesc::Triple(map) => {
            out.push(5);
            match map {
                Bilinear::Mul { len } => {
                    out.push(1);
                    put(out, len as u64);
                }
                Bilinear::MatMul { m, k, n } => {
                    out.push(2);
                    for v in [m, k, n] {
                        put(out, v as u64);
                    }
                }
                Bilinear::Conv2d(s) => {
                    out.push(3);
                    for v in [s.n, s.c, s.h, s.w, s.oc, s.kh, s.kw, s.stride, s.pad] {
                        put(out, v as u64);
                    }
                }
            }
        }
        GateDesc::MaxPool { shape: s, k } => {
            out.push(6);
            for v in [s.n, s.c, s.h, s.w, s.k, s.stride, s.pad] {
                put(out, v as u64);
            }
            put(out, u64::from(k));
        }
        GateDesc::MaxPoolOneHot { shape: s, k } => {
            out.push(8);
            for v in [s.n, s.c, s.h, s.w, s.k, s.stride, s.pad] {
                put(out, v as u64);
            }
            put(out, u64::from(k));
        }
        GateDesc::BatchNorm(s) => {
            out.push(9);
            for v in [s.n, s.c, s.h, s.w] {
                put(out, v as u64);
            }
        }
        GateDesc::Argmax { rows, n, k } => {
            out.push(7);
            put(out, rows as u64);
            put(out, n as u64);
            put(out, u64::from(k));
        }
    }
}

impl Plan {
    /// A plan over `Z_2^ring_bits`.
    pub fn new(ring_bits: u32, gates: Vec<GateDesc>) -> Self {
        Self { ring_bits, gates }
    }

    /// Stable SHA-256 of the plan's canonical encoding: equal plans hash
    /// equal across runs, machines and versions of this encoding.
    pub fn hash(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(64 + 80 * self.gates.len());
        buf.extend_from_slice(HASH_DOMAIN);
        put(&mut buf, u64::from(self.ring_bits));
        put(&mut buf, self.gates.len() as u64);
        for g in &self.gates {
            encode_gate(&mut buf, g);
        }
        Sha256::digest(&buf).into()
    }

    /// Both parties' bundles, gate by gate, from `rng` (lazy: one gate's keys
    /// exist at a time unless the caller keeps them).
    pub fn bundles<R: Ring, G: Rng + CryptoRng>(
        &self,
        rng: G,
    ) -> Result<BundleStream<'_, R, G>, DealerError> {
        if self.ring_bits != R::BITS {
            return Err(DealerError::RingMismatch {
                plan: self.ring_bits,
                requested: R::BITS,
            });
        }
        Ok(BundleStream {
            plan: self,
            next: 0,
            rng,
            _ring: core::marker::PhantomData,
        })
    }

    /// [`Plan::bundles`] from a CSPRNG seeded by the operating system.
    pub fn bundles_from_os<R: Ring>(
        &self,
    ) -> Result<BundleStream<'_, R, ChaCha20Rng>, DealerError> {
        self.bundles(ChaCha20Rng::from_os_rng())
    }

    /// [`Plan::bundles`] from a fixed seed (deterministic; tests only).
    pub fn bundles_from_seed<R: Ring>(
        &self,
        seed: [u8; 32],
    ) -> Result<BundleStream<'_, R, ChaCha20Rng>, DealerError> {
        self.bundles(ChaCha20Rng::from_seed(seed))
    }
}

/// Iterator over `(party 0 bundle, party 1 bundle)` for each gate of a plan.
#[derive(Debug)]
pub struct BundleStream<'a, R: Ring, G> {
    plan: &'a Plan,
    next: usize,
    rng: G,
    _ring: core::marker::PhantomData<R>,
}

impl<R: Ring, G: Rng + CryptoRng> Iterator for BundleStream<'_, R, G> {
    type Item = Result<(KeyBundle<R>, KeyBundle<R>), DealerError>;

    fn next(&mut self) -> Option<Self::Item> {
        let gate = *self.plan.gates.get(self.next)?;
        let index = self.next as u64;
        self.next += 1;
        Some(
            generate_bundles::<R, G>(index, gate, &mut self.rng)
                .map_err(|source| DealerError::Gate { index, source }),
        )
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.gates.len() - self.next;
        (left, Some(left))
    }
}
