//! What `resnet18_inference` and `vgg16_inference` share: argument lookup,
//! and one model run privately in this process or on two remote party
//! daemons, with its report.
#![allow(unreachable_pub)]

use ariann::local::{Preprocess, RunOptions, Wan, private_inference_checked};
use ariann::nn::{Config, Model, Weights, forward_float};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::time::{Duration, Instant};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The command line after the program name.
pub struct Args(Vec<String>);

impl Args {
    pub fn parse() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        self.0.get(i + 1).map(String::as_str)
    }

    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    pub fn num(&self, name: &str, default: usize) -> Res<usize> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => Ok(v.parse().map_err(|_| format!("{name} {v}: not a number"))?),
        }
    }
}

fn argmax(r: &[f64]) -> usize {
    (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b })
}

/// Runs `model` (the zoo's `zoo_name` for `--remote`) on `batch` random
/// inputs with `--weights FILE` or random weights: privately in this process
/// (`--wan`, `--json`), or `--remote P0,P1` on two party daemons (`--job`).
pub fn run_model(args: &Args, model: Model, zoo_name: Option<&str>, batch: usize) -> Res<()> {
    if batch == 0 {
        return Err("--batch must be positive".into());
    }
    let mut rng = ChaCha12Rng::from_os_rng();
    let original = match args.value("--weights") {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
            Weights::from_safetensors(&bytes)?
        }
        None => Weights::random(&model, &mut rng),
    };
    original.check(&model)?;
    // Batch-norms folded (exact), ReLU and max-pool permuted (exact).
    let (model, w) = model.fold_batchnorm(&original)?;
    let model = model.permute_relu_maxpool();
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    if let Some(addrs) = args.value("--remote") {
        let (a0, a1) = addrs.split_once(',').ok_or(
            "--remote takes PARTY0_ADDR,PARTY1_ADDR (http://host:port of the daemons' --control)",
        )?;
        let name = zoo_name.ok_or("--remote runs zoo models only (see the docs)")?;
        let job = args.value("--job").unwrap_or("demo");
        let t = Instant::now();
        let weights = original.to_safetensors()?;
        // --tokens T0,T1: each daemon's client token file (0600); without
        // it the daemons must run with --insecure-local.
        let tokens = match args.value("--tokens") {
            Some(v) => {
                let (f0, f1) = v
                    .split_once(',')
                    .ok_or("--tokens takes TOKEN_FILE0,TOKEN_FILE1")?;
                let read = |f: &str| ariann_party::auth::read_token_file(f.as_ref());
                Some((read(f0)?, read(f1)?))
            }
            None => None,
        };
        let tokens = tokens.as_ref().map(|(a, b)| (a.as_str(), b.as_str()));
        let (y, _) =
            ariann_party::client::run_remote(a0, a1, tokens, job, name, batch, weights, &x)?;
        let secs = t.elapsed().as_secs_f64();
        let float = forward_float(&model, &w, &x, batch)?;
        let c = y.len() / batch;
        let agree = (0..batch)
            .filter(|i| argmax(&y[i * c..(i + 1) * c]) == argmax(&float[i * c..(i + 1) * c]))
            .count();
        println!(
            "{} batch {batch} on the daemons at {a0} and {a1} (job {job}): {secs:.2} s from submit to output; predictions agree with float on {agree}/{batch}",
            model.name
        );
        return Ok(());
    }
    let opts = RunOptions {
        wan: args.flag("--wan").then_some(Wan {
            rtt: Duration::from_millis(70),
            bytes_per_sec: 40e6,
        }),
        preprocess: Preprocess::Streamed,
        profile: false,
    };
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let c = private_inference_checked(&model, &w, &x, batch, &cfg, &opts)?;
    let r = &c.report;
    if args.flag("--json") {
        println!(
            "{}",
            serde_json::json!({
                "model": model.name, "batch": batch, "wan": opts.wan.is_some(),
                "seconds": r.seconds, "keygen_s": r.keygen_seconds,
                "key_wait_s": r.key_wait_seconds,
                "online_mb": r.stats.bytes_sent as f64 / 1e6,
                "rounds": r.stats.rounds,
                "key_mb_per_party": r.key_bytes_per_party as f64 / 1e6,
                "argmax_agreement": c.agree as f64 / batch as f64,
            })
        );
    } else {
        let link = if opts.wan.is_some() {
            " over a 70 ms / 40 MB/s WAN"
        } else {
            " (LAN)"
        };
        println!("{} batch {batch}{link}: {}", model.name, c.summary(batch));
    }
    Ok(())
}
