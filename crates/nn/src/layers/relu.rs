//! `ReLU`: `max(x, 0)`, one ReLU gate of the configured variant (one-round
//! or small-key) per bundle of at most `max_gate_elems` elements on the
//! `k_cmp`-bit window. With the small-key variant, a ReLU right after a
//! product takes the product's truncation into its gate (see
//! `forward_layers`).

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape, chunks, relu_gate};
use crate::error::NnError;
use crate::params::Params;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_ring::RingTensor;

/// `max(x, 0)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Relu;

impl LayerOp for Relu {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        Some(input.to_vec())
    }

    fn forward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        _shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        Ok(x.iter().map(|v| v.max(0.0)).collect())
    }

    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let mut out = Vec::with_capacity(x.len());
        for r in chunks(x.len(), ctx.cfg.max_gate_elems) {
            out.extend(relu_gate(ctx, &x[r])?.relu);
        }
        Ok(out)
    }

    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let mut out = Vec::with_capacity(x.len());
        let mut bits = Vec::with_capacity(if need_dx { x.len() } else { 0 });
        for r in chunks(x.len(), ctx.cfg.max_gate_elems) {
            let o = relu_gate(ctx, &x[r])?;
            out.extend(o.relu);
            if need_dx {
                bits.extend(o.drelu);
            }
        }
        Ok((
            out,
            if need_dx {
                Tape::Bits(bits)
            } else {
                Tape::None
            },
        ))
    }

    /// `dx = dy * [x >= 0]` with the DReLU bits kept from the forward pass:
    /// one elementwise product (a Beaver triple), no new comparison, no
    /// truncation (the bits are integers).
    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        tape: Tape,
        dy: Vec<u64>,
        _shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let bits = match tape {
            Tape::Bits(b) => b,
            Tape::None => return Ok(None),
            _ => return Err(NnError::Training("a ReLU got another layer's tape".into())),
        };
        if bits.len() != dy.len() {
            return Err(NnError::InputSize {
                expected: bits.len(),
                got: dy.len(),
            });
        }
        let mut dx = Vec::with_capacity(dy.len());
        for r in chunks(dy.len(), ctx.cfg.max_gate_elems) {
            let len = r.len();
            let g = RingTensor::from_vec(&[len], dy[r.clone()].to_vec())?;
            let b = RingTensor::from_vec(&[len], bits[r].to_vec())?;
            dx.extend(ctx.gates.bilinear(Bilinear::Mul { len }, &g, &b)?.to_vec());
        }
        Ok(Some(dx))
    }

    fn backward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        x: &[f64],
        _shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        Ok(x.iter()
            .zip(dy)
            .map(|(x, g)| if *x >= 0.0 { g } else { 0.0 })
            .collect())
    }
}
