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
//!
//! The key serves two gates: the `spline` gate kind of the
//! [gate table](crate::table) ([`GateDesc::Spline`]), for a closed set of
//! named public functions ([`SplineFn`]: `e^u` and `1/s`, for a softmax;
//! `1/(sqrt(v) + eps)`, for Adam; `1/sqrt(v)`, for a training batch-norm),
//! and the inverse square root inside the batch-norm gate.

use crate::bundle::GateDesc;
use crate::codec::{Reader, put_fss, put_ring, put_u32, put_u64, put_usize};
use crate::cost::{self, GateCost, U32, U64};
use crate::error::MpcError;
use crate::gates::util::{check_len, check_party, split};
use crate::open::{low_mask, open};
use crate::table::{GateKind, KindKeys, SplineKind, body_mismatch, other_kind};
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

// ------------------------------------------------ named public functions

/// Knots of [`SplineFn::Exp`], in units of `2^-6` (`-T = -457/64 = -7.140625`).
///
/// Chosen once, offline, greedily from 0 downwards on the `1/64` grid: each
/// piece is the longest whose best line is within `2^-10.3` of `e^u` in max
/// norm (the interpolation error of a piece of width `h` ending at `u` is
/// about `h^2/16 e^u` for the best line, half of the secant's `h^2/8 e^u`),
/// and `T = 10.3 ln 2` rounded up to the grid (`e^-T < 2^-10.3`). Fixed here so
/// that the dealer and the parties build the same spline.
const EXP_KNOTS_64THS: [i64; 19] = [
    -457, -336, -263, -217, -183, -156, -134, -115, -99, -85, -72, -60, -49, -39, -30, -22, -14,
    -7, 0,
];

/// Knots of [`SplineFn::Recip`] per octave.
const RECIP_PER_OCTAVE: usize = 6;

/// `2^(1/6)`: the ratio of consecutive knots of [`SplineFn::Recip`].
const RECIP_RATIO: f64 = 1.122_462_048_309_373;

/// Fractional bits of the input of [`SplineFn::RecipSqrt`] (fixed).
pub const RECIP_SQRT_IN_BITS: u32 = 32;
/// Fractional bits of the slopes of [`SplineFn::RecipSqrt`].
pub const RECIP_SQRT_SLOPE_BITS: u32 = 14;
/// Fractional bits of the output of [`SplineFn::RecipSqrt`]
/// (`RECIP_SQRT_IN_BITS + RECIP_SQRT_SLOPE_BITS`).
pub const RECIP_SQRT_OUT_BITS: u32 = RECIP_SQRT_IN_BITS + RECIP_SQRT_SLOPE_BITS;
/// `log2` of the bottom of the domain of [`SplineFn::RecipSqrt`]
/// (`v = 2^-30`, `sqrt v = 2^-15`).
pub const RECIP_SQRT_LOW_LOG2: i32 = -30;
/// `log2` of the top of the domain of [`SplineFn::RecipSqrt`] (`v = 16`).
pub const RECIP_SQRT_HIGH_LOG2: i32 = 4;
/// Knots of [`SplineFn::InvSqrt`] per octave.
const INV_SQRT_PER_OCTAVE: usize = 8;

/// `2^(1/8)`: the ratio of consecutive knots of [`SplineFn::InvSqrt`].
const INV_SQRT_RATIO: f64 = 1.090_507_732_665_257_7;

/// The domain of [`SplineFn::InvSqrt`] is `[2^-INV_SQRT_OCTAVES, 2^INV_SQRT_OCTAVES]`.
pub const INV_SQRT_OCTAVES: i32 = 8;

/// Smallest fractional bit count of [`SplineFn::InvSqrt`] (below, the
/// slopes' rounding to `f` bits at the top of the domain costs more than
/// `2^-8`: `1.9e-2` at `f = 12`, `3.9e-3` at 14).
pub const INV_SQRT_MIN_FRAC_BITS: u32 = 16;

/// Smallest fractional bit count of a [`SplineFn`].
pub const SPLINE_FN_MIN_FRAC_BITS: u32 = 6;
/// Largest fractional bit count of a [`SplineFn`].
pub const SPLINE_FN_MAX_FRAC_BITS: u32 = 24;

/// A public function of the `spline` gate ([`GateDesc::Spline`]): a closed
/// set of named piecewise-linear approximations, built by
/// [`SplineFn::spline`]. Every function takes its input with `f` fractional
/// bits (`6 <= f <= 24`) and returns its output with `2 f` (slopes with `f`
/// fractional bits, intercepts with `2 f`): truncate by `f` afterwards to
/// come back to `f` bits.
///
/// The coefficients are computed from `f64` by fixed formulas using only
/// `+ - * /`, comparisons and `floor`/`ceil`/`round` (IEEE 754 makes them
/// identical on every platform, as is `sqrt`; `exp` is evaluated by a fixed
/// polynomial, not the platform's libm), so the dealer, the parties and the cleartext
/// backend agree on every coefficient.
///
/// Accuracy, measured against `f64` on every input of the grid (every 64th
/// at `f = 24`; `crates/mpc/tests/spline.rs` checks `f = 16` and `20`
/// against the bounds `2^-10` and `2^-8`):
///
/// | function | knots | max error, f = 12 | f = 16 | f = 20 | f = 24 |
/// |---|---|---|---|---|---|
/// | `exp`, absolute on `u <= 0` | 19 | 7.96e-4 | 7.92e-4 | 7.92e-4 | 7.92e-4 |
/// | `recip`, `max = 10`, relative on `[1, 10]` | 21 | 1.84e-3 | 1.78e-3 | 1.77e-3 | 1.77e-3 |
/// | `recip`, largest `max` (16, 64, 256, 1024) | 25, 37, 49, 61 | 2.32e-3 | 2.32e-3 | 2.32e-3 | 2.32e-3 |
/// | `inv_sqrt`, relative on `[2^-8, 2^8]` | 129 | (`f >= 16`) | 1.22e-3 | 3.97e-4 | 3.61e-4 |
///
/// (`2^-10 = 9.77e-4`, `2^-8 = 3.91e-3`.) The `exp` error is the cut-off's,
/// `e^-T = 2^-10.30`, and the pieces' is as large (at most `2^-10.3` before
/// the coefficients are rounded, `2^-10.295` after at `f = 12`). The
/// `recip` error is `2^-9.14` from the interpolation, up to `2^-8.75` at
/// the largest `max` from the rounding of the slopes to `f` bits.
///
/// [`SplineFn::RecipSqrt`] (Adam's denominator) has its own fixed
/// precisions (input at 32 fractional bits, output at 46) and its own
/// accuracy (relative error below `2^-5` on its domain `[2^-30, 16]`;
/// `crates/mpc/tests/spline.rs` measures it).
///
/// Serialized (serde) with its name from [`SplineKind`] under `"fn"`, beside
/// its fields: `{"fn": "exp", "f": 16}`, `{"fn": "recip", "f": 16, "max": 10}`,
/// `{"fn": "recip_sqrt", "eps": 43}`, `{"fn": "inv_sqrt", "f": 16}`.
/// Binary encoding: [`SplineFn::encode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "fn", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplineFn {
    /// `e^u` for `u <= 0` with `f` fractional bits: 0 below the cut-off
    /// `-T = -7.140625` (where `e^u < 2^-10.3`), 18 pieces on `[-T, 0]`,
    /// and 1 for `u >= 0` (it saturates: `e^u` is not approximated above 0,
    /// which a softmax never asks after subtracting the row maximum).
    /// 19 knots (`-T`, ..., `0`, on the `2^-6` grid); max absolute error
    /// below `2^-10` on `u <= 0` (`2^-10.3` measured).
    Exp {
        /// Fractional bits of the input (`6..=24`).
        f: u32,
    },
    /// `1/s` for `s` in `[1, max]` with `f` fractional bits: 1 below 1 (any
    /// `s < 1`, zero and negative included) and `1/max` above `max`.
    /// Geometric knots `2^(j/6)` (6 per octave) below `max`, then `max`:
    /// `ceil(6 log2 max) + 1` knots (21 for `max = 10`). Max relative error
    /// below `2^-8` on `[1, max]` (`2^-8.75` measured). Needs `2 <= max` and `max^2 <= 2^(f-4)` (the slopes have
    /// `f` fractional bits, and their rounding error grows like `max^2 2^-f`):
    /// `max <= 16` at `f = 12`, `64` at 16, `256` at 20, `1024` at 24.
    Recip {
        /// Fractional bits of the input (`6..=24`).
        f: u32,
        /// The top of the domain (e.g. the number of classes of a softmax).
        max: u32,
    },
    /// `1/(sqrt(v) + eps)` (Adam's denominator) for `v` in `[2^-30, 16]`,
    /// input `v` with 32 fractional bits ([`RECIP_SQRT_IN_BITS`]), slopes
    /// with 14 ([`RECIP_SQRT_SLOPE_BITS`]), output with 46
    /// ([`RECIP_SQRT_OUT_BITS`]); `eps` in units of `2^-32`. Below `2^-30`
    /// (zero and negative included) the value at `2^-30`, i.e. the
    /// denominator is at least `2^-15 + eps`; above 16, `1/(4 + eps)`.
    /// Knots `2^e` for `e = -30, ..., 4` (one per octave of `v`, 35 knots);
    /// max relative error `2^-5.2` (the interpolation's, measured in
    /// `crates/mpc/tests/spline.rs`). The output is below `2^15` (`2^61` as
    /// a ring element): the gate needs `Z_2^64`, and a window `k >= 40`
    /// holds inputs up to `2^(k-34)` (`64` at `k = 40`).
    RecipSqrt {
        /// `eps` in units of `2^-32` (`eps = 1e-8` is 43).
        eps: u32,
    },
    /// `1/sqrt(v)` for `v` in `[2^-8, 2^8]` with `f` fractional bits
    /// (`16 <= f <= 24`; 64-bit ring only: the output, up to 16, has `2f`
    /// fractional bits): `16` below `2^-8` (zero and negative inputs
    /// included) and `1/16` above `2^8`. Geometric knots `2^(j/8)` (8 per
    /// octave), 129 knots. Max relative error on `[2^-8, 2^8]`, measured on
    /// every input of the grid: `1.22e-3` at `f = 16` (`2^-9.7`, at the top
    /// of the domain, from the rounding of the slopes to `f` bits),
    /// `3.97e-4` at `f = 20`, `3.61e-4` at 24 (the interpolation's own).
    /// The inverse standard deviation of a training batch-norm.
    InvSqrt {
        /// Fractional bits of the input (`16..=24`).
        f: u32,
    },
}

impl core::fmt::Display for SplineFn {
    /// E.g. `exp(f=16)` or `recip(f=16, max=10)`.
    fn fmt(&self, fm: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let name = self.kind().name();
        match *self {
            SplineFn::Exp { f } => write!(fm, "{name}(f={f})"),
            SplineFn::Recip { f, max } => write!(fm, "{name}(f={f}, max={max})"),
            SplineFn::RecipSqrt { eps } => write!(fm, "{name}(eps={eps})"),
            SplineFn::InvSqrt { f } => write!(fm, "{name}(f={f})"),
        }
    }
}

impl SplineFn {
    /// The function's kind (its row of [`SplineKind`]).
    pub fn kind(&self) -> SplineKind {
        match self {
            SplineFn::Exp { .. } => SplineKind::Exp,
            SplineFn::Recip { .. } => SplineKind::Recip,
            SplineFn::RecipSqrt { .. } => SplineKind::RecipSqrt,
            SplineFn::InvSqrt { .. } => SplineKind::InvSqrt,
        }
    }

    /// Fractional bits of the input (the output has twice as many, except
    /// for [`SplineFn::RecipSqrt`]: [`SplineFn::out_bits`]).
    pub fn frac_bits(&self) -> u32 {
        match *self {
            SplineFn::Exp { f } | SplineFn::Recip { f, .. } | SplineFn::InvSqrt { f } => f,
            SplineFn::RecipSqrt { .. } => RECIP_SQRT_IN_BITS,
        }
    }

    /// Fractional bits of the output: `2 f`, or [`RECIP_SQRT_OUT_BITS`].
    pub fn out_bits(&self) -> u32 {
        match *self {
            SplineFn::Exp { f } | SplineFn::Recip { f, .. } | SplineFn::InvSqrt { f } => 2 * f,
            SplineFn::RecipSqrt { .. } => RECIP_SQRT_OUT_BITS,
        }
    }

    /// Checks the parameters: `6 <= f <= 24`; for [`SplineFn::Recip`],
    /// `2 <= max` and `max^2 <= 2^(f-4)` (any `eps` of
    /// [`SplineFn::RecipSqrt`] is valid).
    pub fn validate(&self) -> Result<(), MpcError> {
        if let SplineFn::RecipSqrt { .. } = self {
            return Ok(());
        }
        let f = self.frac_bits();
        if !(SPLINE_FN_MIN_FRAC_BITS..=SPLINE_FN_MAX_FRAC_BITS).contains(&f) {
            return Err(MpcError::InvalidParameter(format!(
                "spline function {self}: f must be in \
                 {SPLINE_FN_MIN_FRAC_BITS}..={SPLINE_FN_MAX_FRAC_BITS}"
            )));
        }
        if let SplineFn::InvSqrt { f } = *self
            && f < INV_SQRT_MIN_FRAC_BITS
        {
            return Err(MpcError::InvalidParameter(format!(
                "spline function {self}: f must be at least {INV_SQRT_MIN_FRAC_BITS}"
            )));
        }
        if let SplineFn::Recip { max, .. } = *self {
            let sq = u64::from(max) * u64::from(max);
            if max < 2 || sq > 1u64 << (f - 4) {
                return Err(MpcError::InvalidParameter(format!(
                    "spline function {self}: need 2 <= max and max^2 <= 2^(f-4) = {}",
                    1u64 << (f - 4)
                )));
            }
        }
        Ok(())
    }

    /// The spline of the function (validated first): knots with `f`
    /// fractional bits, slopes with `f`, intercepts with `2 f`. Each piece
    /// between two knots is the line closest to the function in max norm
    /// whose slope is the secant's rounded down or up to `f` bits (whichever
    /// is closer), with the intercept half-way between the largest and
    /// smallest gaps (computed on the real interval, so the bound holds for
    /// every input between the knots).
    pub fn spline(&self) -> Result<Spline, MpcError> {
        self.validate()?;
        let f = self.frac_bits();
        let s = pow2(f as i32);
        let one = 1i64 << (2 * f);
        let (knots, g, dg, low, high): (Vec<i64>, Curve, Curve, i64, i64) = match *self {
            SplineFn::Exp { .. } => (
                EXP_KNOTS_64THS.iter().map(|q| q << (f - 6)).collect(),
                exp_fixed,
                exp_fixed,
                0,
                one,
            ),
            SplineFn::Recip { max, .. } => {
                let top = i64::from(max) << f;
                let mut ratios = [1.0f64; RECIP_PER_OCTAVE];
                for i in 1..RECIP_PER_OCTAVE {
                    ratios[i] = ratios[i - 1] * RECIP_RATIO;
                }
                let mut knots = Vec::new();
                // max <= 2^10 (validated): at most 10 octaves.
                'octaves: for e in 0..32 {
                    for c in ratios {
                        let p = (c * pow2(e) * s).round() as i64;
                        if p >= top {
                            break 'octaves;
                        }
                        knots.push(p);
                    }
                }
                knots.push(top);
                let m = i64::from(max);
                (
                    knots,
                    |x| 1.0 / x,
                    |x| -1.0 / (x * x),
                    one,
                    (one + m / 2) / m,
                )
            }
            // Its own precisions and knots.
            SplineFn::RecipSqrt { eps } => return recip_sqrt_spline(eps),
            SplineFn::InvSqrt { .. } => {
                let mut ratios = [1.0f64; INV_SQRT_PER_OCTAVE];
                for i in 1..INV_SQRT_PER_OCTAVE {
                    ratios[i] = ratios[i - 1] * INV_SQRT_RATIO;
                }
                let mut knots = Vec::new();
                for e in -INV_SQRT_OCTAVES..INV_SQRT_OCTAVES {
                    for c in ratios {
                        knots.push((c * pow2(e) * s).round() as i64);
                    }
                }
                knots.push((pow2(INV_SQRT_OCTAVES) * s) as i64);
                // sqrt is correctly rounded (IEEE 754), like + - * /.
                (
                    knots,
                    |x| 1.0 / x.sqrt(),
                    |x| -0.5 / (x * x.sqrt()),
                    one << (INV_SQRT_OCTAVES / 2),
                    one >> (INV_SQRT_OCTAVES / 2),
                )
            }
        };
        let mut a = Vec::with_capacity(knots.len() + 1);
        let mut b = Vec::with_capacity(knots.len() + 1);
        a.push(0);
        b.push(low);
        for w in knots.windows(2) {
            let (ai, bi) = fit_piece(g, dg, w[0] as f64 / s, w[1] as f64 / s, s);
            a.push(ai);
            b.push(bi);
        }
        a.push(0);
        b.push(high);
        let spline = Spline { knots, a, b };
        spline.validate()?;
        Ok(spline)
    }

    /// The spline for a gate on `Z_2^BITS` with a `k`-bit window: also
    /// checks `3 <= k <= BITS` (as [`SplineKey::generate`]), that the output
    /// `1.0` at `2 f` bits is a positive ring element (`2 f + 2 <= BITS`:
    /// `f <= 15` on `Z_2^32`) and that every knot `p` has `|p| < 2^(k-2)`
    /// (so that, for inputs `|x| < 2^(k-2)`, `x - p` stays in the window).
    pub fn gate_spline<R: Ring>(&self, k: u32) -> Result<Spline, MpcError> {
        let spline = self.spline()?;
        let out = self.out_bits();
        if out + 2 > R::BITS || (out > 2 * self.frac_bits() && R::BITS < 64) {
            return Err(MpcError::InvalidParameter(format!(
                "spline function {self}: the output has {out} fractional bits, too many for Z_2^{}",
                R::BITS
            )));
        }
        // The output's top is 16 (`1/sqrt(2^-8)`) for `inv_sqrt`.
        if let SplineFn::InvSqrt { f } = *self
            && 2 * f + 6 > R::BITS
        {
            return Err(MpcError::InvalidParameter(format!(
                "spline function {self}: the output (up to 16) has {} fractional bits, too many for Z_2^{}",
                2 * f,
                R::BITS
            )));
        }
        check_params::<R>(&spline, k)?;
        let bound = 1i128 << (k - 2);
        if spline.knots.iter().any(|p| i128::from(*p).abs() >= bound) {
            return Err(MpcError::InvalidParameter(format!(
                "spline function {self}: knots outside the {k}-bit window (need |p| < 2^{})",
                k - 2
            )));
        }
        Ok(spline)
    }

    /// Appends the function's binary encoding: its kind number (one byte,
    /// [`SplineKind`]), then `f` (`u32` LE), then for `recip` `max` (`u32` LE);
    /// for `recip_sqrt` only `eps` (`u32` LE).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind().number());
        match *self {
            SplineFn::RecipSqrt { eps } => put_u32(out, eps),
            SplineFn::Exp { f } => put_u32(out, f),
            SplineFn::Recip { f, max } => {
                put_u32(out, f);
                put_u32(out, max);
            }
            SplineFn::InvSqrt { f } => put_u32(out, f),
        }
    }

    /// Reads a function written by [`SplineFn::encode`] (not validated).
    pub(crate) fn read(rd: &mut Reader<'_>) -> Result<Self, MpcError> {
        let t = rd.u8("spline function kind")?;
        let kind = SplineKind::from_number(t)
            .ok_or_else(|| MpcError::Codec(format!("unknown spline function kind {t}")))?;
        Ok(match kind {
            SplineKind::Exp => SplineFn::Exp {
                f: rd.u32("exp f")?,
            },
            SplineKind::Recip => SplineFn::Recip {
                f: rd.u32("recip f")?,
                max: rd.u32("recip max")?,
            },
            SplineKind::RecipSqrt => SplineFn::RecipSqrt {
                eps: rd.u32("recip_sqrt eps")?,
            },
            SplineKind::InvSqrt => SplineFn::InvSqrt {
                f: rd.u32("inv_sqrt f")?,
            },
        })
    }
}

/// A real function (or its derivative) a [`SplineFn`] approximates.
type Curve = fn(f64) -> f64;

/// `2^e` exactly (for `-1022 <= e <= 1023`).
fn pow2(e: i32) -> f64 {
    f64::from_bits(((1023 + i64::from(e)) as u64) << 52)
}

/// `e^x` for `-700 < x < 700` from `+ - * /` only (identical on every IEEE
/// 754 platform, unlike the libm's): `x = n ln 2 + r` (Cody-Waite, `|r| <=
/// ln 2 / 2`), a degree-16 Taylor polynomial of `e^r` (truncation below
/// `1e-22`), times `2^n`. Within a few ulp of `exp`.
fn exp_fixed(x: f64) -> f64 {
    // fdlibm's split of ln 2 (the high part has 32 trailing zero bits, so
    // n * LN2_HI is exact for |n| < 2^11).
    const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
    const INV_LN2: f64 = core::f64::consts::LOG2_E;
    let n = (x * INV_LN2).round();
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.0;
    for i in (1..=16).rev() {
        p = 1.0 + p * r / f64::from(i);
    }
    p * pow2(n as i32)
}

/// The spline of [`SplineFn::RecipSqrt`]: knots `2^e` (`e` from
/// [`RECIP_SQRT_LOW_LOG2`] to [`RECIP_SQRT_HIGH_LOG2`]) at 32 fractional
/// bits, each piece fitted as in [`SplineFn::spline`] (slopes at 14 bits,
/// intercepts at 46), constant outside the knots.
fn recip_sqrt_spline(eps: u32) -> Result<Spline, MpcError> {
    let e = f64::from(eps) * pow2(-(RECIP_SQRT_IN_BITS as i32));
    let g = move |v: f64| 1.0 / (v.sqrt() + e);
    // v.sqrt() is correctly rounded by IEEE 754: the same on every platform.
    let dg = move |v: f64| {
        let r = v.sqrt();
        -1.0 / (2.0 * r * (r + e) * (r + e))
    };
    let knots: Vec<i64> = (RECIP_SQRT_LOW_LOG2..=RECIP_SQRT_HIGH_LOG2)
        .map(|k| 1i64 << (k + RECIP_SQRT_IN_BITS as i32))
        .collect();
    let sa = pow2(RECIP_SQRT_SLOPE_BITS as i32);
    let sb = pow2(RECIP_SQRT_OUT_BITS as i32);
    let si = pow2(RECIP_SQRT_IN_BITS as i32);
    let at = |v: f64| (g(v) * sb).round() as i64;
    let mut a = vec![0];
    let mut b = vec![at(pow2(RECIP_SQRT_LOW_LOG2))];
    for w in knots.windows(2) {
        let (ai, bi) = fit_piece_scaled(&g, &dg, w[0] as f64 / si, w[1] as f64 / si, sa, sb);
        a.push(ai);
        b.push(bi);
    }
    a.push(0);
    b.push(at(pow2(RECIP_SQRT_HIGH_LOG2)));
    let spline = Spline { knots, a, b };
    spline.validate()?;
    Ok(spline)
}

/// The line for the convex `g` (derivative `dg`) on `[x0, x1]`, as integers:
/// slope with `log2 s` fractional bits, intercept with twice as many.
fn fit_piece(g: Curve, dg: Curve, x0: f64, x1: f64, s: f64) -> (i64, i64) {
    fit_piece_scaled(&g, &dg, x0, x1, s, s * s)
}

/// [`fit_piece`] with the slope scaled by `sa` and the intercept by `sb`.
fn fit_piece_scaled(
    g: &dyn Fn(f64) -> f64,
    dg: &dyn Fn(f64) -> f64,
    x0: f64,
    x1: f64,
    s: f64,
    sb: f64,
) -> (i64, i64) {
    let secant = (g(x1) - g(x0)) / (x1 - x0) * s;
    let mut best: Option<(f64, i64, f64)> = None;
    for a_int in [secant.floor(), secant.ceil()] {
        let a = a_int / s;
        let h = |x: f64| g(x) - a * x;
        let dh = |x: f64| dg(x) - a;
        // h is convex: its max is at an end, its min where dh changes sign.
        let hmax = h(x0).max(h(x1));
        let hmin = if dh(x0) >= 0.0 {
            h(x0)
        } else if dh(x1) <= 0.0 {
            h(x1)
        } else {
            let (mut lo, mut hi) = (x0, x1);
            for _ in 0..64 {
                let mid = (lo + hi) / 2.0;
                if dh(mid) < 0.0 {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            h((lo + hi) / 2.0).min(h(x0)).min(h(x1))
        };
        let err = (hmax - hmin) / 2.0;
        if best.is_none_or(|(e, _, _)| err < e) {
            best = Some((err, a_int as i64, (hmax + hmin) / 2.0));
        }
    }
    // Both candidates are finite: `best` is set.
    let (_, a, b) = best.unwrap_or((0.0, 0, 0.0));
    (a, (b * sb).round() as i64)
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

// ------------------------------------------------ codec (the spline gate, and inside batch-norm keys)

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

// ------------------------------------------------ gate table: dispatch

impl<R: Ring> KindKeys<R> for SplineKey<R> {
    fn deal<G: Rng + CryptoRng + ?Sized>(
        desc: &GateDesc,
        rng: &mut G,
    ) -> Result<(Self, Self), MpcError> {
        let GateDesc::Spline { func, m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Spline));
        };
        Self::generate(&func.gate_spline::<R>(k)?, k, m, rng)
    }

    fn cost(desc: &GateDesc) -> Result<GateCost, MpcError> {
        let GateDesc::Spline { func, m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Spline));
        };
        Self::cost(&func.gate_spline::<R>(k)?, k, m)
    }

    fn key_size(&self) -> usize {
        self.key_bytes()
    }

    fn write_body(&self, out: &mut Vec<u8>) {
        self.write(out);
    }

    /// The body, checked against the descriptor: its window, its element
    /// count and its spline (the function's, coefficient for coefficient).
    fn read_body(rd: &mut Reader<'_>, party: Party, desc: &GateDesc) -> Result<Self, MpcError> {
        let GateDesc::Spline { func, m, k } = *desc else {
            return Err(other_kind(desc, GateKind::Spline));
        };
        let spline = func
            .gate_spline::<R>(k)
            .map_err(|e| MpcError::Codec(format!("{desc}: {e}")))?;
        let key = Self::read(rd, party)?;
        if key.k != k || key.len() != m {
            return Err(body_mismatch(desc, "window or element count"));
        }
        if key.spline != spline {
            return Err(body_mismatch(desc, "spline coefficients"));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_fixed_is_within_a_few_ulp_of_exp() {
        let mut x = -40.0f64;
        while x <= 2.0 {
            let (a, b) = (exp_fixed(x), x.exp());
            assert!(((a - b) / b).abs() < 1e-15, "x = {x}: {a} vs {b}");
            x += 0.000_731;
        }
        assert_eq!(exp_fixed(0.0), 1.0);
    }

    #[test]
    fn pow2_is_exact() {
        let mut p = 1.0f64;
        for e in 0..60 {
            assert_eq!(pow2(e), p);
            assert_eq!(pow2(-e), 1.0 / p);
            p *= 2.0;
        }
    }

    #[test]
    fn fit_piece_is_no_worse_than_the_rounded_secant() {
        // On [-1, -0.5] at f = 16: the chosen line's max error over a fine
        // grid is at most the secant's (rounded) through the end points.
        let s = pow2(16);
        let (x0, x1) = (-1.0, -0.5);
        let (a, b) = fit_piece(exp_fixed, exp_fixed, x0, x1, s);
        let (a, b) = (a as f64 / s, b as f64 / (s * s));
        let sa = ((x1.exp() - x0.exp()) / (x1 - x0) * s).round() / s;
        let sb = x0.exp() - sa * x0;
        let (mut fit, mut secant) = (0.0f64, 0.0f64);
        for i in 0..=1000 {
            let x = x0 + (x1 - x0) * f64::from(i) / 1000.0;
            fit = fit.max((a * x + b - x.exp()).abs());
            secant = secant.max((sa * x + sb - x.exp()).abs());
        }
        assert!(fit <= secant / 1.9, "{fit} vs {secant}");
    }
}
