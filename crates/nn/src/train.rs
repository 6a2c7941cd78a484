//! Training: one step is the layers' training forward pass, the loss's
//! gradient, the layers' backward passes and the optimiser's update, all on
//! a gate backend ([`Gates`]): privately on shares, in cleartext fixed
//! point ([`Clear`]) or on a [`Recorder`] (whose trace is the dealer's plan
//! for one step; a training job repeats it step after step). A float
//! reference ([`FloatTrainer`]) runs the same step in `f64` for the
//! comparisons.
//!
//! # Fixed point
//!
//! Activations, weights, gradients and optimiser state carry `f` fractional
//! bits ([`Config::frac_bits`]); biases `2f` (as in inference: they are added
//! to a product before its truncation). A product's backward gives the
//! weight's gradient at `2f` bits; it is not truncated on its own but inside
//! the optimiser's first truncation. Every truncation is the exact one-round
//! gate (no error, no failure probability); [`Config::rounding`] says whether
//! it floors or rounds to nearest (the default for training should be
//! [`Rounding::Nearest`]: flooring the updates biases every weight upwards
//! by half an ulp per step).
//!
//! # Batch
//!
//! The batch size must be a power of two `B = 2^b`: the division by `B` of
//! the loss's gradient is part of a truncation (by `f + b` bits instead of
//! `f`), not a separate step.
//!
//! # What the parties see
//!
//! Nothing but masked openings: the labels are shared by the data owner
//! ([`encode_targets`], then [`Params`]-like sharing of the vector), the
//! weights by the model owner, and the loss is never computed privately
//! (its gradient is); [`StepOutput`] holds shares, which only the caller may
//! reconstruct (the in-process example does, for its report).

use crate::error::NnError;
use crate::layers::{
    Ctx, FloatCtx, FloatGrads, backward_layers, chunks, float_backward_layers, float_train_layers,
    forward_train_layers,
};
use crate::model::{Config, Model, Rounding};
use crate::params::Params;
use crate::weights::Weights;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::gates::spline::SplineFn;
use ariann_mpc::{Gates, Plan, Recorder};
use ariann_ring::RingTensor;

/// The loss the model trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Softmax cross-entropy, averaged over the batch (PyTorch's
    /// `CrossEntropyLoss()`). Privately: the row maximum (one-hot argmax and
    /// a select, 3 rounds) is subtracted; `e^u` on `u <= 0` and the
    /// reciprocal of the row sum (in `[1, classes]`) are one-round spline
    /// gates ([`SplineFn`]: `exp` within `2^-10` absolute, `recip` within
    /// `2^-8` relative), each followed by a truncation; then one product
    /// `e * (1/s)` whose truncation by `f + log2 B` bits divides by the batch;
    /// last, each row's sum (which the splines' errors leave nonzero) moves
    /// onto its maximum's entry, so every row of the gradient sums to 0
    /// exactly. 10 rounds; the gradient's error is below `2^-8` relative plus a few
    /// ulps. Needs `classes^2 <= 2^(f-4)` (for `recip`).
    CrossEntropy,
    /// Mean squared error against the one-hot labels, averaged over the
    /// batch and the classes (PyTorch's `MSELoss()`), as ARIANN trains.
    Mse,
}

/// Optimiser and loss settings of a training job (public: part of the
/// job's description). The learning rate is given per step
/// ([`train_step`]), so a schedule changes no key.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// SGD momentum `mu` (`v = mu v + g + wd W; W -= lr v`); 0 for plain SGD.
    pub momentum: f64,
    /// Weight decay `wd` (on weights, not on biases).
    pub weight_decay: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: Loss::Mse,
            momentum: 0.9,
            weight_decay: 0.0,
        }
    }
}

/// One party's training state: its shares of the parameters and of the
/// optimiser's state (SGD's velocity, one tensor per parameter, `f` bits).
pub struct TrainState {
    /// Shares of the parameters (a training store, [`Params::train_spec`]:
    /// as [`Params`] holds them for inference, except for batch-norms).
    pub params: Params,
    /// Shares of the velocity, by parameter name.
    pub velocity: Params,
}

impl std::fmt::Debug for TrainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainState")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl TrainState {
    /// A state with zero velocity.
    pub fn new(params: Params) -> Self {
        let mut velocity = Params::new();
        for (name, t) in params.iter() {
            velocity.insert(name, RingTensor::zeros(t.shape()));
        }
        TrainState { params, velocity }
    }
}

/// What a step returns: this party's shares of the model's output (logits)
/// for the batch.
#[derive(Debug)]
pub struct StepOutput {
    /// Shares of the logits, `batch x classes`, `f` bits.
    pub logits: Vec<u64>,
}

/// `log2(batch)`, or an error if the batch is not a power of two.
pub fn batch_shift(batch: usize) -> Result<u32, NnError> {
    if batch.is_power_of_two() {
        Ok(batch.trailing_zeros())
    } else {
        Err(NnError::Training(format!(
            "the batch ({batch}) must be a power of two: the loss's gradient divides by it with a shift"
        )))
    }
}

/// The number of classes (the model's output size), checked.
fn classes(model: &Model) -> Result<usize, NnError> {
    let out = model.shapes()?.pop().unwrap_or_default();
    match out.as_slice() {
        [c] if *c >= 2 => Ok(*c),
        _ => Err(NnError::Training(format!(
            "training needs a model with one output per class, not {out:?}"
        ))),
    }
}

/// The data owner's encoding of the labels as the loss's targets (then
/// secret-shared): one-hot rows at `f` bits.
pub fn encode_targets(
    labels: &[usize],
    classes: usize,
    loss: Loss,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let b = labels.len().trailing_zeros();
    let one = match loss {
        Loss::Mse => 1u64 << cfg.frac_bits,
        // The target divided by the batch: the one-hot at f - log2 B bits.
        Loss::CrossEntropy => {
            batch_shift(labels.len())?;
            if b > cfg.frac_bits {
                return Err(NnError::Training(format!(
                    "a batch of {} needs at least {b} fractional bits",
                    labels.len()
                )));
            }
            1u64 << (cfg.frac_bits - b)
        }
    };
    let mut t = vec![0u64; labels.len() * classes];
    for (row, &l) in labels.iter().enumerate() {
        if l >= classes {
            return Err(NnError::Training(format!(
                "label {l} of example {row} is not below the number of classes ({classes})"
            )));
        }
        t[row * classes + l] = one;
    }
    Ok(t)
}

/// A public real constant at `f` bits.
fn fixed(v: f64, f: u32) -> Result<u64, NnError> {
    Ok(ariann_ring::FixedPoint::new(f).encode::<u64>(v)?)
}

/// Exact truncation by `bits` with the configured rounding, in bundles of
/// at most `max_gate_elems` (one gate each).
fn shift(ctx: &mut Ctx<'_>, z: &[u64], bits: u32) -> Result<Vec<u64>, NnError> {
    let k = ctx.cfg.k_trunc;
    let z = if ctx.cfg.rounding == Rounding::Nearest {
        ctx.gates
            .add_public(z, &vec![1u64 << (bits - 1); z.len()])?
    } else {
        z.to_vec()
    };
    let mut out = Vec::with_capacity(z.len());
    for r in chunks(z.len(), ctx.cfg.max_gate_elems) {
        out.extend(ctx.gates.truncate(&z[r], bits, k)?);
    }
    Ok(out)
}

/// The loss's gradient with respect to the logits `z` (shares, `f` bits),
/// at `f` bits, divided by the batch.
fn loss_grad(
    ctx: &mut Ctx<'_>,
    loss: Loss,
    z: &[u64],
    targets: &[u64],
    classes: usize,
) -> Result<Vec<u64>, NnError> {
    let b = batch_shift(ctx.batch)?;
    match loss {
        Loss::Mse => {
            // 2 (z - t) / (B C): times 2/C at f bits (local), then one
            // truncation by f + b.
            let d: Vec<u64> = z
                .iter()
                .zip(targets)
                .map(|(z, t)| z.wrapping_sub(*t))
                .collect();
            let c = fixed(2.0 / classes as f64, ctx.cfg.frac_bits)?;
            let scaled = ctx.gates.mul_public(&d, c);
            shift(ctx, &scaled, ctx.cfg.frac_bits + b)
        }
        Loss::CrossEntropy => {
            let (f, k) = (ctx.cfg.frac_bits, ctx.cfg.k_cmp);
            let rows = ctx.batch;
            let len = z.len();
            let max_fn = u32::try_from(classes)
                .map_err(|_| NnError::Training(format!("{classes} classes")))?;
            // The row maximum: one-hot argmax, then select (3 rounds).
            let oh = crate::layers::argmax_gate(ctx, z, rows, classes)?;
            let sel = ctx.gates.bilinear(
                Bilinear::Mul { len },
                &RingTensor::from_vec(&[len], oh.clone())?,
                &RingTensor::from_vec(&[len], z.to_vec())?,
            )?;
            let max: Vec<u64> = sel
                .as_slice()
                .chunks(classes)
                .map(|r| r.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
                .collect();
            let u: Vec<u64> = z
                .iter()
                .enumerate()
                .map(|(i, v)| v.wrapping_sub(max[i / classes]))
                .collect();
            // e^u (u <= 0) and the reciprocal of the row sums.
            let e = ctx.gates.spline(SplineFn::Exp { f }, &u, k)?;
            let e = shift(ctx, &e, f)?;
            let sums: Vec<u64> = e
                .chunks(classes)
                .map(|r| r.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
                .collect();
            let r = ctx
                .gates
                .spline(SplineFn::Recip { f, max: max_fn }, &sums, k)?;
            let r = shift(ctx, &r, f)?;
            let rb: Vec<u64> = (0..len).map(|i| r[i / classes]).collect();
            // softmax / B = (e * 1/s) >> (f + b), minus the target / B.
            let p = ctx.gates.bilinear(
                Bilinear::Mul { len },
                &RingTensor::from_vec(&[len], e)?,
                &RingTensor::from_vec(&[len], rb)?,
            )?;
            let p = shift(ctx, p.as_slice(), f + b)?;
            let d: Vec<u64> = p
                .iter()
                .zip(targets)
                .map(|(p, t)| p.wrapping_sub(*t))
                .collect();
            // A softmax row sums to 1 and its gradient's row to 0; the
            // splines' errors (up to 2^-8 relative) break that, and a row
            // sum left in every step drifts all logits together (through
            // the last layer's bias and weights). Moving each row's sum onto
            // its maximum's entry (the one-hot argmax from above, one
            // product) makes every row sum exactly 0.
            let sums: Vec<u64> = d
                .chunks(classes)
                .map(|r| r.iter().fold(0u64, |a, v| a.wrapping_add(*v)))
                .collect();
            let sb: Vec<u64> = (0..len).map(|i| sums[i / classes]).collect();
            let fix = ctx.gates.bilinear(
                Bilinear::Mul { len },
                &RingTensor::from_vec(&[len], oh)?,
                &RingTensor::from_vec(&[len], sb)?,
            )?;
            Ok(d.iter()
                .zip(fix.as_slice())
                .map(|(d, c)| d.wrapping_sub(*c))
                .collect())
        }
    }
}

/// Whether the store's tensor `name` is a bias (stored at `2f` bits, its
/// gradient at `f`) rather than a weight (`f` bits, gradient at `2f`).
fn is_bias(name: &str) -> bool {
    name.ends_with(".bias")
}

/// Whether the store's tensor `name` is a batch-norm's running statistic
/// (`f` bits): not trained by the optimiser but replaced, each step, by the
/// value the layer's backward pass leaves in the gradients (PyTorch's
/// momentum-0.1 update, computed privately in the forward pass).
fn is_buffer(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

/// Replaces the running statistics of `params` by their new values from
/// the backward pass (`grads`).
fn update_buffers(params: &mut Params, grads: &Params) -> Result<(), NnError> {
    let names: Vec<String> = params
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| is_buffer(n))
        .collect();
    for name in names {
        let new = grads
            .get(&name)
            .map_err(|_| NnError::Training(format!("no new value for `{name}`")))?;
        let p = params.get_mut(&name)?;
        if p.shape() != new.shape() {
            return Err(NnError::Training(format!(
                "`{name}`: the new value's shape differs"
            )));
        }
        p.as_mut_slice().copy_from_slice(new.as_slice());
    }
    Ok(())
}

/// SGD with momentum and weight decay on the shares, two rounds for the
/// whole model: `v' = (mu v + g + wd W) >> f` for every tensor in one
/// batch of truncations, then `W' = W - (lr v') >> f` for the weights (a
/// bias at `2f` bits takes `lr v'` untruncated).
fn sgd(
    ctx: &mut Ctx<'_>,
    state: &mut TrainState,
    grads: &Params,
    tcfg: &TrainConfig,
    lr: f64,
) -> Result<(), NnError> {
    let f = ctx.cfg.frac_bits;
    let mu = fixed(tcfg.momentum, f)?;
    let wd = fixed(tcfg.weight_decay, f)?;
    let lr = fixed(lr, f)?;
    let names: Vec<String> = state
        .params
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| !is_buffer(n))
        .collect();
    // Round 1: the velocities.
    let mut acc = Vec::new();
    let mut spans = Vec::with_capacity(names.len());
    for name in &names {
        let w = state.params.get(name)?.as_slice();
        let v = state.velocity.get(name)?.as_slice();
        let g = grads
            .get(name)
            .map_err(|_| NnError::Training(format!("no gradient for parameter `{name}`")))?;
        let g = g.as_slice();
        if g.len() != w.len() || v.len() != w.len() {
            return Err(NnError::Training(format!(
                "`{name}`: sizes of gradient and state differ"
            )));
        }
        let start = acc.len();
        let mv = ctx.gates.mul_public(v, mu);
        if is_bias(name) {
            let g2 = ctx.gates.mul_public(g, 1u64 << f);
            acc.extend(mv.iter().zip(&g2).map(|(a, b)| a.wrapping_add(*b)));
        } else {
            let dw = ctx.gates.mul_public(w, wd);
            acc.extend(
                mv.iter()
                    .zip(g)
                    .zip(&dw)
                    .map(|((a, b), c)| a.wrapping_add(*b).wrapping_add(*c)),
            );
        }
        spans.push(start..acc.len());
    }
    let v_new = shift(ctx, &acc, f)?;
    // Round 2: the weights' steps.
    let mut steps = Vec::new();
    for (name, span) in names.iter().zip(&spans) {
        if !is_bias(name) {
            steps.extend(ctx.gates.mul_public(&v_new[span.clone()], lr));
        }
    }
    let steps = shift(ctx, &steps, f)?;
    let mut at = 0;
    for (name, span) in names.iter().zip(spans) {
        let v = &v_new[span];
        state
            .velocity
            .get_mut(name)?
            .as_mut_slice()
            .copy_from_slice(v);
        let p = state.params.get_mut(name)?.as_mut_slice();
        if is_bias(name) {
            let step = ctx.gates.mul_public(v, lr);
            for (p, s) in p.iter_mut().zip(step) {
                *p = p.wrapping_sub(s);
            }
        } else {
            for (p, s) in p.iter_mut().zip(&steps[at..at + v.len()]) {
                *p = p.wrapping_sub(*s);
            }
            at += v.len();
        }
    }
    Ok(())
}

/// One training step on any backend: `x` is this party's share of the
/// encoded input batch, `targets` its share of [`encode_targets`]; updates
/// `state` in place with learning rate `lr`.
#[allow(clippy::too_many_arguments)]
pub fn train_step(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    state: &mut TrainState,
    x: &[u64],
    targets: &[u64],
    batch: usize,
    cfg: &Config,
    tcfg: &TrainConfig,
    lr: f64,
) -> Result<StepOutput, NnError> {
    if gates.reuses_weight_masks() {
        return Err(NnError::WeightReuseInTraining);
    }
    model.shapes()?;
    state.params.check_train(model)?;
    batch_shift(batch)?;
    let classes = classes(model)?;
    let n_in = batch
        .checked_mul(crate::layers::checked_len(&model.input)?)
        .ok_or_else(|| NnError::Overflow(format!("batch {batch}")))?;
    if x.len() != n_in {
        return Err(NnError::InputSize {
            expected: n_in,
            got: x.len(),
        });
    }
    if targets.len() != batch * classes {
        return Err(NnError::Training(format!(
            "{} target values for a batch of {batch} with {classes} classes",
            targets.len()
        )));
    }
    if !(0.0..=1.0).contains(&tcfg.momentum) || tcfg.weight_decay < 0.0 || lr.is_nan() || lr <= 0.0
    {
        return Err(NnError::Training(format!(
            "invalid hyper-parameters: momentum {}, weight decay {}, learning rate {lr}",
            tcfg.momentum, tcfg.weight_decay
        )));
    }
    let (z, grads) = gradients(
        &mut *gates,
        model,
        &state.params,
        x,
        targets,
        batch,
        cfg,
        tcfg.loss,
    )?;
    let mut ctx = Ctx {
        gates,
        params: &Params::new(),
        batch,
        cfg,
        path: String::new(),
    };
    update_buffers(&mut state.params, &grads)?;
    sgd(&mut ctx, state, &grads, tcfg, lr)?;
    Ok(StepOutput { logits: z })
}

/// The forward pass, the loss's gradient and the backward pass of a batch
/// on any backend: this party's shares of the logits and of the
/// parameters' gradients of the mean loss (weights at `2f` bits, biases at
/// `f`, as the optimiser takes them) and, under the names of a batch-norm's
/// running statistics, their updated values (`f` bits). Used by
/// [`train_step`].
#[allow(clippy::too_many_arguments)]
pub fn gradients(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    targets: &[u64],
    batch: usize,
    cfg: &Config,
    loss: Loss,
) -> Result<(Vec<u64>, Params), NnError> {
    // Weights change every step: each step's products need fresh masks
    // (the training products never call `bilinear_weight`; this refuses a
    // backend set up for inference reuse outright).
    if gates.reuses_weight_masks() {
        return Err(NnError::WeightReuseInTraining);
    }
    let classes = classes(model)?;
    let mut ctx = Ctx {
        gates,
        params,
        batch,
        cfg,
        path: String::new(),
    };
    let (z, _, tapes) =
        forward_train_layers(&mut ctx, &model.layers, "", x.to_vec(), &model.input, false)?;
    let dz = loss_grad(&mut ctx, loss, &z, targets, classes)?;
    let mut grads = Params::new();
    backward_layers(&mut ctx, &model.layers, "", tapes, dz, &mut grads)?;
    Ok((z, grads))
}

/// The dealer's plan for one training step of `model` on `batch` inputs:
/// the [`Recorder`]'s trace of [`train_step`]. A training job consumes it
/// once per step.
pub fn train_plan(
    model: &Model,
    batch: usize,
    cfg: &Config,
    tcfg: &TrainConfig,
) -> Result<Plan, NnError> {
    model.shapes()?;
    let classes = classes(model)?;
    let n = batch
        .checked_mul(crate::layers::checked_len(&model.input)?)
        .ok_or_else(|| NnError::Overflow(format!("batch {batch}")))?;
    let mut rec = Recorder::new();
    let mut state = TrainState::new(Params::zeros_train(model)?);
    train_step(
        &mut rec,
        model,
        &mut state,
        &vec![0; n],
        &vec![0; batch * classes],
        batch,
        cfg,
        tcfg,
        1.0 / 1024.0,
    )?;
    Ok(Plan::new(64, rec.into_gates()))
}

/// Decodes trained fixed-point parameters (reconstructed training store,
/// [`Params::train_spec`]) into float [`Weights`] by PyTorch name: weights
/// at `f` bits, biases at `2f`, a batch-norm's running statistics at `f`.
/// The weights then run in inference as any others (a batch-norm folded
/// into its convolution, [`Model::fold_batchnorm`], or as its affine map).
pub fn decode_params(model: &Model, params: &Params, cfg: &Config) -> Result<Weights, NnError> {
    params.check_train(model)?;
    let mut w = Weights::new();
    for (name, shape) in model.parameters() {
        let t = params.get(&name)?;
        let bits = if is_bias(&name) {
            2 * cfg.frac_bits
        } else {
            cfg.frac_bits
        };
        let fp = ariann_ring::FixedPoint::new(bits);
        let v = t
            .as_slice()
            .iter()
            .map(|x| fp.decode::<u64>(*x) as f32)
            .collect();
        w.insert(&name, shape, v)?;
    }
    Ok(w)
}

/// The dealer's plan of a whole training job: [`train_plan`] (one step)
/// repeated `steps` times, so that one session consumes it step after step
/// and the plan hash names the whole job. Keys are streamed, never held
/// for the job: a LeNet epoch needs tens of terabytes.
pub fn train_job_plan(
    model: &Model,
    batch: usize,
    cfg: &Config,
    tcfg: &TrainConfig,
    steps: usize,
) -> Result<Plan, NnError> {
    let one = train_plan(model, batch, cfg, tcfg)?;
    let total =
        one.gates.len().checked_mul(steps).ok_or_else(|| {
            NnError::Overflow(format!("{steps} steps of {} gates", one.gates.len()))
        })?;
    let mut gates = Vec::with_capacity(total);
    for _ in 0..steps {
        gates.extend_from_slice(&one.gates);
    }
    Ok(Plan::new(64, gates))
}

/// The float reference of training: the same model, loss and optimiser in
/// `f64` (parameters kept as [`Weights`], `f32` like PyTorch's).
#[derive(Debug, Clone)]
pub struct FloatTrainer {
    /// The parameters.
    pub weights: Weights,
    velocity: FloatGrads,
}

impl FloatTrainer {
    /// Starts from `weights` with zero velocity.
    pub fn new(weights: Weights) -> Self {
        FloatTrainer {
            weights,
            velocity: FloatGrads::new(),
        }
    }

    /// The parameters' gradients of the mean loss on a batch (and a
    /// batch-norm's updated running statistics under their names, as
    /// [`gradients`] gives them), and the loss.
    pub fn gradients(
        &self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        loss: Loss,
    ) -> Result<(FloatGrads, f64), NnError> {
        let batch = labels.len();
        self.weights.check(model)?;
        let classes = classes(model)?;
        let ctx = FloatCtx {
            weights: &self.weights,
            batch,
            path: String::new(),
        };
        let xs: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
        let (z, inputs) = float_train_layers(&ctx, &model.layers, "", xs, &model.input)?;
        if z.len() != batch * classes {
            return Err(NnError::InputSize {
                expected: batch * classes,
                got: z.len(),
            });
        }
        let (dz, value) = float_loss(loss, &z, labels, classes)?;
        let mut grads = FloatGrads::new();
        float_backward_layers(&ctx, &model.layers, "", &inputs, dz, &mut grads)?;
        Ok((grads, value))
    }

    /// One SGD step (the private optimiser's rule in `f64`); returns the
    /// batch's loss before the step.
    pub fn step(
        &mut self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        tcfg: &TrainConfig,
        lr: f64,
    ) -> Result<f64, NnError> {
        let (grads, value) = self.gradients(model, x, labels, tcfg.loss)?;
        for (name, shape) in model.parameters() {
            let g = grads
                .get(&name)
                .ok_or_else(|| NnError::Training(format!("no gradient for `{name}`")))?;
            if is_buffer(&name) {
                // A running statistic: its new value.
                let new = g.iter().map(|v| *v as f32).collect();
                self.weights.insert(&name, shape, new)?;
                continue;
            }
            let (_, w) = crate::weights::param(&self.weights, &name)?;
            let v = self
                .velocity
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; g.len()]);
            let wd = if is_bias(&name) {
                0.0
            } else {
                tcfg.weight_decay
            };
            let mut new = Vec::with_capacity(w.len());
            for ((v, g), w) in v.iter_mut().zip(g).zip(w) {
                *v = tcfg.momentum * *v + g + wd * f64::from(*w);
                new.push((f64::from(*w) - lr * *v) as f32);
            }
            self.weights.insert(&name, shape, new)?;
        }
        Ok(value)
    }
}

/// The loss's value (mean over the batch) and its gradient (already divided
/// by the batch) in float.
pub fn float_loss(
    loss: Loss,
    z: &[f64],
    labels: &[usize],
    classes: usize,
) -> Result<(Vec<f64>, f64), NnError> {
    let batch = labels.len();
    let mut dz = vec![0f64; z.len()];
    let mut total = 0.0;
    for (row, &l) in labels.iter().enumerate() {
        if l >= classes {
            return Err(NnError::Training(format!("label {l} >= {classes} classes")));
        }
        let zr = &z[row * classes..(row + 1) * classes];
        let dr = &mut dz[row * classes..(row + 1) * classes];
        match loss {
            Loss::CrossEntropy => {
                let m = zr.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let ex: Vec<f64> = zr.iter().map(|v| (v - m).exp()).collect();
                let sum: f64 = ex.iter().sum();
                total += -((ex[l] / sum).ln());
                for (j, (d, e)) in dr.iter_mut().zip(&ex).enumerate() {
                    let t = if j == l { 1.0 } else { 0.0 };
                    *d = (e / sum - t) / batch as f64;
                }
            }
            Loss::Mse => {
                for (j, (d, v)) in dr.iter_mut().zip(zr).enumerate() {
                    let t = if j == l { 1.0 } else { 0.0 };
                    total += (v - t) * (v - t) / classes as f64;
                    *d = 2.0 * (v - t) / (classes * batch) as f64;
                }
            }
        }
    }
    Ok((dz, total / batch as f64))
}
