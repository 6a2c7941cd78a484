//! # ariann-party: one party's side of a private job
//!
//! A [`Job`] is public and identical at both parties: the model's
//! architecture, the batch size, the fixed-point [`Config`] and which party
//! learns the output. Each party brings one private [`Asset`]: the model
//! owner its weights, the data owner its inputs. [`run_job`] then, over any
//! [`Transport`] and with keys from any [`PreprocessingSource`] (a key file,
//! a dealer stream, memory):
//!
//! 1. checks that the peer runs the same job (digest of the job) with the
//!    other asset;
//! 2. the owner of each asset secret-shares it: it keeps one share and
//!    sends the other (uniformly random on its own) to the peer;
//! 3. both run the private forward pass ([`ariann_nn::forward_private`];
//!    a job of several batches, [`run_job_batches`], runs them one after the
//!    other and opens the weights' masks in the first batch only);
//! 4. the party the job does not name sends its output share to the named
//!    party, which reconstructs and decodes the output. The other party
//!    learns nothing.
//!
//! [`linked::run_linked_job`] runs a job between two processes: keys from
//! a key file, the link over gRPC (`ariann-net`).
//!
//! Private training is the same shape: a [`TrainJob`], a [`TrainAsset`]
//! (initial weights or the training set) and [`run_training`], whose
//! per-step batches are shared by the data owner and whose trained weights
//! go to the party the job names (module [`train`];
//! [`linked::run_linked_training`] between two processes).
//!
//! The data owner's input files ([`inputs`]): `.npy` (read with `npyz`, a
//! small pure-Rust reader of NumPy's format, the one most Python pipelines
//! save) or safetensors, NCHW.
//!
//! Nothing but a fresh random share, a masked value or the job's revealed
//! output crosses the transport. Any mismatch (another job, the same asset
//! on both sides, a share of the wrong length) is an error before any data
//! is sent.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod daemon;
pub mod images;
pub mod inputs;
pub mod linked;
pub mod train;

pub use train::{
    LrSchedule, Reveal, TrainAsset, TrainJob, TrainOutcome, TrainProgress, epoch_order,
    run_training,
};

use ariann_fss::Party;
use ariann_mpc::{CommStats, MpcError, PreprocessingSource, Session, Transport};
pub use ariann_nn::Config;
use ariann_nn::{
    Model, NnError, Params, Weights, decode_output, encode_input, forward_private, share_weights,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::time::Instant;
use thiserror::Error;

/// Errors of a party's job.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PartyError {
    /// The peer runs another job (model, batch, config or output party).
    #[error("the peer runs another job (job digest {theirs} here {ours})")]
    JobMismatch {
        /// This party's job digest (hex, first 8 bytes).
        ours: String,
        /// The peer's (hex, first 8 bytes).
        theirs: String,
    },
    /// Both parties bring the same kind of asset.
    #[error("both parties hold the {0}: one must bring the weights, the other the inputs")]
    SameAsset(&'static str),
    /// The peer broke the job's message sequence.
    #[error("protocol violation by the peer: {0}")]
    Protocol(String),
    /// A model, weight or input problem.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// A two-party protocol or transport failure.
    #[error(transparent)]
    Mpc(#[from] MpcError),
    /// A job of zero batches (or zero inputs per batch).
    #[error(
        "a job needs at least one batch of at least one input (batch {batch}, batches {batches})"
    )]
    EmptyJob {
        /// Inputs per batch.
        batch: usize,
        /// Batches.
        batches: usize,
    },
}

/// The public description of a job; both parties must hold the same.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The architecture (public), as it will run (folded, permuted).
    pub model: Model,
    /// Inputs in the batch.
    pub batch: usize,
    /// Batches of `batch` inputs, run one after the other (at least 1):
    /// the data owner brings `batch x batches` inputs, the output holds
    /// every batch's rows in order. With more than one, the weights are
    /// masked and opened in the first batch only and every later batch
    /// reuses those masks ([`Job::plan`] is [`ariann_nn::plan_batches`]
    /// with weight-mask reuse).
    pub batches: usize,
    /// Fixed-point and window parameters.
    pub cfg: Config,
    /// The party that learns the output.
    pub output_to: Party,
}

/// The largest message one gate of `plan` sends in a round (at least
/// 64 KiB, room for the small protocol messages).
pub(crate) fn largest_gate_message(plan: &ariann_dealer::Plan) -> Result<u64, PartyError> {
    let mut max: u64 = 64 << 10;
    for g in &plan.gates {
        max = max.max(g.cost(plan.ring_bits)?.bytes_sent);
    }
    Ok(max)
}

/// A bound on the bytes of a share of `model`'s parameters as safetensors
/// (8 bytes per value, room for each tensor's header entry and the file's).
pub(crate) fn params_message_bound(model: &ariann_nn::Model) -> Result<u64, PartyError> {
    let overflow = || PartyError::Protocol("the job's message sizes overflow".to_string());
    let mut weights: u64 = 4096;
    for (_, shape) in model.parameters() {
        let n = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d as u64))
            .ok_or_else(overflow)?;
        weights = n
            .checked_mul(8)
            .and_then(|b| b.checked_add(256))
            .and_then(|b| b.checked_add(weights))
            .ok_or_else(overflow)?;
    }
    Ok(weights)
}

/// The largest key bundle of `plan` in bytes (the bundle encoding of one
/// gate's key: the same size for both parties). A party streaming its
/// keys from the dealer buffers no more than this per bundle
/// (`DealerConfig::max_bundle`): a dealer or impostor announcing a longer
/// bundle is refused at the first byte past it.
pub fn max_bundle_of(plan: &ariann_dealer::Plan) -> Result<u64, PartyError> {
    let mut max: u64 = 0;
    for g in &plan.gates {
        max = max.max(g.cost(plan.ring_bits)?.encoded_bytes);
    }
    Ok(max)
}

impl Job {
    /// The dealer's plan of this job: [`Job::plan_batches`] of its
    /// `batches` (one batch: [`ariann_nn::plan`]).
    pub fn plan(&self) -> Result<ariann_dealer::Plan, PartyError> {
        self.plan_batches(self.batches)
    }

    /// Refuses a job of no batch or of empty batches.
    fn check_batches(&self, batches: usize) -> Result<(), PartyError> {
        if batches == 0 || self.batch == 0 {
            return Err(PartyError::EmptyJob {
                batch: self.batch,
                batches,
            });
        }
        Ok(())
    }

    /// The inputs of the whole job: `batch x batches`.
    pub fn inputs(&self) -> Result<usize, PartyError> {
        self.batch.checked_mul(self.batches).ok_or_else(|| {
            NnError::Overflow(format!("{} batches of {}", self.batches, self.batch)).into()
        })
    }

    /// The largest message either party sends in this job, from its plan:
    /// the largest gate's online bytes (a bound on each of its rounds), the
    /// weight share (safetensors, with room for its header), the input and
    /// the output shares (each one message for all the job's batches:
    /// `batch x batches` rows). The link refuses longer messages from the peer
    /// (`NetConfig::max_message_size`), so a peer cannot make this party
    /// buffer more than the job needs.
    pub fn max_message_of(&self, plan: &ariann_dealer::Plan) -> Result<usize, PartyError> {
        let overflow = || PartyError::Protocol("the job's message sizes overflow".to_string());
        let max = largest_gate_message(plan)?;
        let weights = params_message_bound(&self.model)?;
        let rows = self.inputs()? as u64;
        let per_row = |n: usize| rows.checked_mul(n as u64)?.checked_mul(8);
        let out_len = self
            .model
            .shapes()?
            .last()
            .map(|s| s.iter().product::<usize>())
            .unwrap_or(0);
        let input = per_row(self.model.input_len()).ok_or_else(overflow)?;
        let output = per_row(out_len).ok_or_else(overflow)?;
        let max = max.max(weights).max(input).max(output);
        usize::try_from(max).map_err(|_| overflow())
    }

    /// The dealer's plan of a job of `batches` batches of this job's batch
    /// (whatever its own `batches`): the first batch is the one-batch plan,
    /// every later batch reuses the first batch's weight masks
    /// ([`ariann_nn::plan_batches`]). One batch is [`ariann_nn::plan`].
    pub fn plan_batches(&self, batches: usize) -> Result<ariann_dealer::Plan, PartyError> {
        self.check_batches(batches)?;
        Ok(ariann_nn::plan_batches(
            &self.model,
            self.batch,
            batches,
            &self.cfg,
            true,
        )?)
    }

    /// A digest of everything both parties must agree on.
    pub fn digest(&self) -> Result<[u8; 32], PartyError> {
        Ok(self.digest_of(&self.plan()?))
    }

    /// [`Job::digest`] with this job's plan already at hand (tracing the
    /// plan of a large model takes a fraction of a second).
    pub fn digest_of(&self, plan: &ariann_dealer::Plan) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"ariann-rs job v1");
        h.update(plan.hash());
        h.update(self.model.to_json().as_bytes());
        h.update((self.batch as u64).to_le_bytes());
        h.update(self.cfg.digest_bytes());
        h.update([party_byte(self.output_to)]);
        h.finalize().into()
    }
}

/// What this party brings to the job.
#[derive(Debug, Clone)]
pub enum Asset {
    /// The model owner's float weights (PyTorch names).
    Weights(Weights),
    /// The data owner's inputs: `batch x input_len` floats, row-major.
    Input(Vec<f32>),
}

impl Asset {
    fn kind(&self) -> u8 {
        match self {
            Asset::Weights(_) => 1,
            Asset::Input(_) => 2,
        }
    }
}

/// What a job produced at this party.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The decoded output (`batch x classes` for each of the job's batches,
    /// in order), only at the party the job names.
    pub output: Option<Vec<f64>>,
    /// This party's traffic for the whole job (sharing, inference, reveal).
    pub stats: CommStats,
    /// This party's traffic of each batch's private forward pass, in order
    /// (with weight masks reused, every batch after the first opens only
    /// activations and sends far less).
    pub batch_stats: Vec<CommStats>,
    /// Wall time of the job.
    pub seconds: f64,
}

fn party_byte(p: Party) -> u8 {
    match p {
        Party::P0 => 0,
        Party::P1 => 1,
    }
}

fn hex8(d: &[u8]) -> String {
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn u64s_to_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_to_u64s(b: &[u8], expected: usize, what: &str) -> Result<Vec<u64>, PartyError> {
    if b.len() != expected * 8 {
        return Err(PartyError::Protocol(format!(
            "{what}: {} bytes where {} were expected",
            b.len(),
            expected * 8
        )));
    }
    Ok(b.chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

/// Sends `mine` and expects nothing back (the peer is the receiver).
fn send_only<T: Transport + ?Sized>(t: &mut T, mine: &[u8], what: &str) -> Result<(), PartyError> {
    let got = t.exchange(mine)?;
    if !got.is_empty() {
        return Err(PartyError::Protocol(format!(
            "{what}: the peer sent {} bytes while this party was the sender",
            got.len()
        )));
    }
    Ok(())
}

/// [`run_job`] for `batches` batches of `job.batch` inputs each, whatever
/// `job.batches` says: [`run_job`] of the same job with `batches` batches.
pub fn run_job_batches<T: Transport + ?Sized, S: PreprocessingSource<u64> + ?Sized>(
    job: &Job,
    batches: usize,
    asset: &Asset,
    transport: &mut T,
    source: &mut S,
) -> Result<Outcome, PartyError> {
    if batches == job.batches {
        return run_job(job, asset, transport, source);
    }
    let job = Job {
        batches,
        ..job.clone()
    };
    run_job(&job, asset, transport, source)
}

/// Runs `job` at this party (`transport.party()`) with `asset`, keys from
/// `source` (consumed from plan index 0), generated from [`Job::plan`].
/// See the crate docs for the steps. A job of several batches
/// (`job.batches`; the data owner's asset holds `batches x batch` inputs)
/// runs them one after the other: the weights are masked and opened once,
/// in the first batch, and every later batch opens only activations
/// (weight masks reused, `ariann_mpc::gates::reuse`). The job digest covers
/// the number of batches (through the plan hash).
pub fn run_job<T: Transport + ?Sized, S: PreprocessingSource<u64> + ?Sized>(
    job: &Job,
    asset: &Asset,
    transport: &mut T,
    source: &mut S,
) -> Result<Outcome, PartyError> {
    let start = Instant::now();
    let before = transport.stats();
    let me = transport.party();
    let model = &job.model;
    let batches = job.batches;
    job.check_batches(batches)?;
    let n_in = job
        .inputs()?
        .checked_mul(model.input_len())
        .ok_or_else(|| NnError::Overflow(format!("{batches} batches of {}", job.batch)))?;
    // Local checks first: nothing is sent for a job this party cannot run.
    match asset {
        Asset::Weights(w) => w.check(model)?,
        Asset::Input(x) if x.len() != n_in => {
            return Err(NnError::InputSize {
                expected: n_in,
                got: x.len(),
            }
            .into());
        }
        Asset::Input(_) => {}
    }
    let digest = job.digest_of(&job.plan()?);

    // 1. Same job, complementary assets.
    let mut hello = digest.to_vec();
    hello.push(asset.kind());
    let peer = transport.exchange(&hello)?;
    if peer.len() != 33 {
        return Err(PartyError::Protocol(format!(
            "job hello of {} bytes (expected 33)",
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
        return Err(PartyError::SameAsset(match asset {
            Asset::Weights(_) => "weights",
            Asset::Input(_) => "inputs",
        }));
    }
    if !matches!(peer[32], 1 | 2) {
        return Err(PartyError::Protocol(format!(
            "unknown asset kind {}",
            peer[32]
        )));
    }

    // 2. Each owner shares its asset (weights first, then inputs).
    let mut rng = ChaCha20Rng::from_os_rng();
    let (weights, input) = match asset {
        Asset::Weights(w) => {
            let (mine, theirs) = share_weights(model, w, &job.cfg, &mut rng)?;
            send_only(transport, &theirs.to_safetensors()?, "weight share")?;
            drop(theirs);
            let got = transport.exchange(&[])?;
            (mine, bytes_to_u64s(&got, n_in, "input share")?)
        }
        Asset::Input(x) => {
            let got = transport.exchange(&[])?;
            // The share comes by name (safetensors); it must be exactly
            // the model's parameter tensors with their shapes.
            let w = Params::from_safetensors(&got)
                .and_then(|w| w.check(model).map(|()| w))
                .map_err(|e| PartyError::Protocol(format!("weight share: {e}")))?;
            let enc = encode_input(x, &job.cfg)?;
            let theirs: Vec<u64> = enc.iter().map(|_| rng.random()).collect();
            let mine: Vec<u64> = enc
                .iter()
                .zip(&theirs)
                .map(|(v, r)| v.wrapping_sub(*r))
                .collect();
            send_only(transport, &u64s_to_bytes(&theirs), "input share")?;
            (w, mine)
        }
    };

    // 3. The private forward pass, batch after batch (what
    // `ariann_nn::forward_batches` runs, with each batch's traffic counted).
    let one = n_in / batches;
    let mut batch_stats = Vec::with_capacity(batches);
    let y = {
        let mut session = Session::new(&mut *transport, source);
        if batches > 1 {
            session = session.with_weight_reuse();
        }
        let mut y = Vec::new();
        for i in 0..batches {
            let at = session.transport().stats();
            y.extend(forward_private(
                &mut session,
                model,
                &weights,
                &input[i * one..(i + 1) * one],
                job.batch,
                &job.cfg,
            )?);
            batch_stats.push(session.transport().stats().since(&at));
        }
        y
    };

    // 4. Reveal to the named party only.
    let output = if me == job.output_to {
        let got = transport.exchange(&[])?;
        let theirs = bytes_to_u64s(&got, y.len(), "output share")?;
        let raw: Vec<u64> = y
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a.wrapping_add(*b))
            .collect();
        Some(decode_output(&raw, &job.cfg))
    } else {
        send_only(transport, &u64s_to_bytes(&y), "output share")?;
        None
    };
    Ok(Outcome {
        output,
        stats: transport.stats().since(&before),
        batch_stats,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Writes `bytes` to `path`, readable by this user only (mode 0600 on Unix,
/// also when the file existed): outputs and shares are secrets.
pub fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    f.sync_all()
}
