//! The layers, one module each. A layer implements [`LayerOp`]: its output
//! shape, its parameters (float names and shapes, and the fixed-point
//! tensors the parameter store holds), its float forward pass (the cleartext
//! reference) and its forward pass on a gate backend ([`Ctx::gates`]), which
//! is the one code path of the fixed-point, private and planning runs.
//! Training adds the state a layer keeps for its backward pass and the
//! backward pass itself, next to the forward pass in the same module.

pub mod avgpool;
pub mod batchnorm;
pub mod conv2d;
pub mod flatten;
pub mod linear;
pub mod maxpool;
pub mod relu;
pub mod residual;

pub use avgpool::{AdaptiveAvgPool2d, AvgPool2d};
pub use batchnorm::BatchNorm2d;
pub use conv2d::Conv2d;
pub use linear::Linear;
pub use maxpool::MaxPool2d;
pub use residual::Residual;

use crate::error::NnError;
use crate::model::{Config, Layer};
use crate::params::Params;
use crate::weights::Weights;
use ariann_mpc::Gates;
use ariann_mpc::gates::pool::PoolShape;
use ariann_ring::FixedPoint;

/// What a layer's forward pass on a gate backend works with.
pub struct Ctx<'a> {
    /// The backend: private session, cleartext fixed point or recorder.
    pub gates: &'a mut dyn Gates<u64>,
    /// Fixed-point parameters (or this party's shares of them) by name.
    pub params: &'a Params,
    /// Inputs in the batch.
    pub batch: usize,
    /// Fixed-point and window parameters.
    pub cfg: &'a Config,
    /// Path of the layer running (for nested layers' paths).
    pub path: String,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("batch", &self.batch)
            .field("cfg", &self.cfg)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a layer's float forward pass works with.
#[derive(Debug)]
pub struct FloatCtx<'a> {
    /// Float parameters by PyTorch name.
    pub weights: &'a Weights,
    /// Inputs in the batch.
    pub batch: usize,
    /// Path of the layer running.
    pub path: String,
}

/// One layer kind's implementation.
pub trait LayerOp {
    /// The prefix of its parameter names, if it has parameters.
    fn name(&self) -> Option<&str> {
        None
    }

    /// The output shape (without batch) for an input of `input`, or `None`
    /// if the layer does not fit it.
    fn out_shape(&self, input: &[usize]) -> Option<Vec<usize>>;

    /// Appends `(name, shape)` of its float parameters (PyTorch names).
    fn parameters(&self, _out: &mut Vec<(String, Vec<usize>)>) {}

    /// Appends `(name, shape)` of the fixed-point tensors it reads from the
    /// parameter store.
    fn fixed_parameters(&self, _out: &mut Vec<(String, Vec<usize>)>) {}

    /// Encodes its float parameters into the fixed-point tensors of
    /// [`LayerOp::fixed_parameters`].
    fn encode_parameters(
        &self,
        _w: &Weights,
        _cfg: &Config,
        _out: &mut Params,
    ) -> Result<(), NnError> {
        Ok(())
    }

    /// Float forward pass of a batch (`x` flat, row-major, `batch x input`).
    fn forward_float(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError>;

    /// Forward pass on the gate backend (`x` flat, this party's shares).
    fn forward(&self, ctx: &mut Ctx<'_>, x: Vec<u64>, shape: &[usize])
    -> Result<Vec<u64>, NnError>;
}

/// Runs `layers` (at `prefix`) on the backend; returns the output and its shape.
pub(crate) fn forward_layers(
    ctx: &mut Ctx<'_>,
    layers: &[Layer],
    prefix: &str,
    mut x: Vec<u64>,
    shape: &[usize],
) -> Result<(Vec<u64>, Vec<usize>), NnError> {
    let mut shape = shape.to_vec();
    for (i, l) in layers.iter().enumerate() {
        let path = l.path(prefix, i);
        let next = out_shape(l, &path, &shape)?;
        let outer = std::mem::replace(&mut ctx.path, path);
        x = l
            .op()
            .forward(ctx, x, &shape)
            .map_err(|e| e.at(&ctx.path))?;
        ctx.path = outer;
        shape = next;
    }
    Ok((x, shape))
}

/// Runs `layers` (at `prefix`) in float; returns the output and its shape.
pub(crate) fn float_layers(
    ctx: &FloatCtx<'_>,
    layers: &[Layer],
    prefix: &str,
    mut x: Vec<f64>,
    shape: &[usize],
) -> Result<(Vec<f64>, Vec<usize>), NnError> {
    let mut shape = shape.to_vec();
    for (i, l) in layers.iter().enumerate() {
        let path = l.path(prefix, i);
        let next = out_shape(l, &path, &shape)?;
        let inner = FloatCtx {
            weights: ctx.weights,
            batch: ctx.batch,
            path,
        };
        x = l
            .op()
            .forward_float(&inner, x, &shape)
            .map_err(|e| e.at(&inner.path))?;
        shape = next;
    }
    Ok((x, shape))
}

fn out_shape(l: &Layer, path: &str, shape: &[usize]) -> Result<Vec<usize>, NnError> {
    l.op().out_shape(shape).ok_or_else(|| NnError::LayerShape {
        path: path.to_string(),
        layer: l.describe(),
        shape: shape.to_vec(),
    })
}

/// The product of `dims`, or an error if it overflows.
pub(crate) fn checked_len(dims: &[usize]) -> Result<usize, NnError> {
    dims.iter()
        .try_fold(1usize, |a, d| a.checked_mul(*d))
        .ok_or_else(|| NnError::Overflow(format!("the product of {dims:?}")))
}

/// `0..len` in consecutive ranges of at most `max` (at least one element each).
pub(crate) fn chunks(len: usize, max: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    let max = max.max(1);
    (0..len.div_ceil(max)).map(move |i| i * max..((i + 1) * max).min(len))
}

/// Exact truncations by `f` of a product, in bundles of at most
/// `max_gate_elems` elements (one gate each).
pub(crate) fn truncate(ctx: &mut Ctx<'_>, z: &[u64]) -> Result<Vec<u64>, NnError> {
    let (f, k) = (ctx.cfg.frac_bits, ctx.cfg.k_trunc);
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(ctx.gates.truncate(&z[r], f, k)?);
    }
    Ok(out)
}

/// Geometry of a pooling over an activation of shape `s` (`[c, h, w]`).
pub(crate) fn pool_shape(n: usize, s: &[usize], k: usize, stride: usize, pad: usize) -> PoolShape {
    PoolShape {
        n,
        c: s[0],
        h: s[1],
        w: s[2],
        k,
        stride,
        pad,
    }
}

/// Adds a per-output bias (`i % out` for linear, per channel for conv) to
/// a product whose output shape (without batch) is `next`.
pub(crate) fn add_bias(z: &mut [u64], b: &[u64], next: &[usize]) {
    if next.len() == 1 {
        for row in z.chunks_mut(next[0]) {
            for (v, b) in row.iter_mut().zip(b) {
                *v = v.wrapping_add(*b);
            }
        }
    } else {
        let (c, plane) = (next[0], next[1] * next[2]);
        for (p, chunk) in z.chunks_mut(plane.max(1)).enumerate() {
            let b = b[p % c];
            for v in chunk {
                *v = v.wrapping_add(b);
            }
        }
    }
}

/// Encodes a layer's `weight` at `f` bits and `bias` at `2f` (added to the
/// product before its truncation) into the store, under their own names.
pub(crate) fn encode_weight_bias(
    w: &Weights,
    cfg: &Config,
    out: &mut Params,
    weight: &str,
    bias: &str,
) -> Result<(), NnError> {
    let (ws, wd) = crate::weights::param(w, weight)?;
    out.insert(weight, encode(cfg.frac_bits, ws, wd)?);
    let (bs, bd) = crate::weights::param(w, bias)?;
    out.insert(bias, encode(2 * cfg.frac_bits, bs, bd)?);
    Ok(())
}

/// Encodes float values at `frac` fractional bits into a tensor of `shape`.
pub(crate) fn encode(
    frac: u32,
    shape: &[usize],
    v: &[f32],
) -> Result<ariann_ring::RingTensor<u64>, NnError> {
    let fp = FixedPoint::new(frac);
    let vals = v
        .iter()
        .map(|x| fp.encode::<u64>(f64::from(*x)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ariann_ring::RingTensor::from_vec(shape, vals)?)
}
