//! `Flatten`: `[c, h, w]` to `[c h w]` (NCHW order, as `torch.flatten(x, 1)`);
//! the data does not move.

use super::{Ctx, FloatCtx, LayerOp};
use crate::error::NnError;

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
}
