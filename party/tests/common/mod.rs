//! Shared pieces of the process tests: binaries, the tiny CNN job and its
//! files, waiting for children with a deadline.
#![allow(dead_code, unreachable_pub)]

use ariann_mpc::Clear;
use ariann_nn::layers::{Conv2d, Linear, MaxPool2d};
use ariann_nn::{
    Config, Layer, Model, Params, TrainState, Weights, decode_output, encode_input, encode_targets,
    forward_fixed, train_step,
};
use ariann_party::{TrainJob, epoch_order};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_chacha::ChaCha20Rng;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const BATCH: usize = 3;
/// No process of these tests may take longer.
pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn party_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ariann-party"))
}

/// The dealer binary, built next to this package's binary by
/// `cargo test --workspace` (another package of the workspace).
pub fn dealer_bin() -> PathBuf {
    let p = party_bin().with_file_name(format!("ariann-dealer{}", std::env::consts::EXE_SUFFIX));
    assert!(
        p.exists(),
        "{} is missing: run the tests with `cargo test --workspace` so the dealer binary is built",
        p.display()
    );
    p
}

/// The dealer identity of a test directory (`DIR/id/dealer.key`,
/// `DIR/id/dealer.pub`), created on first use.
pub fn identity(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let id = dir.join("id");
    let (sk, pk) = (id.join("dealer.key"), id.join("dealer.pub"));
    // Tests running in parallel share one directory (usability.rs): one
    // creates the identity, the others wait for it (not a second write,
    // which `write_identity` refuses).
    static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if !pk.exists() {
        ariann_dealer::auth::DealerSigningKey::generate()
            .expect("OS randomness")
            .write_identity(&id)
            .expect("write the dealer identity");
    }
    (sk, pk)
}

/// `--signing-key DIR/id/dealer.key` for `ariann-dealer keys` and `serve`.
pub fn signing_args(dir: &std::path::Path) -> Vec<String> {
    vec![
        "--signing-key".into(),
        identity(dir).0.display().to_string(),
    ]
}

/// Party `id`'s `--dealer-pubkey DIR/id/dealer.pub --state-dir DIR/state<id>`
/// (each party its own ledger, as on two hosts).
pub fn trust_args(dir: &std::path::Path, id: u8) -> Vec<String> {
    vec![
        "--dealer-pubkey".into(),
        identity(dir).1.display().to_string(),
        "--state-dir".into(),
        dir.join(format!("state{id}")).display().to_string(),
    ]
}

/// A small CNN: conv, ReLU, max-pool, linear.
pub fn model() -> Model {
    Model {
        name: "tiny-cnn".into(),
        input: vec![1, 6, 6],
        layers: vec![
            Layer::Conv2d(Conv2d {
                name: "conv".into(),
                c: 1,
                oc: 3,
                k: 3,
                stride: 1,
                pad: 1,
                bias: true,
            }),
            Layer::Relu,
            Layer::MaxPool2d(MaxPool2d {
                k: 2,
                stride: 2,
                pad: 0,
            }),
            Layer::Flatten,
            Layer::Linear(Linear {
                name: "fc".into(),
                inp: 27,
                out: 4,
                bias: true,
            }),
        ],
    }
}

/// A job directory: model description, the owner's weights and the data
/// owner's inputs (`weights.safetensors`, `input.safetensors`).
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub weights: Weights,
    pub x: Vec<f32>,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        let m = model();
        let weights = Weights::random(&m, &mut rng);
        let x: Vec<f32> = (0..BATCH * m.input_len())
            .map(|_| rng.random_range(0.0..1.0))
            .collect();
        std::fs::write(dir.path().join("model.json"), m.to_json()).expect("write");
        std::fs::write(
            dir.path().join("weights.safetensors"),
            weights.to_safetensors().expect("encode"),
        )
        .expect("write");
        let mut input = Weights::new();
        input
            .insert("input", vec![BATCH, 1, 6, 6], x.clone())
            .expect("input");
        std::fs::write(
            dir.path().join("input.safetensors"),
            input.to_safetensors().expect("encode"),
        )
        .expect("write");
        Fixture { dir, weights, x }
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `ariann-dealer keys` for the model at `batch` into `out`.
    pub fn keys(&self, out: &str, batch: usize) {
        self.keys_batches(out, batch, 1);
    }

    /// `ariann-dealer keys` for a job of `batches` batches of `batch`.
    pub fn keys_batches(&self, out: &str, batch: usize, batches: usize) {
        let st = Command::new(dealer_bin())
            .args(["keys", "--no-progress", "--batch", &batch.to_string()])
            .args(["--batches", &batches.to_string()])
            .args(signing_args(self.dir.path()))
            .arg("--model-json")
            .arg(self.path("model.json"))
            .arg("--out")
            .arg(self.path(out))
            .stdout(Stdio::null())
            .status()
            .expect("run ariann-dealer");
        assert!(st.success(), "ariann-dealer keys failed");
    }

    /// The fixed-point cleartext output of the job.
    pub fn expected(&self) -> Vec<f64> {
        self.expected_of(&self.x)
    }

    /// The fixed-point cleartext output of a batch of `BATCH` inputs `x`.
    pub fn expected_of(&self, x: &[f32]) -> Vec<f64> {
        let cfg = Config::default();
        let xe = encode_input(x, &cfg).expect("encode");
        decode_output(
            &forward_fixed(&model(), &self.weights, &xe, BATCH, &cfg).expect("fixed"),
            &cfg,
        )
    }
}

/// Waits for `child` until the deadline; a hang kills it and fails the test.
pub fn wait(mut child: Child, who: &str) -> (ExitStatus, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            return (st, String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{who} did not exit within {DEADLINE:?}: a hang");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a ready file written by a child once it listens.
pub fn wait_ready(child: &mut Child, file: &std::path::Path) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if let Ok(addr) = std::fs::read_to_string(file)
            && !addr.is_empty()
        {
            return Some(addr);
        }
        if child.try_wait().expect("poll").is_some() {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("{} neither became ready nor exited", file.display());
}

/// A synthetic training set for `model`: `n` images in `[0, 1)` and labels
/// below `classes`.
pub fn training_set(model: &Model, n: usize, classes: usize, seed: u64) -> (Vec<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * model.input_len())
        .map(|_| rng.random_range(0.0..1.0))
        .collect();
    let y = (0..n).map(|_| rng.random_range(0..classes)).collect();
    (x, y)
}

/// The reference of a training job: the same steps on the cleartext
/// fixed-point backend, from the same initial weights, in the order the
/// data owner draws with `shuffle_seed` (one generator for all epochs,
/// `N / batch` steps per epoch), with the job's schedule. Returns the
/// trained fixed-point parameters.
pub fn train_clear(
    job: &TrainJob,
    w: &Weights,
    images: &[f32],
    labels: &[usize],
    shuffle_seed: u64,
) -> Params {
    let (model, cfg, batch) = (&job.model, &job.cfg, job.batch);
    let mut state = TrainState::new(Params::encode(model, w, cfg).expect("encode"));
    let mut rng = ChaCha20Rng::seed_from_u64(shuffle_seed);
    let len = model.input_len();
    let classes = job.classes().expect("classes");
    // Coins for stochastic rounding (the private run's are the dealer's:
    // the same distribution, other bits); unused by exact rounding.
    let mut clear = Clear::stochastic(shuffle_seed);
    for epoch in 0..job.epochs {
        let order = epoch_order(&mut rng, job.images);
        for idx in order.chunks_exact(batch) {
            let x: Vec<f32> = idx
                .iter()
                .flat_map(|&i| images[i * len..(i + 1) * len].iter().copied())
                .collect();
            let l: Vec<usize> = idx.iter().map(|&i| labels[i]).collect();
            train_step(
                &mut clear,
                model,
                &mut state,
                &encode_input(&x, cfg).expect("x"),
                &encode_targets(&l, classes, job.tcfg.loss, cfg).expect("t"),
                batch,
                cfg,
                &job.tcfg,
                job.lr.at(epoch),
            )
            .expect("cleartext step");
        }
    }
    state.params
}
