//! Private training on real MNIST images: a few hundred images through a
//! dealer thread streaming each step's keys and two parties training on
//! shares. The training loss falls, and the privately trained parameters
//! (and optimiser state) equal the cleartext fixed-point training's bit for
//! bit, for Network-1 (two epochs) and for LeNet (a few steps: convolutions,
//! max-pools and the cross-entropy on real data).
//!
//! Reads `ARIANN_SHARED_DATA` (unset: skipped, with a message; set but files
//! missing: fails).

use ariann::mpc::{ChannelSource, Clear, MemTransport, Session, run_two_party};
use ariann::nn::{
    Config, Init, Loss, Model, Params, Rounding, TrainConfig, TrainState, Weights, encode_input,
    encode_targets, train_plan, train_step, zoo,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
mod common;

use common::gunzip;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::time::Duration;

/// The first `n` training images (`pixel / 255`) and labels.
fn mnist_train(root: &Path, n: usize) -> (Vec<f32>, Vec<usize>) {
    let img = gunzip(&root.join("mnist/train-images-idx3-ubyte.gz"));
    let lab = gunzip(&root.join("mnist/train-labels-idx1-ubyte.gz"));
    assert_eq!(&img[..4], &[0, 0, 8, 3], "image magic");
    assert_eq!(&lab[..4], &[0, 0, 8, 1], "label magic");
    let px = img[16..16 + n * 784]
        .iter()
        .map(|p| f32::from(*p) / 255.0)
        .collect();
    (px, lab[8..8 + n].iter().map(|l| usize::from(*l)).collect())
}

fn share(v: &[u64], rng: &mut ChaCha12Rng) -> (Vec<u64>, Vec<u64>) {
    let a: Vec<u64> = v.iter().map(|_| rng.random()).collect();
    let b = v.iter().zip(&a).map(|(v, a)| v.wrapping_sub(*a)).collect();
    (a, b)
}

/// Trains `model` on `steps` batches (`x` in order, batch `batch`)
/// privately and in cleartext fixed point; checks they agree bit for bit
/// and returns the mean loss of each step (from the reconstructed logits).
fn train_both(model: &Model, x: &[f32], labels: &[usize], batch: usize, steps: usize) -> Vec<f64> {
    let cfg = Config {
        frac_bits: 20,
        rounding: Rounding::Nearest,
        max_gate_elems: 1 << 16,
        ..Config::default()
    };
    let tcfg = TrainConfig {
        loss: Loss::CrossEntropy,
        momentum: 0.9,
        weight_decay: 5e-4,
        optimizer: ariann::nn::Optimizer::Sgd,
    };
    let lr = 0.05;
    let mut rng = ChaCha12Rng::seed_from_u64(5);
    let w = Weights::init(model, Init::He, &mut rng);
    let n_img = labels.len();
    let batches: Vec<(Vec<u64>, Vec<u64>, Vec<usize>)> = (0..steps)
        .map(|s| {
            let at = (s * batch) % n_img;
            let xb = &x[at * 784..(at + batch) * 784];
            let lb = labels[at..at + batch].to_vec();
            (
                encode_input(xb, &cfg).expect("x"),
                encode_targets(&lb, 10, tcfg.loss, &cfg).expect("t"),
                lb,
            )
        })
        .collect();
    let params = Params::encode(model, &w, &cfg).expect("encode");
    let (p0, p1) = params.share(&mut rng);
    let mut clear = TrainState::new(params);
    for (xe, te, _) in &batches {
        train_step(
            &mut Clear::new(),
            model,
            &mut clear,
            xe,
            te,
            batch,
            &cfg,
            &tcfg,
            lr,
        )
        .expect("clear");
    }
    let mut m0 = Vec::new();
    let mut m1 = Vec::new();
    for (xe, te, _) in &batches {
        let (x0, x1) = share(xe, &mut rng);
        let (t0, t1) = share(te, &mut rng);
        m0.push((x0, t0));
        m1.push((x1, t1));
    }
    let plan = train_plan(model, batch, &cfg, &tcfg).expect("plan");
    let (tx0, rx0) = sync_channel(2);
    let (tx1, rx1) = sync_channel(2);
    let run = |t: &mut MemTransport, rx, p: Params, mine: Vec<(Vec<u64>, Vec<u64>)>| {
        let mut src = ChannelSource::new(rx, Duration::from_secs(600));
        let mut st = TrainState::new(p);
        let mut logits = Vec::new();
        for (xs, ts) in &mine {
            let o = train_step(
                &mut Session::new(t, &mut src),
                model,
                &mut st,
                xs,
                ts,
                batch,
                &cfg,
                &tcfg,
                lr,
            )
            .expect("private step");
            logits.push(o.logits);
        }
        (st, logits)
    };
    let ((s0, l0), (s1, l1)) = std::thread::scope(|s| {
        let plan = &plan;
        s.spawn(move || {
            for _ in 0..steps {
                for pair in plan.bundles_from_os::<u64>().expect("ring") {
                    let (a, b) = pair.expect("gate");
                    if tx0.send(a).is_err() || tx1.send(b).is_err() {
                        return;
                    }
                }
            }
        });
        run_two_party(|t| run(t, rx0, p0, m0), |t| run(t, rx1, p1, m1))
    });
    let got = Params::reconstruct(&s0.params, &s1.params).expect("reconstruct");
    assert!(
        got == clear.params,
        "{}: private training equals fixed point bit for bit",
        model.name
    );
    let v = Params::reconstruct(&s0.velocity, &s1.velocity).expect("reconstruct");
    assert!(
        v == clear.velocity,
        "{}: the optimiser state too",
        model.name
    );
    let scale = 2f64.powi(cfg.frac_bits as i32);
    l0.iter()
        .zip(&l1)
        .zip(&batches)
        .map(|((a, b), (_, _, lb))| {
            let z: Vec<f64> = a
                .iter()
                .zip(b)
                .map(|(a, b)| a.wrapping_add(*b) as i64 as f64 / scale)
                .collect();
            ariann::nn::train::float_loss(tcfg.loss, &z, lb, 10)
                .expect("loss")
                .1
        })
        .collect()
}

#[test]
fn network1_trains_privately_on_mnist() {
    let Some(root) = common::data_root("real-data training test") else {
        return;
    };
    let (x, labels) = mnist_train(&root, 256);
    let (model, _, _) = zoo::by_name("network1").expect("zoo");
    // Two epochs of 8 steps of 32.
    let losses = train_both(&model, &x, &labels, 32, 16);
    let first: f64 = losses[..8].iter().sum::<f64>() / 8.0;
    let second: f64 = losses[8..].iter().sum::<f64>() / 8.0;
    eprintln!("network1, private: mean loss epoch 1 {first:.4}, epoch 2 {second:.4}");
    assert!(second < 0.8 * first, "the loss falls: {first} -> {second}");
}

#[test]
fn lenet_steps_privately_on_mnist() {
    let Some(root) = common::data_root("real-data training test") else {
        return;
    };
    let (x, labels) = mnist_train(&root, 64);
    let (model, _, _) = zoo::by_name("lenet").expect("zoo");
    let mut model = model.permute_relu_maxpool();
    // Training drops the ReLU on the logits (it blocks the gradient).
    model.layers.pop();
    let losses = train_both(&model, &x, &labels, 16, 4);
    eprintln!("lenet, private: losses {losses:?}");
    assert!(losses.iter().all(|l| l.is_finite()));
}
