//! `MaxPool2d`: the maximum of each window (padding never wins), privately a
//! tree of ReLUs of the configured variant (`ceil(log2 k^2)` levels of one
//! round each with one-round ReLUs, two with small-key ones) over groups of whole
//! planes of at most `max_gate_elems` input elements per bundle.

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape, chunks, max_pool_gate, pool_shape};
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
            out.extend(max_pool_gate(ctx, part, s)?.max);
        }
        Ok(out)
    }

    /// Training forward: the same tree of ReLUs as inference
    /// (`ceil(log2 k^2)` rounds), keeping each level's selection bits
    /// (`[a >= b]` of every pair: ties go to the window's first maximum).
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
            let o = max_pool_gate(ctx, part, s)?;
            out.extend(o.max);
            if need_dx {
                sel.push(o.selections);
            }
        }
        Ok((out, if need_dx { Tape::Tree(sel) } else { Tape::None }))
    }

    /// The gradient of each window's output goes to its arg-max position,
    /// down the comparison tree kept from the forward pass: at each level
    /// (top first) a pair `(a, b)` with selection `s` passes `s g` to `a` and
    /// `g - s g` to `b` (one elementwise product per level), then local sums
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
            Tape::Tree(s) => s,
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
        let chunks = pool_chunks(&p, ctx.cfg.max_gate_elems);
        if chunks.len() != sel.len() {
            return Err(NnError::Training(
                "the max-pool's selections do not fit its geometry".into(),
            ));
        }
        let mut at_out = 0;
        for ((r, s), levels) in chunks.into_iter().zip(sel) {
            let wins = s.windows()?;
            let Some(g) = dy.get(at_out..at_out + wins.len()) else {
                return Err(NnError::InputSize {
                    expected: at_out + wins.len(),
                    got: dy.len(),
                });
            };
            at_out += wins.len();
            // Window sizes before each level.
            let mut lens = vec![wins.iter().map(Vec::len).collect::<Vec<_>>()];
            for _ in 0..levels.len() {
                let next = lens[lens.len() - 1].iter().map(|l| l.div_ceil(2)).collect();
                lens.push(next);
            }
            let mut cur: Vec<Vec<u64>> = g.iter().map(|v| vec![*v]).collect();
            for (l, bits) in levels.iter().enumerate().rev() {
                let before = &lens[l];
                let pairs: Vec<u64> = cur
                    .iter()
                    .zip(before)
                    .flat_map(|(c, n)| c[..n / 2].iter().copied())
                    .collect();
                if pairs.len() != bits.len() {
                    return Err(NnError::Training(
                        "the max-pool's selections do not fit its geometry".into(),
                    ));
                }
                let len = pairs.len();
                let prod = ctx.gates.bilinear(
                    Bilinear::Mul { len },
                    &RingTensor::from_vec(&[len], bits.clone())?,
                    &RingTensor::from_vec(&[len], pairs)?,
                )?;
                let mut it = prod.as_slice().iter();
                for (c, n) in cur.iter_mut().zip(before) {
                    let mut next = Vec::with_capacity(*n);
                    for g in &c[..n / 2] {
                        let a = it.next().copied().unwrap_or_default();
                        next.push(a);
                        next.push(g.wrapping_sub(a));
                    }
                    if n % 2 == 1 {
                        next.push(c[n / 2]);
                    }
                    *c = next;
                }
            }
            let base = r.start * plane;
            for (w, c) in wins.iter().zip(&cur) {
                for (i, v) in w.iter().zip(c) {
                    let d = &mut dx[base + i];
                    *d = d.wrapping_add(*v);
                }
            }
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
