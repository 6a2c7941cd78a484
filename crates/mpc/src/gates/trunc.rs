//! Exact fixed-point truncation in ONE round: shares of `x >> f` (arithmetic,
//! i.e. `floor(x / 2^f)`) from shares of `x`, for `-2^(k-1) <= x < 2^(k-1)`
//! with `f < k <= BITS - 1`.
//!
//! The local truncation of SecureML (and ARIANN) is off by one ulp most of the
//! time and off by `2^(BITS-f)` with probability about `|x| / 2^BITS`; this
//! gate is exact (no error at all, not even one ulp) and costs one DCF key
//! on `f` bits per element.
//!
//! Derivation. Shift to `y = x + 2^(k-1)` in `[0, 2^k)` and open
//! `y^ = y + r` (mod `2^B`) for a uniform mask `r`. Then, with
//! `c = [y^ mod 2^f < r mod 2^f]` (the borrow of the low bits, from the DCF)
//! and `w = [y^ < r]` (the wrap of the mask),
//! `y >> f = (y^ >> f) - (r >> f) - c + 2^(B-f) w`. Because `y < 2^(B-1)`,
//! the wrap is `w = r_msb (1 - y^_msb)`: linear in shares of `r_msb`, no second
//! comparison. Finally `x >> f = (y >> f) - 2^(k-1-f)`.
//!
//! # The small-key truncation ([`TruncSmallKey`], `trunc_small`, 2 rounds)
//!
//! The same truncation with the borrow `c` from a DCF with a **one-bit**
//! payload ([`Z2`], XOR shares; see [`crate::gates::small`]): its key holds
//! one seed correction word per level and no 64-bit payload correction, so
//! about half the bytes (at `f = 20` on `Z_2^64`: 242 B per element
//! against 487 B; two of its four ring vectors per party come from a
//! 16-byte seed, the seeded halves of [`crate::gates::small`]). The parties then hold XOR shares of `c`; a second
//! opening of `c XOR m_c` (one bit per element, `m_c` a dealer bit) turns
//! them into arithmetic shares, `c = e + (1 - 2e) m_c`. Same window, same
//! output bit for bit (exact floor), one round and one bit per element more.
//!
//! # The stochastic truncation ([`TruncStochKey`], `trunc_stoch`, 1 round)
//!
//! Leaving the borrow `c` out of the formula above gives
//! `floor(x / 2^f) + b` with `b = [x mod 2^f + r mod 2^f >= 2^f]`, the carry
//! of the low bits of the dealer's uniform mask: `b` is 1 with probability
//! exactly `(x mod 2^f) / 2^f`, i.e. **stochastic rounding** (unbiased, the
//! rounding of low-precision training). No FSS key at all: three ring
//! shares per element, half of them expanded from a 16-byte seed (12 B
//! per element on `Z_2^64`), one opening. Unlike the local
//! truncation of SecureML there is no large error: the wrap of the mask is
//! still removed exactly through `r_msb`, so inside the `k`-bit window the
//! output is always `floor` or `floor + 1`. The outputs are random (they
//! depend on the dealer's mask), so a private run equals a cleartext run in
//! distribution, not bit for bit: [`crate::Clear`] draws `b` from its own
//! seeded generator with the same probability.

use crate::bundle::GateDesc;
use crate::codec::put_bits;
use crate::codec::{Reader, put_fss, put_u32, put_usize};
use crate::cost::{self, GateCost, U32, U64};
use crate::error::MpcError;
use crate::gates::small::{bit_to_arith, bits_to_ring, check_bits, random_bits, split_bits};
use crate::gates::util::{
    SEED_BYTES, check_len, check_party, into_array, put_written, read_seeded, seeded_key_bytes,
    split_halves, written_cost,
};
use crate::open::{bit_bytes, open_bits};
use crate::open::{low_mask, open};
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::{Dcf, DcfKeys, Party, TreeParams, Z2};
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

fn check_params<R: Ring>(f: u32, k: u32) -> Result<(), MpcError> {
    if f >= 1 && f < k && k < R::BITS {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter(format!(
            "truncation needs 1 <= f < k <= {} (got f = {f}, k = {k})",
            R::BITS - 1
        )))
    }
}

/// One party's key for `m` truncation gates.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TruncKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) f: u32,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of `r >> f` (logical).
    pub(crate) r_hi: Vec<R>,
    /// Share of the top bit of `r`.
    pub(crate) r_msb: Vec<R>,
    /// This party's share seed: of the `3m` shares (`r`, `r_hi`, `r_msb`
    /// one after the other) party 0 expands the first `floor(3m / 2)` from
    /// its seed and party 1 the last ([`split_halves`]).
    pub(crate) seed: u128,
    /// DCF keys for `[y^ mod 2^f < r mod 2^f]`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<u64>,
}

/// Ring vectors per element in a [`TruncKey`] and a [`TruncStochKey`].
const TRUNC_RING: usize = 3;

impl<R: Ring> core::fmt::Debug for TruncKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TruncKey")
            .field("party", &self.party)
            .field("f", &self.f)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> TruncKey<R> {
    /// Dealer: keys for `m` truncations by `f` bits of values in a `k`-bit
    /// signed window (`1 <= f < k <= BITS - 1`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        f: u32,
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_params::<R>(f, k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(f)).collect();
        let r_hi: Vec<R> = r.iter().map(|v| v.shr(f)).collect();
        let r_msb: Vec<R> = r.iter().map(|v| v.shr(R::BITS - 1)).collect();
        let params = TreeParams::new::<u64>(f)?;
        let (d0, d1) = DcfKeys::<u64>::generate(params, &alphas, &vec![1u64; m], rng)?;
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let [p0, p1] = split_halves(&[&r, &r_hi, &r_msb], seeds, rng);
        let key = |party, ring, seed, dcf| -> Result<Self, MpcError> {
            let [r, r_hi, r_msb] = into_array(ring, "truncation")?;
            Ok(Self {
                party,
                f,
                k,
                r,
                r_hi,
                r_msb,
                seed,
                dcf,
            })
        };
        Ok((
            key(Party::P0, p0, seeds[0], d0)?,
            key(Party::P1, p1, seeds[1], d1)?,
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
    /// Key bytes held by this party: per element the DCF key, the
    /// `ceil(3m / 2)` ring shares it does not expand from its 16-byte seed.
    pub fn key_bytes(&self) -> usize {
        self.len() * self.dcf.key_bytes()
            + seeded_key_bytes::<R>(self.party, TRUNC_RING, self.len())
    }

    /// Cost of `m` truncations by `f` bits in a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): one round of one ring element
    /// per element; the key body is `f`, `k`, `m`, the seed, `ceil(3m / 2)`
    /// shares of `r[m]`, `r_hi[m]`, `r_msb[m]` (party 0 the last ones,
    /// party 1 the first) and the DCF batch (on `f` bits).
    pub fn cost(f: u32, k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_params::<R>(f, k)?;
        let params = TreeParams::new::<u64>(f)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "truncation key";
        let ring = cost::mul(written_cost(TRUNC_RING, m)?, w, what)?;
        let dcfs = cost::mul(mm, cost::fss_key_bytes::<Dcf, u64>(params)?, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(mm, w, what)?,
            key_bytes: cost::sum(&[dcfs, ring, SEED_BYTES as u64], what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U32 + U64 + SEED_BYTES as u64,
                    ring,
                    cost::fss_field::<Dcf, u64>(params, mm)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open, `x_b + r_b (+ 2^(k-1) for party 0)`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("truncation input", self.len(), x_share.len())?;
        let offset = if self.party == Party::P0 {
            R::from_u64(1u64 << (self.k - 1))
        } else {
            R::ZERO
        };
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r).wadd(offset))
            .collect())
    }

    /// Local step 2: from the opened `y + r`, this party's share of `x >> f`.
    pub fn finish(&self, opened: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("truncation opened values", self.len(), opened.len())?;
        let lows: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.f))
            .collect();
        let c = self.dcf.eval_to_vec(&lows)?;
        let p0 = self.party == Party::P0;
        // 2^(B - f), with 1 <= f so the shift is at most 63.
        let top = R::from_u64(1u64 << (R::BITS - self.f));
        let half_shifted = R::from_u64(1u64 << (self.k - 1 - self.f));
        Ok((0..self.len())
            .map(|i| {
                let y = opened[i];
                let y_msb = y.shr(R::BITS - 1);
                // w = r_msb (1 - y_msb): a share of r_msb if y_msb = 0, else 0.
                let w = if y_msb == R::ZERO {
                    self.r_msb[i]
                } else {
                    R::ZERO
                };
                let public = if p0 {
                    y.shr(self.f).wsub(half_shifted)
                } else {
                    R::ZERO
                };
                public
                    .wsub(self.r_hi[i])
                    .wsub(R::from_u64(c[i]))
                    .wadd(top.wmul(w))
            })
            .collect())
    }

    /// The whole gate over a transport: one round, one ring element per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, R::BITS)?;
        self.finish(&opened)
    }
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> TruncKey<R> {
    /// Key body: `f` (u32), `k` (u32), `m`, the 16-byte seed, this party's
    /// written range of the `3m` shares of `r[m]`, `r_hi[m]`, `r_msb[m]`,
    /// the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.f);
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        out.extend_from_slice(&self.seed.to_le_bytes());
        put_written(out, self.party, &[&self.r, &self.r_hi, &self.r_msb]);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`TruncKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let f = rd.u32("truncation f")?;
        let k = rd.u32("truncation k")?;
        if !(f >= 1 && f < k && k < R::BITS) {
            return Err(MpcError::Codec(format!(
                "truncation f = {f}, k = {k} (need 1 <= f < k <= {})",
                R::BITS - 1
            )));
        }
        let (m, seed, ring) = read_seeded(rd, party, TRUNC_RING, "truncation shares")?;
        let [r, r_hi, r_msb] = into_array(ring, "truncation")?;
        Ok(TruncKey {
            party,
            f,
            k,
            r,
            r_hi,
            r_msb,
            seed,
            dcf: rd.fss::<_, u64>(party, f, m, "truncation DCF keys")?,
        })
    }
}

impl<R: Ring> KindKeys<R> for TruncKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Trunc { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::Trunc));
        };
        Self::generate(f, k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Trunc { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::Trunc));
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
        let GateDesc::Trunc { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::Trunc));
        };
        let key = Self::read(rd, party)?;
        if key.f != f || key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "f, window or element count"));
        }
        Ok(key)
    }
}

// ------------------------------------------------ trunc_small: 1-bit borrow DCF

/// One party's key for `m` exact truncations in two rounds with a 1-bit
/// borrow DCF (`trunc_small`; see the module docs): the same outputs as
/// [`TruncKey`], about half the key bytes.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TruncSmallKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) f: u32,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of `r >> f` (logical).
    pub(crate) r_hi: Vec<R>,
    /// Share of the top bit of `r`.
    pub(crate) r_msb: Vec<R>,
    /// Share of the mask bit `m_c` of the borrow.
    pub(crate) mc: Vec<R>,
    /// This party's share seed: party 0's shares of `r` and `r_hi` and
    /// party 1's of `r_msb` and `mc` are expanded from its seed
    /// ([`split_halves`]), so each key carries two ring vectors and the seed.
    pub(crate) seed: u128,
    /// XOR share of `m_c`.
    pub(crate) u: Vec<u8>,
    /// DCF keys (`Z_2` payload, `f` bits) for `[y^ mod 2^f < r mod 2^f]`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<Z2>,
}

impl<R: Ring> core::fmt::Debug for TruncSmallKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TruncSmallKey")
            .field("party", &self.party)
            .field("f", &self.f)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

/// Ring vectors per element in a [`TruncSmallKey`].
const TRUNC_SMALL_RING: usize = 4;

impl<R: Ring> TruncSmallKey<R> {
    /// Dealer: keys for `m` truncations by `f` bits of values in a `k`-bit
    /// signed window (`1 <= f < k <= BITS - 1`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        f: u32,
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_params::<R>(f, k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(f)).collect();
        let r_hi: Vec<R> = r.iter().map(|v| v.shr(f)).collect();
        let r_msb: Vec<R> = r.iter().map(|v| v.shr(R::BITS - 1)).collect();
        let mc_bits = random_bits(m, rng);
        let params = TreeParams::new::<Z2>(f)?;
        let (d0, d1) = DcfKeys::<Z2>::generate(params, &alphas, &vec![Z2(true); m], rng)?;
        let (u0, u1) = split_bits(&mc_bits, rng);
        let mc = bits_to_ring::<R>(&mc_bits);
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let [p0, p1] = split_halves(&[&r, &r_hi, &r_msb, &mc], seeds, rng);
        Ok((
            Self::from_parts(Party::P0, f, k, p0, seeds[0], u0, d0)?,
            Self::from_parts(Party::P1, f, k, p1, seeds[1], u1, d1)?,
        ))
    }

    /// A key from its ring vectors in body order (`r`, `r_hi`, `r_msb`,
    /// `mc`).
    fn from_parts(
        party: Party,
        f: u32,
        k: u32,
        ring: Vec<Vec<R>>,
        seed: u128,
        u: Vec<u8>,
        dcf: DcfKeys<Z2>,
    ) -> Result<Self, MpcError> {
        let [r, r_hi, r_msb, mc] = into_array(ring, "truncation (small)")?;
        Ok(Self {
            party,
            f,
            k,
            r,
            r_hi,
            r_msb,
            mc,
            seed,
            u,
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
    /// Key bytes held by this party: per element the DCF key and two ring
    /// shares (the other two come from the 16-byte seed), and one bit per
    /// element packed.
    pub fn key_bytes(&self) -> usize {
        self.len() * self.dcf.key_bytes()
            + seeded_key_bytes::<R>(self.party, TRUNC_SMALL_RING, self.len())
            + bit_bytes(self.len())
    }

    /// Cost of `m` small-key truncations by `f` bits in a `k`-bit window,
    /// without generating keys (see [`crate::cost`]): one ring element then
    /// one bit per element; the key body is `f`, `k`, `m`, the seed, two
    /// ring vectors of `m` (party 0: `r_msb`, `mc`; party 1: `r`, `r_hi`),
    /// the bits `u[m]` and the DCF batch (on `f` bits, `Z_2` payload).
    pub fn cost(f: u32, k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_params::<R>(f, k)?;
        let params = TreeParams::new::<Z2>(f)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let bits = cost::size(bit_bytes(m))?;
        let what = "truncation (small) key";
        let ring = cost::mul(written_cost(TRUNC_SMALL_RING, m)?, w, what)?;
        let dcfs = cost::mul(mm, cost::fss_key_bytes::<Dcf, Z2>(params)?, what)?;
        Ok(GateCost {
            rounds: 2,
            bytes_sent: cost::add(cost::mul(mm, w, what)?, bits, what)?,
            key_bytes: cost::sum(&[dcfs, ring, bits, SEED_BYTES as u64], what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U32 + U64 + SEED_BYTES as u64,
                    ring,
                    bits,
                    cost::fss_field::<Dcf, Z2>(params, mm)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open, `x_b + r_b (+ 2^(k-1) for party 0)`
    /// (as [`TruncKey::mask`]).
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("truncation input", self.len(), x_share.len())?;
        let offset = if self.party == Party::P0 {
            R::from_u64(1u64 << (self.k - 1))
        } else {
            R::ZERO
        };
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r).wadd(offset))
            .collect())
    }

    /// Local step 2: from the opened `y + r`, this party's XOR share of
    /// `c XOR m_c`, to open as bits.
    pub fn xor_shares(&self, opened: &[R]) -> Result<Vec<u8>, MpcError> {
        check_len("truncation opened values", self.len(), opened.len())?;
        let lows: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.f))
            .collect();
        let c = self.dcf.eval_to_vec(&lows)?;
        Ok(c.iter()
            .zip(&self.u)
            .map(|(c, u)| u8::from(c.0) ^ (u & 1))
            .collect())
    }

    /// Local step 3: from the opened `y + r` and the opened bits
    /// `c XOR m_c`, this party's share of `x >> f`.
    pub fn finish(&self, opened: &[R], e: &[u8]) -> Result<Vec<R>, MpcError> {
        let n = self.len();
        check_len("truncation opened values", n, opened.len())?;
        check_bits("truncation opened bits", n, e)?;
        let p0 = self.party == Party::P0;
        // 2^(B - f), with 1 <= f so the shift is at most 63.
        let top = R::from_u64(1u64 << (R::BITS - self.f));
        let half_shifted = R::from_u64(1u64 << (self.k - 1 - self.f));
        Ok((0..n)
            .map(|i| {
                let y = opened[i];
                let w = if y.shr(R::BITS - 1) == R::ZERO {
                    self.r_msb[i]
                } else {
                    R::ZERO
                };
                let public = if p0 {
                    y.shr(self.f).wsub(half_shifted)
                } else {
                    R::ZERO
                };
                let c = bit_to_arith(self.party, e[i], self.mc[i]);
                public.wsub(self.r_hi[i]).wsub(c).wadd(top.wmul(w))
            })
            .collect())
    }

    /// The whole gate over a transport: two rounds, one ring element then
    /// one bit per element.
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

    /// Key body: `f` (u32), `k` (u32), `m`, the 16-byte seed, the two ring
    /// vectors this party does not expand from it (party 0: `r_msb[m]`,
    /// `mc[m]`; party 1: `r[m]`, `r_hi[m]`), the bits `u` (packed), the DCF
    /// keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.f);
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        out.extend_from_slice(&self.seed.to_le_bytes());
        put_written(
            out,
            self.party,
            &[&self.r, &self.r_hi, &self.r_msb, &self.mc],
        );
        put_bits(out, &self.u);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`TruncSmallKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let f = rd.u32("truncation (small) f")?;
        let k = rd.u32("truncation (small) k")?;
        if !(f >= 1 && f < k && k < R::BITS) {
            return Err(MpcError::Codec(format!(
                "truncation (small) f = {f}, k = {k} (need 1 <= f < k <= {})",
                R::BITS - 1
            )));
        }
        let (m, seed, ring) =
            read_seeded(rd, party, TRUNC_SMALL_RING, "truncation (small) shares")?;
        let u = rd.bits(m, "truncation (small) u")?;
        let dcf = rd.fss::<_, Z2>(party, f, m, "truncation (small) DCF keys")?;
        Self::from_parts(party, f, k, ring, seed, u, dcf)
    }
}

impl<R: Ring> KindKeys<R> for TruncSmallKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::TruncSmall { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncSmall));
        };
        Self::generate(f, k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::TruncSmall { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncSmall));
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
        let GateDesc::TruncSmall { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncSmall));
        };
        let key = Self::read(rd, party)?;
        if key.f != f || key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "f, window or element count"));
        }
        Ok(key)
    }
}

// ------------------------------------- trunc_stoch: stochastic, no DCF at all

/// One party's key for `m` **stochastic** truncations (`trunc_stoch`; see
/// the module docs): one opening, three ring shares per element and no FSS
/// key. The output reconstructs to `floor(x / 2^f) + b` where `b` is 1 with
/// probability exactly `(x mod 2^f) / 2^f` (stochastic rounding, unbiased:
/// its mean is `x / 2^f`), for every `x` in the `k`-bit window; `b` is the
/// low bits' carry `[x mod 2^f + r mod 2^f >= 2^f]` of the dealer's uniform
/// mask, which neither party learns.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TruncStochKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) f: u32,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of `r >> f` (logical).
    pub(crate) r_hi: Vec<R>,
    /// Share of the top bit of `r`.
    pub(crate) r_msb: Vec<R>,
    /// This party's share seed (as [`TruncKey::seed`]).
    pub(crate) seed: u128,
}

impl<R: Ring> core::fmt::Debug for TruncStochKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TruncStochKey")
            .field("party", &self.party)
            .field("f", &self.f)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> TruncStochKey<R> {
    /// Dealer: keys for `m` stochastic truncations by `f` bits of values in
    /// a `k`-bit signed window (`1 <= f < k <= BITS - 1`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        f: u32,
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_params::<R>(f, k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let r_hi: Vec<R> = r.iter().map(|v| v.shr(f)).collect();
        let r_msb: Vec<R> = r.iter().map(|v| v.shr(R::BITS - 1)).collect();
        let seeds: [u128; 2] = [rng.random(), rng.random()];
        let [p0, p1] = split_halves(&[&r, &r_hi, &r_msb], seeds, rng);
        let key = |party, ring, seed| -> Result<Self, MpcError> {
            let [r, r_hi, r_msb] = into_array(ring, "truncation (stochastic)")?;
            Ok(Self {
                party,
                f,
                k,
                r,
                r_hi,
                r_msb,
                seed,
            })
        };
        Ok((key(Party::P0, p0, seeds[0])?, key(Party::P1, p1, seeds[1])?))
    }

    /// Number of gates.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// True if the key holds no gate.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Key bytes held by this party: the `ceil(3m / 2)` ring shares it
    /// does not expand from its 16-byte seed (one and a half per element).
    pub fn key_bytes(&self) -> usize {
        seeded_key_bytes::<R>(self.party, TRUNC_RING, self.len())
    }

    /// Cost of `m` stochastic truncations (see [`crate::cost`]): one round,
    /// one ring element per element sent; the key body is `f`, `k`, `m`,
    /// the seed and this party's `ceil(3m / 2)` shares of `r[m]`,
    /// `r_hi[m]`, `r_msb[m]`.
    pub fn cost(f: u32, k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_params::<R>(f, k)?;
        let (mm, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "truncation (stochastic) key";
        let ring = cost::mul(written_cost(TRUNC_RING, m)?, w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(mm, w, what)?,
            key_bytes: cost::add(ring, SEED_BYTES as u64, what)?,
            encoded_bytes: cost::sum(&[U32 + U32 + U64 + SEED_BYTES as u64, ring], what)?,
        })
    }

    /// Local step 1: the share to open, `x_b + r_b (+ 2^(k-1) for party 0)`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("truncation input", self.len(), x_share.len())?;
        let offset = if self.party == Party::P0 {
            R::from_u64(1u64 << (self.k - 1))
        } else {
            R::ZERO
        };
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r).wadd(offset))
            .collect())
    }

    /// Local step 2: from the opened `y^ = y + r`, this party's share of
    /// `floor(x / 2^f) + b`: `(y^ >> f) - (r >> f) + 2^(B-f) w - 2^(k-1-f)`,
    /// the exact gate's formula without its borrow `c`. That borrow
    /// `[y^ mod 2^f < r mod 2^f]` is the carry of `x mod 2^f + r mod 2^f`,
    /// so leaving it in gives `b`.
    pub fn finish(&self, opened: &[R]) -> Result<Vec<R>, MpcError> {
        let n = self.len();
        check_len("truncation opened values", n, opened.len())?;
        let p0 = self.party == Party::P0;
        // 2^(B - f), with 1 <= f so the shift is at most 63.
        let top = R::from_u64(1u64 << (R::BITS - self.f));
        let half_shifted = R::from_u64(1u64 << (self.k - 1 - self.f));
        Ok((0..n)
            .map(|i| {
                let y = opened[i];
                let w = if y.shr(R::BITS - 1) == R::ZERO {
                    self.r_msb[i]
                } else {
                    R::ZERO
                };
                let public = if p0 {
                    y.shr(self.f).wsub(half_shifted)
                } else {
                    R::ZERO
                };
                public.wsub(self.r_hi[i]).wadd(top.wmul(w))
            })
            .collect())
    }

    /// The whole gate over a transport: one round, one ring element per
    /// element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, R::BITS)?;
        self.finish(&opened)
    }

    /// Key body: `f` (u32), `k` (u32), `m`, the 16-byte seed, this party's
    /// written range of the `3m` shares of `r[m]`, `r_hi[m]`, `r_msb[m]`.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.f);
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        out.extend_from_slice(&self.seed.to_le_bytes());
        put_written(out, self.party, &[&self.r, &self.r_hi, &self.r_msb]);
    }

    /// Reads a body written by [`TruncStochKey::write`].
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let f = rd.u32("truncation (stochastic) f")?;
        let k = rd.u32("truncation (stochastic) k")?;
        if !(f >= 1 && f < k && k < R::BITS) {
            return Err(MpcError::Codec(format!(
                "truncation (stochastic) f = {f}, k = {k} (need 1 <= f < k <= {})",
                R::BITS - 1
            )));
        }
        let (_, seed, ring) = read_seeded(rd, party, TRUNC_RING, "truncation (stochastic) shares")?;
        let [r, r_hi, r_msb] = into_array(ring, "truncation (stochastic)")?;
        Ok(TruncStochKey {
            party,
            f,
            k,
            r,
            r_hi,
            r_msb,
            seed,
        })
    }
}

impl<R: Ring> KindKeys<R> for TruncStochKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::TruncStoch { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncStoch));
        };
        Self::generate(f, k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::TruncStoch { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncStoch));
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
        let GateDesc::TruncStoch { m, f, k } = *desc else {
            return Err(other_kind(desc, GateKind::TruncStoch));
        };
        let key = Self::read(rd, party)?;
        if key.f != f || key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "f, window or element count"));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod stoch_tests {
    use super::*;
    use crate::gates::util::split;
    use crate::open::low_mask;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// Reconstructs both parties' `finish` without a transport.
    fn run(k0: &TruncStochKey<u64>, k1: &TruncStochKey<u64>, x: &[u64]) -> Vec<u64> {
        let mut rng = ChaCha20Rng::seed_from_u64(99);
        let (x0, x1) = split(x, &mut rng);
        let (m0, m1) = (k0.mask(&x0).expect("valid"), k1.mask(&x1).expect("valid"));
        let opened: Vec<u64> = m0
            .iter()
            .zip(&m1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        let (o0, o1) = (
            k0.finish(&opened).expect("valid"),
            k1.finish(&opened).expect("valid"),
        );
        o0.iter()
            .zip(&o1)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect()
    }

    /// Exhaustive on a small window, each output checked against the exact
    /// formula with the dealer's mask: `floor(x / 2^f) + carry(x, r)`.
    #[test]
    fn exact_formula_on_every_input_of_a_small_window() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for (f, k) in [(1u32, 4u32), (3, 8), (5, 12), (12, 40)] {
            let xs: Vec<u64> = if k <= 12 {
                (-(1i64 << (k - 1))..(1i64 << (k - 1)))
                    .map(|v| v as u64)
                    .collect()
            } else {
                (0..4096)
                    .map(|_| (rng.random::<u64>() >> (65 - k)).wrapping_sub(1 << (k - 2)))
                    .collect()
            };
            for _ in 0..8 {
                let (k0, k1) =
                    TruncStochKey::<u64>::generate(f, k, xs.len(), &mut rng).expect("valid");
                let out = run(&k0, &k1, &xs);
                for (i, &x) in xs.iter().enumerate() {
                    let r = k0.r[i].wrapping_add(k1.r[i]);
                    let carry = u64::from((x & low_mask(f)) + (r & low_mask(f)) >= 1 << f);
                    let want = ((x as i64) >> f) as u64 + carry;
                    assert_eq!(out[i], want, "x = {} f = {f} k = {k}", x as i64);
                }
            }
        }
    }

    /// Unbiased: over fresh masks the mean output is `x / 2^f`.
    #[test]
    fn rounds_up_with_the_probability_of_the_low_bits() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let f = 4;
        let n = 20_000;
        for x in [-17i64, -16, -1, 0, 1, 5, 8, 15, 300] {
            let xs = vec![x as u64; n];
            let (k0, k1) = TruncStochKey::<u64>::generate(f, 20, n, &mut rng).expect("valid");
            let out = run(&k0, &k1, &xs);
            let floor = x >> f;
            let ups = out
                .iter()
                .map(|&o| {
                    let d = (o as i64) - floor;
                    assert!(
                        d == 0 || d == 1,
                        "x = {x}: output {} not floor or floor + 1",
                        o as i64
                    );
                    d as f64
                })
                .sum::<f64>();
            let p = (x.rem_euclid(1 << f)) as f64 / f64::from(1u32 << f);
            let sd = (p * (1.0 - p) / n as f64).sqrt().max(1e-9);
            assert!(
                ((ups / n as f64) - p).abs() <= 5.0 * sd + 1e-12,
                "x = {x}: {} vs {p}",
                ups / n as f64
            );
        }
    }
}
