//! Piecewise-linear functions (degree-1 splines with public knots) in ONE
//! round, after the spline gate of Boyle et al. (Eurocrypt 2021).
//!
//! A [`Spline`] has knots `p_1 < ... < p_J` and coefficients `(a_i, b_i)` on the
//! `J + 1` pieces; `s(v) = a(v) v + b(v)` with `a(v) = a_0 + sum_j [v >= p_j] da_j`
//! (and `b` likewise). The parties open `v^ = v + r` once. Each knot is a
//! DReLU of `v - p_j` (one DCF on `k - 1` bits, as in [`super::cmp`]) whose
//! pair payload carries `[v >= p_j] * (da_j, db_j - da_j r)`, so that
//! `s(v) = v^ a(v) + (b(v) - a(v) r)` is local. ReLU is the one-knot case.
//!
//! Fixed point: `v` and the knots have `f` fractional bits, `a_i` has `fa`
//! and `b_i` has `f + fa`; the output has `f + fa` fractional bits (truncate
//! afterwards). Exact for `|v|, |p_j| < 2^(k-2)`.

use crate::codec::{Reader, put_fss, put_ring, put_u32, put_u64, put_usize};
use crate::cost::{self, GateCost, U32, U64};
use crate::error::MpcError;
use crate::gates::util::{check_len, check_party, split};
use crate::open::{low_mask, open};
use crate::transport::Transport;
use ariann_fss::{Dcf, DcfKeys, Party, TreeParams};
use ariann_ring::Ring;
use rand::{CryptoRng, Rng};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// A public piecewise-linear function on ring values (two's complement).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Spline {
    /// Increasing knots `p_1 < ... < p_J`.
    pub knots: Vec<i64>,
    /// Slopes of the `J + 1` pieces.
    pub a: Vec<i64>,
    /// Intercepts of the `J + 1` pieces.
    pub b: Vec<i64>,
}

impl Spline {
    /// Checks the shape of the spline.
    pub fn validate(&self) -> Result<(), MpcError> {
        let j = self.knots.len();
        if self.a.len() != j + 1 || self.b.len() != j + 1 {
            return Err(MpcError::InvalidParameter(format!(
                "spline with {j} knots needs {} slopes and intercepts (got {} and {})",
                j + 1,
                self.a.len(),
                self.b.len()
            )));
        }
        if self.knots.windows(2).any(|w| w[0] >= w[1]) {
            return Err(MpcError::InvalidParameter(
                "spline knots must increase".into(),
            ));
        }
        Ok(())
    }

    /// The function on a cleartext value (wrapping ring arithmetic).
    pub fn eval_clear<R: Ring>(&self, v: R) -> R {
        let x = v.to_i64();
        let i = self.knots.iter().filter(|p| x >= **p).count();
        R::from_i64(self.a[i]).wmul(v).wadd(R::from_i64(self.b[i]))
    }
}

fn check_params<R: Ring>(spline: &Spline, k: u32) -> Result<(), MpcError> {
    spline.validate()?;
    if (3..=R::BITS).contains(&k) {
        Ok(())
    } else {
        Err(MpcError::InvalidParameter(format!(
            "spline window k = {k} must be in 3..={}",
            R::BITS
        )))
    }
}

/// One party's key for `m` evaluations of a [`Spline`] on a `k`-bit window.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SplineKey<R: Ring> {
    #[zeroize(skip)]
    pub(crate) party: Party,
    #[zeroize(skip)]
    pub(crate) k: u32,
    #[zeroize(skip)]
    pub(crate) spline: Spline,
    /// Share of the mask `r` of each element.
    pub(crate) r: Vec<R>,
    /// Shares of `r_msb * da_j` and `r_msb * (db_j - da_j r)`, element-major.
    pub(crate) c: Vec<[R; 2]>,
    /// DCF keys, element-major (`m * J`).
    #[zeroize(skip)]
    pub(crate) dcf: DcfKeys<[u64; 2]>,
}

impl<R: Ring> core::fmt::Debug for SplineKey<R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SplineKey")
            .field("party", &self.party)
            .field("k", &self.k)
            .field("knots", &self.spline.knots.len())
            .field("len", &self.r.len())
            .finish_non_exhaustive()
    }
}

impl<R: Ring> SplineKey<R> {
    /// Dealer: keys for `m` evaluations of `spline` on a `k`-bit window.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        spline: &Spline,
        k: u32,
        m: usize,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_params::<R>(spline, k)?;
        let j = spline.knots.len();
        let da: Vec<R> = (0..j)
            .map(|i| R::from_i64(spline.a[i + 1].wrapping_sub(spline.a[i])))
            .collect();
        let db: Vec<R> = (0..j)
            .map(|i| R::from_i64(spline.b[i + 1].wrapping_sub(spline.b[i])))
            .collect();
        let r: Vec<R> = (0..m).map(|_| R::random(rng)).collect();
        let mut alphas = Vec::with_capacity(m * j);
        let mut betas = Vec::with_capacity(m * j);
        let mut c = Vec::with_capacity(m * j);
        for ri in &r {
            let low = ri.to_u64() & low_mask(k - 1);
            let msb = (ri.to_u64() >> (k - 1)) & 1;
            let s = R::ONE.wsub(R::from_u64(2 * msb));
            for jj in 0..j {
                let kb = db[jj].wsub(da[jj].wmul(*ri));
                alphas.push(low);
                betas.push([da[jj].wmul(s).to_u64(), kb.wmul(s).to_u64()]);
                let rm = R::from_u64(msb);
                c.push([rm.wmul(da[jj]), rm.wmul(kb)]);
            }
        }
        let params = TreeParams::new::<[u64; 2]>(k - 1)?;
        let (d0, d1) = DcfKeys::<[u64; 2]>::generate(params, &alphas, &betas, rng)?;
        let (r0, r1) = split(&r, rng);
        let c0: Vec<[R; 2]> = c.iter().map(|_| [R::random(rng), R::random(rng)]).collect();
        let c1: Vec<[R; 2]> = c
            .iter()
            .zip(&c0)
            .map(|(a, b)| [a[0].wsub(b[0]), a[1].wsub(b[1])])
            .collect();
        let key = |party, r, c, dcf| Self {
            party,
            k,
            spline: spline.clone(),
            r,
            c,
            dcf,
        };
        Ok((key(Party::P0, r0, c0, d0), key(Party::P1, r1, c1, d1)))
    }

    /// Number of evaluations.
    pub fn len(&self) -> usize {
        self.r.len()
    }
    /// True if the key holds no evaluation.
    pub fn is_empty(&self) -> bool {
        self.r.is_empty()
    }
    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        let w = R::BITS as usize / 8;
        self.len() * w + self.c.len() * (self.dcf.key_bytes() + 2 * w)
    }

    /// Cost of `m` evaluations of `spline` on a `k`-bit window, without
    /// generating keys (see [`crate::cost`]): one round of one ring element
    /// per evaluation; one DCF key and two shares per evaluation and knot;
    /// the key body is `k`, the spline (`J`, then `3 J + 2` coefficients),
    /// `m`, `r[m]`, `c[m J][2]` and the DCF batch.
    pub fn cost(spline: &Spline, k: u32, m: usize) -> Result<GateCost, MpcError> {
        check_params::<R>(spline, k)?;
        let params = TreeParams::new::<[u64; 2]>(k - 1)?;
        let what = "spline key";
        let (m, w) = (cost::size(m)?, cost::ring_bytes::<R>());
        let j = cost::size(spline.knots.len())?;
        let mj = cost::mul(m, j, what)?;
        let per_knot = cost::add(cost::fss_key_bytes::<Dcf, [u64; 2]>(params)?, 2 * w, what)?;
        let coeffs = cost::add(cost::mul(j, 3, what)?, 2, what)?;
        Ok(GateCost {
            rounds: 1,
            bytes_sent: cost::mul(m, w, what)?,
            key_bytes: cost::add(cost::mul(m, w, what)?, cost::mul(mj, per_knot, what)?, what)?,
            encoded_bytes: cost::sum(
                &[
                    U32 + U64,
                    cost::mul(coeffs, U64, what)?,
                    U64,
                    cost::mul(m, w, what)?,
                    cost::mul(mj, 2 * w, what)?,
                    cost::fss_field::<Dcf, [u64; 2]>(params, mj)?,
                ],
                what,
            )?,
        })
    }

    /// Local step 1: the share to open, `v_b + r_b`.
    pub fn mask(&self, v_share: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("spline input", self.len(), v_share.len())?;
        Ok(v_share
            .iter()
            .zip(&self.r)
            .map(|(v, r)| v.wadd(*r))
            .collect())
    }

    /// Local step 2: from the opened `v + r`, shares of `s(v)`.
    pub fn finish(&self, opened: &[R]) -> Result<Vec<R>, MpcError> {
        check_len("spline opened values", self.len(), opened.len())?;
        let j = self.spline.knots.len();
        let k = self.k;
        let mut lows = Vec::with_capacity(self.len() * j);
        let mut msbs = Vec::with_capacity(self.len() * j);
        for v in opened {
            for p in &self.spline.knots {
                let y = v.wsub(R::from_i64(*p)).to_u64() & low_mask(k);
                msbs.push(y >> (k - 1));
                lows.push(y & low_mask(k - 1));
            }
        }
        let uv = self.dcf.eval_to_vec(&lows)?;
        let p0 = self.party == Party::P0;
        let pub_share = |x: R| if p0 { x } else { R::ZERO };
        let mut out = Vec::with_capacity(self.len());
        for (i, v) in opened.iter().enumerate() {
            let ri = self.r[i];
            let mut a = pub_share(R::from_i64(self.spline.a[0]));
            let mut b = pub_share(R::from_i64(self.spline.b[0]))
                .wsub(R::from_i64(self.spline.a[0]).wmul(ri));
            for jj in 0..j {
                let idx = i * j + jj;
                let da = R::from_i64(self.spline.a[jj + 1].wrapping_sub(self.spline.a[jj]));
                let db = R::from_i64(self.spline.b[jj + 1].wrapping_sub(self.spline.b[jj]));
                // Shares of K = db - da r (linear in the shares of r).
                let kb = pub_share(db).wsub(da.wmul(ri));
                let za = self.c[idx][0].wadd(R::from_u64(uv[idx][0]));
                let zk = self.c[idx][1].wadd(R::from_u64(uv[idx][1]));
                // d K = (1 - y_msb) K + (2 y_msb - 1) z K
                if msbs[idx] == 0 {
                    a = a.wadd(pub_share(da)).wsub(za);
                    b = b.wadd(kb).wsub(zk);
                } else {
                    a = a.wadd(za);
                    b = b.wadd(zk);
                }
            }
            out.push(v.wmul(a).wadd(b));
        }
        Ok(out)
    }

    /// The whole gate: one round, one ring element per evaluation.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        v_share: &[R],
    ) -> Result<Vec<R>, MpcError> {
        check_party(self.party, t.party())?;
        let opened = open(t, &self.mask(v_share)?, R::BITS)?;
        self.finish(&opened)
    }
}

// ------------------------------------------------ codec (inside batch-norm keys)

impl<R: Ring> SplineKey<R> {
    /// Key body: `k` (u32), the spline (`J`, then `J` knots, `J + 1` slopes
    /// and `J + 1` intercepts as i64), `m`, `r[m]`, `c[m J][2]`, the DCF keys.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        put_u32(out, self.k);
        put_usize(out, self.spline.knots.len());
        for v in self
            .spline
            .knots
            .iter()
            .chain(&self.spline.a)
            .chain(&self.spline.b)
        {
            put_u64(out, *v as u64);
        }
        put_usize(out, self.r.len());
        put_ring(out, &self.r);
        for pair in &self.c {
            put_ring(out, pair);
        }
        put_fss(out, &self.dcf);
    }

    /// Reads a body written by [`SplineKey::write`] (internally consistent,
    /// the spline validated).
    pub(crate) fn read(rd: &mut Reader<'_>, party: Party) -> Result<Self, MpcError> {
        let err = |m: String| MpcError::Codec(m);
        let k = rd.window::<R>(3, "spline window")?;
        let j = rd.count(24, "spline knots")?;
        let mut vals = Vec::with_capacity(3 * j + 2);
        for _ in 0..3 * j + 2 {
            vals.push(rd.u64("spline coefficient")? as i64);
        }
        let b = vals.split_off(2 * j + 1);
        let a = vals.split_off(j);
        let spline = Spline { knots: vals, a, b };
        spline.validate().map_err(|e| err(format!("spline: {e}")))?;
        let m = rd.count(R::BITS as usize / 8, "spline elements")?;
        let r = rd.ring::<R>(m, "spline r")?;
        let mj = m
            .checked_mul(j)
            .ok_or_else(|| err("spline: element count overflows".into()))?;
        // Wiped after it is split into pairs.
        let flat = zeroize::Zeroizing::new(
            rd.ring::<R>(
                mj.checked_mul(2)
                    .ok_or_else(|| err("spline: element count overflows".into()))?,
                "spline c",
            )?,
        );
        let c = flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let dcf = rd.fss::<_, [u64; 2]>(party, k - 1, mj, "spline DCF keys")?;
        Ok(SplineKey {
            party,
            k,
            spline,
            r,
            c,
            dcf,
        })
    }
}
