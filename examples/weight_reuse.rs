//! Weight masks reused across batches, measured: a job of `--batches N`
//! batches of private inference (both parties and the dealer in this
//! process, random weights and inputs, keys streamed from the dealer
//! thread), with the weights' masks opened once in the first batch and
//! reused by every later batch (`ariann::mpc::gates::reuse`), against the
//! same job with a fresh triple per product. For the first and for a later
//! batch: online rounds and bytes sent per party (from the transport's
//! counters, checked against `plan_cost`'s prediction) and key bytes per
//! party (from `plan_cost`, which equals `GateKey::key_bytes`).
//!
//! ```text
//! cargo run --release --example weight_reuse                       # network1, lenet5, vgg16; batch 1; 3 batches
//! cargo run --release --example weight_reuse -- --models vgg16 --batch 1 --batches 2
//! cargo run --release --example weight_reuse -- --no-run           # predictions only (no private run)
//! cargo run --release --example weight_reuse -- --json
//! ```
//!
//! The private outputs with and without reuse are checked equal bit for bit
//! (and equal to the cleartext fixed-point run).

use ariann::mpc::{
    ChannelSource, CommStats, GateCost, MemTransport, Plan, Session, Transport, plan_cost,
    run_two_party,
};
use ariann::nn::{
    Config, Model, Weights, encode_input, forward_batches, forward_fixed, plan_batches,
    share_weights, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
}

/// Per-party cost of each batch of a plan of `batches` equal batches.
fn per_batch(p: &Plan, batches: usize) -> Result<Vec<GateCost>, Box<dyn std::error::Error>> {
    let cost = plan_cost(&p.gates, p.ring_bits)?;
    let n = p.gates.len() / batches;
    let mut out = vec![];
    for b in 0..batches {
        let mut c = GateCost::default();
        for g in &cost.gates[b * n..(b + 1) * n] {
            c = c.then(*g)?;
        }
        out.push(c);
    }
    Ok(out)
}

/// Reconstructed outputs, party 0's counters per batch, wall time.
type RunResult = Result<(Vec<u64>, Vec<CommStats>, f64), Box<dyn std::error::Error>>;

/// Runs the job privately; returns the reconstructed outputs, party 0's
/// counters per batch and the wall time.
fn run(
    m: &Model,
    w: &Weights,
    xe: &[u64],
    batch: usize,
    batches: usize,
    cfg: &Config,
    reuse: bool,
) -> RunResult {
    let mut rng = ChaCha12Rng::from_os_rng();
    let (w0, w1) = share_weights(m, w, cfg, &mut rng)?;
    let x0: Vec<u64> = xe.iter().map(|_| rng.random()).collect();
    let x1: Vec<u64> = xe
        .iter()
        .zip(&x0)
        .map(|(v, a)| v.wrapping_sub(*a))
        .collect();
    let p = plan_batches(m, batch, batches, cfg, reuse)?;
    let one = batch * m.input_len();
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let party = |t: &mut MemTransport, rx, ws, xs: &[u64]| {
        let mut src = ChannelSource::new(rx, Duration::from_secs(600));
        let mut s = Session::new(t, &mut src);
        if reuse {
            s = s.with_weight_reuse();
        }
        let (mut y, mut stats) = (vec![], vec![]);
        for b in 0..batches {
            let before = s.transport().stats();
            y.extend(forward_batches(
                &mut s,
                m,
                ws,
                &xs[b * one..(b + 1) * one],
                batch,
                1,
                cfg,
            )?);
            stats.push(s.transport().stats().since(&before));
        }
        Ok::<_, ariann::nn::NnError>((y, stats))
    };
    let start = Instant::now();
    let (dealer, (o0, o1)) = std::thread::scope(|s| {
        let p = &p;
        let dealer = s.spawn(move || -> Result<(), ariann::mpc::MpcError> {
            for pair in p.bundles_from_os::<u64>()? {
                let (a, b) = pair?;
                if tx0.send(a).is_err() || tx1.send(b).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let outs = run_two_party(|t| party(t, rx0, &w0, &x0), |t| party(t, rx1, &w1, &x1));
        (dealer.join(), outs)
    });
    let secs = start.elapsed().as_secs_f64();
    dealer.map_err(|_| "dealer thread panicked")??;
    let ((y0, stats), (y1, _)) = (o0?, o1?);
    let y = y0
        .iter()
        .zip(&y1)
        .map(|(a, b)| a.wrapping_add(*b))
        .collect();
    Ok((y, stats, secs))
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().any(|a| a == "--json");
    let no_run = args.iter().any(|a| a == "--no-run");
    let models: Vec<String> = arg(&args, "--models").map_or_else(
        || vec!["network1".into(), "lenet5".into(), "vgg16".into()],
        |v| v.split(',').map(str::to_string).collect(),
    );
    let batch: usize = arg(&args, "--batch").map_or(Ok(1), |v| v.parse())?;
    let batches: usize = arg(&args, "--batches").map_or(Ok(3), |v| v.parse())?;
    if batches < 2 {
        return Err("--batches must be at least 2 (a first and a later batch)".into());
    }
    let cfg = Config::default();
    let mut rows = vec![];
    for name in &models {
        let (m, _, _) = zoo::by_name(name).ok_or_else(|| format!("unknown model {name}"))?;
        let m = m.fold_batchnorm_architecture().permute_relu_maxpool();
        let with = per_batch(&plan_batches(&m, batch, batches, &cfg, true)?, batches)?;
        let without = per_batch(&plan_batches(&m, batch, batches, &cfg, false)?, batches)?;
        let mut measured = None;
        if !no_run {
            let mut rng = ChaCha12Rng::seed_from_u64(1);
            let w = Weights::random(&m, &mut rng);
            let x: Vec<f32> = (0..batches * batch * m.input_len())
                .map(|_| rng.random_range(0.0..0.5))
                .collect();
            let xe = encode_input(&x, &cfg)?;
            let (y, s_with, t_with) = run(&m, &w, &xe, batch, batches, &cfg, true)?;
            let (y2, s_without, t_without) = run(&m, &w, &xe, batch, batches, &cfg, false)?;
            let one = batch * m.input_len();
            let fixed: Vec<u64> = (0..batches)
                .map(|b| forward_fixed(&m, &w, &xe[b * one..(b + 1) * one], batch, &cfg))
                .collect::<Result<Vec<_>, _>>()?
                .concat();
            if y != y2 || y != fixed {
                return Err(format!("{name}: private outputs differ").into());
            }
            for (b, s) in s_with.iter().enumerate() {
                if *s != with[b].comm_stats() || s_without[b] != without[b].comm_stats() {
                    return Err(format!("{name}: batch {b} counters differ from plan_cost").into());
                }
            }
            measured = Some((t_with, t_without));
        }
        rows.push(json!({
            "model": name,
            "batch": batch,
            "batches": batches,
            "first_batch": {
                "rounds": with[0].rounds,
                "online_mb_per_party": mb(with[0].bytes_sent),
                "key_mb_per_party": mb(with[0].key_bytes),
            },
            "later_batch": {
                "rounds": with[1].rounds,
                "online_mb_per_party": mb(with[1].bytes_sent),
                "key_mb_per_party": mb(with[1].key_bytes),
            },
            "without_reuse_per_batch": {
                "rounds": without[1].rounds,
                "online_mb_per_party": mb(without[1].bytes_sent),
                "key_mb_per_party": mb(without[1].key_bytes),
            },
            "measured": measured.is_some(),
            "job_seconds_with_reuse": measured.map(|m| m.0),
            "job_seconds_without_reuse": measured.map(|m| m.1),
        }));
    }
    if json_out {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "weight masks reused across batches: per party, per batch of {batch} ({batches} batches; {})",
        if no_run {
            "predicted by plan_cost, no private run"
        } else {
            "online counters measured and equal to plan_cost; outputs equal with and without reuse"
        }
    );
    println!(
        "{:<10} {:>6} | {:>12} {:>12} {:>12} | {:>10} {:>10} {:>10}",
        "model",
        "rounds",
        "online first",
        "online later",
        "no reuse",
        "keys first",
        "keys later",
        "no reuse"
    );
    for r in &rows {
        let f = |k: &str, v: &str| r[k][v].as_f64().unwrap_or(0.0);
        println!(
            "{:<10} {:>6} | {:>9.3} MB {:>9.3} MB {:>9.3} MB | {:>7.1} MB {:>7.1} MB {:>7.1} MB",
            r["model"].as_str().unwrap_or(""),
            r["first_batch"]["rounds"],
            f("first_batch", "online_mb_per_party"),
            f("later_batch", "online_mb_per_party"),
            f("without_reuse_per_batch", "online_mb_per_party"),
            f("first_batch", "key_mb_per_party"),
            f("later_batch", "key_mb_per_party"),
            f("without_reuse_per_batch", "key_mb_per_party"),
        );
    }
    Ok(())
}
