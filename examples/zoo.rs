//! A Table-2-like report: each model of the zoo run privately (both parties
//! and the dealer in this process, random weights, random inputs), on the
//! in-memory transport ("LAN") and shaped like a WAN link (70 ms round trip,
//! 40 MB/s per direction).
//!
//! ```text
//! cargo run --release --example zoo                        # table
//! cargo run --release --example zoo -- --json              # JSON array
//! cargo run --release --example zoo -- --models network1,lenet5 --no-wan
//! cargo run --release --example zoo -- --models resnet18 --batch 4   # 224x224
//! ```
//!
//! Times are for the whole batch and include the dealer generating keys
//! concurrently on the same two cores (keys are streamed, never all in RAM);
//! `keygen_s` is the dealer's share of that. MB are per party for the batch.
//! `argmax_agreement` compares the private predictions with the cleartext
//! float predictions of the same weights. ReLU and max-pool are permuted
//! where they are adjacent (exact; ARIANN and Falcon do the same).

use ariann::local::{Wan, private_inference};
use ariann::nn::{Config, Model, Weights, forward_float, zoo};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::time::Duration;

fn argmax(row: &[f64]) -> usize {
    let mut b = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[b] {
            b = i;
        }
    }
    b
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().any(|a| a == "--json");
    let no_wan = args.iter().any(|a| a == "--no-wan");
    let wanted: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--models")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    let all: Vec<(&str, Model, &str, usize)> = vec![
        ("network1", zoo::network1(), "MNIST", 128),
        ("network2", zoo::network2(), "MNIST", 128),
        ("lenet5", zoo::lenet5_advertorch(), "MNIST", 32),
        (
            "resnet18",
            zoo::resnet18(224, 1000),
            "224x224 (ImageNet shape)",
            1,
        ),
        (
            "resnet18_64",
            zoo::resnet18(64, 200),
            "64x64 (Tiny ImageNet shape)",
            1,
        ),
    ];
    let batch_override: Option<usize> = args
        .iter()
        .position(|a| a == "--batch")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok());
    let wan = Wan {
        rtt: Duration::from_millis(70),
        bytes_per_sec: 40e6,
    };
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let mut rng = ChaCha12Rng::seed_from_u64(2026);
    let mut rows = Vec::new();
    for (key, model, dataset, batch) in all {
        if wanted.as_ref().is_some_and(|w| !w.iter().any(|m| m == key)) {
            continue;
        }
        let batch = batch_override.unwrap_or(batch);
        let w = Weights::random(&model, &mut rng);
        // Batch-norms are folded into their convolutions (exact).
        let (model, w) = model.fold_batchnorm(&w)?;
        let model = model.permute_relu_maxpool();
        let x: Vec<f32> = (0..batch * model.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        let float = forward_float(&model, &w, &x, batch)?;
        let lan = private_inference(&model, &w, &x, batch, &cfg, None)?;
        let wan_s = if no_wan {
            None
        } else {
            Some(private_inference(&model, &w, &x, batch, &cfg, Some(wan))?.seconds)
        };
        let classes = lan.output.len() / batch;
        let agree = (0..batch)
            .filter(|i| {
                argmax(&lan.output[i * classes..(i + 1) * classes])
                    == argmax(&float[i * classes..(i + 1) * classes])
            })
            .count();
        let mb = lan.stats.bytes_sent as f64 / 1e6;
        let row = json!({
            "model": model.name, "dataset": dataset, "batch": batch,
            "lan_s": lan.seconds, "wan_s": wan_s, "keygen_s": lan.keygen_seconds,
            "online_mb": mb, "rounds": lan.stats.rounds,
            "key_mb_per_party": lan.key_bytes_per_party as f64 / 1e6,
            "argmax_agreement": agree as f64 / batch as f64,
            "lan_s_per_image": lan.seconds / batch as f64,
            "online_mb_per_image": mb / batch as f64,
        });
        if !json_out {
            println!(
                "{:<22} {:<8} batch {:>4}  LAN {:>7.2} s ({:.4} s/img, keygen {:.2} s)  WAN {:>8}  {:>8.2} MB ({:.3} MB/img)  {:>3} rounds  keys {:>8.1} MB/party  agreement {}/{}",
                model.name,
                dataset,
                batch,
                lan.seconds,
                lan.seconds / batch as f64,
                lan.keygen_seconds,
                wan_s.map_or("-".to_string(), |s| format!("{s:.2} s")),
                mb,
                mb / batch as f64,
                lan.stats.rounds,
                lan.key_bytes_per_party as f64 / 1e6,
                agree,
                batch
            );
        }
        rows.push(row);
    }
    if json_out {
        println!("{}", serde_json::Value::Array(rows));
    }
    Ok(())
}
