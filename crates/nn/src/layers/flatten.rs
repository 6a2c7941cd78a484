//! `Flatten`: `[c, h, w]` to `[c h w]` (NCHW order, as `torch.flatten(x, 1)`);
//! the data does not move.

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape};
use crate::error::NnError;
use crate::params::Params;

/// Flattens an activation to one dimension (free: no data moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flatten;

impl LayerOp for Flatten {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let n = input.iter().try_fold(1usize, |a, d| a.checked_mul(*d))?;
        Some(vec![n])
    }

    fn forward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        _shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        Ok(x)
    }

    fn forward(
        &self,
        _ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        Ok(x)
    }

    fn forward_train(
        &self,
        _ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        _shape: &[usize],
        _need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        Ok((x, Tape::None))
    }

    fn backward(
        &self,
        _ctx: &mut Ctx<'_>,
        _tape: Tape,
        dy: Vec<u64>,
        _shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        Ok(Some(dy))
    }

    fn backward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        _x: &[f64],
        _shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        Ok(dy)
    }
}
