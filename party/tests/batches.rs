//! Jobs of several batches through the binaries: `ariann-dealer keys` or
//! `serve` with `--batches 3`, two `ariann-party --batches 3` processes on
//! Network-1 (the trained weights in `assets/`), and the revealed outputs
//! equal the fixed-point cleartext run of each batch. The weights' masks
//! are opened in the first batch only: each party's later batches send a
//! small fraction of the first's bytes. A dealer and parties that disagree
//! on `--batches` are refused with a plan error before any data moves, and
//! an input file of the wrong size is refused saying what the job takes.

mod common;
use ariann_nn::{Config, Weights, decode_output, encode_input, forward_fixed, zoo};
use common::{dealer_bin, party_bin, signing_args, trust_args, wait, wait_ready};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};

const BATCH: usize = 3;
const BATCHES: usize = 3;

fn weights_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../assets/network1-mlxtend.safetensors")
}

/// A test directory with `n` random inputs (`input<n>.safetensors`).
struct Dir {
    dir: tempfile::TempDir,
    x: Vec<f32>,
}

impl Dir {
    fn new() -> Dir {
        let dir = tempfile::tempdir().expect("tempdir");
        let len = zoo::network1().input_len();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // Enough for every test: batch x batches plus one.
        let x: Vec<f32> = (0..(BATCH * BATCHES + 1) * len)
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        Dir { dir, x }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// An input file of the first `n` inputs.
    fn inputs(&self, n: usize) -> PathBuf {
        let len = zoo::network1().input_len();
        let mut t = Weights::new();
        t.insert("input", vec![n, len], self.x[..n * len].to_vec())
            .expect("input");
        let p = self.path(&format!("input{n}.safetensors"));
        std::fs::write(&p, t.to_safetensors().expect("encode")).expect("write");
        p
    }

    /// The fixed-point cleartext outputs of the first `n` inputs, padded
    /// with zero inputs to `batches` batches, run batch after batch, as
    /// the private job does (the padding's rows dropped).
    fn expected(&self, n: usize, batches: usize) -> Vec<f64> {
        let cfg = Config::default();
        let m = zoo::network1();
        let w = Weights::from_safetensors(&std::fs::read(weights_path()).expect("weights"))
            .expect("weights");
        let len = m.input_len();
        let mut x = self.x[..n * len].to_vec();
        x.resize(BATCH * batches * len, 0.0);
        let xe = encode_input(&x, &cfg).expect("encode");
        let mut y = Vec::new();
        for b in xe.chunks(BATCH * len) {
            y.extend(decode_output(
                &forward_fixed(&m, &w, b, BATCH, &cfg).expect("fixed point"),
                &cfg,
            ));
        }
        y.truncate(n * 10);
        y
    }
}

/// `ariann-dealer keys` for Network-1, `BATCH` inputs, `batches` batches.
fn keys(d: &Dir, out: &str, batches: usize) {
    let out = Command::new(dealer_bin())
        .args(["keys", "--no-progress", "--model", "network1"])
        .args(["--batch", &BATCH.to_string()])
        .args(["--batches", &batches.to_string()])
        .args(signing_args(d.dir.path()))
        .arg("--out")
        .arg(d.path(out))
        .output()
        .expect("run ariann-dealer");
    assert!(
        out.status.success(),
        "ariann-dealer keys failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ariann-dealer serve` for Network-1 on a free port and its address.
fn serve(d: &Dir, batches: usize, wait_secs: u64) -> (Child, String) {
    let ready = d.path("dealer-ready");
    let _ = std::fs::remove_file(&ready);
    let mut child = Command::new(dealer_bin())
        .args(["serve", "--model", "network1", "--insecure-plaintext"])
        .args(["--batch", &BATCH.to_string()])
        .args(["--batches", &batches.to_string()])
        .args(["--wait", &wait_secs.to_string()])
        .args(signing_args(d.dir.path()))
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ariann-dealer serve");
    match wait_ready(&mut child, &ready) {
        Some(a) => (child, a),
        None => {
            let (st, err) = wait(child, "the dealer");
            panic!("the dealer exited before binding ({st}):\n{err}");
        }
    }
}

/// One party's command: `keys` is `["--keys", FILE]` or `["--dealer", ADDR]`.
fn party(d: &Dir, id: u8, batches: usize, keys: &[&str], input: &Path) -> Command {
    let mut c = Command::new(party_bin());
    c.args(["--id", &id.to_string(), "--model", "network1"])
        .args(["--batch", &BATCH.to_string()])
        .args(["--batches", &batches.to_string()])
        .args(trust_args(d.dir.path(), id))
        .args(["--output-to", "1", "--connect-timeout", "5"])
        .args(["--exchange-timeout", "20"])
        .args(keys);
    if id == 0 {
        c.arg("--weights").arg(weights_path());
    } else {
        c.arg("--input")
            .arg(input)
            .arg("--output")
            .arg(d.path("out.json"));
    }
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    c
}

struct Run {
    p0: (ExitStatus, String),
    p1: (ExitStatus, String),
    output: Option<String>,
}

/// Both parties, each with its keys (`keys0`, `keys1`) and batches.
fn run(d: &Dir, (b0, b1): (usize, usize), keys0: &[&str], keys1: &[&str], input: &Path) -> Run {
    let _ = std::fs::remove_file(d.path("out.json"));
    let ready = d.path("ready");
    let _ = std::fs::remove_file(&ready);
    let mut c0 = party(d, 0, b0, keys0, input)
        .args(["--listen", "127.0.0.1:0", "--ready-file"])
        .arg(&ready)
        .spawn()
        .expect("spawn party 0");
    let addr = wait_ready(&mut c0, &ready).unwrap_or_else(|| "127.0.0.1:9".into());
    let c1 = party(d, 1, b1, keys1, input)
        .args(["--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let p1 = wait(c1, "party 1");
    let p0 = wait(c0, "party 0");
    Run {
        p0,
        p1,
        output: std::fs::read_to_string(d.path("out.json")).ok(),
    }
}

fn file_keys(d: &Dir, dir: &str) -> [Vec<String>; 2] {
    [0, 1].map(|i| {
        vec![
            "--keys".to_string(),
            d.path(&format!("{dir}/party{i}.keys"))
                .display()
                .to_string(),
        ]
    })
}

fn s(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

/// Values on the fixed-point grid (f = 16), exactly: out.json's decimal
/// numbers are parsed back to within one ulp, the grid values are exact.
fn grid(v: &[f64]) -> Vec<i64> {
    v.iter().map(|x| (x * 65536.0).round() as i64).collect()
}

/// The revealed rows and predictions of an out.json.
fn outputs(json: &str) -> (Vec<f64>, usize, u64) {
    let v: serde_json::Value = serde_json::from_str(json).expect("output JSON");
    let rows: Vec<f64> = v["outputs"]
        .as_array()
        .expect("outputs")
        .iter()
        .flat_map(|r| {
            r.as_array()
                .expect("row")
                .iter()
                .map(|x| x.as_f64().expect("x"))
        })
        .collect();
    let preds = v["predictions"].as_array().expect("predictions").len();
    (rows, preds, v["batches"].as_u64().expect("batches"))
}

/// The bytes a party sent in each batch, from its `bytes sent per batch:`
/// line.
fn bytes_per_batch(stderr: &str) -> Vec<u64> {
    let line = stderr
        .lines()
        .find_map(|l| l.strip_prefix("bytes sent per batch: "))
        .unwrap_or_else(|| panic!("no per-batch line in:\n{stderr}"));
    line.split(" (")
        .next()
        .expect("numbers")
        .split(", ")
        .map(|n| n.parse().expect("a byte count"))
        .collect()
}

/// Both succeeded; every later batch sent less than a tenth of the first.
fn assert_masks_reused(r: &Run) {
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert!(st.success(), "party {p}:\n{err}");
        let b = bytes_per_batch(err);
        assert_eq!(b.len(), BATCHES, "party {p}: {b:?}");
        for later in &b[1..] {
            assert!(
                later * 10 < b[0],
                "party {p}: a later batch sent {later} bytes, the first {}: {b:?}",
                b[0]
            );
        }
    }
}

#[test]
fn three_batches_from_key_files_equal_fixed_point_and_reuse_the_weight_masks() {
    let d = Dir::new();
    keys(&d, "keys", BATCHES);
    let [k0, k1] = file_keys(&d, "keys");
    let input = d.inputs(BATCH * BATCHES);
    let r = run(&d, (BATCHES, BATCHES), &s(&k0), &s(&k1), &input);
    assert_masks_reused(&r);
    let (got, preds, batches) = outputs(r.output.as_deref().expect("party 1 wrote out.json"));
    assert_eq!(grid(&got), grid(&d.expected(BATCH * BATCHES, BATCHES)));
    assert_eq!((preds, batches), (BATCH * BATCHES, BATCHES as u64));

    // The same job of one batch, for scale: its whole traffic is about
    // that of the three-batch job's first batch.
    keys(&d, "one", 1);
    let [o0, o1] = file_keys(&d, "one");
    let one = d.inputs(BATCH);
    let r1 = run(&d, (1, 1), &s(&o0), &s(&o1), &one);
    assert!(
        r1.p0.0.success() && r1.p1.0.success(),
        "{}\n{}",
        r1.p0.1,
        r1.p1.1
    );
    let (got, _, _) = outputs(r1.output.as_deref().expect("out.json"));
    assert_eq!(grid(&got), grid(&d.expected(BATCH, 1)));
    assert!(
        !r1.p1.1.contains("bytes sent per batch"),
        "one batch: no per-batch line"
    );
}

#[test]
fn three_batches_streamed_by_the_dealer_with_a_short_last_batch() {
    let d = Dir::new();
    let (dealer, addr) = serve(&d, BATCHES, 30);
    let keys = ["--dealer", addr.as_str()];
    // One input short: the last batch is padded, its row dropped.
    let n = BATCH * BATCHES - 1;
    let input = d.inputs(n);
    let r = run(&d, (BATCHES, BATCHES), &keys, &keys, &input);
    let dl = wait(dealer, "the dealer");
    assert!(dl.0.success(), "the dealer:\n{}", dl.1);
    assert_masks_reused(&r);
    let (got, preds, _) = outputs(r.output.as_deref().expect("party 1 wrote out.json"));
    assert_eq!(grid(&got), grid(&d.expected(n, BATCHES)));
    assert_eq!(preds, n);
}

#[test]
fn batches_other_than_the_dealers_are_refused_by_the_plan_hash() {
    let d = Dir::new();
    let input = d.inputs(BATCH * BATCHES);
    // Key files of two batches, parties of three: the files' plan is not
    // the job's.
    keys(&d, "two", 2);
    let [k0, k1] = file_keys(&d, "two");
    let r = run(&d, (BATCHES, BATCHES), &s(&k0), &s(&k1), &input);
    assert!(r.output.is_none(), "an output was written");
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert_eq!(st.code(), Some(3), "party {p}:\n{err}");
        assert!(
            err.contains("another plan") && err.contains("--batches"),
            "party {p} names the plan and --batches:\n{err}"
        );
    }
    // The files were not consumed by the refusal: with --batches 2 they run.
    let two = d.inputs(BATCH * 2);
    let r = run(&d, (2, 2), &s(&k0), &s(&k1), &two);
    assert!(
        r.p0.0.success() && r.p1.0.success(),
        "{}\n{}",
        r.p0.1,
        r.p1.1
    );
    let (got, _, _) = outputs(r.output.as_deref().expect("out.json"));
    assert_eq!(grid(&got), grid(&d.expected(BATCH * 2, 2)));

    // A dealer serving one batch, parties asking for three: refused by the
    // dealer, naming the plan.
    let (dealer, addr) = serve(&d, 1, 4);
    let dk = ["--dealer", addr.as_str()];
    let r = run(&d, (BATCHES, BATCHES), &dk, &dk, &input);
    assert!(r.output.is_none(), "an output was written");
    for (p, (st, err)) in [(0, &r.p0), (1, &r.p1)] {
        assert_eq!(st.code(), Some(3), "party {p}:\n{err}");
        assert!(
            err.contains("another plan") && err.contains("batches"),
            "party {p}:\n{err}"
        );
    }
    let (st, err) = wait(dealer, "the dealer");
    assert!(!st.success(), "nobody asked for the dealer's plan:\n{err}");

    // Parties that disagree with each other (the dealer with one of them):
    // the other is refused by its keys, so no job runs.
    keys(&d, "three", BATCHES);
    let [t0, t1] = file_keys(&d, "three");
    // (Party 1's input fits its two batches: it is refused by its keys.)
    let r = run(&d, (BATCHES, 2), &s(&t0), &s(&t1), &two);
    assert!(r.output.is_none(), "an output was written");
    assert_eq!(r.p1.0.code(), Some(3), "party 1:\n{}", r.p1.1);
    assert!(r.p1.1.contains("another plan"), "party 1:\n{}", r.p1.1);
    assert!(!r.p0.0.success(), "party 0:\n{}", r.p0.1);
}

#[test]
fn an_input_file_of_the_wrong_size_says_what_the_job_takes() {
    let d = Dir::new();
    let alone = |n: usize, batches: usize| {
        let input = d.inputs(n);
        let out = party(&d, 1, batches, &["--keys", "/nonexistent.keys"], &input)
            .args(["--peer", "127.0.0.1:9"])
            .output()
            .expect("run party 1");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Too many: 10 inputs for 3 batches of 3.
    let (st, err) = alone(BATCH * BATCHES + 1, BATCHES);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("holds 10 input(s)") && err.contains("takes 9 inputs"),
        "{err}"
    );
    assert!(err.contains("--batches 4"), "a hint: {err}");
    // Too few: 6 inputs fill two batches, the third would be padding only.
    let (st, err) = alone(2 * BATCH, BATCHES);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(
        err.contains("holds 6 input(s)") && err.contains("takes 9 inputs"),
        "{err}"
    );
    assert!(err.contains("--batches 2"), "a hint: {err}");
    assert!(!d.path("out.json").exists());
    // --batches 0 is a usage error.
    let (st, err) = alone(BATCH, 0);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(err.contains("--batches must be at least 1"), "{err}");
}
