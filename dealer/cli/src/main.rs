//! `ariann-dealer`: the trusted dealer's command line.
//!
//! - `ariann-dealer identity --out DIR` creates the dealer's Ed25519 key
//!   pair: `DIR/dealer.key` (the secret seed, mode 0600; never leaves this
//!   host) and `DIR/dealer.pub` (the public key, one line of hex, which each
//!   party pins with `ariann-party --dealer-pubkey`).
//! - `ariann-dealer keys --signing-key DIR/dealer.key --model network1 --batch 128 --out DIR` derives the
//!   job's plan from a zoo model (or `--model-json FILE`, or a JSON plan with
//!   `--plan FILE`), generates both parties' keys from the operating
//!   system's randomness and writes `DIR/party0.keys` and `DIR/party1.keys`
//!   (format: `ariann_dealer::keyfile`), streaming, one gate at a time,
//!   signed with the dealer's key. A file being written is `*.keys.tmp`
//!   (0600); it is removed on any error and on SIGINT/SIGTERM (a handler
//!   from the `ctrlc` crate: std has no portable signal handling, and a
//!   killed dealer must not leave plaintext keys behind).
//! - `ariann-dealer plan --model network1 --batch 128` prints what the job
//!   costs before any work, from the gate costs (`ariann_mpc::cost`): keys
//!   per party, key file sizes, online bytes per party and rounds
//!   (`--json` prints the plan itself, `--hash` only its hash).
//!   `--batches N` (every subcommand that takes a model) makes an inference
//!   job of N batches of `--batch` inputs whose later batches reuse the
//!   first batch's weight masks (`ariann_nn::plan_batches`, the plan
//!   `ariann-party --batches N` expects); `plan` then also prints the first
//!   and the later batches' keys, online bytes and rounds.
//! - `ariann-dealer verify --dealer-pubkey dealer.pub DIR/party0.keys ...`
//!   checks key files end to end (the dealer's signatures on header, every
//!   chunk and trailer) without using them, and says "already used" for a
//!   file whose journal (or, with `--state-dir`, that party host's ledger)
//!   records it as consumed (exit 1).
//! - `ariann-dealer serve --signing-key dealer.key --model network1 --batch 128 --listen ADDR` serves
//!   one job's keys over gRPC (`KeyStream`, see `proto/ariann/v1/keys.proto`)
//!   to the two parties (`ariann-party --dealer ADDR`), generated one gate
//!   at a time under a fresh session id and never stored; exits 0 once both
//!   parties have confirmed they used all their keys, 1 if a party does not
//!   come, disconnects early or generation fails.
//!
//! With `--train` (and `--epochs`, `--train-images N`, `--loss`) each of
//! `keys`, `plan` and `serve` takes the plan of a private training job
//! instead (`ariann_nn::train::train_job_plan`: one step's plan repeated for
//! the `epochs * (N / batch)` steps), the plan both `ariann-party --train`
//! processes expect (`--optimizer adam` and its `--eps` change it too). The
//! learning rate, momentum, weight decay and Adam's betas do not change the
//! plan (the parties check them between themselves). A training
//! job's keys are large: `serve` streams them one bundle at a time.
//!
//! Every job option can come from a job file (`--job job.toml`, see
//! `ariann_job` and `docs/job-file.md`), the file `ariann-party --job` reads
//! too; options on the command line override it. `keys` refuses to start
//! when both key files would not fit in the free space of `--out`'s disk
//! (asked with the `fs4` crate: a small, maintained, pure-Rust wrapper of
//! `statvfs`/`GetDiskFreeSpaceEx`, so no `unsafe` here) and points to
//! `serve`, which stores nothing.
//!
//! Logs go to stderr (`-v`, `-vv`, or `RUST_LOG`); key material is never
//! logged. Exit status: 0 on success, 1 on any error (with a message), 2 on
//! a usage error.

use anyhow::{Context, Result, bail};
use ariann_dealer::Plan;
use ariann_dealer::auth::{DealerPublicKey, DealerSigningKey, LinkSecret};
use ariann_dealer::keyfile::{
    SessionId, journal_consumed, key_file_name, tmp_path, to_hex, verify_file, write_key_files,
};
use ariann_dealer::ledger::Ledger;
use ariann_dealer::plan_json;
use ariann_fss::Party;
use ariann_job::{JobFile, LossName, OptimizerName};
use ariann_net::keys::{DealerTls, KeyJob, KeyServer, KeyServerConfig};
use ariann_nn::{Config, Layer, Model, Rounding, TrainConfig, Variant, zoo};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

mod sizes;

#[derive(Parser)]
#[command(
    name = "ariann-dealer",
    version,
    about = "The trusted dealer of ariann-rs: plans and key files for two-party private inference and training"
)]
struct Cli {
    /// More logging on stderr (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create the dealer's signing identity: OUT/dealer.key (secret, 0600)
    /// and OUT/dealer.pub (what the parties pin with --dealer-pubkey).
    Identity {
        /// Output directory (created if missing; an existing dealer.key is
        /// never overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Generate a job's keys: writes OUT/party0.keys and OUT/party1.keys.
    Keys(KeysArgs),
    /// Print what a job costs before any work: keys per party, key file
    /// sizes, online bytes and rounds (`--json`: the plan itself; `--hash`:
    /// its hash).
    Plan(PlanArgs),
    /// Serve one job's keys over gRPC to the two parties (`ariann-party
    /// --dealer ADDR`), streamed as they are generated, never stored.
    Serve(ServeArgs),
    /// Check key files end to end (the dealer's signatures on header, every
    /// chunk and trailer) without using them: their journals are not
    /// touched. A file already used (journal, or ledger with --state-dir)
    /// is reported and fails the command.
    Verify {
        /// The dealer's public key (dealer.pub).
        #[arg(long, value_name = "FILE")]
        dealer_pubkey: PathBuf,
        /// Also consult this party state directory's use-once ledger.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Key files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print a zoo model's JSON description (the format `--model-json`
    /// reads; a starting point for one's own model).
    Model {
        /// The zoo name (see --model of `keys`).
        name: String,
        /// The description after batch-norm folding (what the plan is
        /// derived from).
        #[arg(long)]
        folded: bool,
    },
}

/// Where the plan comes from: at most one of these (or the job file's
/// model).
#[derive(Args)]
#[group(required = false, multiple = false)]
struct Source {
    /// A model of the zoo: network1, network2, sarda, lenet, lenet5,
    /// alexnet, alexnet_64, alexnet_note, vgg16, vgg16_64, resnet18 (224x224),
    /// resnet18_64 (64x64), resnet20 (CIFAR-10). `ariann-dealer model NAME`
    /// prints one as JSON.
    #[arg(long)]
    model: Option<String>,
    /// A JSON model description (format: docs/model-formats.md;
    /// `ariann-dealer model NAME` prints one).
    #[arg(long, value_name = "FILE")]
    model_json: Option<PathBuf>,
    /// A JSON plan (format `ariann-plan/2`, see `ariann_dealer::plan_json`).
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// An ONNX model (e.g. from `torch.onnx.export`): its architecture
    /// only; the initializers' values are not used.
    #[arg(long, value_name = "FILE")]
    model_onnx: Option<PathBuf>,
}

#[derive(Args)]
struct Job {
    /// The job file (TOML, keys named like these options; see
    /// docs/job-file.md). Options given here override it.
    #[arg(long, value_name = "FILE")]
    job: Option<PathBuf>,
    #[command(flatten)]
    source: Source,
    /// Inputs per batch (required with a model).
    #[arg(long)]
    batch: Option<usize>,
    /// Inference: batches of --batch inputs in the job, run one after the
    /// other; the weights' masks are opened in the first batch and reused
    /// by the others (later batches need far fewer keys and far less
    /// online traffic). The parties must give the same [default: 1].
    #[arg(long)]
    batches: Option<usize>,
    /// Fractional bits of the fixed-point encoding [default: 16, with
    /// --train 20].
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Comparison window of ReLU and max-pool, in bits [default: 32].
    #[arg(long)]
    k_cmp: Option<u32>,
    /// Window of the truncations after products, in bits [default: 56].
    #[arg(long)]
    k_trunc: Option<u32>,
    /// Largest number of elements per ReLU, truncation or max-pool bundle
    /// [default: 262144].
    #[arg(long)]
    max_gate_elems: Option<usize>,
    /// Swap ReLU and max-pool where adjacent (exact, cheaper; both parties
    /// must run the permuted model too). `=false` overrides a job file.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    permute_relu_maxpool: Option<bool>,
    /// Comparison gates: `one-round` (fewer rounds) or `small-key` (less
    /// than half the key bytes per ReLU, one more round per comparison;
    /// the truncation before a ReLU fused into it). Same results
    /// [default: one-round].
    #[arg(long, value_parser = parse_variant)]
    variant: Option<Variant>,
    /// Rounding of the training truncations [default: floor, with --train
    /// nearest] (inference always floors).
    #[arg(long, value_enum)]
    rounding: Option<RoundingArg>,
    /// The plan of a private training job (see --epochs, --train-images,
    /// --loss) instead of inference.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    train: Option<bool>,
    /// Training: passes over the training set [default: 1].
    #[arg(long)]
    epochs: Option<usize>,
    /// Training: the number of training images N (each epoch runs
    /// N / batch steps; the batch must be a power of two).
    #[arg(long, value_name = "N")]
    train_images: Option<usize>,
    /// Training: the loss [default: ce].
    #[arg(long, value_enum)]
    loss: Option<LossArg>,
    /// Training: the optimiser [default: sgd] (Adam's update has its own
    /// gates; the parties must have the same).
    #[arg(long, value_enum)]
    optimizer: Option<OptimizerArg>,
    /// Training, Adam: eps, added to sqrt(v) [default: 1e-8] (it is in the
    /// keys; Adam's betas are the parties' only).
    #[arg(long)]
    eps: Option<f64>,
    /// Training: keep a final ReLU on the logits (dropped by default: it
    /// stops the gradient of every negative logit).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    keep_final_relu: Option<bool>,
}

/// `--variant`.
fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::from_name(s).ok_or_else(|| format!("{s:?}: expected one-round or small-key"))
}

/// `--rounding`.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum RoundingArg {
    /// Round down.
    Floor,
    /// Round to nearest.
    Nearest,
    /// Stochastic rounding (one-round `trunc_stoch` gates, no FSS keys:
    /// far fewer key bytes; equal to the fixed point in distribution only).
    Stochastic,
}

/// `--optimizer`.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum OptimizerArg {
    /// SGD with momentum and weight decay.
    Sgd,
    /// Adam.
    Adam,
}

/// `--loss`.
#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum LossArg {
    /// Softmax cross-entropy.
    Ce,
    /// Mean squared error against the one-hot labels.
    Mse,
}

#[derive(Args)]
struct KeysArgs {
    #[command(flatten)]
    job: Job,
    /// The dealer's secret key (dealer.key from `ariann-dealer identity`).
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Output directory (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Ring width in bits; must be the plan's (models run on Z_2^64).
    #[arg(long)]
    ring: Option<u32>,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Tests only: take this many bytes as the free space of --out's disk.
    #[arg(long, hide = true, value_name = "BYTES")]
    assume_free_bytes: Option<u64>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    job: Job,
    /// The dealer's secret key (dealer.key from `ariann-dealer identity`).
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Where to listen, e.g. `0.0.0.0:7100` (port 0 picks a free port).
    #[arg(long)]
    listen: SocketAddr,
    /// Write the address the dealer listens on to this file once bound.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Seconds to wait for both parties to ask for their keys.
    #[arg(long, default_value_t = 600)]
    wait: u64,
    /// Seconds the whole job may take, from the start (the job fails then,
    /// so a stalled party cannot hold the dealer forever).
    #[arg(long, default_value_t = 86_400)]
    deadline: u64,
    /// Encoded bundles buffered per party (generation waits for a slow party).
    #[arg(long, default_value_t = 2)]
    buffer: usize,
    /// Chunk size of the stream in bytes.
    #[arg(long, default_value_t = ariann_net::keys::DEFAULT_KEY_CHUNK)]
    chunk_size: usize,
    /// The dealer's TLS certificate (PEM); with --tls-key, --tls-peer0 and
    /// --tls-peer1 turns on mutual TLS.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The dealer's TLS private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Party 0's pinned certificate (PEM).
    #[arg(long, value_name = "PEM")]
    tls_peer0: Option<PathBuf>,
    /// Party 1's pinned certificate (PEM).
    #[arg(long, value_name = "PEM")]
    tls_peer1: Option<PathBuf>,
    /// Serve without TLS, on a loopback address only (demos and tests):
    /// without TLS, whoever first asks with the (public) plan hash gets a
    /// party's keys.
    #[arg(long, conflicts_with_all = ["tls_cert", "tls_key", "tls_peer0", "tls_peer1"])]
    insecure_plaintext: bool,
    /// Ring width in bits; must be the plan's (models run on Z_2^64).
    #[arg(long)]
    ring: Option<u32>,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    job: Job,
    /// Print only the plan hash (hex).
    #[arg(long, conflicts_with = "json")]
    hash: bool,
    /// Print the plan itself as JSON (format `ariann-plan/2`, what
    /// `--plan FILE` reads) instead of the summary.
    #[arg(long)]
    json: bool,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The job: the command line's settings over the job file's.
fn job_file_of(job: &Job) -> Result<JobFile> {
    let cli = JobFile {
        model: job.source.model.clone(),
        model_json: job.source.model_json.clone(),
        model_onnx: job.source.model_onnx.clone(),
        batch: job.batch,
        batches: job.batches,
        frac_bits: job.frac_bits,
        k_cmp: job.k_cmp,
        k_trunc: job.k_trunc,
        max_gate_elems: job.max_gate_elems,
        variant: job.variant,
        rounding: job.rounding.map(|r| match r {
            RoundingArg::Floor => Rounding::Floor,
            RoundingArg::Nearest => Rounding::Nearest,
            RoundingArg::Stochastic => Rounding::Stochastic,
        }),
        permute_relu_maxpool: job.permute_relu_maxpool,
        train: job.train,
        epochs: job.epochs,
        train_images: job.train_images,
        loss: job.loss.map(|l| match l {
            LossArg::Ce => LossName::Ce,
            LossArg::Mse => LossName::Mse,
        }),
        keep_final_relu: job.keep_final_relu,
        optimizer: job.optimizer.map(|o| match o {
            OptimizerArg::Sgd => OptimizerName::Sgd,
            OptimizerArg::Adam => OptimizerName::Adam,
        }),
        eps: job.eps,
        ..JobFile::default()
    };
    Ok(match &job.job {
        Some(path) => cli.or(JobFile::read(path)?),
        None => cli,
    })
}

/// A plan and what it is, for the summary.
struct JobPlan {
    plan: Plan,
    /// One line: model, batch, mode and settings.
    what: String,
    /// Inference: inputs per batch, batches and the first batch's gates,
    /// for per-batch and per-input figures.
    batches: Option<(usize, usize, usize)>,
}

/// The plan of the job described by the arguments (and the job file).
fn plan_of(job: &Job) -> Result<JobPlan> {
    if let Some(path) = &job.source.plan {
        if job.job.is_some() {
            bail!("--plan fixes the whole job: it does not combine with --job");
        }
        if job.train.unwrap_or(false) {
            bail!("--train does not apply to --plan (the plan fixes the job)");
        }
        if job.batch.is_some() || job.batches.is_some() {
            bail!("--batch and --batches do not apply to --plan (the plan fixes them)");
        }
        let plan = plan_json::from_json(&read_text(path)?)
            .with_context(|| format!("invalid plan {}", path.display()))?;
        return Ok(JobPlan {
            plan,
            what: format!("the plan of {}", path.display()),
            batches: None,
        });
    }
    let j = job_file_of(job)?;
    let Some(source) = j.model_source()? else {
        bail!(
            "one of --model, --model-json, --model-onnx or --plan is required (or a model in --job)"
        );
    };
    let model = source.load()?;
    let cfg = j.config()?;
    let settings = format!(
        "f = {}, k_cmp = {}, k_trunc = {}, {}, at most {} elements per bundle{}",
        cfg.frac_bits,
        cfg.k_cmp,
        cfg.k_trunc,
        cfg.variant,
        cfg.max_gate_elems,
        if j.permute_relu_maxpool.unwrap_or(false) {
            ", ReLU and max-pool permuted"
        } else {
            ""
        }
    );
    // Refuses --batches 0, and --batches with --train.
    let batches = j.batches()?;
    if j.is_train() {
        let (plan, what) = train_plan_of(&j, &cfg, model)?;
        return Ok(JobPlan {
            plan,
            what: format!("{what}; {settings}"),
            batches: None,
        });
    }
    let given: Vec<&str> = [
        (j.epochs.is_some(), "--epochs"),
        (j.train_images.is_some(), "--train-images"),
        (j.loss.is_some(), "--loss"),
        (j.keep_final_relu.is_some(), "--keep-final-relu"),
        (j.optimizer.is_some(), "--optimizer"),
        (j.eps.is_some(), "--eps"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if !given.is_empty() {
        bail!("{} only apply with --train", given.join(", "));
    }
    let Some(batch) = j.batch else {
        bail!("--batch is required with a model");
    };
    if batch == 0 {
        bail!("--batch must be at least 1");
    }
    // Batch-norms are folded into their convolutions, as the parties do;
    // the plan depends on the architecture only, so any weights will do.
    let model = model.fold_batchnorm_architecture();
    let model = if j.permute_relu_maxpool.unwrap_or(false) {
        model.permute_relu_maxpool()
    } else {
        model
    };
    tracing::info!(model = %model.name, batch, batches, "deriving the plan");
    // The parties' plan (`ariann_party::Job::plan`): one batch is
    // `ariann_nn::plan`; later batches reuse the first one's weight masks.
    let plan = ariann_nn::plan_batches(&model, batch, batches, &cfg, true)
        .context("cannot derive a plan from the model")?;
    // The first batch's gates: the one-batch plan's (a second trace, for
    // the per-batch figures only).
    let first_gates = if batches == 1 {
        plan.gates.len()
    } else {
        ariann_nn::plan(&model, batch, &cfg)
            .context("cannot derive a plan from the model")?
            .gates
            .len()
    };
    let what = if batches == 1 {
        format!("{}, batch {batch}, inference; {settings}", model.name)
    } else {
        format!(
            "{}, {batches} batches of {batch} (weight masks reused after the first), \
             inference; {settings}",
            model.name
        )
    };
    Ok(JobPlan {
        plan,
        what,
        batches: Some((batch, batches, first_gates)),
    })
}

/// The plan of a training job: `ariann_nn::train::train_job_plan` for
/// `epochs * (N / batch)` steps of the model as the parties train it
/// (final ReLU dropped unless kept, permuted if asked; batch-norms are not
/// folded: training refuses them).
fn train_plan_of(j: &JobFile, cfg: &Config, mut model: Model) -> Result<(Plan, String)> {
    let Some(batch) = j.batch else {
        bail!("--batch is required with --train");
    };
    if !batch.is_power_of_two() {
        bail!("--batch {batch}: training needs a power of two");
    }
    let Some(images) = j.train_images else {
        bail!("--train needs --train-images N (the number of training images)");
    };
    let epochs = j.epochs.unwrap_or(1);
    if epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let per_epoch = images / batch;
    if per_epoch == 0 {
        bail!("--train-images {images} make no batch of {batch}");
    }
    let steps = epochs
        .checked_mul(per_epoch)
        .context("--epochs times the steps per epoch overflows")?;
    if !j.keep_final_relu.unwrap_or(false) && matches!(model.layers.last(), Some(Layer::Relu)) {
        model.layers.pop();
    }
    let model = if j.permute_relu_maxpool.unwrap_or(false) {
        model.permute_relu_maxpool()
    } else {
        model
    };
    // The loss, the optimiser and Adam's eps shape the plan (the learning
    // rate, momentum, weight decay and Adam's betas are the parties' only).
    let loss = j.loss.unwrap_or(LossName::Ce);
    let tcfg = TrainConfig {
        loss: loss.into(),
        optimizer: j.optimizer()?,
        ..TrainConfig::default()
    };
    tracing::info!(model = %model.name, batch, images, epochs, steps, "deriving the training plan");
    let plan = ariann_nn::train::train_job_plan(&model, batch, cfg, &tcfg, steps)
        .context("cannot derive a training plan from the model")?;
    let optimizer = match tcfg.optimizer {
        ariann_nn::Optimizer::Sgd => "optimizer sgd".to_string(),
        ariann_nn::Optimizer::Adam { eps, .. } => format!("optimizer adam (eps {eps:e})"),
    };
    let what = format!(
        "{}, training: batch {batch}, {epochs} epoch(s) of {per_epoch} steps on {images} images, loss {loss:?}, {optimizer}",
        model.name
    );
    Ok((plan, what))
}

fn keys(args: &KeysArgs) -> Result<()> {
    let JobPlan { plan, .. } = plan_of(&args.job)?;
    if let Some(r) = args.ring
        && r != plan.ring_bits
    {
        bail!(
            "--ring {r} does not match the plan, which runs on Z_2^{}",
            plan.ring_bits
        );
    }
    // Sizes before work: refuse a job whose files would not fit.
    let sz = sizes::sizes(&plan)?;
    sizes::check_fits(&sz, &args.out, args.assume_free_bytes)?;
    let key = load_signing_key(&args.signing_key)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create output directory {}", args.out.display()))?;
    // SIGINT/SIGTERM while writing: remove the half-written files (plaintext
    // keys) before exiting. Errors are handled by the writers themselves.
    let tmps = [
        tmp_path(&args.out.join(key_file_name(Party::P0))),
        tmp_path(&args.out.join(key_file_name(Party::P1))),
    ];
    ctrlc::set_handler(move || {
        for t in &tmps {
            let _ = std::fs::remove_file(t);
        }
        eprintln!("interrupted: no key file written");
        std::process::exit(130);
    })
    .context("cannot install the SIGINT/SIGTERM handler")?;
    let n = plan.gates.len() as u64;
    tracing::info!(
        plan_hash = %to_hex(&plan.hash()),
        gates = n,
        out = %args.out.display(),
        "generating keys"
    );
    let bar = if args.no_progress {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(n)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} bundles {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let progress = |done: u64, bytes: [u64; 2]| {
        bar.set_position(done);
        bar.set_message(format!("{:.1} MB per party", bytes[0] as f64 / 1e6));
        tracing::debug!(done, bytes = bytes[0], "bundle written");
    };
    let summary = match plan.ring_bits {
        64 => write_key_files::<u64>(&plan, &args.out, &key, progress),
        32 => write_key_files::<u32>(&plan, &args.out, &key, progress),
        b => bail!("plan ring width {b} is not 32 or 64"),
    }
    .with_context(|| format!("cannot write key files to {}", args.out.display()))?;
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let total = (summary.bytes[0] + summary.bytes[1]) as f64;
    println!("plan hash:  {}", to_hex(&summary.plan_hash));
    println!("session:    {}", summary.session);
    println!("bundles:    {}", summary.bundles);
    println!("dealer key: {}", key.public());
    for (path, bytes) in summary.paths.iter().zip(summary.bytes) {
        println!(
            "{}: {bytes} bytes ({:.1} MB)",
            path.display(),
            bytes as f64 / 1e6
        );
    }
    println!(
        "time:       {secs:.2} s ({:.1} MB/s written, both files)",
        total / 1e6 / secs.max(1e-9)
    );
    tracing::info!(session = %summary.session, secs, "key files written");
    Ok(())
}

fn serve(args: &ServeArgs) -> Result<()> {
    let JobPlan { plan, .. } = plan_of(&args.job)?;
    if let Some(r) = args.ring
        && r != plan.ring_bits
    {
        bail!(
            "--ring {r} does not match the plan, which runs on Z_2^{}",
            plan.ring_bits
        );
    }
    let tls = match (
        &args.tls_cert,
        &args.tls_key,
        &args.tls_peer0,
        &args.tls_peer1,
    ) {
        (None, None, None, None) if args.insecure_plaintext => {
            if !args.listen.ip().is_loopback() {
                bail!(
                    "--insecure-plaintext serves loopback addresses only, not {}: \
                     give --tls-cert, --tls-key, --tls-peer0 and --tls-peer1",
                    args.listen
                );
            }
            None
        }
        (None, None, None, None) => bail!(
            "serving keys needs mutual TLS (--tls-cert, --tls-key, --tls-peer0 and \
             --tls-peer1: the parties' pinned certificates), or --insecure-plaintext \
             on a loopback address (without TLS, whoever first asks with the public \
             plan hash gets a party's keys)"
        ),
        (Some(c), Some(k), Some(p0), Some(p1)) => Some(DealerTls {
            cert_pem: read_text(c)?,
            key_pem: read_text(k)?,
            party_pems: [read_text(p0)?, read_text(p1)?],
        }),
        (c, k, p0, p1) => {
            let missing: Vec<&str> = [
                (c.is_none(), "--tls-cert"),
                (k.is_none(), "--tls-key"),
                (p0.is_none(), "--tls-peer0"),
                (p1.is_none(), "--tls-peer1"),
            ]
            .iter()
            .filter(|(m, _)| *m)
            .map(|(_, n)| *n)
            .collect();
            bail!(
                "--tls-cert, --tls-key, --tls-peer0 and --tls-peer1 go together: {} missing \
                 (the dealer never serves keys in plaintext because of a partial TLS setup)",
                missing.join(", ")
            )
        }
    };
    let key = load_signing_key(&args.signing_key)?;
    let session = SessionId::random().context("cannot draw a session id")?;
    let job = KeyJob {
        session: session.0,
        plan_hash: plan.hash(),
        ring_bits: plan.ring_bits,
        bundles: plan.gates.len() as u64,
        link_secret: LinkSecret::random().context("cannot draw a link secret")?,
    };
    let mut cfg = KeyServerConfig::new(args.listen);
    cfg.wait_timeout = Duration::from_secs(args.wait.max(1));
    cfg.deadline = Duration::from_secs(args.deadline.max(1));
    cfg.buffer = args.buffer;
    cfg.chunk_size = args.chunk_size;
    cfg.tls = tls;
    let server = KeyServer::bind(cfg, job.clone(), &key)?;
    let addr = server.local_addr();
    eprintln!(
        "serving plan {} ({} bundles per party, session {session}) on {addr}{}",
        to_hex(&job.plan_hash),
        job.bundles,
        if args.tls_cert.is_some() {
            " with mutual TLS"
        } else {
            ""
        }
    );
    if let Some(f) = &args.ready_file {
        std::fs::write(f, addr.to_string())
            .with_context(|| format!("cannot write {}", f.display()))?;
    }
    let report = match plan.ring_bits {
        64 => server.serve(plan.bundles_from_os::<u64>()?),
        32 => server.serve(plan.bundles_from_os::<u32>()?),
        b => bail!("plan ring width {b} is not 32 or 64"),
    }?;
    let total = (report.bytes[0] + report.bytes[1]) as f64;
    println!("plan hash:  {}", to_hex(&job.plan_hash));
    println!("session:    {session}");
    println!("bundles:    {} per party", report.bundles);
    println!(
        "streamed:   {} + {} bytes ({:.1} MB per party)",
        report.bytes[0],
        report.bytes[1],
        report.bytes[0] as f64 / 1e6
    );
    println!(
        "time:       {:.2} s from the first request to the last ack ({:.1} MB/s of keys, both parties)",
        report.seconds,
        total / 1e6 / report.seconds.max(1e-9)
    );
    Ok(())
}

fn plan_cmd(args: &PlanArgs) -> Result<()> {
    let JobPlan {
        plan,
        what,
        batches,
    } = plan_of(&args.job)?;
    if args.hash {
        println!("{}", to_hex(&plan.hash()));
    } else if args.json {
        println!("{}", plan_json::to_json(&plan));
    } else {
        let s = sizes::sizes(&plan)?;
        let split = match batches {
            Some((_, n, first)) if n > 1 => Some(sizes::per_batch(&plan, first, n)?),
            _ => None,
        };
        print!(
            "{}",
            sizes::summary(
                &what,
                &to_hex(&plan.hash()),
                &s,
                batches.map(|(b, n, _)| (b, n)),
                split.as_ref()
            )
        );
    }
    Ok(())
}

fn load_signing_key(path: &Path) -> Result<DealerSigningKey> {
    DealerSigningKey::load(path).with_context(|| {
        format!(
            "cannot load the dealer's signing key {} (create one with `ariann-dealer identity`)",
            path.display()
        )
    })
}

fn identity(out: &Path) -> Result<()> {
    let key = DealerSigningKey::generate().context("cannot draw a dealer key")?;
    let [sk, pk] = key
        .write_identity(out)
        .context("cannot write the dealer identity")?;
    println!(
        "secret key: {} (keep it on this host, mode 0600)",
        sk.display()
    );
    println!(
        "public key: {} (give it to both parties: --dealer-pubkey)",
        pk.display()
    );
    println!("dealer key: {}", key.public());
    Ok(())
}

fn verify(files: &[PathBuf], pubkey: &Path, state_dir: Option<&Path>) -> Result<()> {
    let pinned = DealerPublicKey::load(pubkey).context("cannot load --dealer-pubkey")?;
    let ledger = match state_dir {
        Some(d) => Some(Ledger::open(d).context("--state-dir")?),
        None => None,
    };
    let mut used_files = Vec::new();
    for path in files {
        let start = Instant::now();
        let h = verify_file(path, &pinned)
            .with_context(|| format!("{} is not intact", path.display()))?;
        let secs = start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .len();
        let consumed = journal_consumed(path, &h)
            .with_context(|| format!("cannot read the journal of {}", path.display()))?;
        let in_ledger = ledger
            .as_ref()
            .filter(|l| l.is_used(h.session, h.party))
            .map(|l| l.record_path(h.session, h.party));
        let used = match (consumed, &in_ledger) {
            (0, None) => "not used".to_string(),
            (n, None) => format!(
                "already used ({n} of {} bundles consumed, journal)",
                h.count
            ),
            (_, Some(r)) => format!("already used (ledger {})", r.display()),
        };
        if consumed > 0 || in_ledger.is_some() {
            used_files.push(path.display().to_string());
        }
        println!(
            "{}: signature ok; party {}, Z_2^{}, plan {}, session {}, {} bundles, {bytes} bytes, read at {:.1} MB/s; {used}",
            path.display(),
            h.party.index(),
            h.ring_bits,
            to_hex(&h.plan_hash),
            h.session,
            h.count,
            bytes as f64 / 1e6 / secs.max(1e-9)
        );
    }
    if !used_files.is_empty() {
        bail!(
            "already used: {} (keys run once; ask the dealer for fresh keys)",
            used_files.join(", ")
        );
    }
    Ok(())
}

/// `ariann-dealer model NAME [--folded]`.
fn model_cmd(name: &str, folded: bool) -> Result<()> {
    let (m, _, _) = zoo::by_name(name).ok_or_else(|| {
        anyhow::anyhow!(
            "unknown model {name:?}; the zoo has {}",
            zoo::NAMES.join(", ")
        )
    })?;
    let m = if folded {
        m.fold_batchnorm_architecture()
    } else {
        m
    };
    println!("{}", m.to_json());
    Ok(())
}

fn main() -> ExitCode {
    // Before any thread: key bundles reuse freed heap memory instead of
    // fresh mmaps (ariann_net::memory).
    let alloc = ariann_net::memory::keep_freed_memory();
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(?alloc, "allocator settings");
    let res = match &cli.cmd {
        Cmd::Keys(a) => keys(a),
        Cmd::Plan(a) => plan_cmd(a),
        Cmd::Serve(a) => serve(a),
        Cmd::Verify {
            files,
            dealer_pubkey,
            state_dir,
        } => verify(files, dealer_pubkey, state_dir.as_deref()),
        Cmd::Identity { out } => identity(out),
        Cmd::Model { name, folded } => model_cmd(name, *folded),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
