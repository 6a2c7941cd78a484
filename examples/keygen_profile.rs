//! Where the dealer's time goes: generates every bundle of a zoo model's
//! plan and sums the (measured) generation time per gate kind, next to the
//! key bytes per kind predicted from the gate descriptions
//! (`GateDesc::cost`, equal to the generated keys' `key_bytes`).
//!
//! ```text
//! cargo run --release --example keygen_profile -- resnet18 1
//! ```

use ariann::mpc::{GateDesc, plan_cost};
use ariann::nn::{Config, plan, zoo};
use std::collections::BTreeMap;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("resnet18", String::as_str);
    let batch: usize = args.get(1).map_or(Ok(1), |b| b.parse())?;
    let (model, _, _) = zoo::by_name(name).ok_or("unknown model")?;
    // As the zoo runs it: batch-norms folded (random weights), ReLU and
    // max-pool permuted.
    let w = ariann::nn::Weights::random(&model, &mut rand::rng());
    let (model, _) = model.fold_batchnorm(&w)?;
    let model = model.permute_relu_maxpool();
    let cfg = Config {
        k_cmp: 24,
        ..Config::default()
    };
    let p = plan(&model, batch, &cfg)?;
    let cost = plan_cost(&p.gates, p.ring_bits)?;
    let mut per: BTreeMap<&str, (f64, u64, usize, usize)> = BTreeMap::new();
    let mut stream = p.bundles_from_seed::<u64>([1; 32])?;
    let total = Instant::now();
    for (gate, c) in p.gates.iter().zip(&cost.gates) {
        let t = Instant::now();
        stream.next().ok_or("plan ended early")??;
        let elems = match gate {
            GateDesc::Relu { m, .. } | GateDesc::Trunc { m, .. } => *m,
            GateDesc::MaxPool { shape, .. } => shape.n * shape.c,
            _ => 0,
        };
        let kind = match gate {
            GateDesc::Relu { .. } => "relu",
            GateDesc::Trunc { .. } => "trunc",
            GateDesc::Triple(_) => "triple",
            GateDesc::MaxPool { .. } => "maxpool",
            _ => "other",
        };
        let e = per.entry(kind).or_default();
        e.0 += t.elapsed().as_secs_f64();
        e.1 += c.key_bytes;
        e.2 += 1;
        e.3 += elems;
    }
    println!(
        "{name} batch {batch}: {:.2} s",
        total.elapsed().as_secs_f64()
    );
    println!(
        "predicted: {} rounds, {:.1} MB online, {:.1} MB keys/party, {:.1} MB of encoded bundles/party",
        cost.total.rounds,
        cost.total.bytes_sent as f64 / 1e6,
        cost.total.key_bytes as f64 / 1e6,
        cost.total.encoded_bytes as f64 / 1e6
    );
    for (k, (s, b, n, m)) in per {
        println!(
            "{k:<8} {n:>4} bundles {m:>9} elements (planes for max-pool) {s:>7.2} s {:>9.1} MB/party",
            b as f64 / 1e6
        );
    }
    Ok(())
}
