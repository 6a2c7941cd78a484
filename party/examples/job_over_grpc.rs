//! The same private job over the in-memory transport and over gRPC on
//! loopback (plain and mutual TLS is measured by `ariann-net`'s
//! `net_overhead`), and over gRPC shaped like a WAN: the online phase only
//! (keys made ahead, in memory), both parties on threads of this process.
//!
//! ```text
//! cargo run --release -p ariann-party --example job_over_grpc                 # network2, batch 128
//! cargo run --release -p ariann-party --example job_over_grpc -- --model lenet --batch 32 --json
//! ```
//!
//! Reports per transport: seconds, rounds, MB sent per party, and for gRPC
//! the overhead against memory per round and per MB.

use ariann_fss::Party;
use ariann_mpc::{MemTransport, VecSource, run_two_party};
use ariann_net::{GrpcTransport, LinkSecret, Listener, NetConfig, WanShape};
use ariann_nn::{Config, Weights, zoo};
use ariann_party::{Asset, Job, Outcome, run_job};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::time::Duration;

type Keys = (VecSource<u64>, VecSource<u64>);

fn keys(job: &Job) -> Result<Keys, Box<dyn std::error::Error>> {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for pair in job.plan()?.bundles_from_os::<u64>()? {
        let (x, y) = pair?;
        a.push(x);
        b.push(y);
    }
    Ok((VecSource::new(a), VecSource::new(b)))
}

fn over_grpc(
    job: &Job,
    assets: (&Asset, &Asset),
    keys: Keys,
    wan: Option<WanShape>,
) -> Result<Outcome, Box<dyn std::error::Error>> {
    let (mut k0, mut k1) = keys;
    // The job's link secret (a dealer delivers it with the keys).
    let secret = LinkSecret::from_bytes(rand::random());
    let mut c0 = NetConfig::new(Party::P0, b"job-over-grpc".to_vec())
        .link_secret(secret.clone())
        .listen("127.0.0.1:0".parse()?)
        .exchange_timeout(Duration::from_secs(600));
    if let Some(w) = wan {
        c0 = c0.wan(w);
    }
    let listener = Listener::bind(c0.clone())?;
    let mut c1 = NetConfig::new(Party::P1, b"job-over-grpc".to_vec())
        .link_secret(secret)
        .peer(listener.local_addr().to_string())
        .exchange_timeout(Duration::from_secs(600));
    if let Some(w) = wan {
        c1 = c1.wan(w);
    }
    let (o0, o1) = std::thread::scope(|s| {
        let h0 = s.spawn(|| -> Result<Outcome, String> {
            let mut t = listener.accept().map_err(|e| e.to_string())?;
            run_job(job, assets.0, &mut t, &mut k0).map_err(|e| e.to_string())
        });
        let r1 = (|| -> Result<Outcome, String> {
            let mut t = GrpcTransport::connect(c1).map_err(|e| e.to_string())?;
            run_job(job, assets.1, &mut t, &mut k1).map_err(|e| e.to_string())
        })();
        (
            h0.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            r1,
        )
    });
    o0?;
    Ok(o1?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let name = value("--model").map_or("network2", String::as_str);
    let (model, _, default_batch) = zoo::by_name(name).ok_or("unknown model")?;
    let batch: usize = value("--batch").map_or(Ok(default_batch), |v| v.parse())?;
    let json = args.iter().any(|a| a == "--json");
    let mut rng = ChaCha12Rng::from_os_rng();
    let w = Weights::random(&model, &mut rng);
    let (model, w) = model.fold_batchnorm(&w)?;
    let model = model.permute_relu_maxpool();
    let x: Vec<f32> = (0..batch * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let job = Job {
        model,
        batch,
        batches: 1,
        cfg: Config {
            k_cmp: 24,
            ..Config::default()
        },
        output_to: Party::P1,
    };
    let (wa, xa) = (Asset::Weights(w), Asset::Input(x));

    let (mut k0, mut k1) = keys(&job)?;
    let (m0, m1) = run_two_party(
        |t: &mut MemTransport| run_job(&job, &wa, t, &mut k0),
        |t: &mut MemTransport| run_job(&job, &xa, t, &mut k1),
    );
    let (_, mem) = (m0?, m1?);
    let grpc = over_grpc(&job, (&wa, &xa), keys(&job)?, None)?;
    let wan: WanShape = "rtt=70ms,bw=40MB/s".parse()?;
    let shaped = over_grpc(&job, (&wa, &xa), keys(&job)?, Some(wan))?;
    assert_eq!(mem.output, grpc.output, "gRPC and memory disagree");

    let rounds = mem.stats.rounds as f64;
    let mb = mem.stats.bytes_sent as f64 / 1e6;
    let extra = grpc.seconds - mem.seconds;
    let rows = [("memory", &mem), ("grpc", &grpc), ("grpc+wan", &shaped)];
    if json {
        let v: Vec<_> = rows
            .iter()
            .map(|(t, o)| {
                serde_json::json!({"transport": t, "model": job.model.name, "batch": batch,
                    "seconds": o.seconds, "rounds": o.stats.rounds,
                    "mb_sent": o.stats.bytes_sent as f64 / 1e6})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!(
            "{} batch {batch}, online phase, both parties in this process:",
            job.model.name
        );
        for (t, o) in rows {
            println!(
                "  {t:<9} {:>8.3} s  {:>4} rounds  {:>8.2} MB sent per party",
                o.seconds,
                o.stats.rounds,
                o.stats.bytes_sent as f64 / 1e6
            );
        }
        println!(
            "  gRPC overhead: {:+.1} % ({:.3} ms per round if all charged to rounds, {:.2} ms per MB if all charged to bytes); WAN = {wan}",
            100.0 * extra / mem.seconds,
            1e3 * extra / rounds,
            1e3 * extra / mb
        );
    }
    Ok(())
}
