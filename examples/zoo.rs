//! A Table-2-like report: each model of the zoo run privately (both parties
//! and the dealer in this process, random weights, random inputs), on the
//! in-memory transport ("LAN") and shaped like a WAN link (70 ms round trip,
//! 40 MB/s per direction).
//!
//! ```text
//! cargo run --release --example zoo                        # every model, table
//! cargo run --release --example zoo -- --json              # JSON array
//! cargo run --release --example zoo -- --models network1,lenet --no-wan
//! cargo run --release --example zoo -- --models resnet18 --batch 4
//! cargo run --release --example zoo -- --keys streamed     # or ahead, auto (default)
//! cargo run --release --example zoo -- --variant small-key  # or one-round; default both
//! cargo run --release --example zoo -- --models resnet20 --batch 8 --profile --no-wan
//! cargo run --release --example zoo -- --models resnet18 --batch 4 --max-gate-elems 4194304
//! ```
//!
//! `--profile` adds, after each row, where the LAN run's time went layer by
//! layer (model order; a residual block's layers follow it, indented), for
//! party 0: wall time of the online phase in the layer, split into local
//! compute, time blocked in the transport's exchanges (waiting for party
//! 1's message) and, with keys streamed, time waiting for the dealer; the
//! compute split again into product gates ("products": masking and the two
//! ring products per triple, i.e. matrix products and convolutions) and the
//! rest ("other": FSS evaluations of comparisons and truncations, their
//! masking, local arithmetic); the layer's online MB sent and
//! rounds; the dealer's key-generation time and key MB per party for the
//! layer's gates. With the small-key variant a ReLU after a product does the
//! product's truncation (marked `+trunc`). With `--json` each row gets a
//! `profile` array of these. The outputs are the same with or without it.
//!
//! `--variant` picks the comparison gates (`ariann::nn::Variant`):
//! `one-round` (ReLU and max-pool levels in one round, ~1,050 B of key per
//! ReLU element) or `small-key` (one more round per comparison, less than
//! half the key bytes, the truncation before a ReLU fused into it); `both`
//! (the default) gives a row for each. The outputs are the same.
//!
//! Models (`ariann::nn::zoo::by_name`): network1, network2, sarda, lenet,
//! lenet5, alexnet, alexnet_64, alexnet_note, vgg16, vgg16_64, resnet18,
//! resnet18_64, resnet20 (CIFAR-10, batch 32). Batches default to ARIANN
//! Table 2's.
//!
//! Keys: `ahead` generates the whole job's keys first and times the online
//! phase alone (ARIANN's figures are online times); `streamed` runs the
//! dealer concurrently on the same two cores with bounded memory, so `lan_s`
//! then includes key generation. `auto` streams when the job's keys would
//! not fit comfortably in RAM (more than 3 GB per party, predicted from the
//! job's plan by `ariann::mpc::plan_cost`, without generating any key). MB
//! are per party; `*_per_image` divide by the batch.
//! `--max-gate-elems N` sets `Config::max_gate_elems` (default 2^18): a
//! comparison or truncation layer of more elements is split into bundles of
//! at most N, one round each, so a larger N means fewer rounds (what a WAN
//! pays for) and more key memory per bundle (about 0.3-1 KB per element per
//! party, for the dealer's queue and each party).
//! `argmax_agreement` compares the private predictions with the cleartext
//! float predictions of the same weights. ReLU and max-pool are permuted
//! where they are adjacent (exact; ARIANN and Falcon do the same).

use ariann::local::{
    LayerCost, Preprocess, RunOptions, Wan, private_inference_checked, private_inference_with,
};
use ariann::mpc::plan_cost;
use ariann::nn::{Config, Variant, Weights, plan, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::time::Duration;

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
}

/// Key bytes per party of the whole job, predicted from its plan (no key is
/// generated; `plan_cost` is what `GateKey::key_bytes` would sum to).
fn predicted_key_bytes(
    model: &ariann::nn::Model,
    batch: usize,
    cfg: &Config,
) -> Result<u64, Box<dyn std::error::Error>> {
    let p = plan(model, batch, cfg)?;
    Ok(plan_cost(&p.gates, p.ring_bits)?.total.key_bytes)
}

/// The profile rows as JSON objects.
fn profile_json(rows: &[LayerCost]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            let l = &r.layer;
            json!({
                "layer": l.name, "path": l.path, "kind": l.kind, "depth": l.depth,
                "out_shape": l.out_shape,
                "online_s": l.seconds, "compute_s": l.compute_seconds(),
                "product_s": l.product_seconds, "other_compute_s": l.other_compute_seconds(),
                "wait_s": l.exchange_seconds, "key_wait_s": l.key_wait_seconds,
                "sent_mb": l.comm.bytes_sent as f64 / 1e6, "rounds": l.comm.rounds,
                "gates": l.gates.end - l.gates.start,
                "keygen_s": r.keygen_seconds, "key_mb": r.key_bytes as f64 / 1e6,
                "fused_truncation": l.fused_truncation,
            })
        })
        .collect()
}

/// The profile rows as a table, and the top-level layers' totals.
fn print_profile(rows: &[LayerCost]) {
    let line = |name: &str, kind: &str, shape: &str, v: [f64; 9], rounds: u64| {
        println!(
            "  {name:<24} {kind:<18} {shape:<14} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {rounds:>6} {:>8.3} {:>8.1}",
            v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]
        );
    };
    println!(
        "  {:<24} {:<18} {:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8}",
        "layer",
        "kind",
        "out shape",
        "online s",
        "compute",
        "products",
        "other",
        "wait s",
        "key wait",
        "sent MB",
        "rounds",
        "keygen s",
        "key MB"
    );
    let mut total = [0.0; 9];
    let mut rounds = 0;
    for r in rows {
        let l = &r.layer;
        let kind = if l.fused_truncation {
            format!("{}+trunc", l.kind)
        } else {
            l.kind.to_string()
        };
        let shape = l
            .out_shape
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("x");
        let v = [
            l.seconds,
            l.compute_seconds(),
            l.product_seconds,
            l.other_compute_seconds(),
            l.exchange_seconds,
            l.key_wait_seconds,
            l.comm.bytes_sent as f64 / 1e6,
            r.keygen_seconds,
            r.key_bytes as f64 / 1e6,
        ];
        let name = format!("{}{}", "  ".repeat(l.depth), l.name);
        line(&name, &kind, &shape, v, l.comm.rounds);
        if l.depth == 0 {
            for (t, x) in total.iter_mut().zip(v) {
                *t += x;
            }
            rounds += l.comm.rounds;
        }
    }
    line("total (layers)", "", "", total, rounds);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binaries do: big key buffers reuse freed heap memory
    // (ariann_net::memory; ARIANN_MALLOC=system for glibc's defaults).
    ariann_net::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().any(|a| a == "--json");
    let no_wan = args.iter().any(|a| a == "--no-wan");
    let profile = args.iter().any(|a| a == "--profile");
    let wanted: Vec<String> = arg(&args, "--models").map_or_else(
        || zoo::NAMES.iter().map(|s| s.to_string()).collect(),
        |v| v.split(',').map(str::to_string).collect(),
    );
    let batch_override: Option<usize> = match arg(&args, "--batch") {
        None => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| format!("--batch {v}: not a number"))?,
        ),
    };
    let keys = arg(&args, "--keys").map_or("auto", String::as_str);
    if !["auto", "ahead", "streamed"].contains(&keys) {
        return Err(format!("--keys {keys}: expected auto, ahead or streamed").into());
    }
    let wan = Wan {
        rtt: Duration::from_millis(70),
        bytes_per_sec: 40e6,
    };
    let variants: Vec<Variant> = match arg(&args, "--variant").map_or("both", String::as_str) {
        "both" => vec![Variant::OneRound, Variant::SmallKey],
        v => vec![
            Variant::from_name(v)
                .ok_or_else(|| format!("--variant {v}: expected one-round, small-key or both"))?,
        ],
    };
    let max_gate_elems = match arg(&args, "--max-gate-elems") {
        None => Config::default().max_gate_elems,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(format!("--max-gate-elems {v}: expected a positive number").into()),
        },
    };
    let mut rng = ChaCha12Rng::seed_from_u64(2026);
    let mut rows = Vec::new();
    for key in &wanted {
        let Some((model, dataset, batch)) = zoo::by_name(key) else {
            return Err(format!("unknown model {key:?}; known: {}", zoo::NAMES.join(", ")).into());
        };
        let batch = batch_override.unwrap_or(batch);
        let w = Weights::random(&model, &mut rng);
        // Batch-norms right after a convolution are folded into it (exact);
        // the others run as private affine maps.
        let (model, w) = model.fold_batchnorm(&w)?;
        let model = model.permute_relu_maxpool();
        // The same inputs for every variant.
        let x: Vec<f32> = (0..batch * model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let mut first_output: Option<Vec<f64>> = None;
        for &variant in &variants {
            let cfg = Config {
                k_cmp: 24,
                variant,
                max_gate_elems,
                ..Config::default()
            };
            let preprocess = match keys {
                "ahead" => Preprocess::Ahead,
                "streamed" => Preprocess::Streamed,
                _ => {
                    let est = predicted_key_bytes(&model, batch, &cfg)?;
                    if est <= 3_000_000_000 {
                        Preprocess::Ahead
                    } else {
                        Preprocess::Streamed
                    }
                }
            };
            let opts = RunOptions {
                wan: None,
                preprocess,
                profile,
            };
            let checked = private_inference_checked(&model, &w, &x, batch, &cfg, &opts)?;
            let (lan, agree) = (checked.report, checked.agree);
            // The variants differ in keys and rounds, never in outputs.
            match &first_output {
                None => first_output = Some(lan.output.clone()),
                Some(o) if *o != lan.output => {
                    return Err(format!(
                        "{key}: the {variant} outputs differ from the first variant's"
                    )
                    .into());
                }
                Some(_) => {}
            }
            let wan_s = if no_wan {
                None
            } else {
                let opts = RunOptions {
                    wan: Some(wan),
                    preprocess,
                    profile: false,
                };
                Some(private_inference_with(&model, &w, &x, batch, &cfg, &opts)?.seconds)
            };
            let mb = lan.stats.bytes_sent as f64 / 1e6;
            let keys_name = match preprocess {
                Preprocess::Ahead => "ahead",
                Preprocess::Streamed => "streamed",
            };
            let b = batch as f64;
            let mut row = json!({
                "model": model.name, "key": key, "variant": variant.name(), "dataset": dataset, "batch": batch, "max_gate_elems": max_gate_elems,
                "lan_s": lan.seconds, "wan_s": wan_s,
                "online_mb": mb, "rounds": lan.stats.rounds,
                "key_mb_per_party": lan.key_bytes_per_party as f64 / 1e6,
                "argmax_agreement": agree as f64 / b,
                "keys": keys_name, "keygen_s": lan.keygen_seconds,
                "online_s": lan.online_seconds, "key_wait_s": lan.key_wait_seconds,
                "lan_s_per_image": lan.seconds / b,
                "wan_s_per_image": wan_s.map(|s| s / b),
                "online_mb_per_image": mb / b,
            });
            if let Some(rows) = &lan.profile {
                // The layers add up to the run (checked here too, not only
                // in the tests, so a profile that drifts cannot be printed).
                let top = rows.iter().filter(|r| r.layer.depth == 0);
                let sent: u64 = top.clone().map(|r| r.layer.comm.bytes_sent).sum();
                let rounds: u64 = top.clone().map(|r| r.layer.comm.rounds).sum();
                let key_b: u64 = top.clone().map(|r| r.key_bytes).sum();
                let layers = top.count();
                if (sent, rounds, key_b, layers)
                    != (
                        lan.stats.bytes_sent,
                        lan.stats.rounds,
                        lan.key_bytes_per_party,
                        model.layers.len(),
                    )
                {
                    return Err(format!(
                        "{key}: the profile ({layers} layers, {sent} B, {rounds} rounds, {key_b} key B) \
                         does not add up to the run ({} layers, {} B, {} rounds, {} key B)",
                        model.layers.len(),
                        lan.stats.bytes_sent,
                        lan.stats.rounds,
                        lan.key_bytes_per_party
                    )
                    .into());
                }
                row["profile"] = profile_json(rows);
            }
            if !json_out {
                println!(
                    "{:<20} {:<9} {:<20} batch {:>4}  LAN {:>7.2} s ({:.4} s/img, keys {}, keygen {:.2} s)  WAN {:>9}  {:>8.2} MB ({:.3} MB/img)  {:>3} rounds  keys {:>8.1} MB/party  agreement {}/{}",
                    model.name,
                    variant.name(),
                    dataset,
                    batch,
                    lan.seconds,
                    lan.seconds / b,
                    keys_name,
                    lan.keygen_seconds,
                    wan_s.map_or("-".to_string(), |s| format!("{s:.2} s")),
                    mb,
                    mb / b,
                    lan.stats.rounds,
                    lan.key_bytes_per_party as f64 / 1e6,
                    agree,
                    batch
                );
                if let Some(rows) = &lan.profile {
                    print_profile(rows);
                }
            }
            rows.push(row);
        }
    }
    if json_out {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}
