//! Wall-clock figures of the gate engine on this machine, both parties in
//! one process on threads over the in-memory transport:
//!
//! - ReLU on 10^6 elements (k = 32 window): dealer keygen, then online time
//!   per party (mask, open, finish);
//! - matrix products 128x784 by 784x128 and 32x4096 by 4096x4096 (matrix
//!   triples; the latter is VGG16's `classifier.3` at batch 32);
//! - 3x3 convolution 64 -> 64 channels on 32x32, batch 32 (convolution triple).
//!
//! ```text
//! cargo run --release --example gate_bench            # table
//! cargo run --release --example gate_bench -- --json  # JSON object
//! cargo run --release --example gate_bench -- --relu-only --m 100000
//! ```
//! Online times include each party's local work and the exchange; both
//! parties share the machine's two cores.

use ariann::mpc::gates::beaver::{Bilinear, TripleKey};
use ariann::mpc::gates::cmp::ReluKey;
use ariann::mpc::{Transport, run_two_party};
use ariann::ring::{Conv2dShape, RingTensor, share};
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::time::Instant;

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let json_out = args.iter().any(|a| a == "--json");
    let relu_only = args.iter().any(|a| a == "--relu-only");
    let m: usize = args
        .iter()
        .position(|a| a == "--m")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let mut rng = ChaCha12Rng::seed_from_u64(3);
    let mut out = serde_json::Map::new();

    // ReLU.
    let t = Instant::now();
    let (k0, k1) = ReluKey::<u64>::generate(32, m, &mut rng)?;
    let keygen = secs(t);
    let x = RingTensor::<u64>::zeros(&[m]);
    let (x0, x1) = share(&x, &mut rng);
    let ((t0, s0), (t1, _)) = run_two_party(
        |tr| {
            let t = Instant::now();
            let r = k0.eval(tr, x0.as_slice()).map(|_| ());
            (r.map(|_| secs(t)), tr.stats())
        },
        |tr| {
            let t = Instant::now();
            let r = k1.eval(tr, x1.as_slice()).map(|_| ());
            (r.map(|_| secs(t)), tr.stats())
        },
    );
    let (t0, t1) = (t0?, t1?);
    out.insert(
        "relu".into(),
        json!({"m": m, "k": 32, "keygen_s": keygen, "online_s_party0": t0, "online_s_party1": t1,
               "rounds": s0.rounds, "bytes_per_party": s0.bytes_sent,
               "key_bytes_per_party": k0.key_bytes()}),
    );
    drop((k0, k1));

    if !relu_only {
        for (name, map) in [
            (
                "matmul_128x784x128",
                Bilinear::MatMul {
                    m: 128,
                    k: 784,
                    n: 128,
                },
            ),
            (
                // VGG16 (CIFAR-10)'s classifier.3 at batch 32: few rows, a
                // large weight (16.8 M elements).
                "matmul_32x4096x4096",
                Bilinear::MatMul {
                    m: 32,
                    k: 4096,
                    n: 4096,
                },
            ),
            (
                "conv3x3_64to64_32x32_b32",
                Bilinear::Conv2d(Conv2dShape {
                    n: 32,
                    c: 64,
                    h: 32,
                    w: 32,
                    oc: 64,
                    kh: 3,
                    kw: 3,
                    stride: 1,
                    pad: 1,
                }),
            ),
        ] {
            let t = Instant::now();
            let (k0, k1) = TripleKey::<u64>::generate(map, &mut rng)?;
            let keygen = secs(t);
            let (sx, sy, _) = map.shapes()?;
            let (x0, x1) = share(&RingTensor::<u64>::zeros(&sx), &mut rng);
            let (y0, y1) = share(&RingTensor::<u64>::zeros(&sy), &mut rng);
            let ((t0, s0), (t1, _)) = run_two_party(
                |tr| {
                    let t = Instant::now();
                    let r = k0.eval(tr, &x0, &y0).map(|_| ());
                    (r.map(|_| secs(t)), tr.stats())
                },
                |tr| {
                    let t = Instant::now();
                    let r = k1.eval(tr, &x1, &y1).map(|_| ());
                    (r.map(|_| secs(t)), tr.stats())
                },
            );
            out.insert(
                name.into(),
                json!({"keygen_s": keygen, "online_s_party0": t0?, "online_s_party1": t1?,
                       "rounds": s0.rounds, "bytes_per_party": s0.bytes_sent,
                       "key_bytes_per_party": k0.key_bytes()}),
            );
        }
    }
    out.insert("threads".into(), json!(rayon::current_num_threads()));
    let v = serde_json::Value::Object(out);
    if json_out {
        println!("{v}");
    } else {
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
