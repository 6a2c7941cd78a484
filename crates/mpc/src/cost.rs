//! Costs of a gate from its description alone, without generating keys.
//!
//! [`GateDesc::cost`] answers, for one gate of a plan and a ring width (32 or
//! 64 bits), four numbers ([`GateCost`]), all **per party** (the two parties
//! are symmetric: each sends as much as it receives and holds as many key
//! bytes as the other):
//!
//! - `rounds`: online protocol rounds, i.e. [`Transport::exchange`] calls
//!   (a gate on zero elements still takes its rounds, with empty messages);
//! - `bytes_sent`: payload bytes this party sends to the peer during the
//!   online run. Openings are packed on their width ([`crate::open`](mod@crate::open)): a
//!   DReLU opens `k` bits per element (`ceil(k / 8)` bytes), ReLU,
//!   truncation, splines and triples open full ring elements;
//! - `key_bytes`: the key material this party holds for the gate, exactly
//!   what [`GateKey::key_bytes`] of the generated key reports (serialized FSS
//!   keys, [`ariann_fss::FssKeys::key_bytes_seeded_for`], plus ring shares);
//! - `encoded_bytes`: the length of this party's [`KeyBundle::encode`]
//!   output for the gate (header, descriptor, key body; see
//!   [`crate::codec`]), so the bundles of a key file can be sized in advance.
//!
//! The formulas live next to the key they mirror: each gate module has a
//! `cost` function on its key type (`DreluKey::cost`, `TripleKey::cost`,
//! `TrainTripleKey::cost`, `MaxPoolKey::cost`, ...) taking the same
//! parameters as its `generate`, refusing what `generate` refuses, and
//! composite gates (max-pool, argmax, batch-norm) compose the costs of
//! their parts with [`GateCost::then`].
//! This module dispatches on the [`GateDesc`] and adds the bundle header and
//! descriptor. [`plan_cost`] sums a whole plan (sessions run the gates one
//! after the other, so rounds add up).
//!
//! Every size is computed with checked arithmetic: a shape whose sizes
//! overflow `u64` is refused with [`MpcError::InvalidParameter`], never a
//! panic or a wrapped number. Max-pool window sizes are counted per axis (no
//! window list is built), so costing a huge pool takes no memory.
//!
//! How it is checked: `crates/mpc/tests/cost.rs` generates the keys of every
//! gate kind over many shapes (both rings, windows of 8 to 64 bits, `m = 0`
//! and `1`, padded and strided pools, strided convolutions, random shapes
//! under proptest), runs each gate through a [`crate::Session`] on
//! [`crate::MemTransport::pair`] and asserts that the predicted rounds and
//! bytes equal both parties' transport counters ([`CommStats`]), that the
//! predicted key bytes equal [`GateKey::key_bytes`] of both parties' keys and
//! that the predicted encoded length equals [`KeyBundle::encode`]'s.
//!
//! [`Transport::exchange`]: crate::Transport::exchange
//! [`GateKey::key_bytes`]: crate::GateKey::key_bytes
//! [`KeyBundle::encode`]: crate::KeyBundle::encode

use crate::bundle::GateDesc;
use crate::error::MpcError;
use crate::table::GateKey;
use crate::transport::CommStats;
use ariann_fss::{FssKeys, Payload, Scheme, TreeParams};
use ariann_ring::Ring;

/// Per-party cost of one gate (or of several run one after the other); see
/// the [module docs](self) for what each number means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GateCost {
    /// Online rounds (transport exchanges).
    pub rounds: u64,
    /// Bytes one party sends during the online run (it receives as many).
    pub bytes_sent: u64,
    /// Key bytes one party holds ([`crate::GateKey::key_bytes`]).
    pub key_bytes: u64,
    /// Bytes of one party's key in the bundle encoding of [`crate::codec`]:
    /// from [`GateDesc::cost`] the whole [`crate::KeyBundle::encode`]
    /// output; from the `cost` functions of the gate modules, the key body
    /// alone (what the codec writes after the gate descriptor).
    pub encoded_bytes: u64,
}

impl GateCost {
    /// The cost of running `self` and then `next` (every field adds up).
    pub fn then(self, next: GateCost) -> Result<GateCost, MpcError> {
        Ok(GateCost {
            rounds: add(self.rounds, next.rounds, "rounds")?,
            bytes_sent: add(self.bytes_sent, next.bytes_sent, "online bytes")?,
            key_bytes: add(self.key_bytes, next.key_bytes, "key bytes")?,
            encoded_bytes: add(self.encoded_bytes, next.encoded_bytes, "encoded bytes")?,
        })
    }

    /// The transport counters one party should show after the run
    /// (`bytes_received == bytes_sent`: the protocols are symmetric).
    pub fn comm_stats(&self) -> CommStats {
        CommStats {
            rounds: self.rounds,
            bytes_sent: self.bytes_sent,
            bytes_received: self.bytes_sent,
        }
    }
}

/// Per-party cost of a whole plan, gate by gate and in total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanCost {
    /// The cost of each gate, in plan order ([`GateDesc::cost`]).
    pub gates: Vec<GateCost>,
    /// Their sum: the plan's rounds, online bytes, key bytes and the
    /// concatenated bundle encodings.
    pub total: GateCost,
}

impl PlanCost {
    /// The largest key of one gate (what a party streaming its keys holds
    /// at least once), in key bytes.
    pub fn max_gate_key_bytes(&self) -> u64 {
        self.gates.iter().map(|g| g.key_bytes).max().unwrap_or(0)
    }
}

/// Costs of the gates of a plan for `Z_2^ring_bits` (32 or 64), without
/// generating keys. An invalid gate is reported with its plan index.
pub fn plan_cost(gates: &[GateDesc], ring_bits: u32) -> Result<PlanCost, MpcError> {
    let mut out = PlanCost {
        gates: Vec::with_capacity(gates.len()),
        total: GateCost::default(),
    };
    for (i, g) in gates.iter().enumerate() {
        let c = g.cost(ring_bits).map_err(|e| match e {
            MpcError::InvalidParameter(msg) => {
                MpcError::InvalidParameter(format!("gate {i} of the plan ({g:?}): {msg}"))
            }
            other => other,
        })?;
        out.total = out.total.then(c)?;
        out.gates.push(c);
    }
    Ok(out)
}

// Bundle framing, as `crate::codec` writes it: magic (4), version (2), ring
// width (1), party (1), plan index (8).
const BUNDLE_HEADER: u64 = 4 + 2 + 1 + 1 + 8;
// Descriptors: a kind byte, then the parameters (`usize` as 8 bytes, `u32` as 4).
/// Encoded pool shape: seven `u64`.
pub(crate) const POOL_SHAPE: u64 = 7 * 8;
/// Encoded element count or window: a `u64` / a `u32`.
pub(crate) const U64: u64 = 8;
pub(crate) const U32: u64 = 4;

impl GateDesc {
    /// Per-party cost of this gate on `Z_2^ring_bits` (32 or 64), without
    /// generating keys (see the [module docs](crate::cost)). Refuses what
    /// key generation refuses (invalid windows or shapes, batch-norm on the
    /// 32-bit ring) and sizes that overflow, with
    /// [`MpcError::InvalidParameter`].
    pub fn cost(&self, ring_bits: u32) -> Result<GateCost, MpcError> {
        match ring_bits {
            32 => self.cost_in::<u32>(),
            64 => self.cost_in::<u64>(),
            b => Err(MpcError::InvalidParameter(format!(
                "ring width {b} bits (expected 32 or 64)"
            ))),
        }
    }

    /// [`GateDesc::cost`] for the ring `R`.
    pub fn cost_in<R: Ring>(&self) -> Result<GateCost, MpcError> {
        let body = GateKey::<R>::body_cost(self)?;
        // The descriptor's bytes in the bundle header: its one encoding.
        let mut enc = Vec::with_capacity(128);
        self.encode(&mut enc);
        let desc = size(enc.len())?;
        Ok(GateCost {
            encoded_bytes: sum(&[BUNDLE_HEADER, desc, body.encoded_bytes], "encoded bytes")?,
            ..body
        })
    }
}

// ------------------------------------------------- checked size arithmetic

fn overflow(what: &str) -> MpcError {
    MpcError::InvalidParameter(format!("{what} overflow 64 bits"))
}

/// `x` as a `u64`.
pub(crate) fn size(x: usize) -> Result<u64, MpcError> {
    u64::try_from(x).map_err(|_| overflow("sizes"))
}

/// `x` as a `usize` (an element count handed to a gate's `cost`).
pub(crate) fn count(x: u64) -> Result<usize, MpcError> {
    usize::try_from(x).map_err(|_| MpcError::InvalidParameter(format!("{x} elements")))
}

/// `a + b`, or an error naming `what`.
pub(crate) fn add(a: u64, b: u64, what: &str) -> Result<u64, MpcError> {
    a.checked_add(b).ok_or_else(|| overflow(what))
}

/// `a * b`, or an error naming `what`.
pub(crate) fn mul(a: u64, b: u64, what: &str) -> Result<u64, MpcError> {
    a.checked_mul(b).ok_or_else(|| overflow(what))
}

/// The sum of `parts`, or an error naming `what`.
pub(crate) fn sum(parts: &[u64], what: &str) -> Result<u64, MpcError> {
    parts.iter().try_fold(0u64, |acc, p| add(acc, *p, what))
}

/// The product of `parts`, or an error naming `what`.
pub(crate) fn product(parts: &[u64], what: &str) -> Result<u64, MpcError> {
    parts.iter().try_fold(1u64, |acc, p| mul(acc, *p, what))
}

/// Bytes of one ring element in keys and in full-ring openings.
pub(crate) fn ring_bytes<R: Ring>() -> u64 {
    u64::from(R::BITS / 8)
}

/// Bytes of one FSS key of shape `params` in a bundle (root seed expanded
/// from the batch's root key, see [`FssKeys::key_bytes_seeded_for`]).
pub(crate) fn fss_key_bytes<S: Scheme, P: Payload>(params: TreeParams) -> Result<u64, MpcError> {
    size(FssKeys::<S, P>::key_bytes_seeded_for(params))
}

/// Bytes of an FSS batch of `count` keys in a bundle: a `u64` length, then
/// the `ariann_fss` encoding without its checksum, version 3 (bundle format 2).
pub(crate) fn fss_field<S: Scheme, P: Payload>(
    params: TreeParams,
    count: u64,
) -> Result<u64, MpcError> {
    let enc = FssKeys::<S, P>::encoded_len_unchecked_for(params, self::count(count)?)
        .ok_or_else(|| overflow("FSS key encoding"))?;
    add(U64, size(enc)?, "FSS key encoding")
}
