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
use common::{BATCH, Fixture, party_bin, trust_args, wait, wait_ready};
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
        .arg("--keys-dir")
        .arg(f.path("jobs"))
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
