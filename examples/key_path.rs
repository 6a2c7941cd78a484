//! Where the time goes on the key path, stage by stage, for one zoo model:
//! the dealer's key generation, the bundle encoding (bundle format 2: no
//! SHA-256 of its own), a key file chunk's SHA-256, the party's decoding, key files
//! written and read back through `KeyFileSource`, and the gRPC stream of
//! `ariann-dealer serve` (a `KeyServer` on loopback and two
//! `DealerStreamSource`s in this process). Each stage prints its time and
//! MB/s of encoded keys per party (both parties' bytes for the stages that
//! handle both).
//!
//! ```text
//! cargo run --release --example key_path -- network1 1024
//! cargo run --release --example key_path -- lenet5 4 --dir /tmp/keys
//! ```
//!
//! `--dir DIR` puts the key files there (default: a temporary directory);
//! `--variant one-round|small-key` and `--k-cmp K` choose the plan as the
//! binaries' options of the same names do (default: `Config::default()`);
//! `--skip-files`, `--skip-stream` leave those stages out. Keys are random
//! (OS randomness); nothing secret is printed.

use ariann::dealer::auth::{DealerSigningKey, KeyTrust, LinkSecret};
use ariann::dealer::keyfile::{Expected, KeyFileSource, write_key_files};
use ariann::dealer::ledger::Ledger;
use ariann::fss::Party;
use ariann::mpc::secret::SecretBuf;
use ariann::mpc::{BundleTag, KeyBundle, Plan, PreprocessingSource};
use ariann::nn::{Config, Variant, plan, zoo};
use ariann_net::keys::{DealerConfig, DealerStreamSource, KeyJob, KeyServer, KeyServerConfig};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn mbs(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

fn line(stage: &str, secs: f64, bytes: u64, what: &str) {
    println!(
        "{stage:<34} {secs:>7.3} s  {:>8.1} MB/s  ({what})",
        mbs(bytes, secs)
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the binaries do: big key buffers reuse freed heap memory
    // (ariann_net::memory; ARIANN_MALLOC=system for glibc's defaults).
    ariann_net::memory::keep_freed_memory();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let valued = ["--dir", "--variant", "--k-cmp"];
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    // Positional arguments: neither an option nor an option's value.
    let pos: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| {
            !a.starts_with("--") && (*i == 0 || !valued.contains(&args[i - 1].as_str()))
        })
        .map(|(_, a)| a)
        .collect();
    let name = pos.first().map_or("network1", |s| s.as_str());
    let batch: usize = pos.get(1).map_or(Ok(128), |b| b.parse())?;
    let dir_arg = value("--dir").map(PathBuf::from);
    let mut cfg = Config::default();
    if let Some(v) = value("--variant") {
        cfg.variant = Variant::from_name(v).ok_or("--variant: one-round or small-key")?;
    }
    if let Some(k) = value("--k-cmp") {
        cfg.k_cmp = k.parse()?;
    }
    let skip_files = args.iter().any(|a| a == "--skip-files");
    let skip_stream = args.iter().any(|a| a == "--skip-stream");

    let (model, _, _) = zoo::by_name(name).ok_or("unknown model")?;
    // The plan `ariann-dealer keys/serve --model NAME --batch B` derives.
    let model = model.fold_batchnorm_architecture();
    let p: Plan = plan(&model, batch, &cfg)?;
    println!(
        "{name}, batch {batch}, {}, k_cmp {}: {} bundles per party; machine: {} threads",
        cfg.variant.name(),
        cfg.k_cmp,
        p.gates.len(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );

    // In memory, gate by gate (one gate's keys alive at a time).
    let (mut t_gen, mut t_enc, mut t_sha, mut t_dec) = (0.0, 0.0, 0.0, 0.0);
    let mut bytes = 0u64;
    let mut stream = p.bundles_from_os::<u64>()?;
    let mut buf = [SecretBuf::new(), SecretBuf::new()];
    loop {
        let t = Instant::now();
        let Some(pair) = stream.next() else { break };
        let (a, b) = pair?;
        t_gen += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for (bundle, out) in [&a, &b].into_iter().zip(buf.iter_mut()) {
            out.clear();
            bundle.encode_secret(out);
        }
        t_enc += t.elapsed().as_secs_f64();
        bytes += buf[0].len() as u64;
        drop((a, b));
        let t = Instant::now();
        for out in &buf {
            std::hint::black_box(Sha256::digest(&out[..]));
        }
        t_sha += t.elapsed().as_secs_f64();
        let t = Instant::now();
        for out in &buf {
            std::hint::black_box(KeyBundle::<u64>::decode(out)?);
        }
        t_dec += t.elapsed().as_secs_f64();
    }
    println!(
        "keys: {:.1} MB per party (encoded)\n\nstage (in process, both parties)       time       MB/s per party",
        bytes as f64 / 1e6
    );
    line(
        "dealer: generate (both parties)",
        t_gen,
        bytes,
        "rayon, all cores",
    );
    line(
        "dealer: encode (bundle format 2)",
        t_enc,
        bytes,
        "one thread",
    );
    line("key file: chunk SHA-256", t_sha, bytes, "one thread");
    line(
        "party: decode (bundle format 2)",
        t_dec,
        bytes,
        "one thread",
    );

    if !skip_files {
        let tmp;
        let dir = match &dir_arg {
            Some(d) => d.clone(),
            None => {
                tmp = std::env::temp_dir().join(format!("ariann-key-path-{}", std::process::id()));
                tmp.clone()
            }
        };
        std::fs::create_dir_all(&dir)?;
        // The dealer's signing key and the parties' trust: a fresh key and
        // ledger per run (the ledger in the key directory).
        let key = DealerSigningKey::generate()?;
        let state = dir.join("state");
        let trust = KeyTrust {
            dealer: key.public(),
            ledger: Ledger::open(&state)?,
        };
        let t = Instant::now();
        let summary = write_key_files::<u64>(&p, &dir, &key, |_, _| {})?;
        let w = t.elapsed().as_secs_f64();
        line(
            "key files: generate + write both",
            w,
            summary.bytes[0],
            "per party; x2 to the disk",
        );
        let t = Instant::now();
        for (i, party) in [Party::P0, Party::P1].into_iter().enumerate() {
            let expected = Expected {
                session: Some(summary.session),
                ..Expected::for_plan(party, &p)
            };
            let mut src = KeyFileSource::<u64>::open(&summary.paths[i], &expected, &trust)?;
            for (index, gate) in p.gates.iter().enumerate() {
                let tag = BundleTag {
                    index: index as u64,
                    gate: *gate,
                };
                std::hint::black_box(src.next_bundle(party, &tag)?);
            }
        }
        let r = t.elapsed().as_secs_f64();
        line(
            "key files: read + check + decode",
            r,
            2 * summary.bytes[0],
            "both files in turn, page cache warm",
        );
        for path in &summary.paths {
            let _ = std::fs::remove_file(path);
            let _ = std::fs::remove_file(ariann::dealer::keyfile::journal_path(path));
        }
        let _ = std::fs::remove_dir_all(&state);
        if dir_arg.is_none() {
            let _ = std::fs::remove_dir(&dir);
        }
    }

    if !skip_stream {
        let key = DealerSigningKey::generate()?;
        let state =
            std::env::temp_dir().join(format!("ariann-key-path-state-{}", std::process::id()));
        let trust = KeyTrust {
            dealer: key.public(),
            ledger: Ledger::open(&state)?,
        };
        let job = KeyJob {
            session: ariann::dealer::keyfile::SessionId::random()?.0,
            plan_hash: p.hash(),
            ring_bits: 64,
            bundles: p.gates.len() as u64,
            link_secret: LinkSecret::random()?,
        };
        let server = KeyServer::bind(KeyServerConfig::new("127.0.0.1:0".parse()?), job, &key)?;
        let addr = server.local_addr().to_string();
        let t = Instant::now();
        let report = std::thread::scope(|sc| -> Result<_, String> {
            let mut parties = Vec::new();
            for party in [Party::P0, Party::P1] {
                let addr = addr.clone();
                let p = &p;
                let trust = trust.clone();
                parties.push(sc.spawn(move || -> Result<(), String> {
                    let mut cfg =
                        DealerConfig::new(addr, party, p.hash(), p.gates.len() as u64, trust);
                    cfg.recv_timeout = Duration::from_secs(600);
                    let mut src =
                        DealerStreamSource::<u64>::connect(cfg).map_err(|e| e.to_string())?;
                    for (index, gate) in p.gates.iter().enumerate() {
                        let tag = BundleTag {
                            index: index as u64,
                            gate: *gate,
                        };
                        std::hint::black_box(
                            src.next_bundle(party, &tag).map_err(|e| e.to_string())?,
                        );
                    }
                    Ok(())
                }));
            }
            let report = server
                .serve(p.bundles_from_os::<u64>().map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
            for h in parties {
                h.join()
                    .map_err(|_| "party thread panicked".to_string())??;
            }
            Ok(report)
        })?;
        let s = t.elapsed().as_secs_f64();
        let _ = std::fs::remove_dir_all(&state);
        line(
            "stream: generate + gRPC + decode",
            s,
            report.bytes[0],
            "per party, both at once, loopback",
        );
    }
    Ok(())
}
