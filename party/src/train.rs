//! Private training between the two parties: a [`TrainJob`] (public,
//! identical at both parties) and one private [`TrainAsset`] each, run by
//! [`run_training`] over any [`Transport`] with keys from any
//! [`PreprocessingSource`]:
//!
//! 1. hello: both check that the peer runs the same job (the job's digest
//!    covers the model, batch, fixed-point [`Config`], [`TrainConfig`],
//!    epochs, number of images, learning-rate schedule, who gets the result
//!    and the hash of the job's plan) and brings the other asset; nothing
//!    else has been sent when a mismatch is refused;
//! 2. the model owner secret-shares its initial weights (the peer's share
//!    goes as safetensors [`Params`], by name, as in inference);
//! 3. each step, the data owner draws the step's batch from its own
//!    shuffle of the images, encodes the inputs and targets
//!    ([`encode_input`], [`encode_targets`]) and sends the peer a fresh
//!    random share of them (one message); both run [`train_step`] on their
//!    shares, consuming the step's keys. All steps run in one [`Session`]:
//!    the job's plan ([`TrainJob::plan`], one step's plan repeated) is
//!    consumed in one sequence, bundle index = position in the job;
//! 4. the result: with [`Reveal::To`] the other party sends its parameter
//!    shares and the named party reconstructs and decodes them into float
//!    [`Weights`] ([`decode_params`]); with [`Reveal::Shares`] each party
//!    keeps its share (the optimiser's state is dropped).
//!
//! Nothing but fresh random shares, masked values (the openings inside
//! [`train_step`]) and, at the end, the parameter share of the party that
//! reveals cross the transport. The loss is never computed, the logits
//! never opened, and the shuffle seed (a test convenience) never leaves
//! the data owner.

use crate::{PartyError, bytes_to_u64s, hex8, party_byte, send_only, u64s_to_bytes};
use ariann_dealer::Plan;
use ariann_fss::Party;
use ariann_mpc::{CommStats, PreprocessingSource, Session, Transport};
use ariann_nn::train::{batch_shift, decode_params, train_job_plan};
use ariann_nn::{
    Config, Loss, Model, NnError, Optimizer, Params, TrainConfig, TrainState, Weights,
    encode_input, encode_targets, train_plan, train_step,
};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::time::Instant;

/// Who gets the trained model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// The named party receives the other's parameter shares and decodes
    /// the trained float weights; the other party learns nothing.
    To(Party),
    /// Nobody: each party keeps its share of the trained parameters
    /// (e.g. for a later private job, or to be combined by an agreement).
    Shares,
}

/// The learning rate per epoch: `lr`, times `gamma` every `step_epochs`
/// epochs (PyTorch's `StepLR`) when a step is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The initial learning rate.
    pub lr: f64,
    /// Decay every that many epochs (`None`: constant).
    pub step_epochs: Option<usize>,
    /// The decay factor (used only with `step_epochs`).
    pub gamma: f64,
}

impl LrSchedule {
    /// A constant learning rate.
    pub fn constant(lr: f64) -> Self {
        LrSchedule {
            lr,
            step_epochs: None,
            gamma: 1.0,
        }
    }

    /// The learning rate of `epoch` (from 0).
    pub fn at(&self, epoch: usize) -> f64 {
        match self.step_epochs {
            Some(s) if s > 0 => {
                let k = i32::try_from(epoch / s).unwrap_or(i32::MAX);
                self.lr * self.gamma.powi(k)
            }
            _ => self.lr,
        }
    }
}

/// The public description of a training job; both parties must hold the
/// same (the dealer needs only the part that fixes the plan: model, batch,
/// [`Config`], the loss and the number of steps).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainJob {
    /// The architecture as it trains (no final ReLU on the logits; its
    /// batch-norms in training mode, not folded; permuted if both parties
    /// and the dealer permute).
    pub model: Model,
    /// Examples per step, a power of two.
    pub batch: usize,
    /// Fixed-point parameters (training: 20 fractional bits and rounding to
    /// nearest are the sensible defaults).
    pub cfg: Config,
    /// Loss, optimiser, momentum and weight decay.
    pub tcfg: TrainConfig,
    /// Passes over the training set.
    pub epochs: usize,
    /// Number of training images `N` (public). Each epoch runs
    /// `N / batch` steps; the remainder of the shuffled set is dropped.
    pub images: usize,
    /// The learning rate per epoch.
    pub lr: LrSchedule,
    /// Who gets the result.
    pub reveal: Reveal,
}

fn invalid(msg: String) -> PartyError {
    PartyError::Nn(NnError::Training(msg))
}

impl TrainJob {
    /// Steps per epoch: `images / batch` (0 for an empty batch).
    pub fn steps_per_epoch(&self) -> usize {
        self.images.checked_div(self.batch).unwrap_or(0)
    }

    /// Steps of the whole job.
    pub fn steps(&self) -> Result<usize, PartyError> {
        self.epochs
            .checked_mul(self.steps_per_epoch())
            .ok_or_else(|| {
                NnError::Overflow(format!(
                    "{} epochs of {} steps",
                    self.epochs,
                    self.steps_per_epoch()
                ))
                .into()
            })
    }

    /// The number of classes (the model's output size).
    pub fn classes(&self) -> Result<usize, PartyError> {
        match self.model.shapes()?.pop().unwrap_or_default().as_slice() {
            [c] if *c >= 2 => Ok(*c),
            other => Err(invalid(format!(
                "training needs a model with one output per class, not {other:?}"
            ))),
        }
    }

    /// Checks everything a party can check alone: batch a power of two, at
    /// least one step, sane hyper-parameters for every epoch. The model's
    /// trainability is checked by [`TrainJob::step_plan`].
    pub fn check(&self) -> Result<(), PartyError> {
        batch_shift(self.batch)?;
        self.classes()?;
        if self.epochs == 0 {
            return Err(invalid("at least one epoch is needed".into()));
        }
        if self.steps_per_epoch() == 0 {
            return Err(invalid(format!(
                "{} training images make no batch of {}",
                self.images, self.batch
            )));
        }
        self.steps()?;
        let TrainConfig {
            loss: _,
            momentum,
            weight_decay,
            optimizer,
        } = self.tcfg;
        optimizer.check()?;
        if !(0.0..=1.0).contains(&momentum) {
            return Err(invalid(format!("momentum {momentum} is not in [0, 1]")));
        }
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            return Err(invalid(format!(
                "weight decay {weight_decay} is not a non-negative number"
            )));
        }
        if let Some(0) = self.lr.step_epochs {
            return Err(invalid(
                "the learning rate step must be at least 1 epoch".into(),
            ));
        }
        if self.lr.step_epochs.is_some() && !(self.lr.gamma.is_finite() && self.lr.gamma > 0.0) {
            return Err(invalid(format!(
                "the learning rate decay {} is not a positive number",
                self.lr.gamma
            )));
        }
        for e in 0..self.epochs {
            let lr = self.lr.at(e);
            if !(lr.is_finite() && lr > 0.0) {
                return Err(invalid(format!(
                    "the learning rate of epoch {} is {lr}, not a positive number",
                    e + 1
                )));
            }
            // Changes of the schedule only: the rest is constant.
            if self.lr.step_epochs.is_none() {
                break;
            }
        }
        if self.cfg.max_gate_elems == 0 {
            return Err(invalid("max_gate_elems must be at least 1".into()));
        }
        Ok(())
    }

    /// The plan of one step ([`train_plan`]); it fails for a model that
    /// cannot be trained.
    pub fn step_plan(&self) -> Result<Plan, PartyError> {
        Ok(train_plan(&self.model, self.batch, &self.cfg, &self.tcfg)?)
    }

    /// The dealer's plan of the whole job: [`train_job_plan`], one step's
    /// plan repeated for every step of every epoch. It holds every gate
    /// descriptor of the job (not keys); [`TrainJob::plan_hash`] is the
    /// same hash without building it.
    pub fn plan(&self) -> Result<Plan, PartyError> {
        self.check()?;
        Ok(train_job_plan(
            &self.model,
            self.batch,
            &self.cfg,
            &self.tcfg,
            self.steps()?,
        )?)
    }

    /// The hash of [`TrainJob::plan`] (which names the job's keys), from
    /// one step's plan.
    pub fn plan_hash(&self) -> Result<[u8; 32], PartyError> {
        self.check()?;
        let steps = self.steps()? as u64;
        self.step_plan()?
            .hash_repeated(steps)
            .ok_or_else(|| NnError::Overflow(format!("{steps} steps")).into())
    }

    /// The largest message either party sends in this job (the link
    /// refuses longer ones from the peer, `NetConfig::max_message_size`):
    /// the largest gate's online bytes in one step's plan `step_plan`, a
    /// share of the parameters (the initial weights and the revealed
    /// result), and a batch's share (images and targets).
    pub fn max_message_of(&self, step_plan: &Plan) -> Result<usize, PartyError> {
        let overflow = || PartyError::Protocol("the job's message sizes overflow".to_string());
        let gates = crate::largest_gate_message(step_plan)?;
        let params = crate::params_message_bound(&self.model)?;
        let row = self
            .model
            .input_len()
            .checked_add(self.classes()?)
            .ok_or_else(overflow)?;
        let batch = (self.batch as u64)
            .checked_mul(row as u64)
            .and_then(|n| n.checked_mul(8))
            .ok_or_else(overflow)?;
        usize::try_from(gates.max(params).max(batch)).map_err(|_| overflow())
    }

    /// Key bundles of the job: the gates of one step's plan times the
    /// steps (what the dealer's header must announce).
    pub fn bundles(&self) -> Result<u64, PartyError> {
        let steps = self.steps()? as u64;
        (self.step_plan()?.gates.len() as u64)
            .checked_mul(steps)
            .ok_or_else(|| NnError::Overflow(format!("{steps} steps")).into())
    }

    /// A digest of everything both parties must agree on.
    pub fn digest(&self) -> Result<[u8; 32], PartyError> {
        Ok(self.digest_of(&self.plan_hash()?))
    }

    /// [`TrainJob::digest`] with the plan hash already at hand.
    pub fn digest_of(&self, plan_hash: &[u8; 32]) -> [u8; 32] {
        let TrainConfig {
            loss,
            momentum,
            weight_decay,
            optimizer,
        } = self.tcfg;
        let LrSchedule {
            lr,
            step_epochs,
            gamma,
        } = self.lr;
        let mut h = Sha256::new();
        h.update(b"ariann-rs train job v1");
        h.update(plan_hash);
        h.update(self.model.to_json().as_bytes());
        h.update((self.batch as u64).to_le_bytes());
        h.update(self.cfg.digest_bytes());
        h.update([match loss {
            Loss::Mse => 0u8,
            Loss::CrossEntropy => 1,
        }]);
        h.update(momentum.to_bits().to_le_bytes());
        h.update(weight_decay.to_bits().to_le_bytes());
        h.update((self.epochs as u64).to_le_bytes());
        h.update((self.images as u64).to_le_bytes());
        h.update(lr.to_bits().to_le_bytes());
        match step_epochs {
            None => h.update([0u8]),
            Some(s) => {
                h.update([1u8]);
                h.update((s as u64).to_le_bytes());
                h.update(gamma.to_bits().to_le_bytes());
            }
        }
        h.update([match self.reveal {
            Reveal::To(p) => party_byte(p),
            Reveal::Shares => 2,
        }]);
        // Appended for Adam only: an SGD job's digest is what it was
        // before the optimiser became a choice.
        match optimizer {
            Optimizer::Sgd => {}
            Optimizer::Adam { beta1, beta2, eps } => {
                h.update(b"adam");
                for v in [beta1, beta2, eps] {
                    h.update(v.to_bits().to_le_bytes());
                }
            }
        }
        h.finalize().into()
    }
}

/// What this party brings to a training job.
#[derive(Clone)]
pub enum TrainAsset {
    /// The model owner's initial float weights (PyTorch names).
    ModelOwner(Weights),
    /// The data owner's training set.
    DataOwner {
        /// `N x input_len` floats, row-major.
        images: Vec<f32>,
        /// `N` labels, each below the number of classes.
        labels: Vec<usize>,
        /// Seed of the per-epoch shuffle (tests and reproductions); `None`
        /// draws it from the operating system.
        shuffle_seed: Option<u64>,
    },
}

impl std::fmt::Debug for TrainAsset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Kinds and sizes only: the values are the owner's secrets.
        match self {
            TrainAsset::ModelOwner(_) => f.write_str("ModelOwner(..)"),
            TrainAsset::DataOwner { labels, .. } => f
                .debug_struct("DataOwner")
                .field("examples", &labels.len())
                .finish_non_exhaustive(),
        }
    }
}

impl TrainAsset {
    fn kind(&self) -> u8 {
        match self {
            TrainAsset::ModelOwner(_) => 1,
            TrainAsset::DataOwner { .. } => 2,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            TrainAsset::ModelOwner(_) => "initial weights",
            TrainAsset::DataOwner { .. } => "training data",
        }
    }

    /// Checks the asset against `job` (shapes, counts, labels, values that
    /// fit the fixed-point encoding) without sending anything.
    pub fn check(&self, job: &TrainJob) -> Result<(), PartyError> {
        let model = &job.model;
        match self {
            TrainAsset::ModelOwner(w) => {
                Params::encode_train(model, w, &job.cfg)?;
            }
            TrainAsset::DataOwner { images, labels, .. } => {
                let n = job.images;
                if labels.len() != n {
                    return Err(invalid(format!(
                        "{} labels for a job of {n} training images",
                        labels.len()
                    )));
                }
                let len = model.input_len();
                let expected = n
                    .checked_mul(len)
                    .ok_or_else(|| NnError::Overflow(format!("{n} images of {len}")))?;
                if images.len() != expected {
                    return Err(NnError::InputSize {
                        expected,
                        got: images.len(),
                    }
                    .into());
                }
                let classes = job.classes()?;
                if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
                    return Err(invalid(format!(
                        "label {l} of image {i} is not below the number of classes ({classes})"
                    )));
                }
                // Every value must encode (finite, within range).
                for (i, chunk) in images.chunks(len.max(1)).enumerate() {
                    encode_input(chunk, &job.cfg).map_err(|e| {
                        invalid(format!("image {i} cannot be encoded in fixed point: {e}"))
                    })?;
                }
            }
        }
        Ok(())
    }
}

/// Where a training job is, given to the progress callback at the start of
/// every epoch (`step` 0) and after every step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainProgress {
    /// The epoch, from 0.
    pub epoch: usize,
    /// Epochs of the job.
    pub epochs: usize,
    /// Steps done in this epoch.
    pub step: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
    /// This epoch's learning rate.
    pub lr: f64,
    /// This party's traffic since the job started.
    pub stats: CommStats,
}

/// What a training job produced at this party.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The trained float weights (PyTorch names), only at the party
    /// [`Reveal::To`] names.
    pub weights: Option<Weights>,
    /// This party's share of the trained fixed-point parameters, only with
    /// [`Reveal::Shares`] (weights at `f` fractional bits, biases at `2f`;
    /// the two shares add up to what [`decode_params`] decodes).
    pub share: Option<Params>,
    /// This party's traffic for the whole job.
    pub stats: CommStats,
    /// Wall time of the job.
    pub seconds: f64,
    /// Training steps run.
    pub steps: usize,
}

/// The data owner's order of the images for one epoch: a uniform shuffle
/// of `0..images` drawn from `rng`. [`run_training`] draws every epoch's
/// order in turn from one generator (`ChaCha20Rng::seed_from_u64(seed)`
/// with a shuffle seed, the OS otherwise); step `s` of the epoch takes the
/// images at `order[s * batch..(s + 1) * batch]`.
pub fn epoch_order<G: Rng + ?Sized>(rng: &mut G, images: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..images).collect();
    idx.shuffle(rng);
    idx
}

/// A fresh random share of `v`: `(mine, theirs)` with `theirs` uniform and
/// `mine + theirs = v`.
fn split<G: Rng + ?Sized>(v: &[u64], rng: &mut G) -> (Vec<u64>, Vec<u64>) {
    let theirs: Vec<u64> = v.iter().map(|_| rng.random()).collect();
    let mine = v
        .iter()
        .zip(&theirs)
        .map(|(v, r)| v.wrapping_sub(*r))
        .collect();
    (mine, theirs)
}

/// A parameter share received from the peer: exactly the model's training
/// tensors ([`Params::train_spec`]).
fn params_from_peer(bytes: &[u8], model: &Model, what: &str) -> Result<Params, PartyError> {
    Params::from_safetensors(bytes)
        .and_then(|p| p.check_train(model).map(|()| p))
        .map_err(|e| PartyError::Protocol(format!("{what}: {e}")))
}

/// Runs the training `job` at this party (`transport.party()`) with
/// `asset`, keys from `source` (consumed from plan index 0, the whole job
/// in one sequence); `progress` is called at the start of every epoch and
/// after every step. See the module docs for the steps.
pub fn run_training<T, S, P>(
    job: &TrainJob,
    asset: &TrainAsset,
    transport: &mut T,
    source: &mut S,
    mut progress: P,
) -> Result<TrainOutcome, PartyError>
where
    T: Transport + ?Sized,
    S: PreprocessingSource<u64> + ?Sized,
    P: FnMut(&TrainProgress),
{
    let start = Instant::now();
    let before = transport.stats();
    let me = transport.party();
    let model = &job.model;
    let cfg = &job.cfg;
    // Local checks first: nothing is sent for a job this party cannot run.
    job.check()?;
    let one_step = job.step_plan()?;
    asset.check(job)?;
    let classes = job.classes()?;
    let steps = job.steps()?;
    let spe = job.steps_per_epoch();
    let batch = job.batch;
    let n_in = batch * model.input_len();
    let n_t = batch * classes;
    let plan_hash = one_step
        .hash_repeated(steps as u64)
        .ok_or_else(|| NnError::Overflow(format!("{steps} steps")))?;
    let digest = job.digest_of(&plan_hash);

    // 1. Same job, complementary assets.
    let mut hello = digest.to_vec();
    hello.push(asset.kind());
    let peer = transport.exchange(&hello)?;
    if peer.len() != 33 {
        return Err(PartyError::Protocol(format!(
            "training job hello of {} bytes (expected 33)",
            peer.len()
        )));
    }
    if peer[..32] != digest {
        return Err(PartyError::JobMismatch {
            ours: hex8(&digest),
            theirs: hex8(&peer[..32]),
        });
    }
    if peer[32] == asset.kind() {
        return Err(PartyError::SameAsset(asset.name()));
    }
    if !matches!(peer[32], 1 | 2) {
        return Err(PartyError::Protocol(format!(
            "unknown asset kind {}",
            peer[32]
        )));
    }

    // 2. The model owner shares the initial weights.
    let mut rng = ChaCha20Rng::from_os_rng();
    let params = match asset {
        TrainAsset::ModelOwner(w) => {
            let (mine, theirs) = Params::encode_train(model, w, cfg)?.share(&mut rng);
            send_only(transport, &theirs.to_safetensors()?, "weight share")?;
            mine
        }
        TrainAsset::DataOwner { .. } => {
            let got = transport.exchange(&[])?;
            params_from_peer(&got, model, "weight share")?
        }
    };
    let mut state = TrainState::new(params);

    // 3. The steps, in one session: the keys of the whole job in order.
    let mut order_rng = match asset {
        TrainAsset::DataOwner {
            shuffle_seed: Some(s),
            ..
        } => ChaCha20Rng::seed_from_u64(*s),
        _ => ChaCha20Rng::from_os_rng(),
    };
    let mut session = Session::new(&mut *transport, source);
    let report = |epoch: usize, step: usize, lr: f64, stats: CommStats| TrainProgress {
        epoch,
        epochs: job.epochs,
        step,
        steps_per_epoch: spe,
        lr,
        stats: stats.since(&before),
    };
    for epoch in 0..job.epochs {
        let lr = job.lr.at(epoch);
        progress(&report(epoch, 0, lr, session.transport().stats()));
        let order = match asset {
            TrainAsset::DataOwner { .. } => epoch_order(&mut order_rng, job.images),
            TrainAsset::ModelOwner(_) => Vec::new(),
        };
        for step in 0..spe {
            let (x, t) = match asset {
                TrainAsset::DataOwner { images, labels, .. } => {
                    let idx = &order[step * batch..(step + 1) * batch];
                    let len = model.input_len();
                    let mut xb = Vec::with_capacity(n_in);
                    for &i in idx {
                        xb.extend_from_slice(&images[i * len..(i + 1) * len]);
                    }
                    let lb: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
                    let (x, x_theirs) = split(&encode_input(&xb, cfg)?, &mut rng);
                    let (t, t_theirs) =
                        split(&encode_targets(&lb, classes, job.tcfg.loss, cfg)?, &mut rng);
                    let mut msg = u64s_to_bytes(&x_theirs);
                    msg.extend_from_slice(&u64s_to_bytes(&t_theirs));
                    send_only(session.transport_mut(), &msg, "batch share")?;
                    (x, t)
                }
                TrainAsset::ModelOwner(_) => {
                    let got = session.transport_mut().exchange(&[])?;
                    let mut x = bytes_to_u64s(&got, n_in + n_t, "batch share")?;
                    let t = x.split_off(n_in);
                    (x, t)
                }
            };
            train_step(
                &mut session,
                model,
                &mut state,
                &x,
                &t,
                batch,
                cfg,
                &job.tcfg,
                lr,
            )?;
            progress(&report(epoch, step + 1, lr, session.transport().stats()));
        }
    }
    let used = session.position();
    let planned = (one_step.gates.len() as u64).saturating_mul(steps as u64);
    if used != planned {
        return Err(invalid(format!(
            "the job used {used} key bundles, its plan has {planned}"
        )));
    }

    // 4. The result.
    let TrainState { params, .. } = state;
    let (weights, share) = match job.reveal {
        Reveal::To(p) if p == me => {
            let got = transport.exchange(&[])?;
            let theirs = params_from_peer(&got, model, "parameter share")?;
            let full = Params::reconstruct(&params, &theirs)?;
            (Some(decode_params(model, &full, cfg)?), None)
        }
        Reveal::To(_) => {
            send_only(transport, &params.to_safetensors()?, "parameter share")?;
            (None, None)
        }
        Reveal::Shares => (None, Some(params)),
    };
    Ok(TrainOutcome {
        weights,
        share,
        stats: transport.stats().since(&before),
        seconds: start.elapsed().as_secs_f64(),
        steps,
    })
}
