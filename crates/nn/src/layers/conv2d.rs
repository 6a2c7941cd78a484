//! `Conv2d`: NCHW cross-correlation.

use super::{
    Ctx, FloatCtx, FloatGrads, LayerOp, Tape, add_bias, add_float_grad, add_grad, bias_grad,
    encode_weight_bias, truncate, truncate_grad, truncate_train,
};
use crate::error::NnError;
use crate::model::Config;
use crate::params::Params;
use crate::weights::{Weights, param};
use ariann_mpc::gates::beaver::Bilinear;
use ariann_ring::{Conv2dShape, RingTensor};

/// NCHW cross-correlation; parameters `{name}.weight` `[oc, c, k, k]`,
/// `{name}.bias` `[oc]` (none with `bias: false`, PyTorch's `bias=False`).
/// Fixed point: the weight at `f` bits, the bias at `2f`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conv2d {
    /// Parameter prefix.
    pub name: String,
    /// Input channels.
    pub c: usize,
    /// Output channels.
    pub oc: usize,
    /// Kernel side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Zero padding.
    pub pad: usize,
    /// Whether it has a bias (`{name}.bias`). JSON: `"bias": false` for
    /// none; absent means `true` (and `true` is not written, so a model
    /// with biases has the same description and digests as before).
    #[serde(default = "super::yes", skip_serializing_if = "super::is_true")]
    pub bias: bool,
}

impl Conv2d {
    /// The weight's name and the bias's, if it has one.
    fn names(&self) -> (String, Option<String>) {
        (
            format!("{}.weight", self.name),
            self.bias.then(|| format!("{}.bias", self.name)),
        )
    }

    /// The convolution's geometry on a batch of `n` inputs of shape `s` (`[c, h, w]`).
    pub fn geometry(&self, n: usize, s: &[usize]) -> Option<Conv2dShape> {
        (s.len() == 3 && s[0] == self.c).then(|| Conv2dShape {
            n,
            c: self.c,
            h: s[1],
            w: s[2],
            oc: self.oc,
            kh: self.k,
            kw: self.k,
            stride: self.stride,
            pad: self.pad,
        })
    }

    fn misfit(&self, shape: &[usize]) -> NnError {
        NnError::Description(format!("{self:?} does not fit an input of shape {shape:?}"))
    }
}

impl LayerOp for Conv2d {
    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let (h, w) = self.geometry(1, input)?.out_hw().ok()?;
        Some(vec![self.oc, h, w])
    }

    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        let (w, b) = self.names();
        out.push((w, vec![self.oc, self.c, self.k, self.k]));
        if let Some(b) = b {
            out.push((b, vec![self.oc]));
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
        cur: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        let batch = ctx.batch;
        let s = self
            .geometry(batch, shape)
            .ok_or_else(|| self.misfit(shape))?;
        let (wn, bn) = self.names();
        let (_, wt) = param(ctx.weights, &wn)?;
        let b = bn
            .map(|bn| param(ctx.weights, &bn).map(|(_, b)| b))
            .transpose()?;
        let (oh, ow) = s.out_hw()?;
        // im2col in f64 then a plain product (fast enough for references).
        let kk = s.c * s.kh * s.kw;
        let mut y = vec![0f64; batch * s.oc * oh * ow];
        let mut col = vec![0f64; kk];
        for n in 0..batch {
            for i in 0..oh {
                for j in 0..ow {
                    for c in 0..s.c {
                        for di in 0..s.kh {
                            for dj in 0..s.kw {
                                let (yy, xx) = (i * s.stride + di, j * s.stride + dj);
                                col[(c * s.kh + di) * s.kw + dj] = if yy < s.pad
                                    || xx < s.pad
                                    || yy - s.pad >= s.h
                                    || xx - s.pad >= s.w
                                {
                                    0.0
                                } else {
                                    cur[((n * s.c + c) * s.h + yy - s.pad) * s.w + xx - s.pad]
                                };
                            }
                        }
                    }
                    for o in 0..s.oc {
                        let wr = &wt[o * kk..(o + 1) * kk];
                        y[((n * s.oc + o) * oh + i) * ow + j] = b.map_or(0.0, |b| f64::from(b[o]))
                            + wr.iter()
                                .zip(&col)
                                .map(|(a, v)| f64::from(*a) * v)
                                .sum::<f64>();
                    }
                }
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
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let s = self
            .geometry(ctx.batch, shape)
            .ok_or_else(|| self.misfit(shape))?;
        let (wn, bn) = self.names();
        let xt = RingTensor::from_vec(&s.input_shape(), x)?;
        // The weight is the same for every batch of a job: with weight-mask
        // reuse its masked opening is made once (`Gates::bilinear_weight`).
        let mut z = ctx
            .gates
            .bilinear_weight(&wn, Bilinear::Conv2d(s), &xt, ctx.params.get(&wn)?)?
            .to_vec();
        let (oh, ow) = s.out_hw()?;
        if let Some(bn) = bn {
            add_bias(&mut z, ctx.params.get(&bn)?.as_slice(), &[self.oc, oh, ow]);
        }
        Ok(z)
    }

    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let s = self
            .geometry(ctx.batch, shape)
            .ok_or_else(|| self.misfit(shape))?;
        let (wn, bn) = self.names();
        let xt = RingTensor::from_vec(&s.input_shape(), x)?;
        let (z, tape) =
            ctx.gates
                .bilinear_train(Bilinear::Conv2d(s), &xt, ctx.params.get(&wn)?, need_dx)?;
        let mut z = z.to_vec();
        let (oh, ow) = s.out_hw()?;
        if let Some(bn) = bn {
            add_bias(&mut z, ctx.params.get(&bn)?.as_slice(), &[self.oc, oh, ow]);
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
        shape: &[usize],
        grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let Tape::Product(tape) = tape else {
            return Err(NnError::Training(
                "a convolution got another layer's tape".into(),
            ));
        };
        let s = self
            .geometry(ctx.batch, shape)
            .ok_or_else(|| self.misfit(shape))?;
        let (wn, bn) = self.names();
        let (oh, ow) = s.out_hw()?;
        let db = bn
            .is_some()
            .then(|| bias_grad(&dy, &[self.oc, oh, ow], u64::wrapping_add));
        let dz = RingTensor::from_vec(&s.output_shape()?, dy)?;
        let (dx, dw) = ctx
            .gates
            .bilinear_backward(tape, &dz, ctx.params.get(&wn)?)?;
        add_grad(grads, &wn, &s.weight_shape(), dw.as_slice())?;
        if let (Some(bn), Some(db)) = (bn, db) {
            add_grad(grads, &bn, &[self.oc], &db)?;
        }
        dx.map(|dx| truncate_grad(ctx, dx.as_slice())).transpose()
    }

    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        let s = self
            .geometry(ctx.batch, shape)
            .ok_or_else(|| self.misfit(shape))?;
        let (wn, bn) = self.names();
        let (_, wt) = param(ctx.weights, &wn)?;
        let (oh, ow) = s.out_hw()?;
        let kk = s.c * s.kh * s.kw;
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; s.oc * kk];
        // The input index of each patch entry (None in the padding).
        let at = |n: usize, i: usize, j: usize, c: usize, di: usize, dj: usize| {
            let (yy, xx) = (i * s.stride + di, j * s.stride + dj);
            (yy >= s.pad && xx >= s.pad && yy - s.pad < s.h && xx - s.pad < s.w)
                .then(|| ((n * s.c + c) * s.h + yy - s.pad) * s.w + xx - s.pad)
        };
        for n in 0..ctx.batch {
            for o in 0..s.oc {
                for i in 0..oh {
                    for j in 0..ow {
                        let g = dy[((n * s.oc + o) * oh + i) * ow + j];
                        if g == 0.0 {
                            continue;
                        }
                        for c in 0..s.c {
                            for di in 0..s.kh {
                                for dj in 0..s.kw {
                                    if let Some(p) = at(n, i, j, c, di, dj) {
                                        let wi = o * kk + (c * s.kh + di) * s.kw + dj;
                                        dx[p] += g * f64::from(wt[wi]);
                                        dw[wi] += g * x[p];
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        add_float_grad(grads, &wn, &dw);
        if let Some(bn) = bn {
            add_float_grad(
                grads,
                &bn,
                &bias_grad(&dy, &[self.oc, oh, ow], |a, b| a + b),
            );
        }
        Ok(dx)
    }
}
