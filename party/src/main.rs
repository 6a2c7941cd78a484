//! `ariann-party`: one party of a two-party private inference or training
//! job.
//!
//! Two institutions each start one process, on their own hosts (or on one
//! machine for a try-out): the model owner with its weights, the data owner
//! with its inputs, each with its key file from the dealer
//! (`ariann-dealer keys`). Party 0 listens, party 1 connects; they check
//! that they run the same job with keys of the same dealer session, share
//! their assets, run the network privately in lock-step, and the output is
//! revealed to the party named by `--output-to` only.
//!
//! ```text
//! ariann-dealer identity --out id/          # once: id/dealer.key, id/dealer.pub
//! ariann-dealer keys --signing-key id/dealer.key --model network1 --batch 4 --out keys/
//! ariann-party --id 0 --listen 127.0.0.1:7000 --keys keys/party0.keys \
//!     --dealer-pubkey id/dealer.pub \
//!     --model network1 --batch 4 --weights net1.safetensors --output-to 1
//! ariann-party --id 1 --peer 127.0.0.1:7000 --keys keys/party1.keys \
//!     --dealer-pubkey id/dealer.pub \
//!     --model network1 --batch 4 --input digits.safetensors --output-to 1 --output out.json
//! ```
//!
//! Keys must be signed by the dealer whose public key the party pins
//! (`--dealer-pubkey`, required whenever keys are used); each dealer
//! session runs once per host: a use-once ledger in `--state-dir` (default
//! `$XDG_STATE_HOME/ariann-party`, else `$HOME/.local/state/ariann-party`)
//! refuses a copied or renamed key file or a deleted journal.
//!
//! Instead of key files, both parties can pull their keys from a running
//! dealer (`ariann-dealer serve`), streamed as they are generated and never
//! stored; the dealer's session id then ties the two parties together:
//!
//! ```text
//! ariann-dealer serve --signing-key id/dealer.key --model network1 --batch 4 \
//!     --listen 127.0.0.1:7100 --insecure-plaintext
//! ariann-party --id 0 --listen 127.0.0.1:7000 --dealer 127.0.0.1:7100 ...
//! ariann-party --id 1 --peer 127.0.0.1:7000 --dealer 127.0.0.1:7100 ...
//! ```
//!
//! With `--train`, the two parties train a model privately instead
//! (module `train_cmd`): the model owner brings the initial weights
//! (`--weights FILE` or `--init he --init-seed S`), the data owner the
//! training set (`--train-data FILE`: safetensors with `images` and
//! `labels`); each step the data owner shares a batch, both run one private
//! SGD step, and at the end the trained weights go to the party named by
//! `--reveal-to` (or each keeps its share: `--reveal-to shares`), written to
//! `--out FILE`. Keys come from `ariann-dealer serve --train ...` (or
//! `keys --train ...`) with the same job options:
//!
//! ```text
//! ariann-dealer serve --train --model network1 --batch 32 --epochs 2 --train-images 1024 \
//!     --listen 127.0.0.1:7100 --insecure-plaintext
//! ariann-party --train --id 0 --listen 127.0.0.1:7000 --dealer 127.0.0.1:7100 \
//!     --model network1 --batch 32 --epochs 2 --train-images 1024 --init he --reveal-to 1
//! ariann-party --train --id 1 --peer 127.0.0.1:7000 --dealer 127.0.0.1:7100 \
//!     --model network1 --batch 32 --epochs 2 --train-data mnist.safetensors \
//!     --reveal-to 1 --out trained.safetensors
//! ```
//!
//! Every option can also come from a TOML file (`--config party.toml`, keys
//! named like the long options: `id = 0`, `listen = "..."`, `keys = "..."`,
//! `tls-cert = "..."`); the command line wins. The public job (model, batch,
//! output party, every plan setting the dealer has) can come from a job file
//! (`--job job.toml`, `ariann_job`, the file the dealer reads), below both.
//!
//! The data owner's `--input` is `.npy` or safetensors, NCHW
//! (`ariann_party::inputs`); fewer inputs than the batch are padded with
//! zeros and the padding's rows dropped from the output it writes.
//! `--batches N` (with the dealer's `--batches N`) runs N batches of
//! `--batch` inputs in one job, the weights' masks opened in the first
//! batch and reused by the others; the input then holds `batch * N` inputs
//! (only the last batch may be short), the output every batch's rows in
//! order, and each party prints the bytes it sent in each batch.
//! `ariann-party reference ...` runs a model locally in float and in fixed
//! point (module `reference`); `ariann-party input --image a.png ...`
//! turns PNG/JPEG images into an input file (module `input_cmd`).
//!
//! Exit status: 0 success; 2 usage or configuration error; 3 key file
//! or dealer problem (missing, corrupt, unsigned or signed by another
//! dealer key, another party's, plan or session, a bundle count other than
//! the plan's, already used (journal or ledger), exhausted; dealer unreachable, serving another plan,
//! stream broken or ended early); 4 link problem (peer unreachable or gone, timeout, TLS
//! or handshake refused, protocol violation); 5 the peer runs another job or
//! brings the same asset; 1 this party's own model, weights, inputs or
//! output file. The class comes from the error types (`MpcError::fault`,
//! `NnError::fault`, `LinkedError`), with no catch-all. Logs go
//! to stderr (`-v`, `RUST_LOG`) and never contain shares, keys or data.

mod input_cmd;
mod reference;
mod train_cmd;

use anyhow::{Context, Result, anyhow, bail};
use ariann_dealer::auth::{DealerPublicKey, KeyTrust, LinkSecret};
use ariann_dealer::keyfile::{KeyFileError, to_hex};
use ariann_dealer::ledger::Ledger;
use ariann_fss::Party;
use ariann_job::JobFile;
use ariann_mpc::PreprocessingSource;
use ariann_net::keys::{DealerConfig, DealerStreamSource};
use ariann_net::{NetConfig, TlsConfig, WanShape};
use ariann_nn::{Config, Model, Rounding, Variant, Weights};
use ariann_party::auth::ControlAuth;
use ariann_party::inputs::read_inputs;
use ariann_party::linked::{LinkedError, open_key_file, run_linked};
use ariann_party::{Asset, Job};
use clap::Parser;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[command(
    name = "ariann-party",
    version,
    about = "One party of ariann-rs two-party private inference (or training, with --train)",
    long_about = "One party of ariann-rs two-party private inference (or training, with --train).\n\n\
                  `ariann-party reference --help`: run a model locally in float and in fixed \
                  point first (no keys, no peer). `ariann-party input --help`: turn PNG/JPEG \
                  images into an --input file.",
    after_help = train_cmd::AFTER_HELP
)]
struct Opts {
    /// TOML file with any of these options (kebab-case keys).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// The job file (TOML): the public job shared with the dealer and the
    /// peer (model, batch, every plan setting; see docs/job-file.md).
    /// Options given here or in --config override it.
    #[arg(long, value_name = "FILE")]
    job: Option<PathBuf>,
    /// This party: 0 (listens) or 1 (connects).
    #[arg(long)]
    id: Option<u8>,
    /// Where party 0 listens (`0.0.0.0:7000`; port 0 picks a free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where party 1 finds party 0 (`host:port`).
    #[arg(long)]
    peer: Option<String>,
    /// Write the address party 0 listens on to this file once bound.
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// This party's key file from `ariann-dealer keys`.
    #[arg(long, value_name = "FILE", conflicts_with = "dealer")]
    keys: Option<PathBuf>,
    /// Daemon mode: serve clients (`PartyControl`) on this address and run
    /// their jobs one after the other, with keys from `--keys-dir`.
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Daemon mode: key files at `DIR/<job id>/party<i>.keys`.
    #[arg(long, value_name = "DIR")]
    keys_dir: Option<PathBuf>,
    /// Daemon mode: the clients allowed on the control port, one `NAME
    /// TOKEN` line each, in a file only this user can read (mode 0600).
    /// Clients send `authorization: Bearer TOKEN`.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure_local")]
    control_tokens: Option<PathBuf>,
    /// Daemon mode without authentication, on a loopback address only:
    /// every user of this host can submit jobs, supply assets and fetch
    /// outputs. For demos and tests.
    #[arg(long)]
    #[serde(default)]
    insecure_local: bool,
    /// Daemon mode: mutual TLS on the control port with this certificate
    /// (PEM; with --control-tls-key and one --control-client per client),
    /// instead of bearer tokens. Use it when clients connect across hosts.
    #[arg(long, value_name = "PEM", conflicts_with_all = ["control_tokens", "insecure_local"])]
    control_tls_cert: Option<PathBuf>,
    /// Daemon mode: the private key of --control-tls-cert (PEM).
    #[arg(long, value_name = "PEM")]
    control_tls_key: Option<PathBuf>,
    /// Daemon mode with --control-tls-cert: a client allowed on the control
    /// port, `NAME=CERT.pem` (the certificate it must present, pinned);
    /// repeat for each client. A job belongs to the client that submitted it.
    #[arg(long, value_name = "NAME=PEM")]
    control_client: Option<Vec<String>>,
    /// Pull this party's keys from `ariann-dealer serve` at `host:port`
    /// instead of a key file (daemon mode: each job's keys, from the
    /// `serve` run for it, instead of --keys-dir).
    #[arg(long, value_name = "ADDR")]
    dealer: Option<String>,
    /// The dealer's pinned certificate (PEM): turns on mutual TLS with the
    /// dealer, this party presenting --tls-cert/--tls-key.
    #[arg(long, value_name = "PEM")]
    dealer_tls_peer: Option<PathBuf>,
    /// Name this party expects in the dealer's certificate.
    #[arg(long)]
    dealer_tls_server_name: Option<String>,
    /// The dealer's public key (dealer.pub from `ariann-dealer identity`):
    /// key files and dealer streams must carry its signature. Required
    /// whenever keys are used (a job, --train, daemon mode).
    #[arg(long, value_name = "FILE")]
    dealer_pubkey: Option<PathBuf>,
    /// This party's state directory: the use-once ledger of dealer sessions
    /// used on this host (created 0700; refused if group- or
    /// world-writable) [default: $XDG_STATE_HOME/ariann-party, else
    /// $HOME/.local/state/ariann-party].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// A zoo model (network1, lenet, alexnet, vgg16, resnet18, ...).
    #[arg(long)]
    model: Option<String>,
    /// A JSON model description instead of a zoo model.
    #[arg(long, value_name = "FILE")]
    model_json: Option<PathBuf>,
    /// An ONNX model instead of a zoo model (e.g. from `torch.onnx.export`):
    /// the architecture, and for the model owner without --weights, the
    /// weights from its initializers.
    #[arg(long, value_name = "FILE")]
    model_onnx: Option<PathBuf>,
    /// Inputs per batch.
    #[arg(long)]
    batch: Option<usize>,
    /// Batches of --batch inputs in this job, run one after the other
    /// (must match the dealer's) [default: 1]. The data owner's --input
    /// holds batch x batches inputs (the last batch may be short: it is
    /// padded); the weights' masks are opened in the first batch and reused
    /// by the others, so later batches cost far less.
    #[arg(long)]
    batches: Option<usize>,
    /// Swap ReLU and max-pool where adjacent (must match the dealer's flag;
    /// `=false` overrides a job file).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    permute_relu_maxpool: Option<bool>,
    /// Comparison window in bits (must match the dealer's).
    #[arg(long)]
    k_cmp: Option<u32>,
    /// Fractional bits of the fixed-point encoding (must match the
    /// dealer's) [default: 16, with --train 20].
    #[arg(long)]
    frac_bits: Option<u32>,
    /// Window of the truncations in bits (must match the dealer's)
    /// [default: 56].
    #[arg(long)]
    k_trunc: Option<u32>,
    /// Largest number of elements per ReLU, truncation or max-pool bundle
    /// (must match the dealer's) [default: 262144].
    #[arg(long)]
    max_gate_elems: Option<usize>,
    /// Rounding of the training truncations (must match the dealer's)
    /// [default: floor, with --train nearest].
    #[arg(long, value_enum)]
    rounding: Option<train_cmd::RoundingArg>,
    /// Comparison gates, `one-round` or `small-key` (must match the
    /// dealer's) [default: one-round].
    #[arg(long, value_parser = parse_variant)]
    variant: Option<Variant>,
    /// The model owner's weights (safetensors, PyTorch names).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// The data owner's inputs: `.npy`, or safetensors with a tensor `input`
    /// of shape `[N, ...]` (float32, NCHW, N at most the batch; from images:
    /// `ariann-party input`).
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
    /// The party that learns the output (0 or 1).
    #[arg(long)]
    output_to: Option<u8>,
    /// Where the named party writes the output as JSON (default: stdout).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// This party's TLS certificate (PEM); turns on mutual TLS.
    #[arg(long, value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// This party's TLS private key (PEM).
    #[arg(long, value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// The peer's pinned certificate or CA (PEM).
    #[arg(long, value_name = "PEM")]
    tls_peer: Option<PathBuf>,
    /// Run the party link in plaintext although --tls-cert/--tls-key are
    /// given (they are then this party's identity towards the dealer only).
    #[arg(long, conflicts_with = "tls_peer")]
    #[serde(default)]
    plaintext_link: bool,
    /// Name party 1 expects in party 0's certificate.
    #[arg(long)]
    tls_server_name: Option<String>,
    /// Emulated WAN link, e.g. `rtt=70ms,bw=40MB/s`.
    #[arg(long)]
    wan: Option<String>,
    /// Seconds to establish the link.
    #[arg(long)]
    connect_timeout: Option<u64>,
    /// Seconds one round may take before the job fails.
    #[arg(long)]
    exchange_timeout: Option<u64>,
    /// Training mode: train the model privately (options below, under
    /// "Training").
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    train: Option<bool>,
    /// Passes over the training set [default: 1].
    #[arg(long, help_heading = "Training")]
    epochs: Option<usize>,
    /// The number of training images N, public (each epoch runs N / batch
    /// steps; the rest of the shuffled set is dropped); required at the
    /// model owner, the data owner's defaults to its file's.
    #[arg(long, value_name = "N", help_heading = "Training")]
    train_images: Option<usize>,
    /// Learning rate [default: 0.05].
    #[arg(long, help_heading = "Training")]
    lr: Option<f64>,
    /// Multiply the learning rate by --lr-gamma every that many epochs.
    #[arg(long, value_name = "EPOCHS", help_heading = "Training")]
    lr_step: Option<usize>,
    /// Learning rate decay of --lr-step [default: 0.1].
    #[arg(long, help_heading = "Training")]
    lr_gamma: Option<f64>,
    /// SGD momentum [default: 0.9].
    #[arg(long, help_heading = "Training")]
    momentum: Option<f64>,
    /// Weight decay (weights, not biases) [default: 0.0005].
    #[arg(long, help_heading = "Training")]
    weight_decay: Option<f64>,
    /// The optimiser [default: sgd]; Adam changes the plan (the dealer
    /// must have the same --optimizer and --eps).
    #[arg(long, value_enum, help_heading = "Training")]
    optimizer: Option<train_cmd::OptimizerArg>,
    /// Adam: decay of the first moment [default: 0.9].
    #[arg(long, help_heading = "Training")]
    beta1: Option<f64>,
    /// Adam: decay of the second moment [default: 0.999].
    #[arg(long, help_heading = "Training")]
    beta2: Option<f64>,
    /// Adam: added to sqrt(v) [default: 1e-8]; part of the keys.
    #[arg(long, help_heading = "Training")]
    eps: Option<f64>,
    /// The loss (must match the dealer's) [default: ce].
    #[arg(long, value_enum, help_heading = "Training")]
    loss: Option<train_cmd::LossArg>,
    /// Who gets the trained weights: party 0, party 1, or nobody (each party
    /// writes its own share).
    #[arg(long, value_name = "0|1|shares", help_heading = "Training")]
    reveal_to: Option<String>,
    /// Model owner: initialise the weights by this rule instead of --weights.
    #[arg(long, value_enum, help_heading = "Training")]
    init: Option<train_cmd::InitArg>,
    /// Model owner: seed of --init [default: from the operating system].
    #[arg(long, value_name = "SEED", help_heading = "Training")]
    init_seed: Option<u64>,
    /// Data owner: the training set (safetensors, see below).
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    train_data: Option<PathBuf>,
    /// Data owner: seed of the per-epoch shuffle (reproductions, tests)
    /// [default: from the operating system].
    #[arg(long, value_name = "SEED", help_heading = "Training")]
    shuffle_seed: Option<u64>,
    /// Where to write the result: the trained weights (safetensors, F32,
    /// PyTorch names) at the party --reveal-to names, or this party's share
    /// (safetensors, U64 fixed point) with --reveal-to shares.
    #[arg(long, value_name = "FILE", help_heading = "Training")]
    out: Option<PathBuf>,
    /// Keep a final ReLU on the logits (dropped by default, like the dealer:
    /// it stops the gradient of every negative logit).
    #[arg(
        long,
        help_heading = "Training",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    keep_final_relu: Option<bool>,
    /// No progress bar and no per-epoch lines.
    #[arg(short, long, help_heading = "Training")]
    #[serde(default)]
    quiet: bool,
    /// More logging (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    #[serde(skip)]
    verbose: u8,
}

/// Command line over configuration file.
fn merge(cli: Opts, file: Opts) -> Opts {
    // A model given above replaces the one below (no conflict).
    let file = if cli.model.is_some() || cli.model_json.is_some() || cli.model_onnx.is_some() {
        Opts {
            model: None,
            model_json: None,
            model_onnx: None,
            ..file
        }
    } else {
        file
    };
    macro_rules! pick {
        ($($f:ident),*) => { Opts { $($f: cli.$f.or(file.$f),)*
            quiet: cli.quiet || file.quiet,
            insecure_local: cli.insecure_local || file.insecure_local,
            plaintext_link: cli.plaintext_link || file.plaintext_link,
            config: cli.config, verbose: cli.verbose } };
    }
    pick!(
        job,
        id,
        listen,
        peer,
        ready_file,
        keys,
        control,
        keys_dir,
        control_tokens,
        control_tls_cert,
        control_tls_key,
        control_client,
        dealer,
        dealer_tls_peer,
        dealer_tls_server_name,
        dealer_pubkey,
        state_dir,
        model,
        model_json,
        model_onnx,
        batch,
        batches,
        permute_relu_maxpool,
        train,
        keep_final_relu,
        k_cmp,
        frac_bits,
        k_trunc,
        max_gate_elems,
        rounding,
        variant,
        weights,
        input,
        output_to,
        output,
        tls_cert,
        tls_key,
        tls_peer,
        tls_server_name,
        wan,
        connect_timeout,
        exchange_timeout,
        epochs,
        train_images,
        lr,
        lr_step,
        lr_gamma,
        momentum,
        weight_decay,
        optimizer,
        beta1,
        beta2,
        eps,
        loss,
        reveal_to,
        init,
        init_seed,
        train_data,
        shuffle_seed,
        out
    )
}

/// Failure classes, one exit code each.
#[derive(Debug)]
enum Fail {
    Usage(anyhow::Error),
    Keys(anyhow::Error),
    Link(anyhow::Error),
    Job(anyhow::Error),
    /// This party's model, weights, inputs or local files.
    Local(anyhow::Error),
}

impl Fail {
    fn code(&self) -> u8 {
        match self {
            Fail::Local(_) => 1,
            Fail::Usage(_) => 2,
            Fail::Keys(_) => 3,
            Fail::Link(_) => 4,
            Fail::Job(_) => 5,
        }
    }
    fn error(&self) -> &anyhow::Error {
        match self {
            Fail::Usage(e) | Fail::Keys(e) | Fail::Link(e) | Fail::Job(e) | Fail::Local(e) => e,
        }
    }
}

fn party_of(v: Option<u8>, what: &str) -> Result<Party> {
    match v {
        Some(0) => Ok(Party::P0),
        Some(1) => Ok(Party::P1),
        Some(v) => bail!("--{what} must be 0 or 1, not {v}"),
        None => bail!("--{what} is required"),
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_text(p: &Path) -> Result<String> {
    String::from_utf8(read(p)?).with_context(|| format!("{} is not PEM text", p.display()))
}

fn read_pem(path: &Option<PathBuf>, what: &str) -> Result<String> {
    let p = path.as_ref().ok_or_else(|| {
        anyhow!(
            "--tls-cert, --tls-key and --tls-peer (or --dealer-tls-peer) go together: {what} is missing"
        )
    })?;
    String::from_utf8(read(p)?).with_context(|| format!("{} is not PEM text", p.display()))
}

/// Where this party's keys come from.
enum Keys {
    File(PathBuf),
    Dealer {
        addr: String,
        tls: Option<TlsConfig>,
    },
}

/// What the command line asks for, checked.
struct Setup {
    party: Party,
    job: Job,
    asset: Asset,
    net: NetConfig,
    keys: Keys,
    ready_file: Option<PathBuf>,
    output: Option<PathBuf>,
    /// At the data owner: how many of the batch's inputs are real (the
    /// others are zero padding, dropped from the output it writes).
    images: Option<usize>,
}

/// The party link's configuration from the options.
fn net_config(o: &Opts, party: Party) -> Result<NetConfig> {
    let mut net = NetConfig::new(party, Vec::new());
    match party {
        Party::P0 => {
            net = net.listen(o.listen.ok_or_else(|| anyhow!("party 0 needs --listen"))?);
        }
        Party::P1 => {
            net = net.peer(
                o.peer
                    .clone()
                    .ok_or_else(|| anyhow!("party 1 needs --peer"))?,
            );
        }
    }
    if let Some(s) = o.connect_timeout {
        net = net.connect_timeout(Duration::from_secs(s));
    }
    if let Some(s) = o.exchange_timeout {
        net = net.exchange_timeout(Duration::from_secs(s));
    }
    if let Some(w) = &o.wan {
        let shape: WanShape = w.parse().with_context(|| format!("--wan {w}"))?;
        net = net.wan(shape);
    }
    // The party link uses TLS when its peer is pinned. A certificate and key
    // given for the dealer alone would leave the link in plaintext: that
    // must be asked for (--plaintext-link), never happen silently.
    let identity = o.tls_cert.is_some() || o.tls_key.is_some();
    if identity && o.tls_peer.is_none() && o.dealer_tls_peer.is_some() && !o.plaintext_link {
        bail!(
            "--tls-cert/--tls-key with --dealer-tls-peer but without --tls-peer: the party \
             link would run in plaintext. Give --tls-peer (the other party's certificate) \
             for a TLS link, or --plaintext-link to run it in plaintext knowingly"
        );
    }
    let link_tls = o.tls_peer.is_some() || (identity && o.dealer_tls_peer.is_none());
    if o.tls_server_name.is_some() && !link_tls {
        bail!(
            "--tls-server-name is for a TLS party link: give --tls-cert, --tls-key and \
             --tls-peer too (nothing runs in plaintext because of a partial TLS setup)"
        );
    }
    if link_tls {
        net = net.tls(TlsConfig {
            cert_pem: read_pem(&o.tls_cert, "--tls-cert")?,
            key_pem: read_pem(&o.tls_key, "--tls-key")?,
            peer_pem: read_pem(&o.tls_peer, "--tls-peer")?,
            server_name: o
                .tls_server_name
                .clone()
                .unwrap_or_else(|| "localhost".into()),
        });
    }
    Ok(net)
}

/// The model of `--model`, `--model-json` or `--model-onnx`, as described
/// (not folded).
fn model_of(o: &Opts) -> Result<Model> {
    let source = JobFile {
        model: o.model.clone(),
        model_json: o.model_json.clone(),
        model_onnx: o.model_onnx.clone(),
        ..JobFile::default()
    }
    .model_source()
    .map_err(|_| anyhow!("give only one of --model, --model-json and --model-onnx"))?
    .ok_or_else(|| anyhow!("give one of --model, --model-json and --model-onnx"))?;
    Ok(source.load()?)
}

/// The ONNX model of `--model-onnx`: architecture and initializers.
fn onnx_import(path: &Path) -> Result<ariann_onnx::Imported> {
    ariann_onnx::import(&read(path)?)
        .with_context(|| format!("cannot import the ONNX model {}", path.display()))
}

/// The fixed-point configuration from the options; `train` picks the
/// training defaults (20 fractional bits, rounding to nearest). The same
/// function as the dealer's (`ariann_job::JobFile::config`), so the
/// defaults cannot drift apart.
fn config_of(o: &Opts, train: bool) -> Result<Config> {
    Ok(JobFile {
        frac_bits: o.frac_bits,
        k_cmp: o.k_cmp,
        k_trunc: o.k_trunc,
        max_gate_elems: o.max_gate_elems,
        rounding: o.rounding.map(Rounding::from),
        variant: o.variant,
        train: Some(train),
        ..JobFile::default()
    }
    .config()?)
}

/// The job file's settings as options (below the command line's and
/// --config's).
fn opts_of_job(j: JobFile) -> Opts {
    Opts {
        model: j.model,
        model_json: j.model_json,
        model_onnx: j.model_onnx,
        batch: j.batch,
        batches: j.batches,
        frac_bits: j.frac_bits,
        k_cmp: j.k_cmp,
        k_trunc: j.k_trunc,
        max_gate_elems: j.max_gate_elems,
        variant: j.variant,
        rounding: j.rounding.map(train_cmd::RoundingArg::from),
        permute_relu_maxpool: j.permute_relu_maxpool,
        output_to: j.output_to,
        train: j.train,
        epochs: j.epochs,
        train_images: j.train_images,
        loss: j.loss.map(train_cmd::LossArg::from),
        keep_final_relu: j.keep_final_relu,
        lr: j.lr,
        lr_step: j.lr_step,
        lr_gamma: j.lr_gamma,
        momentum: j.momentum,
        weight_decay: j.weight_decay,
        optimizer: j.optimizer.map(train_cmd::OptimizerArg::from),
        beta1: j.beta1,
        beta2: j.beta2,
        eps: j.eps,
        reveal_to: j.reveal_to,
        ..Opts::default()
    }
}

/// The options: the command line over `--config` over `--job`.
fn options(cli: Opts) -> Result<Opts> {
    let o = match &cli.config {
        None => cli,
        Some(path) => {
            let b = read(path)?;
            let file = toml::from_str::<Opts>(&String::from_utf8_lossy(&b))
                .map_err(|e| anyhow!("invalid config file {}: {}", path.display(), e.message()))?;
            merge(cli, file)
        }
    };
    match o.job.clone() {
        None => Ok(o),
        Some(path) => Ok(merge(o, opts_of_job(JobFile::read(&path)?))),
    }
}

/// `--variant`.
fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::from_name(s).ok_or_else(|| format!("{s:?}: expected one-round or small-key"))
}

/// `--keys FILE` or `--dealer ADDR` (with its TLS options).
fn keys_of(o: &Opts) -> Result<Keys> {
    let keys = match (&o.keys, &o.dealer) {
        (Some(f), None) => Keys::File(f.clone()),
        (None, Some(addr)) => Keys::Dealer {
            addr: addr.clone(),
            tls: match &o.dealer_tls_peer {
                None => None,
                Some(_) => Some(TlsConfig {
                    cert_pem: read_pem(&o.tls_cert, "--tls-cert")?,
                    key_pem: read_pem(&o.tls_key, "--tls-key")?,
                    peer_pem: read_pem(&o.dealer_tls_peer, "--dealer-tls-peer")?,
                    server_name: o
                        .dealer_tls_server_name
                        .clone()
                        .unwrap_or_else(|| "localhost".into()),
                }),
            },
        },
        _ => bail!("give exactly one of --keys FILE and --dealer ADDR"),
    };
    if o.dealer_tls_peer.is_some() && o.dealer.is_none() {
        bail!("--dealer-tls-peer needs --dealer");
    }
    if o.dealer_tls_server_name.is_some() && o.dealer_tls_peer.is_none() {
        bail!(
            "--dealer-tls-server-name is for a TLS dealer stream: give --dealer-tls-peer \
             (and --tls-cert, --tls-key) too"
        );
    }
    if let Keys::Dealer { addr, tls: None } = &keys
        && !is_loopback(addr)
    {
        bail!(
            "keys from the dealer at {addr} would travel in plaintext: give --dealer-tls-peer \
             (the dealer's certificate) with --tls-cert and --tls-key; plaintext is for a \
             dealer on this host only (127.0.0.1, ::1, localhost)"
        );
    }
    Ok(keys)
}

/// True if `addr` (`host:port`) names this host.
fn is_loopback(addr: &str) -> bool {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// What this party trusts for its keys: `--dealer-pubkey` (required) and
/// the ledger in `--state-dir` (or the default state directory). A missing
/// option is a usage error; an unreadable key or unusable directory a key
/// problem.
pub(crate) fn trust_of(o: &Opts) -> Result<KeyTrust, Fail> {
    let Some(pk) = &o.dealer_pubkey else {
        return Err(Fail::Usage(anyhow!(
            "--dealer-pubkey FILE is required: the dealer's public key (dealer.pub from \
             `ariann-dealer identity`); keys not signed by it are refused"
        )));
    };
    let dealer = DealerPublicKey::load(pk)
        .context("--dealer-pubkey")
        .map_err(Fail::Keys)?;
    let dir = match &o.state_dir {
        Some(d) => d.clone(),
        None => Ledger::default_dir().ok_or_else(|| {
            Fail::Usage(anyhow!(
                "no state directory: give --state-dir DIR (neither XDG_STATE_HOME nor HOME is set)"
            ))
        })?,
    };
    let ledger = Ledger::open(&dir)
        .context("the use-once ledger (--state-dir)")
        .map_err(Fail::Keys)?;
    Ok(KeyTrust { dealer, ledger })
}

/// A dealer session id, its link secret and the key source of this party.
type OpenKeys = ([u8; 16], LinkSecret, Box<dyn PreprocessingSource<u64>>);

/// Opens this party's keys for the plan `(hash, gates)`: the key file
/// (refusing another party's, plan's, an unsigned or a used one) or the
/// dealer's stream, trusted as `trust` says. Returns the dealer session
/// (the link's session id), the session's link secret and the source.
fn open_keys(
    keys: &Keys,
    party: Party,
    (plan_hash, bundles, max_bundle): ([u8; 32], u64, u64),
    net: &NetConfig,
    trust: &KeyTrust,
) -> Result<OpenKeys, Fail> {
    Ok(match keys {
        Keys::File(path) => {
            let (session, source) =
                open_key_file(path, party, plan_hash, bundles, trust).map_err(|e| match e {
                    LinkedError::KeyFile {
                        cause: KeyFileError::PlanMismatch { .. },
                        ..
                    } => Fail::Keys(anyhow::Error::new(e).context(
                        "the key file is for another job: the dealer and both parties must give \
                         the same model, --batch, --batches and plan settings (compare \
                         `ariann-dealer plan --hash` with the same options)",
                    )),
                    e => e.into(),
                })?;
            (session, source.link_secret(), Box::new(source))
        }
        Keys::Dealer { addr, tls } => {
            let mut cfg = DealerConfig::new(addr.clone(), party, plan_hash, bundles, trust.clone());
            cfg.connect_timeout = net.connect_timeout;
            cfg.recv_timeout = net.exchange_timeout;
            cfg.tls = tls.clone();
            // No bundle longer than the plan's largest is buffered.
            cfg.max_bundle = usize::try_from(max_bundle).unwrap_or(usize::MAX);
            let source = DealerStreamSource::<u64>::connect(cfg)
                .with_context(|| format!("keys from the dealer at {addr}"))
                .map_err(Fail::Keys)?;
            tracing::info!(bundles = source.header().bundles, "dealer stream open");
            (
                source.header().session,
                source.link_secret(),
                Box::new(source),
            )
        }
    })
}

fn setup(o: &Opts) -> Result<Setup> {
    train_cmd::reject_training_options(o)?;
    let party = party_of(o.id, "id")?;
    let output_to = party_of(o.output_to, "output-to")?;
    let Some(batch) = o.batch.filter(|b| *b > 0) else {
        bail!("--batch is required and must be at least 1");
    };
    let batches = o.batches.unwrap_or(1);
    if batches == 0 {
        bail!("--batches must be at least 1");
    }
    let total = batch
        .checked_mul(batches)
        .ok_or_else(|| anyhow!("--batch {batch} times --batches {batches} overflows"))?;
    let model = model_of(o)?;
    // The data owner's count of real inputs (the rest of the batch is padding).
    let mut images = None;
    let (model, asset) = match (&o.weights, &o.input) {
        (Some(path), None) => {
            let w = Weights::from_safetensors(&read(path)?)
                .with_context(|| format!("cannot load weights {}", path.display()))?;
            w.check(&model)
                .with_context(|| format!("weights {} do not fit {}", path.display(), model.name))?;
            let (m, w) = model.fold_batchnorm(&w)?;
            (m, Asset::Weights(w))
        }
        (None, Some(path)) => {
            let x = read_inputs(path, &model.input)?;
            check_input_count(path, x.images, batch, batches)?;
            if x.images < total {
                eprintln!(
                    "{} holds {} input(s): padding the {} of {total} with {} zero input(s) \
                     (their outputs are dropped)",
                    path.display(),
                    x.images,
                    if batches == 1 {
                        "batch"
                    } else {
                        "last batch of the job"
                    },
                    total - x.images
                );
            }
            images = Some(x.images);
            (
                model.fold_batchnorm_architecture(),
                Asset::Input(x.padded(total)?),
            )
        }
        (None, None) => {
            let Some(path) = &o.model_onnx else {
                bail!("give exactly one of --weights (model owner) and --input (data owner)");
            };
            // The model owner of an ONNX model: the weights are its initializers.
            let (m, w) = model.fold_batchnorm(&onnx_import(path)?.weights)?;
            (m, Asset::Weights(w))
        }
        _ => bail!("give exactly one of --weights (model owner) and --input (data owner)"),
    };
    let model = if o.permute_relu_maxpool.unwrap_or(false) {
        model.permute_relu_maxpool()
    } else {
        model
    };
    let job = Job {
        model,
        batch,
        batches,
        cfg: config_of(o, false)?,
        output_to,
    };
    let keys = keys_of(o)?;
    let net = net_config(o, party)?;
    Ok(Setup {
        party,
        job,
        asset,
        net,
        keys,
        ready_file: o.ready_file.clone(),
        output: o.output.clone(),
        images,
    })
}

/// Refuses an input file whose count of inputs does not fit a job of
/// `batches` batches of `batch`: at most `batch * batches`, and more than
/// `batch * (batches - 1)`, so that only the last batch is padded and no
/// batch is padding alone. The message says what the job takes.
fn check_input_count(path: &Path, images: usize, batch: usize, batches: usize) -> Result<()> {
    let total = batch.saturating_mul(batches);
    let least = batch.saturating_mul(batches - 1) + 1;
    if (least..=total).contains(&images) {
        return Ok(());
    }
    let takes = if batches == 1 && batch == 1 {
        "the job (--batch 1) takes one input".to_string()
    } else if batches == 1 {
        format!("the job (--batch {batch}) takes 1 to {batch} inputs")
    } else {
        let padded = if least < total {
            format!(" ({least} to {total}: only the last batch may be padded with zeros)")
        } else {
            String::new()
        };
        format!("the job (--batches {batches} of --batch {batch}) takes {total} inputs{padded}")
    };
    let hint = match images.div_ceil(batch) {
        0 => String::new(),
        n => format!("; for {images} inputs run --batches {n} of --batch {batch}"),
    };
    bail!("{} holds {images} input(s): {takes}{hint}", path.display())
}

impl From<LinkedError> for Fail {
    fn from(e: LinkedError) -> Self {
        match e {
            e @ (LinkedError::KeyFile { .. }
            | LinkedError::KeyStream { .. }
            | LinkedError::Keys(_)) => Fail::Keys(e.into()),
            e @ LinkedError::Link(_) => Fail::Link(e.into()),
            e @ LinkedError::Job(_) => Fail::Job(e.into()),
            e @ (LinkedError::Local(_) | LinkedError::Io(_)) => Fail::Local(e.into()),
        }
    }
}

fn run(o: Opts) -> Result<(), Fail> {
    let s = setup(&o).map_err(Fail::Usage)?;
    let plan = s.job.plan().map_err(|e| Fail::Usage(e.into()))?;
    let trust = trust_of(&o)?;
    // Keys first: a wrong key file or dealer fails before the party link.
    // The link secret goes into the party link's Hello (issue 12, item 3).
    let (session, link_secret, mut source) = open_keys(
        &s.keys,
        s.party,
        (
            plan.hash(),
            plan.gates.len() as u64,
            ariann_party::max_bundle_of(&plan).map_err(|e| Fail::Usage(e.into()))?,
        ),
        &s.net,
        &trust,
    )?;
    let digest = s.job.digest_of(&plan);
    tracing::info!(
        party = ?s.party,
        job = %to_hex(&digest[..8]),
        plan_hash = %to_hex(&plan.hash()[..8]),
        session = %to_hex(&session),
        gates = plan.gates.len(),
        "job ready"
    );
    // The dealer session is the link's session id: both parties must hold
    // keys from the same `ariann-dealer keys` run (or `serve` job).
    // The peer may send no message longer than this job needs.
    let limit = s
        .job
        .max_message_of(&plan)
        .map_err(|e| Fail::Usage(e.into()))?;
    let out = run_linked(
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
    )?;
    tracing::info!(
        seconds = out.seconds,
        rounds = out.stats.rounds,
        sent_mb = out.stats.bytes_sent as f64 / 1e6,
        "job done"
    );
    eprintln!(
        "job {} done in {:.3} s: {} rounds, {:.2} MB sent, {:.2} MB received",
        to_hex(&digest[..8]),
        out.seconds,
        out.stats.rounds,
        out.stats.bytes_sent as f64 / 1e6,
        out.stats.bytes_received as f64 / 1e6
    );
    if out.batch_stats.len() > 1 {
        // Each batch's online traffic: the first opens the weights' masks,
        // the later ones reuse them.
        let shown: Vec<String> = out
            .batch_stats
            .iter()
            .take(16)
            .map(|b| b.bytes_sent.to_string())
            .collect();
        eprintln!(
            "bytes sent per batch: {}{} (weight masks opened in batch 1, reused by the {} later)",
            shown.join(", "),
            if out.batch_stats.len() > 16 {
                ", ..."
            } else {
                ""
            },
            out.batch_stats.len() - 1
        );
    }
    if let Some(y) = out.output {
        let all = s.job.batch * s.job.batches;
        let classes = y.len() / all;
        let mut rows: Vec<&[f64]> = y.chunks(classes.max(1)).collect();
        // The padding's outputs are dropped where the count is known (the
        // data owner); the model owner does not know it and gets every row.
        rows.truncate(s.images.unwrap_or(all));
        let pred: Vec<usize> = rows
            .iter()
            .map(|r| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
            .collect();
        let json = serde_json::json!({
            "job": to_hex(&digest),
            "model": s.job.model.name,
            "batch": s.job.batch,
            "batches": s.job.batches,
            "inputs": rows.len(),
            "outputs": rows,
            "predictions": pred,
        });
        match &s.output {
            Some(f) => ariann_party::write_private(f, json.to_string().as_bytes())
                .with_context(|| format!("cannot write {}", f.display()))
                .map_err(Fail::Local)?,
            None => println!("{json}"),
        }
    }
    Ok(())
}

/// Daemon mode: serve clients until Ctrl-C or SIGTERM.
/// The control port's authentication from the options: bearer tokens,
/// mutual TLS with pinned client certificates, or (loopback demos) none.
fn control_auth(o: &Opts) -> Result<ControlAuth, Fail> {
    let usage = |m: String| Fail::Usage(anyhow!(m));
    let tls = o.control_tls_cert.is_some()
        || o.control_tls_key.is_some()
        || o.control_client.as_ref().is_some_and(|c| !c.is_empty());
    let chosen = [o.control_tokens.is_some(), tls, o.insecure_local]
        .iter()
        .filter(|b| **b)
        .count();
    if chosen > 1 {
        return Err(usage(
            "choose one of --control-tokens, mutual TLS (--control-tls-cert, \
             --control-tls-key, --control-client) and --insecure-local"
                .into(),
        ));
    }
    if let Some(f) = &o.control_tokens {
        return Ok(ControlAuth::Tokens(
            ariann_party::auth::Tokens::from_file(f).map_err(|e| Fail::Usage(anyhow!(e)))?,
        ));
    }
    if tls {
        let (Some(cert), Some(key)) = (&o.control_tls_cert, &o.control_tls_key) else {
            return Err(usage(
                "mutual TLS on the control port needs --control-tls-cert and --control-tls-key"
                    .into(),
            ));
        };
        let specs = o.control_client.clone().unwrap_or_default();
        if specs.is_empty() {
            return Err(usage(
                "mutual TLS on the control port needs at least one --control-client \
                 NAME=CERT.pem (the certificate that client presents)"
                    .into(),
            ));
        }
        let clients = ariann_party::auth::CertClients::from_specs(&specs)
            .map_err(|e| Fail::Usage(anyhow!(e)))?;
        return Ok(ControlAuth::Tls(ariann_party::auth::ControlTls {
            cert_pem: read_text(cert).map_err(Fail::Usage)?,
            key_pem: read_text(key).map_err(Fail::Usage)?,
            clients,
        }));
    }
    if o.insecure_local {
        return Ok(ControlAuth::InsecureLocal);
    }
    Err(usage(
        "daemon mode needs --control-tokens FILE (a 0600 file of `NAME TOKEN` lines; \
         clients send `authorization: Bearer TOKEN`), mutual TLS (--control-tls-cert, \
         --control-tls-key, --control-client NAME=CERT.pem) or --insecure-local (no \
         authentication, loopback only: any user of this host could submit jobs and \
         fetch outputs)"
            .into(),
    ))
}

fn daemon(o: Opts) -> Result<(), Fail> {
    let party = party_of(o.id, "id").map_err(Fail::Usage)?;
    let net = net_config(&o, party).map_err(Fail::Usage)?;
    // Keys: a directory of key files per job, or a streaming dealer.
    let keys = match (&o.keys_dir, &o.dealer) {
        (Some(dir), None) => ariann_party::daemon::DaemonKeys::Dir(dir.clone()),
        (None, Some(_)) => match keys_of(&o).map_err(Fail::Usage)? {
            Keys::Dealer { addr, tls } => ariann_party::daemon::DaemonKeys::Dealer { addr, tls },
            Keys::File(_) => return Err(Fail::Usage(anyhow!("daemon mode takes no --keys"))),
        },
        _ => {
            return Err(Fail::Usage(anyhow!(
                "daemon mode (--control) needs --keys-dir DIR (key files at \
                 DIR/<job id>/party<i>.keys) or --dealer ADDR (each job's keys from \
                 `ariann-dealer serve` at ADDR), not both"
            )));
        }
    };
    // Every plan setting the dealer has (issue: the daemon used to take only
    // --k-cmp, so other dealer settings could not be run).
    let cfg = config_of(&o, false).map_err(Fail::Usage)?;
    // The model, batch and output party come with each client's job; only
    // the plan settings apply to all of them.
    let per_job: Vec<&str> = [
        (o.model.is_some(), "model"),
        (o.model_json.is_some(), "model-json"),
        (o.model_onnx.is_some(), "model-onnx"),
        (o.batch.is_some(), "batch"),
        (o.batches.is_some(), "batches"),
        (o.output_to.is_some(), "output-to"),
    ]
    .into_iter()
    .filter_map(|(set, name)| set.then_some(name))
    .collect();
    if !per_job.is_empty() {
        return Err(Fail::Usage(anyhow!(
            "daemon mode takes {} from each client's job, not from its options or job file \
             (only the plan settings apply to all jobs)",
            per_job.join(", ")
        )));
    }
    let auth = control_auth(&o)?;
    let trust = trust_of(&o)?;
    let dc = ariann_party::daemon::DaemonConfig {
        control: o.control.ok_or_else(|| Fail::Usage(anyhow!("--control")))?,
        net,
        keys,
        permute_relu_maxpool: o.permute_relu_maxpool.unwrap_or(false),
        cfg,
        max_asset_bytes: 8 << 30,
        fetch_timeout: Duration::from_secs(3600),
        auth,
        max_jobs: 1024,
        trust,
    };
    let rt = tokio::runtime::Runtime::new()
        .context("cannot start the runtime")
        .map_err(Fail::Local)?;
    let ready = o.ready_file.clone();
    rt.block_on(ariann_party::daemon::serve(
        dc,
        |addr| {
            tracing::info!(%addr, "party daemon listening for clients");
            eprintln!("party daemon: control on {addr}");
            if let Some(f) = ready {
                let _ = std::fs::write(f, addr.to_string());
            }
        },
        async {
            let term = async {
                #[cfg(unix)]
                if let Ok(mut s) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                {
                    s.recv().await;
                    return;
                }
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            tracing::info!("shutting down");
        },
    ))
    .context("party daemon")
    .map_err(Fail::Link)
}

fn main() -> ExitCode {
    // Before any thread: key bundles reuse freed heap memory instead of
    // fresh mmaps (ariann_net::memory).
    let alloc = ariann_net::memory::keep_freed_memory();
    if std::env::args_os().nth(1).is_some_and(|a| a == "reference") {
        // `ariann-party reference ...`: a local run, no keys, no peer.
        let o = reference::RefOpts::parse_from(std::env::args_os().skip(1));
        return match reference::run(o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "input") {
        // `ariann-party input --image ...`: images to an input file.
        let o = input_cmd::InputOpts::parse_from(std::env::args_os().skip(1));
        return match input_cmd::run(o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let cli = Opts::parse();
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
    let opts = options(cli);
    let res = match opts {
        Ok(o) if o.train == Some(true) && o.control.is_some() => Err(Fail::Usage(anyhow!(
            "--train runs one job: it does not combine with daemon mode (--control)"
        ))),
        Ok(o) if o.train == Some(true) => train_cmd::run(o),
        Ok(o) if o.control.is_some() => daemon(o),
        Ok(o) => run(o),
        Err(e) => Err(Fail::Usage(e)),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {:#}", f.error());
            ExitCode::from(f.code())
        }
    }
}
