//! Two party daemons (real processes) take jobs from clients over gRPC:
//! the model owner's client submits the job and the weights to party 0,
//! the data owner's client the same job and the inputs to party 1; the
//! output is revealed to party 1 only and equals the fixed-point cleartext.
//! Daemons run jobs one after the other and shut down on SIGTERM.
//! The control port takes bearer tokens (0600 file): calls without a
//! token, with an unknown one, or on another client's job are refused; an
//! output is handed out once; a daemon without a token file (or
//! `--insecure-local`) or with a world-readable one does not start.

mod common;
use ariann_party::client::{ClientError, RemoteParty};
use common::{BATCH, Fixture, dealer_bin, party_bin, signing_args, trust_args, wait, wait_ready};
use std::process::{Child, Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

const OWNER: &str = "0wner0wner0wner0wner0wner0wner00";
const HOSPITAL: &str = "h0spitalh0spitalh0spitalh0spital";
const STRANGER: &str = "strangerstrangerstrangerstranger";

/// Writes a token file (mode 0600 unless `mode` says otherwise).
fn token_file(f: &Fixture, name: &str, text: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = f.path(name);
    std::fs::write(&p, text).expect("token file");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    p
}

fn daemon(f: &Fixture, id: u8, link: &str) -> (Child, String) {
    let dir = f.path("jobs").display().to_string();
    daemon_with(f, id, link, &["--keys-dir", &dir])
}

/// A daemon taking its keys as `keys` says (`--keys-dir DIR` or `--dealer ADDR`).
fn daemon_with(f: &Fixture, id: u8, link: &str, keys: &[&str]) -> (Child, String) {
    let (me, client) = if id == 0 {
        ("owner", OWNER)
    } else {
        ("hospital", HOSPITAL)
    };
    let tokens = token_file(
        f,
        &format!("tokens{id}"),
        &format!("# clients of party {id}\n{me} {client}\nstranger {STRANGER}\n"),
        0o600,
    );
    let ready = f.path(&format!("ready{id}"));
    let mut c = Command::new(party_bin());
    c.args(trust_args(f.dir.path(), id))
        .args(["--id", &id.to_string(), "--control", "127.0.0.1:0"])
        .arg("--control-tokens")
        .arg(&tokens)
        .args(["--connect-timeout", "10", "--exchange-timeout", "10"])
        .args(keys)
        .arg("--ready-file")
        .arg(&ready)
        .args(if id == 0 {
            ["--listen", link]
        } else {
            ["--peer", link]
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn daemon");
    let addr = wait_ready(&mut child, &ready).expect("daemon listening");
    (child, format!("http://{addr}"))
}

fn terminate(child: Child, who: &str) {
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    let (st, err) = wait(child, who);
    assert!(st.success(), "{who} exits cleanly on SIGTERM:\n{err}");
}

#[test]
fn daemons_run_submitted_jobs_and_reveal_to_the_named_party_only() {
    let f = Fixture::new();
    let link = format!("127.0.0.1:{}", free_port());
    let (d0, a0) = daemon(&f, 0, &link);
    let (d1, a1) = daemon(&f, 1, &link);
    let json = std::fs::read_to_string(f.path("model.json")).expect("model");
    let weights = f.weights.to_safetensors().expect("weights");
    let mut owner = RemoteParty::connect_with_token(&a0, OWNER).expect("party 0");
    let mut hospital = RemoteParty::connect_with_token(&a1, HOSPITAL).expect("party 1");
    let mut stranger = RemoteParty::connect_with_token(&a1, STRANGER).expect("party 1");

    for job in ["job-1", "job-2"] {
        f.keys(&format!("jobs/{job}"), BATCH);
        owner
            .submit_json(job, &json, BATCH, 1)
            .expect("submit at 0");
        hospital
            .submit_json(job, &json, BATCH, 1)
            .expect("submit at 1");
        owner
            .provide_weights(job, weights.clone())
            .expect("weights");
        hospital.provide_input(job, &f.x).expect("inputs");
        let (y, shape) = hospital.fetch_output(job).expect("output at party 1");
        assert_eq!(
            y,
            f.expected(),
            "{job}: revealed output != fixed-point cleartext"
        );
        assert_eq!(shape, vec![BATCH as u64, 4]);
        let denied = owner.fetch_output(job);
        assert!(
            matches!(&denied, Err(ClientError::Status(s)) if s.code() == tonic::Code::PermissionDenied),
            "party 0 must not hand out the output: {denied:?}"
        );
        // Handed out once, then wiped.
        let again = hospital.fetch_output(job);
        assert!(
            matches!(&again, Err(ClientError::Status(s)) if s.code() == tonic::Code::FailedPrecondition),
            "a second fetch: {again:?}"
        );
    }

    // An ONNX model (PyTorch export: a bias-free Conv + BatchNormalization,
    // a batch-norm after a ReLU, Gemm + 1-d batch-norm), as the one-shot
    // `--model-onnx`: keys from `ariann-dealer keys --model-onnx`, the
    // architecture submitted by the clients, the initializers from the model
    // owner's client. The revealed output equals the fixed-point cleartext.
    onnx_job(&f, &mut owner, &mut hospital);

    // Authentication: no token, an unknown token.
    let code = |r: Result<(ariann_proto::v1::JobState, String, u64, u64), ClientError>| match r {
        Err(ClientError::Status(s)) => Some(s.code()),
        _ => None,
    };
    let mut anonymous = RemoteParty::connect(&a1).expect("connect");
    assert_eq!(
        code(anonymous.status("")),
        Some(tonic::Code::Unauthenticated)
    );
    assert!(anonymous.submit_json("anon", &json, BATCH, 1).is_err());
    let mut forged = RemoteParty::connect_with_token(&a1, &HOSPITAL.replace('h', "H")).expect("c");
    assert_eq!(
        code(forged.status("job-1")),
        Some(tonic::Code::Unauthenticated)
    );
    // Another client of the same daemon cannot see, feed or fetch the
    // hospital's job: it is "unknown" to it.
    hospital
        .submit_json("mine", &json, BATCH, 1)
        .expect("submit");
    assert_eq!(code(stranger.status("mine")), Some(tonic::Code::NotFound));
    assert_eq!(code(stranger.status("job-2")), Some(tonic::Code::NotFound));
    let fed = stranger.provide_input("mine", &f.x);
    assert!(
        matches!(&fed, Err(ClientError::Status(s)) if s.code() == tonic::Code::NotFound),
        "{fed:?}"
    );
    let taken = stranger.fetch_output("mine");
    assert!(
        matches!(&taken, Err(ClientError::Status(s)) if s.code() == tonic::Code::NotFound),
        "{taken:?}"
    );
    let (_, detail, _, _) = stranger.status("").expect("own summary");
    assert!(
        detail.contains("0 job"),
        "the stranger sees only its jobs: {detail}"
    );

    // A job id twice, an unknown model, a job without keys.
    assert!(matches!(
        owner.submit_json("job-1", &json, BATCH, 1),
        Err(ClientError::Refused(_))
    ));
    assert!(matches!(
        owner.submit("job-x", "no-such-model", 1, 1),
        Err(ClientError::Refused(_))
    ));
    owner
        .submit_json("nokeys", &json, BATCH, 1)
        .expect("submit");
    hospital
        .submit_json("nokeys", &json, BATCH, 1)
        .expect("submit");
    owner.provide_weights("nokeys", weights).expect("weights");
    hospital.provide_input("nokeys", &f.x).expect("inputs");
    let r = hospital.fetch_output("nokeys");
    assert!(
        matches!(&r, Err(ClientError::Status(s)) if s.message().contains("key file")),
        "{r:?}"
    );
    // Wrong input size: refused at once.
    hospital
        .submit_json("short", &json, BATCH, 1)
        .expect("submit");
    assert!(hospital.provide_input("short", &f.x[1..]).is_err());
    // More than the job's input: refused from the header, before any
    // memory is reserved (the size comes from the model, not the header).
    let big = hospital.provide_input("short", &vec![0.5f32; f.x.len() + 1]);
    assert!(
        matches!(&big, Err(ClientError::Status(s)) if s.code() == tonic::Code::ResourceExhausted),
        "{big:?}"
    );

    terminate(d0, "party 0");
    terminate(d1, "party 1");
}

/// A job of two batches submitted to two daemons (`submit_json_batches`,
/// keys of `ariann-dealer keys --batches 2`): the data owner provides both
/// batches' inputs, the output holds both batches' rows and equals the
/// fixed-point cleartext of each; one batch's inputs are refused, saying
/// what the job takes.
#[test]
fn daemons_run_a_job_of_several_batches() {
    let f = Fixture::new();
    let link = format!("127.0.0.1:{}", free_port());
    let (d0, a0) = daemon(&f, 0, &link);
    let (d1, a1) = daemon(&f, 1, &link);
    let json = std::fs::read_to_string(f.path("model.json")).expect("model");
    let mut owner = RemoteParty::connect_with_token(&a0, OWNER).expect("party 0");
    let mut hospital = RemoteParty::connect_with_token(&a1, HOSPITAL).expect("party 1");
    f.keys_batches("jobs/two", BATCH, 2);
    for p in [&mut owner, &mut hospital] {
        p.submit_json_batches("two", &json, BATCH, 2, 1)
            .expect("submit");
    }
    // One batch's inputs for a job of two: refused.
    let short = hospital.provide_input("two", &f.x);
    assert!(
        matches!(&short, Err(ClientError::Status(s)) if s.message().contains("2 batch(es)")),
        "{short:?}"
    );
    owner
        .provide_weights("two", f.weights.to_safetensors().expect("weights"))
        .expect("weights");
    let x2: Vec<f32> = f.x.iter().chain(f.x.iter().rev()).copied().collect();
    hospital.provide_input("two", &x2).expect("inputs");
    let (y, shape) = hospital.fetch_output("two").expect("output at party 1");
    let want: Vec<f64> = f
        .expected()
        .into_iter()
        .chain(f.expected_of(&x2[f.x.len()..]))
        .collect();
    assert_eq!(
        y, want,
        "revealed output != fixed-point cleartext of each batch"
    );
    assert_eq!(shape, vec![2 * BATCH as u64, 4]);
    terminate(d0, "party 0");
    terminate(d1, "party 1");
}

fn onnx_job(f: &Fixture, owner: &mut RemoteParty, hospital: &mut RemoteParty) {
    use ariann_nn::{Config, decode_output, encode_input, forward_fixed};
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/onnx/tests/data");
    let onnx = std::fs::read(data.join("conv_bn.onnx")).expect("test model");
    let case: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("conv_bn.json")).expect("case"))
            .expect("json");
    let x: Vec<f32> = case["input"]
        .as_array()
        .expect("input")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect();
    let batch = case["input_shape"][0].as_u64().expect("batch") as usize;
    let st = Command::new(common::dealer_bin())
        .args(["keys", "--no-progress", "--batch", &batch.to_string()])
        .args(common::signing_args(f.dir.path()))
        .arg("--model-onnx")
        .arg(data.join("conv_bn.onnx"))
        .arg("--out")
        .arg(f.path("jobs/onnx"))
        .stdout(Stdio::null())
        .status()
        .expect("run ariann-dealer");
    assert!(st.success(), "ariann-dealer keys --model-onnx failed");
    owner
        .submit_onnx("onnx", &onnx, batch, 1)
        .expect("submit at 0");
    hospital
        .submit_onnx("onnx", &onnx, batch, 1)
        .expect("submit at 1");
    owner.provide_onnx_weights("onnx", &onnx).expect("weights");
    hospital.provide_input("onnx", &x).expect("inputs");
    let (y, shape) = hospital.fetch_output("onnx").expect("output at party 1");
    let imp = ariann_onnx::import(&onnx).expect("import");
    let (m, w) = imp.model.fold_batchnorm(&imp.weights).expect("fold");
    let cfg = Config::default();
    let xe = encode_input(&x, &cfg).expect("encode");
    let want = decode_output(
        &forward_fixed(&m, &w, &xe, batch, &cfg).expect("fixed"),
        &cfg,
    );
    assert_eq!(
        y, want,
        "ONNX job: revealed output != fixed-point cleartext"
    );
    assert_eq!(shape[0], batch as u64);
    // And the reference runtime's output, within the
    // fixed-point tolerance of crates/onnx/tests/exported.rs.
    let reference: Vec<f64> = case["output"]
        .as_array()
        .expect("output")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect();
    let err = y
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 2e-3, "ONNX job vs onnxruntime: {err}");
    // An ONNX file the importer refuses is refused by the client, with why.
    let bad = owner.submit_onnx("bad", b"not onnx", batch, 1);
    assert!(matches!(&bad, Err(ClientError::Onnx(_))), "{bad:?}");
}

/// A daemon without a token file (and without `--insecure-local`), with a
/// token file other users can read, or insecure on a non-loopback address,
/// does not start.
#[test]
fn daemons_refuse_to_start_without_safe_authentication() {
    let f = Fixture::new();
    let start = |extra: &[&str]| {
        let out = Command::new(party_bin())
            .args(trust_args(f.dir.path(), 1))
            .args([
                "--id",
                "1",
                "--control",
                "127.0.0.1:0",
                "--peer",
                "127.0.0.1:9",
            ])
            .arg("--keys-dir")
            .arg(f.path("jobs"))
            .args(extra)
            .output()
            .expect("run");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (st, err) = start(&[]);
    assert!(!st.success() && err.contains("--control-tokens"), "{err}");
    let open = token_file(&f, "open", &format!("hospital {HOSPITAL}\n"), 0o644);
    let (st, err) = start(&["--control-tokens", open.to_str().expect("utf-8")]);
    assert!(!st.success() && err.contains("chmod 600"), "{err}");
    assert!(!err.contains(HOSPITAL), "the token is never printed: {err}");
    let weak = token_file(&f, "weak", "hospital short\n", 0o600);
    let (st, err) = start(&["--control-tokens", weak.to_str().expect("utf-8")]);
    assert!(!st.success() && err.contains("at least"), "{err}");
    let out = Command::new(party_bin())
        .args(trust_args(f.dir.path(), 1))
        .args([
            "--id",
            "1",
            "--control",
            "0.0.0.0:0",
            "--peer",
            "127.0.0.1:9",
        ])
        .arg("--keys-dir")
        .arg(f.path("jobs"))
        .arg("--insecure-local")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("loopback"), "{err}");
}

/// Mutual TLS on the control port (`--control-tls-cert`, `--control-tls-key`,
/// one `--control-client NAME=CERT.pem` per client): a client is the name
/// its certificate is pinned under, so jobs belong to certificates; an
/// unpinned certificate, a plaintext call and a client that pins another
/// daemon certificate are refused; half a TLS setup does not start.
#[test]
fn control_port_with_mutual_tls_and_pinned_client_certificates() {
    use ariann_party::client::ClientTls;
    let f = Fixture::new();
    let pem = |name: &str| {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("rcgen");
        let (c, k) = (
            f.path(&format!("{name}.crt")),
            f.path(&format!("{name}.key")),
        );
        std::fs::write(&c, ck.cert.pem()).expect("write");
        std::fs::write(&k, ck.signing_key.serialize_pem()).expect("write");
        (c, k)
    };
    let (dc, dk) = pem("party1.test");
    let (hc, hk) = pem("hospital.test");
    let (sc, sk) = pem("stranger.test");
    let (xc, xk) = pem("intruder.test");
    let (oc, _) = pem("other-daemon.test");
    let s = |p: &std::path::Path| p.to_str().expect("utf-8").to_string();
    let base = |c: &mut Command| {
        c.args(trust_args(f.dir.path(), 1))
            .args([
                "--id",
                "1",
                "--control",
                "127.0.0.1:0",
                "--peer",
                "127.0.0.1:9",
            ])
            .arg("--keys-dir")
            .arg(f.path("jobs"));
    };
    // Half a setup, or TLS and tokens at once: usage errors.
    let tokens = token_file(&f, "tokens", &format!("hospital {HOSPITAL}\n"), 0o600);
    for extra in [
        vec!["--control-tls-cert", &s(&dc), "--control-tls-key", &s(&dk)],
        vec![
            "--control-tls-cert",
            &s(&dc),
            "--control-client",
            &format!("h={}", s(&hc)),
        ],
        vec![
            "--control-tls-cert",
            &s(&dc),
            "--control-tls-key",
            &s(&dk),
            "--control-client",
            &format!("h={}", s(&hc)),
            "--control-tokens",
            &s(&tokens),
        ],
    ] {
        let mut c = Command::new(party_bin());
        base(&mut c);
        let out = c.args(&extra).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains("--control"), "{err}");
    }

    let ready = f.path("ready-tls");
    let mut c = Command::new(party_bin());
    base(&mut c);
    c.args(["--control-tls-cert", &s(&dc), "--control-tls-key", &s(&dk)])
        .args(["--control-client", &format!("hospital={}", s(&hc))])
        .args(["--control-client", &format!("stranger={}", s(&sc))])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut d = c.spawn().expect("spawn daemon");
    let addr = wait_ready(&mut d, &ready).expect("daemon listening");
    let url = format!("https://{addr}");
    let client =
        |cert: &std::path::Path, key: &std::path::Path, daemon: &std::path::Path| ClientTls {
            daemon_pem: std::fs::read_to_string(daemon).expect("pem"),
            cert_pem: std::fs::read_to_string(cert).expect("pem"),
            key_pem: std::fs::read_to_string(key).expect("pem"),
            server_name: Some("party1.test".into()),
        };
    let json = std::fs::read_to_string(f.path("model.json")).expect("model");
    let mut hospital = RemoteParty::connect_tls(&url, &client(&hc, &hk, &dc)).expect("hospital");
    hospital
        .submit_json("mine", &json, BATCH, 1)
        .expect("submit");
    let (_, detail, _, _) = hospital.status("").expect("summary");
    assert!(detail.contains("1 job"), "{detail}");
    // The stranger's certificate is pinned too, but the job is not its own.
    let mut stranger = RemoteParty::connect_tls(&url, &client(&sc, &sk, &dc)).expect("stranger");
    let r = stranger.status("mine");
    assert!(
        matches!(&r, Err(ClientError::Status(s)) if s.code() == tonic::Code::NotFound),
        "{r:?}"
    );
    assert!(matches!(
        stranger.fetch_output("mine"),
        Err(ClientError::Status(s)) if s.code() == tonic::Code::NotFound
    ));
    // Refused: an unpinned certificate, plaintext, another daemon pinned.
    let refused = |r: Result<RemoteParty, ClientError>, what: &str| match r {
        Err(_) => {}
        Ok(mut p) => {
            let st = p.status("");
            assert!(st.is_err(), "{what}: {st:?}");
        }
    };
    refused(
        RemoteParty::connect_tls(&url, &client(&xc, &xk, &dc)),
        "unpinned client certificate",
    );
    refused(RemoteParty::connect(&format!("http://{addr}")), "plaintext");
    refused(
        RemoteParty::connect_tls(&url, &client(&hc, &hk, &oc)),
        "another daemon's certificate pinned",
    );
    // The hospital's job is still there, untouched.
    let (_, detail, _, _) = hospital.status("").expect("summary");
    assert!(detail.contains("1 job"), "{detail}");
    terminate(d, "party 1");
}

/// Daemon mode with keys from a streaming dealer (`--dealer ADDR` instead of
/// `--keys-dir`): each job pulls its keys from the `ariann-dealer serve`
/// run for it; the output equals the fixed-point cleartext; a job whose
/// dealer is gone fails with a key error and the daemon stays up.
#[test]
fn daemons_take_keys_from_a_streaming_dealer() {
    let f = Fixture::new();
    let ready = f.path("dealer-ready");
    let mut dealer = Command::new(dealer_bin())
        .args(["serve", "--batch", &BATCH.to_string()])
        .args(signing_args(f.dir.path()))
        .arg("--model-json")
        .arg(f.path("model.json"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--insecure-plaintext",
            "--wait",
            "60",
        ])
        .arg("--ready-file")
        .arg(&ready)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ariann-dealer serve");
    let addr = wait_ready(&mut dealer, &ready).expect("dealer listening");
    let link = format!("127.0.0.1:{}", free_port());
    let (d0, a0) = daemon_with(&f, 0, &link, &["--dealer", &addr]);
    let (d1, a1) = daemon_with(&f, 1, &link, &["--dealer", &addr]);
    let json = std::fs::read_to_string(f.path("model.json")).expect("model");
    let mut owner = RemoteParty::connect_with_token(&a0, OWNER).expect("party 0");
    let mut hospital = RemoteParty::connect_with_token(&a1, HOSPITAL).expect("party 1");
    owner
        .submit_json("streamed", &json, BATCH, 1)
        .expect("submit");
    hospital
        .submit_json("streamed", &json, BATCH, 1)
        .expect("submit");
    owner
        .provide_weights("streamed", f.weights.to_safetensors().expect("weights"))
        .expect("weights");
    hospital.provide_input("streamed", &f.x).expect("inputs");
    let (y, _) = hospital
        .fetch_output("streamed")
        .expect("output at party 1");
    assert_eq!(y, f.expected(), "revealed output != fixed-point cleartext");
    let (st, err) = wait(dealer, "the dealer");
    assert!(st.success(), "the dealer served both parties:\n{err}");
    // The dealer is gone: the next job fails on its keys, the daemon lives.
    owner.submit_json("again", &json, BATCH, 1).expect("submit");
    hospital
        .submit_json("again", &json, BATCH, 1)
        .expect("submit");
    owner
        .provide_weights("again", f.weights.to_safetensors().expect("weights"))
        .expect("weights");
    hospital.provide_input("again", &f.x).expect("inputs");
    let r = hospital.fetch_output("again");
    assert!(
        matches!(&r, Err(ClientError::Status(s)) if s.message().contains("dealer")),
        "{r:?}"
    );
    assert!(hospital.status("").is_ok(), "the daemon is still up");
    terminate(d0, "party 0");
    terminate(d1, "party 1");
}
