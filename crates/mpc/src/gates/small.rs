//! Small-key comparison gates: one more round than [`crate::gates::cmp`] for
//! keys about half the size, and an exact fused truncation + ReLU.
//!
//! The one-round gates of [`crate::gates::cmp`] evaluate a DCF whose payload
//! carries everything the output needs (for ReLU the pair
//! `(1 - 2 r_msb, r (1 - 2 r_msb))` in `(Z_2^64)^2`), so the key of each
//! element holds correction words of 128 bits per tree level. Here the DCF
//! has a 1-bit payload ([`Z2`], XOR shares): its key holds one bit per level
//! beyond the seeds (403 B on 31 bits instead of 1,012 B). The price is one
//! round: the parties hold XOR shares of the comparison bit and must turn
//! them into arithmetic shares, which they do by opening the bit masked by a
//! dealer bit (one bit per element, packed eight to a byte, [`open_bits`]).
//!
//! # The XOR DReLU (used by every gate here)
//!
//! For `z` in the `k`-bit window `-2^(k-1) <= z < 2^(k-1)` and a dealer mask
//! `q` with `z^ = z + q (mod 2^k)` public, write `z^ = (z^_msb, z^_low)` and
//! `q = (q_msb, q_low)` (top bit, low `k - 1` bits). As in
//! [`crate::gates::cmp`]: `MSB_k(z) = z^_msb XOR q_msb XOR [z^_low < q_low]`,
//! so `d = DReLU(z) = [z >= 0] = 1 XOR z^_msb XOR q_msb XOR borrow`. A
//! `DcfKeys<Z2>` on `k - 1` bits (special point `q_low`, payload 1) gives
//! XOR shares of `borrow`; the dealer also gives XOR shares `s_0, s_1` of
//! `q_msb XOR m` for a uniform bit `m`, so party `b` holds
//! `e_b = borrow_b XOR s_b (XOR 1 XOR z^_msb for party 0)` with
//! `e_0 XOR e_1 = d XOR m`. Opening it (one round, one bit) reveals
//! `e = d XOR m`, a uniform bit independent of `d`. Then, arithmetically,
//! `d = e + (1 - 2e) m`: linear in the dealer's arithmetic shares of `m`, and
//! `d * v = e v + (1 - 2e) (m v)` for any dealer value `v` of which the dealer
//! also shares `m v`.
//!
//! # `relu_small` (2 rounds)
//!
//! Round 1 opens `x^ = x + r` over the whole ring (as the one-round ReLU);
//! the XOR DReLU runs on `z = x`, `q = r mod 2^k`. Round 2 opens `d XOR m`.
//! With dealer shares of `r`, `m` and `m r`:
//! `ReLU(x) = d x = d (x^ - r) = x^ d - (e r + (1 - 2e) m r)`, with
//! `d = e + (1 - 2e) m`. Outputs are those of the one-round ReLU
//! ([`ReluOutput`]: shares of `ReLU(x)` and of `DReLU(x)`), exact on the
//! same window. Key per element: the DCF on `k - 1` bits, one and a half
//! ring elements (the other one and a half come from a 16-byte seed per key
//! batch, see *Seeded shares*) and one bit (415 B and a bit at `k = 32` on
//! `Z_2^64`, against 1,036 B for the one-round ReLU).
//!
//! # `trunc_relu` (2 rounds): exact `max(x >> f, 0)`
//!
//! For `t = x >> f` (arithmetic, i.e. `floor(x / 2^f)`) with
//! `|t| < 2^(k-1)`, i.e. `-2^(k+f-1) + 2^f <= x < 2^(k+f-1)`, and
//! `f >= 1`, `k >= 2`, `k + f <= BITS - 1`. Write `B = BITS`, `K = k + f`.
//!
//! *Truncation, as in [`crate::gates::trunc`].* Shift to
//! `y = x + 2^(K-1)` in `[0, 2^K)` and open `y^ = y + r (mod 2^B)` for a
//! uniform `r`. With `T = y^ >> f` (logical, public), `R_hi = r >> f`,
//! `c = [y^ mod 2^f < r mod 2^f]` (the borrow of the low bits) and the wrap
//! `w = [y + r >= 2^B] = r_msb (1 - y^_msb)` (because `y < 2^(B-1)`):
//! `y >> f = T - R_hi - c + 2^(B-f) w`, so
//! `t = T - 2^(k-1) - R_hi + 2^(B-f) v r_msb - c` with the public bit
//! `v = 1 - y^_msb`.
//!
//! *The comparison.* Let `t'' = t + c` (the truncation without its borrow:
//! public minus dealer terms). For every `t`, `ReLU(t) = [t'' >= 1] t`:
//! if `t >= 1` then `t'' >= 1`; if `t = 0` both sides are 0; if `t <= -1`
//! then `t'' <= 0`. So the gate needs `d' = [t'' >= 1] = DReLU(z)` for
//! `z = t'' - 1 = t + c - 1`, which lies in `[-2^(k-1), 2^(k-1))` because
//! `|t| < 2^(k-1)` (this is why the lowest `t = -2^(k-1)` is left out of the
//! window: there `z` would be `-2^(k-1) - 1`). Modulo `2^k` the wrap term
//! vanishes (`B - f > k`), so `z + q = T (mod 2^k)` for the dealer's
//! `q = R_hi + 1 + 2^(k-1) (mod 2^k)`: the XOR DReLU on `k` bits with the
//! public `z^ = T mod 2^k`, a `DcfKeys<Z2>` on `k - 1` bits, on the round-1
//! opening (no second opening of `t`). A second `DcfKeys<Z2>` on `f` bits
//! gives XOR shares of `c`.
//!
//! *Round 2* opens two masked bits per element, `e_d = d' XOR m_d` and
//! `e_c = c XOR m_c`. Then `d' = e_d + (1 - 2 e_d) m_d`,
//! `c = e_c + (1 - 2 e_c) m_c` and
//! `d' t = (T - 2^(k-1)) d' - d' R_hi + 2^(B-f) v d' r_msb - d' c`, where
//! `d' R_hi`, `d' r_msb` and `d' c` are linear in the dealer's shares of
//! `m_d`, `m_c`, `m_d m_c`, `R_hi`, `m_d R_hi`, `r_msb` and `m_d r_msb`
//! (the coefficients are the public `e_d`, `e_c`, `v`).
//!
//! Only `ReLU(x >> f)` is returned: `d'` is not `DReLU(t)` at `t = 0` (there
//! it is `c`, a random bit), so this gate is for inference; training needs
//! the truncation and [`ReluSmallKey`] (or [`crate::gates::cmp::ReluKey`]).
//! Key per element at `f = 16`, `k = 32` on `Z_2^64`: DCFs on 31 and 16
//! bits (403 + 162 B), four ring elements (the other four come from a
//! 16-byte seed per key batch) and two bits: 597 B, against
//! 1,426 B for a truncation and a one-round ReLU (also 2 rounds) and
//! 805 B for a truncation and `relu_small` (3 rounds).
//!
//! *Seeded shares*: party 0 expands its shares of `r`, `R_hi`, `r_msb`,
//! `m_d` from its seed, party 1 its shares of `m_c`, `m_d m_c`,
//! `m_d R_hi`, `m_d r_msb` (below).
//!
//! # Seeded shares (`relu_small`, `trunc_relu`, the truncations)
//!
//! A key's dealer values (`n` ring elements in all, its vectors one after
//! the other in body order) are shared in *seeded halves*
//! (`util::split_halves`): party 0's shares of the first `floor(n / 2)`
//! are AES-128 in counter mode under a 16-byte seed the dealer draws for
//! party 0, party 1's shares of the last `floor(n / 2)` under a seed for
//! party 1; each party's share of the other elements is the value minus
//! the other party's share, and the middle element of an odd `n` is split
//! at random. A key carries its seed and `ceil(n / 2)` shares, and the
//! party expands the rest while decoding: `trunc_relu` four of its eight
//! vectors, `relu_small` one and a half of `r`, `m`, `m r`, and in
//! [`crate::gates::trunc`] `trunc_small` two of four, the one-round `trunc`
//! and `trunc_stoch` one and a half of three. A party never sees the other's
//! seed, so the shares it holds are masked by pseudorandom values, as the
//! additive sharing with fresh randomness masked them.
//!
//! # The XOR DReLU alone ([`DreluSmallKey`], inside `argmax_small`)
//!
//! Round 1 opens `x + r mod 2^k` (`k` bits per element, as
//! [`crate::gates::cmp::DreluKey`]), round 2 the masked bit; the output is
//! arithmetic shares of `[x >= 0]`.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_bits, put_fss, put_ring, put_u32, put_usize};
use crate::cost::{self, GateCost, U32, U64};
use crate::error::MpcError;
use crate::gates::cmp::{ReluOutput, check_window};
use crate::gates::util::{
    SEED_BYTES, check_len, check_party, into_array, public_share, put_written, read_seeded,
    seeded_key_bytes, split, split_halves, written_cost,
};
use crate::open::{bit_bytes, bytes_per_element, low_mask, open, open_bits};
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::{Dcf, DcfKeys, Party, TreeParams, Z2};
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

// ------------------------------------------------------------ shared pieces

/// `m` uniform bits (`0` or `1`) from the dealer's CSPRNG.
pub(crate) fn random_bits<G: Rng + CryptoRng + ?Sized>(m: usize, rng: &mut G) -> Vec<u8> {
    (0..m).map(|_| (rng.next_u32() & 1) as u8).collect()
}

/// XOR sharing of dealer bits: `(random, v XOR random)`.
pub(crate) fn split_bits<G: Rng + CryptoRng + ?Sized>(
    bits: &[u8],
    rng: &mut G,
) -> (Vec<u8>, Vec<u8>) {
    let a = random_bits(bits.len(), rng);
    let b = bits.iter().zip(&a).map(|(v, a)| (v ^ a) & 1).collect();
    (a, b)
}

/// Dealer values of bits as ring elements.
pub(crate) fn bits_to_ring<R: Ring>(bits: &[u8]) -> Vec<R> {
    bits.iter()
        .map(|b| R::from_u64(u64::from(*b & 1)))
        .collect()
}

/// This party's share of `d = e + (1 - 2e) m` for the opened `e = d XOR m`
/// and its share of the dealer bit `m`.
#[inline]
pub(crate) fn bit_to_arith<R: Ring>(p: Party, e: u8, m: R) -> R {
    if e & 1 == 1 {
        public_share(p, R::ONE).wsub(m)
    } else {
        m
    }
}

/// This party's share of `d v = e v + (1 - 2e) m v` for the opened
/// `e = d XOR m` and its shares of the dealer values `v` and `m v`.
#[inline]
fn bit_times<R: Ring>(e: u8, v: R, mv: R) -> R {
    if e & 1 == 1 { v.wsub(mv) } else { mv }
}

/// One party's half of the XOR DReLU keys: XOR shares of `q_msb XOR m` and
/// DCF keys on `k - 1` bits for `[z^_low < q_low]`.
type XorDreluHalf = (Vec<u8>, DcfKeys<Z2>);

/// Dealer: the XOR DReLU keys for masks `q` (values mod `2^k`) and mask
/// bits `m` (see the module docs).
fn deal_xor_drelu<G: Rng + CryptoRng + ?Sized>(
    k: u32,
    q: &[u64],
    m: &[u8],
    rng: &mut G,
) -> Result<(XorDreluHalf, XorDreluHalf), MpcError> {
    let alphas: Vec<u64> = q.iter().map(|v| v & low_mask(k - 1)).collect();
    let sx: Vec<u8> = q
        .iter()
        .zip(m)
        .map(|(v, m)| (((v >> (k - 1)) & 1) as u8) ^ (m & 1))
        .collect();
    let (s0, s1) = split_bits(&sx, rng);
    let params = TreeParams::new::<Z2>(k - 1)?;
    let (d0, d1) = DcfKeys::<Z2>::generate(params, &alphas, &vec![Z2(true); q.len()], rng)?;
    Ok(((s0, d0), (s1, d1)))
}

/// This party's XOR share of `DReLU(z) XOR m` from the public `z^ = z + q`
/// (values mod `2^k`).
fn xor_drelu_shares(
    party: Party,
    k: u32,
    s: &[u8],
    dcf: &DcfKeys<Z2>,
    zhat: &[u64],
) -> Result<Vec<u8>, MpcError> {
    let lows: Vec<u64> = zhat.iter().map(|v| v & low_mask(k - 1)).collect();
    let borrow = dcf.eval_to_vec(&lows)?;
    let p0 = party == Party::P0;
    Ok(zhat
        .iter()
        .zip(&borrow)
        .zip(s)
        .map(|((z, b), s)| {
            let msb = ((z >> (k - 1)) & 1) as u8;
            let public = if p0 { 1 ^ msb } else { 0 };
            u8::from(b.0) ^ (s & 1) ^ public
        })
        .collect())
}

/// Checks an opened bit vector's length (the opening returns as many bits as
/// it was given; this guards the sans-IO entry points).
pub(crate) fn check_bits(what: &'static str, expected: usize, got: &[u8]) -> Result<(), MpcError> {
    check_len(what, expected, got.len())
}

// ------------------------------------------------------------- DReLU (XOR)

/// One party's key for `m` two-round DReLU gates on a `k`-bit window from a
/// 1-bit-payload DCF (see the module docs).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DreluSmallKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the mask `r` (only its low `k` bits matter).
    pub(crate) r: Vec<R>,
    /// Share of the mask bit `m`.
    pub(crate) m: Vec<R>,
    /// XOR share of `r_msb XOR m`.
    pub(crate) s: Vec<u8>,
    /// DCF keys (`Z_2` payload) for `[y_low < r_low]`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<Z2>,
}

impl<R: Ring> core::fmt::Debug for DreluSmallKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DreluSmallKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> DreluSmallKey<R> {
    /// Dealer: keys for `m` two-round DReLU gates on a `k`-bit window.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_window::<R>(k)?;
        let mk = low_mask(k);
        let r: Vec<R> = (0..m)
            .map(|_| R::from_u64(R::random(rng).to_u64() & mk))
            .collect();
        let mbits = random_bits(m, rng);
        let q: Vec<u64> = r.iter().map(|v| v.to_u64()).collect();
        let ((s0, d0), (s1, d1)) = deal_xor_drelu(k, &q, &mbits, rng)?;
        let (r0, r1) = split(&r, rng);
        let (m0, m1) = split(&bits_to_ring::<R>(&mbits), rng);
        Ok((
            Self {
                party: Party::P0,
                k,
                r: r0,
                m: m0,
                s: s0,
                dcf: d0,
            },
            Self {
                party: Party::P1,
                k,
                r: r1,
                m: m1,
                s: s1,
                dcf: d1,
            },
        ))
    }

    /// Number of gates.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// True if the key holds no gate.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Key bytes held by this party: per element the DCF key and two ring
    /// shares, and one bit per element packed.
    pub fn key_bytes(&self) -> usize {
        self.len() * (self.dcf.key_bytes() + 2 * (R::BITS as usize / 8)) + bit_bytes(self.len())
    }

    /// Cost of `m` two-round DReLU gates on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): `k` bits then one bit per
    /// element; the key body is `k`, `m`, `r[m]`, `m[m]`, the bits `s[m]`
    /// and the DCF batch.
    pub fn cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_window::<R>(k)?;
        let params = TreeParams::new::<Z2>(k - 1)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let bits = cost::size(bit_bytes(m))?;
        let what = "DReLU (small) key";
        let per = cost::add(cost::fss_key_bytes::<Dcf, Z2>(params)?, 2 * w, what)?;
        Ok(GateCost {
            rounds: 2,
            bytes_sent: cost::add(
                cost::mul(mm, bytes_per_element(k) as u64, what)?,
                bits,
                what,
            )?,
            key_bytes: cost::add(cost::mul(mm, per, what)?, bits, what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64,
                    cost::mul(mm, 2 * w, what)?,
                    bits,
                    cost::fss_field::<Dcf, Z2>(params, mm)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open (on `k` bits), `x_b + r_b`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("DReLU input", self.len(), x_share.len())?;
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r))
            .collect())
    }

    /// Local step 2: from the opened `x + r` (mod `2^k`), this party's XOR
    /// share of `[x >= 0] XOR m`, to open as bits.
    pub fn xor_shares(&self, opened: &[R]) -> Result<Vec<u8>, MpcError> {
        check_len("DReLU opened values", self.len(), opened.len())?;
        let zhat: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.k))
            .collect();
        xor_drelu_shares(self.party, self.k, &self.s, &self.dcf, &zhat)
    }

    /// Local step 3: from the opened bits `[x >= 0] XOR m`, this party's
    /// share of `[x >= 0]`.
    pub fn finish(&self, e: &[u8]) -> Result<Vec<R>, MpcError> {
        check_bits("DReLU opened bits", self.len(), e)?;
        Ok(e.iter()
            .zip(&self.m)
            .map(|(e, m)| bit_to_arith(self.party, *e, *m))
            .collect())
    }

    /// The whole gate over a transport: two rounds, `k` bits then one bit
    /// per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, self.k)?;
        let e = open_bits(t, &self.xor_shares(&opened)?)?;
        self.finish(&e)
    }

    /// Key body: `k` (u32), `m`, `r[m]`, `m[m]`, the bits `s` (packed),
    /// the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        put_ring(out, &self.r);
        put_ring(out, &self.m);
        put_bits(out, &self.s);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`DreluSmallKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let k = rd.window::<R>(2, "DReLU (small) window")?;
        let m = rd.count(2 * (R::BITS as usize / 8), "DReLU (small) elements")?;
        Ok(DreluSmallKey {
            party,
            k,
            r: rd.ring(m, "DReLU (small) r")?,
            m: rd.ring(m, "DReLU (small) m")?,
            s: rd.bits(m, "DReLU (small) s")?,
            dcf: rd.fss::<_, Z2>(party, k - 1, m, "DReLU (small) DCF keys")?,
        })
    }
}

// ------------------------------------------------------------- relu_small

/// One party's key for `m` two-round ReLU gates on a `k`-bit window from a
/// 1-bit-payload DCF (`relu_small`; see the module docs).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ReluSmallKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the full-ring mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of the mask bit `m`.
    pub(crate) m: Vec<R>,
    /// Share of `m r`.
    pub(crate) mr: Vec<R>,
    /// This party's share seed: of the `3 m` shares (`r`, `m`, `mr` one
    /// after the other) party 0 expands the first `floor(3m / 2)` from its
    /// seed and party 1 the last `floor(3m / 2)` ([`split_halves`]).
    pub(crate) seed: u128,
    /// XOR share of `r_msb XOR m` (`r_msb`: bit `k - 1` of `r`).
    pub(crate) s: Vec<u8>,
    /// DCF keys (`Z_2` payload) for `[y_low < r_low]`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<Z2>,
}

/// Ring vectors per element in a [`ReluSmallKey`].
const RELU_SMALL_RING: usize = 3;

impl<R: Ring> core::fmt::Debug for ReluSmallKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReluSmallKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> ReluSmallKey<R> {
    /// Dealer: keys for `m` two-round ReLU gates on a `k`-bit window.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_window::<R>(k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let mbits = random_bits(m, rng);
        let q: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(k)).collect();
        let ((s0, d0), (s1, d1)) = deal_xor_drelu(k, &q, &mbits, rng)?;
        let mr: Vec<R> = bits_to_ring::<R>(&mbits)
            .iter()
            .zip(&r)
            .map(|(m, r)| m.wmul(*r))
            .collect();
        let mring = bits_to_ring::<R>(&mbits);
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let [p0, p1] = split_halves(&[&r, &mring, &mr], seeds, rng);
        Ok((
            Self::from_parts(Party::P0, k, p0, seeds[0], s0, d0)?,
            Self::from_parts(Party::P1, k, p1, seeds[1], s1, d1)?,
        ))
    }

    /// A key from its ring vectors in body order (`r`, `m`, `mr`).
    fn from_parts(
        party: Party,
        k: u32,
        ring: Vec<Vec<R>>,
        seed: u128,
        s: Vec<u8>,
        dcf: DcfKeys<Z2>,
    ) -> Result<Self, MpcError> {
        let [r, m, mr] = into_array(ring, "ReLU (small)")?;
        Ok(Self {
            party,
            k,
            r,
            m,
            mr,
            seed,
            s,
            dcf,
        })
    }

    /// Number of gates.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// True if the key holds no gate.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Window bits.
    pub fn window(&self) -> u32 {
        self.k
    }
    /// Key bytes held by this party: per element the DCF key, the
    /// `ceil(3m / 2)` ring shares it does not expand from its 16-byte seed,
    /// and one bit per element packed.
    pub fn key_bytes(&self) -> usize {
        self.len() * self.dcf.key_bytes()
            + seeded_key_bytes::<R>(self.party, RELU_SMALL_RING, self.len())
            + bit_bytes(self.len())
    }

    /// Cost of `m` two-round ReLU gates on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): one ring element then one bit
    /// per element; the key body is `k`, `m`, the seed, `ceil(3m / 2)`
    /// shares of `r`, `m`, `mr` (party 0 the last ones, party 1 the first
    /// ones), the bits `s[m]` and the DCF batch.
    pub fn cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_window::<R>(k)?;
        let params = TreeParams::new::<Z2>(k - 1)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let bits = cost::size(bit_bytes(m))?;
        let what = "ReLU (small) key";
        let ring = cost::mul(written_cost(RELU_SMALL_RING, m)?, w, what)?;
        let dcfs = cost::mul(mm, cost::fss_key_bytes::<Dcf, Z2>(params)?, what)?;
        Ok(GateCost {
            rounds: 2,
            bytes_sent: cost::add(cost::mul(mm, w, what)?, bits, what)?,
            key_bytes: cost::sum(&[dcfs, ring, bits, SEED_BYTES as u64], what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64 + SEED_BYTES as u64,
                    ring,
                    bits,
                    cost::fss_field::<Dcf, Z2>(params, mm)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open (full ring), `x_b + r_b`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("ReLU input", self.len(), x_share.len())?;
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r))
            .collect())
    }

    /// Local step 2: from the opened `x + r`, this party's XOR share of
    /// `[x >= 0] XOR m`, to open as bits.
    pub fn xor_shares(&self, opened: &[R]) -> Result<Vec<u8>, MpcError> {
        check_len("ReLU opened values", self.len(), opened.len())?;
        let zhat: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.k))
            .collect();
        xor_drelu_shares(self.party, self.k, &self.s, &self.dcf, &zhat)
    }

    /// Local step 3: from the opened `x + r` and the opened bits
    /// `[x >= 0] XOR m`, shares of `ReLU(x)` and `DReLU(x)`.
    pub fn finish(&self, opened: &[R], e: &[u8]) -> Result<ReluOutput<R>, MpcError> {
        check_len("ReLU opened values", self.len(), opened.len())?;
        check_bits("ReLU opened bits", self.len(), e)?;
        let p = self.party;
        let mut relu = Vec::with_capacity(self.len());
        let mut drelu = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let d = bit_to_arith(p, e[i], self.m[i]);
            let dr = bit_times(e[i], self.r[i], self.mr[i]);
            relu.push(opened[i].wmul(d).wsub(dr));
            drelu.push(d);
        }
        Ok(ReluOutput { relu, drelu })
    }

    /// The whole gate over a transport: two rounds, one ring element then
    /// one bit per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<ReluOutput<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, R::BITS)?;
        let e = open_bits(t, &self.xor_shares(&opened)?)?;
        self.finish(&opened, &e)
    }

    /// Key body: `k` (u32), `m`, the 16-byte seed, this party's
    /// written range (`util::written_range`) of the `3m` shares of `r[m]`, `m[m]`, `mr[m]`
    /// (party 0: the last `ceil(3m / 2)`, party 1: the first), the bits `s`
    /// (packed), the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        out.extend_from_slice(&self.seed.to_le_bytes());
        put_written(out, self.party, &[&self.r, &self.m, &self.mr]);
        put_bits(out, &self.s);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`ReluSmallKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let k = rd.window::<R>(2, "ReLU (small) window")?;
        let (m, seed, ring) = read_seeded(rd, party, RELU_SMALL_RING, "ReLU (small) shares")?;
        let s = rd.bits(m, "ReLU (small) s")?;
        let dcf = rd.fss::<_, Z2>(party, k - 1, m, "ReLU (small) DCF keys")?;
        Self::from_parts(party, k, ring, seed, s, dcf)
    }
}

impl<R: Ring> KindKeys<R> for ReluSmallKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::ReluSmall { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::ReluSmall));
        };
        Self::generate(k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::ReluSmall { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::ReluSmall));
        };
        Self::cost(k, m)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::ReluSmall { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::ReluSmall));
        };
        let key = Self::read(rd, party)?;
        if key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "window or element count"));
        }
        Ok(key)
    }
}

// ------------------------------------------------------------- trunc_relu

/// `f >= 1`, `k >= 2`, `k + f <= BITS - 1`.
fn check_trunc_relu<R: Ring>(f: u32, k: u32) -> Result<(), MpcError> {
    if f >= 1 && k >= 2 && k.checked_add(f).is_some_and(|s| s < R::BITS) {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter(format!(
            "truncation + ReLU needs f >= 1, k >= 2 and k + f <= {} (got f = {f}, k = {k})",
            R::BITS - 1
        )))
    }
}

/// One party's key for `m` exact fused truncation + ReLU gates
/// (`trunc_relu`: shares of `max(x >> f, 0)` for `|x >> f| < 2^(k-1)`; see
/// the module docs).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TruncReluKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) f: u32,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the full-ring mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of `R_hi = r >> f` (logical).
    pub(crate) r_hi: Vec<R>,
    /// Share of the top bit of `r`.
    pub(crate) r_msb: Vec<R>,
    /// Share of the mask bit `m_d` of the comparison bit.
    pub(crate) md: Vec<R>,
    /// Share of the mask bit `m_c` of the borrow.
    pub(crate) mc: Vec<R>,
    /// Share of `m_d m_c`.
    pub(crate) mdmc: Vec<R>,
    /// Share of `m_d R_hi`.
    pub(crate) md_rhi: Vec<R>,
    /// Share of `m_d r_msb`.
    pub(crate) md_rmsb: Vec<R>,
    /// This party's share seed: party 0's shares of `r`, `r_hi`, `r_msb`,
    /// `md` and party 1's of `mc`, `mdmc`, `md_rhi`, `md_rmsb` are expanded
    /// from its seed ([`split_halves`]), so each key carries four ring
    /// vectors and the seed instead of eight vectors.
    pub(crate) seed: u128,
    /// XOR share of `q_msb XOR m_d` (`q = R_hi + 1 + 2^(k-1) mod 2^k`).
    pub(crate) s: Vec<u8>,
    /// XOR share of `m_c`.
    pub(crate) u: Vec<u8>,
    /// DCF keys (`Z_2`, `k - 1` bits) for `[T_low < q_low]`.
    #[zeroize(skip)]
    pub(crate) dcf_d: DcfKeys<Z2>,
    /// DCF keys (`Z_2`, `f` bits) for the borrow `[y^ mod 2^f < r mod 2^f]`.
    #[zeroize(skip)]
    pub(crate) dcf_c: DcfKeys<Z2>,
}

impl<R: Ring> core::fmt::Debug for TruncReluKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TruncReluKey")
            .field("party", &self.party)
            .field("f", &self.f)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

/// Ring vectors per element in a [`TruncReluKey`].
const TRUNC_RELU_RING: usize = 8;
/// Ring vectors per element in an encoded [`TruncReluKey`]: the other four
/// are expanded from the key's seed (the first four for party 0, the last
/// four for party 1).
const TRUNC_RELU_WRITTEN: usize = 4;

impl<R: Ring> TruncReluKey<R> {
    /// Dealer: keys for `m` gates `max(x >> f, 0)` for `|x >> f| < 2^(k-1)`
    /// (`f >= 1`, `k >= 2`, `k + f <= BITS - 1`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        f: u32,
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_trunc_relu::<R>(f, k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let r_hi: Vec<R> = r.iter().map(|v| v.shr(f)).collect();
        let r_msb: Vec<R> = r.iter().map(|v| v.shr(R::BITS - 1)).collect();
        // The comparison's mask: z + q = T (mod 2^k) for z = t + c - 1.
        let q: Vec<u64> = r_hi
            .iter()
            .map(|h| h.to_u64().wrapping_add(1).wrapping_add(1u64 << (k - 1)) & low_mask(k))
            .collect();
        let md_bits = random_bits(m, rng);
        let mc_bits = random_bits(m, rng);
        let ((s0, dd0), (s1, dd1)) = deal_xor_drelu(k, &q, &md_bits, rng)?;
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(f)).collect();
        let params = TreeParams::new::<Z2>(f)?;
        let (dc0, dc1) = DcfKeys::<Z2>::generate(params, &alphas, &vec![Z2(true); m], rng)?;
        let (u0, u1) = split_bits(&mc_bits, rng);
        let md: Vec<R> = bits_to_ring(&md_bits);
        let mc: Vec<R> = bits_to_ring(&mc_bits);
        let prod =
            |a: &[R], b: &[R]| -> Vec<R> { a.iter().zip(b).map(|(a, b)| a.wmul(*b)).collect() };
        let mdmc = prod(&md, &mc);
        let md_rhi = prod(&md, &r_hi);
        let md_rmsb = prod(&md, &r_msb);
        let vals: [&[R]; TRUNC_RELU_RING] = [&r, &r_hi, &r_msb, &md, &mc, &mdmc, &md_rhi, &md_rmsb];
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let [p0, p1] = split_halves(&vals, seeds, rng);
        Ok((
            Self::from_parts(Party::P0, f, k, p0, seeds[0], s0, u0, dd0, dc0)?,
            Self::from_parts(Party::P1, f, k, p1, seeds[1], s1, u1, dd1, dc1)?,
        ))
    }

    /// A key from its ring vectors in body order (`r`, `r_hi`, `r_msb`,
    /// `md`, `mc`, `mdmc`, `md_rhi`, `md_rmsb`), bits and DCF keys.
    #[allow(clippy::too_many_arguments)]
    fn from_parts(
        party: Party,
        f: u32,
        k: u32,
        ring: Vec<Vec<R>>,
        seed: u128,
        s: Vec<u8>,
        u: Vec<u8>,
        dcf_d: DcfKeys<Z2>,
        dcf_c: DcfKeys<Z2>,
    ) -> Result<Self, MpcError> {
        let [r, r_hi, r_msb, md, mc, mdmc, md_rhi, md_rmsb] =
            into_array(ring, "truncation + ReLU")?;
        Ok(Self {
            party,
            f,
            k,
            r,
            r_hi,
            r_msb,
            md,
            mc,
            mdmc,
            md_rhi,
            md_rmsb,
            seed,
            s,
            u,
            dcf_d,
            dcf_c,
        })
    }

    /// Number of gates.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// True if the key holds no gate.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Key bytes held by this party: per element two DCF keys and four ring
    /// shares (the other four come from the 16-byte seed), and two bits per
    /// element packed.
    pub fn key_bytes(&self) -> usize {
        self.len()
            * (self.dcf_d.key_bytes()
                + self.dcf_c.key_bytes()
                + TRUNC_RELU_WRITTEN * (R::BITS as usize / 8))
            + 2 * bit_bytes(self.len())
            + SEED_BYTES
    }

    /// Cost of `m` fused truncation + ReLU gates, without generating keys
    /// (see [`crate::cost`]): one ring element then two bits per element;
    /// the key body is `f`, `k`, `m`, the seed, four ring vectors of `m`,
    /// the bits `s[m]` and `u[m]`, and the two DCF batches.
    pub fn cost(f: u32, k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_trunc_relu::<R>(f, k)?;
        let pd = TreeParams::new::<Z2>(k - 1)?;
        let pc = TreeParams::new::<Z2>(f)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "truncation + ReLU key";
        let bits = cost::size(bit_bytes(m))?;
        let opened_bits = cost::size(bit_bytes(m.checked_mul(2).ok_or_else(|| {
            MpcError::InvalidParameter(format!("{what}: {m} elements overflow"))
        })?))?;
        let ring = cost::mul(TRUNC_RELU_WRITTEN as u64, w, what)?;
        let per = cost::sum(
            &[
                cost::fss_key_bytes::<Dcf, Z2>(pd)?,
                cost::fss_key_bytes::<Dcf, Z2>(pc)?,
                ring,
            ],
            what,
        )?;
        Ok(GateCost {
            rounds: 2,
            bytes_sent: cost::add(cost::mul(mm, w, what)?, opened_bits, what)?,
            key_bytes: cost::sum(
                &[cost::mul(mm, per, what)?, 2 * bits, SEED_BYTES as u64],
                what,
            )?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U32 + U64 + SEED_BYTES as u64,
                    cost::mul(mm, ring, what)?,
                    2 * bits,
                    cost::fss_field::<Dcf, Z2>(pd, mm)?,
                    cost::fss_field::<Dcf, Z2>(pc, mm)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open (full ring),
    /// `x_b + r_b (+ 2^(k+f-1) for party 0)`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("truncation + ReLU input", self.len(), x_share.len())?;
        let offset = public_share(self.party, R::from_u64(1u64 << (self.k + self.f - 1)));
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r).wadd(offset))
            .collect())
    }

    /// Local step 2: from the opened `y + r`, this party's XOR shares of
    /// `d' XOR m_d` (the first `m` bits) and `c XOR m_c` (the next `m`), to
    /// open as bits.
    pub fn xor_shares(&self, opened: &[R]) -> Result<Vec<u8>, MpcError> {
        check_len("truncation + ReLU opened values", self.len(), opened.len())?;
        let tk: Vec<u64> = opened
            .iter()
            .map(|v| v.shr(self.f).to_u64() & low_mask(self.k))
            .collect();
        let mut bits = xor_drelu_shares(self.party, self.k, &self.s, &self.dcf_d, &tk)?;
        let lows: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.f))
            .collect();
        let c = self.dcf_c.eval_to_vec(&lows)?;
        bits.extend(c.iter().zip(&self.u).map(|(c, u)| u8::from(c.0) ^ (u & 1)));
        Ok(bits)
    }

    /// Local step 3: from the opened `y + r` and the `2 m` opened bits,
    /// this party's share of `max(x >> f, 0)`.
    pub fn finish(&self, opened: &[R], e: &[u8]) -> Result<Vec<R>, MpcError> {
        let n = self.len();
        check_len("truncation + ReLU opened values", n, opened.len())?;
        check_bits("truncation + ReLU opened bits", 2 * n, e)?;
        let p = self.party;
        // 2^(B - f), with 1 <= f so the shift is at most 63.
        let top = R::from_u64(1u64 << (R::BITS - self.f));
        let half = R::from_u64(1u64 << (self.k - 1));
        Ok((0..n)
            .map(|i| {
                let y = opened[i];
                let (ed, ec) = (e[i], e[n + i]);
                // The public part of t: T - 2^(k-1).
                let a = y.shr(self.f).wsub(half);
                let d = bit_to_arith(p, ed, self.md[i]);
                let d_rhi = bit_times(ed, self.r_hi[i], self.md_rhi[i]);
                let d_rmsb = bit_times(ed, self.r_msb[i], self.md_rmsb[i]);
                // d' c = c - m_d c (e_d = 1) or m_d c (e_d = 0), with
                // c = e_c + (1 - 2 e_c) m_c.
                let c = bit_to_arith(p, ec, self.mc[i]);
                let mdc = bit_times(ec, self.md[i], self.mdmc[i]);
                let dc = bit_times(ed, c, mdc);
                let out = a.wmul(d).wsub(d_rhi).wsub(dc);
                // v = 1 - y^_msb: the wrap term 2^(B-f) v d' r_msb.
                if y.shr(R::BITS - 1) == R::ZERO {
                    out.wadd(top.wmul(d_rmsb))
                } else {
                    out
                }
            })
            .collect())
    }

    /// The whole gate over a transport: two rounds, one ring element then
    /// two bits per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, R::BITS)?;
        let e = open_bits(t, &self.xor_shares(&opened)?)?;
        self.finish(&opened, &e)
    }

    /// The eight ring vectors in body order.
    fn ring_vectors(&self) -> [&[R]; TRUNC_RELU_RING] {
        [
            &self.r[..],
            &self.r_hi[..],
            &self.r_msb[..],
            &self.md[..],
            &self.mc[..],
            &self.mdmc[..],
            &self.md_rhi[..],
            &self.md_rmsb[..],
        ]
    }

    /// Key body: `f` (u32), `k` (u32), `m`, the 16-byte seed, the four ring
    /// vectors this party does not expand from it (party 0: `mc[m]`,
    /// `mdmc[m]`, `md_rhi[m]`, `md_rmsb[m]`; party 1: `r[m]`, `r_hi[m]`,
    /// `r_msb[m]`, `md[m]`), the bits `s` and `u` (packed, each), the DCF
    /// keys on `k - 1` bits, the DCF keys on `f` bits.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.f);
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        out.extend_from_slice(&self.seed.to_le_bytes());
        put_written(out, self.party, &self.ring_vectors());
        put_bits(out, &self.s);
        put_bits(out, &self.u);
        put_fss(out, &self.dcf_d);
        put_fss(out, &self.dcf_c);
    }

    /// Reads a body written by [`TruncReluKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let f = rd.u32("truncation + ReLU f")?;
        let k = rd.u32("truncation + ReLU k")?;
        if check_trunc_relu::<R>(f, k).is_err() {
            return Err(MpcError::Codec(format!(
                "truncation + ReLU f = {f}, k = {k} (need f >= 1, k >= 2, k + f <= {})",
                R::BITS - 1
            )));
        }
        let (m, seed, ring) = read_seeded(rd, party, TRUNC_RELU_RING, "truncation + ReLU shares")?;
        let s = rd.bits(m, "truncation + ReLU s")?;
        let u = rd.bits(m, "truncation + ReLU u")?;
        let dcf_d = rd.fss::<_, Z2>(party, k - 1, m, "truncation + ReLU comparison DCF keys")?;
        let dcf_c = rd.fss::<_, Z2>(party, f, m, "truncation + ReLU borrow DCF keys")?;
        Self::from_parts(party, f, k, ring, seed, s, u, dcf_d, dcf_c)
    }
}

impl<R: Ring> KindKeys<R> for TruncReluKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::TruncRelu { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncRelu));
        };
        Self::generate(f, k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::TruncRelu { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncRelu));
        };
        Self::cost(f, k, m)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::TruncRelu { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncRelu));
        };
        let key = Self::read(rd, party)?;
        if key.f != f || key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "f, window or element count"));
        }
        Ok(key)
    }
}
