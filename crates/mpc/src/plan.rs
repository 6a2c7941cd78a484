//! Plans: the public description of a job, its stable hash, and the lazy
//! stream of both parties' key bundles the dealer generates from it.
//!
//! A [`Plan`] is the ring width and the ordered list of gates
//! ([`GateDesc`]) the two parties will run, with their shapes. From a plan
//! alone the dealer produces both parties' key bundles, **one gate at a
//! time** ([`Plan::bundles`] is an iterator), so a job's keys never have to
//! be in memory at once. Each bundle is tagged with its gate and plan index,
//! and the plan's [`Plan::hash`] identifies the job in key files and
//! streams.
//!
//! Weight masks reused across batches ([`crate::gates::reuse`]): a
//! [`GateDesc::TripleReuse`] names the plan index of an earlier `triple`
//! gate whose right operand's mask it reuses. The plan says which gate
//! reuses which, so the plan hash covers it and the dealer and both parties
//! agree; [`Plan::weight_reuse`] checks the references, and the bundle
//! stream keeps the dealer's mask `B` of each named gate from that gate
//! until its last reuse (memory: the size of the model's weights), never
//! longer.
//!
//! Randomness: [`Plan::bundles_from_os`] seeds a CSPRNG from the operating
//! system (production); [`Plan::bundles_from_seed`] is deterministic (tests).
//!
//! `Plan` is `serde`-serializable (`ring_bits`, `gates`; the gates tagged by
//! their names in the [gate table](crate::table)); the dealer's JSON plan
//! format (`ariann_dealer::plan_json`) is that serialization plus a format
//! string.

use crate::bundle::{GateDesc, GateKey, KeyBundle, generate_bundles, tag_bundles};
use crate::error::MpcError;
use crate::gates::beaver::TripleKey;
use crate::gates::reuse::ReuseTripleKey;
use ariann_ring::{Ring, RingTensor};
use rand::{CryptoRng, Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The public description of a job: ring width and gates in order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// 64 for `Z_2^64`, 32 for `Z_2^32`.
    pub ring_bits: u32,
    /// The gates, in the order the parties run them.
    pub gates: Vec<GateDesc>,
}

/// Domain separator of the plan hash (bump with any change of the encoding).
///
/// v2: the gates are encoded with [`GateDesc::encode`] (the key bundle
/// header's layout: `u32` windows and bit counts); v1 encoded every field
/// as a `u64`.
pub const PLAN_HASH_DOMAIN: &[u8] = b"ariann-rs plan v2";

impl Plan {
    /// A plan over `Z_2^ring_bits`.
    pub fn new(ring_bits: u32, gates: Vec<GateDesc>) -> Self {
        Self { ring_bits, gates }
    }

    /// Stable SHA-256 of the plan's canonical encoding: equal plans hash
    /// equal across runs, machines and builds.
    ///
    /// The input is [`PLAN_HASH_DOMAIN`], the ring width (`u64` LE), the
    /// number of gates (`u64` LE), then each gate's [`GateDesc::encode`].
    pub fn hash(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(64 + 80 * self.gates.len());
        buf.extend_from_slice(PLAN_HASH_DOMAIN);
        buf.extend_from_slice(&u64::from(self.ring_bits).to_le_bytes());
        buf.extend_from_slice(&(self.gates.len() as u64).to_le_bytes());
        for g in &self.gates {
            g.encode(&mut buf);
        }
        Sha256::digest(&buf).into()
    }

    /// [`Plan::hash`] of this plan's gates repeated `times` times (the plan
    /// of a job that runs the same step again and again, like training),
    /// without building it: one pass over this plan's gates, then hashing.
    /// `None` if the repeated plan's gate count overflows `u64`.
    pub fn hash_repeated(&self, times: u64) -> Option<[u8; 32]> {
        let count = (self.gates.len() as u64).checked_mul(times)?;
        let mut step = Vec::with_capacity(80 * self.gates.len());
        for g in &self.gates {
            g.encode(&mut step);
        }
        let mut h = Sha256::new();
        h.update(PLAN_HASH_DOMAIN);
        h.update(u64::from(self.ring_bits).to_le_bytes());
        h.update(count.to_le_bytes());
        for _ in 0..times {
            h.update(&step);
        }
        Some(h.finalize().into())
    }

    /// The weight-mask reuse of this plan: for each `triple` gate that a
    /// later [`GateDesc::TripleReuse`] names, the plan index of its last
    /// reuse. Refuses (with [`MpcError::Gate`] at the reusing gate's index)
    /// a reuse gate that names itself, a later gate or a gate that is not a
    /// `triple`, or whose right operand's shape is not that gate's.
    pub fn weight_reuse(&self) -> Result<BTreeMap<u64, u64>, MpcError> {
        let mut last = BTreeMap::new();
        for (i, g) in self.gates.iter().enumerate() {
            let GateDesc::TripleReuse { map, from } = *g else {
                continue;
            };
            let index = i as u64;
            let bad = |why: String| MpcError::Gate {
                index,
                kind: g.kind(),
                cause: Box::new(MpcError::InvalidParameter(why)),
            };
            let src = usize::try_from(from)
                .ok()
                .filter(|f| *f < i)
                .and_then(|f| self.gates.get(f))
                .ok_or_else(|| bad(format!("{g} names no earlier gate of the plan")))?;
            let GateDesc::Triple(first) = *src else {
                return Err(bad(format!("{g} names {src}, not a triple gate")));
            };
            let (_, want, _) = first.shapes().map_err(|e| bad(e.to_string()))?;
            let (_, got, _) = map.shapes().map_err(|e| bad(e.to_string()))?;
            if want != got {
                return Err(bad(format!(
                    "{g}: right operand {got:?}, but gate {from} ({src}) masks {want:?}"
                )));
            }
            last.insert(from, index);
        }
        Ok(last)
    }

    /// Both parties' bundles, gate by gate, from `rng` (lazy: one gate's keys
    /// exist at a time unless the caller keeps them). Errors with
    /// [`MpcError::RingMismatch`] if the plan is not for `R`, and as
    /// [`Plan::weight_reuse`] if its reuse gates are inconsistent; each
    /// item errors with [`MpcError::Gate`] if its gate cannot be generated.
    ///
    /// The stream keeps the right mask of every `triple` gate that a later
    /// `triple_reuse` gate names, from that gate to its last reuse.
    pub fn bundles<R: Ring, G: Rng + CryptoRng>(
        &self,
        rng: G,
    ) -> Result<BundleStream<'_, R, G>, MpcError> {
        if self.ring_bits != R::BITS {
            return Err(MpcError::RingMismatch {
                plan: self.ring_bits,
                requested: R::BITS,
            });
        }
        let last_use = self.weight_reuse()?;
        Ok(BundleStream {
            plan: self,
            next: 0,
            rng,
            last_use,
            kept: BTreeMap::new(),
        })
    }

    /// [`Plan::bundles`] from a CSPRNG seeded by the operating system.
    pub fn bundles_from_os<R: Ring>(&self) -> Result<BundleStream<'_, R, ChaCha20Rng>, MpcError> {
        self.bundles(ChaCha20Rng::from_os_rng())
    }

    /// [`Plan::bundles`] from a fixed seed (deterministic; tests only).
    pub fn bundles_from_seed<R: Ring>(
        &self,
        seed: [u8; 32],
    ) -> Result<BundleStream<'_, R, ChaCha20Rng>, MpcError> {
        self.bundles(ChaCha20Rng::from_seed(seed))
    }
}

/// Iterator over `(party 0 bundle, party 1 bundle)` for each gate of a plan.
pub struct BundleStream<'a, R: Ring, G> {
    plan: &'a Plan,
    next: usize,
    rng: G,
    /// For each `triple` gate a later reuse names, its last reuse.
    last_use: BTreeMap<u64, u64>,
    /// The dealer's right masks of those gates, until their last reuse
    /// (secrets: never printed).
    kept: BTreeMap<u64, RingTensor<R>>,
}

impl<R: Ring, G> core::fmt::Debug for BundleStream<'_, R, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BundleStream")
            .field("gates", &self.plan.gates.len())
            .field("next", &self.next)
            .field("kept_masks", &self.kept.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring, G: Rng + CryptoRng> BundleStream<'_, R, G> {
    /// Both parties' keys for gate `index`, keeping or using the weight
    /// masks of the plan's reuse.
    fn deal(
        &mut self,
        index: u64,
        gate: GateDesc,
    ) -> Result<(KeyBundle<R>, KeyBundle<R>), MpcError> {
        match gate {
            GateDesc::Triple(map) if self.last_use.contains_key(&index) => {
                let (k0, k1, b) = TripleKey::generate_keeping(map, &mut self.rng)?;
                self.kept.insert(index, b);
                Ok(tag_bundles(
                    index,
                    gate,
                    GateKey::Triple(Box::new(k0)),
                    GateKey::Triple(Box::new(k1)),
                ))
            }
            GateDesc::TripleReuse { map, from } => {
                // `weight_reuse` checked that gate `from` is an earlier
                // triple, which kept its mask when it was dealt.
                let b = self
                    .kept
                    .get(&from)
                    .ok_or(MpcError::WeightOpeningMissing { from })?;
                let (k0, k1) = ReuseTripleKey::generate(map, from, b, &mut self.rng)?;
                if self.last_use.get(&from) == Some(&index) {
                    self.kept.remove(&from);
                }
                Ok(tag_bundles(
                    index,
                    gate,
                    GateKey::TripleReuse(Box::new(k0)),
                    GateKey::TripleReuse(Box::new(k1)),
                ))
            }
            _ => generate_bundles::<R, G>(index, gate, &mut self.rng),
        }
    }
}

impl<R: Ring, G: Rng + CryptoRng> Iterator for BundleStream<'_, R, G> {
    type Item = Result<(KeyBundle<R>, KeyBundle<R>), MpcError>;

    fn next(&mut self) -> Option<Self::Item> {
        let gate = *self.plan.gates.get(self.next)?;
        let index = self.next as u64;
        self.next += 1;
        Some(self.deal(index, gate).map_err(|cause| MpcError::Gate {
            index,
            kind: gate.kind(),
            cause: Box::new(cause),
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.plan.gates.len() - self.next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::tests::one_of_each;
    use crate::table::GateKind;

    #[test]
    fn serde_names_are_the_table_s() {
        // serde's `rename` cannot read the table: this checks they agree.
        for g in one_of_each() {
            let v = serde_json::to_value(g).expect("serializes");
            assert_eq!(v["gate"], g.kind().name(), "{v}");
            if let GateDesc::Triple(map) = g {
                assert_eq!(v["map"], map.kind().name(), "{v}");
            }
            if let GateDesc::Spline { func, .. } = g {
                assert_eq!(v["func"]["fn"], func.kind().name(), "{v}");
            }
            if let GateDesc::TrainTriple { map, .. } | GateDesc::TripleReuse { map, .. } = g {
                assert_eq!(v["map"]["map"], map.kind().name(), "{v}");
            }
            let back: GateDesc = serde_json::from_value(v).expect("parses");
            assert_eq!(back, g);
        }
        let kinds: Vec<_> = one_of_each().iter().map(|g| g.kind()).collect();
        assert!(GateKind::ALL.iter().all(|k| kinds.contains(k)));
    }

    #[test]
    fn serde_shape_and_unknown_fields() {
        let p = Plan::new(64, one_of_each());
        let text = serde_json::to_string(&p).expect("serializes");
        assert_eq!(serde_json::from_str::<Plan>(&text).expect("parses"), p);
        let g: GateDesc =
            serde_json::from_str(r#"{"gate": "triple", "map": "matmul", "m": 2, "k": 3, "n": 4}"#)
                .expect("parses");
        assert_eq!(
            g,
            GateDesc::Triple(crate::gates::beaver::Bilinear::MatMul { m: 2, k: 3, n: 4 })
        );
        let g: GateDesc = serde_json::from_str(
            r#"{"gate": "spline", "func": {"fn": "recip", "f": 16, "max": 10}, "m": 2, "k": 40}"#,
        )
        .expect("parses");
        assert_eq!(
            g,
            GateDesc::Spline {
                func: crate::gates::spline::SplineFn::Recip { f: 16, max: 10 },
                m: 2,
                k: 40
            }
        );
        let g: GateDesc = serde_json::from_str(
            r#"{"gate": "train_triple", "map": {"map": "matmul", "m": 2, "k": 3, "n": 4}, "dx": true}"#,
        )
        .expect("parses");
        assert_eq!(
            g,
            GateDesc::TrainTriple {
                map: crate::gates::beaver::Bilinear::MatMul { m: 2, k: 3, n: 4 },
                dx: true
            }
        );
        let g: GateDesc = serde_json::from_str(
            r#"{"gate": "triple_reuse", "map": {"map": "matmul", "m": 2, "k": 3, "n": 4}, "from": 7}"#,
        )
        .expect("parses");
        assert_eq!(
            g,
            GateDesc::TripleReuse {
                map: crate::gates::beaver::Bilinear::MatMul { m: 2, k: 3, n: 4 },
                from: 7
            }
        );
        for bad in [
            r#"{"gate": "triple_reuse", "map": {"map": "mul", "len": 2}}"#,
            r#"{"gate": "triple_reuse", "map": {"map": "mul", "len": 2}, "from": -1}"#,
            r#"{"gate": "relu", "m": 2, "k": 3, "x": 1}"#,
            r#"{"gate": "relu", "m": 2}"#,
            r#"{"gate": "gelu", "m": 2, "k": 3}"#,
            r#"{"gate": "triple", "map": "matmul", "m": 2, "k": 3, "n": 4, "x": 1}"#,
            r#"{"gate": "triple", "map": "mat_mul", "m": 2, "k": 3, "n": 4}"#,
            r#"{"gate": "batch_norm", "n": 1, "c": 2, "h": 3, "w": 4, "x": 1}"#,
            r#"{"gate": "spline", "func": {"fn": "exp", "f": 16, "x": 1}, "m": 2, "k": 40}"#,
            r#"{"gate": "spline", "func": {"fn": "recip", "f": 16}, "m": 2, "k": 40}"#,
            r#"{"gate": "spline", "func": {"fn": "log", "f": 16}, "m": 2, "k": 40}"#,
            r#"{"gate": "spline", "func": {"fn": "exp", "f": 16}, "m": 2, "k": 40, "x": 1}"#,
            r#"{"gate": "max_pool", "shape": {"n": 1, "c": 1, "h": 2, "w": 2, "k": 2, "stride": 2, "pad": 0, "x": 0}, "k": 8}"#,
            r#"{"gate": "triple", "map": "conv2d", "n": 1, "c": 1, "h": 2, "w": 2, "oc": 1, "kh": 1, "kw": 1, "stride": 1, "pad": 0, "x": 0}"#,
            r#"{"gate": "train_triple", "map": {"map": "mul", "len": 2}, "dx": true, "x": 1}"#,
            r#"{"gate": "train_triple", "map": {"map": "mul", "len": 2, "x": 1}, "dx": true}"#,
            r#"{"gate": "train_triple", "map": {"map": "mul", "len": 2}}"#,
            r#"{"gate": "train_triple", "map": "mul", "len": 2, "dx": true}"#,
            r#"{"gate": "train_triple", "map": {"map": "mul", "len": 2}, "dx": 1}"#,
        ] {
            assert!(serde_json::from_str::<GateDesc>(bad).is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Plan>(r#"{"ring_bits": 64, "gates": [], "x": 1}"#).is_err());
    }

    #[test]
    fn hash_repeated_is_the_hash_of_the_repeated_plan() {
        let one = Plan::new(64, one_of_each());
        for times in [0u64, 1, 3] {
            let mut gates = Vec::new();
            for _ in 0..times {
                gates.extend_from_slice(&one.gates);
            }
            assert_eq!(
                one.hash_repeated(times),
                Some(Plan::new(64, gates).hash()),
                "{times} times"
            );
        }
        assert_eq!(one.hash_repeated(u64::MAX), None);
    }

    #[test]
    fn hash_input_is_domain_ring_count_and_gate_encodings() {
        let p = Plan::new(64, one_of_each());
        let mut buf = b"ariann-rs plan v2".to_vec();
        buf.extend_from_slice(&64u64.to_le_bytes());
        buf.extend_from_slice(&(p.gates.len() as u64).to_le_bytes());
        for g in &p.gates {
            g.encode(&mut buf);
        }
        assert_eq!(p.hash(), <[u8; 32]>::from(Sha256::digest(&buf)));
    }
}
