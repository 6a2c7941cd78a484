//! `MaxPool2d`: the maximum of each window (padding never wins), privately a
//! tree of one-round ReLUs (`ceil(log2 k^2)` rounds) over groups of whole
//! planes of at most `max_gate_elems` input elements per bundle.

use super::{Ctx, FloatCtx, LayerOp, chunks, pool_shape};
use crate::error::NnError;
use ariann_mpc::gates::pool::PoolShape;

/// Max-pooling over `k x k` windows (padded positions never win).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPool2d {
    /// Window side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
    /// Padding.
    pub pad: usize,
}

/// Max-pool geometries over groups of whole planes (windows never cross
/// planes), each with at most `max` input elements (or one plane): the
/// ranges of planes and their one-image pool shapes.
fn pool_chunks(p: &PoolShape, max: usize) -> Vec<(std::ops::Range<usize>, PoolShape)> {
    let plane = p.h * p.w;
    let per = (max / plane.max(1)).max(1);
    chunks(p.n * p.c, per)
        .map(|r| {
            let s = PoolShape {
                n: 1,
                c: r.len(),
                ..*p
            };
            (r, s)
        })
        .collect()
}

impl MaxPool2d {
    fn geometry(&self, n: usize, s: &[usize]) -> Result<PoolShape, NnError> {
        if s.len() != 3 {
            return Err(NnError::Description(format!(
                "{self:?} needs a [c, h, w] input, got {s:?}"
            )));
        }
        Ok(pool_shape(n, s, self.k, self.stride, self.pad))
    }
}

impl LayerOp for MaxPool2d {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let (h, w) = self.geometry(1, input).ok()?.out_hw().ok()?;
        Some(vec![input[0], h, w])
    }

    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        Ok(self
            .geometry(ctx.batch, shape)?
            .windows()?
            .iter()
            .map(|w| w.iter().map(|i| x[*i]).fold(f64::NEG_INFINITY, f64::max))
            .collect())
    }

    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        let p = self.geometry(ctx.batch, shape)?;
        let plane = p.h * p.w;
        let mut out = Vec::new();
        for (r, s) in pool_chunks(&p, ctx.cfg.max_gate_elems) {
            let part = &x[r.start * plane..r.end * plane];
            out.extend(ctx.gates.max_pool(part, s, ctx.cfg.k_cmp)?.max);
        }
        Ok(out)
    }
}
