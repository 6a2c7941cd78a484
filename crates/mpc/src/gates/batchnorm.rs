//! Batch normalisation for training, in 9 rounds:
//! `y = gamma * (x - mu) / sqrt(var + eps) + beta` per channel, with the batch
//! statistics `mu`, `var` of an `(n, c, h, w)` input (`m = n h w` values per
//! channel).
//!
//! | round | step | opened values |
//! |---|---|---|
//! | 1 | `mu = (sum x) * round(2^(e+pm) / m) >> (e+pm)` (exact truncation) | `c` |
//! | 2 | `xc^2` (Beaver), `xc = x - mu` local | `2 len` |
//! | 3 | truncate `xc^2` | `len` |
//! | 4 | `var = (sum xc^2) * round(2^(e+pv) / m) >> (e+pv)`, `+ eps` | `c` |
//! | 5 | `theta = 1/sqrt(var)` by a spline (one round, no Newton step) | `c` |
//! | 6 | `gamma * theta` (Beaver) | `2c` |
//! | 7 | truncate | `c` |
//! | 8 | `(gamma theta) * xc` (Beaver) | `2 len` |
//! | 9 | truncate, `+ beta` | `len` |
//!
//! `e = ceil(log2 m)`; `pm = 20` and `pv = 10` bits of precision for `1/m`.
//! ARIANN (Appendix C.4) takes 9 rounds too but `18 m^2` values and Newton
//! iterations from a fixed start; here the inverse square root is a
//! piecewise-linear interpolation of `1/sqrt` on 8 pieces per octave over
//! `[2^-8, 2^8]` (clamped outside): relative error below 0.2 % over that range
//! (0.15 % measured, worst at both ends: the 16-bit quantisation of small
//! variances and of the slopes at large ones), and every truncation is exact.
//!
//! Value bounds (documented limits of the windows used): `|x| < 2^6`, channel
//! variance below `2^14`, `m <= 2^17`, `f = 16` fractional bits.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_usize};
use crate::cost::{GateCost, U64};
use crate::error::MpcError;
use crate::gates::beaver::{Bilinear, TripleKey};
use crate::gates::spline::{Spline, SplineKey};
use crate::gates::trunc::TruncKey;
use crate::table::{GateKind, KindKeys, body_mismatch, other_kind};
use crate::transport::Transport;
use ariann_fss::Party;
use ariann_ring::{Ring, RingTensor};
use rand::{CryptoRng, Rng};

/// Fractional bits of inputs, parameters and outputs.
pub const BN_FRAC_BITS: u32 = 16;
pub(crate) const PM: u32 = 20;
pub(crate) const PV: u32 = 10;
/// Window of the truncations.
const KT: u32 = 62;
/// Window of the inverse-square-root spline.
const KS: u32 = 40;

/// Geometry of a batch-norm input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormShape {
    /// Batch.
    pub n: usize,
    /// Channels.
    pub c: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
}

impl BatchNormShape {
    /// Appends the shape's binary encoding: `n, c, h, w` (`u64` LE each).
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.n, self.c, self.h, self.w] {
            put_usize(out, v);
        }
    }

    /// Reads a shape written by [`BatchNormShape::encode`].
    pub(crate) fn read(rd: &mut Reader<'_>) -> Result<Self, MpcError> {
        let mut v = [0usize; 4];
        for x in &mut v {
            *x = rd.usize("batch-norm shape")?;
        }
        let [n, c, h, w] = v;
        Ok(BatchNormShape { n, c, h, w })
    }

    /// Values per channel.
    pub fn per_channel(&self) -> usize {
        self.n * self.h * self.w
    }
    /// Total values.
    pub fn len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    /// True if the input is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub(crate) fn channel_of(&self, i: usize) -> usize {
        (i / (self.h * self.w)) % self.c
    }
    /// `round(2^(log2_m + p) / m)`: at most `2^(p+1)`, exact in f64.
    pub(crate) fn inv_m<R: Ring>(&self, p: u32) -> R {
        let m = self.per_channel() as f64;
        R::from_u64((2f64.powi((self.log2_m() + p) as i32) / m).round() as u64)
    }
    /// Per-channel sums of an NCHW tensor.
    pub(crate) fn channel_sums<R: Ring>(&self, v: &[R]) -> Vec<R> {
        let mut sums = vec![R::ZERO; self.c];
        for (i, x) in v.iter().enumerate() {
            let ch = self.channel_of(i);
            sums[ch] = sums[ch].wadd(*x);
        }
        sums
    }
    pub(crate) fn log2_m(&self) -> u32 {
        usize::BITS - (self.per_channel().max(2) - 1).leading_zeros()
    }
}

/// The spline for `1/sqrt(v)`: `v` with `f` fractional bits, slopes with `f`,
/// intercepts and output with `2f`.
pub fn inv_sqrt_spline(f: u32) -> Spline {
    let s = f64::from(1u32 << f);
    let g = |v: f64| 1.0 / v.sqrt();
    let knots_real: Vec<f64> = (0..=128)
        .map(|j| 2f64.powf(-8.0 + f64::from(j) / 8.0))
        .collect();
    let knots: Vec<i64> = knots_real.iter().map(|p| (p * s).round() as i64).collect();
    let mut a = vec![0i64];
    let mut b = vec![(g(knots_real[0]) * s * s).round() as i64];
    for w in knots.windows(2) {
        let (p0, p1) = (w[0] as f64 / s, w[1] as f64 / s);
        // Secant slope, rounded to f bits; the intercept then centres the
        // rounded line between the two end points (halves the slope's
        // rounding error across the piece).
        let slope = ((g(p1) - g(p0)) / (p1 - p0) * s).round() / s;
        let icpt = ((g(p0) - slope * p0) + (g(p1) - slope * p1)) / 2.0;
        a.push((slope * s) as i64);
        b.push((icpt * s * s).round() as i64);
    }
    a.push(0);
    b.push((g(knots_real[128]) * s * s).round() as i64);
    Spline { knots, a, b }
}

/// Checks what [`BatchNormKey::generate`] needs: the 64-bit ring and
/// `1 <= n h w <= 2^17` (with `n c h w` representable).
fn check_params<R: Ring>(shape: BatchNormShape) -> Result<(), MpcError> {
    if R::BITS != 64 {
        return Err(MpcError::InvalidParameter(
            "batch-norm needs the 64-bit ring (its windows are 62 bits wide)".into(),
        ));
    }
    let per_channel = [shape.n, shape.h, shape.w]
        .iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d));
    let len = per_channel.and_then(|m| m.checked_mul(shape.c));
    match (per_channel, len) {
        (Some(m), Some(len)) if len > 0 && m <= 1 << 17 => Ok(()),
        _ => Err(MpcError::InvalidParameter(format!(
            "batch-norm shape {shape:?}: need 1 <= n h w <= 2^17"
        ))),
    }
}

/// One party's keys for one batch-norm layer (training forward).
#[derive(Debug, Clone)]
pub struct BatchNormKey<R: Ring> {
    pub(crate) party: Party,
    pub(crate) shape: BatchNormShape,
    pub(crate) t_mean: TruncKey<R>,
    pub(crate) sq: TripleKey<R>,
    pub(crate) t_sq: TruncKey<R>,
    pub(crate) t_var: TruncKey<R>,
    pub(crate) inv: SplineKey<R>,
    pub(crate) g: TripleKey<R>,
    pub(crate) t_g: TruncKey<R>,
    pub(crate) y: TripleKey<R>,
    pub(crate) t_y: TruncKey<R>,
}

/// Output of the batch-norm forward pass, with what its backward pass needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchNormOutput<R: Ring> {
    /// Shares of the normalised, scaled and shifted output (`f` bits).
    pub y: Vec<R>,
    /// Shares of `x - mu` (`f` bits).
    pub centered: Vec<R>,
    /// Shares of `1/sqrt(var + eps)` per channel (`2f` bits).
    pub inv_std: Vec<R>,
}

impl<R: Ring> BatchNormKey<R> {
    /// Dealer: keys for one batch-norm layer of `shape`.
    pub fn generate<G: Rng + CryptoRng + ?Sized>(
        shape: BatchNormShape,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        check_params::<R>(shape)?;
        let f = BN_FRAC_BITS;
        let e = shape.log2_m();
        let (c, len) = (shape.c, shape.len());
        let (a0, a1) = TruncKey::generate(e + PM, KT, c, rng)?;
        let (b0, b1) = TripleKey::generate(Bilinear::Mul { len }, rng)?;
        let (c0, c1) = TruncKey::generate(f, KT, len, rng)?;
        let (d0, d1) = TruncKey::generate(e + PV, KT, c, rng)?;
        let (s0, s1) = SplineKey::generate(&inv_sqrt_spline(f), KS, c, rng)?;
        let (g0, g1) = TripleKey::generate(Bilinear::Mul { len: c }, rng)?;
        let (h0, h1) = TruncKey::generate(2 * f, KT, c, rng)?;
        let (y0, y1) = TripleKey::generate(Bilinear::Mul { len }, rng)?;
        let (z0, z1) = TruncKey::generate(f, KT, len, rng)?;
        Ok((
            Self {
                party: Party::P0,
                shape,
                t_mean: a0,
                sq: b0,
                t_sq: c0,
                t_var: d0,
                inv: s0,
                g: g0,
                t_g: h0,
                y: y0,
                t_y: z0,
            },
            Self {
                party: Party::P1,
                shape,
                t_mean: a1,
                sq: b1,
                t_sq: c1,
                t_var: d1,
                inv: s1,
                g: g1,
                t_g: h1,
                y: y1,
                t_y: z1,
            },
        ))
    }

    /// Cost of one batch-norm layer of `shape`, without generating keys
    /// (see [`crate::cost`]): the nine gates of the table in the module docs,
    /// one round each; the key body is the shape and their nine bodies.
    pub fn cost(shape: BatchNormShape) -> Result<GateCost, MpcError> {
        check_params::<R>(shape)?;
        let f = BN_FRAC_BITS;
        let e = shape.log2_m();
        // Checked above: n h w and c fit, and so does their product.
        let (c, len) = (shape.c, shape.len());
        let head = GateCost {
            encoded_bytes: 4 * U64,
            ..GateCost::default()
        };
        head.then(TruncKey::<R>::cost(e + PM, KT, c)?)?
            .then(TripleKey::<R>::cost(Bilinear::Mul { len })?)?
            .then(TruncKey::<R>::cost(f, KT, len)?)?
            .then(TruncKey::<R>::cost(e + PV, KT, c)?)?
            .then(SplineKey::<R>::cost(&inv_sqrt_spline(f), KS, c)?)?
            .then(TripleKey::<R>::cost(Bilinear::Mul { len: c })?)?
            .then(TruncKey::<R>::cost(2 * f, KT, c)?)?
            .then(TripleKey::<R>::cost(Bilinear::Mul { len })?)?
            .then(TruncKey::<R>::cost(f, KT, len)?)
    }

    /// Key bytes held by this party.
    pub fn key_bytes(&self) -> usize {
        self.t_mean.key_bytes()
            + self.sq.key_bytes()
            + self.t_sq.key_bytes()
            + self.t_var.key_bytes()
            + self.inv.key_bytes()
            + self.g.key_bytes()
            + self.t_g.key_bytes()
            + self.y.key_bytes()
            + self.t_y.key_bytes()
    }

    /// The forward pass on shares of `x` (flat NCHW, `f` bits) and of the
    /// per-channel `gamma`, `beta` (`f` bits); `eps` is public.
    pub fn eval<T: Transport + ?Sized>(
        &self,
        t: &mut T,
        x: &[R],
        gamma: &[R],
        beta: &[R],
        eps: f64,
    ) -> Result<BatchNormOutput<R>, MpcError> {
        let s = self.shape;
        let (c, len, f) = (s.c, s.len(), BN_FRAC_BITS);
        for (what, got, want) in [
            ("input", x.len(), len),
            ("gamma", gamma.len(), c),
            ("beta", beta.len(), c),
        ] {
            if got != want {
                return Err(MpcError::SizeMismatch {
                    what,
                    expected: want,
                    got,
                });
            }
        }
        let p0 = self.party == Party::P0;
        let (inv_m, channel_sums) = (|p| s.inv_m::<R>(p), |v: &[R]| s.channel_sums(v));
        // 1: mean.
        let cm = inv_m(PM);
        let mu = self.t_mean.eval(
            t,
            &channel_sums(x)
                .iter()
                .map(|v| v.wmul(cm))
                .collect::<Vec<_>>(),
        )?;
        let xc: Vec<R> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v.wsub(mu[s.channel_of(i)]))
            .collect();
        // 2-3: squares.
        let xt = RingTensor::from_vec(&[len], xc.clone())?;
        let sq = self.sq.eval(t, &xt, &xt)?;
        let sq = self.t_sq.eval(t, sq.as_slice())?;
        // 4: variance + eps.
        let cv = inv_m(PV);
        let mut var = self.t_var.eval(
            t,
            &channel_sums(&sq)
                .iter()
                .map(|v| v.wmul(cv))
                .collect::<Vec<_>>(),
        )?;
        if p0 {
            let eps_fp = R::from_u64((eps * f64::from(1u32 << f)).round().max(0.0) as u64);
            for v in var.iter_mut() {
                *v = v.wadd(eps_fp);
            }
        }
        // 5: inverse square root (2f bits).
        let inv_std = self.inv.eval(t, &var)?;
        // 6-7: gamma * theta (f bits).
        let g = self.g.eval(
            t,
            &RingTensor::from_vec(&[c], gamma.to_vec())?,
            &RingTensor::from_vec(&[c], inv_std.clone())?,
        )?;
        let g = self.t_g.eval(t, g.as_slice())?;
        // 8-9: (gamma theta) * xc, truncated, + beta.
        let gb: Vec<R> = (0..len).map(|i| g[s.channel_of(i)]).collect();
        let y = self.y.eval(t, &RingTensor::from_vec(&[len], gb)?, &xt)?;
        let y = self.t_y.eval(t, y.as_slice())?;
        let y = y
            .iter()
            .enumerate()
            .map(|(i, v)| v.wadd(beta[s.channel_of(i)]))
            .collect();
        Ok(BatchNormOutput {
            y,
            centered: xc,
            inv_std,
        })
    }
}

// ------------------------------------------------ gate table: dispatch and codec

impl<R: Ring> KindKeys<R> for BatchNormKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::BatchNorm(shape) = *desc else {
            return Err(other_kind(desc, GateKind::BatchNorm));
        };
        Self::generate(shape, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::BatchNorm(shape) = *desc else {
            return Err(other_kind(desc, GateKind::BatchNorm));
        };
        Self::cost(shape)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    /// The shape, then truncation, triple, truncation, truncation, spline,
    /// triple, truncation, triple, truncation bodies.
    fn write_body(&self, out: &mut Vec<u8>) {
        self.shape.encode(out);
        self.t_mean.write(out);
        self.sq.write(out);
        self.t_sq.write(out);
        self.t_var.write(out);
        self.inv.write(out);
        self.g.write(out);
        self.t_g.write(out);
        self.y.write(out);
        self.t_y.write(out);
    }

    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::BatchNorm(shape) = *desc else {
            return Err(other_kind(desc, GateKind::BatchNorm));
        };
        if BatchNormShape::read(rd)? != shape {
            return Err(body_mismatch(desc, "batch-norm shape"));
        }
        if R::BITS != 64 {
            return Err(MpcError::Codec(
                "batch-norm keys exist for Z_2^64 only".into(),
            ));
        }
        Ok(BatchNormKey {
            party,
            shape,
            t_mean: TruncKey::read(rd, party)?,
            sq: TripleKey::read(rd, party)?,
            t_sq: TruncKey::read(rd, party)?,
            t_var: TruncKey::read(rd, party)?,
            inv: SplineKey::read(rd, party)?,
            g: TripleKey::read(rd, party)?,
            t_g: TruncKey::read(rd, party)?,
            y: TripleKey::read(rd, party)?,
            t_y: TruncKey::read(rd, party)?,
        })
    }
}
