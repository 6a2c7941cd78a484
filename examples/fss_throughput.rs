//! FSS throughput and key sizes: DCF and DPF key generation and evaluation for
//! n in {16, 32, 64} and payloads of 1, 32, 64 and 128 (pair) bits.
//!
//! ```text
//! cargo run --release --example fss_throughput            # readable table
//! cargo run --release --example fss_throughput -- --json  # one JSON object
//! cargo run --release --example fss_throughput -- --keys 65536 --n 32
//! ```
//!
//! Each figure is the best of `--reps` timed runs over a batch of `--keys`
//! random keys (one evaluation point per key). "1t" runs on a one-thread rayon
//! pool, "all" on the global pool (every core).

use ariann::fss::{Dcf, Dpf};
use ariann::fss::{FssKeys, Payload, Scheme, TreeParams, Z2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use serde_json::json;
use std::time::Instant;

struct Args {
    json: bool,
    keys: usize,
    reps: usize,
    ns: Vec<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        json: false,
        keys: 1 << 16,
        reps: 7,
        ns: vec![16, 32, 64],
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--json" => a.json = true,
            "--keys" => {
                a.keys = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|k| *k > 0)
                    .ok_or("--keys needs a positive integer")?
            }
            "--reps" => {
                a.reps = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|k| *k > 0)
                    .ok_or("--reps needs a positive integer")?
            }
            "--n" => {
                a.ns = vec![
                    it.next()
                        .and_then(|v| v.parse().ok())
                        .filter(|n| (1..=64).contains(n))
                        .ok_or("--n needs an integer in 1..=64")?,
                ]
            }
            "-h" | "--help" => {
                return Err(
                    "usage: fss_throughput [--json] [--keys N] [--reps R] [--n BITS]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    Ok(a)
}

/// Best-of-`reps` wall time of `f`, in seconds.
fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

struct Row {
    scheme: &'static str,
    n: u32,
    payload_bits: u32,
    nu: u32,
    key_bytes: usize,
    gen_1t: f64,
    gen_all: f64,
    eval_1t: f64,
    eval_all: f64,
}

fn measure<S: Scheme, P: Payload>(
    scheme: &'static str,
    n: u32,
    args: &Args,
    one: &rayon::ThreadPool,
) -> Row {
    let mut rng = ChaCha12Rng::seed_from_u64(7);
    let params = TreeParams::new::<P>(n).expect("n in 1..=64");
    let mask = params.domain_mask();
    let alphas: Vec<u64> = (0..args.keys).map(|_| rng.random::<u64>() & mask).collect();
    let xs: Vec<u64> = (0..args.keys).map(|_| rng.random::<u64>() & mask).collect();
    let betas: Vec<P> = (0..args.keys)
        .map(|_| P::from_block(rng.random(), 0))
        .collect();
    let mut keys = None;
    let gen_1t = best_of(args.reps, || {
        keys = Some(one.install(|| {
            FssKeys::<S, P>::generate(params, &alphas, &betas, &mut rng).expect("valid inputs")
        }));
    });
    let gen_all = best_of(args.reps, || {
        keys = Some(
            FssKeys::<S, P>::generate(params, &alphas, &betas, &mut rng).expect("valid inputs"),
        );
    });
    let (k0, k1) = keys.expect("generated above");
    let mut out = vec![P::default(); args.keys];
    let eval_1t = best_of(args.reps, || {
        k0.eval_seq(&xs, &mut out).expect("valid inputs");
    });
    let eval_all = best_of(args.reps, || {
        k0.eval(&xs, &mut out).expect("valid inputs");
    });
    // Sanity: the measured keys are correct.
    let mut out1 = vec![P::default(); args.keys];
    k1.eval(&xs, &mut out1).expect("valid inputs");
    let s = S::KIND;
    for i in (0..args.keys).step_by(997) {
        let want = ariann::fss::reference::cleartext(s, params, alphas[i], betas[i], xs[i]);
        assert_eq!(out[i].add(out1[i]), want, "wrong reconstruction");
    }
    let k = args.keys as f64;
    Row {
        scheme,
        n,
        payload_bits: P::BITS,
        nu: params.nu(),
        key_bytes: k0.key_bytes(),
        gen_1t: k / gen_1t,
        gen_all: k / gen_all,
        eval_1t: k / eval_1t,
        eval_all: k / eval_all,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    let mut rows = Vec::new();
    for &n in &args.ns {
        rows.push(measure::<Dcf, Z2>("dcf", n, &args, &one));
        rows.push(measure::<Dcf, u32>("dcf", n, &args, &one));
        rows.push(measure::<Dcf, u64>("dcf", n, &args, &one));
        rows.push(measure::<Dcf, [u64; 2]>("dcf", n, &args, &one));
        rows.push(measure::<Dpf, Z2>("dpf", n, &args, &one));
        rows.push(measure::<Dpf, u32>("dpf", n, &args, &one));
        rows.push(measure::<Dpf, u64>("dpf", n, &args, &one));
        rows.push(measure::<Dpf, [u64; 2]>("dpf", n, &args, &one));
    }
    if args.json {
        let obj = |r: &Row| {
            json!({
                "n": r.n, "payload_bits": r.payload_bits, "nu": r.nu, "key_bytes": r.key_bytes,
                "gen_per_s_1t": r.gen_1t.round(), "gen_per_s_all": r.gen_all.round(),
                "eval_per_s_1t": r.eval_1t.round(), "eval_per_s_all": r.eval_all.round(),
            })
        };
        let pick = |s: &str| {
            rows.iter()
                .filter(|r| r.scheme == s)
                .map(obj)
                .collect::<Vec<_>>()
        };
        let v = json!({
            "keys_per_batch": args.keys,
            "threads_all": rayon::current_num_threads(),
            "dcf": pick("dcf"),
            "dpf": pick("dpf"),
        });
        println!("{v}");
    } else {
        println!(
            "FSS throughput: {} keys per batch, best of {}, {} threads for 'all'",
            args.keys,
            args.reps,
            rayon::current_num_threads()
        );
        println!(
            "{:<6} {:>3} {:>8} {:>3} {:>10} {:>12} {:>12} {:>12} {:>12}",
            "scheme",
            "n",
            "payload",
            "nu",
            "key bytes",
            "gen/s 1t",
            "gen/s all",
            "eval/s 1t",
            "eval/s all"
        );
        for r in &rows {
            println!(
                "{:<6} {:>3} {:>8} {:>3} {:>10} {:>11.2}M {:>11.2}M {:>11.2}M {:>11.2}M",
                r.scheme,
                r.n,
                format!("{}b", r.payload_bits),
                r.nu,
                r.key_bytes,
                r.gen_1t / 1e6,
                r.gen_all / 1e6,
                r.eval_1t / 1e6,
                r.eval_all / 1e6
            );
        }
    }
}
