//! Issue #13 through the binaries: one job file for the dealer and both
//! parties, `.npy` inputs with a batch they do not fill, the local
//! reference run, and error chains that name each cause once.

mod common;
use ariann_nn::{
    Config, Rounding, Variant, decode_output, encode_input, forward_fixed, forward_float,
};
use common::{
    BATCH, Fixture, dealer_bin, model, party_bin, signing_args, trust_args, wait, wait_ready,
};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `.npy` file (format 1.0, `<f4`, C order), written by hand.
fn write_npy(path: &Path, shape: &[usize], x: &[f32]) {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        dims.join(", ")
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&u16::try_from(header.len()).expect("short").to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(x.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, out).expect("write npy");
}

/// Equal up to the JSON round trip of an `f64` (serde_json's default
/// parser may miss the last bit).
fn close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (a, b) in got.iter().zip(want) {
        assert!(
            (a - b).abs() <= 1e-12 * b.abs().max(1.0),
            "{got:?} vs {want:?}"
        );
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One dealer identity (and the parties' ledgers) for this test binary.
fn auth_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

/// The dealer's signing key for `keys`, a party's pinned key and ledger.
fn auth_args(bin: &Path, args: &[&str]) -> Vec<String> {
    if bin == dealer_bin() {
        return if args.first() == Some(&"keys") {
            signing_args(auth_dir())
        } else {
            Vec::new()
        };
    }
    match args.iter().position(|a| *a == "--id") {
        Some(i) if args.get(i + 1) == Some(&"0") => trust_args(auth_dir(), 0),
        Some(_) => trust_args(auth_dir(), 1),
        None => Vec::new(),
    }
}

fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .args(auth_args(bin, args))
        .output()
        .expect("run binary")
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// The job of the test: every plan setting away from its default.
const JOB: &str = r#"
model-json = "model.json"
batch = 3
frac-bits = 14
k-cmp = 24
k-trunc = 50
max-gate-elems = 20
variant = "small-key"
permute-relu-maxpool = true
output-to = 1
"#;

fn job_config() -> Config {
    Config {
        frac_bits: 14,
        k_cmp: 24,
        k_trunc: 50,
        max_gate_elems: 20,
        rounding: Rounding::Floor,
        variant: Variant::SmallKey,
    }
}

/// `ariann-dealer keys --job` and two `ariann-party --job` processes run
/// the same plan (the key files' plan hash is checked at both parties), with
/// settings that differ from every default; the data owner gives two inputs
/// in a `.npy` file for a batch of three, and gets two rows, equal to the
/// fixed-point run of the padded batch. The command line overrides the job
/// file (a different `--k-cmp` is another plan: refused).
#[test]
fn one_job_file_drives_the_dealer_and_both_parties() {
    let f = Fixture::new();
    let job = f.path("job.toml");
    std::fs::write(&job, JOB).expect("write job");
    // The job file's settings reach the plan: not the default plan, and the
    // same as the same settings on the command line.
    let hash = |args: &[&str]| {
        let o = run(&dealer_bin(), args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    let mj = f.path("model.json");
    let from_job = hash(&["plan", "--job", p(&job), "--hash"]);
    let default = hash(&["plan", "--model-json", p(&mj), "--batch", "3", "--hash"]);
    let from_cli = hash(&[
        "plan",
        "--model-json",
        p(&mj),
        "--batch",
        "3",
        "--frac-bits",
        "14",
        "--k-cmp",
        "24",
        "--k-trunc",
        "50",
        "--max-gate-elems",
        "20",
        "--variant",
        "small-key",
        "--permute-relu-maxpool",
        "--hash",
    ]);
    assert_ne!(from_job, default);
    assert_eq!(from_job, from_cli);
    // The command line wins over the file.
    let overridden = hash(&["plan", "--job", p(&job), "--k-cmp", "32", "--hash"]);
    let cli_32 = hash(&[
        "plan",
        "--job",
        p(&job),
        "--permute-relu-maxpool=false",
        "--hash",
    ]);
    assert_ne!(overridden, from_job);
    assert_ne!(cli_32, from_job);

    let keys = f.path("keys");
    let o = run(
        &dealer_bin(),
        &["keys", "--job", p(&job), "--out", p(&keys), "--no-progress"],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));

    // Two inputs for a batch of three, as .npy.
    let len = model().input_len();
    let two = &f.x[..2 * len];
    let npy = f.path("two.npy");
    write_npy(&npy, &[2, 1, 6, 6], two);

    let ready = f.path("ready");
    let mut p0 = Command::new(party_bin())
        .args(["--job", p(&job), "--id", "0", "--listen", "127.0.0.1:0"])
        .args(["--ready-file", p(&ready), "--connect-timeout", "10"])
        .args(trust_args(auth_dir(), 0))
        .args(["--keys", p(&keys.join("party0.keys"))])
        .args(["--weights", p(&f.path("weights.safetensors"))])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn party 0");
    let addr = wait_ready(&mut p0, &ready).expect("party 0 listens");
    let out = f.path("out.json");
    let p1 = Command::new(party_bin())
        .args(["--job", p(&job), "--id", "1", "--peer", &addr])
        .args(["--connect-timeout", "10"])
        .args(trust_args(auth_dir(), 1))
        .args(["--keys", p(&keys.join("party1.keys"))])
        .args(["--input", p(&npy), "--output", p(&out)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn party 1");
    let (s1, e1) = wait(p1, "party 1");
    let (s0, e0) = wait(p0, "party 0");
    assert!(s0.success() && s1.success(), "party 0: {e0}\nparty 1: {e1}");
    assert!(
        e1.contains("padding the batch of 3 with 1 zero input"),
        "{e1}"
    );

    // Expected: the fixed-point run of the padded batch, first two rows.
    let cfg = job_config();
    let mut x = two.to_vec();
    x.resize(BATCH * len, 0.0);
    let m = model().permute_relu_maxpool();
    let y = decode_output(
        &forward_fixed(
            &m,
            &f.weights,
            &encode_input(&x, &cfg).expect("x"),
            BATCH,
            &cfg,
        )
        .expect("fixed"),
        &cfg,
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("output")).expect("json");
    assert_eq!(v["inputs"], 2);
    let rows = v["outputs"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "the padding's row is dropped");
    let got: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("num"))
        })
        .collect();
    close(&got, &y[..2 * y.len() / BATCH]);

    // Used keys are refused, the cause named once.
    let o = run(
        &party_bin(),
        &[
            "--job",
            p(&job),
            "--id",
            "1",
            "--peer",
            "127.0.0.1:9",
            "--keys",
            p(&keys.join("party1.keys")),
            "--input",
            p(&npy),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stderr).matches("keys already used").count(),
        1,
        "{}",
        text(&o.stderr)
    );

    // The command line overrides the job file at a party too: with
    // --k-cmp 32 party 1's plan is another one, and its key file says so.
    let keys2 = f.path("keys2");
    let o = run(
        &dealer_bin(),
        &[
            "keys",
            "--job",
            p(&job),
            "--out",
            p(&keys2),
            "--no-progress",
        ],
    );
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = run(
        &party_bin(),
        &[
            "--job",
            p(&job),
            "--id",
            "1",
            "--peer",
            "127.0.0.1:9",
            "--k-cmp",
            "32",
            "--keys",
            p(&keys2.join("party1.keys")),
            "--input",
            p(&npy),
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("another plan"),
        "{}",
        text(&o.stderr)
    );
}

/// A misspelt key is an error naming it, at the dealer and at a party.
#[test]
fn an_unknown_job_key_is_refused_by_name() {
    let f = Fixture::new();
    let job = f.path("job.toml");
    std::fs::write(&job, "model-json = \"model.json\"\nbatch = 3\nk-cpm = 24\n").expect("write");
    let o = run(&dealer_bin(), &["plan", "--job", p(&job)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("`k-cpm`"), "{}", text(&o.stderr));
    let o = run(
        &party_bin(),
        &["--job", p(&job), "--id", "1", "--peer", "127.0.0.1:9"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("`k-cpm`"), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("line 3"), "{}", text(&o.stderr));
}

/// `ariann-party reference` prints the float and fixed-point outputs, the
/// largest error between them and the classes: the same numbers as the
/// library's `forward_float` and `forward_fixed`.
#[test]
fn reference_run_prints_float_fixed_and_the_error() {
    let f = Fixture::new();
    let len = model().input_len();
    let npy = f.path("x.npy");
    write_npy(&npy, &[BATCH, 1, 6, 6], &f.x);
    let (mj, wf) = (f.path("model.json"), f.path("weights.safetensors"));
    let args = [
        "reference",
        "--model-json",
        p(&mj),
        "--weights",
        p(&wf),
        "--input",
        p(&npy),
        "--frac-bits",
        "12",
        "--json",
    ];
    let o = run(&party_bin(), &args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let float = forward_float(&model(), &f.weights, &f.x, BATCH).expect("float");
    let cfg = Config {
        frac_bits: 12,
        ..Config::default()
    };
    let fixed = decode_output(
        &forward_fixed(
            &model(),
            &f.weights,
            &encode_input(&f.x, &cfg).expect("x"),
            BATCH,
            &cfg,
        )
        .expect("fixed"),
        &cfg,
    );
    let flat = |k: &str| -> Vec<f64> {
        v[k].as_array()
            .expect("rows")
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .expect("row")
                    .iter()
                    .map(|x| x.as_f64().expect("n"))
            })
            .collect()
    };
    close(&flat("float"), &float);
    close(&flat("fixed"), &fixed);
    let err = float
        .iter()
        .zip(&fixed)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    close(&[v["max_abs_error"].as_f64().expect("error")], &[err]);
    assert!(err > 0.0, "12 fractional bits leave an error");
    let classes = float.len() / BATCH;
    let argmax = |r: &[f64]| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b });
    let want: Vec<usize> = fixed.chunks(classes).map(argmax).collect();
    let got: Vec<usize> = v["predictions_fixed"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_u64().expect("class") as usize)
        .collect();
    assert_eq!(got, want);
    // The table for people, from a safetensors input with a padded batch.
    let o = run(
        &party_bin(),
        &[
            "reference",
            "--model-json",
            p(&f.path("model.json")),
            "--weights",
            p(&f.path("weights.safetensors")),
            "--input",
            p(&f.path("input.safetensors")),
            "--batch",
            "4",
        ],
    );
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(out.contains("padded to a batch of 4"), "{out}");
    assert!(out.contains("largest fixed-point error"), "{out}");
    assert_eq!(out.matches("  fixed: ").count(), BATCH, "{out}");
    let _ = len;
}

/// Each cause appears once in a printed error chain, and a shape error
/// names the layer and both shapes.
#[test]
fn error_chains_name_each_cause_once() {
    let f = Fixture::new();
    let once = |o: &Output, cause: &str| {
        let e = text(&o.stderr);
        assert!(!o.status.success());
        assert_eq!(e.matches(cause).count(), 1, "{cause:?} in {e:?}");
    };
    let missing = f.path("missing");
    // A missing key file at a party.
    let o = run(
        &party_bin(),
        &[
            "--id",
            "1",
            "--peer",
            "127.0.0.1:9",
            "--model-json",
            p(&f.path("model.json")),
            "--batch",
            "3",
            "--output-to",
            "1",
            "--input",
            p(&f.path("input.safetensors")),
            "--keys",
            p(&missing.join("party1.keys")),
        ],
    );
    once(&o, "No such file or directory");
    // A missing model description, input, weights.
    let o = run(
        &dealer_bin(),
        &[
            "plan",
            "--model-json",
            p(&missing.join("m.json")),
            "--batch",
            "1",
        ],
    );
    once(&o, "No such file or directory");
    let o = run(
        &party_bin(),
        &[
            "reference",
            "--model-json",
            p(&f.path("model.json")),
            "--weights",
            p(&missing.join("w.safetensors")),
            "--input",
            p(&missing.join("x.npy")),
        ],
    );
    once(&o, "No such file or directory");
    let o = run(
        &party_bin(),
        &[
            "reference",
            "--model-json",
            p(&f.path("model.json")),
            "--weights",
            p(&f.path("weights.safetensors")),
            "--input",
            p(&missing.join("x.npy")),
        ],
    );
    once(&o, "No such file or directory");
    // A shape error names the layer path and both shapes.
    let bad = f.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"name": "bad", "input": [1, 6, 6], "layers": [
            {"type": "Conv2d", "name": "conv", "c": 1, "oc": 3, "k": 3, "stride": 1, "pad": 1},
            {"type": "Flatten"},
            {"type": "Linear", "name": "fc", "inp": 27, "out": 4}]}"#,
    )
    .expect("write");
    let o = run(
        &dealer_bin(),
        &["plan", "--model-json", p(&bad), "--batch", "1"],
    );
    let e = text(&o.stderr);
    assert!(
        e.contains("layer fc") && e.contains("[27]") && e.contains("[108]"),
        "{e}"
    );
}
