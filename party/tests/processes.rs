//! End to end with real processes on loopback: `ariann-dealer keys` writes
//! the key files, two `ariann-party` processes run a small CNN (conv,
//! max-pool, ReLU, linear) over gRPC, and the revealed output equals the
//! fixed-point cleartext run. Then the failures: each must end both
//! processes with a clear message and a non-zero exit within a deadline,
//! never a hang and never an output.
//!
//! The transport-level failures (another protocol version, garbage and
//! oversized frames, a share of the wrong length) are tested on the link
//! itself in `crates/net/tests/failures.rs`; keys exhausted mid-job in
//! `dealer/tests/keyfile.rs` (the dealer cannot write such a file).

mod common;
use common::{BATCH, Fixture, dealer_bin, party_bin, signing_args, trust_args, wait, wait_ready};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The fixture with key files for the job in `keys/`.
fn journal_of(k: &Path) -> std::path::PathBuf {
    ariann_dealer::keyfile::journal_path(k)
}

fn fixture() -> Fixture {
    let f = Fixture::new();
    f.keys("keys", BATCH);
    f
}

/// One party's command line with a key file; `extra` is appended.
fn party_cmd(f: &Fixture, id: u8, keys: &Path, extra: &[&str]) -> Command {
    let mut c = party_base(f, id);
    c.arg("--keys").arg(keys);
    c.args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// One party's command line with keys from the dealer at `dealer`.
fn party_cmd_dealer(f: &Fixture, id: u8, dealer: &str, extra: &[&str]) -> Command {
    let mut c = party_base(f, id);
    c.args(["--dealer", dealer]);
    c.args(extra).stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

/// One party's command line, keys aside.
fn party_base(f: &Fixture, id: u8) -> Command {
    let mut c = Command::new(party_bin());
    c.args(["--id", &id.to_string(), "--batch", &BATCH.to_string()])
        .args(trust_args(f.dir.path(), id))
        .args([
            "--output-to",
            "1",
            "--connect-timeout",
            "5",
            "--exchange-timeout",
            "10",
        ])
        .arg("--model-json")
        .arg(f.path("model.json"));
    if id == 0 {
        c.arg("--weights").arg(f.path("weights.safetensors"));
    } else {
        c.arg("--input")
            .arg(f.path("input.safetensors"))
            .arg("--output")
            .arg(f.path("out.json"));
    }
    c
}

/// Party 0 listening on a free port (its address read back from its ready
/// file), or `None` if it exited before binding.
fn start_p0(f: &Fixture, keys: &Path, extra: &[&str]) -> (Child, Option<String>) {
    start_p0_with(f, party_cmd(f, 0, keys, extra))
}

fn start_p0_with(f: &Fixture, mut cmd: Command) -> (Child, Option<String>) {
    let ready = f.path("ready");
    let _ = std::fs::remove_file(&ready);
    let child = cmd
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .spawn()
        .expect("spawn party 0");
    let (child, addr) = ready_addr(child, &ready);
    (child, addr)
}

/// Waits for `child` to write its address to `ready` (or to exit).
fn ready_addr(mut child: Child, ready: &Path) -> (Child, Option<String>) {
    let addr = wait_ready(&mut child, ready);
    (child, addr)
}

fn s(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

struct Run {
    p0: (ExitStatus, String),
    p1: (ExitStatus, String),
    output: Option<String>,
}

/// Runs both parties with the given key files and extra options.
fn run(f: &Fixture, k0: &Path, k1: &Path, extra0: &[&str], extra1: &[&str]) -> Run {
    let _ = std::fs::remove_file(f.path("out.json"));
    let (c0, addr) = start_p0(f, k0, extra0);
    // Without party 0, party 1 still runs (and must fail to connect).
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9".into());
    let c1 = party_cmd(f, 1, k1, extra1)
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let p1 = wait(c1, "party 1");
    let p0 = wait(c0, "party 0");
    Run {
        p0,
        p1,
        output: std::fs::read_to_string(f.path("out.json")).ok(),
    }
}

fn outputs(json: &str) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_str(json).expect("output JSON");
    v["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("number"))
        })
        .collect()
}

/// Both failed, with non-zero codes, messages containing `want` on the
/// party at fault, and no output anywhere.
fn assert_failed(r: &Run, fault: u8, code: i32, want: &str) {
    assert!(r.output.is_none(), "an output was written");
    let (at_fault, other) = if fault == 0 {
        (&r.p0, &r.p1)
    } else {
        (&r.p1, &r.p0)
    };
    assert_eq!(
        at_fault.0.code(),
        Some(code),
        "party {fault} exit code; stderr:\n{}",
        at_fault.1
    );
    assert!(
        at_fault.1.to_lowercase().contains(want),
        "party {fault} should say {want:?}; stderr:\n{}",
        at_fault.1
    );
    assert!(
        !other.0.success(),
        "the other party must fail too:\n{}",
        other.1
    );
    assert!(
        other.1.contains("error:"),
        "the other party explains:\n{}",
        other.1
    );
}

#[test]
fn two_processes_reveal_the_cleartext_result_and_keys_are_used_once() {
    let f = fixture();
    let (k0, k1) = (f.path("keys/party0.keys"), f.path("keys/party1.keys"));
    let r = run(&f, &k0, &k1, &[], &[]);
    assert!(r.p0.0.success(), "party 0:\n{}", r.p0.1);
    assert!(r.p1.0.success(), "party 1:\n{}", r.p1.1);
    let got = outputs(r.output.as_deref().expect("party 1 wrote the output"));
    assert_eq!(
        got,
        f.expected(),
        "revealed output != fixed-point cleartext"
    );
    // Keys and outputs are secrets: readable by their owner only.
    #[cfg(unix)]
    for p in [&k0, &k1, &f.path("out.json")] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }

    // The same key files again: refused before any traffic.
    let r = run(&f, &k0, &k1, &[], &[]);
    assert_failed(&r, 0, 3, "already used");
    assert_eq!(r.p1.0.code(), Some(3), "party 1 too:\n{}", r.p1.1);

    // Copies under other names (no journals): the host's ledger refuses them.
    let (c0, c1) = (f.path("copy0.keys"), f.path("copy1.keys"));
    std::fs::copy(&k0, &c0).expect("copy");
    std::fs::copy(&k1, &c1).expect("copy");
    let r = run(&f, &c0, &c1, &[], &[]);
    assert_failed(&r, 0, 3, "were already used on this host (ledger");
    assert!(
        r.p1.1.contains("were already used on this host (ledger"),
        "party 1 too:\n{}",
        r.p1.1
    );
}

#[test]
fn damaged_or_foreign_key_files_fail_clearly() {
    let f = fixture();
    let k1 = f.path("keys/party1.keys");
    let fresh = |name: &str| {
        f.keys(name, BATCH);
        (
            f.path(&format!("{name}/party0.keys")),
            f.path(&format!("{name}/party1.keys")),
        )
    };

    // Truncated: party 0 fails when it reaches the missing part.
    let (k0, k1a) = fresh("trunc");
    let len = std::fs::metadata(&k0).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&k0)
        .expect("open");
    file.set_len(len * 2 / 3).expect("truncate");
    let r = run(&f, &k0, &k1a, &[], &[]);
    assert_failed(&r, 0, 3, "truncated");

    // A flipped bit inside a chunk.
    let (k0, k1b) = fresh("flip");
    let mut bytes = std::fs::read(&k0).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    std::fs::write(&k0, bytes).expect("write");
    let r = run(&f, &k0, &k1b, &[], &[]);
    assert_failed(&r, 0, 3, "checksum");

    // Signed by another dealer key than the pinned one (a forger's).
    let (k0, k1f) = fresh("forged");
    let other = tempfile::tempdir().expect("tempdir");
    let st = Command::new(dealer_bin())
        .args(["keys", "--no-progress", "--batch", &BATCH.to_string()])
        .args(signing_args(other.path()))
        .arg("--model-json")
        .arg(f.path("model.json"))
        .arg("--out")
        .arg(other.path().join("k"))
        .stdout(Stdio::null())
        .status()
        .expect("run ariann-dealer");
    assert!(st.success());
    std::fs::copy(other.path().join("k/party0.keys"), &k0).expect("replace");
    let r = run(&f, &k0, &k1f, &[], &[]);
    assert_failed(&r, 0, 3, "this party pins dealer key");

    // No pinned dealer key at all: a usage error, nothing runs.
    let (k0, _) = fresh("unpinned");
    let out = Command::new(party_bin())
        .args([
            "--id",
            "0",
            "--batch",
            &BATCH.to_string(),
            "--output-to",
            "1",
        ])
        .args(["--listen", "127.0.0.1:0", "--model-json"])
        .arg(f.path("model.json"))
        .arg("--weights")
        .arg(f.path("weights.safetensors"))
        .arg("--keys")
        .arg(&k0)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--dealer-pubkey"), "{err}");
    assert!(!journal_of(&k0).exists(), "the key file was not opened");

    // The other party's file.
    let (_, k1c) = fresh("swap");
    let (_, k1d) = fresh("swap2");
    let r = run(&f, &k1c, &k1d, &[], &[]);
    assert_failed(&r, 0, 3, "party");

    // Keys of another plan (batch 2 instead of 3).
    f.keys("other-plan", 2);
    let r = run(&f, &f.path("other-plan/party0.keys"), &k1, &[], &[]);
    assert_failed(&r, 0, 3, "plan");

    // Keys of the same plan from two dealer runs: link secrets differ, the
    // link handshake refuses on both sides (party 0 at its deadline).
    let (k0e, _) = fresh("session-a");
    let (_, k1e) = fresh("session-b");
    let r = run(&f, &k0e, &k1e, &[], &[]);
    assert!(r.output.is_none());
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert_eq!(st.code(), Some(4), "party {p}:\n{err}");
        assert!(
            err.contains("dealer session") && err.contains("link secret"),
            "party {p} says why:\n{err}"
        );
    }

    // A stranger on the link (a party 1 of another job, then raw garbage)
    // does not end party 0's job: the real party 1 comes after it and the
    // job runs.
    let (k0g, k1g) = fresh("stranger-real");
    let (_, k1s) = fresh("stranger-other");
    let _ = std::fs::remove_file(f.path("out.json"));
    let (c0, addr) = start_p0(&f, &k0g, &[]);
    let addr = addr.expect("party 0 listens");
    let stranger = party_cmd(&f, 1, &k1s, &[])
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn the stranger");
    let (st, err) = wait(stranger, "the stranger");
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(
        err.contains("did not prove this job's link secret"),
        "{err}"
    );
    {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
        let _ = tcp.write_all(b"GET / HTTP/1.0\r\n\r\n garbage");
    }
    let real = party_cmd(&f, 1, &k1g, &[])
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let (s1, e1) = wait(real, "party 1");
    let (s0, e0) = wait(c0, "party 0");
    assert!(s1.success(), "party 1:\n{e1}");
    assert!(s0.success(), "party 0:\n{e0}");
    assert!(
        e0.contains("refused a caller"),
        "party 0 logs the stranger:\n{e0}"
    );
    let out = std::fs::read_to_string(f.path("out.json")).expect("output");
    assert_eq!(outputs(&out), f.expected());
}

#[test]
fn a_vanishing_peer_or_an_unauthenticated_one_fails_clearly() {
    let f = fixture();
    let k1 = f.path("keys/party1.keys");

    // Nobody listens: party 1 gives up after its connect deadline.
    let c1 = party_cmd(&f, 1, &k1, &[])
        .args(["--peer", "127.0.0.1:9"])
        .spawn()
        .expect("spawn");
    let (st, err) = wait(c1, "party 1");
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(std::fs::read(f.path("out.json")).is_err());

    // Party 0 killed once listening: party 1 fails (connect or mid-job).
    f.keys("kill", BATCH);
    let (mut c0, addr) = start_p0(&f, &f.path("kill/party0.keys"), &[]);
    let addr = addr.expect("party 0 bound");
    c0.kill().expect("kill party 0");
    let _ = c0.wait();
    let c1 = party_cmd(&f, 1, &f.path("kill/party1.keys"), &[])
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn");
    let (st, err) = wait(c1, "party 1");
    assert_eq!(st.code(), Some(4), "{err}");
    assert!(std::fs::read(f.path("out.json")).is_err());

    // Mutual TLS with pinned certificates works...
    let pem = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        let (c, k) = (
            f.path(&format!("{name}.crt")),
            f.path(&format!("{name}.key")),
        );
        std::fs::write(&c, ck.cert.pem()).expect("write");
        std::fs::write(&k, ck.signing_key.serialize_pem()).expect("write");
        (c.display().to_string(), k.display().to_string())
    };
    let (c0, key0) = pem("party0.test");
    let (c1, key1) = pem("party1.test");
    let (c2, key2) = pem("intruder.test");
    let tls = |cert: &str, key: &str, peer: &str| -> Vec<String> {
        [
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--tls-peer",
            peer,
            "--tls-server-name",
            "party0.test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t0 = tls(&c0, &key0, &c1);
    let t1 = tls(&c1, &key1, &c0);
    f.keys("tls", BATCH);
    let (kt0, kt1) = (f.path("tls/party0.keys"), f.path("tls/party1.keys"));
    let r = run(&f, &kt0, &kt1, &s(&t0), &s(&t1));
    assert!(
        r.p0.0.success() && r.p1.0.success(),
        "TLS run:\n{}\n{}",
        r.p0.1,
        r.p1.1
    );
    assert_eq!(outputs(r.output.as_deref().expect("output")), f.expected());

    // ...a peer whose certificate is not pinned is refused, both ways out.
    f.keys("tls2", BATCH);
    let (kt0, kt1) = (f.path("tls2/party0.keys"), f.path("tls2/party1.keys"));
    let ti = tls(&c2, &key2, &c0);
    let r = run(&f, &kt0, &kt1, &s(&t0), &s(&ti));
    assert!(r.output.is_none(), "an output was written");
    assert_eq!(r.p1.0.code(), Some(4), "intruder:\n{}", r.p1.1);
    assert!(!r.p0.0.success(), "party 0 must not run a job:\n{}", r.p0.1);

    // ...and so is a peer without TLS at all.
    f.keys("tls3", BATCH);
    let (kt0, kt1) = (f.path("tls3/party0.keys"), f.path("tls3/party1.keys"));
    let r = run(&f, &kt0, &kt1, &s(&t0), &[]);
    assert!(r.output.is_none(), "an output was written");
    assert_eq!(r.p1.0.code(), Some(4), "plaintext peer:\n{}", r.p1.1);
    assert!(!r.p0.0.success(), "party 0 must not run a job:\n{}", r.p0.1);
}

/// `ariann-dealer serve` for the tiny CNN at `batch` on a free port, waiting
/// at most `wait_secs` for the parties, and its address; `extra` is appended.
fn start_dealer(f: &Fixture, batch: usize, wait_secs: u64, extra: &[&str]) -> (Child, String) {
    let ready = f.path("dealer-ready");
    let _ = std::fs::remove_file(&ready);
    let child = Command::new(dealer_bin())
        .args(["serve", "--batch", &batch.to_string()])
        .args(signing_args(f.dir.path()))
        .args(["--wait", &wait_secs.to_string()])
        .arg("--model-json")
        .arg(f.path("model.json"))
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .args(extra)
        .args(if extra.contains(&"--tls-cert") {
            &[][..]
        } else {
            &["--insecure-plaintext"][..]
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ariann-dealer serve");
    let (child, addr) = ready_addr(child, &ready);
    match addr {
        Some(a) => (child, a),
        None => {
            let (st, err) = wait(child, "the dealer");
            panic!("the dealer exited before binding ({st}):\n{err}");
        }
    }
}

/// Both parties with keys from the dealer at `dealer`.
fn run_dealer(f: &Fixture, dealer: &str, extra0: &[&str], extra1: &[&str]) -> Run {
    let _ = std::fs::remove_file(f.path("out.json"));
    let (c0, addr) = start_p0_with(f, party_cmd_dealer(f, 0, dealer, extra0));
    let addr = addr.unwrap_or_else(|| "127.0.0.1:9".into());
    let c1 = party_cmd_dealer(f, 1, dealer, extra1)
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let p1 = wait(c1, "party 1");
    let p0 = wait(c0, "party 0");
    Run {
        p0,
        p1,
        output: std::fs::read_to_string(f.path("out.json")).ok(),
    }
}

#[test]
fn keys_streamed_by_the_dealer_reveal_the_cleartext_result() {
    let f = fixture();
    let (dealer, addr) = start_dealer(&f, BATCH, 20, &[]);
    let r = run_dealer(&f, &addr, &[], &[]);
    let d = wait(dealer, "the dealer");
    assert!(r.p0.0.success(), "party 0:\n{}", r.p0.1);
    assert!(r.p1.0.success(), "party 1:\n{}", r.p1.1);
    assert!(d.0.success(), "the dealer:\n{}", d.1);
    let got = outputs(r.output.as_deref().expect("party 1 wrote the output"));
    assert_eq!(
        got,
        f.expected(),
        "revealed output != fixed-point cleartext"
    );
}

#[test]
fn a_dealer_serving_another_plan_or_none_fails_clearly() {
    let f = fixture();
    // The dealer serves batch 2, the parties run batch 3: both refused.
    let (dealer, addr) = start_dealer(&f, 2, 4, &[]);
    let r = run_dealer(&f, &addr, &[], &[]);
    assert!(r.output.is_none(), "an output was written");
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert_eq!(st.code(), Some(3), "party {p}:\n{err}");
        assert!(
            err.contains("another plan"),
            "party {p} names the plan:\n{err}"
        );
    }
    // Nobody asked for its plan: the dealer gives up after its wait.
    let (st, err) = wait(dealer, "the dealer");
    assert!(!st.success(), "the dealer:\n{err}");
    assert!(
        err.contains("asked for plan"),
        "the dealer logs the refusals:\n{err}"
    );
    assert!(
        err.contains("did not ask"),
        "the dealer says why it stops:\n{err}"
    );

    // No dealer at all: both parties give up after their connect deadline.
    let start = Instant::now();
    let r = run_dealer(&f, "127.0.0.1:9", &[], &[]);
    assert!(r.output.is_none(), "an output was written");
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert_eq!(st.code(), Some(3), "party {p}:\n{err}");
        assert!(err.contains("cannot reach the dealer"), "party {p}:\n{err}");
    }
    assert!(start.elapsed() < Duration::from_secs(20));
}

#[test]
fn a_party_killed_mid_job_fails_the_dealer_and_the_other_party() {
    let f = fixture();
    let (dealer, addr) = start_dealer(&f, BATCH, 20, &[]);
    // Party 0 has its dealer header once it listens; kill it as party 1 starts.
    let (mut c0, p0_addr) = start_p0_with(&f, party_cmd_dealer(&f, 0, &addr, &[]));
    let p0_addr = p0_addr.expect("party 0 bound");
    let c1 = party_cmd_dealer(&f, 1, &addr, &[])
        .args(["--peer", &p0_addr])
        .spawn()
        .expect("spawn party 1");
    c0.kill().expect("kill party 0");
    let _ = c0.wait();
    let (st, err) = wait(c1, "party 1");
    assert!(!st.success(), "party 1 must fail:\n{err}");
    assert!(err.contains("error:"), "party 1 explains:\n{err}");
    let (st, err) = wait(dealer, "the dealer");
    assert!(!st.success(), "the dealer must fail:\n{err}");
    assert!(
        err.contains("party 0 disconnected"),
        "the dealer names the party:\n{err}"
    );
    assert!(std::fs::read(f.path("out.json")).is_err());
}

#[test]
fn keys_streamed_over_mutual_tls_and_an_unpinned_party_is_refused() {
    let f = fixture();
    let pem = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        let (c, k) = (
            f.path(&format!("{name}.crt")),
            f.path(&format!("{name}.key")),
        );
        std::fs::write(&c, ck.cert.pem()).expect("write");
        std::fs::write(&k, ck.signing_key.serialize_pem()).expect("write");
        (c.display().to_string(), k.display().to_string())
    };
    let (cd, kd) = pem("dealer.test");
    let (c0, k0) = pem("party0.test");
    let (c1, k1) = pem("party1.test");
    let dealer_tls = [
        "--tls-cert",
        &cd,
        "--tls-key",
        &kd,
        "--tls-peer0",
        &c0,
        "--tls-peer1",
        &c1,
    ];
    // Each party: its identity, the dealer pinned, the peer pinned.
    let party_tls = |cert: &str, key: &str, peer: &str| -> Vec<String> {
        [
            "--tls-cert",
            cert,
            "--tls-key",
            key,
            "--dealer-tls-peer",
            &cd,
            "--dealer-tls-server-name",
            "dealer.test",
            "--tls-peer",
            peer,
            "--tls-server-name",
            "party0.test",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let t0 = party_tls(&c0, &k0, &c1);
    let t1 = party_tls(&c1, &k1, &c0);
    let (dealer, addr) = start_dealer(&f, BATCH, 20, &dealer_tls);
    let r = run_dealer(&f, &addr, &s(&t0), &s(&t1));
    let d = wait(dealer, "the dealer");
    assert!(
        r.p0.0.success() && r.p1.0.success(),
        "TLS run:\n{}\n{}",
        r.p0.1,
        r.p1.1
    );
    assert!(d.0.success(), "the dealer:\n{}", d.1);
    assert_eq!(outputs(r.output.as_deref().expect("output")), f.expected());

    // Party 1 presenting party 0's certificate gets no keys.
    let (dealer, addr) = start_dealer(&f, BATCH, 3, &dealer_tls);
    let c = party_cmd_dealer(&f, 1, &addr, &s(&party_tls(&c0, &k0, &c0)))
        .args(["--peer", "127.0.0.1:9"])
        .spawn()
        .expect("spawn");
    let (st, err) = wait(c, "party 1");
    assert_eq!(st.code(), Some(3), "{err}");
    assert!(err.contains("pinned for party 1"), "{err}");
    let (st, err) = wait(dealer, "the dealer");
    assert!(!st.success(), "the dealer:\n{err}");
    // A certificate and key with the dealer pinned but no --tls-peer would
    // leave the party link in plaintext: refused before anything runs.
    let footgun = party_tls(&c1, &k1, &c0)[..8].to_vec();
    let c = party_cmd_dealer(&f, 1, "127.0.0.1:9", &s(&footgun))
        .args(["--peer", "127.0.0.1:9"])
        .spawn()
        .expect("spawn");
    let (st, err) = wait(c, "party 1");
    assert!(!st.success(), "{err}");
    assert!(err.contains("--plaintext-link"), "{err}");
    // Every other partial TLS setup is a usage error naming what is missing.
    let k0s = f.path("keys/party0.keys").display().to_string();
    let partial: [(Vec<&str>, &str); 4] = [
        (
            vec!["--keys", &k0s, "--tls-server-name", "x"],
            "--tls-server-name is for a TLS",
        ),
        (
            vec!["--dealer", "127.0.0.1:9", "--dealer-tls-server-name", "x"],
            "give --dealer-tls-peer",
        ),
        (
            vec!["--dealer", "10.1.2.3:7100"],
            "would travel in plaintext",
        ),
        (
            vec!["--keys", &k0s, "--tls-cert", &c0],
            "--tls-key is missing",
        ),
    ];
    for (args, want) in partial {
        let c = party_base(&f, 0)
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let (st, err) = wait(c, "party 0");
        assert_eq!(st.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err} lacks {want:?}");
    }
}
