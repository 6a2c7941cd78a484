//! Weight masks reused across batches: a product `x * W` with a model
//! weight `W` that stays the same for a whole job opens `W - B` once.
//!
//! A job of many batches of inference multiplies the same weight `W` by a
//! new activation `x` in every batch. With a fresh triple per product
//! ([`crate::gates::beaver`]) both parties open `x - a` *and* `W - b` every
//! time, so the weights cross the link again for every batch (most of
//! VGG16's online traffic at batch 1). Here:
//!
//! - the **first** product with `W` is an ordinary `triple` gate
//!   ([`GateDesc::Triple`]): it opens `e = x - a` and `f = W - B`, and both
//!   parties keep `f` (an [`OpenedWeight`], in the [`WeightMasks`] store of
//!   their session, under the plan index of that gate);
//! - every **later** product with `W` is a `triple_reuse` gate
//!   ([`GateDesc::TripleReuse`]) that names that plan index (`from`). The
//!   dealer, which kept `B` when it dealt gate `from`, hands out shares of
//!   a fresh `a'` and of `c' = a' * B` only (no new `b`); the parties open
//!   `e' = x - a'` alone and each computes
//!   `z_j = c'_j + e' * W_j + a'_j * f`, so that
//!   `z_0 + z_1 = a'B + (x - a')W + a'(W - B) = x * W`.
//!
//! **What it reveals**: nothing new. The only value opened about `W` is
//! `W - B`, once, exactly as the first batch's triple opens it; later
//! batches open `x - a'` with a fresh uniform `a'`, as any triple does. `B`
//! is never used to mask any other value.
//!
//! **Where it must not be used**: on a weight that changes. A new `W'`
//! needs a fresh mask (opening `W' - B` would reveal `W' - W`), and reusing
//! the old opening with `W'` would compute a wrong product; so training
//! (weights change every step) never emits `triple_reuse` gates
//! (`ariann_nn::train` traces on a backend without reuse, and refuses a
//! backend with it), and a session refuses a `triple_reuse` gate whose
//! party's weight share is not the one it kept the opening for
//! ([`MpcError::WeightChanged`]; a fingerprint of the share, a guard against
//! misuse, not a cryptographic check). Across jobs the opening may only be
//! reused with the same dealer (the same `B`) and the same weights: today
//! the store lives in one session, i.e. one job.
//!
//! A reuse gate's left operand may have another batch size than the first
//! product's (the map may differ), but its right operand has exactly the
//! kept opening's shape ([`MpcError::WeightOpeningShape`] otherwise).

use crate::bundle::GateDesc;
use crate::codec::Reader;
use crate::cost::{self, GateCost};
use crate::error::MpcError;
use crate::gates::beaver::{Bilinear, TripleKey, map_encoded_len};
use crate::gates::util::{
    check_party, put_seeded_tensors, read_seeded_tensors, seeded_tensor_bytes, seeded_tensor_cost,
    split_tensors,
};
use crate::open::open;
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor, reconstruct};
use rand::{CryptoRng, Rng};
use std::collections::BTreeMap;

/// A weight's opened mask, kept by both parties after the first product
/// with it: `f = W - B` (public to both; not a secret), and a fingerprint
/// of this party's share of `W` at that time.
#[derive(Clone)]
pub struct OpenedWeight<R: Ring> {
    f: RingTensor<R>,
    share_fingerprint: u64,
}

impl<R: Ring> core::fmt::Debug for OpenedWeight<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenedWeight")
            .field("shape", &self.f.shape())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> OpenedWeight<R> {
    /// The opening `f = W - B` (right operand's shape).
    pub fn opened(&self) -> &RingTensor<R> {
        &self.f
    }
}

/// A fingerprint of a share (a multiply-xor fold over the elements and the
/// shape): it tells a changed weight share from the kept one. It is a
/// guard against misuse, not a cryptographic check, and never leaves the
/// party.
fn fingerprint<R: Ring>(y: &RingTensor<R>) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = y.shape().len() as u64;
    for d in y.shape() {
        h = (h ^ *d as u64).wrapping_mul(K).rotate_left(31);
    }
    for v in y.as_slice() {
        h = (h ^ v.to_u64()).wrapping_mul(K).rotate_left(31);
    }
    h
}

/// One party's kept weight openings, by the plan index of the `triple`
/// gate that opened each (what a [`GateDesc::TripleReuse`] names in
/// `from`). Lives in a [`crate::Session`]: one job.
#[derive(Debug, Default, Clone)]
pub struct WeightMasks<R: Ring> {
    kept: BTreeMap<u64, OpenedWeight<R>>,
}

impl<R: Ring> WeightMasks<R> {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            kept: BTreeMap::new(),
        }
    }

    /// Keeps the opening `f` of the gate at plan index `index`, made with
    /// this party's weight share `y`.
    pub fn keep(&mut self, index: u64, f: RingTensor<R>, y: &RingTensor<R>) {
        self.kept.insert(
            index,
            OpenedWeight {
                f,
                share_fingerprint: fingerprint(y),
            },
        );
    }

    /// The opening kept from gate `from`, checked for a product whose right
    /// operand (this party's weight share) is `y`: refused if there is none
    /// ([`MpcError::WeightOpeningMissing`]), if its shape is not `y`'s
    /// ([`MpcError::WeightOpeningShape`]) or if `y` is not the share it was
    /// kept with ([`MpcError::WeightChanged`]).
    pub fn get(&self, from: u64, y: &RingTensor<R>) -> Result<&OpenedWeight<R>, MpcError> {
        let w = self
            .kept
            .get(&from)
            .ok_or(MpcError::WeightOpeningMissing { from })?;
        if w.f.shape() != y.shape() {
            return Err(MpcError::WeightOpeningShape {
                from,
                kept: w.f.shape().to_vec(),
                got: y.shape().to_vec(),
            });
        }
        if w.share_fingerprint != fingerprint(y) {
            return Err(MpcError::WeightChanged { from });
        }
        Ok(w)
    }

    /// Number of openings kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// Runs the first product with a weight (an ordinary triple) and keeps its
/// opening of `y - b` in `store` under `index` (the gate's plan index).
/// One round, `|x| + |y|` ring elements, as [`TripleKey::eval`].
pub fn eval_keeping<R: Ring, T: Transport + ?Sized>(
    key: &TripleKey<R>,
    t: &mut T,
    x: &RingTensor<R>,
    y: &RingTensor<R>,
    index: u64,
    store: &mut WeightMasks<R>,
) -> Result<RingTensor<R>, MpcError> {
    check_party(key.party, t.party())?;
    let opened = open(t, &key.mask(x, y)?, R::BITS)?;
    let z = key.finish(&opened, y)?;
    let (_, f) = key.split_slices(&opened)?;
    let f = RingTensor::from_vec(key.b.shape(), f.to_vec())?;
    store.keep(index, f, y);
    Ok(z)
}

/// One party's key of a `triple_reuse` gate: shares of a fresh left mask
/// `a'` and of `c' = a' * B`, where `B` is the right mask of the gate
/// named by the descriptor's `from` (no `b`: the right operand is not
/// opened again).
#[derive(Clone)]
pub struct ReuseTripleKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) map: Bilinear,
    pub(crate) from: u64,
    /// The seed of this party's seeded half of `a' || c'`.
    pub(crate) seed: u128,
    pub(crate) a: RingTensor<R>,
    pub(crate) c: RingTensor<R>,
}

impl<R: Ring> core::fmt::Debug for ReuseTripleKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReuseTripleKey")
            .field("party", &self.party)
            .field("map", &self.map)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl<R: Ring> ReuseTripleKey<R> {
    /// Dealer: both parties' keys for a product `map` whose right mask is
    /// the kept `b` (the right mask of gate `from`): a fresh `a'` and
    /// `c' = a' * b`. Refused if `b` is not of the map's right operand
    /// shape.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        map: Bilinear,
        from: u64,
        b: &RingTensor<R>,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let (sa, sb, _) = map.shapes()?;
        if b.shape() != sb.as_slice() {
            return Err(MpcError::WeightOpeningShape {
                from,
                kept: b.shape().to_vec(),
                got: sb,
            });
        }
        let a = RingTensor::<R>::random(&sa, rng);
        let c = map.apply(&a, b)?;
        let ([s0, s1], [v0, v1]) = split_tensors(&[&a, &c], rng)?;
        Ok((
            Self::from_shares(Party::P0, map, from, s0, v0)?,
            Self::from_shares(Party::P1, map, from, s1, v1)?,
        ))
    }

    /// A key from its seed and its shares of `a'` and `c'` (in this order).
    fn from_shares(
        party: Party,
        map: Bilinear,
        from: u64,
        seed: u128,
        shares: Vec<RingTensor<R>>,
    ) -> Result<Self, MpcError> {
        let [a, c] = <[RingTensor<R>; 2]>::try_from(shares)
            .map_err(|v| MpcError::Codec(format!("triple_reuse: {} tensors, not 2", v.len())))?;
        Ok(Self {
            party,
            map,
            from,
            seed,
            a,
            c,
        })
    }

    /// The map this key serves.
    pub fn map(&self) -> Bilinear {
        self.map
    }

    /// The plan index of the gate whose weight opening it reuses.
    pub fn from(&self) -> u64 {
        self.from
    }

    /// Key bytes held by this party: its seed and its written half of
    /// `a' || c'` (seeded halves, as [`TripleKey`]'s).
    pub fn key_bytes(&self) -> usize {
        seeded_tensor_bytes::<R>(self.party, self.a.len() + self.c.len())
    }

    /// Cost of a reuse gate for `map`, without generating it: one round
    /// opening `|a|` ring elements; the key holds a seed and `ceil(n / 2)`
    /// of the `n = |a| + |c|` elements; the key body is the map, the seed
    /// and those elements.
    pub fn cost(map: Bilinear) -> Result<GateCost, MpcError> {
        let what = "triple_reuse";
        let w = cost::ring_bytes::<R>();
        let (sa, _, sc) = map
            .shapes()
            .map_err(|e| MpcError::InvalidParameter(format!("{map:?}: {e}")))?;
        let mut lens = [0u64; 2];
        for (len, shape) in lens.iter_mut().zip([&sa, &sc]) {
            let dims = shape
                .iter()
                .map(|d| cost::size(*d))
                .collect::<Result<Vec<_>, _>>()?;
            *len = cost::product(&dims, what)?;
        }
        let held = cost::add(lens[0], lens[1], what)?;
        let key_bytes = seeded_tensor_cost(held, w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(lens[0], w, what)?,
            key_bytes,
            encoded_bytes: cost::add(map_encoded_len(&map), key_bytes, what)?,
        })
    }

    /// Local step 1: this party's share of `e = x - a'` (the message).
    pub fn mask(&self, x: &RingTensor<R>) -> Result<Vec<R>, MpcError> {
        let e = if let Bilinear::Mul { len } = self.map {
            x.reshape(&[len])?.sub(&self.a)?
        } else {
            x.sub(&self.a)?
        };
        Ok(e.to_vec())
    }

    /// Local step 2: from the opened `e`, the kept opening `f = W - B` and
    /// this party's share of `W`, this party's share of `x * W`:
    /// `c' + e * W_j + a'_j * f`.
    pub fn finish(
        &self,
        opened: &[R],
        kept: &OpenedWeight<R>,
        y: &RingTensor<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        if opened.len() != self.a.len() {
            return Err(MpcError::SizeMismatch {
                what: "opened e",
                expected: self.a.len(),
                got: opened.len(),
            });
        }
        let e = RingTensor::from_vec(self.a.shape(), opened.to_vec())?;
        let flat;
        let y = if let Bilinear::Mul { len } = self.map {
            flat = y.reshape(&[len])?;
            &flat
        } else {
            y
        };
        let mut z = self.c.add(&self.map.apply(&e, y)?)?;
        z.add_assign(&self.map.apply(&self.a, &kept.f)?)?;
        Ok(z)
    }

    /// The whole gate: the kept opening of gate `from` is looked up (and
    /// checked against `y`) before anything is opened; then one round,
    /// `|x|` ring elements per party.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &RingTensor<R>,
        y: &RingTensor<R>,
        store: &WeightMasks<R>,
    ) -> Result<RingTensor<R>, MpcError> {
        check_party(self.party, t.party())?;
        let kept = store.get(self.from, y)?;
        let opened = open(t, &self.mask(x)?, R::BITS)?;
        self.finish(&opened, kept, y)
    }
}

/// Reconstructs a reuse key from both shares and checks `c' == a' * b` for
/// the dealer's kept mask `b` (tests, audits).
pub fn check_reuse_triple<R: Ring>(
    k0: &ReuseTripleKey<R>,
    k1: &ReuseTripleKey<R>,
    b: &RingTensor<R>,
) -> Result<bool, MpcError> {
    let a = reconstruct(&k0.a, &k1.a)?;
    let c = reconstruct(&k0.c, &k1.c)?;
    Ok(k0.map.apply(&a, b)? == c)
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> KindKeys<R> for ReuseTripleKey<R> {
    /// A reuse gate's keys depend on the kept mask of another gate of the
    /// plan: they come from the plan's bundle stream
    /// ([`crate::Plan::bundles`]), never from the descriptor alone.
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        _rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::TripleReuse { from, .. } = *desc else {
            return Err(other_kind(desc, GateKind::TripleReuse));
        };
        Err(MpcError::InvalidParameter(format!(
            "{desc}: the keys of a triple_reuse gate need the weight mask the dealer kept for gate {from}; deal them through the plan's bundle stream"
        )))
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::TripleReuse { map, .. } = *desc else {
            return Err(other_kind(desc, GateKind::TripleReuse));
        };
        Self::cost(map)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// Key body: the map ([`Bilinear::encode`]), then the seed and this
    /// party's written half of `a' || c'`.
    fn write_body(&self, out: &mut Vec<u8>) {
        self.map.encode(out);
        put_seeded_tensors(out, self.party, self.seed, &[&self.a, &self.c]);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::TripleReuse { map, from } = *desc else {
            return Err(other_kind(desc, GateKind::TripleReuse));
        };
        let got = Bilinear::read(rd)?;
        if got != map {
            return Err(body_mismatch(desc, "bilinear map"));
        }
        let (sa, _, sc) = map
            .shapes()
            .map_err(|e| MpcError::Codec(format!("triple_reuse map {map:?}: {e}")))?;
        let (seed, ts) = read_seeded_tensors::<R>(rd, party, &[&sa, &sc], "triple_reuse")?;
        Self::from_shares(party, map, from, seed, ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::run_two_party;
    use ariann_ring::share;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn fingerprint_tells_shares_and_shapes_apart() {
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let y = RingTensor::<u64>::random(&[2, 3], &mut rng);
        let mut z = y.clone();
        z.as_mut_slice()[4] = z.as_slice()[4].wrapping_add(1);
        assert_ne!(fingerprint(&y), fingerprint(&z));
        assert_ne!(
            fingerprint(&y),
            fingerprint(&y.reshape(&[3, 2]).expect("same size"))
        );
        assert_eq!(fingerprint(&y), fingerprint(&y.clone()));
    }

    #[test]
    fn keys_are_refused_without_the_stream() {
        let mut rng = ChaCha20Rng::from_seed([2; 32]);
        let d = GateDesc::TripleReuse {
            map: Bilinear::Mul { len: 3 },
            from: 0,
        };
        assert!(matches!(
            d.generate::<u64, _>(&mut rng),
            Err(MpcError::InvalidParameter(_))
        ));
    }

    #[test]
    fn first_then_reuse_reconstructs() {
        let mut rng = ChaCha20Rng::from_seed([3; 32]);
        let map = Bilinear::MatMul { m: 2, k: 3, n: 2 };
        let w = RingTensor::<u64>::random(&[3, 2], &mut rng);
        let (w0, w1) = share(&w, &mut rng);
        let a = RingTensor::<u64>::random(&[2, 3], &mut rng);
        let b = RingTensor::<u64>::random(&[3, 2], &mut rng);
        let (t0, t1) = TripleKey::deal_from(map, &a, &b, &mut rng).expect("triple");
        let (r0, r1) = ReuseTripleKey::generate(map, 7, &b, &mut rng).expect("reuse");
        assert!(check_reuse_triple(&r0, &r1, &b).expect("shapes"));
        let x1 = RingTensor::<u64>::random(&[2, 3], &mut rng);
        let x2 = RingTensor::<u64>::random(&[2, 3], &mut rng);
        let (x10, x11) = share(&x1, &mut rng);
        let (x20, x21) = share(&x2, &mut rng);
        let run = |t: &mut crate::MemTransport,
                   tk: &TripleKey<u64>,
                   rk: &ReuseTripleKey<u64>,
                   xa: &RingTensor<u64>,
                   xb: &RingTensor<u64>,
                   wj: &RingTensor<u64>| {
            let mut store = WeightMasks::new();
            let z1 = eval_keeping(tk, t, xa, wj, 7, &mut store)?;
            let z2 = rk.eval(t, xb, wj, &store)?;
            Ok::<_, MpcError>((z1, z2))
        };
        let (o0, o1) = run_two_party(
            |t| run(t, &t0, &r0, &x10, &x20, &w0),
            |t| run(t, &t1, &r1, &x11, &x21, &w1),
        );
        let ((a1, a2), (b1, b2)) = (o0.expect("p0"), o1.expect("p1"));
        assert_eq!(
            reconstruct(&a1, &b1).expect("shape"),
            x1.matmul(&w).expect("mm")
        );
        assert_eq!(
            reconstruct(&a2, &b2).expect("shape"),
            x2.matmul(&w).expect("mm")
        );
    }
}
