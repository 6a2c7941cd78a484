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
pub mod subsample;

pub use avgpool::{AdaptiveAvgPool2d, AvgPool2d};
pub use batchnorm::BatchNorm2d;
pub use conv2d::Conv2d;
pub use linear::Linear;
pub use maxpool::MaxPool2d;
pub use residual::Residual;
pub use subsample::SubsamplePad;

use crate::error::NnError;
use crate::model::{Config, Layer, Variant};
use crate::params::Params;
use crate::profile::{Mark, Profiler};
use crate::weights::Weights;
use ariann_mpc::gates::cmp::ReluOutput;
use ariann_mpc::gates::pool::{MaxPoolOutput, PoolShape};
use ariann_mpc::{BilinearTape, Gates};
use ariann_ring::FixedPoint;
use std::collections::BTreeMap;

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
    /// The per-layer profile being collected, if any
    /// ([`crate::forward_profiled`]); `None` in every other run.
    pub profile: Option<Profiler>,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("batch", &self.batch)
            .field("cfg", &self.cfg)
            .field("path", &self.path)
            .field("profile", &self.profile.is_some())
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

    /// Appends `(name, shape)` of the fixed-point tensors it keeps in a
    /// training store ([`Params::train_spec`]): the same as
    /// [`LayerOp::fixed_parameters`] except for a batch-norm, which trains
    /// its PyTorch tensors instead of its folded affine map.
    fn train_parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        self.fixed_parameters(out);
    }

    /// Encodes its float parameters into the tensors of
    /// [`LayerOp::train_parameters`].
    fn encode_train_parameters(
        &self,
        w: &Weights,
        cfg: &Config,
        out: &mut Params,
    ) -> Result<(), NnError> {
        self.encode_parameters(w, cfg, out)
    }

    /// Float forward pass of a batch in training mode (what
    /// [`crate::FloatTrainer`] runs): the same as [`LayerOp::forward_float`]
    /// except for a batch-norm, which normalises with the batch's statistics.
    fn forward_float_train(
        &self,
        ctx: &FloatCtx<'_>,
        x: Vec<f64>,
        shape: &[usize],
    ) -> Result<Vec<f64>, NnError> {
        self.forward_float(ctx, x, shape)
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

    /// Whether the forward pass ends with a truncation by `f` bits that
    /// [`LayerOp::forward_untruncated`] can leave out (products and affine
    /// maps; a residual block whose body ends with one).
    fn defers_truncation(&self) -> bool {
        false
    }

    /// The forward pass without its final truncation: the output at `2f`
    /// fractional bits (the small-key variant fuses the truncation into the
    /// next ReLU). Only for layers that [defer it](LayerOp::defers_truncation).
    fn forward_untruncated(
        &self,
        _ctx: &mut Ctx<'_>,
        _x: Vec<u64>,
        _shape: &[usize],
    ) -> Result<Vec<u64>, NnError> {
        Err(NnError::Description(format!(
            "{} has no truncation to leave out",
            std::any::type_name::<Self>()
                .rsplit("::")
                .next()
                .unwrap_or("layer")
        )))
    }

    /// Training forward pass on the gate backend: the output and what the
    /// backward pass needs ([`Tape`]). `need_dx` says whether the backward
    /// pass must produce the input's gradient (false before the first layer
    /// with parameters). Layers without a backward pass refuse.
    fn forward_train(
        &self,
        _ctx: &mut Ctx<'_>,
        _x: Vec<u64>,
        _shape: &[usize],
        _need_dx: bool,
    ) -> Result<(Vec<u64>, Tape), NnError> {
        Err(self.untrainable())
    }

    /// Backward pass on the gate backend: from the output's gradient `dy`
    /// (`f` fractional bits, this party's shares) and the forward pass's
    /// tape, adds the parameters' gradients to `grads` (weights of products
    /// at `2f` bits, untruncated; biases at `f`) and returns the input's
    /// gradient at `f` bits if the forward pass was asked for it.
    fn backward(
        &self,
        _ctx: &mut Ctx<'_>,
        _tape: Tape,
        _dy: Vec<u64>,
        _shape: &[usize],
        _grads: &mut Params,
    ) -> Result<Option<Vec<u64>>, NnError> {
        Err(self.untrainable())
    }

    /// Float backward pass (the cleartext reference): from the layer's
    /// input `x` (of `shape`) and the output's gradient, adds the
    /// parameters' gradients to `grads` and returns the input's gradient.
    fn backward_float(
        &self,
        _ctx: &FloatCtx<'_>,
        _x: &[f64],
        _shape: &[usize],
        _dy: Vec<f64>,
        _grads: &mut FloatGrads,
    ) -> Result<Vec<f64>, NnError> {
        Err(self.untrainable())
    }

    /// The error of a layer without a backward pass.
    fn untrainable(&self) -> NnError {
        NnError::Untrainable(
            std::any::type_name::<Self>()
                .rsplit("::")
                .next()
                .unwrap_or("layer")
                .to_string(),
        )
    }
}

/// Float gradients by parameter name (the same names and layouts as
/// [`Weights`]).
pub type FloatGrads = BTreeMap<String, Vec<f64>>;

/// What a layer's training forward pass keeps for its backward pass.
#[derive(Debug)]
pub enum Tape {
    /// Nothing (linear layers without parameters).
    None,
    /// A product's tape (the masked operands the backward reuses).
    Product(BilinearTape<u64>),
    /// Shares of the DReLU bits of a ReLU.
    Bits(Vec<u64>),
    /// Shares of a max-pool's selection bits: per chunk of planes, per
    /// level of the comparison tree, one bit per compared pair.
    Tree(Vec<Vec<Vec<u64>>>),
    /// A residual block's branches.
    Residual(Tapes, Tapes),
    /// A training batch-norm's normalised input, scale and updated running
    /// statistics.
    BatchNorm(Box<batchnorm::BnTape>),
}

/// Each layer's tape with its input shape.
pub type Tapes = Vec<(Tape, Vec<usize>)>;

/// Each layer's float input with its shape.
pub(crate) type FloatInputs = Vec<(Vec<f64>, Vec<usize>)>;

/// Whether a layer has parameters.
pub(crate) fn has_params(l: &Layer) -> bool {
    let mut p = Vec::new();
    l.op().parameters(&mut p);
    !p.is_empty()
}

/// Training forward pass of `layers` (at `prefix`): the output, its shape
/// and the tapes with each layer's input shape.
pub(crate) fn forward_train_layers(
    ctx: &mut Ctx<'_>,
    layers: &[Layer],
    prefix: &str,
    mut x: Vec<u64>,
    shape: &[usize],
    mut need_dx: bool,
) -> Result<(Vec<u64>, Vec<usize>, Tapes), NnError> {
    let mut shape = shape.to_vec();
    let mut tapes = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let path = l.path(prefix, i);
        let next = out_shape(l, &path, &shape)?;
        let outer = std::mem::replace(&mut ctx.path, path);
        let (y, tape) = l
            .op()
            .forward_train(ctx, x, &shape, need_dx)
            .map_err(|e| e.at(&ctx.path))?;
        ctx.path = outer;
        tapes.push((tape, shape));
        need_dx |= has_params(l);
        x = y;
        shape = next;
    }
    Ok((x, shape, tapes))
}

/// Backward pass of `layers` (at `prefix`) from the output's gradient;
/// returns the input's gradient if the forward pass needed it.
pub(crate) fn backward_layers(
    ctx: &mut Ctx<'_>,
    layers: &[Layer],
    prefix: &str,
    tapes: Tapes,
    dy: Vec<u64>,
    grads: &mut Params,
) -> Result<Option<Vec<u64>>, NnError> {
    if tapes.len() != layers.len() {
        return Err(NnError::Description(format!(
            "{} tapes for {} layers",
            tapes.len(),
            layers.len()
        )));
    }
    let mut g = Some(dy);
    for (i, (l, (tape, shape))) in layers.iter().zip(tapes).enumerate().rev() {
        let Some(dy) = g else { break };
        let path = l.path(prefix, i);
        let outer = std::mem::replace(&mut ctx.path, path);
        g = l
            .op()
            .backward(ctx, tape, dy, &shape, grads)
            .map_err(|e| e.at(&ctx.path))?;
        ctx.path = outer;
    }
    Ok(g)
}

/// Float training forward pass: the output and every layer's input.
pub(crate) fn float_train_layers(
    ctx: &FloatCtx<'_>,
    layers: &[Layer],
    prefix: &str,
    mut x: Vec<f64>,
    shape: &[usize],
) -> Result<(Vec<f64>, FloatInputs), NnError> {
    let mut shape = shape.to_vec();
    let mut inputs = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let path = l.path(prefix, i);
        let next = out_shape(l, &path, &shape)?;
        let inner = FloatCtx {
            weights: ctx.weights,
            batch: ctx.batch,
            path,
        };
        let y = l
            .op()
            .forward_float_train(&inner, x.clone(), &shape)
            .map_err(|e| e.at(&inner.path))?;
        inputs.push((x, shape));
        x = y;
        shape = next;
    }
    Ok((x, inputs))
}

/// Float backward pass of `layers` from the output's gradient.
pub(crate) fn float_backward_layers(
    ctx: &FloatCtx<'_>,
    layers: &[Layer],
    prefix: &str,
    inputs: &[(Vec<f64>, Vec<usize>)],
    mut dy: Vec<f64>,
    grads: &mut FloatGrads,
) -> Result<Vec<f64>, NnError> {
    for (i, (l, (x, shape))) in layers.iter().zip(inputs).enumerate().rev() {
        let inner = FloatCtx {
            weights: ctx.weights,
            batch: ctx.batch,
            path: l.path(prefix, i),
        };
        dy = l
            .op()
            .backward_float(&inner, x, shape, dy, grads)
            .map_err(|e| e.at(&inner.path))?;
    }
    Ok(dy)
}

/// Adds `v` into the gradient `name` of `grads` (a zero tensor of `shape`
/// if absent).
pub(crate) fn add_grad(
    grads: &mut Params,
    name: &str,
    shape: &[usize],
    v: &[u64],
) -> Result<(), NnError> {
    if grads.get(name).is_err() {
        grads.insert(name, ariann_ring::RingTensor::zeros(shape));
    }
    let g = grads.get_mut(name)?;
    if g.len() != v.len() {
        return Err(NnError::TensorShape {
            name: name.to_string(),
            expected: g.shape().to_vec(),
            got: vec![v.len()],
        });
    }
    for (a, b) in g.as_mut_slice().iter_mut().zip(v) {
        *a = a.wrapping_add(*b);
    }
    Ok(())
}

/// Adds `v` into the float gradient `name`.
pub(crate) fn add_float_grad(grads: &mut FloatGrads, name: &str, v: &[f64]) {
    let g = grads
        .entry(name.to_string())
        .or_insert_with(|| vec![0.0; v.len()]);
    for (a, b) in g.iter_mut().zip(v) {
        *a += b;
    }
}

/// Per-output sums of a gradient (`i % out` for a linear layer's `[batch,
/// out]`, per channel for a convolution's `[batch, c, h, w]`): the bias's
/// gradient.
pub(crate) fn bias_grad<T: Copy + Default>(
    dz: &[T],
    next: &[usize],
    add: impl Fn(T, T) -> T,
) -> Vec<T> {
    let c = next[0];
    let plane: usize = next[1..].iter().product::<usize>().max(1);
    let mut out = vec![T::default(); c];
    for (p, chunk) in dz.chunks(plane).enumerate() {
        let o = &mut out[p % c];
        for v in chunk {
            *o = add(*o, *v);
        }
    }
    out
}

/// Truncation of a backward product (`2f` -> `f` bits), rounding as the
/// training configuration says: floor, or to nearest (`+ 2^(f-1)` first,
/// a local addition by party 0).
pub(crate) fn truncate_grad(ctx: &mut Ctx<'_>, z: &[u64]) -> Result<Vec<u64>, NnError> {
    let f = ctx.cfg.frac_bits;
    if ctx.cfg.rounding == crate::model::Rounding::Nearest {
        let half = vec![1u64 << (f - 1); z.len()];
        let z = ctx.gates.add_public(z, &half)?;
        truncate_train(ctx, &z, f)
    } else {
        truncate_train(ctx, z, f)
    }
}

/// Truncations by `bits` in training (forward products, backward
/// products, loss and optimiser), in bundles of at most `max_gate_elems`
/// elements on the `k_trunc`-bit window: the one-round `trunc` gate, or with
/// the small-key variant the two-round `trunc_small` (a 1-bit borrow DCF,
/// about half the key bytes); both are the exact floor, the same bits. With
/// [`Rounding::Stochastic`](crate::Rounding::Stochastic), the one-round
/// `trunc_stoch` (no FSS key) for either variant.
pub(crate) fn truncate_train(ctx: &mut Ctx<'_>, z: &[u64], bits: u32) -> Result<Vec<u64>, NnError> {
    let k = ctx.cfg.k_trunc;
    truncate_train_k(ctx, z, bits, k)
}

/// [`truncate_train`] on a `k`-bit window.
pub(crate) fn truncate_train_k(
    ctx: &mut Ctx<'_>,
    z: &[u64],
    bits: u32,
    k: u32,
) -> Result<Vec<u64>, NnError> {
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(match (ctx.cfg.rounding, ctx.cfg.variant) {
            (crate::model::Rounding::Stochastic, _) => {
                ctx.gates.truncate_stochastic(&z[r], bits, k)?
            }
            (_, Variant::OneRound) => ctx.gates.truncate(&z[r], bits, k)?,
            (_, Variant::SmallKey) => ctx.gates.truncate_small(&z[r], bits, k)?,
        });
    }
    Ok(out)
}

/// Runs `layers` (at `prefix`) on the backend; returns the output and its shape.
///
/// With the small-key variant ([`Variant::SmallKey`]), a layer that ends
/// with a truncation ([`LayerOp::defers_truncation`]) and is followed by a
/// ReLU runs without its truncation, and the ReLU gate truncates
/// ([`trunc_relu`]): `max(floor(z / 2^f), 0)` is what the two gates give,
/// so the outputs are the same bit for bit, with one gate less.
pub(crate) fn forward_layers(
    ctx: &mut Ctx<'_>,
    layers: &[Layer],
    prefix: &str,
    x: Vec<u64>,
    shape: &[usize],
) -> Result<(Vec<u64>, Vec<usize>), NnError> {
    run_layers(ctx, layers, prefix, x, shape, false)
}

/// [`forward_layers`], optionally leaving out the last layer's truncation
/// (`untruncated_end`: the caller checked that the last layer
/// [defers it](LayerOp::defers_truncation)); the output is then at `2f`
/// fractional bits.
pub(crate) fn run_layers(
    ctx: &mut Ctx<'_>,
    layers: &[Layer],
    prefix: &str,
    mut x: Vec<u64>,
    shape: &[usize],
    untruncated_end: bool,
) -> Result<(Vec<u64>, Vec<usize>), NnError> {
    let mut shape = shape.to_vec();
    let mut i = 0;
    while i < layers.len() {
        let l = &layers[i];
        let path = l.path(prefix, i);
        let next = out_shape(l, &path, &shape)?;
        let last = i + 1 == layers.len();
        let fuse = !last
            && ctx.cfg.variant == Variant::SmallKey
            && matches!(layers[i + 1], Layer::Relu)
            && l.op().defers_truncation();
        let mark = profile_enter(ctx, l, &path, &next, false);
        let outer = std::mem::replace(&mut ctx.path, path);
        x = if fuse || (last && untruncated_end) {
            l.op().forward_untruncated(ctx, x, &shape)
        } else {
            l.op().forward(ctx, x, &shape)
        }
        .map_err(|e| e.at(&ctx.path))?;
        ctx.path = outer;
        profile_exit(ctx, mark);
        if fuse {
            // Layer i + 1, the ReLU, with layer i's truncation in its gate.
            let path = layers[i + 1].path(prefix, i + 1);
            let mark = profile_enter(ctx, &layers[i + 1], &path, &next, true);
            let outer = std::mem::replace(&mut ctx.path, path);
            x = trunc_relu(ctx, &x).map_err(|e| e.at(&ctx.path))?;
            ctx.path = outer;
            profile_exit(ctx, mark);
            i += 1;
        }
        shape = next;
        i += 1;
    }
    Ok((x, shape))
}

/// Starts `l`'s profile row if the run is profiled.
fn profile_enter(
    ctx: &mut Ctx<'_>,
    l: &Layer,
    path: &str,
    out_shape: &[usize],
    fused_truncation: bool,
) -> Option<Mark> {
    let gates = &*ctx.gates;
    ctx.profile
        .as_mut()
        .map(|p| p.enter(gates, l, path, out_shape, fused_truncation))
}

/// Ends the profile row of `mark`, if any.
fn profile_exit(ctx: &mut Ctx<'_>, mark: Option<Mark>) {
    if let (Some(p), Some(mark)) = (ctx.profile.as_mut(), mark) {
        p.exit(&*ctx.gates, mark);
    }
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
    l.op()
        .out_shape(shape)
        .ok_or_else(|| crate::model::layer_shape_error(l, path.to_string(), shape))
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
/// `max_gate_elems` elements (one gate each): the one-round `trunc` gate,
/// or with the small-key variant the two-round `trunc_small` (the borrow
/// from a one-bit DCF: at `f = 16` 178 B of key per element against 390 B,
/// one more round). Both are the exact floor, so the outputs are the same
/// bit for bit. (A truncation followed by a ReLU is fused into the ReLU's
/// gate instead, [`trunc_relu`].)
pub(crate) fn truncate(ctx: &mut Ctx<'_>, z: &[u64]) -> Result<Vec<u64>, NnError> {
    let (f, k) = (ctx.cfg.frac_bits, ctx.cfg.k_trunc);
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(match ctx.cfg.variant {
            Variant::OneRound => ctx.gates.truncate(&z[r], f, k)?,
            Variant::SmallKey => ctx.gates.truncate_small(&z[r], f, k)?,
        });
    }
    Ok(out)
}

/// `max(floor(z / 2^f), 0)` from `z` at `2f` fractional bits: the fused
/// truncation and ReLU gate of the small-key variant, per bundle of at most
/// `max_gate_elems` elements (window: the ReLU's, `k_cmp` bits after the
/// truncation).
pub(crate) fn trunc_relu(ctx: &mut Ctx<'_>, z: &[u64]) -> Result<Vec<u64>, NnError> {
    let (f, k) = (ctx.cfg.frac_bits, ctx.cfg.k_cmp);
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(ctx.gates.trunc_relu(&z[r], f, k)?);
    }
    Ok(out)
}

/// The ReLU gate of the configured [`Variant`] (shares of `max(x, 0)` and
/// of `[x >= 0]`).
pub(crate) fn relu_gate(ctx: &mut Ctx<'_>, x: &[u64]) -> Result<ReluOutput<u64>, NnError> {
    let k = ctx.cfg.k_cmp;
    Ok(match ctx.cfg.variant {
        Variant::OneRound => ctx.gates.relu(x, k)?,
        Variant::SmallKey => ctx.gates.relu_small(x, k)?,
    })
}

/// The max-pool gate of the configured [`Variant`].
pub(crate) fn max_pool_gate(
    ctx: &mut Ctx<'_>,
    x: &[u64],
    shape: PoolShape,
) -> Result<MaxPoolOutput<u64>, NnError> {
    let k = ctx.cfg.k_cmp;
    Ok(match ctx.cfg.variant {
        Variant::OneRound => ctx.gates.max_pool(x, shape, k)?,
        Variant::SmallKey => ctx.gates.max_pool_small(x, shape, k)?,
    })
}

/// The argmax gate of the configured [`Variant`] (one-hot rows).
pub(crate) fn argmax_gate(
    ctx: &mut Ctx<'_>,
    x: &[u64],
    rows: usize,
    n: usize,
) -> Result<Vec<u64>, NnError> {
    let k = ctx.cfg.k_cmp;
    Ok(match ctx.cfg.variant {
        Variant::OneRound => ctx.gates.argmax(x, rows, n, k)?,
        Variant::SmallKey => ctx.gates.argmax_small(x, rows, n, k)?,
    })
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

/// Encodes a layer's `weight` at `f` bits and its `bias`, if it has one, at
/// `2f` (added to the product before its truncation) into the store, under
/// their own names.
pub(crate) fn encode_weight_bias(
    w: &Weights,
    cfg: &Config,
    out: &mut Params,
    weight: &str,
    bias: Option<&str>,
) -> Result<(), NnError> {
    let (ws, wd) = crate::weights::param(w, weight)?;
    out.insert(weight, encode(cfg.frac_bits, ws, wd)?);
    if let Some(bias) = bias {
        let (bs, bd) = crate::weights::param(w, bias)?;
        out.insert(bias, encode(2 * cfg.frac_bits, bs, bd)?);
    }
    Ok(())
}

/// The default of a layer's `bias` field (a bias, as in PyTorch).
pub(crate) fn yes() -> bool {
    true
}

/// Whether `bias` is the default (`true`): the field is then left out of
/// the JSON, so the description of a model with biases (and every digest
/// over it) is the same as before the field existed.
pub(crate) fn is_true(bias: &bool) -> bool {
    *bias
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
