//! `ariann-party --train`: one party of a private training job.
//!
//! The model owner brings the initial weights (`--weights FILE`, or
//! `--init RULE [--init-seed S]`), the data owner the training set
//! (`--train-data FILE`); both give the same public job (model, `--batch`,
//! `--epochs`, `--train-images`, the learning-rate schedule, `--momentum`,
//! `--weight-decay`, `--loss`, the fixed-point options, `--reveal-to`),
//! which the two check by digest before anything is shared. The result is
//! written to `--out`: the trained weights at the party `--reveal-to`
//! names, or each party's share with `--reveal-to shares`. Exit codes as in
//! inference (see the binary's docs).

use crate::{
    Fail, Keys, Opts, config_of, keys_of, model_of, net_config, open_keys, party_of, read, trust_of,
};
use anyhow::{Context, Result, anyhow, bail};
use ariann_dealer::keyfile::to_hex;
use ariann_fss::Party;
use ariann_net::NetConfig;
use ariann_nn::{Init, Layer, Loss, Rounding, TrainConfig, Weights};
use ariann_party::linked::run_linked_training;
use ariann_party::{LrSchedule, Reveal, TrainAsset, TrainJob, TrainProgress};
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use safetensors::{Dtype, SafeTensors};
use serde::Deserialize;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Shown at the end of `--help`.
pub(crate) const AFTER_HELP: &str = "\
Training (--train): the model owner gives --weights FILE (safetensors, F32, PyTorch \
names) or --init he|glorot|pytorch [--init-seed S]; the data owner gives --train-data \
FILE, a safetensors file with a tensor `images` (F32, shape [N, ...input shape] or \
[N, input length]) and a tensor `labels` (U8 or I64, shape [N], each below the number \
of classes). Both give the same --model/--model-json, --batch (a power of two), \
--epochs, --train-images N, --lr, --lr-step, --lr-gamma, --momentum, --weight-decay, \
--optimizer, --beta1, --beta2, --eps, \
--loss, --frac-bits, --k-cmp, --k-trunc, --max-gate-elems, --rounding, \
--permute-relu-maxpool, --keep-final-relu and --reveal-to; the dealer \
(`ariann-dealer serve --train ...`) the ones that fix the plan. A final ReLU on the \
logits is dropped for training unless --keep-final-relu.";

/// `--rounding`.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoundingArg {
    /// Round down.
    Floor,
    /// Round to nearest.
    Nearest,
    /// Stochastic rounding (one-round `trunc_stoch` gates, no FSS keys:
    /// far fewer key bytes; equal to the fixed point in distribution only).
    Stochastic,
}

impl From<Rounding> for RoundingArg {
    fn from(r: Rounding) -> Self {
        match r {
            Rounding::Floor => RoundingArg::Floor,
            Rounding::Nearest => RoundingArg::Nearest,
            Rounding::Stochastic => RoundingArg::Stochastic,
        }
    }
}

impl From<ariann_job::LossName> for LossArg {
    fn from(l: ariann_job::LossName) -> Self {
        match l {
            ariann_job::LossName::Ce => LossArg::Ce,
            ariann_job::LossName::Mse => LossArg::Mse,
        }
    }
}

impl From<RoundingArg> for Rounding {
    fn from(r: RoundingArg) -> Self {
        match r {
            RoundingArg::Floor => Rounding::Floor,
            RoundingArg::Nearest => Rounding::Nearest,
            RoundingArg::Stochastic => Rounding::Stochastic,
        }
    }
}

/// `--loss`.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LossArg {
    /// Softmax cross-entropy.
    Ce,
    /// Mean squared error against the one-hot labels.
    Mse,
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OptimizerArg {
    /// SGD with momentum and weight decay.
    Sgd,
    /// Adam (--beta1, --beta2, --eps; the dealer must have the same --eps).
    Adam,
}

impl From<ariann_job::OptimizerName> for OptimizerArg {
    fn from(o: ariann_job::OptimizerName) -> Self {
        match o {
            ariann_job::OptimizerName::Sgd => OptimizerArg::Sgd,
            ariann_job::OptimizerName::Adam => OptimizerArg::Adam,
        }
    }
}

impl From<OptimizerArg> for ariann_job::OptimizerName {
    fn from(o: OptimizerArg) -> Self {
        match o {
            OptimizerArg::Sgd => ariann_job::OptimizerName::Sgd,
            OptimizerArg::Adam => ariann_job::OptimizerName::Adam,
        }
    }
}

/// `--init`.
#[derive(Clone, Copy, Debug, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InitArg {
    /// He (Kaiming) uniform.
    He,
    /// Glorot (Xavier) uniform.
    Glorot,
    /// PyTorch's default for linear and convolutional layers.
    Pytorch,
}

/// The training options given, by their flag.
fn training_options(o: &Opts) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut given = |set: bool, name: &'static str| {
        if set {
            v.push(name);
        }
    };
    given(o.epochs.is_some(), "--epochs");
    given(o.train_images.is_some(), "--train-images");
    given(o.lr.is_some(), "--lr");
    given(o.lr_step.is_some(), "--lr-step");
    given(o.lr_gamma.is_some(), "--lr-gamma");
    given(o.momentum.is_some(), "--momentum");
    given(o.weight_decay.is_some(), "--weight-decay");
    given(o.optimizer.is_some(), "--optimizer");
    given(o.beta1.is_some(), "--beta1");
    given(o.beta2.is_some(), "--beta2");
    given(o.eps.is_some(), "--eps");
    given(o.loss.is_some(), "--loss");
    given(o.reveal_to.is_some(), "--reveal-to");
    given(o.init.is_some(), "--init");
    given(o.init_seed.is_some(), "--init-seed");
    given(o.train_data.is_some(), "--train-data");
    given(o.shuffle_seed.is_some(), "--shuffle-seed");
    given(o.out.is_some(), "--out");
    given(o.keep_final_relu.is_some(), "--keep-final-relu");
    v
}

/// Inference refuses the training options (a forgotten `--train`).
pub(crate) fn reject_training_options(o: &Opts) -> Result<()> {
    match training_options(o).as_slice() {
        [] => Ok(()),
        given => bail!("{} only apply with --train", given.join(", ")),
    }
}

/// The data owner's training set: `images` (F32, `[N, ...]`) and `labels`
/// (U8 or I64, `[N]`), checked against the model's input.
fn load_train_data(path: &Path, input: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
    let bytes = read(path)?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let what = |t: &str| format!("{}: tensor `{t}`", path.display());
    let images = st
        .tensor("images")
        .map_err(|_| anyhow!("{} has no tensor named `images`", path.display()))?;
    let labels = st
        .tensor("labels")
        .map_err(|_| anyhow!("{} has no tensor named `labels`", path.display()))?;
    if images.dtype() != Dtype::F32 {
        bail!("{} is {:?}, not F32", what("images"), images.dtype());
    }
    let shape = images.shape();
    let len: usize = input.iter().product();
    let Some((&n, rest)) = shape.split_first() else {
        bail!("{} is a scalar, not [N, ...]", what("images"));
    };
    if rest != input && rest != [len] {
        bail!(
            "{} has shape {shape:?}: the model takes [N, {}] (or [N, {len}])",
            what("images"),
            input
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let x: Vec<f32> = images
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if labels.shape() != [n] {
        bail!(
            "{} has shape {:?}, expected [{n}] (one per image)",
            what("labels"),
            labels.shape()
        );
    }
    let y: Vec<usize> = match labels.dtype() {
        Dtype::U8 => labels.data().iter().map(|l| usize::from(*l)).collect(),
        Dtype::I64 => labels
            .data()
            .chunks_exact(8)
            .enumerate()
            .map(|(i, c)| {
                let v = i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                usize::try_from(v)
                    .map_err(|_| anyhow!("{}: label {i} is negative ({v})", what("labels")))
            })
            .collect::<Result<_>>()?,
        d => bail!("{} is {d:?}: labels must be U8 or I64", what("labels")),
    };
    Ok((x, y))
}

/// What `--train` asks for, checked.
struct Setup {
    party: Party,
    job: TrainJob,
    asset: TrainAsset,
    net: NetConfig,
    keys: Keys,
    ready_file: Option<PathBuf>,
    out: Option<PathBuf>,
}

/// The job and this party's asset from the options. Usage errors only
/// (the asset's own checks come after, as the party's fault).
fn setup(o: &Opts) -> Result<Setup> {
    let party = party_of(o.id, "id")?;
    for (set, flag, instead) in [
        (o.input.is_some(), "--input", "--train-data"),
        (o.output.is_some(), "--output", "--out"),
        (o.output_to.is_some(), "--output-to", "--reveal-to"),
        (
            o.batches.is_some(),
            "--batches",
            "--epochs and --train-images",
        ),
    ] {
        if set {
            bail!("{flag} is for inference; training takes {instead}");
        }
    }
    let Some(batch) = o.batch else {
        bail!("--batch is required (a power of two)");
    };
    if !batch.is_power_of_two() {
        bail!("--batch {batch}: training needs a power of two");
    }
    let reveal = match o.reveal_to.as_deref() {
        Some("0") => Reveal::To(Party::P0),
        Some("1") => Reveal::To(Party::P1),
        Some("shares") => Reveal::Shares,
        Some(v) => bail!("--reveal-to {v}: 0, 1 or shares"),
        None => bail!("--reveal-to is required (0, 1 or shares)"),
    };
    let mut model = model_of(o)?;
    if !o.keep_final_relu.unwrap_or(false) && matches!(model.layers.last(), Some(Layer::Relu)) {
        model.layers.pop();
    }
    let model = if o.permute_relu_maxpool.unwrap_or(false) {
        model.permute_relu_maxpool()
    } else {
        model
    };
    let owner = o.weights.is_some() || o.init.is_some();
    let (asset, images) = match (owner, &o.train_data) {
        (true, None) => {
            if o.shuffle_seed.is_some() {
                bail!("--shuffle-seed is the data owner's option (with --train-data)");
            }
            let w = match (&o.weights, o.init) {
                (Some(path), None) => {
                    if o.init_seed.is_some() {
                        bail!("--init-seed goes with --init, not --weights");
                    }
                    Weights::from_safetensors(&read(path)?)
                        .with_context(|| format!("cannot load weights {}", path.display()))?
                }
                (None, Some(init)) => {
                    let mut rng = match o.init_seed {
                        Some(s) => ChaCha20Rng::seed_from_u64(s),
                        None => ChaCha20Rng::from_os_rng(),
                    };
                    let rule = match init {
                        InitArg::He => Init::He,
                        InitArg::Glorot => Init::Glorot,
                        InitArg::Pytorch => Init::PyTorch,
                    };
                    Weights::init(&model, rule, &mut rng)
                }
                _ => bail!("give one of --weights FILE and --init RULE, not both"),
            };
            let Some(n) = o.train_images else {
                bail!(
                    "the model owner needs --train-images N (the public number of training images)"
                );
            };
            (TrainAsset::ModelOwner(w), n)
        }
        (false, Some(path)) => {
            if o.init_seed.is_some() {
                bail!("--init-seed is the model owner's option (with --init)");
            }
            let (images, labels) = load_train_data(path, &model.input)?;
            let n = labels.len();
            if let Some(want) = o.train_images
                && want != n
            {
                bail!(
                    "--train-images {want}, but {} holds {n} images",
                    path.display()
                );
            }
            let asset = TrainAsset::DataOwner {
                images,
                labels,
                shuffle_seed: o.shuffle_seed,
            };
            (asset, n)
        }
        (true, Some(_)) => bail!(
            "give the model owner's --weights/--init or the data owner's --train-data, not both"
        ),
        (false, None) => bail!(
            "give --weights FILE or --init RULE (model owner) or --train-data FILE (data owner)"
        ),
    };
    let d = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: ariann_nn::Optimizer::Sgd,
    };
    let job = TrainJob {
        model,
        batch,
        cfg: config_of(o, true)?,
        tcfg: TrainConfig {
            loss: match o.loss {
                None => d.loss,
                Some(LossArg::Ce) => Loss::CrossEntropy,
                Some(LossArg::Mse) => Loss::Mse,
            },
            momentum: o.momentum.unwrap_or(d.momentum),
            weight_decay: o.weight_decay.unwrap_or(d.weight_decay),
            // The job file's rule (defaults, Adam's settings only with Adam).
            optimizer: ariann_job::JobFile {
                optimizer: o.optimizer.map(Into::into),
                beta1: o.beta1,
                beta2: o.beta2,
                eps: o.eps,
                ..ariann_job::JobFile::default()
            }
            .optimizer()?,
        },
        epochs: o.epochs.unwrap_or(1),
        images,
        lr: LrSchedule {
            lr: o.lr.unwrap_or(0.05),
            step_epochs: o.lr_step,
            gamma: o.lr_gamma.unwrap_or(0.1),
        },
        reveal,
    };
    job.check()
        .map_err(|e| anyhow!("invalid training job: {e}"))?;
    let receives = match reveal {
        Reveal::To(p) => p == party,
        Reveal::Shares => true,
    };
    match (&o.out, receives) {
        (None, true) => bail!(
            "--out FILE is required: this party receives {}",
            if reveal == Reveal::Shares {
                "its share of the trained parameters"
            } else {
                "the trained weights"
            }
        ),
        (Some(_), false) => bail!(
            "--out: party {} receives nothing (--reveal-to {})",
            party.index(),
            o.reveal_to.as_deref().unwrap_or_default()
        ),
        (Some(f), true) => {
            // Fail now rather than after the job.
            let dir = f
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if !dir.is_dir() {
                bail!("--out {}: no directory {}", f.display(), dir.display());
            }
        }
        (None, false) => {}
    }
    Ok(Setup {
        party,
        job,
        asset,
        net: net_config(o, party)?,
        keys: keys_of(o)?,
        ready_file: o.ready_file.clone(),
        out: o.out.clone(),
    })
}

/// The per-epoch progress bar (stderr, only on a terminal) and one line per
/// epoch (unless quiet).
struct Progress {
    bar: Option<ProgressBar>,
    draw: bool,
    quiet: bool,
    epoch_start: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        Progress {
            bar: None,
            draw: !quiet && std::io::stderr().is_terminal(),
            quiet,
            epoch_start: Instant::now(),
        }
    }

    fn update(&mut self, p: &TrainProgress) {
        if p.step == 0 {
            self.epoch_start = Instant::now();
            if self.draw {
                let bar = ProgressBar::new(p.steps_per_epoch as u64);
                bar.set_style(
                    ProgressStyle::with_template(
                        "epoch {msg} [{bar:40}] {pos}/{len} steps, {elapsed_precise} (eta {eta})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_message(format!("{}/{}", p.epoch + 1, p.epochs));
                self.bar = Some(bar);
            }
        } else if let Some(bar) = &self.bar {
            bar.set_position(p.step as u64);
        }
        if p.step == p.steps_per_epoch {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
            if !self.quiet {
                eprintln!(
                    "epoch {}/{}: {} steps in {:.2} s (lr {}), {:.2} MB sent so far",
                    p.epoch + 1,
                    p.epochs,
                    p.steps_per_epoch,
                    self.epoch_start.elapsed().as_secs_f64(),
                    p.lr,
                    p.stats.bytes_sent as f64 / 1e6
                );
            }
        }
    }
}

/// `ariann-party --train`.
pub(crate) fn run(o: Opts) -> Result<(), Fail> {
    let s = setup(&o).map_err(Fail::Usage)?;
    let plan_hash = s.job.plan_hash().map_err(|e| Fail::Usage(e.into()))?;
    // This party's asset before the keys and the link: its own fault.
    s.asset
        .check(&s.job)
        .context("this party's asset does not fit the job")
        .map_err(Fail::Local)?;
    let bundles = s.job.bundles().map_err(|e| Fail::Usage(e.into()))?;
    let step_plan = s.job.step_plan().map_err(|e| Fail::Usage(e.into()))?;
    let max_bundle = ariann_party::max_bundle_of(&step_plan).map_err(|e| Fail::Usage(e.into()))?;
    // The peer may send no message longer than this job needs.
    let limit = s
        .job
        .max_message_of(&step_plan)
        .map_err(|e| Fail::Usage(e.into()))?;
    drop(step_plan);
    let trust = trust_of(&o)?;
    // The link secret goes into the party link's Hello (issue 12, item 3).
    let (session, link_secret, mut source) = open_keys(
        &s.keys,
        s.party,
        (plan_hash, bundles, max_bundle),
        &s.net,
        &trust,
    )?;
    let digest = s.job.digest_of(&plan_hash);
    let steps = s.job.steps().map_err(|e| Fail::Usage(e.into()))?;
    tracing::info!(
        party = ?s.party,
        job = %to_hex(&digest[..8]),
        plan_hash = %to_hex(&plan_hash[..8]),
        session = %to_hex(&session),
        steps,
        "training job ready"
    );
    let mut progress = Progress::new(o.quiet);
    let out = run_linked_training(
        &s.job,
        &s.asset,
        &mut *source,
        &session,
        s.net
            .clone()
            .max_message_size(limit)
            .link_secret(link_secret),
        |addr| {
            tracing::info!(%addr, "listening");
            match &s.ready_file {
                Some(f) => std::fs::write(f, addr.to_string()),
                None => Ok(()),
            }
        },
        |p| progress.update(p),
    )?;
    eprintln!(
        "training job {} done in {:.3} s: {} steps ({} epochs of {}), {} rounds, {:.2} MB sent, {:.2} MB received",
        to_hex(&digest[..8]),
        out.seconds,
        out.steps,
        s.job.epochs,
        s.job.steps_per_epoch(),
        out.stats.rounds,
        out.stats.bytes_sent as f64 / 1e6,
        out.stats.bytes_received as f64 / 1e6
    );
    let bytes = match (&out.weights, &out.share) {
        (Some(w), _) => Some((w.to_safetensors(), "the trained weights")),
        (None, Some(p)) => Some((
            p.to_safetensors(),
            "this party's share of the trained parameters",
        )),
        (None, None) => None,
    };
    match (bytes, &s.out) {
        (Some((b, what)), Some(f)) => {
            let b = b.context("cannot encode the result").map_err(Fail::Local)?;
            ariann_party::write_private(f, &b)
                .with_context(|| format!("cannot write {}", f.display()))
                .map_err(Fail::Local)?;
            eprintln!("wrote {what} to {}", f.display());
        }
        (Some(_), None) => {
            return Err(Fail::Local(anyhow!("a result came but no --out was given")));
        }
        (None, _) => eprintln!("nothing is revealed to this party"),
    }
    Ok(())
}
