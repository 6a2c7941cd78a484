//! `BatchNorm2d` in inference mode. Folded into the convolution before it
//! where there is one ([`crate::Model::fold_batchnorm`]); elsewhere it runs
//! as the exact per-channel affine map `x * scale + shift` with
//! `scale = g / sqrt(v + eps)`, `shift = beta - m * scale`: one Beaver
//! product with the model owner's shared scale, then one truncation (not
//! ARIANN's approximation, which broke pre-trained models).

use super::{Ctx, FloatCtx, LayerOp, add_bias, encode, truncate};
use crate::error::NnError;
use crate::model::{BN_EPS, Config};
use crate::params::Params;
use crate::weights::{Weights, param};
use ariann_mpc::gates::beaver::Bilinear;
use ariann_ring::RingTensor;

/// Inference batch-norm; parameters `{name}.weight`, `.bias`,
/// `.running_mean`, `.running_var` (`[c]`, eps = 1e-5). In the parameter
/// store (fixed point) it holds its affine map: `{name}.weight` is the scale
/// at `f` bits, `{name}.bias` the shift at `2f`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNorm2d {
    /// Parameter prefix.
    pub name: String,
    /// Channels.
    pub c: usize,
}

const TENSORS: [&str; 4] = ["weight", "bias", "running_mean", "running_var"];

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
