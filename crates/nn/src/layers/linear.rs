//! `Linear`: `y = x W^T + b`.

use super::{
    Ctx, FloatCtx, FloatGrads, LayerOp, Tape, add_bias, add_float_grad, add_grad, bias_grad,
    encode_weight_bias, truncate, truncate_grad, truncate_train,
};
use crate::error::NnError;
use crate::model::Config;
use crate::params::Params;
use crate::weights::{Weights, param};
use ariann_mpc::gates::beaver::Bilinear;
use ariann_ring::RingTensor;

/// `y = x W^T + b`; parameters `{name}.weight` `[out, inp]`, `{name}.bias`
/// `[out]` (PyTorch layout; no bias with `bias: false`, PyTorch's
/// `bias=False`). Fixed point: the weight at `f` bits, the bias at
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
    /// Whether it has a bias (`{name}.bias`). JSON: `"bias": false` for
    /// none; absent means `true` (and `true` is not written, so a model
    /// with biases has the same description and digests as before).
    #[serde(default = "super::yes", skip_serializing_if = "super::is_true")]
    pub bias: bool,
}

impl Linear {
    /// The weight's name and the bias's, if it has one.
    fn names(&self) -> (String, Option<String>) {
        (
            format!("{}.weight", self.name),
            self.bias.then(|| format!("{}.bias", self.name)),
        )
    }
}

impl Linear {
    /// The product `x (batch x inp) . W^T (inp x out)`.
    fn map(&self, batch: usize) -> Bilinear {
        Bilinear::MatMul {
            m: batch,
            k: self.inp,
            n: self.out,
        }
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
        if let Some(b) = b {
            out.push((b, vec![self.out]));
        }
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
        encode_weight_bias(w, cfg, out, &wn, bn.as_deref())
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
        let b = bn
            .map(|bn| param(ctx.weights, &bn).map(|(_, b)| b))
            .transpose()?;
        let mut y = vec![0f64; ctx.batch * out];
        for n in 0..ctx.batch {
            for o in 0..out {
                let row = &wt[o * inp..(o + 1) * inp];
                let xs = &x[n * inp..(n + 1) * inp];
                y[n * out + o] = b.map_or(0.0, |b| f64::from(b[o]))
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
        _shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let (wn, bn) = self.names();
        // The store keeps PyTorch's `[out, inp]`; the product needs `[inp, out]`
        // (a local transposition of this party's share).
        let wt = ctx.params.get(&wn)?.transpose2d()?;
        let map = self.map(ctx.batch);
        let xt = RingTensor::from_vec(&[ctx.batch, self.inp], x)?;
        // The weight is the same for every batch of a job: with weight-mask
        // reuse its masked opening is made once (`Gates::bilinear_weight`).
        let mut z = ctx.gates.bilinear_weight(&wn, map, &xt, &wt)?.to_vec();
        if let Some(bn) = bn {
            add_bias(&mut z, ctx.params.get(&bn)?.as_slice(), &[self.out]);
        }
        Ok(z)
    }

    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let (wn, bn) = self.names();
        let wt = ctx.params.get(&wn)?.transpose2d()?;
        let xt = RingTensor::from_vec(&[ctx.batch, self.inp], x)?;
        let (z, tape) = ctx
            .gates
            .bilinear_train(self.map(ctx.batch), &xt, &wt, need_dx)?;
        let mut z = z.to_vec();
        if let Some(bn) = bn {
            add_bias(&mut z, ctx.params.get(&bn)?.as_slice(), &[self.out]);
        }
        Ok((
            truncate_train(ctx, &z, ctx.cfg.frac_bits)?,
            Tape::Product(tape),
        ))
    }

    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        tape: Tape,
        dy: Vec<u64>,
        _shape: &[usize],
        grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let Tape::Product(tape) = tape else {
            return Err(NnError::Training(
                "a linear layer got another layer's tape".into(),
            ));
        };
        let (wn, bn) = self.names();
        let wt = ctx.params.get(&wn)?.transpose2d()?;
        let db = bn
            .is_some()
            .then(|| bias_grad(&dy, &[self.out], u64::wrapping_add));
        let dz = RingTensor::from_vec(&[ctx.batch, self.out], dy)?;
        let (dx, dwt) = ctx.gates.bilinear_backward(tape, &dz, &wt)?;
        add_grad(
            grads,
            &wn,
            &[self.out, self.inp],
            dwt.transpose2d()?.as_slice(),
        )?;
        if let (Some(bn), Some(db)) = (bn, db) {
            add_grad(grads, &bn, &[self.out], &db)?;
        }
        dx.map(|dx| truncate_grad(ctx, dx.as_slice())).transpose()
    }

    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: &[f64],
        _shape: &[usize],
        dy: Vec<f64>,
        grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        let (inp, out) = (self.inp, self.out);
        let (wn, bn) = self.names();
        let (_, w) = param(ctx.weights, &wn)?;
        let mut dx = vec![0f64; ctx.batch * inp];
        let mut dw = vec![0f64; out * inp];
        for n in 0..ctx.batch {
            let xs = &x[n * inp..(n + 1) * inp];
            let dxs = &mut dx[n * inp..(n + 1) * inp];
            for o in 0..out {
                let g = dy[n * out + o];
                if g == 0.0 {
                    continue;
                }
                let row = &w[o * inp..(o + 1) * inp];
                let drow = &mut dw[o * inp..(o + 1) * inp];
                for i in 0..inp {
                    dxs[i] += g * f64::from(row[i]);
                    drow[i] += g * xs[i];
                }
            }
        }
        add_float_grad(grads, &wn, &dw);
        if let Some(bn) = bn {
            add_float_grad(grads, &bn, &bias_grad(&dy, &[out], |a, b| a + b));
        }
        Ok(dx)
    }
}
