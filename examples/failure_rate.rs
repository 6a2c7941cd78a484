//! Failure-rate run: many random in-bound inputs through the comparison,
//! ReLU, max-pool and truncation gates, and the small-key variant's ReLU
//! and fused truncation + ReLU (both parties on threads, in-memory
//! transport), counting every output that differs from the cleartext result.
//! The gates are exact inside their window, so the expected count is zero
//! (ARIANN's comparison fails about once in 4 million).
//!
//! ```text
//! cargo run --release --example failure_rate                      # 10^7 per gate
//! cargo run --release --example failure_rate -- --n 1000000 --json
//! ```
//! Runs in batches of `--batch` elements (default 10^6) to bound key memory.
//! Exits with status 1 if any output is wrong (CI runs a small instance).

use ariann::mpc::gates::cmp::{DreluKey, ReluKey};
use ariann::mpc::gates::pool::{MaxPoolKey, PoolShape};
use ariann::mpc::gates::small::{ReluSmallKey, TruncReluKey};
use ariann::mpc::gates::trunc::TruncKey;
use ariann::mpc::run_two_party;
use ariann::ring::Ring;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::time::Instant;

fn arg(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|v: &usize| *v > 0)
            .ok_or(format!("{name} needs a positive integer")),
    }
}

fn shares(xs: &[i64], rng: &mut ChaCha12Rng) -> (Vec<u64>, Vec<u64>) {
    let a: Vec<u64> = xs.iter().map(|_| rng.random()).collect();
    let b = xs
        .iter()
        .zip(&a)
        .map(|(x, a)| (*x as u64).wrapping_sub(*a))
        .collect();
    (a, b)
}

fn add(a: &[u64], b: &[u64]) -> Vec<u64> {
    a.iter().zip(b).map(|(x, y)| x.wadd(*y)).collect()
}

/// Random values in the signed `k`-bit window, a few of them on its edges.
fn inputs(m: usize, k: u32, rng: &mut ChaCha12Rng) -> Vec<i64> {
    let half = 1i64 << (k - 1);
    (0..m)
        .map(|i| match i % 1000 {
            0 => -half,
            1 => half - 1,
            2 => 0,
            3 => -1,
            _ => rng.random_range(-half..half),
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = arg(&args, "--n", 10_000_000)?;
    let batch = arg(&args, "--batch", 1_000_000)?;
    let json_out = args.iter().any(|a| a == "--json");
    let mut rng = ChaCha12Rng::seed_from_u64(0xFA11);
    let k = 32u32;
    let mut results = Vec::new();
    let mut total_errors = 0usize;

    for gate in [
        "comparison",
        "relu",
        "truncation",
        "maxpool2x2",
        "relu_small",
        "trunc_relu",
    ] {
        let t = Instant::now();
        let (mut done, mut errors, mut checked) = (0usize, 0usize, 0usize);
        while done < n {
            let m = batch.min(n - done);
            match gate {
                "comparison" => {
                    let xs = inputs(m, k, &mut rng);
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = DreluKey::<u64>::generate(k, m, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let d = add(&a?, &b?);
                    errors += xs
                        .iter()
                        .zip(&d)
                        .filter(|(x, d)| **d != u64::from(**x >= 0))
                        .count();
                    checked += d.len();
                }
                "relu" => {
                    let xs = inputs(m, k, &mut rng);
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = ReluKey::<u64>::generate(k, m, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let y = add(&a?.relu, &b?.relu);
                    errors += xs
                        .iter()
                        .zip(&y)
                        .filter(|(x, y)| **y != (**x).max(0) as u64)
                        .count();
                    checked += y.len();
                }
                "truncation" => {
                    // Products of two 16-fractional-bit values: 32 fractional bits, |x| < 2^47.
                    let xs = inputs(m, 48, &mut rng);
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = TruncKey::<u64>::generate(16, 48, m, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let y = add(&a?, &b?);
                    errors += xs
                        .iter()
                        .zip(&y)
                        .filter(|(x, y)| **y != (**x >> 16) as u64)
                        .count();
                    checked += y.len();
                }
                "relu_small" => {
                    let xs = inputs(m, k, &mut rng);
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = ReluSmallKey::<u64>::generate(k, m, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let (a, b) = (a?, b?);
                    let (y, d) = (add(&a.relu, &b.relu), add(&a.drelu, &b.drelu));
                    errors += xs
                        .iter()
                        .zip(y.iter().zip(&d))
                        .filter(|(x, (y, d))| {
                            **y != (**x).max(0) as u64 || **d != u64::from(**x >= 0)
                        })
                        .count();
                    checked += y.len();
                }
                "trunc_relu" => {
                    // Untruncated products (32 fractional bits) whose truncation
                    // by f = 16 lies in the open k-bit window: x in (-2^47, 2^47)
                    // with x >> 16 > -2^31.
                    let xs: Vec<i64> = inputs(m, 48, &mut rng)
                        .into_iter()
                        .map(|x| x.max(-(1i64 << 47) + (1 << 16)))
                        .collect();
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = TruncReluKey::<u64>::generate(16, k, m, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let y = add(&a?, &b?);
                    errors += xs
                        .iter()
                        .zip(&y)
                        .filter(|(x, y)| **y != (**x >> 16).max(0) as u64)
                        .count();
                    checked += y.len();
                }
                _ => {
                    // 2x2 stride-2 pooling over (m/4) windows; values in the window/2 so
                    // that differences stay in the k-bit window.
                    let side = 2 * ((m / 4) as f64).sqrt().max(1.0) as usize;
                    let s = PoolShape {
                        n: 1,
                        c: 1,
                        h: side,
                        w: side,
                        k: 2,
                        stride: 2,
                        pad: 0,
                    };
                    let xs = inputs(side * side, k - 1, &mut rng);
                    let (x0, x1) = shares(&xs, &mut rng);
                    let (k0, k1) = MaxPoolKey::<u64>::generate(s, k, &mut rng)?;
                    let (a, b) = run_two_party(|t| k0.eval(t, &x0), |t| k1.eval(t, &x1));
                    let y = add(&a?.max, &b?.max);
                    let want = s.windows()?;
                    errors += want
                        .iter()
                        .zip(&y)
                        .filter(|(w, y)| **y != w.iter().map(|i| xs[*i]).max().unwrap_or(0) as u64)
                        .count();
                    checked += y.len();
                }
            }
            done += m;
        }
        results.push(json!({"gate": gate, "outputs_checked": checked, "errors": errors, "seconds": t.elapsed().as_secs_f64()}));
        if !json_out {
            println!(
                "{gate:<12} {checked:>10} outputs checked  {errors} errors  ({:.1} s)",
                t.elapsed().as_secs_f64()
            );
        }
        total_errors += errors;
    }
    if json_out {
        println!("{}", serde_json::Value::Array(results));
    }
    if total_errors > 0 {
        eprintln!("{total_errors} wrong outputs");
        std::process::exit(1);
    }
    Ok(())
}
