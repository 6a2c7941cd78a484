//! The `ariann-dealer` binary: writes key files for a zoo model, prints the
//! plan and its hash, and fails with a message (never a panic) on bad input.

use ariann_dealer::auth::{DealerPublicKey, KeyTrust};
use ariann_dealer::keyfile::{Expected, KeyFileHeader, KeyFileSource, journal_path, to_hex};
use ariann_dealer::ledger::Ledger;
use ariann_dealer::plan_json::{from_json, to_json};
use ariann_dealer::{GateDesc, Plan};
use ariann_fss::Party;
use ariann_mpc::{BundleTag, PreprocessingSource};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dealer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ariann-dealer"))
        .args(args)
        .output()
        .expect("run ariann-dealer")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ariann-dealer identity --out DIR/id`: the paths of dealer.key and
/// dealer.pub.
fn identity(dir: &Path) -> (PathBuf, PathBuf) {
    let id = dir.join("id");
    let o = dealer(&["identity", "--out", id.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    (id.join("dealer.key"), id.join("dealer.pub"))
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn keys_for_network1_batch_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sk, pk) = identity(dir.path());
    let pinned = DealerPublicKey::load(&pk).expect("dealer.pub");
    let out = dir.path().join("keys");
    let o = dealer(&[
        "keys",
        "--signing-key",
        s(&sk),
        "--model",
        "network1",
        "--batch",
        "2",
        "--out",
        out.to_str().expect("utf-8 path"),
        "--no-progress",
    ]);
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{stdout}\n{}", text(&o.stderr));
    assert_eq!(o.status.code(), Some(0));
    let p0 = out.join("party0.keys");
    let p1 = out.join("party1.keys");
    assert!(p0.is_file() && p1.is_file());
    // The printed hash is the plan's, and the files carry it.
    let h = dealer(&["plan", "--model", "network1", "--batch", "2", "--hash"]);
    assert!(h.status.success());
    let hash = text(&h.stdout).trim().to_string();
    assert_eq!(hash.len(), 64);
    assert!(stdout.contains(&format!("plan hash:  {hash}")), "{stdout}");
    let h0 = KeyFileHeader::read(&p0, &pinned).expect("header 0");
    let h1 = KeyFileHeader::read(&p1, &pinned).expect("header 1");
    assert_eq!(
        h0.link_secret, h1.link_secret,
        "one link secret per session"
    );
    assert_eq!(to_hex(&h0.plan_hash), hash);
    assert_eq!((h0.party, h1.party), (Party::P0, Party::P1));
    assert_eq!(h0.session, h1.session);
    assert!(
        stdout.contains(&format!("session:    {}", h0.session)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("bundles:    {}", h0.count)),
        "{stdout}"
    );
    // The JSON plan parses, hashes the same, and drives `keys --plan`.
    let j = dealer(&["plan", "--model", "network1", "--batch", "2", "--json"]);
    assert!(j.status.success());
    let plan = from_json(&text(&j.stdout)).expect("plan JSON");
    assert_eq!(to_hex(&plan.hash()), hash);
    assert_eq!(plan.gates.len() as u64, h0.count);
    let pf = dir.path().join("plan.json");
    std::fs::write(&pf, &j.stdout).expect("write plan");
    let out2 = dir.path().join("keys2");
    let o = dealer(&[
        "keys",
        "--signing-key",
        s(&sk),
        "--plan",
        pf.to_str().expect("utf-8"),
        "--out",
        out2.to_str().expect("utf-8"),
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(text(&o.stdout).contains(&hash));
    assert!(out2.join("party1.keys").is_file());
    // `verify` accepts intact files and refuses a flipped bit.
    let v = dealer(&[
        "verify",
        "--dealer-pubkey",
        s(&pk),
        p0.to_str().expect("utf-8"),
        p1.to_str().expect("utf-8"),
    ]);
    assert!(v.status.success(), "{}", text(&v.stderr));
    assert_eq!(text(&v.stdout).matches(": signature ok;").count(), 2);
    assert_eq!(text(&v.stdout).matches("; not used").count(), 2);
    // Another dealer's key: refused.
    let other = tempfile::tempdir().expect("tempdir");
    let (_, other_pk) = identity(other.path());
    let v = dealer(&["verify", "--dealer-pubkey", s(&other_pk), s(&p0)]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stderr).contains("this party pins dealer key"),
        "{}",
        text(&v.stderr)
    );
    let mut b = std::fs::read(&p1).expect("read");
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&p1, b).expect("write");
    let v = dealer(&[
        "verify",
        "--dealer-pubkey",
        s(&pk),
        p1.to_str().expect("utf-8"),
    ]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stderr).contains("is not intact"),
        "{}",
        text(&v.stderr)
    );
}

#[test]
fn bad_input_gives_a_message_and_nonzero_exit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().to_str().expect("utf-8");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["keys", "--model", "nosuchnet", "--batch", "2", "--out", d],
            "unknown model",
        ),
        (
            vec!["keys", "--model", "network1", "--out", d],
            "--batch is required",
        ),
        (
            vec!["keys", "--model", "network1", "--batch", "0", "--out", d],
            "at least 1",
        ),
        (
            vec![
                "keys", "--model", "network1", "--batch", "2", "--out", d, "--ring", "32",
            ],
            "does not match the plan",
        ),
        (
            vec![
                "keys",
                "--model-json",
                "/nonexistent/model.json",
                "--batch",
                "1",
                "--out",
                d,
            ],
            "cannot read",
        ),
        (
            vec!["keys", "--plan", "/nonexistent/plan.json", "--out", d],
            "cannot read",
        ),
        (vec!["plan", "--batch", "2"], "required"),
        (
            vec!["serve", "--model", "network1", "--batch", "1"],
            "--listen",
        ),
        (
            vec![
                "serve",
                "--model",
                "network1",
                "--batch",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "/nonexistent/dealer.crt",
            ],
            "go together",
        ),
        (
            vec![
                "serve",
                "--model",
                "network1",
                "--batch",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--ring",
                "32",
            ],
            "does not match the plan",
        ),
        (
            vec![
                "serve",
                "--model",
                "network1",
                "--batch",
                "1",
                "--listen",
                "127.0.0.1:0",
            ],
            "needs mutual TLS",
        ),
        (
            vec![
                "serve",
                "--model",
                "network1",
                "--batch",
                "1",
                "--listen",
                "0.0.0.0:0",
                "--insecure-plaintext",
            ],
            "loopback",
        ),
        (
            vec![
                "serve",
                "--model",
                "network1",
                "--batch",
                "1",
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                "d.crt",
                "--tls-peer0",
                "p0.crt",
            ],
            "--tls-key, --tls-peer1 missing",
        ),
    ];
    let (sk, _) = identity(dir.path());
    let mut cases = cases;
    for (args, _) in cases.iter_mut() {
        if args[0] == "keys" || args[0] == "serve" {
            args.extend(["--signing-key", s(&sk)]);
        }
    }
    cases.push((
        vec!["keys", "--model", "network1", "--batch", "2", "--out", d],
        "--signing-key",
    ));
    cases.push((
        vec![
            "keys",
            "--model",
            "network1",
            "--batch",
            "2",
            "--out",
            d,
            "--signing-key",
            "/nonexistent/dealer.key",
        ],
        "ariann-dealer identity",
    ));
    cases.push((vec!["verify", "x.keys"], "--dealer-pubkey"));
    for (args, msg) in cases {
        let o = dealer(&args);
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{args:?} succeeded");
        assert!(err.contains(msg), "{args:?}: stderr {err:?} lacks {msg:?}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    // An output path that is a file, not a directory.
    let f = dir.path().join("file");
    std::fs::write(&f, b"x").expect("write");
    let o = dealer(&[
        "keys",
        "--signing-key",
        s(&sk),
        "--model",
        "network1",
        "--batch",
        "1",
        "--out",
        f.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).starts_with("error: "),
        "{}",
        text(&o.stderr)
    );
    // A garbled JSON plan.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        b"{\"format\": \"ariann-plan/1\", \"ring_bits\": 64, \"gates\": [{\"gate\": \"relu\"}]}",
    )
    .expect("write");
    let o = dealer(&["plan", "--plan", bad.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("invalid plan"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn model_json_gives_the_same_plan_as_the_zoo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mj = dir.path().join("lenet5.json");
    std::fs::write(&mj, ariann_nn::zoo::lenet5_advertorch().to_json()).expect("write");
    let a = dealer(&["plan", "--model", "lenet5", "--batch", "3", "--hash"]);
    let b = dealer(&[
        "plan",
        "--model-json",
        mj.to_str().expect("utf-8"),
        "--batch",
        "3",
        "--hash",
    ]);
    assert!(
        a.status.success() && b.status.success(),
        "{}",
        text(&b.stderr)
    );
    assert_eq!(text(&a.stdout), text(&b.stdout));
}

/// `ariann-dealer model NAME` prints the zoo model's description, which
/// reads back as the same model; the variants' plans differ in hash.
#[test]
fn model_prints_a_zoo_description_and_variants_have_their_own_plans() {
    let o = dealer(&["model", "resnet20"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let m = ariann_nn::Model::from_json(&text(&o.stdout)).expect("valid description");
    assert_eq!(m, ariann_nn::zoo::resnet20());
    let o = dealer(&["model", "resnet20", "--folded"]);
    let m = ariann_nn::Model::from_json(&text(&o.stdout)).expect("valid description");
    assert_eq!(m, ariann_nn::zoo::resnet20().fold_batchnorm_architecture());
    let o = dealer(&["model", "nope"]);
    assert!(!o.status.success() && text(&o.stderr).contains("the zoo has"));
    let hash = |v: &str| {
        let o = dealer(&[
            "plan",
            "--model",
            "lenet",
            "--batch",
            "2",
            "--hash",
            "--variant",
            v,
        ]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    assert_ne!(hash("one-round"), hash("small-key"));
    let o = dealer(&[
        "plan",
        "--model",
        "lenet",
        "--batch",
        "2",
        "--variant",
        "tiny",
    ]);
    assert!(!o.status.success() && text(&o.stderr).contains("small-key"));
}

#[test]
fn train_plan_is_the_repeated_step_plan_the_parties_expect() {
    use ariann_nn::{Config, Loss, Rounding, TrainConfig, zoo};
    // network1 on 100 images in batches of 16: 6 steps per epoch (4
    // images dropped), 2 epochs; training defaults f = 20, nearest.
    let args = [
        "plan",
        "--train",
        "--model",
        "network1",
        "--batch",
        "16",
        "--epochs",
        "2",
        "--train-images",
        "100",
        "--loss",
        "mse",
        "--hash",
    ];
    let o = dealer(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let cfg = Config {
        frac_bits: 20,
        rounding: Rounding::Nearest,
        ..Config::default()
    };
    let tcfg = TrainConfig {
        loss: Loss::Mse,
        ..TrainConfig::default()
    };
    let plan =
        ariann_nn::train::train_job_plan(&zoo::network1(), 16, &cfg, &tcfg, 12).expect("plan");
    assert_eq!(text(&o.stdout).trim(), to_hex(&plan.hash()));

    // Adam has its own gates, and its eps is in the keys: the plan of
    // `--optimizer adam --eps 1e-5` is the parties' (their betas are not
    // the dealer's business); Adam's settings without Adam are refused.
    let mut adam_args = args.to_vec();
    adam_args.extend(["--optimizer", "adam", "--eps", "1e-5"]);
    let o = dealer(&adam_args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let adam = TrainConfig {
        loss: Loss::Mse,
        optimizer: ariann_nn::Optimizer::Adam {
            beta1: 0.5,
            beta2: 0.5,
            eps: 1e-5,
        },
        ..TrainConfig::default()
    };
    let adam_plan =
        ariann_nn::train::train_job_plan(&zoo::network1(), 16, &cfg, &adam, 12).expect("plan");
    assert_eq!(text(&o.stdout).trim(), to_hex(&adam_plan.hash()));
    assert_ne!(adam_plan.hash(), plan.hash());
    let mut eps_only = args.to_vec();
    eps_only.extend(["--eps", "1e-5"]);
    let o = dealer(&eps_only);
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("only apply with optimizer adam"),
        "{}",
        text(&o.stderr)
    );

    // lenet ends with a ReLU on the logits: dropped unless kept.
    let lenet = |keep: bool| {
        let mut a = vec![
            "plan",
            "--train",
            "--model",
            "lenet",
            "--batch",
            "2",
            "--train-images",
            "2",
            "--hash",
        ];
        if keep {
            a.push("--keep-final-relu");
        }
        let o = dealer(&a);
        assert!(o.status.success(), "{}", text(&o.stderr));
        text(&o.stdout)
    };
    let mut m = zoo::lenet();
    assert!(matches!(m.layers.pop(), Some(ariann_nn::Layer::Relu)));
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        ..TrainConfig::default()
    };
    let plan = ariann_nn::train::train_job_plan(&m, 2, &cfg, &tcfg, 1).expect("plan");
    assert_eq!(lenet(false).trim(), to_hex(&plan.hash()));
    assert_ne!(lenet(false), lenet(true));

    // Refusals: a training option without --train (1: checked once the
    // job file, which may say `train = true`, is read), then jobs that
    // cannot train (1, with a message).
    let o = dealer(&[
        "plan", "--model", "network1", "--batch", "16", "--epochs", "2",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("--epochs only apply with --train"),
        "{}",
        text(&o.stderr)
    );
    for (extra, want) in [
        (
            vec!["--batch", "12", "--train-images", "64"],
            "power of two",
        ),
        (vec!["--batch", "16"], "--train-images"),
        (vec!["--batch", "16", "--train-images", "8"], "no batch"),
        (
            vec!["--batch", "16", "--train-images", "64", "--epochs", "0"],
            "at least 1",
        ),
    ] {
        let mut a = vec!["plan", "--train", "--model", "network1"];
        a.extend(extra);
        let o = dealer(&a);
        assert_eq!(o.status.code(), Some(1), "{a:?}");
        assert!(text(&o.stderr).contains(want), "{a:?}: {}", text(&o.stderr));
    }
}

/// `plan` prints the job's sizes before any work, from the gate costs: the
/// numbers the test computes from the same plan with `plan_cost` and
/// `key_file_len`; the key files it then writes have the announced size.
#[test]
fn plan_prints_sizes_and_keys_refuses_what_does_not_fit() {
    use ariann_dealer::keyfile::key_file_len;
    use ariann_mpc::cost::plan_cost;
    use ariann_nn::{Config, Variant, zoo};
    let cfg = Config {
        variant: Variant::SmallKey,
        ..Config::default()
    };
    let plan = ariann_nn::plan(&zoo::lenet(), 3, &cfg).expect("plan");
    let cost = plan_cost(&plan.gates, 64).expect("cost");
    let file = key_file_len(&plan.gates, 64).expect("file length");
    let o = dealer(&[
        "plan",
        "--model",
        "lenet",
        "--batch",
        "3",
        "--variant",
        "small-key",
    ]);
    let out = text(&o.stdout);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let line = |key: &str| -> String {
        out.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key:?} line in {out}"))
            .to_string()
    };
    assert!(line("plan hash:").ends_with(&to_hex(&plan.hash())), "{out}");
    assert!(
        line("keys:").contains(&format!("{} bytes per party", cost.total.key_bytes)),
        "{out}"
    );
    assert!(
        line("key files:").contains(&format!("{file} bytes each")),
        "{out}"
    );
    assert!(
        line("online:").contains(&format!("{} bytes sent per party", cost.total.bytes_sent)),
        "{out}"
    );
    assert_eq!(
        line("rounds:").trim_start_matches("rounds:").trim(),
        cost.total.rounds.to_string()
    );
    assert!(line("bundles:").contains(&plan.gates.len().to_string()));

    // `keys` refuses when both files do not fit (the free space given by a
    // hidden test option), points to `serve`, and writes nothing.
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("keys");
    let d = out_dir.to_str().expect("utf-8");
    let free = (2 * file - 1).to_string();
    let (sk, _) = identity(dir.path());
    let args = [
        "keys",
        "--signing-key",
        s(&sk),
        "--model",
        "lenet",
        "--batch",
        "3",
        "--variant",
        "small-key",
        "--out",
        d,
        "--no-progress",
        "--assume-free-bytes",
    ];
    let mut refused = args.to_vec();
    refused.push(&free);
    let o = dealer(&refused);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ariann-dealer serve") && err.contains("free"),
        "{err}"
    );
    assert!(!out_dir.exists(), "nothing is written");
    // Exactly enough room: the files are written, of the announced size.
    let enough = (2 * file).to_string();
    let mut fits = args.to_vec();
    fits.push(&enough);
    let o = dealer(&fits);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let len = std::fs::metadata(out_dir.join("party0.keys"))
        .expect("written")
        .len();
    assert_eq!(len, file);
}

/// Writes key files of a tiny plan with the CLI; returns (dir, plan,
/// dealer.pub, party 0's file).
fn tiny_keys() -> (tempfile::TempDir, Plan, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sk, pk) = identity(dir.path());
    let plan = Plan::new(
        64,
        vec![
            GateDesc::Relu { m: 3, k: 16 },
            GateDesc::Relu { m: 2, k: 16 },
        ],
    );
    let pf = dir.path().join("plan.json");
    std::fs::write(&pf, to_json(&plan)).expect("write");
    let out = dir.path().join("keys");
    let o = dealer(&[
        "keys",
        "--signing-key",
        s(&sk),
        "--plan",
        s(&pf),
        "--out",
        s(&out),
        "--no-progress",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in [&sk, &out.join("party0.keys"), &out.join("party1.keys")] {
            let mode = std::fs::metadata(f).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", f.display());
        }
    }
    (dir, plan, pk, out.join("party0.keys"))
}

#[test]
fn verify_says_already_used_for_consumed_files() {
    let (dir, plan, pk, p0) = tiny_keys();
    let state = dir.path().join("state");
    let trust = KeyTrust {
        dealer: DealerPublicKey::load(&pk).expect("pub"),
        ledger: Ledger::open(&state).expect("ledger"),
    };
    {
        let mut src =
            KeyFileSource::<u64>::open(&p0, &Expected::for_plan(Party::P0, &plan), &trust)
                .expect("open");
        src.next_bundle(
            Party::P0,
            &BundleTag {
                index: 0,
                gate: plan.gates[0],
            },
        )
        .expect("bundle 0");
    }
    let v = dealer(&["verify", "--dealer-pubkey", s(&pk), s(&p0)]);
    assert_eq!(v.status.code(), Some(1));
    let out = text(&v.stdout);
    assert!(
        out.contains("signature ok")
            && out.contains("already used (1 of 2 bundles consumed, journal)"),
        "{out}"
    );
    assert!(
        text(&v.stderr).contains("already used"),
        "{}",
        text(&v.stderr)
    );
    // Without its journal, the party host's ledger still knows.
    std::fs::remove_file(journal_path(&p0)).expect("rm journal");
    let v = dealer(&["verify", "--dealer-pubkey", s(&pk), s(&p0)]);
    assert!(v.status.success(), "the file alone looks unused");
    let v = dealer(&[
        "verify",
        "--dealer-pubkey",
        s(&pk),
        "--state-dir",
        s(&state),
        s(&p0),
    ]);
    assert_eq!(v.status.code(), Some(1));
    assert!(
        text(&v.stdout).contains("already used (ledger"),
        "{}",
        text(&v.stdout)
    );
}

#[cfg(unix)]
#[test]
fn sigint_while_writing_leaves_no_tmp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sk, _) = identity(dir.path());
    let out = dir.path().join("keys");
    // A large job (VGG16): still writing when the signal comes.
    let child = Command::new(env!("CARGO_BIN_EXE_ariann-dealer"))
        .args([
            "keys",
            "--signing-key",
            s(&sk),
            "--model",
            "vgg16",
            "--batch",
            "1",
            "--out",
            s(&out),
            "--no-progress",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let tmp = out.join("party0.keys.tmp");
    let start = std::time::Instant::now();
    while !tmp.exists() {
        assert!(start.elapsed().as_secs() < 60, "no .tmp appeared");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let k = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(k.success());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    for name in [
        "party0.keys.tmp",
        "party1.keys.tmp",
        "party0.keys",
        "party1.keys",
    ] {
        assert!(!out.join(name).exists(), "{name} left behind");
    }
}
