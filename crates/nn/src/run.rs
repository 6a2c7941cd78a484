//! Entry points: the float reference, the fixed-point run, the private run
//! and the dealer's plan. The last three are the same code (the layers'
//! forward passes on a [`Gates`] backend) on three backends.

use crate::error::NnError;
use crate::layers::{Ctx, FloatCtx, checked_len, float_layers, forward_layers};
use crate::model::{Config, Model};
use crate::params::Params;
use crate::profile::{LayerProfile, Profiler};
use crate::weights::Weights;
use ariann_mpc::Plan;
use ariann_mpc::{Clear, Gates, PreprocessingSource, Recorder, Session, Transport};
use ariann_ring::FixedPoint;
use rand::{CryptoRng, Rng};

/// Values in a batch of `batch` inputs (overflow-checked).
fn input_len(model: &Model, batch: usize) -> Result<usize, NnError> {
    batch
        .checked_mul(checked_len(&model.input)?)
        .ok_or_else(|| NnError::Overflow(format!("batch {batch} of {:?}", model.input)))
}

/// Values in a batch of `batch` inputs, checked against `got`.
fn check_input(model: &Model, batch: usize, got: usize) -> Result<usize, NnError> {
    let expected = input_len(model, batch)?;
    if got != expected {
        return Err(NnError::InputSize { expected, got });
    }
    Ok(expected)
}

/// Cleartext float forward pass of a batch (row-major, `batch x input_len`).
pub fn forward_float(
    model: &Model,
    w: &Weights,
    x: &[f32],
    batch: usize,
) -> Result<Vec<f64>, NnError> {
    w.check(model)?;
    model.shapes()?;
    check_input(model, batch, x.len())?;
    let cur: Vec<f64> = x.iter().map(|v| f64::from(*v)).collect();
    let ctx = FloatCtx {
        weights: w,
        batch,
        path: String::new(),
    };
    float_layers(&ctx, &model.layers, "", cur, &model.input).map(|(v, _)| v)
}

/// The forward pass of `model` on any gate backend: `x` is this party's
/// share of the encoded input batch (the values themselves on [`Clear`]),
/// `params` its share of the parameters.
pub fn forward(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    forward_with(gates, model, params, x, batch, cfg, None).map(|(y, _)| y)
}

/// [`forward`], profiled: the output and one [`LayerProfile`] per layer
/// (the model's layers in order, each residual block followed by the
/// layers of its branches), from the backend's counters
/// ([`Gates::probe`]) read before and after each layer. The output is
/// [`forward`]'s, bit for bit. On a [`Session`] the rows have the layers'
/// gates, rounds and bytes; their times are split into exchanges and key
/// waits if the transport and the session count them
/// ([`ariann_mpc::TimedTransport`], [`Session::with_key_timing`]).
pub fn forward_profiled(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<(Vec<u64>, Vec<LayerProfile>), NnError> {
    let (y, p) = forward_with(gates, model, params, x, batch, cfg, Some(Profiler::new()))?;
    Ok((y, p.map(Profiler::into_layers).unwrap_or_default()))
}

fn forward_with(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    batch: usize,
    cfg: &Config,
    profile: Option<Profiler>,
) -> Result<(Vec<u64>, Option<Profiler>), NnError> {
    model.shapes()?;
    params.check(model)?;
    check_input(model, batch, x.len())?;
    let mut ctx = Ctx {
        gates,
        params,
        batch,
        cfg,
        path: String::new(),
        profile,
    };
    let (y, _) = forward_layers(&mut ctx, &model.layers, "", x.to_vec(), &model.input)?;
    Ok((y, ctx.profile))
}

/// The cleartext fixed-point forward pass: the private run's arithmetic
/// (wrapping products, floor truncation), on plain values ([`Clear`]).
pub fn forward_fixed(
    model: &Model,
    w: &Weights,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let params = Params::encode(model, w, cfg)?;
    forward(&mut Clear::new(), model, &params, x, batch, cfg)
}

/// One party's private forward pass: `x` is its share of the encoded input
/// batch, `params` its share of the parameters; keys come from `session`'s
/// source, generated from [`plan`]. Returns its share of the output.
pub fn forward_private<T: Transport + ?Sized, S: PreprocessingSource<u64> + ?Sized>(
    session: &mut Session<'_, T, S, u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    batch: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    forward(session, model, params, x, batch, cfg)
}

/// The dealer's plan for a private forward pass of `model` on `batch`
/// inputs: the [`Recorder`]'s trace of the very code the parties run.
pub fn plan(model: &Model, batch: usize, cfg: &Config) -> Result<Plan, NnError> {
    model.shapes()?;
    let n = input_len(model, batch)?;
    let mut rec = Recorder::new();
    let params = Params::zeros(model)?;
    forward(&mut rec, model, &params, &vec![0; n], batch, cfg)?;
    params.discard_public();
    Ok(Plan::new(64, rec.into_gates()))
}

/// The forward pass of `batches` batches of `batch` inputs each, one
/// after the other, on any gate backend: `x` holds `batches x batch` inputs
/// (this party's shares), the output the batches' outputs in order. On a
/// backend with weight-mask reuse ([`ariann_mpc::Session::with_weight_reuse`],
/// [`Recorder::with_weight_reuse`]) the first batch's products open each
/// weight's mask and every later batch reuses it (inference only; see
/// [`ariann_mpc::gates::reuse`]); otherwise every batch is [`forward`] as a
/// job of one batch.
#[allow(clippy::too_many_arguments)]
pub fn forward_batches(
    gates: &mut dyn Gates<u64>,
    model: &Model,
    params: &Params,
    x: &[u64],
    batch: usize,
    batches: usize,
    cfg: &Config,
) -> Result<Vec<u64>, NnError> {
    let one = input_len(model, batch)?;
    let total = one
        .checked_mul(batches)
        .ok_or_else(|| NnError::Overflow(format!("{batches} batches of {batch}")))?;
    if x.len() != total {
        return Err(NnError::InputSize {
            expected: total,
            got: x.len(),
        });
    }
    let mut out = Vec::new();
    for i in 0..batches {
        out.extend(forward(
            gates,
            model,
            params,
            &x[i * one..(i + 1) * one],
            batch,
            cfg,
        )?);
    }
    Ok(out)
}

/// The dealer's plan for [`forward_batches`] of `batches` batches of
/// `batch` inputs. With `reuse_weight_masks` (what a job of many batches
/// of inference uses) the first batch's trace is [`plan`]'s and every later
/// batch's replaces each weight's `triple` with a `triple_reuse` naming
/// the first batch's gate, so later batches open only the activations;
/// without it the plan is [`plan`] repeated. Both are the
/// [`Recorder`]'s trace of [`forward_batches`] (traced for two batches and
/// repeated: every later batch's trace is the second's).
pub fn plan_batches(
    model: &Model,
    batch: usize,
    batches: usize,
    cfg: &Config,
    reuse_weight_masks: bool,
) -> Result<Plan, NnError> {
    model.shapes()?;
    let n = input_len(model, batch)?;
    let params = Params::zeros(model)?;
    let mut rec = if reuse_weight_masks {
        Recorder::with_weight_reuse()
    } else {
        Recorder::new()
    };
    forward(&mut rec, model, &params, &vec![0; n], batch, cfg)?;
    let first = rec.gates().len();
    if batches == 0 {
        return Ok(Plan::new(64, vec![]));
    }
    if batches > 1 {
        forward(&mut rec, model, &params, &vec![0; n], batch, cfg)?;
    }
    params.discard_public();
    let mut gates = rec.into_gates();
    let later = gates.len() - first;
    let total = later
        .checked_mul(batches - 1)
        .and_then(|v| v.checked_add(first))
        .ok_or_else(|| NnError::Overflow(format!("{batches} batches")))?;
    // A plan too large for memory (an absurd number of batches) is an
    // error, not an allocation failure.
    gates.try_reserve(total - gates.len()).map_err(|_| {
        NnError::Overflow(format!(
            "{batches} batches: a plan of {total} gates does not fit in memory"
        ))
    })?;
    for _ in 2..batches {
        gates.extend_from_within(first..first + later);
    }
    Ok(Plan::new(64, gates))
}

/// The model owner secret-shares its weights: `(party 0's, party 1's)`.
pub fn share_weights<G: Rng + CryptoRng + ?Sized>(
    model: &Model,
    w: &Weights,
    cfg: &Config,
    rng: &mut G,
) -> Result<(Params, Params), NnError> {
    Ok(Params::encode(model, w, cfg)?.share(rng))
}

/// Encodes a float input batch at `f` bits.
pub fn encode_input(x: &[f32], cfg: &Config) -> Result<Vec<u64>, NnError> {
    let fp = FixedPoint::new(cfg.frac_bits);
    Ok(x.iter()
        .map(|v| fp.encode::<u64>(f64::from(*v)))
        .collect::<Result<Vec<_>, _>>()?)
}

/// Decodes fixed-point outputs.
pub fn decode_output(y: &[u64], cfg: &Config) -> Vec<f64> {
    let fp = FixedPoint::new(cfg.frac_bits);
    y.iter().map(|v| fp.decode::<u64>(*v)).collect()
}
