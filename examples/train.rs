//! Private training on MNIST in this process: a dealer thread streams each
//! step's keys to two party threads (over the in-memory transport), which
//! train a zoo model on shares: the data owner's images and labels and the
//! model owner's initial weights are secret-shared, and only masked values
//! are ever opened. Then the same training in float (same seed, same
//! batches, same hyper-parameters) for comparison.
//!
//! ```text
//! cargo run --release --example train -- --model lenet --epochs 5
//! cargo run --release --example train -- --model network1 --epochs 1 --train-subset 2048 --json
//! ```
//!
//! Options: `--model NAME` (zoo: network1, network2, lenet, ...),
//! `--epochs N`, `--batch B` (a power of two, default 64), `--lr X`
//! (default 0.05), `--momentum X` (0.9), `--weight-decay X` (5e-4),
//! `--lr-step N --lr-gamma X` (step schedule: times gamma every N epochs;
//! default 3 and 0.1 for LeNet, no schedule for the others),
//! `--variant one-round|small-key` (the comparison gates, `Config::variant`:
//! fewer rounds or fewer key bytes, default small-key; the same training
//! bit for bit),
//! `--checkpoint DIR` (each party writes its own shares of the training
//! state, `DIR/party{0,1}.epoch{N}.safetensors`, after every epoch, with
//! each epoch's row in `DIR/epoch{N}.json` and the float run's rows),
//! `--key-buffer N` (key bundles the dealer thread may run ahead of each
//! party, default 2),
//! `--start-epoch N` (resume from the checkpoints of epoch N in `DIR`; the
//! settings must be the first run's, `DIR/run.json`),
//! `--optimizer sgd|adam` (Adam: `--beta1 X` (0.9), `--beta2 X` (0.999),
//! `--eps X` (1e-8); `--momentum` is SGD's; `--weight-decay` is both
//! optimisers' L2 term), `--loss ce|mse` (softmax cross-entropy by default), `--frac-bits F` (20), `--rounding
//! nearest|floor|stochastic` (default stochastic), `--init he|glorot|pytorch`, `--seed S`, `--train-subset
//! N`, `--test-subset N`, `--max-gate-elems N`, `--k-cmp K` (the ReLU and
//! max-pool comparison window, 32: activations must satisfy
//! `|v| < 2^(K-1-f)`; a smaller window is a shallower DCF, and a value
//! outside it compares wrong), `--plot FILE.svg`,
//! `--no-permute` (keep ReLU before max-pool), `--help` (this text), `--json`, `--breakdown` (key bytes by gate kind),
//! `--profile` (one step's phases apart: the dealer's key generation by
//! gate kind, then the parties' step from keys in memory), `--float-only`, `--fixed` (train in cleartext fixed point instead: the exact
//! arithmetic of the private run without keys or parties, for quick
//! accuracy studies), `--no-float`.
//!
//! Data: `$ARIANN_SHARED_DATA/mnist` (or `../shared/data/mnist`), the four
//! IDX files; images scaled to `[0, 1]`.
//!
//! What is reported per epoch: wall time, the dealer's key generation time
//! (its busy time on the same two cores) and the parties' online time (wall
//! time minus the time they waited for keys), keys per party, MB sent per
//! party, the training loss (mean over the epoch's batches, from the logits
//! reconstructed here for the report; the protocol never opens them), the
//! test accuracy of the privately trained model (its reconstructed weights
//! evaluated in cleartext fixed point, which the private inference equals
//! bit for bit) and of the float run.

use ariann::mpc::{
    BundleTag, ChannelSource, Clear, GateKey, MemTransport, MpcError, PreprocessingSource, Session,
    Transport, plan_cost, run_two_party,
};
use ariann::nn::{
    Config, FloatTrainer, Init, Loss, Model, Optimizer, Params, Rounding, TrainConfig, TrainState,
    Variant, Weights, encode_input, encode_targets, forward, forward_float, train_plan, train_step,
    zoo,
};
use ariann_fss::Party;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Args(Vec<String>);

impl Args {
    fn value(&self, name: &str) -> Option<&str> {
        let i = self.0.iter().position(|a| a == name)?;
        self.0.get(i + 1).map(String::as_str)
    }
    fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }
    /// Refuses an option this example does not read (a typo such as
    /// `--epoch 5` would otherwise train with the defaults) and a valued
    /// option without its value. The known options are the names this
    /// file passes to `flag`, `value` and `parse`, read from its own
    /// source, so the list cannot drift from the code.
    fn check_known(&self) -> Res<()> {
        let src = include_str!("train.rs");
        let names = |call: &str| -> std::collections::HashSet<&str> {
            src.split(call)
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .collect()
        };
        let flags = names("args.flag(\"");
        let mut valued = names("args.value(\"");
        valued.extend(names("args.parse(\""));
        let mut i = 0;
        while i < self.0.len() {
            let a = self.0[i].as_str();
            if valued.contains(a) {
                if i + 1 == self.0.len() {
                    return Err(format!("{a} needs a value").into());
                }
                i += 2;
            } else if flags.contains(a) {
                i += 1;
            } else {
                return Err(
                    format!("unknown option {a:?} (`train --help` lists the options)").into(),
                );
            }
        }
        Ok(())
    }
    fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Res<T> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{name} {v}: not a valid value").into()),
        }
    }
}

/// Images (`n x 784`, in `[0, 1]`) and labels.
struct Mnist {
    x: Vec<f32>,
    y: Vec<usize>,
}

fn gunzip(path: &Path) -> Res<Vec<u8>> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(f)
        .read_to_end(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(out)
}

fn load_mnist(root: &Path, split: &str, limit: usize) -> Res<Mnist> {
    let img = gunzip(&root.join(format!("{split}-images-idx3-ubyte.gz")))?;
    let lab = gunzip(&root.join(format!("{split}-labels-idx1-ubyte.gz")))?;
    if img.len() < 16 || img[..4] != [0, 0, 8, 3] || lab.len() < 8 || lab[..4] != [0, 0, 8, 1] {
        return Err(format!("{split}: not MNIST IDX files").into());
    }
    let count = u32::from_be_bytes([img[4], img[5], img[6], img[7]]) as usize;
    let n = count.min(limit);
    if img.len() < 16 + n * 784 || lab.len() < 8 + n {
        return Err(format!("{split}: truncated IDX file").into());
    }
    Ok(Mnist {
        x: img[16..16 + n * 784]
            .iter()
            .map(|p| f32::from(*p) / 255.0)
            .collect(),
        y: lab[8..8 + n].iter().map(|l| usize::from(*l)).collect(),
    })
}

fn data_root() -> Res<PathBuf> {
    let root = match std::env::var_os("ARIANN_SHARED_DATA") {
        Some(r) => PathBuf::from(r),
        None => PathBuf::from("../shared/data"),
    };
    let m = root.join("mnist");
    if m.join("train-images-idx3-ubyte.gz").is_file() {
        Ok(m)
    } else {
        Err(format!(
            "MNIST not found in {} (set ARIANN_SHARED_DATA to the folder holding mnist/)",
            m.display()
        )
        .into())
    }
}

/// A key source that counts the time spent waiting for keys.
struct Timed<S> {
    inner: S,
    wait: Duration,
}

impl<S: PreprocessingSource<u64>> PreprocessingSource<u64> for Timed<S> {
    fn next_bundle(
        &mut self,
        party: Party,
        expected: &BundleTag,
    ) -> Result<GateKey<u64>, MpcError> {
        let t = Instant::now();
        let r = self.inner.next_bundle(party, expected);
        self.wait += t.elapsed();
        r
    }
}

/// The batches of each epoch: a seeded shuffle of the training set.
fn epoch_order(n: usize, batch: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha12Rng::seed_from_u64(
        seed ^ (epoch as u64).wrapping_mul(0x9e37),
    ));
    idx.chunks_exact(batch).map(<[usize]>::to_vec).collect()
}

fn gather(d: &Mnist, idx: &[usize]) -> (Vec<f32>, Vec<usize>) {
    let mut x = Vec::with_capacity(idx.len() * 784);
    for &i in idx {
        x.extend_from_slice(&d.x[i * 784..(i + 1) * 784]);
    }
    (x, idx.iter().map(|&i| d.y[i]).collect())
}

/// The data owner's sharing of one step's inputs, derived from a seed per
/// step so each party thread makes its own share: party 1 holds `r`, party
/// 0 `v - r`.
fn my_share(v: &[u64], party: usize, seed: u64, step: u64) -> Vec<u64> {
    let mut g = ChaCha12Rng::seed_from_u64(seed ^ step.wrapping_mul(0x2545_f491_4f6c_dd1d));
    v.iter()
        .map(|x| {
            let r: u64 = g.random();
            if party == 0 { x.wrapping_sub(r) } else { r }
        })
        .collect()
}

fn accuracy_fixed(model: &Model, p: &Params, test: &Mnist, cfg: &Config) -> Res<f64> {
    let n = test.y.len();
    let mut right = 0;
    for start in (0..n).step_by(250) {
        let end = (start + 250).min(n);
        let x = encode_input(&test.x[start * 784..end * 784], cfg)?;
        let y = forward(&mut Clear::new(), model, p, &x, end - start, cfg)?;
        let c = y.len() / (end - start);
        for (r, row) in y.chunks(c).enumerate() {
            let best = (0..c).fold(0, |b, i| {
                if (row[i] as i64) > (row[b] as i64) {
                    i
                } else {
                    b
                }
            });
            right += usize::from(best == test.y[start + r]);
        }
    }
    Ok(right as f64 / n.max(1) as f64)
}

fn accuracy_float(model: &Model, w: &Weights, test: &Mnist) -> Res<f64> {
    let n = test.y.len();
    let mut right = 0;
    for start in (0..n).step_by(250) {
        let end = (start + 250).min(n);
        let y = forward_float(model, w, &test.x[start * 784..end * 784], end - start)?;
        let c = y.len() / (end - start);
        for (r, row) in y.chunks(c).enumerate() {
            let best = (0..c).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            right += usize::from(best == test.y[start + r]);
        }
    }
    Ok(right as f64 / n.max(1) as f64)
}

/// Mean loss of a batch from (reconstructed) fixed-point logits.
fn loss_of(loss: Loss, logits: &[u64], labels: &[usize], cfg: &Config) -> f64 {
    let s = 2f64.powi(cfg.frac_bits as i32);
    let z: Vec<f64> = logits.iter().map(|v| *v as i64 as f64 / s).collect();
    let c = z.len() / labels.len().max(1);
    ariann::nn::train::float_loss(loss, &z, labels, c)
        .map(|(_, v)| v)
        .unwrap_or(f64::NAN)
}

#[derive(Default, Clone)]
struct EpochStats {
    wall_s: f64,
    keygen_s: f64,
    online_s: f64,
    key_bytes: u64,
    sent_bytes: u64,
    rounds: u64,
    train_loss: f64,
    test_acc: f64,
    float_test_acc: f64,
    float_loss: f64,
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() -> Res<()> {
    let args = Args(std::env::args().skip(1).collect());
    if args.flag("--help") || args.flag("-h") {
        // The options are this file's module docs.
        for line in include_str!("train.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
        {
            let text = line.trim_start_matches("//!");
            println!("{}", text.strip_prefix(' ').unwrap_or(text));
        }
        return Ok(());
    }
    args.check_known()?;
    let name = args.value("--model").unwrap_or("lenet").to_string();
    let epochs: usize = args.parse("--epochs", 1)?;
    let batch: usize = args.parse("--batch", 64)?;
    let lr0: f64 = args.parse("--lr", 0.05)?;
    // LeNet's recipe (99 % in 5 epochs in fixed point): lr x0.1 after epoch 3.
    let lr_step: usize = args.parse("--lr-step", if name == "lenet" { 3 } else { 0 })?;
    let lr_gamma: f64 = args.parse("--lr-gamma", 0.1)?;
    let seed: u64 = args.parse("--seed", 1)?;
    let key_buffer: usize = args.parse("--key-buffer", 2)?;
    let json = args.flag("--json");
    let fixed_only = args.flag("--fixed");
    let tcfg = TrainConfig {
        loss: match args.value("--loss").unwrap_or("ce") {
            "mse" => Loss::Mse,
            "ce" => Loss::CrossEntropy,
            other => return Err(format!("--loss {other}: ce or mse").into()),
        },
        momentum: args.parse("--momentum", 0.9)?,
        weight_decay: args.parse("--weight-decay", 5e-4)?,
        optimizer: match args.value("--optimizer").unwrap_or("sgd") {
            "sgd" => Optimizer::Sgd,
            "adam" => Optimizer::Adam {
                beta1: args.parse("--beta1", 0.9)?,
                beta2: args.parse("--beta2", 0.999)?,
                eps: args.parse("--eps", 1e-8)?,
            },
            other => return Err(format!("--optimizer {other}: sgd or adam").into()),
        },
    };
    let cfg = Config {
        frac_bits: args.parse("--frac-bits", 20)?,
        rounding: match args.value("--rounding").unwrap_or("stochastic") {
            "nearest" => Rounding::Nearest,
            "floor" => Rounding::Floor,
            "stochastic" => Rounding::Stochastic,
            other => {
                return Err(format!("--rounding {other}: nearest, floor or stochastic").into());
            }
        },
        max_gate_elems: args.parse("--max-gate-elems", 1 << 16)?,
        k_cmp: args.parse("--k-cmp", Config::default().k_cmp)?,
        variant: match args.value("--variant") {
            None => Variant::SmallKey,
            Some(v) => Variant::from_name(v)
                .ok_or_else(|| format!("--variant {v}: one-round or small-key"))?,
        },
        ..Config::default()
    };
    let init = match args.value("--init").unwrap_or("he") {
        "he" => Init::He,
        "glorot" => Init::Glorot,
        "pytorch" => Init::PyTorch,
        other => return Err(format!("--init {other}: he, glorot or pytorch").into()),
    };
    let (mut model, _, _) = zoo::by_name(&name).ok_or_else(|| format!("unknown model {name}"))?;
    // A ReLU on the logits (Falcon's LeNet has one) stops the gradient of
    // every negative logit, the true class's included: training drops it
    // unless asked to keep it.
    if !args.flag("--keep-final-relu")
        && matches!(model.layers.last(), Some(ariann::nn::Layer::Relu))
    {
        model.layers.pop();
        if !args.flag("--json") {
            println!(
                "{name}: training without the final ReLU on the logits (--keep-final-relu keeps it)"
            );
        }
    }
    if model.input != [1, 28, 28] && model.input != [784] {
        return Err(format!(
            "{name} does not take MNIST images (input {:?})",
            model.input
        )
        .into());
    }
    // ReLU then max-pool computes the same function as max-pool then ReLU
    // (and has the same gradient); the latter compares 4x fewer elements.
    let model = if args.flag("--no-permute") {
        model
    } else {
        model.permute_relu_maxpool()
    };
    let root = data_root()?;
    let train = load_mnist(&root, "train", args.parse("--train-subset", 60_000)?)?;
    let test = load_mnist(&root, "t10k", args.parse("--test-subset", 10_000)?)?;
    let steps = train.y.len() / batch;
    if steps == 0 {
        return Err(format!("fewer training images than one batch of {batch}").into());
    }
    let lr_at = |epoch: usize| match epoch.checked_div(lr_step) {
        None => lr0,
        Some(k) => lr0 * lr_gamma.powi(k as i32),
    };
    let w0 = Weights::init(&model, init, &mut ChaCha12Rng::seed_from_u64(seed));
    let plan = train_plan(&model, batch, &cfg, &tcfg)?;
    let cost = plan_cost(&plan.gates, 64)?;
    let keys_step = cost.total.key_bytes;
    let rounds_step = cost.total.rounds;
    if !json {
        println!(
            "{name}: {} training images ({steps} steps of {batch}), {} test images, {epochs} epoch(s), \
             f = {}, {:?} rounding, {} gates, {:?} lr {lr0} momentum {} weight decay {}, {:?} loss{}",
            train.y.len(),
            test.y.len(),
            cfg.frac_bits,
            cfg.rounding,
            cfg.variant.name(),
            tcfg.optimizer,
            tcfg.momentum,
            tcfg.weight_decay,
            tcfg.loss,
            if fixed_only {
                " -- cleartext fixed point (no keys, no parties)"
            } else {
                ""
            }
        );
        println!(
            "per step: {} gates, {rounds_step} rounds, keys {:.1} MB per party, online {:.1} MB sent per party; \
             per epoch: keys {:.1} GB per party",
            plan.gates.len(),
            keys_step as f64 / 1e6,
            cost.total.bytes_sent as f64 / 1e6,
            (keys_step * steps as u64) as f64 / 1e9
        );
    }
    if args.flag("--breakdown") {
        // Key bytes and rounds of one step by gate kind.
        let mut by: std::collections::BTreeMap<String, (u64, u64, usize)> = Default::default();
        for (g, c) in plan.gates.iter().zip(&cost.gates) {
            let e = by.entry(g.kind().name().to_string()).or_default();
            e.0 += c.key_bytes;
            e.1 += c.rounds;
            e.2 += 1;
        }
        println!("| gate kind | gates | rounds | key MB per party per step |");
        println!("|---|---|---|---|");
        for (k, (b, r, n)) in by {
            println!("| {k} | {n} | {r} | {:.1} |", b as f64 / 1e6);
        }
    }
    if args.flag("--profile") {
        return profile(&model, &plan, &train, batch, &w0, &cfg, &tcfg, lr0);
    }
    let ckpt: Option<PathBuf> = args.value("--checkpoint").map(PathBuf::from);
    let start: usize = args.parse("--start-epoch", 0)?;
    let float_only = args.flag("--float-only");
    if start > 0 && ckpt.is_none() {
        return Err(
            "--start-epoch N reads the checkpoints of epoch N: give --checkpoint DIR".into(),
        );
    }
    if start > 0 && (fixed_only || float_only) {
        return Err("--start-epoch resumes a private run (not --fixed or --float-only)".into());
    }
    if start >= epochs {
        return Err(format!("--start-epoch {start}: only {epochs} epoch(s) to run").into());
    }
    // What a checkpoint belongs to: a resumed run must have the same settings.
    let mut run_id = serde_json::json!({
        "model": name, "batch": batch, "train_images": steps * batch, "seed": seed,
        "frac_bits": cfg.frac_bits, "rounding": format!("{:?}", cfg.rounding),
        "variant": cfg.variant.name(), "optimizer": format!("{:?}", tcfg.optimizer),
        "loss": format!("{:?}", tcfg.loss), "momentum": tcfg.momentum,
        "weight_decay": tcfg.weight_decay, "lr": lr0, "lr_step": lr_step, "lr_gamma": lr_gamma,
    });
    // Settings away from their defaults (kept out otherwise, so that folders
    // of earlier runs still resume).
    for (key, value, default) in [
        (
            "k_cmp",
            cfg.k_cmp.to_string(),
            Config::default().k_cmp.to_string(),
        ),
        ("init", format!("{init:?}"), format!("{:?}", Init::He)),
        (
            "no_permute",
            args.flag("--no-permute").to_string(),
            "false".into(),
        ),
        (
            "keep_final_relu",
            args.flag("--keep-final-relu").to_string(),
            "false".into(),
        ),
    ] {
        if value != default {
            run_id[key] = serde_json::Value::String(value);
        }
    }
    let mut stats = vec![EpochStats::default(); epochs];
    if let Some(dir) = &ckpt {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let id_path = dir.join("run.json");
        if start > 0 {
            let text = std::fs::read_to_string(&id_path)
                .map_err(|e| format!("{}: {e} (no run to resume here)", id_path.display()))?;
            let saved: serde_json::Value = serde_json::from_str(&text)?;
            if saved != run_id {
                return Err(format!(
                    "{}: the checkpoints belong to another run ({saved}); this run is {run_id}",
                    id_path.display()
                )
                .into());
            }
            // The rows of the epochs already run, as that run measured them.
            for (e, es) in stats.iter_mut().enumerate().take(start) {
                let path = dir.join(format!("epoch{}.json", e + 1));
                if let Ok(text) = std::fs::read_to_string(&path) {
                    *es = EpochStats::from_json(&serde_json::from_str(&text)?);
                }
            }
        } else {
            // A new run here: the float rows of another run's settings go.
            let same = std::fs::read_to_string(&id_path)
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .is_some_and(|saved| saved == run_id);
            if !same {
                let _ = std::fs::remove_file(dir.join("float.json"));
            }
            std::fs::write(&id_path, run_id.to_string())?;
        }
    }

    // ---- the float reference first (cheap), so each private epoch's row
    // can print as soon as it ends
    // A checkpoint folder keeps the float run's rows (the same settings give
    // the same float run), so a resumed or restarted run does not train it
    // again.
    let float_cache = ckpt.as_ref().map(|d| d.join("float.json"));
    let cached: Option<Vec<(f64, f64)>> = float_cache
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok())
        .filter(|v: &Vec<(f64, f64)>| v.len() >= epochs);
    if let (Some(rows), false) = (&cached, args.flag("--no-float")) {
        for (es, (loss, acc)) in stats.iter_mut().zip(rows) {
            (es.float_loss, es.float_test_acc) = (*loss, *acc);
        }
        if !json {
            println!(
                "float reference: the rows saved by an earlier run of these settings in this folder"
            );
        }
    } else if !args.flag("--no-float") {
        let mut ft = FloatTrainer::new(w0.clone());
        for (e, es) in stats.iter_mut().enumerate() {
            let t0 = Instant::now();
            let mut total = 0.0;
            for idx in epoch_order(train.y.len(), batch, seed, e) {
                let (x, l) = gather(&train, &idx);
                total += ft.step(&model, &x, &l, &tcfg, lr_at(e))?;
            }
            es.float_loss = total / steps as f64;
            es.float_test_acc = accuracy_float(&model, &ft.weights, &test)?;
            if !json {
                println!(
                    "float reference, epoch {}: loss {:.4}, test accuracy {:.2} % ({:.1} s)",
                    e + 1,
                    es.float_loss,
                    100.0 * es.float_test_acc,
                    t0.elapsed().as_secs_f64()
                );
            }
        }
        if let Some(p) = &float_cache {
            let rows: Vec<(f64, f64)> = stats
                .iter()
                .map(|s| (s.float_loss, s.float_test_acc))
                .collect();
            std::fs::write(p, serde_json::to_string(&rows)?)?;
        }
    }
    let header = || {
        println!(
            "| epoch | wall s | keygen s | online s | keys GB/party | online MB/party | rounds | train loss | test acc | float loss | float test acc |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
    };
    // The report of one finished epoch: loss from the step logits, accuracy
    // of the epoch's (reconstructed) model, the row printed and saved.
    let finish = |e: usize, es: &mut EpochStats, params: &Params, logits: &[Vec<u64>]| -> Res<()> {
        let order = epoch_order(train.y.len(), batch, seed, e);
        let mut total = 0.0;
        for (idx, z) in order.iter().zip(logits) {
            let labels: Vec<usize> = idx.iter().map(|&i| train.y[i]).collect();
            total += loss_of(tcfg.loss, z, &labels, &cfg);
        }
        es.train_loss = total / steps as f64;
        es.test_acc = accuracy_fixed(&model, params, &test, &cfg)?;
        if !json {
            eprint!("\r{:40}\r", "");
            es.print_row(e);
        }
        if let Some(dir) = &ckpt {
            std::fs::write(
                dir.join(format!("epoch{}.json", e + 1)),
                es.to_json(e).to_string(),
            )?;
        }
        Ok(())
    };

    // ---- private (or cleartext fixed-point) training
    let params = Params::encode_train(&model, &w0, &cfg)?;
    if float_only {
        // Only the float reference (e.g. in a second process beside a --fixed run).
    } else if fixed_only {
        let mut st = TrainState::new(params);
        // Stochastic rounding's coins (the private run's come from the
        // dealer's masks: the same distribution, not the same bits).
        let mut clear = Clear::stochastic(seed ^ 0x5eed_c014);
        if !json {
            header();
        }
        for (e, es) in stats.iter_mut().enumerate() {
            let t0 = Instant::now();
            let mut logits = Vec::with_capacity(steps);
            for idx in epoch_order(train.y.len(), batch, seed, e) {
                let (x, l) = gather(&train, &idx);
                let xe = encode_input(&x, &cfg)?;
                let te = encode_targets(&l, 10, tcfg.loss, &cfg)?;
                let out = train_step(
                    &mut clear,
                    &model,
                    &mut st,
                    &xe,
                    &te,
                    batch,
                    &cfg,
                    &tcfg,
                    lr_at(e),
                )?;
                logits.push(out.logits);
            }
            es.wall_s = t0.elapsed().as_secs_f64();
            finish(e, es, &st.params, &logits)?;
        }
    } else {
        let mut rng = ChaCha12Rng::from_os_rng();
        // Each party's state: a fresh sharing of the initial weights, or its
        // own checkpoint of the epoch to resume from.
        let (st0, st1) = match (&ckpt, start) {
            (Some(dir), s) if s > 0 => {
                let load = |b: usize| -> Res<TrainState> {
                    let path = dir.join(format!("party{b}.epoch{s}.safetensors"));
                    let bytes =
                        std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    let st = TrainState::from_safetensors(&bytes)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    st.params
                        .check_train(&model)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                    Ok(st)
                };
                (load(0)?, load(1)?)
            }
            _ => {
                let (s0, s1) = params.share(&mut rng);
                (TrainState::new(s0), TrainState::new(s1))
            }
        };
        drop(params);
        let data_seed: u64 = rng.random();
        // Bundles the dealer may generate ahead of each party. On 10 LeNet
        // steps 16 was no faster than 2 (17.8-19.9 s against 18.2-20.1 s)
        // and held 120 MB more.
        let (tx0, rx0) = sync_channel(key_buffer);
        let (tx1, rx1) = sync_channel(key_buffer);
        let (gen_tx, gen_rx) = channel::<Duration>();
        let (report_tx, report_rx) = channel::<EpochOut>();
        let total_steps = steps * (epochs - start);
        let progress = std::sync::atomic::AtomicUsize::new(0);
        let run = |t: &mut MemTransport,
                   rx,
                   mut st: TrainState,
                   party: usize,
                   report: &std::sync::mpsc::Sender<EpochOut>|
         -> Res<()> {
            let mut src = Timed {
                inner: ChannelSource::new(rx, Duration::from_secs(3600)),
                wait: Duration::ZERO,
            };
            for e in start..epochs {
                let t0 = Instant::now();
                let (w0, c0) = (src.wait, t.stats());
                let mut logits = Vec::with_capacity(steps);
                for (s, idx) in epoch_order(train.y.len(), batch, seed, e)
                    .iter()
                    .enumerate()
                {
                    let (x, l) = gather(&train, idx);
                    let step = (e * steps + s) as u64;
                    let xs = my_share(&encode_input(&x, &cfg)?, party, data_seed, 2 * step);
                    let ts = my_share(
                        &encode_targets(&l, 10, tcfg.loss, &cfg)?,
                        party,
                        data_seed,
                        2 * step + 1,
                    );
                    let o = train_step(
                        &mut Session::new(t, &mut src),
                        &model,
                        &mut st,
                        &xs,
                        &ts,
                        batch,
                        &cfg,
                        &tcfg,
                        lr_at(e),
                    )?;
                    logits.push(o.logits);
                    if party == 0 {
                        let done = progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                        if !json && (done.is_multiple_of(10) || done == total_steps) {
                            eprint!("\r  step {done}/{total_steps}");
                        }
                    }
                }
                let c = t.stats().since(&c0);
                if let Some(dir) = &ckpt {
                    // This party's own shares only (in a deployment each
                    // party writes to its own disk).
                    let path = dir.join(format!("party{party}.epoch{}.safetensors", e + 1));
                    let tmp = path.with_extension("tmp");
                    std::fs::write(&tmp, st.to_safetensors()?)
                        .and_then(|()| std::fs::rename(&tmp, &path))
                        .map_err(|err| format!("{}: {err}", path.display()))?;
                }
                let out = EpochOut {
                    party,
                    epoch: e,
                    params: st.params.clone(),
                    wall: t0.elapsed(),
                    wait: src.wait - w0,
                    sent: c.bytes_sent,
                    rounds: c.rounds,
                    logits,
                };
                if report.send(out).is_err() {
                    return Err("the report was closed".into());
                }
            }
            Ok(())
        };
        if !json {
            header();
        }
        let report_result = std::thread::scope(|s| -> Res<()> {
            let plan = &plan;
            s.spawn(move || {
                for _ in 0..total_steps {
                    let Ok(mut it) = plan.bundles_from_os::<u64>() else {
                        return;
                    };
                    let mut busy = Duration::ZERO;
                    loop {
                        let t = Instant::now();
                        let Some(pair) = it.next() else { break };
                        busy += t.elapsed();
                        let Ok((a, b)) = pair else { return };
                        if tx0.send(a).is_err() || tx1.send(b).is_err() {
                            return;
                        }
                    }
                    if gen_tx.send(busy).is_err() {
                        return;
                    }
                }
            });
            let parties = s.spawn(move || {
                let r = run_two_party(
                    |t| run(t, rx0, st0, 0, &report_tx),
                    |t| run(t, rx1, st1, 1, &report_tx),
                );
                drop(report_tx);
                r
            });
            // Each epoch's row as soon as both parties have ended it.
            let mut gen_times: Vec<Duration> = Vec::new();
            let mut pending: std::collections::BTreeMap<usize, EpochOut> = Default::default();
            let mut result = Ok(());
            for out in report_rx.iter() {
                let e = out.epoch;
                let Some(other) = pending.remove(&e) else {
                    pending.insert(e, out);
                    continue;
                };
                let (r0, r1) = if out.party == 0 {
                    (out, other)
                } else {
                    (other, out)
                };
                gen_times.extend(gen_rx.try_iter());
                let es = &mut stats[e];
                let k = e - start;
                es.wall_s = r0.wall.max(r1.wall).as_secs_f64();
                es.keygen_s = gen_times
                    [(k * steps).min(gen_times.len())..((k + 1) * steps).min(gen_times.len())]
                    .iter()
                    .sum::<Duration>()
                    .as_secs_f64();
                es.online_s = r0.wall.saturating_sub(r0.wait).as_secs_f64();
                es.sent_bytes = r0.sent.max(r1.sent);
                es.rounds = r0.rounds;
                es.key_bytes = keys_step * steps as u64;
                let logits: Vec<Vec<u64>> = r0
                    .logits
                    .iter()
                    .zip(&r1.logits)
                    .map(|(a, b)| a.iter().zip(b).map(|(x, y)| x.wrapping_add(*y)).collect())
                    .collect();
                // A failed report does not stop the training (its
                // checkpoints are still written); the error comes at the end.
                if result.is_ok() {
                    result = Params::reconstruct(&r0.params, &r1.params)
                        .map_err(Into::into)
                        .and_then(|p| finish(e, es, &p, &logits));
                }
            }
            let (a, b) = parties.join().map_err(|_| "a party thread panicked")?;
            if !json {
                eprintln!();
            }
            a.map_err(|e| format!("party 0: {e}"))?;
            b.map_err(|e| format!("party 1: {e}"))?;
            result
        });
        report_result?;
    }
    let shown = &stats[..];
    if json {
        let ep: Vec<serde_json::Value> = shown
            .iter()
            .enumerate()
            .map(|(e, s)| s.to_json(e))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "model": name, "batch": batch, "train_images": steps * batch,
                "test_images": test.y.len(), "frac_bits": cfg.frac_bits,
                "rounding": format!("{:?}", cfg.rounding).to_lowercase(),
                "variant": cfg.variant.name(),
                "mode": if fixed_only { "fixed" } else { "private" },
                "resumed_at_epoch": start,
                "epochs": ep, "rounds_per_step": rounds_step,
                "key_mb_per_step_per_party": keys_step as f64 / 1e6,
                "peak_rss_mb": peak_rss_mb(),
            })
        );
    } else {
        if start > 0 || float_only {
            // The whole run's table (earlier epochs from the checkpoint folder).
            println!("all epochs:");
            header();
            for (e, s) in shown.iter().enumerate() {
                s.print_row(e);
            }
        }
        println!(
            "peak RSS (dealer and both parties, one process{}): {:.0} MB",
            if start > 0 { ", this resumed run" } else { "" },
            peak_rss_mb()
        );
    }
    if let Some(path) = args.value("--plot") {
        plot(path, &name, &stats)?;
        if !json {
            println!("plot: {path}");
        }
    }
    Ok(())
}

/// One party's end of an epoch: its parameter shares, wall and key-wait
/// time, traffic, and the logit shares of each step (for the report).
struct EpochOut {
    party: usize,
    epoch: usize,
    params: Params,
    wall: Duration,
    wait: Duration,
    sent: u64,
    rounds: u64,
    logits: Vec<Vec<u64>>,
}

impl EpochStats {
    fn to_json(&self, e: usize) -> serde_json::Value {
        serde_json::json!({
            "epoch": e + 1, "wall_s": self.wall_s, "keygen_s": self.keygen_s, "online_s": self.online_s,
            "key_gb_per_party": self.key_bytes as f64 / 1e9,
            "online_mb_per_party": self.sent_bytes as f64 / 1e6,
            "rounds": self.rounds,
            "train_loss": self.train_loss, "test_acc": self.test_acc,
            "float_train_loss": self.float_loss, "float_test_acc": self.float_test_acc,
        })
    }

    fn from_json(v: &serde_json::Value) -> EpochStats {
        let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
        EpochStats {
            wall_s: f("wall_s"),
            keygen_s: f("keygen_s"),
            online_s: f("online_s"),
            key_bytes: (f("key_gb_per_party") * 1e9).round() as u64,
            sent_bytes: (f("online_mb_per_party") * 1e6).round() as u64,
            rounds: v["rounds"].as_u64().unwrap_or(0),
            train_loss: f("train_loss"),
            test_acc: f("test_acc"),
            float_test_acc: f("float_test_acc"),
            float_loss: f("float_train_loss"),
        }
    }

    fn print_row(&self, e: usize) {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.4} | {:.2} % | {:.4} | {:.2} % |",
            e + 1,
            self.wall_s,
            self.keygen_s,
            self.online_s,
            self.key_bytes as f64 / 1e9,
            self.sent_bytes as f64 / 1e6,
            self.rounds,
            self.train_loss,
            100.0 * self.test_acc,
            self.float_loss,
            100.0 * self.float_test_acc
        );
    }
}

/// `--profile`: one step's phases apart. The dealer alone generates the
/// step's keys (timed per gate kind, keys kept in memory); then the two
/// parties run the step from those keys with no dealer beside them. Their
/// sum against the pipelined step of a normal run says what bounds it.
#[allow(clippy::too_many_arguments)]
fn profile(
    model: &Model,
    plan: &ariann::mpc::Plan,
    train: &Mnist,
    batch: usize,
    w0: &Weights,
    cfg: &Config,
    tcfg: &TrainConfig,
    lr: f64,
) -> Res<()> {
    use ariann::mpc::VecSource;
    let mut by: std::collections::BTreeMap<&str, f64> = Default::default();
    let (mut b0, mut b1) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    let mut it = plan.bundles_from_os::<u64>()?;
    for g in &plan.gates {
        let t = Instant::now();
        let (a, b) = it.next().ok_or("plan ended early")??;
        *by.entry(g.kind().name()).or_default() += t.elapsed().as_secs_f64();
        b0.push(a);
        b1.push(b);
    }
    let keygen = t0.elapsed().as_secs_f64();
    println!("dealer alone, one step's keys: {keygen:.2} s");
    println!("| gate kind | keygen s per step |");
    println!("|---|---|");
    for (k, v) in &by {
        println!("| {k} | {v:.2} |");
    }
    let idx: Vec<usize> = (0..batch).collect();
    let (x, l) = gather(train, &idx);
    let params = Params::encode_train(model, w0, cfg)?;
    let (s0, s1) = params.share(&mut ChaCha12Rng::from_os_rng());
    let xe = encode_input(&x, cfg)?;
    let te = encode_targets(&l, 10, tcfg.loss, cfg)?;
    let run = |t: &mut MemTransport, keys: Vec<_>, p: Params, party: usize| -> Res<(f64, Times)> {
        let mut src = TimedSource {
            inner: VecSource::new(keys),
            last: None,
            by: Default::default(),
        };
        let mut st = TrainState::new(p);
        let xs = my_share(&xe, party, 7, 0);
        let ts = my_share(&te, party, 7, 1);
        let t0 = Instant::now();
        train_step(
            &mut Session::new(t, &mut src),
            model,
            &mut st,
            &xs,
            &ts,
            batch,
            cfg,
            tcfg,
            lr,
        )?;
        src.close();
        Ok((t0.elapsed().as_secs_f64(), src.by))
    };
    let (a, b) = run_two_party(|t| run(t, b0, s0, 0), |t| run(t, b1, s1, 1));
    let (a, b) = (
        a.map_err(|e| format!("party 0: {e}"))?,
        b.map_err(|e| format!("party 1: {e}"))?,
    );
    println!("| gate kind | party 0 s per step | party 1 s per step |");
    println!("|---|---|---|");
    for (k, v) in &a.1 {
        println!(
            "| {k} | {v:.2} | {:.2} |",
            b.1.get(k).copied().unwrap_or(0.0)
        );
    }
    println!(
        "parties alone (keys in memory), one step: {:.2} s; dealer + parties one after the other: {:.2} s per step",
        a.0.max(b.0),
        keygen + a.0.max(b.0)
    );
    Ok(())
}

/// Seconds per gate kind.
type Times = std::collections::BTreeMap<&'static str, f64>;

/// A key source that charges the time between two key requests to the
/// gate of the first: the gate's evaluation and the local work after it
/// (layer arithmetic) until the next gate asks for its key.
struct TimedSource {
    inner: ariann::mpc::VecSource<u64>,
    last: Option<(&'static str, Instant)>,
    by: Times,
}

impl TimedSource {
    fn close(&mut self) {
        if let Some((k, t)) = self.last.take() {
            *self.by.entry(k).or_default() += t.elapsed().as_secs_f64();
        }
    }
}

impl ariann::mpc::PreprocessingSource<u64> for TimedSource {
    fn next_bundle(
        &mut self,
        party: ariann::fss::Party,
        expected: &ariann::mpc::BundleTag,
    ) -> Result<ariann::mpc::GateKey<u64>, ariann::mpc::MpcError> {
        self.close();
        let key = self.inner.next_bundle(party, expected);
        self.last = Some((expected.gate.kind().name(), Instant::now()));
        key
    }
}

/// Private vs float loss and test accuracy per epoch, as SVG.
fn plot(path: &str, name: &str, stats: &[EpochStats]) -> Res<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 380)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(450);
    let n = stats.len() as f64;
    let series = |f: fn(&EpochStats) -> f64| -> Vec<(f64, f64)> {
        stats
            .iter()
            .enumerate()
            .map(|(e, s)| ((e + 1) as f64, f(s)))
            .collect()
    };
    let max_loss = stats
        .iter()
        .flat_map(|s| [s.train_loss, s.float_loss])
        .fold(0.0f64, f64::max)
        .max(1e-3);
    let mut c = ChartBuilder::on(&left)
        .caption(format!("{name}: training loss"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..n + 0.5, 0.0..max_loss * 1.1)?;
    c.configure_mesh().x_desc("epoch").draw()?;
    c.draw_series(LineSeries::new(series(|s| s.train_loss), &RED))?
        .label("private")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.draw_series(LineSeries::new(series(|s| s.float_loss), &BLUE))?
        .label("float")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.configure_series_labels().border_style(BLACK).draw()?;
    let lo = stats
        .iter()
        .flat_map(|s| [s.test_acc, s.float_test_acc])
        .fold(1.0f64, f64::min)
        * 100.0;
    let mut c = ChartBuilder::on(&right)
        .caption(format!("{name}: test accuracy (%)"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.5..n + 0.5, (lo - 1.0).max(0.0)..100.0)?;
    c.configure_mesh().x_desc("epoch").draw()?;
    c.draw_series(LineSeries::new(series(|s| 100.0 * s.test_acc), &RED))?
        .label("private")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
    c.draw_series(LineSeries::new(series(|s| 100.0 * s.float_test_acc), &BLUE))?
        .label("float")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    c.configure_series_labels().border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
