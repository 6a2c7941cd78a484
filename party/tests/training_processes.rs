//! Private training through the binaries: `ariann-dealer serve --train`
//! (or `keys --train`) and two `ariann-party --train` processes on
//! loopback train the tiny CNN on a synthetic set; the weights they reveal
//! (or the shares they keep) equal the same job trained in this process on
//! the cleartext fixed-point backend, bit for bit. A job that differs in a
//! hyper-parameter is refused at the hello (exit 5), before any data is
//! shared; bad options and assets fail before the link.

mod common;
use ariann_fss::Party;
use ariann_nn::train::decode_params;
use ariann_nn::{Config, Init, Loss, Params, Rounding, TrainConfig, Weights};
use ariann_party::{LrSchedule, Reveal, TrainJob};
use common::{
    dealer_bin, model, party_bin, signing_args, train_clear, training_set, trust_args, wait,
    wait_ready,
};
use rand::SeedableRng;
use rand_chacha::{ChaCha8Rng, ChaCha20Rng};
use safetensors::Dtype;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

const N: usize = 72;
const BATCH: usize = 16;
const EPOCHS: usize = 2;
const SHUFFLE: u64 = 11;

/// The job's options common to the dealer and both parties: `spec` is the
/// loss, then any further options (e.g. `"ce --optimizer adam"`).
fn plan_args(spec: &str) -> Vec<String> {
    let mut words = spec.split_whitespace();
    let loss = words.next().unwrap_or("ce");
    let mut v: Vec<String> = [
        "--train",
        "--batch",
        &BATCH.to_string(),
        "--epochs",
        &EPOCHS.to_string(),
        "--train-images",
        &N.to_string(),
        "--loss",
        loss,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(words.map(str::to_string));
    v
}

/// The job the parties run with `plan_args(loss)` and the learning-rate
/// options of `party_args`.
fn job(loss: Loss, reveal: Reveal) -> TrainJob {
    TrainJob {
        model: model(),
        batch: BATCH,
        cfg: Config {
            frac_bits: 20,
            rounding: Rounding::Nearest,
            ..Config::default()
        },
        tcfg: TrainConfig {
            loss,
            momentum: 0.9,
            weight_decay: 5e-4,
            optimizer: ariann_nn::Optimizer::Sgd,
        },
        epochs: EPOCHS,
        images: N,
        lr: LrSchedule {
            lr: 0.1,
            step_epochs: Some(1),
            gamma: 0.5,
        },
        reveal,
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    weights: Weights,
    images: Vec<f32>,
    labels: Vec<usize>,
}

impl Fixture {
    /// The model, the owner's initial weights and the training set (labels
    /// as `label_dtype`).
    fn new(label_dtype: Dtype) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = model();
        let weights = Weights::random(&m, &mut ChaCha8Rng::seed_from_u64(3));
        let (images, labels) = training_set(&m, N, 4, 5);
        std::fs::write(dir.path().join("model.json"), m.to_json()).expect("write");
        std::fs::write(
            dir.path().join("init.safetensors"),
            weights.to_safetensors().expect("encode"),
        )
        .expect("write");
        let f = Fixture {
            dir,
            weights,
            images,
            labels,
        };
        f.write_data("train.safetensors", &f.labels, label_dtype);
        f
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// A training set file with these labels.
    fn write_data(&self, name: &str, labels: &[usize], dtype: Dtype) {
        let img: Vec<u8> = self.images.iter().flat_map(|v| v.to_le_bytes()).collect();
        let lab: Vec<u8> = match dtype {
            Dtype::U8 => labels.iter().map(|l| *l as u8).collect(),
            _ => labels
                .iter()
                .flat_map(|l| (*l as i64).to_le_bytes())
                .collect(),
        };
        let views = vec![
            (
                "images",
                safetensors::tensor::TensorView::new(Dtype::F32, vec![N, 1, 6, 6], &img)
                    .expect("view"),
            ),
            (
                "labels",
                safetensors::tensor::TensorView::new(dtype, vec![labels.len()], &lab)
                    .expect("view"),
            ),
        ];
        std::fs::write(
            self.path(name),
            safetensors::serialize(views, None).expect("serialize"),
        )
        .expect("write");
    }

    /// One party: the job options, the hyper-parameters of [`job`] (unless
    /// `extra` gives them), its asset, `extra`.
    fn party(&self, id: u8, loss: &str, keys: &[String], extra: &[&str]) -> Command {
        let mut c = Command::new(party_bin());
        c.args(["--id", &id.to_string()])
            .args(trust_args(self.dir.path(), id))
            .args(plan_args(loss));
        for (flag, value) in [
            ("--lr", "0.1"),
            ("--lr-step", "1"),
            ("--lr-gamma", "0.5"),
            ("--momentum", "0.9"),
            ("--weight-decay", "5e-4"),
        ] {
            if !extra.contains(&flag) {
                c.args([flag, value]);
            }
        }
        c.args(["--connect-timeout", "5", "--exchange-timeout", "20"])
            .arg("--model-json")
            .arg(self.path("model.json"))
            .args(keys)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Party 0 (listening) and party 1 (connecting), each with its options;
    /// their exits.
    fn run(
        &self,
        loss: &str,
        keys: [Vec<String>; 2],
        extra0: &[&str],
        extra1: &[&str],
    ) -> [(ExitStatus, String); 2] {
        let ready = self.path("ready");
        let _ = std::fs::remove_file(&ready);
        let mut c0 = self
            .party(0, loss, &keys[0], extra0)
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .spawn()
            .expect("spawn party 0");
        let addr = wait_ready(&mut c0, &ready).unwrap_or_else(|| "127.0.0.1:9".into());
        let c1 = self
            .party(1, loss, &keys[1], extra1)
            .args(["--peer", &addr])
            .spawn()
            .expect("spawn party 1");
        let p1 = wait(c1, "party 1");
        let p0 = wait(c0, "party 0");
        [p0, p1]
    }

    /// `ariann-dealer keys --train` into `out/`; the parties' `--keys`.
    fn key_files(&self, loss: &str, out: &str) -> [Vec<String>; 2] {
        let st = Command::new(dealer_bin())
            .args(["keys", "--no-progress"])
            .args(signing_args(self.dir.path()))
            .args(plan_args(loss))
            .arg("--model-json")
            .arg(self.path("model.json"))
            .arg("--out")
            .arg(self.path(out))
            .stdout(Stdio::null())
            .status()
            .expect("run ariann-dealer");
        assert!(st.success(), "ariann-dealer keys --train failed");
        [0, 1].map(|i| {
            vec![
                "--keys".to_string(),
                self.path(&format!("{out}/party{i}.keys"))
                    .display()
                    .to_string(),
            ]
        })
    }

    /// `ariann-dealer serve --train` on a free port.
    fn dealer(&self, loss: &str) -> (Child, String) {
        let ready = self.path("dealer-ready");
        let mut child = Command::new(dealer_bin())
            .arg("serve")
            .args(signing_args(self.dir.path()))
            .args(plan_args(loss))
            .args(["--wait", "20", "--insecure-plaintext"])
            .args(["--listen", "127.0.0.1:0", "--ready-file"])
            .arg(&ready)
            .arg("--model-json")
            .arg(self.path("model.json"))
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
}

fn ok(r: &(ExitStatus, String), who: &str) {
    assert!(r.0.success(), "{who}:\n{}", r.1);
}

fn data_owner(f: &Fixture) -> Vec<String> {
    vec![
        "--train-data".into(),
        f.path("train.safetensors").display().to_string(),
        "--shuffle-seed".into(),
        SHUFFLE.to_string(),
    ]
}

fn s(a: &[String]) -> Vec<&str> {
    a.iter().map(String::as_str).collect()
}

#[test]
fn training_through_the_dealer_reveals_the_cleartext_fixed_point_weights() {
    let f = Fixture::new(Dtype::U8);
    let start = Instant::now();
    let (dealer, addr) = f.dealer("ce");
    let keys = [0, 1].map(|_| vec!["--dealer".to_string(), addr.clone()]);
    let init = f.path("init.safetensors").display().to_string();
    let out = f.path("trained.safetensors").display().to_string();
    let mut p1 = data_owner(&f);
    p1.extend([
        "--reveal-to".into(),
        "1".into(),
        "--out".into(),
        out.clone(),
    ]);
    let [r0, r1] = f.run(
        "ce",
        keys,
        &["--weights", &init, "--reveal-to", "1"],
        &s(&p1),
    );
    let d = wait(dealer, "the dealer");
    let secs = start.elapsed().as_secs_f64();
    ok(&r0, "party 0");
    ok(&r1, "party 1");
    ok(&d, "the dealer");
    eprintln!(
        "dealer serve + two parties, {EPOCHS} epochs of {} steps: {secs:.2} s",
        N / BATCH
    );
    eprintln!("party 1:\n{}", r1.1);
    assert!(
        r0.1.contains("nothing is revealed to this party"),
        "{}",
        r0.1
    );
    assert!(r1.1.contains("epoch 2/2"), "per-epoch lines:\n{}", r1.1);

    let j = job(Loss::CrossEntropy, Reveal::To(Party::P1));
    let want = decode_params(
        &j.model,
        &train_clear(&j, &f.weights, &f.images, &f.labels, SHUFFLE),
        &j.cfg,
    )
    .expect("decode");
    let got = Weights::from_safetensors(&std::fs::read(&out).expect("party 1 wrote the weights"))
        .expect("weights");
    assert_eq!(
        got, want,
        "revealed weights != cleartext fixed-point training"
    );
    assert_ne!(got, f.weights, "the weights moved");
}

/// Adam through the binaries: `--optimizer adam --eps ...` at the dealer
/// (its keys) and both parties; the revealed weights equal the cleartext
/// fixed-point Adam run.
#[test]
fn adam_through_the_dealer_equals_the_cleartext_fixed_point_run() {
    let f = Fixture::new(Dtype::U8);
    let spec = "ce --optimizer adam --eps 0.00001";
    let (dealer, addr) = f.dealer(spec);
    let keys = [0, 1].map(|_| vec!["--dealer".to_string(), addr.clone()]);
    let init = f.path("init.safetensors").display().to_string();
    let out = f.path("adam.safetensors").display().to_string();
    let mut p1 = data_owner(&f);
    p1.extend([
        "--reveal-to".into(),
        "1".into(),
        "--out".into(),
        out.clone(),
    ]);
    let [r0, r1] = f.run(
        spec,
        keys,
        &["--weights", &init, "--reveal-to", "1"],
        &s(&p1),
    );
    let d = wait(dealer, "the dealer");
    ok(&r0, "party 0");
    ok(&r1, "party 1");
    ok(&d, "the dealer");
    let mut j = job(Loss::CrossEntropy, Reveal::To(Party::P1));
    j.tcfg.optimizer = ariann_nn::Optimizer::Adam {
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-5,
    };
    let want = decode_params(
        &j.model,
        &train_clear(&j, &f.weights, &f.images, &f.labels, SHUFFLE),
        &j.cfg,
    )
    .expect("decode");
    let got = Weights::from_safetensors(&std::fs::read(&out).expect("party 1 wrote the weights"))
        .expect("weights");
    assert_eq!(got, want, "revealed weights != cleartext fixed-point Adam");
    assert_ne!(got, f.weights, "the weights moved");
}

/// Stochastic rounding through the binaries (`--rounding stochastic` at the
/// dealer and both parties: `trunc_stoch` keys, no FSS key for any
/// truncation): the revealed weights follow the cleartext fixed-point run
/// with its own coins within a few ulps (not bit for bit: the private coins
/// are the dealer's masks), and they moved.
#[test]
fn stochastic_rounding_through_the_dealer_follows_the_fixed_point_run() {
    let f = Fixture::new(Dtype::U8);
    let spec = "ce --rounding stochastic";
    let (dealer, addr) = f.dealer(spec);
    let keys = [0, 1].map(|_| vec!["--dealer".to_string(), addr.clone()]);
    let init = f.path("init.safetensors").display().to_string();
    let out = f.path("stoch.safetensors").display().to_string();
    let mut p1 = data_owner(&f);
    p1.extend([
        "--reveal-to".into(),
        "1".into(),
        "--out".into(),
        out.clone(),
    ]);
    let [r0, r1] = f.run(
        spec,
        keys,
        &["--weights", &init, "--reveal-to", "1"],
        &s(&p1),
    );
    let d = wait(dealer, "the dealer");
    ok(&r0, "party 0");
    ok(&r1, "party 1");
    ok(&d, "the dealer");
    let mut j = job(Loss::CrossEntropy, Reveal::To(Party::P1));
    j.cfg.rounding = Rounding::Stochastic;
    let want = decode_params(
        &j.model,
        &train_clear(&j, &f.weights, &f.images, &f.labels, SHUFFLE),
        &j.cfg,
    )
    .expect("decode");
    let got = Weights::from_safetensors(&std::fs::read(&out).expect("party 1 wrote the weights"))
        .expect("weights");
    let mut worst = 0f32;
    for (name, _, t) in got.iter() {
        let (_, w) = want.get(name).expect("same names");
        for (a, b) in t.iter().zip(w) {
            worst = worst.max((a - b).abs());
        }
    }
    eprintln!("stochastic rounding: revealed vs cleartext run, largest difference {worst:.2e}");
    assert!(
        worst <= 1e-3,
        "revealed weights far from the fixed-point run: {worst}"
    );
    assert_ne!(got, want, "the private coins are the dealer's");
    assert_ne!(got, f.weights, "the weights moved");
}

#[test]
fn training_with_key_files_keeps_shares_that_add_up_to_the_cleartext_run() {
    let f = Fixture::new(Dtype::I64);
    let keys = f.key_files("mse", "keys");
    let out = [0, 1].map(|i| {
        f.path(&format!("share{i}.safetensors"))
            .display()
            .to_string()
    });
    let mut p1 = data_owner(&f);
    p1.extend([
        "--reveal-to".into(),
        "shares".into(),
        "--out".into(),
        out[1].clone(),
    ]);
    let start = Instant::now();
    let [r0, r1] = f.run(
        "mse",
        keys,
        &[
            "--init",
            "he",
            "--init-seed",
            "3",
            "--reveal-to",
            "shares",
            "--out",
            &out[0],
            "-q",
        ],
        &s(&p1),
    );
    ok(&r0, "party 0");
    ok(&r1, "party 1");
    eprintln!(
        "two parties with key files: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert!(!r0.1.contains("epoch 1/2"), "quiet:\n{}", r0.1);

    let j = job(Loss::Mse, Reveal::Shares);
    let w0 = Weights::init(&j.model, Init::He, &mut ChaCha20Rng::seed_from_u64(3));
    let want = train_clear(&j, &w0, &f.images, &f.labels, SHUFFLE);
    let share =
        |p: &str| Params::from_safetensors(&std::fs::read(p).expect("share")).expect("params");
    let got = Params::reconstruct(&share(&out[0]), &share(&out[1])).expect("reconstruct");
    assert!(
        got == want,
        "the shares add up to the cleartext fixed-point training"
    );
}

#[test]
fn other_hyper_parameters_are_refused_before_any_data_is_shared() {
    let f = Fixture::new(Dtype::U8);
    let init = f.path("init.safetensors").display().to_string();
    let out = f.path("trained.safetensors");
    let mut p1 = data_owner(&f);
    p1.extend([
        "--reveal-to".into(),
        "1".into(),
        "--out".into(),
        out.display().to_string(),
    ]);
    // Party 1 trains with another learning rate or momentum: the same
    // plan, so the keys are accepted; the digests differ.
    for other in [["--lr", "0.05"], ["--momentum", "0.5"]] {
        let keys = f.key_files("mse", &format!("keys{}", other[0]));
        let mut extra1 = s(&p1);
        extra1.extend(other);
        let [r0, r1] = f.run(
            "mse",
            keys,
            &["--weights", &init, "--reveal-to", "1"],
            &extra1,
        );
        for (p, (st, err)) in [(0, &r0), (1, &r1)] {
            assert_eq!(st.code(), Some(5), "party {p} {other:?}:\n{err}");
            assert!(err.contains("another job"), "party {p}:\n{err}");
            assert!(!err.contains("epoch 1/"), "no step ran:\n{err}");
        }
        assert!(!out.exists(), "nothing was written");
    }
}

/// One party alone, failing before it reaches keys or peer.
fn alone(f: &Fixture, args: &[&str]) -> (i32, String) {
    let c = Command::new(party_bin())
        .args(trust_args(f.dir.path(), 1))
        .args(["--id", "1", "--peer", "127.0.0.1:9", "--keys"])
        .arg(f.path("no.keys"))
        .arg("--model-json")
        .arg(f.path("model.json"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let (st, err) = wait(c, "party");
    (st.code().unwrap_or(-1), err)
}

#[test]
fn bad_training_options_and_assets_fail_before_the_link() {
    let f = Fixture::new(Dtype::U8);
    let data = f.path("train.safetensors").display().to_string();
    let mut bad = f.labels.clone();
    bad[5] = 7;
    f.write_data("bad.safetensors", &bad, Dtype::U8);
    let bad = f.path("bad.safetensors").display().to_string();
    let out = f.path("o.safetensors").display().to_string();
    let common = ["--train", "--reveal-to", "1", "--out", &out];
    let with = |more: &[&str]| -> Vec<String> {
        common.iter().chain(more).map(|s| s.to_string()).collect()
    };
    for (args, code, want) in [
        (
            with(&["--train-data", &data, "--batch", "12"]),
            2,
            "power of two",
        ),
        (
            with(&[
                "--train-data",
                &data,
                "--batch",
                "16",
                "--train-images",
                "64",
            ]),
            2,
            "holds 72 images",
        ),
        (
            with(&["--train-data", &bad, "--batch", "16"]),
            1,
            "label 7 of image 5",
        ),
        (
            with(&["--train-data", &data, "--batch", "16", "--init", "he"]),
            2,
            "not both",
        ),
        (
            with(&["--train-data", &data, "--batch", "16", "--output-to", "1"]),
            2,
            "--reveal-to",
        ),
        (
            vec![
                "--batch".into(),
                "16".into(),
                "--epochs".into(),
                "2".into(),
                "--input".into(),
                data.clone(),
            ],
            2,
            "only apply with --train",
        ),
        (
            vec![
                "--train".into(),
                "--batch".into(),
                "16".into(),
                "--reveal-to".into(),
                "0".into(),
                "--out".into(),
                out.clone(),
                "--train-data".into(),
                data.clone(),
            ],
            2,
            "receives nothing",
        ),
    ] {
        let (got, err) = alone(&f, &s(&args));
        assert_eq!(got, code, "{args:?}:\n{err}");
        assert!(err.contains(want), "{args:?} should say {want:?}:\n{err}");
    }
    assert!(!Path::new(&out).exists());
}

/// One job file for a training job: `ariann-dealer keys --job` and both
/// `ariann-party --job` processes (the training options and plan settings
/// all from the file, away from their defaults) run the same plan, and the
/// revealed weights equal the same job trained in cleartext fixed point.
#[test]
fn a_training_job_file_drives_the_dealer_and_both_parties() {
    let f = Fixture::new(Dtype::U8);
    let job_path = f.path("train.toml");
    std::fs::write(
        &job_path,
        format!(
            "model-json = \"model.json\"\ntrain = true\nbatch = {BATCH}\nepochs = 1\n\
             train-images = {N}\nloss = \"mse\"\nfrac-bits = 18\nk-cmp = 30\n\
             max-gate-elems = 100\nvariant = \"small-key\"\nrounding = \"floor\"\n\
             lr = 0.1\nmomentum = 0.8\nweight-decay = 0.001\nreveal-to = \"1\"\n"
        ),
    )
    .expect("write job");
    let jp = job_path.display().to_string();
    let keys = f.path("keys");
    let st = Command::new(dealer_bin())
        .args(["keys", "--no-progress", "--job", &jp])
        .args(signing_args(f.dir.path()))
        .arg("--out")
        .arg(&keys)
        .stdout(Stdio::null())
        .status()
        .expect("run ariann-dealer");
    assert!(st.success(), "ariann-dealer keys --job failed");
    let ready = f.path("ready");
    let init = f.path("init.safetensors").display().to_string();
    let out = f.path("trained.safetensors").display().to_string();
    let party = |id: u8| {
        let mut c = Command::new(party_bin());
        c.args(["--job", &jp, "--id", &id.to_string(), "--keys"])
            .arg(keys.join(format!("party{id}.keys")))
            .args(["--connect-timeout", "5", "--exchange-timeout", "20", "-q"])
            .args(trust_args(f.dir.path(), id))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    };
    let mut c0 = party(0)
        .args([
            "--weights",
            &init,
            "--listen",
            "127.0.0.1:0",
            "--ready-file",
        ])
        .arg(&ready)
        .spawn()
        .expect("spawn party 0");
    let addr = wait_ready(&mut c0, &ready).expect("party 0 listens");
    let c1 = party(1)
        .args(s(&data_owner(&f)))
        .args(["--out", &out, "--peer", &addr])
        .spawn()
        .expect("spawn party 1");
    let r1 = wait(c1, "party 1");
    let r0 = wait(c0, "party 0");
    ok(&r0, "party 0");
    ok(&r1, "party 1");

    let j = TrainJob {
        model: model(),
        batch: BATCH,
        cfg: Config {
            frac_bits: 18,
            k_cmp: 30,
            max_gate_elems: 100,
            rounding: Rounding::Floor,
            variant: ariann_nn::Variant::SmallKey,
            ..Config::default()
        },
        tcfg: TrainConfig {
            loss: Loss::Mse,
            momentum: 0.8,
            weight_decay: 0.001,
            optimizer: ariann_nn::Optimizer::Sgd,
        },
        epochs: 1,
        images: N,
        lr: LrSchedule {
            lr: 0.1,
            step_epochs: None,
            gamma: 0.1,
        },
        reveal: Reveal::To(Party::P1),
    };
    let want = decode_params(
        &j.model,
        &train_clear(&j, &f.weights, &f.images, &f.labels, SHUFFLE),
        &j.cfg,
    )
    .expect("decode");
    let got = Weights::from_safetensors(&std::fs::read(&out).expect("party 1 wrote the weights"))
        .expect("weights");
    assert_eq!(
        got, want,
        "revealed weights != cleartext fixed-point training"
    );
}
