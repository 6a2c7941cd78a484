//! `MaxPool2d`: the maximum of each window (padding never wins), privately a
//! tree of ReLUs of the configured variant (`ceil(log2 k^2)` levels of one
//! round each with one-round ReLUs, two with small-key ones) over groups of whole
//! planes of at most `max_gate_elems` input elements per bundle.
//!
//! **Separable inference.** Where windows overlap (stride below the window
//! side), inference takes the maximum in two passes instead: over each row's
//! windows (`1 x k`), then over each column of those row maxima (`k x 1`),
//! each pass a tree of pairwise maxima (`max(a, b) = b + ReLU(a - b)`, one
//! batched ReLU gate of the configured variant per level, in bundles of at
//! most `max_gate_elems` comparisons). The row maxima of the rows two
//! vertically adjacent windows share are computed once, so a 3x3 pool of
//! stride 2 takes 6 comparisons per output instead of 8, in the same 4
//! levels (ResNet18's first pool: 25 % fewer max-pool key bytes). The
//! maximum is the same value whatever the order of the comparisons, so the
//! outputs are the same bit for bit. It is used when it takes fewer
//! comparisons and no more levels than the 2-D tree
//! ([`MaxPool2d::separable`]); training keeps the 2-D tree, whose selection
//! bits route the backward pass.

use super::{
    Ctx, FloatCtx, FloatGrads, LayerOp, Tape, chunks, max_pool_gate, pool_shape, relu_gate,
};
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

    /// Whether inference on an input of shape `[c, h, w]` takes the
    /// separable two-pass maximum (see the module docs): `Some((row
    /// comparisons + column comparisons, 2-D tree comparisons))` per image
    /// when it takes fewer comparisons and no more tree levels than the
    /// 2-D tree, else `None`. Errors on geometries that do not fit.
    pub fn separable(&self, input: &[usize]) -> Result<Option<(u64, u64)>, NnError> {
        let p = self.geometry(1, input)?;
        p.out_hw()?;
        let rows = axis_windows(p.w, &p)?;
        let cols = axis_windows(p.h, &p)?;
        let comps =
            |w: &[(usize, usize)]| -> u64 { w.iter().map(|(a, b)| (b - a - 1) as u64).sum() };
        // Saturating: a count past u64 only has to compare sensibly.
        let planes = p.c as u64;
        let sep = planes.saturating_mul(
            (p.h as u64)
                .saturating_mul(comps(&rows))
                .saturating_add((rows.len() as u64).saturating_mul(comps(&cols))),
        );
        let mut tree = 0u64;
        let mut widest = 0usize;
        for (ca, cb) in &cols {
            for (ra, rb) in &rows {
                let n = (cb - ca).saturating_mul(rb - ra);
                tree = tree.saturating_add(n.saturating_sub(1) as u64);
                widest = widest.max(n);
            }
        }
        let tree = planes.saturating_mul(tree);
        let widest_of = |w: &[(usize, usize)]| w.iter().map(|(a, b)| b - a).max().unwrap_or(1);
        let sep_levels = levels(widest_of(&rows)) + levels(widest_of(&cols));
        Ok((sep < tree && sep_levels <= levels(widest)).then_some((sep, tree)))
    }

    /// The separable maximum of the planes of `x` (`p.n * p.c` planes of
    /// `p.h x p.w`): the row pass, a transpose, the column pass, a
    /// transpose back.
    fn forward_separable(
        &self,
        ctx: &mut Ctx<'_>,
        x: &[u64],
        p: &PoolShape,
    ) -> Result<Vec<u64>, NnError> {
        let planes = p.n * p.c;
        let rows = axis_windows(p.w, p)?;
        let cols = axis_windows(p.h, p)?;
        let (oh, ow) = (cols.len(), rows.len());
        // Row maxima: planes x h x ow.
        let r = max_lines(ctx, x, planes * p.h, p.w, &rows)?;
        // Transpose each plane to ow x h, take the column maxima (planes x
        // ow x oh), transpose back.
        let t = transpose_planes(&r, p.h, ow);
        let c = max_lines(ctx, &t, planes * ow, p.h, &cols)?;
        Ok(transpose_planes(&c, ow, oh))
    }
}

/// Tree levels of a window of `n` elements, `ceil(log2 n)`.
fn levels(n: usize) -> u32 {
    n.next_power_of_two().trailing_zeros()
}

/// The windows along one axis of length `len` of `p`'s geometry (side
/// `p.k`, stride `p.stride`, padding `p.pad` on each side), as ranges of
/// input positions `[start, end)` (padding left out).
fn axis_windows(len: usize, p: &PoolShape) -> Result<Vec<(usize, usize)>, NnError> {
    let bad = || NnError::Description(format!("invalid max-pool geometry {p:?}"));
    let (k, s, pad) = (p.k, p.stride, p.pad);
    if k == 0 || s == 0 || pad >= k {
        return Err(bad());
    }
    let padded = len
        .checked_add(pad.checked_mul(2).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    if padded < k {
        return Err(bad());
    }
    (0..(padded - k) / s + 1)
        .map(|i| {
            let start = i * s;
            let a = start.max(pad) - pad;
            let b = (start + k).min(pad + len) - pad;
            if a < b { Ok((a, b)) } else { Err(bad()) }
        })
        .collect()
}

/// The `h x w` matrices of `x` (row-major, one after the other), each
/// transposed to `w x h`.
fn transpose_planes(x: &[u64], h: usize, w: usize) -> Vec<u64> {
    let mut out = vec![0u64; x.len()];
    for (src, dst) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(h * w)) {
        for i in 0..h {
            for j in 0..w {
                dst[j * h + i] = src[i * w + j];
            }
        }
    }
    out
}

/// The maximum of each window `wins` of each of the `lines` consecutive
/// lines of `len` elements of `x` (shares): `lines x wins.len()` outputs.
/// A tree of pairwise maxima per window, `max(a, b) = b + ReLU(a - b)`;
/// each level is one batched ReLU gate of the configured variant over
/// every window's pairs (in bundles of at most `max_gate_elems`).
fn max_lines(
    ctx: &mut Ctx<'_>,
    x: &[u64],
    lines: usize,
    len: usize,
    wins: &[(usize, usize)],
) -> Result<Vec<u64>, NnError> {
    if x.len() != lines * len || len == 0 {
        return Err(NnError::InputSize {
            expected: lines * len,
            got: x.len(),
        });
    }
    let o = wins.len();
    let mut lens: Vec<usize> = wins.iter().map(|(a, b)| b - a).collect();
    let kk = lens.iter().copied().max().unwrap_or(1);
    // Window values, `kk` slots per window.
    let mut cur = vec![0u64; lines * o * kk];
    for (line, src) in x.chunks_exact(len).enumerate() {
        for (wi, (a, b)) in wins.iter().enumerate() {
            let base = (line * o + wi) * kk;
            cur[base..base + (b - a)].copy_from_slice(&src[*a..*b]);
        }
    }
    while lens.iter().any(|l| *l > 1) {
        let mut diffs = Vec::with_capacity(lines * lens.iter().map(|l| l / 2).sum::<usize>());
        for line in 0..lines {
            for (wi, l) in lens.iter().enumerate() {
                let base = (line * o + wi) * kk;
                for i in 0..l / 2 {
                    diffs.push(cur[base + 2 * i].wrapping_sub(cur[base + 2 * i + 1]));
                }
            }
        }
        let mut relu = Vec::with_capacity(diffs.len());
        for r in chunks(diffs.len(), ctx.cfg.max_gate_elems) {
            relu.extend(relu_gate(ctx, &diffs[r])?.relu);
        }
        if relu.len() != diffs.len() {
            return Err(NnError::InputSize {
                expected: diffs.len(),
                got: relu.len(),
            });
        }
        let mut it = relu.into_iter();
        for line in 0..lines {
            for (wi, l) in lens.iter().enumerate() {
                let base = (line * o + wi) * kk;
                // Slot i is written after pair i / 2 <= i has been read.
                for (i, m) in (0..l / 2).zip(it.by_ref()) {
                    cur[base + i] = cur[base + 2 * i + 1].wrapping_add(m);
                }
                if l % 2 == 1 {
                    cur[base + l / 2] = cur[base + l - 1];
                }
            }
        }
        for l in lens.iter_mut() {
            *l = l.div_ceil(2);
        }
    }
    Ok((0..lines * o).map(|w| cur[w * kk]).collect())
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
        if x.len() != p.input_len() {
            return Err(NnError::InputSize {
                expected: p.input_len(),
                got: x.len(),
            });
        }
        if self.separable(shape)?.is_some() {
            return self.forward_separable(ctx, &x, &p);
        }
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
