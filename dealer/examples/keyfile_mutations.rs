//! A counted mutation run against the signed key file format (v3): writes
//! one job's key files, then opens and drains party 0's file after each of
//! `--n` random mutations (bit flips, byte runs overwritten, ranges cut or
//! duplicated, chunks swapped with the other party's file or another
//! session's, a file signed by another dealer key, truncations) and counts
//! what happened: refused (with which error), accepted (a **wrong accept**
//! unless the mutated bytes equal the original), panics, hangs (no answer
//! within 10 s). Exits non-zero on any panic, hang or wrong accept.
//!
//! `cargo run --release -p ariann-dealer --example keyfile_mutations -- --n 10000`

use ariann_dealer::auth::{DealerSigningKey, KeyTrust};
use ariann_dealer::keyfile::{Expected, KeyFileSource, journal_path, write_key_files};
use ariann_dealer::ledger::Ledger;
use ariann_dealer::{GateDesc, Plan};
use ariann_fss::Party;
use ariann_mpc::gates::beaver::Bilinear;
use ariann_mpc::{BundleTag, PreprocessingSource};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn plan() -> Plan {
    Plan::new(
        64,
        vec![
            GateDesc::Relu { m: 5, k: 16 },
            GateDesc::Triple(Bilinear::Mul { len: 6 }),
            GateDesc::Trunc { m: 4, f: 8, k: 24 },
            GateDesc::Relu { m: 3, k: 20 },
        ],
    )
}

/// Opens `path` as party 0's keys of `p` and hands out every bundle; the
/// error's text (its kind) on refusal.
fn open_and_drain(path: &Path, p: &Plan, trust: &KeyTrust) -> Result<(), String> {
    let e = Expected {
        party: Party::P0,
        plan_hash: p.hash(),
        session: None,
        bundles: p.gates.len() as u64,
    };
    let mut src = KeyFileSource::<u64>::open(path, &e, trust).map_err(|e| e.to_string())?;
    for (i, gate) in p.gates.iter().enumerate() {
        src.next_bundle(
            Party::P0,
            &BundleTag {
                index: i as u64,
                gate: *gate,
            },
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A short name for an error message (its first words).
fn kind(msg: &str) -> String {
    let m = msg.rsplit(": ").next().unwrap_or(msg);
    m.split_whitespace()
        .take(5)
        .map(|w| {
            if w.chars().any(|c| c.is_ascii_digit()) {
                "#"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn mutate(
    good: &[u8],
    other: &[u8],
    foreign: &[u8],
    rng: &mut ChaCha8Rng,
) -> (Vec<u8>, &'static str) {
    let mut b = good.to_vec();
    let n = b.len();
    let at = rng.random_range(0..n);
    match rng.random_range(0..8) {
        0 => {
            b[at] ^= 1 << rng.random_range(0..8);
            (b, "bit flip")
        }
        1 => {
            for _ in 0..rng.random_range(2..9) {
                let i = rng.random_range(0..n);
                b[i] ^= 1 << rng.random_range(0..8);
            }
            (b, "several flips")
        }
        2 => {
            let end = (at + rng.random_range(1..64)).min(n);
            rng.fill(&mut b[at..end]);
            (b, "byte run")
        }
        3 => {
            b.truncate(at);
            (b, "cut")
        }
        4 => {
            let end = (at + rng.random_range(1..200)).min(n);
            b.drain(at..end);
            (b, "range removed")
        }
        5 => {
            let end = (at + rng.random_range(1..200)).min(n);
            let copy = b[at..end].to_vec();
            b.splice(at..at, copy);
            (b, "range duplicated")
        }
        6 => {
            // Splice a same-sized range from party 1's file.
            let len = rng
                .random_range(1..400)
                .min(n - at)
                .min(other.len().saturating_sub(at));
            b[at..at + len].copy_from_slice(&other[at..at + len]);
            (b, "party 1's bytes")
        }
        _ => {
            // A range from another dealer's (another key's) file of the same plan.
            let len = rng
                .random_range(1..2000)
                .min(n - at)
                .min(foreign.len().saturating_sub(at));
            b[at..at + len].copy_from_slice(&foreign[at..at + len]);
            (b, "another dealer's bytes")
        }
    }
}

fn main() {
    let mut n = 2000usize;
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--n") {
        n = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(n);
    }
    let p = plan();
    let dir = tempfile::tempdir().expect("tempdir");
    let key = DealerSigningKey::generate().expect("OS randomness");
    let other_key = DealerSigningKey::generate().expect("OS randomness");
    for d in ["ours", "foreign"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let ours =
        write_key_files::<u64>(&p, &dir.path().join("ours"), &key, |_, _| {}).expect("write");
    let theirs = write_key_files::<u64>(&p, &dir.path().join("foreign"), &other_key, |_, _| {})
        .expect("write");
    let good = std::fs::read(&ours.paths[0]).expect("read");
    let other = std::fs::read(&ours.paths[1]).expect("read");
    let foreign = std::fs::read(&theirs.paths[0]).expect("read");
    let path = dir.path().join("mutant.keys");
    let state = dir.path().join("state");
    let trust = |_: ()| KeyTrust {
        dealer: key.public(),
        ledger: Ledger::open(&state).expect("ledger"),
    };
    // The intact file is accepted.
    std::fs::write(&path, &good).expect("write");
    open_and_drain(&path, &p, &trust(())).expect("the intact file is accepted");

    let mut rng = ChaCha8Rng::seed_from_u64(0x6b65_7973);
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_mutation: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut unchanged, mut accepted_same, mut wrong, mut panics, mut hangs) = (0, 0, 0, 0, 0);
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    for _ in 0..n {
        let (bad, what) = mutate(&good, &other, &foreign, &mut rng);
        *by_mutation.entry(what).or_default() += 1;
        if bad == good {
            unchanged += 1;
        }
        std::fs::write(&path, &bad).expect("write");
        let _ = std::fs::remove_file(journal_path(&path));
        let _ = std::fs::remove_dir_all(&state);
        let (tx, rx) = mpsc::channel();
        let (pp, pl, tr) = (path.clone(), p.clone(), trust(()));
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| open_and_drain(&pp, &pl, &tr));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Err(_) => hangs += 1,
            Ok(Err(_)) => panics += 1,
            Ok(Ok(Ok(()))) if bad == good => accepted_same += 1,
            Ok(Ok(Ok(()))) => {
                wrong += 1;
                eprintln!("wrong accept: {what}");
            }
            Ok(Ok(Err(e))) => *refused.entry(kind(&e)).or_default() += 1,
        }
    }
    std::panic::set_hook(hook);
    let total_refused: usize = refused.values().sum();
    println!(
        "{n} mutants of a {}-byte signed key file (format v3, {} bundles) in {:.1} s",
        good.len(),
        p.gates.len(),
        start.elapsed().as_secs_f64()
    );
    println!("mutations: {by_mutation:?}");
    println!(
        "refused {total_refused}, accepted unchanged {accepted_same} (of {unchanged} mutants equal to the original), wrong accepts {wrong}, panics {panics}, hangs {hangs}"
    );
    println!("refusals by message:");
    for (k, v) in &refused {
        println!("  {v:6}  {k}");
    }
    if wrong + panics + hangs > 0 {
        std::process::exit(1);
    }
}
