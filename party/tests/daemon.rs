//! Two party daemons (real processes) take jobs from clients over gRPC:
//! the model owner's client submits the job and the weights to party 0,
//! the data owner's client the same job and the inputs to party 1; the
//! output is revealed to party 1 only and equals the fixed-point cleartext.
//! Daemons run jobs one after the other and shut down on SIGTERM.

mod common;
use ariann_party::client::{ClientError, RemoteParty};
use common::{BATCH, Fixture, party_bin, wait, wait_ready};
use std::process::{Child, Command, Stdio};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn daemon(f: &Fixture, id: u8, link: &str) -> (Child, String) {
    let ready = f.path(&format!("ready{id}"));
    let mut c = Command::new(party_bin());
    c.args(["--id", &id.to_string(), "--control", "127.0.0.1:0"])
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
    let mut owner = RemoteParty::connect(&a0).expect("party 0");
    let mut hospital = RemoteParty::connect(&a1).expect("party 1");

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
    }

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

    terminate(d0, "party 0");
    terminate(d1, "party 1");
}
