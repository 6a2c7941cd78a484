//! `MaxPool2d`: the maximum of each window (padding never wins), privately a
//! tree of one-round ReLUs (`ceil(log2 k^2)` rounds) over groups of whole
//! planes of at most `max_gate_elems` input elements per bundle.

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape, chunks, pool_shape};
use crate::error::NnError;
use crate::params::Params;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::pool::PoolShape;
use ariann_ring::RingTensor;

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

    /// Training forward: the 3-round one-hot max-pool (all-pairs
    /// comparisons, one-hot arg-max, select), keeping the one-hot selection
    /// of every window (ties go to the window's first maximum).
    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        let p = self.geometry(ctx.batch, shape)?;
        let plane = p.h * p.w;
        let mut out = Vec::new();
        let mut sel = Vec::new();
        for (r, s) in pool_chunks(&p, ctx.cfg.max_gate_elems) {
            let part = &x[r.start * plane..r.end * plane];
            let o = ctx.gates.max_pool_one_hot(part, s, ctx.cfg.k_cmp)?;
            out.extend(o.max);
            if need_dx {
                sel.extend(o.selections.into_iter().flatten());
            }
        }
        Ok((
            out,
            if need_dx {
                Tape::OneHot(sel)
            } else {
                Tape::None
            },
        ))
    }

    /// The gradient of each window's output goes to its arg-max position
    /// (the one-hot selection kept from the forward pass): one elementwise
    /// product of the selection with the broadcast gradient, then local sums
    /// where windows overlap.
    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        tape: Tape,
        dy: Vec<u64>,
        shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        let sel = match tape {
            Tape::OneHot(s) => s,
            Tape::None => return Ok(None),
            _ => {
                return Err(NnError::Training(
                    "a max-pool got another layer's tape".into(),
                ));
            }
        };
        let p = self.geometry(ctx.batch, shape)?;
        let plane = p.h * p.w;
        let mut dx = vec![0u64; p.input_len()];
        let (mut at_sel, mut at_out) = (0, 0);
        for (r, s) in pool_chunks(&p, ctx.cfg.max_gate_elems) {
            let wins = s.windows()?;
            let total: usize = wins.iter().map(Vec::len).sum();
            let (Some(onehot), Some(g)) = (
                sel.get(at_sel..at_sel + total),
                dy.get(at_out..at_out + wins.len()),
            ) else {
                return Err(NnError::Training(
                    "the max-pool's gradient or selections do not fit its geometry".into(),
                ));
            };
            let bcast: Vec<u64> = wins
                .iter()
                .zip(g)
                .flat_map(|(w, g)| std::iter::repeat_n(*g, w.len()))
                .collect();
            let prod = ctx.gates.bilinear(
                Bilinear::Mul { len: total },
                &RingTensor::from_vec(&[total], onehot.to_vec())?,
                &RingTensor::from_vec(&[total], bcast)?,
            )?;
            let base = r.start * plane;
            for (i, v) in wins.iter().flatten().zip(prod.as_slice()) {
                let d = &mut dx[base + i];
                *d = d.wrapping_add(*v);
            }
            at_sel += total;
            at_out += wins.len();
        }
        Ok(Some(dx))
    }

    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        let mut dx = vec![0f64; x.len()];
        for (w, g) in self.geometry(ctx.batch, shape)?.windows()?.iter().zip(dy) {
            // The first maximum of the window, as the private selection.
            let best = w.iter().copied().fold(None, |b: Option<usize>, i| match b {
                Some(j) if x[j] >= x[i] => Some(j),
                _ => Some(i),
            });
            if let Some(i) = best {
                dx[i] += g;
            }
        }
        Ok(dx)
    }
}
