//! `AvgPool2d` and `AdaptiveAvgPool2d`: window sums (local) times `1/k^2` at
//! `f` bits (local), then one exact truncation.

use super::{Ctx, FloatCtx, FloatGrads, LayerOp, Tape, pool_shape, truncate, truncate_grad};
use crate::error::NnError;
use crate::params::Params;
use ariann_mpc::gates::pool::PoolShape;

/// Average pooling over `k x k` windows (no padding).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvgPool2d {
    /// Window side.
    pub k: usize,
    /// Stride.
    pub stride: usize,
}

/// PyTorch's `AdaptiveAvgPool2d(out)` on square inputs whose side is a
/// multiple of `out`: the average pool with window and stride `side / out`
/// it amounts to (other sizes are refused).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveAvgPool2d {
    /// Output side.
    pub out: usize,
}

/// `1/k^2` at `f` bits.
fn inv_area(k: usize, f: u32) -> u64 {
    ((1u64 << f) as f64 / (k * k) as f64).round() as u64
}

/// The pooling geometry of a window `(k, stride)` on `shape`.
fn geometry(n: usize, shape: &[usize], win: Option<(usize, usize)>) -> Result<PoolShape, NnError> {
    match win {
        Some((k, stride)) if shape.len() == 3 => Ok(pool_shape(n, shape, k, stride, 0)),
        _ => Err(NnError::Description(format!(
            "average pool does not fit an input of shape {shape:?}"
        ))),
    }
}

fn out_shape(shape: &[usize], win: Option<(usize, usize)>) -> Option<Vec<usize>> {
    let (h, w) = geometry(1, shape, win).ok()?.out_hw().ok()?;
    Some(vec![shape[0], h, w])
}

fn float(
    batch: usize,
    x: &[f64],
    shape: &[usize],
    win: Option<(usize, usize)>,
) -> Result<Vec<f64>, NnError> {
    let p = geometry(batch, shape, win)?;
    let area = (p.k * p.k) as f64;
    Ok(p.windows()?
        .iter()
        .map(|w| w.iter().map(|i| x[*i]).sum::<f64>() / area)
        .collect())
}

fn private(
    ctx: &mut Ctx<'_>,
    x: &[u64],
    shape: &[usize],
    win: Option<(usize, usize)>,
) -> Result<Vec<u64>, NnError> {
    let p = geometry(ctx.batch, shape, win)?;
    let sums = ctx.gates.window_sums(x, &p)?;
    let scaled = ctx
        .gates
        .mul_public(&sums, inv_area(p.k, ctx.cfg.frac_bits));
    truncate(ctx, &scaled)
}

/// Backward (private): each window's gradient times `1/k^2` (local) goes to
/// every position of the window (local sums), then one truncation.
fn private_back(
    ctx: &mut Ctx<'_>,
    dy: &[u64],
    shape: &[usize],
    win: Option<(usize, usize)>,
) -> Result<Vec<u64>, NnError> {
    let p = geometry(ctx.batch, shape, win)?;
    let scaled = ctx.gates.mul_public(dy, inv_area(p.k, ctx.cfg.frac_bits));
    let wins = p.windows()?;
    if wins.len() != scaled.len() {
        return Err(NnError::InputSize {
            expected: wins.len(),
            got: scaled.len(),
        });
    }
    let mut dx = vec![0u64; p.input_len()];
    for (w, g) in wins.iter().zip(&scaled) {
        for i in w {
            dx[*i] = dx[*i].wrapping_add(*g);
        }
    }
    truncate_grad(ctx, &dx)
}

/// Backward (float).
fn float_back(
    batch: usize,
    dy: &[f64],
    shape: &[usize],
    win: Option<(usize, usize)>,
) -> Result<Vec<f64>, NnError> {
    let p = geometry(batch, shape, win)?;
    let area = (p.k * p.k) as f64;
    let mut dx = vec![0f64; p.input_len()];
    for (w, g) in p.windows()?.iter().zip(dy) {
        for i in w {
            dx[*i] += g / area;
        }
    }
    Ok(dx)
}

impl AdaptiveAvgPool2d {
    /// Window and stride on an input of `shape`, if it is a fixed window.
    pub fn window(&self, shape: &[usize]) -> Option<(usize, usize)> {
        if shape.len() != 3 {
            return None;
        }
        let side = shape[1];
        (self.out > 0 && shape[2] == side && side.is_multiple_of(self.out))
            .then(|| (side / self.out, side / self.out))
    }
}

impl LayerOp for AvgPool2d {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        out_shape(input, Some((self.k, self.stride)))
    }
    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        float(ctx.batch, &x, shape, Some((self.k, self.stride)))
    }
    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        private(ctx, &x, shape, Some((self.k, self.stride)))
    }
    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        _need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        Ok((
            private(ctx, &x, shape, Some((self.k, self.stride)))?,
            Tape::None,
        ))
    }
    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        _tape: Tape,
        dy: Vec<u64>,
        shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        private_back(ctx, &dy, shape, Some((self.k, self.stride))).map(Some)
    }
    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        _x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        float_back(ctx.batch, &dy, shape, Some((self.k, self.stride)))
    }
}

impl LayerOp for AdaptiveAvgPool2d {
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        out_shape(input, self.window(input))
    }
    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        float(ctx.batch, &x, shape, self.window(shape))
    }
    fn forward(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        private(ctx, &x, shape, self.window(shape))
    }
    fn forward_train(
        &self,
        ctx: &mut Ctx<'_>,
        x: Vec<u64>,
        shape: &[usize],
        _need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        Ok((private(ctx, &x, shape, self.window(shape))?, Tape::None))
    }
    fn backward(
        &self,
        ctx: &mut Ctx<'_>,
        _tape: Tape,
        dy: Vec<u64>,
        shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        private_back(ctx, &dy, shape, self.window(shape)).map(Some)
    }
    fn backward_float(
        &self,
        ctx: &FloatCtx<'_>,
        _x: &[f64],
        shape: &[usize],
        dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        float_back(ctx.batch, &dy, shape, self.window(shape))
    }
}
