//! Comparison gates from one DCF (or DPF) key per element, each in ONE round
//! of communication: equality with zero, DReLU (`[x >= 0]`) and ReLU.
//!
//! All gates work on a declared `k`-bit window: the secret `x` (additively
//! shared in `Z_2^BITS`) must satisfy `-2^(k-1) <= x < 2^(k-1)` as a signed
//! value. Inside the window the result is **exact** (no probabilistic
//! wrap-around failure as in ARIANN, whose comparison fails when `x + r`
//! wraps). The key and the evaluation work scale with `k`, not the ring.
//!
//! Construction (after Boyle et al., Eurocrypt 2021, and LLAMA): the dealer
//! picks a mask `r`; the parties open `x^ = x + r`. Write `y = x^ mod 2^k`
//! and split `y` and `r mod 2^k` into their top bit and low `k - 1` bits.
//! Then `MSB_k(x) = y_msb XOR r_msb XOR borrow` with `borrow = [y_low < r_low]`,
//! and one DCF on `k - 1` bits with special point `r_low` gives shares of
//! `borrow * (1 - 2 r_msb)`; adding shares of `r_msb` yields shares of
//! `z = r_msb XOR borrow`, and `DReLU(x) = 1 - (y_msb XOR z)` is linear in `z`
//! because `y_msb` is public. For ReLU the DCF payload is the pair
//! `(1 - 2 r_msb, r (1 - 2 r_msb))`, so the same key also gives shares of
//! `z r`, and `ReLU(x) = x^ * DReLU(x) - r * DReLU(x)` is local.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_fss, put_ring, put_u32, put_usize};
use crate::cost::{self, GateCost, U32, U64};
use crate::error::MpcError;
use crate::gates::util::{check_len, check_party, public_share, split};
use crate::open::{low_mask, open};
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::{Dcf, DcfKeys, Dpf, DpfKeys, Party, TreeParams};
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

pub(crate) fn check_window<R: Ring>(k: u32) -> Result<(), MpcError> {
    if (2..=R::BITS).contains(&k) {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter(format!(
            "comparison window k = {k} must be in 2..={}",
            R::BITS
        )))
    }
}

fn check_eq_window<R: Ring>(k: u32) -> Result<(), MpcError> {
    if (1..=R::BITS).contains(&k) {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter(format!(
            "equality window k = {k} must be in 1..={}",
            R::BITS
        )))
    }
}

/// One party's key for `m` DReLU gates on a `k`-bit window.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct DreluKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the mask `r` (only its low `k` bits matter).
    pub(crate) r: Vec<R>,
    /// Share of `r_msb`.
    pub(crate) msb: Vec<R>,
    /// DCF keys, `[y_low < r_low] * (1 - 2 r_msb)`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<u64>,
}

impl<R: Ring> core::fmt::Debug for DreluKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DreluKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> DreluKey<R> {
    /// Dealer: keys for `m` DReLU gates on a `k`-bit window.
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
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(k - 1)).collect();
        let msb: Vec<R> = r
            .iter()
            .map(|v| R::from_u64(v.to_u64() >> (k - 1)))
            .collect();
        let betas: Vec<u64> = msb
            .iter()
            .map(|b| 1u64.wrapping_sub(2 * b.to_u64()))
            .collect();
        let params = TreeParams::new::<u64>(k - 1)?;
        let (d0, d1) = DcfKeys::<u64>::generate(params, &alphas, &betas, rng)?;
        let (r0, r1) = split(&r, rng);
        let (m0, m1) = split(&msb, rng);
        Ok((
            Self {
                party: Party::P0,
                k,
                r: r0,
                msb: m0,
                dcf: d0,
            },
            Self {
                party: Party::P1,
                k,
                r: r1,
                msb: m1,
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
    /// Bits opened per element (the window).
    pub fn opening_bits(&self) -> u32 {
        self.k
    }
    /// Key bytes held by this party (serialized DCF keys plus two shares per element).
    pub fn key_bytes(&self) -> usize {
        self.len() * (self.dcf.key_bytes() + 2 * (R::BITS as usize / 8))
    }

    /// Cost of `m` DReLU gates on a `k`-bit window, without generating keys
    /// (see [`crate::cost`]): one round of `k` bits per element; the key
    /// body is `k`, `m`, `r[m]`, `msb[m]` and the DCF batch.
    pub fn cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_window::<R>(k)?;
        let params = TreeParams::new::<u64>(k - 1)?;
        let (m, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "DReLU key";
        let per = cost::add(cost::fss_key_bytes::<Dcf, u64>(params)?, 2 * w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(m, crate::open::bytes_per_element(k) as u64, what)?,
            key_bytes: cost::mul(m, per, what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64,
                    cost::mul(m, 2 * w, what)?,
                    cost::fss_field::<Dcf, u64>(params, m)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open, `x_b + r_b` (mod `2^k`).
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("DReLU input", self.len(), x_share.len())?;
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r))
            .collect())
    }

    /// Local step 2: from the opened `x + r` (mod `2^k`), this party's share of `[x >= 0]`.
    pub fn finish(&self, opened: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("DReLU opened values", self.len(), opened.len())?;
        let (msbs, lows) = split_window(opened, self.k);
        let u = self.dcf.eval_to_vec(&lows)?;
        let p = self.party;
        Ok(msbs
            .iter()
            .zip(&u)
            .zip(&self.msb)
            .map(|((y_msb, u), m)| {
                let z = m.wadd(R::from_u64(*u));
                if *y_msb == 0 {
                    public_share(p, R::ONE).wsub(z)
                } else {
                    z
                }
            })
            .collect())
    }

    /// The whole gate over a transport: one round, `k` bits per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, self.k)?;
        self.finish(&opened)
    }
}

/// Splits opened values into (top bit of the `k`-bit window, low `k - 1` bits).
fn split_window<R: Ring>(opened: &[R], k: u32) -> (Vec<u64>, Vec<u64>) {
    let mk = low_mask(k);
    let ml = low_mask(k - 1);
    opened
        .iter()
        .map(|v| {
            let y = v.to_u64() & mk;
            (y >> (k - 1), y & ml)
        })
        .unzip()
}

/// One party's key for `m` one-round ReLU gates on a `k`-bit window.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ReluKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    /// Share of the full-ring mask `r`.
    pub(crate) r: Vec<R>,
    /// Share of `r_msb` (top bit of `r mod 2^k`).
    pub(crate) msb: Vec<R>,
    /// Share of `r * r_msb`.
    pub(crate) r_msb: Vec<R>,
    /// DCF keys with payload `(1 - 2 r_msb, r (1 - 2 r_msb)) * [y_low < r_low]`.
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<[u64; 2]>,
}

impl<R: Ring> core::fmt::Debug for ReluKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReluKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

/// Output of a ReLU gate: shares of `ReLU(x)` and of `DReLU(x) = [x >= 0]`
/// (kept for the backward pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReluOutput<R: Ring> {
    /// Shares of `max(x, 0)`.
    pub relu: Vec<R>,
    /// Shares of `[x >= 0]`.
    pub drelu: Vec<R>,
}

impl<R: Ring> ReluKey<R> {
    /// Dealer: keys for `m` ReLU gates on a `k`-bit window.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_window::<R>(k)?;
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64() & low_mask(k - 1)).collect();
        let msb: Vec<R> = r
            .iter()
            .map(|v| R::from_u64((v.to_u64() >> (k - 1)) & 1))
            .collect();
        let betas: Vec<[u64; 2]> = r
            .iter()
            .zip(&msb)
            .map(|(r, b)| {
                let s = 1u64.wrapping_sub(2 * b.to_u64());
                [s, r.to_u64().wrapping_mul(s)]
            })
            .collect();
        let r_msb: Vec<R> = r.iter().zip(&msb).map(|(r, b)| r.wmul(*b)).collect();
        let params = TreeParams::new::<[u64; 2]>(k - 1)?;
        let (d0, d1) = DcfKeys::<[u64; 2]>::generate(params, &alphas, &betas, rng)?;
        let (r0, r1) = split(&r, rng);
        let (m0, m1) = split(&msb, rng);
        let (q0, q1) = split(&r_msb, rng);
        Ok((
            Self {
                party: Party::P0,
                k,
                r: r0,
                msb: m0,
                r_msb: q0,
                dcf: d0,
            },
            Self {
                party: Party::P1,
                k,
                r: r1,
                msb: m1,
                r_msb: q1,
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
    /// Bits opened per element (the full ring: the output needs all of `x + r`).
    pub fn opening_bits(&self) -> u32 {
        R::BITS
    }
    /// Key bytes held by this party (serialized DCF keys plus three shares per element).
    pub fn key_bytes(&self) -> usize {
        self.len() * (self.dcf.key_bytes() + 3 * (R::BITS as usize / 8))
    }

    /// Cost of `m` ReLU gates on a `k`-bit window, without generating keys
    /// (see [`crate::cost`]): one round of one ring element per element; the
    /// key body is `k`, `m`, `r[m]`, `msb[m]`, `r_msb[m]` and the DCF batch.
    pub fn cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_window::<R>(k)?;
        let params = TreeParams::new::<[u64; 2]>(k - 1)?;
        let (m, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "ReLU key";
        let per = cost::add(cost::fss_key_bytes::<Dcf, [u64; 2]>(params)?, 3 * w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(m, w, what)?,
            key_bytes: cost::mul(m, per, what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64,
                    cost::mul(m, 3 * w, what)?,
                    cost::fss_field::<Dcf, [u64; 2]>(params, m)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open, `x_b + r_b`.
    pub fn mask(&self, x_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("ReLU input", self.len(), x_share.len())?;
        Ok(x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r))
            .collect())
    }

    /// Local step 2: from the opened `x + r`, shares of `ReLU(x)` and `DReLU(x)`.
    pub fn finish(&self, opened: &[R]) -> Result<ReluOutput<R>, MpcError> {
        check_len("ReLU opened values", self.len(), opened.len())?;
        let (msbs, lows) = split_window(opened, self.k);
        let uv = self.dcf.eval_to_vec(&lows)?;
        let p = self.party;
        let mut relu = Vec::with_capacity(self.len());
        let mut drelu = Vec::with_capacity(self.len());
        for i in 0..self.len() {
            let z = self.msb[i].wadd(R::from_u64(uv[i][0]));
            let zr = self.r_msb[i].wadd(R::from_u64(uv[i][1]));
            // d = 1 - (y_msb XOR z);  d r = r - z r  (y_msb = 0)  or  z r  (y_msb = 1)
            let (d, dr) = if msbs[i] == 0 {
                (public_share(p, R::ONE).wsub(z), self.r[i].wsub(zr))
            } else {
                (z, zr)
            };
            relu.push(opened[i].wmul(d).wsub(dr));
            drelu.push(d);
        }
        Ok(ReluOutput { relu, drelu })
    }

    /// The whole gate over a transport: one round, one ring element per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<ReluOutput<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(x_share)?, R::BITS)?;
        self.finish(&opened)
    }
}

/// One party's key for `m` equality-with-zero gates on a `k`-bit window
/// (`[x mod 2^k == 0]`), from one DPF key per element.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EqZeroKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    pub(crate) r: Vec<R>,
    #[zeroize(skip)]
    pub(crate) dpf: DpfKeys<u64>,
}

impl<R: Ring> core::fmt::Debug for EqZeroKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EqZeroKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> EqZeroKey<R> {
    /// Dealer: keys for `m` equality gates on a `k`-bit window (`1 <= k <= BITS`).
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_eq_window::<R>(k)?;
        let mk = low_mask(k);
        let r: Vec<R> = (0..m)
            .map(|_| R::from_u64(R::random(rng).to_u64() & mk))
            .collect();
        let alphas: Vec<u64> = r.iter().map(|v| v.to_u64()).collect();
        let params = TreeParams::new::<u64>(k)?;
        let (d0, d1) = DpfKeys::<u64>::generate(params, &alphas, &vec![1u64; m], rng)?;
        let (r0, r1) = split(&r, rng);
        Ok((
            Self {
                party: Party::P0,
                k,
                r: r0,
                dpf: d0,
            },
            Self {
                party: Party::P1,
                k,
                r: r1,
                dpf: d1,
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
    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.len() * (self.dpf.key_bytes() + R::BITS as usize / 8)
    }

    /// Cost of `m` equality gates on a `k`-bit window, without generating
    /// keys (see [`crate::cost`]): one round of `k` bits per element; the key
    /// body is `k`, `m`, `r[m]` and the DPF batch.
    pub fn cost(k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_eq_window::<R>(k)?;
        let params = TreeParams::new::<u64>(k)?;
        let (m, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let what = "equality key";
        let per = cost::add(cost::fss_key_bytes::<Dpf, u64>(params)?, w, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(m, crate::open::bytes_per_element(k) as u64, what)?,
            key_bytes: cost::mul(m, per, what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64,
                    cost::mul(m, w, what)?,
                    cost::fss_field::<Dpf, u64>(params, m)?,
                ],
                what,
            )?,
        })
    }

    /// The gate over a transport: shares of `[x mod 2^k == 0]`, one round of `k` bits per element.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        check_len("equality input", self.len(), x_share.len())?;
        let masked: Vec<R> = x_share
            .iter()
            .zip(&self.r)
            .map(|(x, r)| x.wadd(*r))
            .collect();
        let opened = open(t, &masked, self.k)?;
        let xs: Vec<u64> = opened
            .iter()
            .map(|v| v.to_u64() & low_mask(self.k))
            .collect();
        Ok(self
            .dpf
            .eval_to_vec(&xs)?
            .into_iter()
            .map(R::from_u64)
            .collect())
    }
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> DreluKey<R> {
    /// Key body: `k` (u32), `m`, `r[m]`, `msb[m]`, the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        put_ring(out, &self.r);
        put_ring(out, &self.msb);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`DreluKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let k = rd.window::<R>(2, "DReLU window")?;
        let m = rd.count(2 * (R::BITS as usize / 8), "DReLU elements")?;
        Ok(DreluKey {
            party,
            k,
            r: rd.ring(m, "DReLU r")?,
            msb: rd.ring(m, "DReLU msb")?,
            dcf: rd.fss::<_, u64>(party, k - 1, m, "DReLU DCF keys")?,
        })
    }
}

impl<R: Ring> KindKeys<R> for DreluKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Drelu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Drelu));
        };
        Self::generate(k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Drelu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Drelu));
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
        let GateDesc::Drelu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Drelu));
        };
        let key = Self::read(rd, party)?;
        if key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "window or element count"));
        }
        Ok(key)
    }
}

impl<R: Ring> ReluKey<R> {
    /// Key body: `k` (u32), `m`, `r[m]`, `msb[m]`, `r_msb[m]`, the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        put_ring(out, &self.r);
        put_ring(out, &self.msb);
        put_ring(out, &self.r_msb);
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`ReluKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let k = rd.window::<R>(2, "ReLU window")?;
        let m = rd.count(3 * (R::BITS as usize / 8), "ReLU elements")?;
        Ok(ReluKey {
            party,
            k,
            r: rd.ring(m, "ReLU r")?,
            msb: rd.ring(m, "ReLU msb")?,
            r_msb: rd.ring(m, "ReLU r_msb")?,
            dcf: rd.fss::<_, [u64; 2]>(party, k - 1, m, "ReLU DCF keys")?,
        })
    }
}

impl<R: Ring> KindKeys<R> for ReluKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Relu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Relu));
        };
        Self::generate(k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Relu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Relu));
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
        let GateDesc::Relu { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Relu));
        };
        let key = Self::read(rd, party)?;
        if key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "window or element count"));
        }
        Ok(key)
    }
}

impl<R: Ring> EqZeroKey<R> {
    /// Key body: `k` (u32), `m`, `r[m]`, the DPF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.r.len());
        put_ring(out, &self.r);
        put_fss(out, &self.dpf);
    }

    /// Reads a body written by [`EqZeroKey::write`] (internally consistent).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let k = rd.window::<R>(1, "equality window")?;
        let m = rd.count(R::BITS as usize / 8, "equality elements")?;
        Ok(EqZeroKey {
            party,
            k,
            r: rd.ring(m, "equality r")?,
            dpf: rd.fss::<_, u64>(party, k, m, "equality DPF keys")?,
        })
    }
}

impl<R: Ring> KindKeys<R> for EqZeroKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::EqZero { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::EqZero));
        };
        Self::generate(k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::EqZero { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::EqZero));
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
        let GateDesc::EqZero { m, k } = *desc else {
            return Err(other_kind(desc, GateKind::EqZero));
        };
        let key = Self::read(rd, party)?;
        if key.k != k || key.r.len() != m {
            return Err(body_mismatch(desc, "window or element count"));
        }
        Ok(key)
    }
}
