//! `ReLU`: `max(x, 0)`, one one-round ReLU gate per bundle of at most
//! `max_gate_elems` elements on the `k_cmp`-bit window.

use super::{Ctx, FloatCtx, LayerOp, chunks};
use crate::error::NnError;

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
            out.extend(ctx.gates.relu(&x[r], ctx.cfg.k_cmp)?.relu);
        }
        Ok(out)
    }
}
