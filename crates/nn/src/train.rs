//! Training: one step is the layers' training forward pass, the loss's
//! gradient, the layers' backward passes and the optimiser's update, all on
//! a gate backend ([`Gates`]): privately on shares, in cleartext fixed
//! point ([`Clear`](ariann_mpc::Clear)) or on a [`Recorder`] (whose trace is the dealer's plan
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
//! the optimiser's first truncation. With [`Rounding::Floor`] or
//! [`Rounding::Nearest`] every truncation is an exact gate (no error, no
//! failure probability): the one-round `trunc`, or with the small-key
//! variant ([`crate::Variant::SmallKey`]) the two-round `trunc_small`, about
//! half the key bytes, the same bits; [`Config::rounding`] says whether it
//! floors or rounds to nearest (flooring the updates biases every weight
//! upwards by half an ulp per step). [`Rounding::Stochastic`] uses the
//! one-round `trunc_stoch` gate for every truncation of the step: unbiased
//! stochastic rounding, no FSS key (12 B per element), equal to the
//! cleartext fixed point in distribution only.
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
use ariann_mpc::gates::spline::{RECIP_SQRT_IN_BITS, RECIP_SQRT_OUT_BITS, SplineFn};
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

/// The optimiser of a training job.
///
/// Serialized (serde) with its name under `"kind"`: `{"kind": "sgd"}`,
/// `{"kind": "adam", "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}`.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Optimizer {
    /// SGD with momentum ([`TrainConfig::momentum`]) and weight decay:
    /// `v = mu v + g + wd W; W -= lr v`. 2 rounds per step.
    #[default]
    Sgd,
    /// Adam (Kingma and Ba; PyTorch's `torch.optim.Adam`, weight decay as
    /// its L2 term `g + wd W`, on weights only as for SGD): `m = b1 m +
    /// (1 - b1) g`, `v = b2 v + (1 - b2) g^2`, `W -= lr_t m / (sqrt(v) +
    /// eps)` with the public bias corrections folded into the step's
    /// learning rate, `lr_t = lr sqrt(1 - b2^t) / (1 - b1^t)` (so `eps` is
    /// added to `sqrt(v)`, not to PyTorch's `sqrt(v / (1 - b2^t))`: the
    /// "eps-hat" form of the paper's section 2). 7 rounds per step; see
    /// [`train_step`] for the fixed point.
    Adam {
        /// Decay of the first moment (PyTorch's default 0.9), in `[0, 1)`.
        beta1: f64,
        /// Decay of the second moment (0.999), in `[0, 1)`.
        beta2: f64,
        /// Added to `sqrt(v)` (`1e-8`), in `[0, 1)`; part of the
        /// `recip_sqrt` spline's key, rounded to a multiple of `2^-32`.
        eps: f64,
    },
}

impl Optimizer {
    /// Checks the hyper-parameters: Adam's betas and `eps` in `[0, 1)`.
    pub fn check(&self) -> Result<(), NnError> {
        if let Optimizer::Adam { beta1, beta2, eps } = *self {
            for (name, x) in [("beta1", beta1), ("beta2", beta2), ("eps", eps)] {
                if !(0.0..1.0).contains(&x) {
                    return Err(NnError::Training(format!(
                        "Adam's {name} = {x} is not in [0, 1)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Adam with PyTorch's defaults (`0.9`, `0.999`, `1e-8`).
    pub fn adam() -> Self {
        Optimizer::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// Optimiser and loss settings of a training job (public: part of the
/// job's description). The learning rate is given per step
/// ([`train_step`]), so a schedule changes no key.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// The loss.
    pub loss: Loss,
    /// SGD momentum `mu` (`v = mu v + g + wd W; W -= lr v`); 0 for plain SGD.
    /// Unused by Adam.
    pub momentum: f64,
    /// Weight decay `wd` (on weights, not on biases).
    pub weight_decay: f64,
    /// The optimiser (SGD when absent from a serialized configuration).
    #[serde(default)]
    pub optimizer: Optimizer,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            loss: Loss::Mse,
            momentum: 0.9,
            weight_decay: 0.0,
            optimizer: Optimizer::Sgd,
        }
    }
}

/// One party's training state: its shares of the parameters and of the
/// optimiser's state (SGD's velocity at `f` bits or Adam's first moment at
/// `f + 8`, one tensor per parameter; Adam's second moment at
/// [`ADAM_V_BITS`] bits), and the number of steps taken (public).
pub struct TrainState {
    /// Shares of the parameters (a training store, [`Params::train_spec`]:
    /// as [`Params`] holds them for inference, except for batch-norms).
    pub params: Params,
    /// Shares of SGD's velocity or Adam's first moment `m`, by parameter
    /// name.
    pub velocity: Params,
    /// Shares of Adam's second moment `v` ([`ADAM_V_BITS`] fractional
    /// bits), by parameter name; empty until the first Adam step.
    pub second_moment: Params,
    /// Steps taken (Adam's bias corrections depend on it).
    pub steps: u64,
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
        TrainState {
            params,
            velocity,
            second_moment: Params::new(),
            steps: 0,
        }
    }

    /// One party's checkpoint: its shares of the parameters (`params.NAME`),
    /// of the optimiser's state (`velocity.NAME`, `second_moment.NAME`) and
    /// the step count (`steps`, one `U64`), as safetensors. The file holds
    /// shares only (uniform on their own); it is as secret as the shares
    /// themselves, and the two parties' files together reveal the model.
    pub fn to_safetensors(&self) -> Result<Vec<u8>, NnError> {
        let mut all = Params::new();
        for (prefix, store) in [
            ("params", &self.params),
            ("velocity", &self.velocity),
            ("second_moment", &self.second_moment),
        ] {
            for (name, t) in store.iter() {
                all.insert(&format!("{prefix}.{name}"), t.clone());
            }
        }
        all.insert("steps", RingTensor::from_vec(&[1], vec![self.steps])?);
        all.to_safetensors()
    }

    /// Reads a checkpoint written by [`TrainState::to_safetensors`]. Check
    /// the parameters against the model ([`Params::check_train`]) before use.
    pub fn from_safetensors(bytes: &[u8]) -> Result<TrainState, NnError> {
        let all = Params::from_safetensors(bytes)?;
        let (mut params, mut velocity, mut second_moment) =
            (Params::new(), Params::new(), Params::new());
        let mut steps = None;
        for (name, t) in all.iter() {
            if name == "steps" {
                match t.as_slice() {
                    [v] => steps = Some(*v),
                    _ => {
                        return Err(NnError::Safetensors(
                            "checkpoint: `steps` must hold one value".into(),
                        ));
                    }
                }
                continue;
            }
            let (store, rest) = match name.split_once('.') {
                Some(("params", rest)) => (&mut params, rest),
                Some(("velocity", rest)) => (&mut velocity, rest),
                Some(("second_moment", rest)) => (&mut second_moment, rest),
                _ => {
                    return Err(NnError::Safetensors(format!(
                        "checkpoint: unexpected tensor `{name}` (names are params.*, velocity.*, second_moment.* and steps)"
                    )));
                }
            };
            store.insert(rest, t.clone());
        }
        let steps =
            steps.ok_or_else(|| NnError::Safetensors("checkpoint: no `steps` tensor".into()))?;
        for (name, t) in params.iter() {
            match velocity.get(name) {
                Ok(v) if v.shape() == t.shape() => {}
                _ => {
                    return Err(NnError::Safetensors(format!(
                        "checkpoint: parameter `{name}` has no velocity of its shape"
                    )));
                }
            }
        }
        if velocity.len() != params.len() {
            return Err(NnError::Safetensors(
                "checkpoint: a velocity without its parameter".into(),
            ));
        }
        Ok(TrainState {
            params,
            velocity,
            second_moment,
            steps,
        })
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
/// at most `max_gate_elems` (one gate each; `trunc_small` with the
/// small-key variant).
fn shift(ctx: &mut Ctx<'_>, z: &[u64], bits: u32) -> Result<Vec<u64>, NnError> {
    let k = ctx.cfg.k_trunc;
    shift_k(ctx, z, bits, k)
}

/// [`shift`] on a `k`-bit window.
fn shift_k(ctx: &mut Ctx<'_>, z: &[u64], bits: u32, k: u32) -> Result<Vec<u64>, NnError> {
    let z = if ctx.cfg.rounding == Rounding::Nearest {
        ctx.gates
            .add_public(z, &vec![1u64 << (bits - 1); z.len()])?
    } else {
        z.to_vec()
    };
    crate::layers::truncate_train_k(ctx, &z, bits, k)
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

/// Fractional bits of Adam's second moment `v`
/// ([`TrainState::second_moment`]): the input precision of the
/// `recip_sqrt` spline.
pub const ADAM_V_BITS: u32 = RECIP_SQRT_IN_BITS;
/// The shift of Adam's moment updates (one truncation for both moments).
const ADAM_SHIFT: u32 = 26;
/// Fractional bits of `1/(sqrt(v) + eps)` after its truncation.
const ADAM_R_BITS: u32 = 10;
/// Fractional bits of the step's learning rate.
const ADAM_LR_BITS: u32 = 22;
/// Adam's first moment has `f + 8` fractional bits
/// ([`TrainState::velocity`]).
pub const ADAM_M_EXTRA_BITS: u32 = 8;
/// Window of Adam's truncations (their keys do not depend on it).
const ADAM_K_TRUNC: u32 = 63;
/// Window of the `recip_sqrt` spline: `v < 2^(44 - 2 - 32) = 1024`.
pub const ADAM_K_SPLINE: u32 = 44;

/// `x^n` by squaring (multiplications only, in a fixed order: the same on
/// every IEEE 754 platform, so both parties encode the same learning rate).
fn powu(mut x: f64, mut n: u64) -> f64 {
    let mut acc = 1.0;
    while n > 0 {
        if n & 1 == 1 {
            acc *= x;
        }
        x *= x;
        n >>= 1;
    }
    acc
}

/// Adam's learning rate of step `t` (from 1) with the bias corrections:
/// `lr sqrt(1 - b2^t) / (1 - b1^t)`.
pub fn adam_lr(lr: f64, beta1: f64, beta2: f64, t: u64) -> f64 {
    lr * (1.0 - powu(beta2, t)).sqrt() / (1.0 - powu(beta1, t))
}

/// A product `x * y` elementwise, in bundles of at most `max_gate_elems`.
fn products(ctx: &mut Ctx<'_>, x: &[u64], y: &[u64]) -> Result<Vec<u64>, NnError> {
    let mut out = Vec::with_capacity(x.len());
    for r in chunks(x.len(), ctx.cfg.max_gate_elems) {
        let len = r.len();
        let p = ctx.gates.bilinear(
            Bilinear::Mul { len },
            &RingTensor::from_vec(&[len], x[r.clone()].to_vec())?,
            &RingTensor::from_vec(&[len], y[r].to_vec())?,
        )?;
        out.extend_from_slice(p.as_slice());
    }
    Ok(out)
}

/// Adam on the shares, 7 rounds for the whole model (each a batch of
/// gates over every parameter, split by `max_gate_elems`):
///
/// 1. `g = (g + wd W) >> f` for the weights (their gradients are at `2f`
///    bits; the biases' are at `f`);
/// 2. `g^2` (a Beaver product, at `2f` bits);
/// 3. one truncation by 26 for both moments: `m += ((1 - b1) (g - m)) >>
///    26` (`1 - b1` at 26 bits, `m` at `f + 8`, [`ADAM_M_EXTRA_BITS`]) and
///    `v += ((1 - b2) (g^2 - v)) >> 26` (`1 - b2` at `58 - 2f` bits, `v` at
///    [`ADAM_V_BITS`] = 32);
/// 4. `r = 1/(sqrt(v) + eps)`, the `recip_sqrt` spline (output at 46 bits);
/// 5. `r >> 36` (10 bits);
/// 6. `(lr_t m) r` (`lr_t` at 22 bits, public; a Beaver product);
/// 7. `>> 40`: the step at `f` bits, subtracted from the weights (and,
///    shifted left by `f`, from the biases at `2f`).
///
/// Every truncation but the first (which is SGD's) is on a 63-bit window.
/// The windows hold `(1 - b2) g^2 < 16`, `v < 1024` (the spline's window,
/// [`ADAM_K_SPLINE`]: gradient entries below 32) and `|lr_t m r| < 4` at
/// `f = 20` (64 at `f = 16`; `|m| / sqrt(v)` is at most about 7 with the
/// default betas, so a learning rate below 0.5). Needs `16 <= f <= 20`.
///
/// Precision: the spline's relative error is below `2^-5` (one knot per
/// octave); its floor `v >= 2^-30` makes the denominator at least `2^-15`
/// on the biased `v` (the 64-bit ring's limit for a one-round spline of
/// this range, see [`SplineFn::RecipSqrt`]): a gradient entry below about
/// `1e-3` takes smaller steps than float Adam's in the first steps (where
/// `sqrt(v) = 0.03 |g|`), as a larger `eps` would give.
#[allow(clippy::too_many_arguments)]
fn adam(
    ctx: &mut Ctx<'_>,
    state: &mut TrainState,
    grads: &Params,
    tcfg: &TrainConfig,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
) -> Result<(), NnError> {
    let f = ctx.cfg.frac_bits;
    if !(16..=20).contains(&f) {
        return Err(NnError::Training(format!(
            "Adam needs 16 <= f <= 20 fractional bits, not {f}"
        )));
    }
    let t = state.steps + 1;
    let lr_t = fixed(adam_lr(lr, beta1, beta2, t), ADAM_LR_BITS)?;
    let wd = fixed(tcfg.weight_decay, f)?;
    let c_m = fixed(1.0 - beta1, ADAM_SHIFT)?;
    let c_v = fixed(1.0 - beta2, ADAM_SHIFT + ADAM_V_BITS - 2 * f)?;
    let eps_units = (eps * 2f64.powi(RECIP_SQRT_IN_BITS as i32)).round() as u32;
    // A batch-norm's running statistics are not trained ([`update_buffers`]).
    let names: Vec<String> = state
        .params
        .iter()
        .map(|(n, _)| n.to_string())
        .filter(|n| !is_buffer(n))
        .collect();
    for name in &names {
        if state.second_moment.get(name).is_err() {
            let shape = state.params.get(name)?.shape().to_vec();
            state.second_moment.insert(name, RingTensor::zeros(&shape));
        }
    }
    // Round 1: the weights' gradients (plus the L2 term) to f bits.
    let mut wacc = Vec::new();
    for name in &names {
        let w = state.params.get(name)?.as_slice();
        let g = grads
            .get(name)
            .map_err(|_| NnError::Training(format!("no gradient for parameter `{name}`")))?
            .as_slice();
        let (m, v) = (
            state.velocity.get(name)?.as_slice(),
            state.second_moment.get(name)?.as_slice(),
        );
        if g.len() != w.len() || m.len() != w.len() || v.len() != w.len() {
            return Err(NnError::Training(format!(
                "`{name}`: sizes of gradient and state differ"
            )));
        }
        if !is_bias(name) {
            let dw = ctx.gates.mul_public(w, wd);
            wacc.extend(g.iter().zip(&dw).map(|(a, b)| a.wrapping_add(*b)));
        }
    }
    let gw = shift(ctx, &wacc, f)?;
    let (mut g, mut m, mut v) = (Vec::new(), Vec::new(), Vec::new());
    let mut at = 0;
    for name in &names {
        if is_bias(name) {
            g.extend_from_slice(grads.get(name)?.as_slice());
        } else {
            let n = state.params.get(name)?.len();
            g.extend_from_slice(&gw[at..at + n]);
            at += n;
        }
        m.extend_from_slice(state.velocity.get(name)?.as_slice());
        v.extend_from_slice(state.second_moment.get(name)?.as_slice());
    }
    let n = g.len();
    // Round 2: g^2 at 2f bits.
    let g2 = products(ctx, &g, &g)?;
    // Round 3: both moments, one truncation.
    let up = 2 * f - ADAM_V_BITS;
    let dm: Vec<u64> = g
        .iter()
        .zip(&m)
        .map(|(g, m)| g.wrapping_shl(ADAM_M_EXTRA_BITS).wrapping_sub(*m))
        .collect();
    let dv: Vec<u64> = g2
        .iter()
        .zip(&v)
        .map(|(g2, v)| g2.wrapping_sub(v.wrapping_shl(up)))
        .collect();
    let mut acc = ctx.gates.mul_public(&dm, c_m);
    acc.extend(ctx.gates.mul_public(&dv, c_v));
    let d = shift_k(ctx, &acc, ADAM_SHIFT, ADAM_K_TRUNC)?;
    let m: Vec<u64> = m
        .iter()
        .zip(&d[..n])
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    let v: Vec<u64> = v
        .iter()
        .zip(&d[n..])
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    // Round 4: 1/(sqrt(v) + eps) at 46 bits; round 5: to 12 bits.
    let func = SplineFn::RecipSqrt { eps: eps_units };
    let mut r = Vec::with_capacity(n);
    for span in chunks(n, ctx.cfg.max_gate_elems) {
        r.extend(ctx.gates.spline(func, &v[span], ADAM_K_SPLINE)?);
    }
    let r = shift_k(ctx, &r, RECIP_SQRT_OUT_BITS - ADAM_R_BITS, ADAM_K_TRUNC)?;
    // Round 6: (lr_t m) r; round 7: the step at f bits.
    let lm = ctx.gates.mul_public(&m, lr_t);
    let p = products(ctx, &lm, &r)?;
    let step = shift_k(
        ctx,
        &p,
        ADAM_LR_BITS + ADAM_M_EXTRA_BITS + ADAM_R_BITS,
        ADAM_K_TRUNC,
    )?;
    let mut at = 0;
    for name in &names {
        let len = state.params.get(name)?.len();
        let span = at..at + len;
        at += len;
        state
            .velocity
            .get_mut(name)?
            .as_mut_slice()
            .copy_from_slice(&m[span.clone()]);
        state
            .second_moment
            .get_mut(name)?
            .as_mut_slice()
            .copy_from_slice(&v[span.clone()]);
        let up = if is_bias(name) { f } else { 0 };
        let p = state.params.get_mut(name)?.as_mut_slice();
        for (p, s) in p.iter_mut().zip(&step[span]) {
            *p = p.wrapping_sub(s.wrapping_shl(up));
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
    tcfg.optimizer.check()?;
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
        profile: None,
    };
    update_buffers(&mut state.params, &grads)?;
    match tcfg.optimizer {
        Optimizer::Sgd => sgd(&mut ctx, state, &grads, tcfg, lr)?,
        Optimizer::Adam { beta1, beta2, eps } => {
            adam(&mut ctx, state, &grads, tcfg, lr, beta1, beta2, eps)?
        }
    }
    state.steps += 1;
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
        profile: None,
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
    /// SGD's velocity or Adam's first moment.
    velocity: FloatGrads,
    /// Adam's second moment.
    second: FloatGrads,
    /// Steps taken.
    steps: u64,
}

impl FloatTrainer {
    /// Starts from `weights` with zero optimiser state.
    pub fn new(weights: Weights) -> Self {
        FloatTrainer {
            weights,
            velocity: FloatGrads::new(),
            second: FloatGrads::new(),
            steps: 0,
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

    /// One optimiser step (the private optimiser's rule in `f64`; Adam as
    /// PyTorch's `torch.optim.Adam`, with `eps` added to `sqrt(v / (1 -
    /// b2^t))`); returns the batch's loss before the step.
    pub fn step(
        &mut self,
        model: &Model,
        x: &[f32],
        labels: &[usize],
        tcfg: &TrainConfig,
        lr: f64,
    ) -> Result<f64, NnError> {
        let (grads, value) = self.gradients(model, x, labels, tcfg.loss)?;
        self.steps += 1;
        let t = self.steps;
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
            match tcfg.optimizer {
                Optimizer::Sgd => {
                    for ((v, g), w) in v.iter_mut().zip(g).zip(w) {
                        *v = tcfg.momentum * *v + g + wd * f64::from(*w);
                        new.push((f64::from(*w) - lr * *v) as f32);
                    }
                }
                Optimizer::Adam { beta1, beta2, eps } => {
                    let s = self
                        .second
                        .entry(name.clone())
                        .or_insert_with(|| vec![0.0; g.len()]);
                    let bc1 = 1.0 - powu(beta1, t);
                    let bc2 = 1.0 - powu(beta2, t);
                    for (((m, s), g), w) in v.iter_mut().zip(s.iter_mut()).zip(g).zip(w) {
                        let w = f64::from(*w);
                        let g = g + wd * w;
                        *m = beta1 * *m + (1.0 - beta1) * g;
                        *s = beta2 * *s + (1.0 - beta2) * g * g;
                        let denom = (*s / bc2).sqrt() + eps;
                        new.push((w - lr * (*m / bc1) / denom) as f32);
                    }
                }
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
