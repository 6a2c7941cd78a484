//! Key bundles and the preprocessing source they come from.
//!
//! A job's key material is consumed strictly in order. Every bundle carries a
//! [`BundleTag`]: the gate's descriptor (kind and shape parameters) and its
//! index in the plan. A party asks its [`PreprocessingSource`] for the bundle
//! of the gate it is about to run, and any mismatch (another gate, another
//! shape, an index out of order, another party's bundle, exhausted keys) is an
//! error *before* anything is masked or opened, never a wrong answer.

use crate::error::MpcError;
use crate::gates::batchnorm::{BatchNormKey, BatchNormShape};
use crate::gates::beaver::{Bilinear, TripleKey};
use crate::gates::cmp::{DreluKey, EqZeroKey, ReluKey};
use crate::gates::pool::{ArgmaxKey, MaxPoolKey, MaxPoolOneHotKey, PoolShape};
use crate::gates::trunc::TruncKey;
use ariann_fss::Party;
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use std::collections::VecDeque;

/// A gate of a plan: its kind and the public parameters its keys depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateDesc {
    /// `m` DReLU gates on a `k`-bit window.
    Drelu {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` one-round ReLU gates on a `k`-bit window.
    Relu {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` equality-with-zero gates on a `k`-bit window.
    EqZero {
        /// Elements.
        m: usize,
        /// Window bits.
        k: u32,
    },
    /// `m` exact truncations by `f` bits of values in a `k`-bit window.
    Trunc {
        /// Elements.
        m: usize,
        /// Fractional bits removed.
        f: u32,
        /// Window bits.
        k: u32,
    },
    /// A bilinear map (elementwise, matrix or convolution product).
    Triple(Bilinear),
    /// A max-pool on a `k`-bit window.
    MaxPool {
        /// Geometry.
        shape: PoolShape,
        /// Window bits.
        k: u32,
    },
    /// A max-pool in 3 rounds (all-pairs comparisons, one-hot selection).
    MaxPoolOneHot {
        /// Geometry.
        shape: PoolShape,
        /// Window bits.
        k: u32,
    },
    /// Batch normalisation (training forward, 9 rounds, 64-bit ring only).
    BatchNorm(BatchNormShape),
    /// Argmax over `rows` rows of `n` values on a `k`-bit window.
    Argmax {
        /// Rows.
        rows: usize,
        /// Values per row.
        n: usize,
        /// Window bits.
        k: u32,
    },
}

/// The label every bundle carries: which gate of which plan position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BundleTag {
    /// Position of the gate in the plan (0-based).
    pub index: u64,
    /// The gate.
    pub gate: GateDesc,
}

/// One party's keys for one gate.
#[derive(Debug, Clone)]
pub enum GateKey<R: Ring> {
    /// See [`DreluKey`].
    Drelu(DreluKey<R>),
    /// See [`ReluKey`].
    Relu(ReluKey<R>),
    /// See [`EqZeroKey`].
    EqZero(EqZeroKey<R>),
    /// See [`TruncKey`].
    Trunc(TruncKey<R>),
    /// See [`TripleKey`] (boxed: it is much larger than the other keys).
    Triple(Box<TripleKey<R>>),
    /// See [`MaxPoolKey`].
    MaxPool(MaxPoolKey<R>),
    /// See [`MaxPoolOneHotKey`] (boxed: large).
    MaxPoolOneHot(Box<MaxPoolOneHotKey<R>>),
    /// See [`BatchNormKey`] (boxed: large).
    BatchNorm(Box<BatchNormKey<R>>),
    /// See [`ArgmaxKey`].
    Argmax(ArgmaxKey<R>),
}

/// A tagged key for one gate, held by one party.
#[derive(Debug, Clone)]
pub struct KeyBundle<R: Ring> {
    /// The party the bundle is for.
    pub party: Party,
    /// What it is for.
    pub tag: BundleTag,
    /// The keys.
    pub key: GateKey<R>,
}

impl<R: Ring> GateKey<R> {
    /// Key bytes held by this party for this gate.
    pub fn key_bytes(&self) -> usize {
        match self {
            GateKey::Drelu(k) => k.key_bytes(),
            GateKey::Relu(k) => k.key_bytes(),
            GateKey::EqZero(k) => k.key_bytes(),
            GateKey::Trunc(k) => k.key_bytes(),
            GateKey::Triple(k) => k.key_bytes(),
            GateKey::MaxPool(k) => k.key_bytes(),
            GateKey::MaxPoolOneHot(k) => k.key_bytes(),
            GateKey::BatchNorm(k) => k.key_bytes(),
            GateKey::Argmax(k) => k.key_bytes(),
        }
    }
}

impl GateDesc {
    /// Dealer: both parties' keys for this gate.
    pub fn generate<R: Ring, G: Rng + CryptoRng + ?Sized>(
        &self,
        rng: &mut G,
    ) -> Result<(GateKey<R>, GateKey<R>), MpcError> {
        Ok(match *self {
            GateDesc::Drelu { m, k } => {
                let (a, b) = DreluKey::generate(k, m, rng)?;
                (GateKey::Drelu(a), GateKey::Drelu(b))
            }
            GateDesc::Relu { m, k } => {
                let (a, b) = ReluKey::generate(k, m, rng)?;
                (GateKey::Relu(a), GateKey::Relu(b))
            }
            GateDesc::EqZero { m, k } => {
                let (a, b) = EqZeroKey::generate(k, m, rng)?;
                (GateKey::EqZero(a), GateKey::EqZero(b))
            }
            GateDesc::Trunc { m, f, k } => {
                let (a, b) = TruncKey::generate(f, k, m, rng)?;
                (GateKey::Trunc(a), GateKey::Trunc(b))
            }
            GateDesc::Triple(map) => {
                let (a, b) = TripleKey::generate(map, rng)?;
                (GateKey::Triple(Box::new(a)), GateKey::Triple(Box::new(b)))
            }
            GateDesc::MaxPool { shape, k } => {
                let (a, b) = MaxPoolKey::generate(shape, k, rng)?;
                (GateKey::MaxPool(a), GateKey::MaxPool(b))
            }
            GateDesc::MaxPoolOneHot { shape, k } => {
                let (a, b) = MaxPoolOneHotKey::generate(shape, k, rng)?;
                (
                    GateKey::MaxPoolOneHot(Box::new(a)),
                    GateKey::MaxPoolOneHot(Box::new(b)),
                )
            }
            GateDesc::BatchNorm(shape) => {
                let (a, b) = BatchNormKey::generate(shape, rng)?;
                (
                    GateKey::BatchNorm(Box::new(a)),
                    GateKey::BatchNorm(Box::new(b)),
                )
            }
            GateDesc::Argmax { rows, n, k } => {
                let (a, b) = ArgmaxKey::generate(rows, n, k, rng)?;
                (GateKey::Argmax(a), GateKey::Argmax(b))
            }
        })
    }
}

/// Dealer: both parties' bundles for gate `index` of a plan.
pub fn generate_bundles<R: Ring, G: Rng + CryptoRng + ?Sized>(
    index: u64,
    gate: GateDesc,
    rng: &mut G,
) -> Result<(KeyBundle<R>, KeyBundle<R>), MpcError> {
    let (k0, k1) = gate.generate(rng)?;
    let tag = BundleTag { index, gate };
    Ok((
        KeyBundle {
            party: Party::P0,
            tag,
            key: k0,
        },
        KeyBundle {
            party: Party::P1,
            tag,
            key: k1,
        },
    ))
}

/// Where a party's key bundles come from (memory, a key file, a dealer stream).
pub trait PreprocessingSource<R: Ring> {
    /// The next bundle, which must be exactly `expected` for `party`;
    /// otherwise an error and nothing is consumed beyond it.
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError>;
}

/// Checks that `got` is the bundle `expected` for `party`.
pub fn check_bundle<R: Ring>(
    bundle: &KeyBundle<R>,
    party: Party,
    expected: &BundleTag,
) -> Result<(), MpcError> {
    if bundle.party != party {
        return Err(MpcError::WrongParty {
            key: bundle.party.index(),
            me: party.index(),
        });
    }
    if bundle.tag != *expected {
        return Err(MpcError::BundleMismatch {
            expected: format!("{expected:?}"),
            got: format!("{:?}", bundle.tag),
        });
    }
    Ok(())
}

/// An in-memory source: bundles in a queue, consumed in order.
#[derive(Debug, Default)]
pub struct VecSource<R: Ring> {
    queue: VecDeque<KeyBundle<R>>,
}

impl<R: Ring> VecSource<R> {
    /// A source over `bundles`, in order.
    pub fn new(bundles: impl IntoIterator<Item = KeyBundle<R>>) -> Self {
        Self {
            queue: bundles.into_iter().collect(),
        }
    }
    /// Bundles left.
    pub fn remaining(&self) -> usize {
        self.queue.len()
    }
}

impl<R: Ring> PreprocessingSource<R> for VecSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        let front = self.queue.front().ok_or(MpcError::KeysExhausted {
            index: expected.index,
        })?;
        check_bundle(front, party, expected)?;
        // Checked just above that the queue is not empty.
        self.queue
            .pop_front()
            .map(|b| b.key)
            .ok_or(MpcError::KeysExhausted {
                index: expected.index,
            })
    }
}

/// A source fed by a dealer running concurrently (another thread, or a
/// network stream): bundles arrive over a bounded channel, so a party holds
/// at most the channel's capacity of bundles beyond the gate it is running,
/// never a whole job's keys.
#[derive(Debug)]
pub struct ChannelSource<R: Ring> {
    rx: std::sync::mpsc::Receiver<KeyBundle<R>>,
    timeout: std::time::Duration,
}

impl<R: Ring> ChannelSource<R> {
    /// A source reading from `rx`, waiting at most `timeout` for each bundle.
    pub fn new(rx: std::sync::mpsc::Receiver<KeyBundle<R>>, timeout: std::time::Duration) -> Self {
        Self { rx, timeout }
    }
}

impl<R: Ring> PreprocessingSource<R> for ChannelSource<R> {
    fn next_bundle(&mut self, party: Party, expected: &BundleTag) -> Result<GateKey<R>, MpcError> {
        let b = self.rx.recv_timeout(self.timeout).map_err(|e| match e {
            std::sync::mpsc::RecvTimeoutError::Timeout => MpcError::Timeout(self.timeout),
            std::sync::mpsc::RecvTimeoutError::Disconnected => MpcError::KeysExhausted {
                index: expected.index,
            },
        })?;
        check_bundle(&b, party, expected)?;
        Ok(b.key)
    }
}
