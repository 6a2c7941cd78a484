//! `Linear`: `y = x W^T + b`.

use super::{Ctx, FloatCtx, LayerOp, add_bias, encode_weight_bias, truncate};
use crate::error::NnError;
use crate::model::Config;
use crate::params::Params;
use crate::weights::{Weights, param};
use ariann_mpc::gates::beaver::Bilinear;
use ariann_ring::RingTensor;

/// `y = x W^T + b`; parameters `{name}.weight` `[out, inp]`, `{name}.bias`
/// `[out]` (PyTorch layout). Fixed point: the weight at `f` bits, the bias at
/// `2f` (added to the product before the truncation back to `f`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Linear {
    /// Parameter prefix.
    pub name: String,
    /// Input features.
    pub inp: usize,
    /// Output features.
    pub out: usize,
}

impl Linear {
    fn names(&self) -> (String, String) {
        (
            format!("{}.weight", self.name),
            format!("{}.bias", self.name),
        )
    }
}

impl LayerOp for Linear {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        (input == [self.inp]).then(|| vec![self.out])
    }

    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        let (w, b) = self.names();
        out.push((w, vec![self.out, self.inp]));
        out.push((b, vec![self.out]));
    }

    fn fixed_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        self.parameters(out);
    }

    fn encode_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        let (wn, bn) = self.names();
        encode_weight_bias(w, cfg, out, &wn, &bn)
    }

    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        _shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let (inp, out) = (self.inp, self.out);
        let (wn, bn) = self.names();
        let (_, wt) = param(ctx.weights, &wn)?;
        let (_, b) = param(ctx.weights, &bn)?;
        let mut y = vec![0f64; ctx.batch * out];
        for n in 0..ctx.batch {
            for o in 0..out {
                let row = &wt[o * inp..(o + 1) * inp];
                let xs = &x[n * inp..(n + 1) * inp];
                y[n * out + o] = f64::from(b[o])
                    + row
                        .iter()
                        .zip(xs)
                        .map(|(a, v)| f64::from(*a) * v)
                        .sum::<f64>();
            }
        }
        Ok(y)
    }

    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let (wn, bn) = self.names();
        // The store keeps PyTorch's `[out, inp]`; the product needs `[inp, out]`
        // (a local transposition of this party's share).
        let wt = ctx.params.get(&wn)?.transpose2d()?;
        let map = Bilinear::MatMul {
            m: ctx.batch,
            k: self.inp,
            n: self.out,
        };
        let xt = RingTensor::from_vec(&[ctx.batch, self.inp], x)?;
        let mut z = ctx.gates.bilinear(map, &xt, &wt)?.to_vec();
        add_bias(&mut z, ctx.params.get(&bn)?.as_slice(), &[self.out]);
        truncate(ctx, &z)
    }
}
