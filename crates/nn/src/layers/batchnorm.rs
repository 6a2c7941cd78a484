//! `BatchNorm2d`.
//!
//! In inference it is folded into the convolution before it where there is
//! one ([`crate::Model::fold_batchnorm`]); elsewhere it runs as the exact
//! per-channel affine map `x * scale + shift` with
//! `scale = g / sqrt(v + eps)`, `shift = beta - m * scale`: one Beaver
//! product with the model owner's shared scale, then one truncation (not
//! ARIANN's approximation, which broke pre-trained models).
//!
//! # Training
//!
//! In training (a training store holds gamma, beta and the running
//! statistics, [`crate::Params::train_spec`]) it normalises with the
//! batch's statistics over the `M = N H W` values of each channel, as
//! PyTorch's `BatchNorm2d` in `train()` mode: 10 rounds forward, 6 backward
//! (1 without the input's gradient). Every product is of two `f`-bit values
//! and every truncation exact (63-bit window), rounding as
//! [`Config::rounding`] says. Forward:
//!
//! | round | step |
//! |---|---|
//! | 1 | `mu = (sum x) round(2^(e+p) / M) >> (e+p)` (`e = ceil log2 M`) |
//! | 2 | `xc^2` (Beaver), `xc = x - mu` local |
//! | 3 | `S = (sum xc^2) >> f`; running mean `(0.9 rm + 0.1 mu) >> f` |
//! | 4 | `var = S round(2^(e+p) / M) >> (e+p)`; running variance `(rv round(0.9 2^(e+p)) + S round(0.1 2^(e+p) / (M-1))) >> (e+p)` (unbiased) |
//! | 5 | `1/sqrt(var + eps)` by the `inv_sqrt` spline ([`SplineFn::InvSqrt`], `2f` bits out) |
//! | 6 | truncate: `rstd` |
//! | 7 | `xc * rstd` and `gamma * rstd` (one Beaver batch) |
//! | 8 | truncate: `x_hat` and `g = gamma * rstd` |
//! | 9 | `gamma * x_hat` (Beaver), `+ beta` |
//! | 10 | truncate: `y` |
//!
//! Backward, from `dy`: `dbeta = sum dy`, `dgamma = sum dy x_hat` (one
//! Beaver product, untruncated: a weight's gradient at `2f` bits); then
//! `dx = g (dy - mean(dy) - x_hat mean(dy x_hat))`: both means in one
//! truncation, `x_hat * mean(dy x_hat)` (Beaver), truncation of the
//! bracket, `g * (...)` (Beaver), truncation. The new running statistics
//! travel on the tape and come out of the backward pass under their names
//! (see [`crate::train_step`]).
//!
//! Precision: `1/M` carries `p = min(30, 62 - f - e - vb)` bits for the
//! statistics and `min(30, 58 - 2f - e)` for the backward's means (exact
//! when `M` is a power of two; otherwise refused below 8 and 4 bits), and
//! `rstd` has the spline's relative error (`1.22e-3` at `f = 16`).
//! Documented limits: channel means and variances below `2^vb`,
//! `vb = min(8, 62 - 2f - e)` (refused below 2: e.g. `M <= 2^14` at
//! `f = 20` for `vb = 8`, `M <= 2^18` for `vb = 4`), `|mean(dy x_hat)|,
//! |mean(dy)| < 16` (`2f + e <= 58`); variances below `2^-8` give `rstd = 16`
//! (the spline saturates: a channel that near constant is normalised less
//! than in float), above `2^8` `1/16`. Needs `M >= 2` and `16 <= f <= 24`.

use super::{
    Ctx, FloatCtx, FloatGrads, LayerOp, Tape, add_bias, add_float_grad, add_grad, chunks, encode,
    truncate,
};
use crate::error::NnError;
use crate::model::{BN_EPS, Config, Rounding};
use crate::params::Params;
use crate::weights::{Weights, param};
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::spline::SplineFn;
use ariann_ring::{FixedPoint, RingTensor};

/// Batch-norm; parameters `{name}.weight`, `.bias`, `.running_mean`,
/// `.running_var` (`[c]`, eps = 1e-5). In the inference parameter store
/// (fixed point) it holds its affine map: `{name}.weight` is the scale at
/// `f` bits, `{name}.bias` the shift at `2f`; in a training store its four
/// PyTorch tensors (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm2d {
    /// Parameter prefix.
    pub name: String,
    /// Channels.
    pub c: usize,
}

const TENSORS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

/// PyTorch's default momentum of the running statistics.
pub const BN_MOMENTUM: f64 = 0.1;

/// Window of the training batch-norm's truncations (inputs in
/// `[-2^62, 2^62)`).
const KT: u32 = 63;

/// What a training batch-norm's backward pass needs (shares).
#[derive(Debug)]
pub struct BnTape {
    /// The normalised input `(x - mu) / sqrt(var + eps)`, `f` bits.
    x_hat: Vec<u64>,
    /// `gamma / sqrt(var + eps)` per channel, `f` bits.
    g: Vec<u64>,
    /// The updated running mean and variance, `f` bits.
    running: [Vec<u64>; 2],
    /// Whether the backward pass returns the input's gradient.
    need_dx: bool,
}

/// Per-channel sums of a `[batch, c, plane]` tensor.
fn channel_sums<T: Copy + Default>(
    v: &[T],
    c: usize,
    plane: usize,
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let mut out = vec![T::default(); c];
    for (p, chunk) in v.chunks(plane.max(1)).enumerate() {
        let o = &mut out[p % c];
        for x in chunk {
            *o = add(*o, *x);
        }
    }
    out
}

/// A per-channel vector broadcast over a `[batch, c, plane]` tensor of `len`.
fn broadcast<T: Copy>(per: &[T], c: usize, plane: usize, len: usize) -> Vec<T> {
    (0..len).map(|i| per[(i / plane.max(1)) % c]).collect()
}

/// Exact truncation by `bits` in the batch-norm's window, rounding as the
/// configuration says, in bundles of at most `max_gate_elems`.
fn trunc(ctx: &mut Ctx<'_>, z: &[u64], bits: u32) -> Result<Vec<u64>, NnError> {
    let z = if ctx.cfg.rounding == Rounding::Nearest {
        ctx.gates
            .add_public(z, &vec![1u64 << (bits - 1); z.len()])?
    } else {
        z.to_vec()
    };
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(if ctx.cfg.rounding == Rounding::Stochastic {
            ctx.gates.truncate_stochastic(&z[r], bits, KT)?
        } else {
            ctx.gates.truncate(&z[r], bits, KT)?
        });
    }
    Ok(out)
}

/// Elementwise product of shares (one Beaver round).
fn mul(ctx: &mut Ctx<'_>, a: Vec<u64>, b: Vec<u64>) -> Result<Vec<u64>, NnError> {
    let len = a.len();
    Ok(ctx
        .gates
        .bilinear(
            Bilinear::Mul { len },
            &RingTensor::from_vec(&[len], a)?,
            &RingTensor::from_vec(&[len], b)?,
        )?
        .to_vec())
}

/// `round(v 2^bits)` as a ring element (a public constant).
fn constant(v: f64, bits: u32) -> Result<u64, NnError> {
    Ok(FixedPoint::new(bits).encode::<u64>(v)?)
}

/// `e = ceil(log2 m)`.
fn ceil_log2(m: usize) -> u32 {
    usize::BITS - (m.max(2) - 1).leading_zeros()
}

fn too_many(m: usize, f: u32) -> NnError {
    NnError::Training(format!(
        "a training batch-norm over {m} values per channel at {f} fractional bits: \
         the sums leave the 63-bit window of the truncations"
    ))
}

/// `e = ceil(log2 M)` and the bound `2^vb` on the channel means and
/// variances: the sum of `M` squares at `2f` bits stays in the window
/// (`2f + e + vb <= 62`), `vb <= 8`; refused below `vb = 2`.
fn stat_bounds(m: usize, f: u32) -> Result<(u32, u32), NnError> {
    let e = ceil_log2(m);
    let vb = 62u32
        .checked_sub(2 * f + e)
        .filter(|vb| *vb >= 2)
        .ok_or_else(|| too_many(m, f))?
        .min(8);
    Ok((e, vb))
}

/// Refuses a `1/M` with fewer than `min` bits of precision (`p`), unless
/// `M` is a power of two (exact).
fn check_precision(m: usize, f: u32, p: u32, min: u32) -> Result<(), NnError> {
    if p < min && !m.is_power_of_two() {
        return Err(NnError::Training(format!(
            "a training batch-norm over {m} values per channel at {f} fractional bits: \
             {p} bits of precision left for 1/M (needs {min}, or M a power of two)"
        )));
    }
    Ok(())
}

impl BatchNorm2d {
    /// The four float tensors `(g, beta, mean, var)`.
    fn stats<'a>(&self, w: &'a Weights) -> Result<[&'a [f32]; 4], NnError> {
        let mut out: [&[f32]; 4] = [&[]; 4];
        for (o, t) in out.iter_mut().zip(TENSORS) {
            *o = param(w, &format!("{}.{t}", self.name))?.1;
        }
        Ok(out)
    }

    /// The per-channel affine map `(scale, shift)` in f32.
    pub fn affine(&self, w: &Weights) -> Result<(Vec<f32>, Vec<f32>), NnError> {
        let [g, beta, m, v] = self.stats(w)?;
        let c = self.c;
        let scale: Vec<f64> = (0..c)
            .map(|i| f64::from(g[i]) / (f64::from(v[i]) + BN_EPS).sqrt())
            .collect();
        let shift = (0..c)
            .map(|i| (f64::from(beta[i]) - f64::from(m[i]) * scale[i]) as f32)
            .collect();
        Ok((scale.iter().map(|s| *s as f32).collect(), shift))
    }
}

impl LayerOp for BatchNorm2d {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        (input.len() == 3 && input[0] == self.c).then(|| input.to_vec())
    }

    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        for t in TENSORS {
            out.push((format!("{}.{t}", self.name), vec![self.c]));
        }
    }

    fn fixed_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        out.push((format!("{}.weight", self.name), vec![self.c]));
        out.push((format!("{}.bias", self.name), vec![self.c]));
    }

    fn encode_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        let (scale, shift) = self.affine(w)?;
        let c = self.c;
        out.insert(
            &format!("{}.weight", self.name),
            encode(cfg.frac_bits, &[c], &scale)?,
        );
        out.insert(
            &format!("{}.bias", self.name),
            encode(2 * cfg.frac_bits, &[c], &shift)?,
        );
        Ok(())
    }

    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let [g, b, m, v] = self.stats(ctx.weights)?;
        let c = self.c;
        let plane = shape[1] * shape[2];
        Ok(x.iter()
            .enumerate()
            .map(|(i, x)| {
                let ch = (i / plane) % c;
                (x - f64::from(m[ch])) / (f64::from(v[ch]) + BN_EPS).sqrt() * f64::from(g[ch])
                    + f64::from(b[ch])
            })
            .collect())
    }

    fn train_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        self.parameters(out);
    }

    /// gamma (`weight`) and the running statistics at `f` bits, beta
    /// (`bias`) at `2f`.
    fn encode_train_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        for t in TENSORS {
            let name = format!("{}.{t}", self.name);
            let (shape, v) = param(w, &name)?;
            let bits = if t == "bias" {
                2 * cfg.frac_bits
            } else {
                cfg.frac_bits
            };
            out.insert(&name, encode(bits, shape, v)?);
        }
        Ok(())
    }

    fn forward_float_train(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let [g, b, _, _] = self.stats(ctx.weights)?;
        let s = FloatStats::new(self.c, &x, shape)?;
        Ok(x.iter()
            .enumerate()
            .map(|(i, x)| {
                let ch = (i / s.plane) % self.c;
                (x - s.mean[ch]) * s.rstd[ch] * f64::from(g[ch]) + f64::from(b[ch])
            })
            .collect())
    }

    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let f = ctx.cfg.frac_bits;
        let c = self.c;
        let len = x.len();
        let plane = shape.iter().skip(1).product::<usize>().max(1);
        let m = len / c;
        if m < 2 || !(16..=24).contains(&f) {
            return Err(NnError::Training(format!(
                "a training batch-norm needs at least 2 values per channel (has {m}) and 16 to 24 fractional bits (has {f})"
            )));
        }
        let (e, vb) = stat_bounds(m, f)?;
        // |mu|, var < 2^vb: (f + e + p + vb)-bit products.
        let p = (62 - f - e - vb).min(30);
        check_precision(m, f, p, 8)?;
        let name = |t: &str| format!("{}.{t}", self.name);
        let gamma = ctx.params.get(&name("weight"))?.as_slice().to_vec();
        let beta = ctx.params.get(&name("bias"))?.as_slice().to_vec();
        let rm = ctx.params.get(&name("running_mean"))?.as_slice().to_vec();
        let rv = ctx.params.get(&name("running_var"))?.as_slice().to_vec();
        let scale = e + p;
        let inv_m = constant(1.0 / m as f64, scale)?;
        // 1: the mean.
        let sx = channel_sums(&x, c, plane, u64::wrapping_add);
        let smu = ctx.gates.mul_public(&sx, inv_m);
        let mu = trunc(ctx, &smu, scale)?;
        // 2: the centred input's squares.
        let mub = broadcast(&mu, c, plane, len);
        let xc: Vec<u64> = x
            .iter()
            .zip(&mub)
            .map(|(a, b)| a.wrapping_sub(*b))
            .collect();
        let sq = mul(ctx, xc.clone(), xc.clone())?;
        // 3: their sums at f bits; the running mean.
        let mut z = channel_sums(&sq, c, plane, u64::wrapping_add);
        let keep = constant(1.0 - BN_MOMENTUM, f)?;
        let take = constant(BN_MOMENTUM, f)?;
        let a = ctx.gates.mul_public(&rm, keep);
        let b = ctx.gates.mul_public(&mu, take);
        z.extend(a.iter().zip(&b).map(|(a, b)| a.wrapping_add(*b)));
        let t = trunc(ctx, &z, f)?;
        let (s2, rm_new) = t.split_at(c);
        // 4: the variance (biased) and the running variance (unbiased).
        let mut z = ctx.gates.mul_public(s2, inv_m);
        let a = ctx
            .gates
            .mul_public(&rv, constant(1.0 - BN_MOMENTUM, scale)?);
        let b = ctx
            .gates
            .mul_public(s2, constant(BN_MOMENTUM / (m - 1) as f64, scale)?);
        z.extend(a.iter().zip(&b).map(|(a, b)| a.wrapping_add(*b)));
        let t = trunc(ctx, &z, scale)?;
        let (var, rv_new) = t.split_at(c);
        // 5, 6: 1/sqrt(var + eps), 2f bits, truncated to f.
        let eps = constant(BN_EPS, f)?;
        let ve = ctx.gates.add_public(var, &vec![eps; c])?;
        let rstd = ctx
            .gates
            .spline(SplineFn::InvSqrt { f }, &ve, ctx.cfg.k_cmp)?;
        let rstd = trunc(ctx, &rstd, f)?;
        // 7, 8: x_hat and gamma * rstd.
        let mut a = xc;
        a.extend_from_slice(&gamma);
        let mut b = broadcast(&rstd, c, plane, len);
        b.extend_from_slice(&rstd);
        let prod = mul(ctx, a, b)?;
        let t = trunc(ctx, &prod, f)?;
        let (x_hat, g) = t.split_at(len);
        // 9, 10: y = gamma * x_hat + beta.
        let mut y = mul(ctx, broadcast(&gamma, c, plane, len), x_hat.to_vec())?;
        add_bias(&mut y, &beta, shape);
        let y = trunc(ctx, &y, f)?;
        let tape = BnTape {
            x_hat: x_hat.to_vec(),
            g: g.to_vec(),
            running: [rm_new.to_vec(), rv_new.to_vec()],
            need_dx,
        };
        Ok((y, Tape::BatchNorm(Box::new(tape))))
    }

    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        tape: Tape,
        dy: Vec<u64>,
        shape: &[usize],
        grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let Tape::BatchNorm(tape) = tape else {
            return Err(NnError::Training(
                "a batch-norm got another layer's tape".into(),
            ));
        };
        let BnTape {
            x_hat,
            g,
            running,
            need_dx,
        } = *tape;
        let f = ctx.cfg.frac_bits;
        let c = self.c;
        let len = dy.len();
        let plane = shape.iter().skip(1).product::<usize>().max(1);
        if x_hat.len() != len {
            return Err(NnError::Training(format!(
                "batch-norm gradient of {len} values for an input of {}",
                x_hat.len()
            )));
        }
        let m = len / c;
        let name = |t: &str| format!("{}.{t}", self.name);
        // dgamma = sum dy x_hat (2f bits), dbeta = sum dy (f bits).
        let p = mul(ctx, dy.clone(), x_hat.clone())?;
        let sp = channel_sums(&p, c, plane, u64::wrapping_add);
        let sdy = channel_sums(&dy, c, plane, u64::wrapping_add);
        add_grad(grads, &name("weight"), &[c], &sp)?;
        add_grad(grads, &name("bias"), &[c], &sdy)?;
        for (t, v) in ["running_mean", "running_var"].iter().zip(&running) {
            add_grad(grads, &name(t), &[c], v)?;
        }
        if !need_dx {
            return Ok(None);
        }
        // mean(dy x_hat) and mean(dy), both from 2f + e + q bits.
        let e = ceil_log2(m);
        // |mean(dy x_hat)|, |mean(dy)| < 16: (2f + e + q + 4)-bit products.
        let q = (58u32)
            .checked_sub(2 * f + e)
            .ok_or_else(|| too_many(m, f))?
            .min(30);
        check_precision(m, f, q, 4)?;
        let inv_m = constant(1.0 / m as f64, e + q)?;
        let mut z = ctx.gates.mul_public(&sp, inv_m);
        z.extend(ctx.gates.mul_public(&sdy, inv_m.wrapping_mul(1 << f)));
        let t = trunc(ctx, &z, f + e + q)?;
        let (mb, ma) = t.split_at(c);
        // u = dy - mean(dy) - x_hat * mean(dy x_hat), f bits.
        let r = mul(ctx, x_hat, broadcast(mb, c, plane, len))?;
        let mab = broadcast(ma, c, plane, len);
        let u: Vec<u64> = dy
            .iter()
            .zip(&mab)
            .zip(&r)
            .map(|((d, a), r)| (d.wrapping_sub(*a) << f).wrapping_sub(*r))
            .collect();
        let u = trunc(ctx, &u, f)?;
        // dx = g * u.
        let dx = mul(ctx, broadcast(&g, c, plane, len), u)?;
        Ok(Some(trunc(ctx, &dx, f)?))
    }

    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        let [g, _, rm, rv] = self.stats(ctx.weights)?;
        let c = self.c;
        let s = FloatStats::new(c, x, shape)?;
        let m = s.m as f64;
        let ch = |i: usize| (i / s.plane) % c;
        let x_hat: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| (v - s.mean[ch(i)]) * s.rstd[ch(i)])
            .collect();
        let dxh: Vec<f64> = dy.iter().zip(&x_hat).map(|(d, h)| d * h).collect();
        let dgamma = channel_sums(&dxh, c, s.plane, |a, b| a + b);
        let dbeta = channel_sums(&dy, c, s.plane, |a, b| a + b);
        let name = |t: &str| format!("{}.{t}", self.name);
        add_float_grad(grads, &name("weight"), &dgamma);
        add_float_grad(grads, &name("bias"), &dbeta);
        let k = 1.0 - BN_MOMENTUM;
        let rm_new: Vec<f64> = (0..c)
            .map(|i| k * f64::from(rm[i]) + BN_MOMENTUM * s.mean[i])
            .collect();
        let rv_new: Vec<f64> = (0..c)
            .map(|i| k * f64::from(rv[i]) + BN_MOMENTUM * s.var[i] * m / (m - 1.0))
            .collect();
        add_float_grad(grads, &name("running_mean"), &rm_new);
        add_float_grad(grads, &name("running_var"), &rv_new);
        Ok((0..x.len())
            .map(|i| {
                let q = ch(i);
                f64::from(g[q]) * s.rstd[q] * (dy[i] - dbeta[q] / m - x_hat[i] * dgamma[q] / m)
            })
            .collect())
    }

    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let z = self.forward_untruncated(ctx, x, shape)?;
        truncate(ctx, &z)
    }

    fn defers_truncation(&self) -> bool {
        true
    }

    fn forward_untruncated(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let scale = ctx.params.get(&format!("{}.weight", self.name))?;
        let shift = ctx.params.get(&format!("{}.bias", self.name))?;
        let len = x.len();
        let plane = shape.iter().skip(1).product::<usize>().max(1);
        let c = self.c;
        let s = scale.as_slice();
        let mut per_channel = Vec::with_capacity(len);
        for p in 0..len.div_ceil(plane) {
            let n = plane.min(len - p * plane);
            per_channel.extend(std::iter::repeat_n(s[p % c], n));
        }
        let mut z = ctx
            .gates
            .bilinear(
                Bilinear::Mul { len },
                &RingTensor::from_vec(&[len], x)?,
                &RingTensor::from_vec(&[len], per_channel)?,
            )?
            .to_vec();
        add_bias(&mut z, shift.as_slice(), shape);
        Ok(z)
    }
}

/// A batch's per-channel statistics in float (biased variance).
struct FloatStats {
    plane: usize,
    m: usize,
    mean: Vec<f64>,
    var: Vec<f64>,
    rstd: Vec<f64>,
}

impl FloatStats {
    fn new(c: usize, x: &[f64], shape: &[usize]) -> Result<Self, NnError> {
        let plane = shape.iter().skip(1).product::<usize>().max(1);
        let m = x.len() / c.max(1);
        if m < 2 {
            return Err(NnError::Training(format!(
                "a training batch-norm needs at least 2 values per channel (has {m})"
            )));
        }
        let mean: Vec<f64> = channel_sums(x, c, plane, |a, b| a + b)
            .iter()
            .map(|s| s / m as f64)
            .collect();
        let sq: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| (v - mean[(i / plane) % c]).powi(2))
            .collect();
        let var: Vec<f64> = channel_sums(&sq, c, plane, |a, b| a + b)
            .iter()
            .map(|s| s / m as f64)
            .collect();
        let rstd = var.iter().map(|v| 1.0 / (v + BN_EPS).sqrt()).collect();
        Ok(FloatStats {
            plane,
            m,
            mean,
            var,
            rstd,
        })
    }
}
